defmodule TimelessMetrics.IngestWorker do
  @moduledoc """
  Drains a store's ingest queue (`TimelessMetrics.Ingest.Queue`). Each step takes a
  batch of queued bodies (up to 64 bodies or 1 MiB, and no more than its share of the
  backlog: queue depth / workers) and ingests them in one engine call
  (`TimelessMetrics.Ingest.ingest_many/2`, so per-body fixed costs are paid once per
  batch; the store's `ingest_fun`, in tests, is called per body). For each body it counts
  points and rejections per format and reason (`TimelessMetrics.IngestStats`), logs
  rejected lines naming the body (`TimelessMetrics.Ingest.RejectLog`) and stores
  metadata (`TimelessMetrics.Ingest.Metadata`); then it marks the batch done in the
  spool with one call (`TimelessMetrics.Ingest.Spool.done/2`).

  `ingest_workers` of them run under `TimelessMetrics.Ingest.WorkerSupervisor`, as
  `:"<store>.ingest_worker_<i>"`. A request wakes worker `seq rem N` (with one message
  per look at the queue, not per request: `TimelessMetrics.Ingest.Queue.wake/2`); a
  worker that takes a batch while more are waiting wakes the next one, so all of them
  share a backlog. A worker woken to a short queue (under 32 bodies) waits 2 ms first, so that
  bodies arriving meanwhile share its batch. A body the engine cannot take now (`{:unavailable, _}`) is put back and
  retried with a backoff (up to 5 s). A worker killed while ingesting finds its batch in
  the queue's in-flight table on restart and queues it again; a body that failed an
  attempt is retried alone, and given up after 3 attempts (kept as
  `<spool>/failed/<seq>.<format>`). On a clean shutdown the worker drains the queue for
  up to 25 s. Workers run at high process priority (see `init/1`).

      {TimelessMetrics.IngestWorker, {opts, 0}}   # opts from TimelessMetrics.Options.validate/1
  """
  use GenServer
  require Logger

  alias TimelessMetrics.IngestStats
  alias TimelessMetrics.Ingest.{Metadata, Queue, RejectLog, Spool}

  @max_backoff 5_000
  @drain_ms 25_000
  @batch_bodies 64
  @batch_bytes 1_048_576
  @linger_below 32
  @linger_ms 2

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
    # Under a flood of small requests, dozens of connection processes would otherwise
    # share the schedulers with the few workers, the queue would fill and requests
    # would be refused with 429 while CPU went to accepting them. At high priority a
    # worker runs as soon as it has work; the parse itself runs on a dirty scheduler.
    Process.flag(:priority, :high)

    with {:ok, q} <- Queue.fetch(store) do
      recover(q, index)
      send(self(), :work)
      {:ok, %{q: q, index: index, backoff: 0, lingering: false}}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  defp recover(q, index) do
    {requeued, failed} = Queue.recover(q, index)

    for entry <- requeued do
      Logger.warning("TimelessMetrics #{inspect(q.store)}: ingest worker #{index} restarted; retrying body #{entry.seq}")
    end

    for entry <- failed do
      kept = set_aside(q, entry)

      Logger.error(
        "TimelessMetrics #{inspect(q.store)}: ingest body #{entry.seq} crashed the ingest workers " <>
          "#{entry.attempts} times; given up" <> kept
      )

      IngestStats.add_rejected(q.stats, entry.format || :unknown, :worker_crash, 1)
    end

    finish(q, index, failed, [])
  end

  defp set_aside(%{spool: nil}, _entry), do: ""

  defp set_aside(q, entry) do
    with {:ok, format, _opts, body} <- load(q, entry),
         {:ok, path} <- Spool.set_aside(q.spool_dir, entry.seq, format, body) do
      ", kept as #{path}"
    else
      _ -> ", and it could not be kept"
    end
  end

  @impl true
  def handle_info(:work, %{lingering: true} = state), do: {:noreply, state}

  def handle_info(:work, state) do
    flush_wakeups()

    # A short queue: wait a moment so that bodies arriving meanwhile share the batch
    # (one engine call and one completion record for all of them).
    if Queue.depth(state.q) < @linger_below do
      Process.send_after(self(), :linger_over, @linger_ms)
      {:noreply, %{state | lingering: true}}
    else
      work(state)
    end
  end

  def handle_info(:linger_over, state) do
    flush_wakeups()
    work(%{state | lingering: false})
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp work(state) do
    case step(state) do
      :empty -> {:noreply, %{state | backoff: 0}}

      :done ->
        send(self(), :work)
        {:noreply, %{state | backoff: 0}}

      :retry -> retry_later(state)
    end
  end

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

  # One batch: :done, :empty, or :retry (some put back, the engine is unavailable).
  defp step(%{q: q, index: index}) do
    Queue.arm(q, index)
    share = div(Queue.depth(q), q.workers)

    case Queue.checkout(q, index, min(max(share, 1), @batch_bodies), @batch_bytes) do
      :empty ->
        :empty

      {:ok, entries} ->
        if Queue.pending?(q), do: Queue.wake(q, rem(index + 1, q.workers))
        result = process(q, index, entries)
        release_bodies(entries)
        result
    end
  end

  # Bodies from this size on (summed over a batch) are let go of at once.
  @release_bytes 256 * 1024

  # The batch's bodies are released from the queue, but references to them (and to the
  # other entries `Queue.checkout/4` selected) stay on this small heap until it is
  # collected, which keeps megabytes of off-heap binaries allocated beyond the queue's
  # byte bound. A batch of large bodies is followed by a collection of this small heap;
  # batches of small ones (many tiny POSTs) are left to the ordinary collections, which
  # would otherwise run after every few requests.
  defp release_bodies(entries) do
    if Enum.reduce(entries, 0, &(&1.size + &2)) >= @release_bytes, do: :erlang.garbage_collect()
    :ok
  end

  defp process(q, index, entries) do
    {loaded, unreadable} =
      entries
      |> Enum.map(fn entry -> {entry, load(q, entry)} end)
      |> Enum.split_with(fn {_entry, r} -> match?({:ok, _, _, _}, r) end)

    for {entry, {:error, reason}} <- unreadable do
      Logger.error("TimelessMetrics #{inspect(q.store)}: spooled ingest body #{entry.seq} unreadable (#{reason_message(reason)}); dropped")
      IngestStats.add_rejected(q.stats, :unknown, :corrupt_spool, 1)
    end

    items = for {_entry, {:ok, format, opts, body}} <- loaded, do: {format, body, opts}
    results = ingest(q, items)

    retry =
      for {{entry, {:ok, format, _, _}}, result} <- Enum.zip(loaded, results), reduce: [] do
        retry ->
          case result do
            {:ok, report} ->
              record(q, format, entry, report)
              retry

            {:error, {:unavailable, message}} ->
              if retry == [], do: Logger.warning("TimelessMetrics #{inspect(q.store)}: ingest postponed: #{message}")
              [entry | retry]

            {:error, reason} ->
              refused_body(q, format, entry, reason)
              retry
          end
      end

    finish(q, index, entries -- retry, retry)
    if retry == [], do: :done, else: :retry
  end

  defp ingest(_q, []), do: []
  defp ingest(%{ingest_fun: nil} = q, items), do: TimelessMetrics.Ingest.ingest_many(q.store, items)
  defp ingest(q, items), do: Enum.map(items, fn {format, body, opts} -> q.ingest_fun.(q.store, format, body, opts) end)

  defp load(_q, %{body: body, format: format, opts: opts}) when is_binary(body), do: {:ok, format, opts, body}
  defp load(q, %{seq: seq}), do: Spool.read(q.spool, seq)

  defp record(q, format, entry, report) do
    IngestStats.add_points(q.stats, format, Map.get(report, :samples, 0))

    for {reason, n} <- Map.get(report, :rejected_by_reason, []), n > 0 do
      IngestStats.add_rejected(q.stats, format, reason, n)
    end

    RejectLog.log(q.log_limit, q.store, format, Map.get(report, :rejected, []), entry.seq)
    Metadata.upsert(q.store, q.meta_cache, Map.get(report, :metadata, []))
  end

  defp refused_body(q, format, entry, reason) do
    kind = with {k, _msg} when is_atom(k) <- reason, do: k, else: (_ -> :error)
    IngestStats.add_rejected(q.stats, format, kind, 1)
    RejectLog.log(q.log_limit, q.store, format, [%{line: 0, reason: kind, message: reason_message(reason), sample: "body #{entry.seq}"}], entry.seq)
  end

  defp reason_message({_kind, msg}) when is_binary(msg), do: msg
  defp reason_message(other), do: inspect(other)

  # Mark `finished` done in the spool (one completion record), release them from the
  # queue, put `retry` back. If the completion cannot be written the bodies are replayed
  # on the next start (ingested twice, harmlessly).
  defp finish(q, index, finished, retry) do
    spooled = for e <- finished, e.spooled, do: e.seq

    if q.spool do
      with {:error, reason} <- Spool.done(q.spool, spooled) do
        Logger.warning("TimelessMetrics #{inspect(q.store)}: ingest spool: cannot mark #{length(spooled)} bodies done (#{reason_message(reason)})")
      end
    end

    Queue.done(q, index, finished, retry)
    :done
  end
end
