defmodule TimelessMetrics.TestStore do
  @moduledoc """
  Starting temporary stores in tests, each under its own unique name.

      setup do
        store = TimelessMetrics.TestStore.start!()                    # memory mode
        # store = TimelessMetrics.TestStore.start!(data_dir: tmp_dir)  # on disk
        %{store: store}
      end
  """
  import ExUnit.Callbacks, only: [start_supervised: 2]

  @doc "Polls `fun` every 10 ms until it returns true (true) or `tries` run out (false)."
  @spec wait_until((-> boolean()), non_neg_integer()) :: boolean()
  def wait_until(fun, tries \\ 100) do
    cond do
      fun.() -> true
      tries == 0 -> false
      true -> Process.sleep(10) && wait_until(fun, tries - 1)
    end
  end

  @doc "The id of a series, created if new (`TimelessMetrics.resolve_series/3` that must succeed)."
  @spec series_id!(atom(), String.t(), map() | keyword()) :: non_neg_integer()
  def series_id!(store, metric, labels) do
    {:ok, id} = TimelessMetrics.resolve_series(store, metric, labels)
    id
  end

  @doc "A name no other test uses."
  @spec unique_name(String.t()) :: atom()
  def unique_name(prefix \\ "store"), do: :"#{prefix}_#{System.unique_integer([:positive])}"

  @doc """
  Start a store supervised by the test (stopped when the test ends) and return its
  name. Memory mode unless `:data_dir` is given.
  """
  @spec start!(keyword()) :: atom()
  def start!(opts \\ []) do
    name = Keyword.get_lazy(opts, :name, fn -> unique_name() end)
    opts = Keyword.put(opts, :name, name)
    opts = if Keyword.has_key?(opts, :data_dir), do: opts, else: Keyword.put_new(opts, :mode, :memory)

    case start_supervised({TimelessMetrics, opts}, id: name) do
      {:ok, _pid} -> name
      {:error, reason} -> raise "could not start store #{inspect(name)}: #{inspect(reason)}"
    end
  end

  @doc "Stop a store started with `start!/1` (flushes it), so the same dir can be reopened."
  @spec stop(atom()) :: :ok
  def stop(name), do: ExUnit.Callbacks.stop_supervised!(name)
end
