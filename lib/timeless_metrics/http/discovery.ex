defmodule TimelessMetrics.HTTP.Discovery do
  @moduledoc """
  Prometheus's metadata and discovery API (the calls Grafana's query editor makes),
  under `/api/v1/...` and `/prometheus/api/v1/...`, GET or POST with a form body:

  | endpoint | parameters | data |
  |---|---|---|
  | `labels` | `match[]`, `start`, `end`, `limit` | label names, sorted |
  | `label/:name/values` | `match[]`, `start`, `end`, `limit` | values of one label, sorted |
  | `series` | `match[]` (required), `start`, `end`, `limit` | `[{"__name__": ..., label: value}]` |
  | `metadata` | `metric`, `limit` | `{"metric": [{"type", "help", "unit"}]}` from the `metric_metadata` table |
  | `query_exemplars` | | `[]` (no exemplars are stored) |
  | `status/buildinfo` | | `version` (the Prometheus API level served), `revision`, `branch`, `buildUser`, `buildDate`, `goVersion` |
  | `status/tsdb` | `limit` (default 10) | `headStats` and the top series counts |

  A `limit` that cuts the answer adds the warning `"results truncated due to limit"`.

      $ curl 'localhost:8428/prometheus/api/v1/label/job/values?match[]=up&start=1700000000'
      {"status":"success","data":["api","db"]}
  """

  alias TimelessMetrics.HTTP.{Errors, JSON, Params, Request}

  @prometheus_api_version "2.42.0"
  @build_date Calendar.strftime(DateTime.utc_now(), "%Y%m%d-%H:%M:%S")
  @revision (try do
               case System.cmd("git", ["rev-parse", "HEAD"], stderr_to_stdout: true) do
                 {sha, 0} -> String.trim(sha)
                 _ -> "unknown"
               end
             rescue
               _ -> "unknown"
             end)

  @label_name ~r/^[a-zA-Z_][a-zA-Z0-9_]*$/

  @doc "`labels`: label names."
  @spec labels(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def labels(request, config) do
    with {:ok, selectors, range} <- selectors_and_range(request, required: false),
         {:ok, limit} <- Params.limit(request),
         {:ok, names} <- each_selector(selectors, &TimelessMetrics.label_names(config.store, [match: &1] ++ range)) do
      respond_list(names, limit)
    end
    |> or_error()
  end

  @doc "`label/:name/values`: values of one label (`__name__` gives metric names)."
  @spec label_values(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def label_values(request, config) do
    name = request.path_params["name"]

    with :ok <- label_name(name),
         {:ok, selectors, range} <- selectors_and_range(request, required: false),
         {:ok, limit} <- Params.limit(request),
         {:ok, values} <-
           each_selector(selectors, &TimelessMetrics.label_values(config.store, name, [match: &1] ++ range)) do
      respond_list(values, limit)
    end
    |> or_error()
  end

  @doc """
  `series`: label sets of the series matching `match[]`. The body is written by the
  engine (`TimelessMetrics.series_json/3`), byte for byte what encoding the union of
  `TimelessMetrics.list_series/4` over the selectors would give.
  """
  @spec series(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def series(request, config) do
    with {:ok, selectors, range} <- selectors_and_range(request, required: true),
         {:ok, limit} <- Params.limit(request),
         {:ok, body} <- TimelessMetrics.series_json(config.store, selectors, [limit: limit] ++ range) do
      {200, [{"content-type", JSON.content_type()}], body}
    end
    |> or_error()
  end

  @doc "`metadata`: TYPE/HELP/UNIT per metric family, from the `metric_metadata` table."
  @spec metadata(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def metadata(request, config) do
    metric = Request.param(request, "metric")
    metric = if metric == "", do: nil, else: metric

    with {:ok, limit} <- Params.limit(request),
         {:ok, %{rows: rows}} <-
           TimelessMetrics.DB.query(
             config.store,
             "SELECT metric_name, type, help, unit FROM metric_metadata " <>
               "WHERE ?1 IS NULL OR metric_name = ?1 ORDER BY metric_name LIMIT ?2",
             [metric, limit || -1]
           ) do
      data = Map.new(rows, fn [name, type, help, unit] -> {name, [%{"type" => type, "help" => help, "unit" => unit}]} end)
      JSON.ok(data)
    end
    |> or_error()
  end

  @doc "`query_exemplars`: always an empty list; exemplars are not stored."
  @spec exemplars(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def exemplars(_request, _config), do: JSON.ok([])

  @doc "`status/buildinfo`: the fields Grafana reads to detect the server."
  @spec buildinfo(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def buildinfo(_request, _config) do
    JSON.ok(%{
      "version" => @prometheus_api_version,
      "revision" => @revision,
      "branch" => "main",
      "buildUser" => "timeless_metrics",
      "buildDate" => @build_date,
      "goVersion" => "none (Erlang/OTP #{System.otp_release()})",
      "application" => "timeless_metrics",
      "applicationVersion" => to_string(Application.spec(:timeless_metrics, :vsn) || "unknown")
    })
  end

  @doc "`status/tsdb`: cardinality statistics, top `limit` (default 10) entries per list."
  @spec tsdb(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def tsdb(request, config) do
    with {:ok, limit} <- Params.limit(request),
         {:ok, info} <- TimelessMetrics.info(config.store),
         {:ok, series} <- TimelessMetrics.list_series(config.store, nil, []) do
      top = limit || 10
      label_sets = Enum.map(series, &Map.put(&1.labels, "__name__", &1.metric))
      pairs = Enum.flat_map(label_sets, &Map.to_list/1)
      by_name = Enum.group_by(pairs, &elem(&1, 0), &elem(&1, 1))

      JSON.ok(%{
        "headStats" => %{
          "numSeries" => info.series,
          "numLabelPairs" => pairs |> Enum.uniq() |> length(),
          "chunkCount" => info.chunks,
          "minTime" => info.oldest_timestamp && info.oldest_timestamp * 1000,
          "maxTime" => info.newest_timestamp && info.newest_timestamp * 1000
        },
        "seriesCountByMetricName" => top_counts(Enum.frequencies_by(series, & &1.metric), top),
        "labelValueCountByLabelName" => top_counts(Map.new(by_name, fn {k, vs} -> {k, vs |> Enum.uniq() |> length()} end), top),
        "memoryInBytesByLabelName" => top_counts(Map.new(by_name, fn {k, vs} -> {k, vs |> Enum.uniq() |> Enum.map(&byte_size/1) |> Enum.sum()} end), top),
        "seriesCountByLabelValuePair" => top_counts(Enum.frequencies_by(pairs, fn {k, v} -> "#{k}=#{v}" end), top)
      })
    end
    |> or_error()
  end

  # ------------------------------------------------------------------ helpers

  defp selectors_and_range(request, required: required) do
    with {:ok, selectors} <- Params.selectors(request, "match[]", required: required),
         {:ok, from} <- Params.time(request, ["start"], nil),
         {:ok, to} <- Params.time(request, ["end"], nil) do
      {:ok, selectors, [from: from, to: to, unit: :millisecond]}
    end
  end

  # Union of a listing over every selector (one call with no filter when there is none).
  defp each_selector([], fun), do: fun.([])

  defp each_selector(selectors, fun) do
    Enum.reduce_while(selectors, {:ok, []}, fn matchers, {:ok, acc} ->
      case fun.(matchers) do
        {:ok, items} -> {:cont, {:ok, items ++ acc}}
        error -> {:halt, error}
      end
    end)
  end

  defp respond_list(items, limit) do
    {kept, warnings} = items |> Enum.uniq() |> Enum.sort() |> Params.apply_limit(limit)
    JSON.ok(kept, warnings)
  end

  defp label_name(name) do
    if is_binary(name) and Regex.match?(@label_name, name),
      do: :ok,
      else: {:error, {:bad_input, "invalid label name: #{inspect(name)}"}}
  end

  defp top_counts(counts, n) do
    counts
    |> Enum.sort_by(fn {name, count} -> {-count, name} end)
    |> Enum.take(n)
    |> Enum.map(fn {name, count} -> %{"name" => name, "value" => count} end)
  end

  defp or_error({:error, reason}), do: Errors.response(reason)
  defp or_error(response), do: response
end
