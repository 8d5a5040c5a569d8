defmodule TimelessMetrics do
  @moduledoc """
  An embedded time-series database: add a store to your supervision tree, write
  samples, read them back raw or aggregated. The engine is Rust (`native/`).

      children = [
        {TimelessMetrics, name: :metrics, data_dir: "/var/lib/metrics"}
        # or, for tests and ephemeral services:
        # {TimelessMetrics, name: :metrics, mode: :memory}
      ]

      iex> {:ok, _} = TimelessMetrics.start_link(name: :doc_store, mode: :memory)
      iex> TimelessMetrics.write(:doc_store, "cpu_usage", %{"host" => "web-1"}, 42.5, 1_700_000_000)
      :ok
      iex> TimelessMetrics.query(:doc_store, "cpu_usage", %{"host" => "web-1"}, from: 1_700_000_000, to: 1_700_000_060)
      {:ok, [{1_700_000_000, 42.5}]}

  ## Conventions
  - Timestamps are unix **seconds** by default (as `System.os_time(:second)` gives);
    pass `unit: :millisecond` to write and read milliseconds. Floats are accepted
    (fractions of a second). A write without a timestamp gets the current time.
  - Values are numbers; `:nan`, `:infinity`, `:neg_infinity` and `:stale`
    (Prometheus's staleness marker) stand for the IEEE specials, on the way in and out.
  - Labels are a map or keyword list; the metric name is stored as the label
    `__name__`. Label names follow Prometheus (`[a-zA-Z_][a-zA-Z0-9_]*`); an empty
    value means the label is absent.
  - Label filters (`query_multi/4`, `label_values/3`...) are a map of exact values or a
    list of `{label, op, value}` with op `:eq | :ne | :re | :nre` (see `TimelessMetrics.Matchers`).
  - Every function returns `:ok`, `{:ok, value}` or `{:error, reason}`, where `reason`
    is `{kind, message}` (`kind` in `:bad_input, :limit_exceeded, :unavailable, :corrupt,
    :io, :internal`...) or, from `start_link/1`, `:locked` or `{:invalid_option, key, message}`.

  ## Batches
  `write_batch/3` and `write_resolved/3` validate the whole batch first: one bad entry
  refuses the batch with `{:error, {:bad_input, "entry N: ..."}}` and nothing of it is
  written (not even its new series). Nothing stored earlier is affected.
  """

  alias TimelessMetrics.{Engine, Matchers, Native, Options, Points}

  @type store :: atom()
  @type labels :: %{optional(String.t() | atom()) => String.t()} | keyword()
  @type value :: number() | :nan | :infinity | :neg_infinity | :stale
  @type timestamp :: number()
  @type filter :: labels() | Matchers.t()
  @type reason :: Engine.reason() | {:invalid_option, atom(), String.t()}
  @type series :: %{metric: String.t(), labels: %{String.t() => String.t()}}

  @doc false
  def child_spec(opts) do
    %{
      id: {__MODULE__, Keyword.get(opts, :name)},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  @doc """
  Start a store (see `TimelessMetrics.Options` for every option).

  Returns `{:error, :locked}` when another store has `data_dir` open and
  `{:error, {:invalid_option, key, message}}` for a bad option.
  """
  @spec start_link(keyword()) :: Supervisor.on_start() | {:error, reason()}
  def start_link(opts) do
    with {:ok, opts} <- Options.validate(opts) do
      case TimelessMetrics.Supervisor.start_link(opts) do
        {:error, {:shutdown, {:failed_to_start_child, _child, reason}}} -> {:error, reason}
        other -> other
      end
    end
  end

  @doc "Stop a store: flushes buffered points to chunks and releases its directory."
  @spec stop(store()) :: :ok
  def stop(store) do
    Supervisor.stop(TimelessMetrics.Supervisor.child_name(store, :supervisor))
  end

  # ---------------------------------------------------------------- writes

  @doc """
  Write one sample. The fifth argument is a timestamp or options
  (`timestamp:`, `unit: :second | :millisecond`).

      iex> TimelessMetrics.write(:metrics, "mem_used_bytes", %{"host" => "a"}, 1024)
      :ok
  """
  @spec write(store(), String.t(), labels(), value(), timestamp() | keyword()) :: :ok | {:error, reason()}
  def write(store, metric, labels, value, ts_or_opts \\ []) do
    {ts, unit} = ts_and_unit(ts_or_opts)
    entry = if ts == nil, do: {metric, labels, value}, else: {metric, labels, value, ts}

    with {:ok, h} <- Engine.handle(store) do
      nif = if h.fsync == :always, do: &Native.write_batch/3, else: &Native.write_small/3
      Engine.wrap(fn -> nif.(h.ref, [entry], unit) end)
    end
  end

  @doc """
  Write many samples in one call: `[{metric, labels, value}]` or
  `[{metric, labels, value, timestamp}]`. The primary high-throughput path.

      iex> TimelessMetrics.write_batch(:metrics, [{"cpu", %{"host" => "a"}, 1.0, 1_700_000_000},
      ...>                                          {"cpu", %{"host" => "b"}, 2.0, 1_700_000_000}])
      :ok
  """
  @spec write_batch(store(), list(), keyword()) :: :ok | {:error, reason()}
  def write_batch(store, entries, opts \\ []) do
    unit = unit_ms(opts)
    Engine.call(store, &Native.write_batch(&1, entries, unit))
  end

  @doc """
  The series id of a metric and label set, creating the series if needed, for
  `write_resolved/3,4`.

      iex> {:ok, id} = TimelessMetrics.resolve_series(:metrics, "cpu", %{"host" => "a"})
      iex> is_integer(id)
      true
  """
  @spec resolve_series(store(), String.t(), labels()) :: {:ok, non_neg_integer()} | {:error, reason()}
  def resolve_series(store, metric, labels), do: Engine.call(store, &Native.resolve(&1, metric, labels))

  @doc """
  Write to resolved series: either one sample `write_resolved(store, id, value)` /
  `write_resolved(store, id, value, timestamp_or_opts)`, a batch
  `write_resolved(store, [{id, value} | {id, value, timestamp}], opts)`, or a columnar
  batch `write_resolved(store, {ids, timestamps, values}, opts)`: three binaries of
  little-endian 64-bit numbers (unsigned ids, signed timestamps in `unit`, floats), the
  fastest way in (no term per point). A columnar batch with a bad entry is refused
  whole, like the others.

  A list batch is decoded and checked whole on the caller's scheduler, then written
  in slices of a few thousand points; a long batch yields between slices (it never
  holds a scheduler much over a millisecond), so a concurrent reader can see part of
  it before the call returns, and a store stopped meanwhile answers
  `{:error, {:unavailable, _}}` with the slices before kept. With `fsync: :always`
  the write runs on a dirty I/O scheduler.

      iex> {:ok, id} = TimelessMetrics.resolve_series(:metrics, "cpu", %{"host" => "a"})
      iex> TimelessMetrics.write_resolved(:metrics, [{id, 1.0, 1_700_000_000}, {id, 2.0, 1_700_000_010}])
      :ok
      iex> ids = <<id::little-64, id::little-64>>
      iex> ts = <<1_700_000_020::little-signed-64, 1_700_000_030::little-signed-64>>
      iex> TimelessMetrics.write_resolved(:metrics, {ids, ts, <<3.0::float-little-64, 4.0::float-little-64>>})
      :ok
  """
  @spec write_resolved(store(), non_neg_integer() | list() | {binary(), binary(), binary()}, value() | keyword()) ::
          :ok | {:error, reason()}
  def write_resolved(store, entries, opts \\ [])

  def write_resolved(store, entries, opts) when is_list(entries) do
    Engine.call(store, &Native.write_resolved(&1, entries, unit_ms(opts)))
  end

  def write_resolved(store, {ids, timestamps, values}, opts) when is_binary(ids) and is_binary(timestamps) and is_binary(values) do
    Engine.call(store, &Native.write_columns(&1, ids, timestamps, values, unit_ms(opts)))
  end

  def write_resolved(store, id, value) when is_integer(id), do: write_resolved(store, id, value, [])

  @spec write_resolved(store(), non_neg_integer(), value(), timestamp() | keyword()) :: :ok | {:error, reason()}
  def write_resolved(store, id, value, ts_or_opts) when is_integer(id) do
    {ts, unit} = ts_and_unit(ts_or_opts)
    entry = if ts == nil, do: {id, value}, else: {id, value, ts}
    Engine.call(store, &Native.write_resolved(&1, [entry], unit))
  end

  # ---------------------------------------------------------------- reads

  @doc """
  Raw points of one series (exact metric and label set) with `from <= t <= to`.
  Options: `from`, `to` (default: everything), `unit`.

      iex> TimelessMetrics.query(:metrics, "cpu", %{"host" => "a"}, from: 0)
      {:ok, [{1_700_000_000, 1.0}, {1_700_000_010, 2.0}]}
  """
  @spec query(store(), String.t(), labels(), keyword()) :: {:ok, [{integer(), Points.value()}]} | {:error, reason()}
  def query(store, metric, labels, opts \\ []) do
    unit = unit_ms(opts)
    {from, to} = range_ms(opts, unit)

    Engine.call(store, fn ref ->
      case Native.lookup(ref, metric, labels) do
        nil -> []
        {:error, _} = error -> error
        id -> Points.decode(Native.read_series(ref, id, from, to, unit))
      end
    end)
  end

  @doc """
  Raw points of every series of `metric` (nil = any) matching `filter`, with data
  in range. Returns `[%{metric: m, labels: %{...}, points: [{t, v}]}]`.

      iex> TimelessMetrics.query_multi(:metrics, "cpu", [{"host", :re, "a|b"}], from: 0)
      {:ok, [%{metric: "cpu", labels: %{"host" => "a"}, points: [{1_700_000_000, 1.0}]}]}
  """
  @spec query_multi(store(), String.t() | nil, filter(), keyword()) :: {:ok, [map()]} | {:error, reason()}
  def query_multi(store, metric, filter, opts \\ []) do
    unit = unit_ms(opts)
    {from, to} = range_ms(opts, unit)

    with {:ok, matchers} <- Matchers.build(metric, filter),
         {:ok, rows} <- Engine.call(store, &Native.read_many(&1, matchers, from, to, unit)) do
      {:ok, Enum.map(rows, fn {labels, bin} -> Map.put(series_map(labels), :points, Points.decode(bin)) end)}
    end
  end

  @doc """
  Bucketed aggregates of every series of `metric` matching `filter`, computed in the
  engine. Options: `from`, `to`, `step` (bucket width, in `unit`; default 60 s),
  `aggregate` (`:avg | :min | :max | :sum | :count | :first | :last | :rate | :increase`,
  default `:avg`), `unit`. Buckets are aligned to multiples of `step` since the epoch and
  labelled by their start; empty buckets are left out. `rate`/`increase` are
  counter-aware (resets add the new value), `rate` is per second.

      iex> TimelessMetrics.query_aggregate(:metrics, "cpu", %{}, from: 0, step: 60, aggregate: :max)
      {:ok, [%{metric: "cpu", labels: %{"host" => "a"}, buckets: [{1_699_999_980, 2.0}]}]}
  """
  @spec query_aggregate(store(), String.t() | nil, filter(), keyword()) :: {:ok, [map()]} | {:error, reason()}
  def query_aggregate(store, metric, filter, opts \\ []) do
    unit = unit_ms(opts)
    {from, to} = range_ms(opts, unit)
    step = Keyword.get(opts, :step, if(unit == 1, do: 60_000, else: 60))
    agg = Keyword.get(opts, :aggregate, :avg)

    with {:ok, matchers} <- Matchers.build(metric, filter),
         {:ok, step_ms} <- step_ms(step, unit),
         {:ok, rows} <- Engine.call(store, &Native.aggregate(&1, matchers, from, to, step_ms, to_string(agg), unit)) do
      {:ok, Enum.map(rows, fn {labels, bin} -> Map.put(series_map(labels), :buckets, Points.decode(bin)) end)}
    end
  end

  @doc """
  The newest point of one series, `{:ok, {timestamp, value}}`, or `{:ok, nil}` when
  it has none. With a list of matcher tuples instead of a label set, the newest point
  of every matching series: `{:ok, [%{metric:, labels:, timestamp:, value:}]}`.

      iex> TimelessMetrics.latest(:metrics, "cpu", %{"host" => "a"})
      {:ok, {1_700_000_010, 2.0}}
  """
  @spec latest(store(), String.t() | nil, labels() | Matchers.t(), keyword()) :: {:ok, term()} | {:error, reason()}
  def latest(store, metric, labels, opts \\ []) do
    unit = unit_ms(opts)

    if matcher_list?(labels) do
      with {:ok, matchers} <- Matchers.build(metric, labels),
           {:ok, rows} <- Engine.call(store, &Native.latest(&1, matchers, unit)) do
        {:ok, Enum.map(rows, fn {l, t, v} -> series_map(l) |> Map.merge(%{timestamp: t, value: v}) end)}
      end
    else
      Engine.call(store, fn ref ->
        case Native.lookup(ref, metric, labels) do
          nil -> nil
          {:error, _} = error -> error
          _id -> latest_exact(ref, metric, labels, unit)
        end
      end)
    end
  end

  defp latest_exact(ref, metric, labels, unit) do
    {:ok, matchers} = Matchers.build(metric, labels)

    case Native.latest(ref, matchers, unit) do
      {:error, _} = error ->
        error

      rows ->
        want = map_size(Map.new(labels, fn {k, v} -> {to_string(k), to_string(v)} end)) + 1

        Enum.find_value(rows, fn {l, t, v} -> if map_size(l) == want, do: {t, v} end)
    end
  end

  # ---------------------------------------------------------------- listings

  @doc """
  Metric names, sorted.

      iex> TimelessMetrics.list_metrics(:metrics)
      {:ok, ["cpu", "mem_used_bytes"]}
  """
  @spec list_metrics(store()) :: {:ok, [String.t()]} | {:error, reason()}
  def list_metrics(store), do: Engine.call(store, &Native.metric_names(&1, [], nil, nil))

  @doc """
  Series of a metric (or matching a filter, with `metric: nil`): `[%{metric:, labels:}]`.
  Options: `from`, `to` (series with data in range), `unit`.

      iex> TimelessMetrics.list_series(:metrics, "cpu")
      {:ok, [%{metric: "cpu", labels: %{"host" => "a"}}]}
  """
  @spec list_series(store(), String.t() | nil, filter(), keyword()) :: {:ok, [series()]} | {:error, reason()}
  def list_series(store, metric, filter \\ [], opts \\ []) do
    {from, to} = optional_range(opts)

    with {:ok, matchers} <- Matchers.build(metric, filter),
         {:ok, rows} <- Engine.call(store, &Native.series(&1, matchers, from, to)) do
      {:ok, Enum.map(rows, &series_map/1)}
    end
  end

  @doc """
  The series matching any of several filters, as the JSON success body of Prometheus's
  `/api/v1/series` (a binary), written by the engine: the union of the series each
  filter matches (as `list_series/4` with `metric: nil` would list them), each once,
  sorted by labels, every series an object of its labels with `__name__`. Options:
  `from`, `to` (series with data in range), `unit`, `limit` (the first `limit` series,
  then the warning `"results truncated due to limit"`; `nil` for all).

      iex> TimelessMetrics.series_json(:metrics, [[{"__name__", :eq, "cpu"}]])
      {:ok, ~s({"status":"success","data":[{"host":"a","__name__":"cpu"}]})}
  """
  @spec series_json(store(), [filter()], keyword()) :: {:ok, binary()} | {:error, reason()}
  def series_json(store, filters, opts \\ []) do
    {from, to} = optional_range(opts)
    limit = Keyword.get(opts, :limit)

    with {:ok, selectors} <- normalize_each(filters) do
      Engine.call(store, fn ref ->
        # a selection too large for the calling scheduler is answered on a dirty one
        case Native.series_json(ref, selectors, from, to, limit) do
          :dirty -> Native.series_json_dirty(ref, selectors, from, to, limit)
          answer -> answer
        end
      end)
    end
  end

  @doc """
  Label names (including `__name__`), sorted. Options: `match` (a filter), `from`, `to`, `unit`.

      iex> TimelessMetrics.label_names(:metrics)
      {:ok, ["__name__", "host"]}
  """
  @spec label_names(store(), keyword()) :: {:ok, [String.t()]} | {:error, reason()}
  def label_names(store, opts \\ []) do
    {from, to} = optional_range(opts)

    with {:ok, matchers} <- Matchers.normalize(Keyword.get(opts, :match, [])) do
      Engine.call(store, &Native.label_names(&1, matchers, from, to))
    end
  end

  @doc """
  Values of one label, sorted. Options: `match` (a filter), `from`, `to`, `unit`.

      iex> TimelessMetrics.label_values(:metrics, "host", match: [{"__name__", :eq, "cpu"}])
      {:ok, ["a"]}
  """
  @spec label_values(store(), String.t(), keyword()) :: {:ok, [String.t()]} | {:error, reason()}
  def label_values(store, name, opts \\ []) do
    {from, to} = optional_range(opts)

    with {:ok, matchers} <- Matchers.normalize(Keyword.get(opts, :match, [])) do
      Engine.call(store, &Native.label_values(&1, to_string(name), matchers, from, to))
    end
  end

  # ---------------------------------------------------------------- admin

  @doc """
  Figures about the store: `series`, `points` (stored + buffered), `points_stored`,
  `points_buffered`, `bytes_on_disk`, `bytes_per_point` (chunk bytes per stored point),
  `chunk_files`, `chunks`, `wal_bytes`, `oldest_timestamp`, `newest_timestamp` (seconds).

      iex> {:ok, info} = TimelessMetrics.info(:metrics)
      iex> info.series
      2
  """
  @spec info(store()) :: {:ok, map()} | {:error, reason()}
  def info(store) do
    with {:ok, i} <- Engine.call(store, &Native.store_info/1) do
      stored = i.points_stored

      {:ok,
       %{
         series: i.series,
         points: stored + i.points_buffered,
         points_stored: stored,
         points_buffered: i.points_buffered,
         chunk_files: i.chunk_files,
         chunks: i.chunks,
         bytes_on_disk: i.bytes_chunks + i.bytes_wal + i.bytes_series_log,
         chunk_bytes: i.bytes_chunks,
         bytes_per_point: if(stored > 0, do: i.bytes_chunks / stored, else: 0.0),
         wal_bytes: i.bytes_wal,
         series_log_bytes: i.bytes_series_log,
         oldest_timestamp: i.oldest_ms && div(i.oldest_ms, 1000),
         newest_timestamp: i.newest_ms && div(i.newest_ms, 1000)
       }}
    end
  end

  @doc """
  Flush every buffered point into compressed chunks (and drop the WAL they covered).

      iex> {:ok, %{points: _}} = TimelessMetrics.flush(:metrics)
  """
  @spec flush(store()) :: {:ok, map()} | {:error, reason()}
  def flush(store), do: Engine.call(store, &Native.store_flush/1)

  @doc "Merge chunk files: one run of chunks per series, duplicates and deleted series dropped."
  @spec merge(store()) :: {:ok, map()} | {:error, reason()}
  def merge(store), do: Engine.call(store, &Native.store_merge/1)

  @doc """
  Delete every series matching a filter (at least one matcher). Returns how many.

      iex> TimelessMetrics.delete_series(:metrics, [{"__name__", :eq, "cpu"}])
      {:ok, 1}
  """
  @spec delete_series(store(), filter()) :: {:ok, non_neg_integer()} | {:error, reason()}
  def delete_series(store, filter) do
    with {:ok, matchers} <- Matchers.normalize(filter) do
      Engine.call(store, &Native.delete_series(&1, matchers))
    end
  end

  # ---------------------------------------------------------------- helpers

  defp series_map(labels) do
    {metric, rest} = Map.pop(labels, "__name__")
    %{metric: metric, labels: rest}
  end

  defp normalize_each(filters) do
    Enum.reduce_while(filters, {:ok, []}, fn filter, {:ok, acc} ->
      case Matchers.normalize(filter) do
        {:ok, matchers} -> {:cont, {:ok, [matchers | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, all} -> {:ok, Enum.reverse(all)}
      error -> error
    end
  end

  defp matcher_list?(l) when is_list(l), do: Enum.any?(l, &match?({_, _, _}, &1))
  defp matcher_list?(_), do: false

  defp unit_ms(opts) when is_list(opts) do
    case Keyword.get(opts, :unit, :second) do
      :second -> 1000
      :millisecond -> 1
      other -> raise ArgumentError, "unit must be :second or :millisecond, got #{inspect(other)}"
    end
  end

  defp ts_and_unit(ts) when is_number(ts), do: {ts, 1000}
  defp ts_and_unit(opts) when is_list(opts), do: {Keyword.get(opts, :timestamp), unit_ms(opts)}
  defp ts_and_unit(other), do: {other, 1000}

  @min_ms -9_223_372_036_854_775_808
  @max_ms 9_223_372_036_854_775_807

  defp range_ms(opts, unit) do
    {to_ms(Keyword.get(opts, :from), unit, @min_ms), to_ms(Keyword.get(opts, :to), unit, @max_ms)}
  end

  defp optional_range(opts) do
    unit = unit_ms(opts)
    {to_ms(Keyword.get(opts, :from), unit, nil), to_ms(Keyword.get(opts, :to), unit, nil)}
  end

  defp to_ms(nil, _unit, default), do: default
  defp to_ms(t, unit, _default) when is_integer(t), do: clamp(t * unit)
  defp to_ms(t, unit, _default) when is_float(t), do: clamp(round(t * unit))
  defp to_ms(t, _unit, _default), do: raise(ArgumentError, "time must be a number, got #{inspect(t)}")

  defp clamp(ms), do: ms |> max(@min_ms) |> min(@max_ms)

  defp step_ms(step, unit) when is_number(step) and step > 0, do: {:ok, round(step * unit)}
  defp step_ms(step, _unit), do: {:error, {:bad_input, "step must be a positive number, got #{inspect(step)}"}}
end
