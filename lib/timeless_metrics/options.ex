defmodule TimelessMetrics.Options do
  @moduledoc """
  Validation of the options of a store, with an error that names the bad option.

      iex> {:ok, opts} = TimelessMetrics.Options.validate(name: :m, mode: :memory)
      iex> opts.fsync
      :interval
      iex> TimelessMetrics.Options.validate(name: :m, mode: :memory, fsync: :sometimes)
      {:error, {:invalid_option, :fsync, "expected one of :interval, :always, :never, got :sometimes"}}

  | option | default | meaning |
  |---|---|---|
  | `:name` | required | atom naming the store; every API call takes it |
  | `:data_dir` | required on disk | directory of the store |
  | `:mode` | `:disk` | `:memory` keeps everything in RAM, writes no file |
  | `:engine` | `:rust` | the only engine |
  | `:fsync` | `:interval` | `:interval` (every `:fsync_interval` ms), `:always` (before each write returns), `:never` |
  | `:fsync_interval` | `1000` | ms |
  | `:max_labels` | `30` | labels per series besides the metric name |
  | `:max_label_length` | `4096` | bytes per label name or value |
  | `:max_points_per_series` | `8192` | a series buffer this full is flushed on the next tick |
  | `:max_chunk_points` | `8192` | points per chunk |
  | `:flush_interval` | `600_000` | ms; the head is flushed when its oldest write is older |
  | `:max_buffered_points` | `33_554_432` | the head is flushed when it holds more points |
  | `:max_chunk_files` | `64` | chunk files are merged when there are more |
  | `:maintenance_interval` | `1000` | ms between maintenance ticks |
  | `:ingest_workers` | schedulers online | processes draining the ingest queue (`TimelessMetrics.IngestWorker`) |
  | `:ingest_queue_max_bodies` | `8192` | bodies accepted but not yet ingested; more are refused with 429 |
  | `:ingest_queue_max_bytes` | `16_777_216` | decompressed bytes of those bodies (they are in memory until ingested); a request over it waits up to `ingest_queue_wait`, then gets 429 |
  | `:ingest_queue_wait` | `5_000` | ms a request may wait for the byte bound (`0`: refuse at once) |
  | `:ingest_fun` | `nil` | tests only: a `fn store, format, body, opts -> {:ok, report} \| {:error, reason} end` used by the ingest workers instead of `TimelessMetrics.Ingest.ingest/4` |
  """

  import TimelessMetrics.OptionCheck, only: [check: 3, known_keys: 2, positive: 2]

  @type t :: %{atom() => term()}

  @defaults %{
    mode: :disk,
    engine: :rust,
    data_dir: nil,
    fsync: :interval,
    fsync_interval: 1000,
    max_labels: 30,
    max_label_length: 4096,
    max_points_per_series: 8192,
    max_chunk_points: 8192,
    flush_interval: 600_000,
    max_buffered_points: 33_554_432,
    max_chunk_files: 64,
    maintenance_interval: 1000,
    ingest_workers: nil,
    ingest_queue_max_bodies: 8192,
    # 16 MiB keeps two workers fed with 1 MiB batches; 64 MiB cost ~45 MiB more peak RSS
    # in bulk ingest at no measured throughput gain (bench/results/rss-breakdown-*.md)
    ingest_queue_max_bytes: 16_777_216,
    ingest_queue_wait: 5_000,
    ingest_fun: nil
  }

  @doc "Validate keyword options into a map with defaults filled in."
  @spec validate(keyword()) :: {:ok, t()} | {:error, {:invalid_option, atom(), String.t()}}
  def validate(opts) when is_list(opts) do
    with :ok <- known_keys(opts, [:name | Map.keys(@defaults)]),
         :ok <- check(:name, Keyword.has_key?(opts, :name), "required"),
         opts = Map.merge(@defaults, Map.new(opts)),
         opts = Map.update!(opts, :ingest_workers, &(&1 || System.schedulers_online())),
         :ok <- check(:name, store_name?(opts.name), "expected an atom naming the store, got #{inspect(opts.name)}"),
         :ok <- check_engine(opts.engine),
         :ok <- check(:mode, opts.mode in [:disk, :memory], "expected :disk or :memory, got #{inspect(opts.mode)}"),
         :ok <- check_data_dir(opts),
         :ok <- check(:fsync, opts.fsync in [:interval, :always, :never], "expected one of :interval, :always, :never, got #{inspect(opts.fsync)}"),
         :ok <- positive(opts, [:fsync_interval, :max_labels, :max_label_length, :max_points_per_series,
                                :max_chunk_points, :flush_interval, :max_buffered_points, :max_chunk_files,
                                :maintenance_interval, :ingest_workers, :ingest_queue_max_bodies,
                                :ingest_queue_max_bytes]),
         :ok <- check(:ingest_queue_wait, is_integer(opts.ingest_queue_wait) and opts.ingest_queue_wait >= 0,
                      "expected a non-negative integer (ms), got #{inspect(opts.ingest_queue_wait)}"),
         :ok <- check(:ingest_fun, opts.ingest_fun == nil or is_function(opts.ingest_fun, 4),
                      "expected nil or a function of arity 4, got #{inspect(opts.ingest_fun)}") do
      {:ok, opts}
    end
  end

  def validate(other), do: {:error, {:invalid_option, :options, "expected a keyword list, got #{inspect(other)}"}}

  defp store_name?(name), do: is_atom(name) and name not in [nil, true, false]

  defp check_engine(:rust), do: :ok

  defp check_engine(:legacy),
    do: {:error, {:invalid_option, :engine, "the legacy engine is not part of this project; use engine: :rust (the default)"}}

  defp check_engine(other), do: {:error, {:invalid_option, :engine, "expected :rust, got #{inspect(other)}"}}

  defp check_data_dir(%{mode: :memory}), do: :ok

  defp check_data_dir(%{data_dir: dir}) when is_binary(dir) and dir != "", do: :ok

  defp check_data_dir(%{data_dir: nil}),
    do: {:error, {:invalid_option, :data_dir, "required unless mode: :memory"}}

  defp check_data_dir(%{data_dir: dir}),
    do: {:error, {:invalid_option, :data_dir, "expected a path string, got #{inspect(dir)}"}}

  @doc "The engine configuration map handed to the NIF."
  @spec engine_config(t()) :: map()
  def engine_config(opts) do
    %{
      data_dir: if(opts.mode == :memory, do: nil, else: Path.expand(opts.data_dir)),
      fsync: opts.fsync,
      fsync_interval_ms: opts.fsync_interval,
      max_labels: opts.max_labels,
      max_label_length: opts.max_label_length,
      max_points_per_series: opts.max_points_per_series,
      max_chunk_points: opts.max_chunk_points,
      flush_age_ms: opts.flush_interval,
      max_buffered_points: opts.max_buffered_points,
      max_chunk_files: opts.max_chunk_files
    }
  end
end
