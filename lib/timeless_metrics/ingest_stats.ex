defmodule TimelessMetrics.IngestStats do
  @moduledoc """
  Counters of a store's HTTP ingestion, updated lock-free (`:counters` and
  `:ets.update_counter/4`) by the request processes and `TimelessMetrics.IngestWorker`s,
  and read with `snapshot/1` (for `/health/detailed` and `/metrics`).

      TimelessMetrics.IngestStats.snapshot(:metrics)
      #=> %{queue_depth: 0, queue_bytes: 0, spool_bytes: 0, spool_pending: 0,
      #     requests: %{influx: 12, prometheus_text: 0, remote_write: 0, vm_json: 0},
      #     points: %{influx: 480, ...}, rejected: %{{:influx, :bad_value} => 1}, refused: %{}}

  The snapshot:

  - `queue_depth`, `queue_bytes`: bodies accepted and not yet ingested (queued or being
    ingested) and their decompressed bytes;
  - `requests`: ingest requests received, per format;
  - `points`: samples stored, per format;
  - `rejected`: `{format, reason} => n` lines/samples refused by the parsers (reason as
    the engine names it), plus whole bodies the engine could not decode
    (`{format, :bad_input}`...) or that crashed the workers (`{format, :worker_crash}`;
    format `:unknown` for a replayed body that could not be read back);
  - `refused`: `{format, reason} => n` requests answered with an error before queuing
    (`:bad_parameter`, `:bad_encoding`, `:too_large`, `:queue_full`, `:unavailable`);
  - `spool_bytes`: bytes of the spool's segment files on disk, `spool_pending`: spooled
    bodies not yet marked done (both 0 in memory mode).

  The counters live with the store's `TimelessMetrics.Ingest.Queue` and restart from
  zero when it restarts.
  """

  @formats [:vm_json, :prometheus_text, :influx, :remote_write]

  defstruct [:counters, :table]

  @type format :: :vm_json | :prometheus_text | :influx | :remote_write
  @type t :: %__MODULE__{counters: :counters.counters_ref(), table: :ets.tid()}
  @type snapshot :: %{
          queue_depth: non_neg_integer(),
          queue_bytes: non_neg_integer(),
          points: %{format() => non_neg_integer()},
          requests: %{format() => non_neg_integer()},
          rejected: %{{format(), atom()} => non_neg_integer()},
          refused: %{{format(), atom()} => non_neg_integer()},
          spool_bytes: non_neg_integer(),
          spool_pending: non_neg_integer()
        }

  @doc "The ingest formats, in counter order."
  @spec formats() :: [format()]
  def formats, do: @formats

  @doc "New counters; the calling process owns their table."
  @spec new() :: t()
  def new do
    %__MODULE__{
      counters: :counters.new(2 * length(@formats), [:write_concurrency]),
      table: :ets.new(__MODULE__, [:set, :public, write_concurrency: true, read_concurrency: true])
    }
  end

  @doc "Count one ingest request of `format`."
  @spec count_request(t(), format()) :: :ok
  def count_request(%__MODULE__{counters: c}, format), do: :counters.add(c, index(format) * 2 + 1, 1)

  @doc "Count `n` samples of `format` stored."
  @spec add_points(t(), format(), non_neg_integer()) :: :ok
  def add_points(%__MODULE__{counters: c}, format, n), do: :counters.add(c, index(format) * 2 + 2, n)

  @doc "Count `n` lines/samples/bodies of `format` rejected for `reason`."
  @spec add_rejected(t(), format(), atom(), non_neg_integer()) :: :ok
  def add_rejected(stats, format, reason, n), do: bump(stats, {:rejected, format, reason}, n)

  @doc "Count one request of `format` refused before queuing, for `reason`."
  @spec add_refused(t(), format(), atom()) :: :ok
  def add_refused(stats, format, reason), do: bump(stats, {:refused, format, reason}, 1)

  defp bump(%__MODULE__{table: t}, key, n) do
    :ets.update_counter(t, key, n, {key, 0})
    :ok
  end

  @doc "The ingest figures of a running store (all zero when it is not running)."
  @spec snapshot(atom()) :: snapshot()
  def snapshot(store) do
    case TimelessMetrics.Ingest.Queue.fetch(store) do
      {:ok, q} -> snapshot(q.stats, TimelessMetrics.Ingest.Queue.sizes(q))
      {:error, _} -> empty()
    end
  rescue
    # the queue restarted between the lookup and the read
    ArgumentError -> empty()
  end

  defp snapshot(%__MODULE__{counters: c, table: t}, sizes) do
    per_format = fn offset -> Map.new(@formats, fn f -> {f, :counters.get(c, index(f) * 2 + offset)} end) end
    rows = :ets.tab2list(t)

    Map.merge(sizes, %{
      requests: per_format.(1),
      points: per_format.(2),
      rejected: for({{:rejected, f, r}, n} <- rows, into: %{}, do: {{f, r}, n}),
      refused: for({{:refused, f, r}, n} <- rows, into: %{}, do: {{f, r}, n})
    })
  end

  defp empty do
    zeros = Map.new(@formats, &{&1, 0})
    %{queue_depth: 0, queue_bytes: 0, spool_bytes: 0, spool_pending: 0, requests: zeros, points: zeros, rejected: %{}, refused: %{}}
  end

  defp index(:vm_json), do: 0
  defp index(:prometheus_text), do: 1
  defp index(:influx), do: 2
  defp index(:remote_write), do: 3
end
