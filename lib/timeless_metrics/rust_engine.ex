defmodule TimelessMetrics.RustEngine do
  @moduledoc """
  Owns a store's engine handle: opens it (recovering the data directory), publishes
  it for the API in `:persistent_term`, runs maintenance ticks (flush on age, size or
  per-series thresholds; merges), logs engine warnings, and flushes and closes the
  engine on shutdown.

  Started by `TimelessMetrics.Supervisor`; one per store:

      {TimelessMetrics.RustEngine, opts}   # opts from TimelessMetrics.Options.validate/1
  """
  use GenServer
  require Logger

  alias TimelessMetrics.{Engine, Native, Options}

  @doc false
  def child_spec(opts) do
    %{
      id: __MODULE__,
      start: {__MODULE__, :start_link, [opts]},
      # A clean stop flushes the head into chunks: give it time.
      shutdown: 120_000
    }
  end

  @doc "Start the engine owner for validated options."
  @spec start_link(Options.t()) :: GenServer.on_start()
  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: TimelessMetrics.Supervisor.child_name(opts.name, :engine))
  end

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    close_stale_handle(opts.name)

    case Engine.open(Options.engine_config(opts)) do
      {:ok, {ref, warnings}} ->
        Enum.each(warnings, &Logger.warning("TimelessMetrics #{inspect(opts.name)}: #{&1}"))

        :persistent_term.put(Engine.key(opts.name), %{
          ref: ref,
          fsync: opts.fsync,
          mode: opts.mode,
          data_dir: opts.data_dir
        })

        schedule(opts)
        {:ok, %{opts: opts, ref: ref}}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  @impl true
  def handle_info(:tick, state) do
    case Engine.wrap(fn -> Native.store_maintain(state.ref, System.os_time(:millisecond)) end) do
      {:ok, {_stats, warnings}} ->
        Enum.each(warnings, &Logger.warning("TimelessMetrics #{inspect(state.opts.name)}: #{&1}"))

      {:error, reason} ->
        Logger.error("TimelessMetrics #{inspect(state.opts.name)} maintenance failed: #{inspect(reason)}")
    end

    schedule(state.opts)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase(Engine.key(state.opts.name))

    case Engine.wrap(fn -> Native.store_close(state.ref) end) do
      :ok -> :ok
      {:error, reason} -> Logger.error("TimelessMetrics #{inspect(state.opts.name)} close failed: #{inspect(reason)}")
    end
  end

  # A predecessor killed without running terminate/2 left its handle published,
  # still holding the data directory: close it so this process can reopen.
  defp close_stale_handle(store) do
    case Engine.handle(store) do
      {:ok, %{ref: ref}} ->
        :persistent_term.erase(Engine.key(store))
        Engine.wrap(fn -> Native.store_close(ref) end)

      {:error, _} ->
        :ok
    end
  end

  defp schedule(opts), do: Process.send_after(self(), :tick, opts.maintenance_interval)
end
