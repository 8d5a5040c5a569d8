defmodule TimelessMetrics.Ingest.Queue do
  @moduledoc """
  The ingest queue of one store: accepted bodies waiting for a
  `TimelessMetrics.IngestWorker`. The process owns the tables and, on start, queues
  again the bodies left in the spool (`TimelessMetrics.Ingest.Spool`); everything else
  runs in the callers' processes on public ETS tables and atomics, with no message to
  this process:

  - `queue` (`ordered_set` by sequence number): `{seq, entry}`;
  - `inflight` (`set` by worker index): `{index, entry}`, the body a worker is ingesting.
    A worker that crashes finds it there when it restarts and queues it again (after
    3 attempts the body is moved out of the spool as `*.failed`);
  - atomics: next sequence number, depth (bodies queued or in flight), their bytes,
    and the spool's bytes. `reserve/2` bounds depth and bytes by the store's
    `ingest_queue_max_bodies` / `ingest_queue_max_bytes`.

  An entry is a map: `seq`, `format`, `opts`, `body` (or `nil` for a replayed body,
  read back from `path` by the worker), `path` (the spool file, `nil` in memory mode),
  `size` (bytes counted in the queue), `spool_size` (bytes of its spool file), `attempts`.

      {:ok, q} = TimelessMetrics.Ingest.Queue.fetch(:metrics)
      :ok = TimelessMetrics.Ingest.Queue.reserve(q, byte_size(body))
      TimelessMetrics.Ingest.Queue.push(q, %{seq: TimelessMetrics.Ingest.Queue.next_seq(q), ...})
  """
  use GenServer
  require Logger

  alias TimelessMetrics.{IngestStats, Supervisor}
  alias TimelessMetrics.Ingest.Spool

  @seq 1
  @depth 2
  @bytes 3
  @spool_bytes 4

  @max_attempts 3

  defstruct [:store, :queue, :inflight, :atomics, :stats, :meta_cache, :log_limit, :max_bodies, :max_bytes,
             :spool_dir, :sync?, :workers, :ingest_fun]

  @type t :: %__MODULE__{}
  @type entry :: %{
          seq: non_neg_integer(),
          format: atom() | nil,
          opts: map() | nil,
          body: binary() | nil,
          path: Path.t() | nil,
          size: non_neg_integer(),
          spool_size: non_neg_integer(),
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

  @doc "Reserve room for one body of `bytes`; `{:error, :full}` when over a bound."
  @spec reserve(t(), non_neg_integer()) :: :ok | {:error, :full}
  def reserve(q, bytes) do
    depth = :atomics.add_get(q.atomics, @depth, 1)
    total = :atomics.add_get(q.atomics, @bytes, bytes)

    # A body alone larger than the byte bound is still accepted into an empty queue.
    if depth > q.max_bodies or (total > q.max_bytes and depth > 1) do
      release(q, bytes)
      {:error, :full}
    else
      :ok
    end
  end

  @doc "Give back a reservation (the body was not queued) or account for an ingested one."
  @spec release(t(), non_neg_integer()) :: :ok
  def release(q, bytes) do
    :atomics.sub(q.atomics, @depth, 1)
    :atomics.sub(q.atomics, @bytes, bytes)
  end

  @doc "A new sequence number."
  @spec next_seq(t()) :: non_neg_integer()
  def next_seq(q), do: :atomics.add_get(q.atomics, @seq, 1)

  @doc "Account for `bytes` written to (positive) or deleted from (negative) the spool."
  @spec spooled(t(), integer()) :: :ok
  def spooled(q, bytes), do: :atomics.add(q.atomics, @spool_bytes, bytes)

  @doc "Queue a reserved entry and wake a worker."
  @spec push(t(), entry()) :: :ok
  def push(q, entry) do
    true = :ets.insert(q.queue, {entry.seq, entry})
    wake(q, rem(entry.seq, q.workers))
  end

  @doc "Wake worker `index` (a no-op while it is restarting: it drains the queue on start)."
  @spec wake(t(), non_neg_integer()) :: :ok
  def wake(q, index) do
    case Process.whereis(worker_name(q.store, index)) do
      nil -> :ok
      pid ->
        send(pid, :work)
        :ok
    end
  end

  # ------------------------------------------------------------------ consumers

  @doc """
  Take the oldest entry for worker `index`, recording it as in flight first so that a
  crash of the worker cannot lose it.
  """
  @spec checkout(t(), non_neg_integer()) :: {:ok, entry()} | :empty
  def checkout(q, index) do
    case :ets.first(q.queue) do
      :"$end_of_table" ->
        :empty

      seq ->
        case :ets.lookup(q.queue, seq) do
          [{^seq, entry}] ->
            :ets.insert(q.inflight, {index, entry})

            # Several workers may have looked the same entry up: the one whose take
            # succeeds owns it.
            case :ets.take(q.queue, seq) do
              [_] -> {:ok, entry}
              [] -> checkout(q, index)
            end

          [] ->
            checkout(q, index)
        end
    end
  end

  @doc "Whether entries are waiting."
  @spec pending?(t()) :: boolean()
  def pending?(q), do: :ets.first(q.queue) != :"$end_of_table"

  @doc "Worker `index` is done with `entry` (ingested, or given up on)."
  @spec done(t(), non_neg_integer(), entry()) :: :ok
  def done(q, index, entry) do
    :ets.delete(q.inflight, index)
    release(q, entry.size)
  end

  @doc "Put worker `index`'s in-flight `entry` back in the queue unchanged (retry later)."
  @spec putback(t(), non_neg_integer(), entry()) :: :ok
  def putback(q, index, entry) do
    :ets.insert(q.queue, {entry.seq, entry})
    :ets.delete(q.inflight, index)
    :ok
  end

  @doc """
  On a worker's start: what its previous incarnation left in flight. Returns
  `{:requeued, entry}` (queued again, one more attempt counted), `{:failed, entry}`
  (it was the last attempt: the caller must give up on it), or `:none`.
  """
  @spec recover(t(), non_neg_integer()) :: {:requeued, entry()} | {:failed, entry()} | :none
  def recover(q, index) do
    case :ets.lookup(q.inflight, index) do
      [] ->
        :none

      [{^index, entry}] ->
        entry = %{entry | attempts: entry.attempts + 1}

        if entry.attempts >= @max_attempts do
          {:failed, entry}
        else
          putback(q, index, entry)
          {:requeued, entry}
        end
    end
  end

  @doc "Queue depth, bytes and spool bytes."
  @spec sizes(t()) :: %{queue_depth: non_neg_integer(), queue_bytes: non_neg_integer(), spool_bytes: non_neg_integer()}
  def sizes(q), do: %{queue_depth: get(q, @depth), queue_bytes: get(q, @bytes), spool_bytes: get(q, @spool_bytes)}

  defp get(q, i), do: :atomics.get(q.atomics, i)

  # ------------------------------------------------------------------ owner

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)

    q = %__MODULE__{
      store: opts.name,
      queue: :ets.new(:ingest_queue, [:ordered_set, :public, write_concurrency: true, read_concurrency: true]),
      inflight: :ets.new(:ingest_inflight, [:set, :public, write_concurrency: true]),
      atomics: :atomics.new(4, signed: true),
      stats: IngestStats.new(),
      meta_cache: :ets.new(:ingest_metadata, [:set, :public, read_concurrency: true]),
      log_limit: :atomics.new(3, signed: true),
      max_bodies: opts.ingest_queue_max_bodies,
      max_bytes: opts.ingest_queue_max_bytes,
      spool_dir: if(opts.mode == :memory, do: nil, else: Spool.dir(opts.data_dir)),
      sync?: opts.fsync == :always,
      workers: opts.ingest_workers,
      ingest_fun: opts.ingest_fun || (&TimelessMetrics.Ingest.ingest/4)
    }

    case replay(q) do
      :ok ->
        :persistent_term.put(key(q.store), q)
        {:ok, q}

      {:error, reason} ->
        {:stop, {:io, "ingest spool #{q.spool_dir}: #{:file.format_error(reason)}"}}
    end
  end

  defp replay(%{spool_dir: nil}), do: :ok

  defp replay(q) do
    with :ok <- Spool.init(q.spool_dir) do
      {files, _bad} = Spool.scan(q.spool_dir)

      for {seq, path, size} <- files do
        entry = %{seq: seq, format: nil, opts: nil, body: nil, path: path, size: size, spool_size: size, attempts: 0}
        :ets.insert(q.queue, {seq, entry})
        :atomics.add(q.atomics, @depth, 1)
        :atomics.add(q.atomics, @bytes, size)
        :atomics.add(q.atomics, @spool_bytes, size)
      end

      last = files |> List.last() |> then(fn nil -> 0; {seq, _, _} -> seq end)
      :atomics.put(q.atomics, @seq, last)

      if files != [] do
        Logger.info("TimelessMetrics #{inspect(q.store)}: replaying #{length(files)} spooled ingest bodies")
      end

      :ok
    end
  end

  @impl true
  def terminate(_reason, q) do
    :persistent_term.erase(key(q.store))
  end
end
