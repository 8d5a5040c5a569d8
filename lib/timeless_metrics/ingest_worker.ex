defmodule TimelessMetrics.IngestWorker do
  @moduledoc """
  Drains a store's ingest queue (`TimelessMetrics.Ingest.Queue`): takes one body at a
  time, ingests it (`TimelessMetrics.Ingest.ingest/4`, or the store's `ingest_fun`
  in tests), counts points and rejections (`TimelessMetrics.IngestStats`), logs
  rejected lines (`TimelessMetrics.Ingest.RejectLog`), stores metadata
  (`TimelessMetrics.Ingest.Metadata`), then deletes the body's spool file.

  `ingest_workers` of them run under `TimelessMetrics.Ingest.WorkerSupervisor`, as
  `:"<store>.ingest_worker_<i>"`. A request wakes worker `seq rem N`; a worker that
  takes a body while more are waiting wakes the next one, so all of them share a
  backlog. A body the engine cannot take now (`{:unavailable, _}`) is put back and
  retried with a backoff (up to 5 s). A worker killed while ingesting finds its body in
  the queue's in-flight table on restart and queues it again (3 attempts at most). On
  a clean shutdown the worker drains the queue for up to 25 s.

      {TimelessMetrics.IngestWorker, {opts, 0}}   # opts from TimelessMetrics.Options.validate/1
  """
  use GenServer
  require Logger

  alias TimelessMetrics.IngestStats
  alias TimelessMetrics.Ingest.{Metadata, Queue, RejectLog, Spool}

  @max_backoff 5_000
  @drain_ms 25_000

  @doc false
  def child_spec({opts, index}) do
    %{id: {__MODULE__, index}, start: {__MODULE__, :start_link, [{opts, index}]}, shutdown: @drain_ms + 5_000}
  end

  @doc "Start worker `index` of a store."
  @spec start_link({map(), non_neg_integer()}) :: GenServer.on_start()
  def start_link({opts, index}) do
    GenServer.start_link(__MODULE__, {opts.name, index}, name: Queue.worker_name(opts.name, index))
  end

  @impl true
  def init({store, index}) do
    Process.flag(:trap_exit, true)

    with {:ok, q} <- Queue.fetch(store) do
      recover(q, index)
      send(self(), :work)
      {:ok, %{q: q, index: index, backoff: 0}}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  defp recover(q, index) do
    case Queue.recover(q, index) do
      :none ->
        :ok

      {:requeued, entry} ->
        Logger.warning("TimelessMetrics #{inspect(q.store)}: ingest worker #{index} restarted; retrying body #{entry.seq}")

      {:failed, entry} ->
        Logger.error(
          "TimelessMetrics #{inspect(q.store)}: ingest body #{entry.seq} crashed the ingest workers " <>
            "#{entry.attempts} times; given up" <> if(entry.path, do: ", kept as #{Path.rootname(entry.path)}.failed", else: "")
        )

        if entry.path, do: Spool.quarantine(entry.path, "failed")
        IngestStats.add_rejected(q.stats, entry.format || :unknown, :worker_crash, 1)
        finish(q, index, entry)
    end
  end

  @impl true
  def handle_info(:work, state) do
    flush_wakeups()

    case step(state) do
      :empty -> {:noreply, %{state | backoff: 0}}
      :done ->
        send(self(), :work)
        {:noreply, %{state | backoff: 0}}

      :retry -> retry_later(state)
    end
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(:shutdown, state), do: drain(state, System.monotonic_time(:millisecond) + @drain_ms)
  def terminate({:shutdown, _}, state), do: drain(state, System.monotonic_time(:millisecond) + @drain_ms)
  def terminate(_reason, _state), do: :ok

  defp drain(state, deadline) do
    if System.monotonic_time(:millisecond) < deadline and step(state) == :done, do: drain(state, deadline)
    :ok
  end

  defp flush_wakeups do
    receive do
      :work -> flush_wakeups()
    after
      0 -> :ok
    end
  end

  defp retry_later(state) do
    backoff = min(max(state.backoff * 2, 100), @max_backoff)
    Process.send_after(self(), :work, backoff)
    {:noreply, %{state | backoff: backoff}}
  end

  # One body: :done, :empty, or :retry (put back, the engine is unavailable).
  defp step(%{q: q, index: index}) do
    case Queue.checkout(q, index) do
      :empty ->
        :empty

      {:ok, entry} ->
        if Queue.pending?(q), do: Queue.wake(q, rem(index + 1, q.workers))
        process(q, index, entry)
    end
  end

  defp process(q, index, entry) do
    case load(entry) do
      {:ok, format, opts, body} ->
        case q.ingest_fun.(q.store, format, body, opts) do
          {:ok, report} ->
            record(q, format, report)
            finish(q, index, entry)

          {:error, {:unavailable, message}} ->
            Logger.warning("TimelessMetrics #{inspect(q.store)}: ingest postponed: #{message}")
            Queue.putback(q, index, entry)
            :retry

          {:error, reason} ->
            refused_body(q, format, entry, reason)
            finish(q, index, entry)
        end

      {:error, reason} ->
        Logger.error("TimelessMetrics #{inspect(q.store)}: spooled ingest body #{entry.path} unreadable (#{inspect(reason)}); kept as .corrupt")
        Spool.quarantine(entry.path)
        IngestStats.add_rejected(q.stats, :unknown, :corrupt_spool, 1)
        finish(q, index, entry)
    end
  end

  defp load(%{body: body, format: format, opts: opts}) when is_binary(body), do: {:ok, format, opts, body}

  defp load(%{path: path}) do
    with {:ok, %{format: format, opts: opts}, body} <- Spool.read(path), do: {:ok, format, opts, body}
  end

  defp record(q, format, report) do
    IngestStats.add_points(q.stats, format, Map.get(report, :samples, 0))

    for {reason, n} <- Map.get(report, :rejected_by_reason, []), n > 0 do
      IngestStats.add_rejected(q.stats, format, reason, n)
    end

    RejectLog.log(q.log_limit, q.store, format, Map.get(report, :rejected, []))
    Metadata.upsert(q.store, q.meta_cache, Map.get(report, :metadata, []))
  end

  defp refused_body(q, format, entry, reason) do
    kind = with {k, _msg} when is_atom(k) <- reason, do: k, else: (_ -> :error)
    IngestStats.add_rejected(q.stats, format, kind, 1)
    RejectLog.log(q.log_limit, q.store, format, [%{line: 0, reason: kind, message: reason_message(reason), sample: "body #{entry.seq}"}])
  end

  defp reason_message({_kind, msg}) when is_binary(msg), do: msg
  defp reason_message(other), do: inspect(other)

  defp finish(q, index, entry) do
    if entry.path do
      Spool.delete(entry.path)
      Queue.spooled(q, -entry.spool_size)
    end

    Queue.done(q, index, entry)
    :done
  end
end
