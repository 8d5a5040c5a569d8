defmodule TimelessMetrics.Ingest.Queue do
  @moduledoc """
  The ingest queue of one store: accepted bodies waiting for a
  `TimelessMetrics.IngestWorker`. The process owns the tables and, on start, queues
  again the bodies left in the spool (`TimelessMetrics.Ingest.Spool`); everything else
  runs in the callers' processes on public ETS tables and atomics, with no message to
  this process:

  - `queue` (`ordered_set` by sequence number): `{seq, entry}`;
  - `inflight` (`set` by worker index): `{index, entries}`, the bodies a worker is
    ingesting. A worker that crashes finds them there when it restarts and queues them
    again, one more attempt counted; a body with a failed attempt is retried alone, and
    after 3 attempts it is given up (kept as `<spool>/failed/<seq>.<format>`);
  - atomics: next sequence number (memory mode; on disk the spool numbers bodies),
    depth (bodies queued or in flight) and their bytes. `reserve/2` bounds depth and
    bytes by the store's `ingest_queue_max_bodies` / `ingest_queue_max_bytes`;
  - one wake flag per worker (`wake/2`, `arm/2`): a worker is sent `:work` only when
    it is not already due to look at the queue, so that a flood of small requests does
    not schedule a worker once per request.

  The spool (`TimelessMetrics.Ingest.Spool`, `nil` in memory mode) is opened here; the
  request processes append to it directly.

  An entry is a map: `seq`, `format`, `opts`, `body` (or `nil` for a replayed body, read
  back from the spool by the worker), `spooled` (whether it is in the spool), `size`
  (bytes counted in the queue), `attempts`.

      {:ok, q} = TimelessMetrics.Ingest.Queue.fetch(:metrics)
      :ok = TimelessMetrics.Ingest.Queue.reserve(q, byte_size(body))
      TimelessMetrics.Ingest.Queue.push(q, %{seq: TimelessMetrics.Ingest.Queue.next_seq(q), ...})
      {:ok, [entry | _]} = TimelessMetrics.Ingest.Queue.checkout(q, 0, 64, 1_048_576)
  """
  use GenServer
  require Logger

  alias TimelessMetrics.{IngestStats, Supervisor}
  alias TimelessMetrics.Ingest.Spool

  @seq 1
  @depth 2
  @bytes 3

  @max_attempts 3

  defstruct [:store, :queue, :inflight, :atomics, :wake_flags, :worker_names, :stats, :meta_cache, :log_limit, :max_bodies,
             :max_bytes, :wait_ms, :spool_dir, :spool, :sync?, :workers, :ingest_fun]

  @type t :: %__MODULE__{}

  # how often the spool deletes finished segments when no completions arrive
  @spool_tick_ms 1_000
  @type entry :: %{
          seq: non_neg_integer(),
          format: atom() | nil,
          opts: map() | nil,
          body: binary() | nil,
          spooled: boolean(),
          size: non_neg_integer(),
          attempts: non_neg_integer()
        }

  @doc false
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @doc "Start the queue owner of a store (validated options)."
  @spec start_link(map()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: Supervisor.child_name(opts.name, :ingest_queue))

  defp key(store), do: {__MODULE__, store}

  @doc "The queue of a running store."
  @spec fetch(atom()) :: {:ok, t()} | {:error, {:unavailable, String.t()}}
  def fetch(store) do
    case :persistent_term.get(key(store), nil) do
      nil -> {:error, {:unavailable, "store #{inspect(store)} is not running"}}
      q -> {:ok, q}
    end
  end

  @doc "The registered name of worker `index` of a store."
  @spec worker_name(atom(), non_neg_integer()) :: atom()
  def worker_name(store, index), do: Supervisor.child_name(store, :"ingest_worker_#{index}")

  # ------------------------------------------------------------------ producers

  @doc "Whether the queue has room for more (a cheap check before decoding a body)."
  @spec room?(t()) :: boolean()
  def room?(q), do: get(q, @depth) < q.max_bodies and get(q, @bytes) < q.max_bytes

  @doc """
  Reserve room for one body of `bytes`: `{:error, :full}` when the body count bound is
  reached, `{:error, :full_bytes}` when the byte bound is.
  """
  @spec reserve(t(), non_neg_integer()) :: :ok | {:error, :full | :full_bytes}
  def reserve(q, bytes) do
    depth = :atomics.add_get(q.atomics, @depth, 1)
    total = :atomics.add_get(q.atomics, @bytes, bytes)

    cond do
      depth > q.max_bodies ->
        release(q, bytes)
        {:error, :full}

      # A body alone larger than the byte bound is still accepted into an empty queue.
      total > q.max_bytes and depth > 1 ->
        release(q, bytes)
        {:error, :full_bytes}

      true ->
        :ok
    end
  end

  @doc "Give back a reservation (the body was not queued) or account for an ingested one."
  @spec release(t(), non_neg_integer()) :: :ok
  def release(q, bytes) do
    :atomics.sub(q.atomics, @depth, 1)
    :atomics.sub(q.atomics, @bytes, bytes)
  end

  @doc "A new sequence number (memory mode; spooled bodies are numbered by the spool)."
  @spec next_seq(t()) :: non_neg_integer()
  def next_seq(q), do: :atomics.add_get(q.atomics, @seq, 1)

  @doc "Queue a reserved entry and wake a worker."
  @spec push(t(), entry()) :: :ok
  def push(q, entry) do
    true = :ets.insert(q.queue, {entry.seq, entry})
    wake(q, rem(entry.seq, q.workers))
  end

  @doc """
  Wake worker `index` to look at the queue: sends it `:work` unless it was already woken
  and has not looked since (see `arm/2`). A no-op while the worker is restarting: it
  drains the queue on start.
  """
  @spec wake(t(), non_neg_integer()) :: :ok
  def wake(q, index) do
    if :atomics.exchange(q.wake_flags, index + 1, 1) == 0 do
      case Process.whereis(elem(q.worker_names, index)) do
        nil -> :ok
        pid -> send(pid, :work)
      end
    end

    :ok
  end

  @doc """
  Worker `index` is about to look at the queue: bodies pushed from now on wake it again.
  Call it before `checkout/4`, so that a body pushed after the checkout looked is never
  left without a wake-up (its producer finds the flag down and sends `:work`).
  """
  @spec arm(t(), non_neg_integer()) :: :ok
  def arm(q, index) do
    :atomics.put(q.wake_flags, index + 1, 0)
  end

  # ------------------------------------------------------------------ consumers

  @doc """
  Take the oldest entries for worker `index`, up to `max_bodies` and `max_bytes` (at
  least one), recording them as in flight first so that a crash of the worker cannot
  lose them. An entry that already failed an attempt is taken alone, so that a body that
  crashes the worker cannot take others down with it.
  """
  @spec checkout(t(), non_neg_integer(), pos_integer(), pos_integer()) :: {:ok, [entry()]} | :empty
  def checkout(q, index, max_bodies, max_bytes) do
    case :ets.select(q.queue, [{{:_, :"$1"}, [], [:"$1"]}], max_bodies) do
      :"$end_of_table" ->
        :empty

      {entries, _continuation} ->
        wanted = batch(entries, max_bytes)
        :ets.insert(q.inflight, {index, wanted})

        # Several workers may have selected the same entries: each goes to the one whose
        # take succeeds.
        case Enum.filter(wanted, &(:ets.take(q.queue, &1.seq) != [])) do
          [] ->
            :ets.delete(q.inflight, index)
            checkout(q, index, max_bodies, max_bytes)

          ^wanted ->
            {:ok, wanted}

          taken ->
            :ets.insert(q.inflight, {index, taken})
            {:ok, taken}
        end
    end
  end

  # The first entry alone if it already failed an attempt; else entries up to one that
  # did, within `bytes` (the first one always).
  defp batch([%{attempts: a} = first | _], _bytes) when a > 0, do: [first]
  defp batch([first | rest], bytes), do: [first | batch_more(rest, bytes - first.size)]

  defp batch_more([%{attempts: 0, size: size} = e | rest], bytes) when size <= bytes, do: [e | batch_more(rest, bytes - size)]
  defp batch_more(_rest, _bytes), do: []

  @doc "Whether entries are waiting."
  @spec pending?(t()) :: boolean()
  def pending?(q), do: :ets.first(q.queue) != :"$end_of_table"

  @doc "Bodies queued or in flight."
  @spec depth(t()) :: non_neg_integer()
  def depth(q), do: get(q, @depth)

  @doc "Worker `index` is done with `entries` (ingested, or given up on) and puts `retry` back."
  @spec done(t(), non_neg_integer(), [entry()], [entry()]) :: :ok
  def done(q, index, entries, retry \\ []) do
    for e <- retry, do: :ets.insert(q.queue, {e.seq, e})
    :ets.delete(q.inflight, index)
    Enum.each(entries, &release(q, &1.size))
  end

  @doc """
  On a worker's start: what its previous incarnation left in flight, each with one more
  attempt counted. Returns `{requeued, failed}`: `requeued` are queued again, `failed`
  had their last attempt (the caller must give up on them).
  """
  @spec recover(t(), non_neg_integer()) :: {[entry()], [entry()]}
  def recover(q, index) do
    case :ets.lookup(q.inflight, index) do
      [] ->
        {[], []}

      [{^index, entries}] ->
        entries = Enum.map(entries, &%{&1 | attempts: &1.attempts + 1})
        {failed, requeued} = Enum.split_with(entries, &(&1.attempts >= @max_attempts))
        for e <- requeued, do: :ets.insert(q.queue, {e.seq, e})
        :ets.delete(q.inflight, index)
        {requeued, failed}
    end
  end

  @doc "Queue depth and bytes, spool bytes (on disk) and spooled bodies not done."
  @spec sizes(t()) :: %{queue_depth: non_neg_integer(), queue_bytes: non_neg_integer(), spool_bytes: non_neg_integer(),
                        spool_pending: non_neg_integer()}
  def sizes(q) do
    spool = if q.spool, do: Spool.info(q.spool), else: %{bytes: 0, pending: 0}
    %{queue_depth: get(q, @depth), queue_bytes: get(q, @bytes), spool_bytes: spool.bytes, spool_pending: spool.pending}
  end

  defp get(q, i), do: :atomics.get(q.atomics, i)

  # ------------------------------------------------------------------ owner

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)

    q = %__MODULE__{
      store: opts.name,
      # written on every request and batch: no read_concurrency (reader-optimised locks)
      queue: :ets.new(:ingest_queue, [:ordered_set, :public, write_concurrency: true]),
      inflight: :ets.new(:ingest_inflight, [:set, :public, write_concurrency: true]),
      atomics: :atomics.new(3, signed: true),
      wake_flags: :atomics.new(opts.ingest_workers, signed: false),
      worker_names: List.to_tuple(for i <- 0..(opts.ingest_workers - 1), do: worker_name(opts.name, i)),
      stats: IngestStats.new(),
      meta_cache: :ets.new(:ingest_metadata, [:set, :public, read_concurrency: true]),
      log_limit: :atomics.new(3, signed: true),
      max_bodies: opts.ingest_queue_max_bodies,
      max_bytes: opts.ingest_queue_max_bytes,
      wait_ms: opts.ingest_queue_wait,
      spool_dir: if(opts.mode == :memory, do: nil, else: Spool.dir(opts.data_dir)),
      sync?: opts.fsync == :always,
      workers: opts.ingest_workers,
      ingest_fun: opts.ingest_fun
    }

    case replay(q) do
      {:ok, q} ->
        :persistent_term.put(key(q.store), q)
        {:ok, q}

      {:error, {_kind, message}} ->
        {:stop, {:io, "ingest spool #{q.spool_dir}: #{message}"}}
    end
  end

  defp replay(%{spool_dir: nil} = q), do: {:ok, q}

  defp replay(q) do
    with {:ok, spool, pending, issues} <- open_spool(q) do
      report_issues(q, issues)

      for {seq, format, opts, size} <- pending do
        entry = %{seq: seq, format: format, opts: opts, body: nil, spooled: true, size: size, attempts: 0}
        :ets.insert(q.queue, {seq, entry})
        :atomics.add(q.atomics, @depth, 1)
        :atomics.add(q.atomics, @bytes, size)
      end

      if pending != [] do
        Logger.info("TimelessMetrics #{inspect(q.store)}: replaying #{length(pending)} spooled ingest bodies")
      end

      :timer.send_interval(@spool_tick_ms, :spool_tick)
      {:ok, %{q | spool: spool}}
    end
  end

  # Bodies left in the previous layout (one file per body) are moved into the spool first,
  # then it is opened again so that they are replayed with the others.
  defp open_spool(q) do
    with {:ok, spool, pending, issues} <- Spool.open(q.spool_dir, q.sync?) do
      case Spool.import_legacy(q.spool_dir, spool) do
        {0, []} ->
          {:ok, spool, pending, issues}

        {n, bad} ->
          Logger.warning("TimelessMetrics #{inspect(q.store)}: moved #{n} bodies of the previous spool layout into the spool")

          for path <- bad do
            Logger.error("TimelessMetrics #{inspect(q.store)}: #{path} is not a readable spooled body; kept as .corrupt")
            IngestStats.add_rejected(q.stats, :unknown, :corrupt_spool, 1)
          end

          Spool.close(spool)
          with {:ok, spool, pending, more} <- Spool.open(q.spool_dir, q.sync?), do: {:ok, spool, pending, issues ++ more}
      end
    end
  end

  # A torn tail is an append cut by a crash (never acknowledged); a corrupt record is a
  # body lost to damage on disk: counted as rejected (`:corrupt_spool`).
  defp report_issues(q, issues) do
    for {kind, path, offset, message} <- issues do
      Logger.error("TimelessMetrics #{inspect(q.store)}: ingest spool #{path} at offset #{offset}: #{message}")
      if kind == :corrupt, do: IngestStats.add_rejected(q.stats, :unknown, :corrupt_spool, 1)
    end
  end

  @impl true
  def handle_info(:spool_tick, q) do
    case Spool.tick(q.spool) do
      :ok -> :ok
      {:error, reason} -> Logger.warning("TimelessMetrics #{inspect(q.store)}: ingest spool housekeeping: #{inspect(reason)}")
    end

    {:noreply, q}
  end

  def handle_info(_other, q), do: {:noreply, q}

  @impl true
  def terminate(_reason, q) do
    :persistent_term.erase(key(q.store))
    if q.spool, do: Spool.close(q.spool)
  end
end
