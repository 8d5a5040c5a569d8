defmodule TimelessMetrics.HTTP.Query do
  @moduledoc """
  `/api/v1/query` and `/api/v1/query_range`, answering Prometheus-shaped JSON.

  With a `query=` parameter the request is PromQL and goes to `promql/2`, which
  hands it to `TimelessMetrics.HTTP.PromQL`. Otherwise it is the **native** form:

  - series: `metric=<name>` plus `label.<name>=<value>` filters, and/or any number of
    `match[]=<selector>`; the results are united;
  - `from`/`to` (or `start`/`end`): unix seconds with fractions, or RFC 3339;
  - `step`: seconds or a duration (`30s`, `5m`); `aggregate`: `avg | min | max | sum |
    count | first | last | rate | increase`.

  `query_range` (`resultType` `matrix`): without `step` and `aggregate` the raw points
  of `[from, to]` (default: the last hour); with either, the engine's epoch-aligned
  buckets (`step` default 60 s, `aggregate` default `avg`), labelled by their start.

  `query` (`resultType` `vector`): the window is `[from, to]`, `to` defaulting to
  `time` (default now) and `from` to 5 minutes before `to`. Without `aggregate`, the
  newest point of each series in the window, at its own timestamp; with it, one
  value over the window, stamped `to`.

      $ curl 'localhost:8428/api/v1/query_range?metric=cpu&label.host=a&from=1700000000&to=1700003600&step=5m&aggregate=max'
      {"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"cpu","host":"a"},"values":[[1700000100,"0.5"], ...]}]}}
  """

  alias TimelessMetrics.HTTP.{Errors, JSON, Params, Request, Window}

  @aggregates ~w(avg min max sum count first last rate increase)
  @aggregate_atoms Map.new(@aggregates, &{&1, String.to_atom(&1)})
  @lookback_ms 300_000
  @default_range_ms 3_600_000
  @max_points_per_series 11_000

  @doc "`/api/v1/query`: an instant vector."
  @spec instant(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def instant(request, config) do
    if promql?(request), do: promql(request, config), else: native_instant(request, config)
  end

  @doc "`/api/v1/query_range`: a range matrix."
  @spec range(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def range(request, config) do
    if promql?(request), do: promql(request, config), else: native_range(request, config)
  end

  @doc """
  The PromQL hook: every request with a `query=` parameter comes here and goes to
  `TimelessMetrics.HTTP.PromQL` (`request.route` tells instant from range).
  """
  @spec promql(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def promql(%{route: "/api/v1/query_range"} = request, config), do: TimelessMetrics.HTTP.PromQL.range(request, config)
  def promql(request, config), do: TimelessMetrics.HTTP.PromQL.instant(request, config)

  defp promql?(request), do: Request.param(request, "query") not in [nil, ""]

  # ------------------------------------------------------------------ native range

  defp native_range(request, config) do
    now = System.os_time(:millisecond)

    with {:ok, selectors} <- selectors(request),
         {:ok, to} <- Params.time(request, ["to", "end"], now),
         {:ok, from} <- Params.time(request, ["from", "start"], to - @default_range_ms),
         :ok <- ordered(from, to),
         {:ok, step} <- Params.duration(request, "step", nil),
         {:ok, agg} <- aggregate(request),
         :ok <- resolution(from, to, step),
         {:ok, series} <- fetch_range(config.store, selectors, from, to, step, agg) do
      result =
        for s <- series, values = samples(s), values != [] do
          %{"metric" => metric_labels(s), "values" => values}
        end

      JSON.ok(%{"resultType" => "matrix", "result" => result})
    else
      {:error, reason} -> Errors.response(reason)
    end
  end

  defp fetch_range(store, selectors, from, to, nil, nil) do
    union(selectors, &TimelessMetrics.query_multi(store, nil, &1, from: from, to: to, unit: :millisecond))
  end

  defp fetch_range(store, selectors, from, to, step, agg) do
    opts = [from: from, to: to, step: step || 60_000, aggregate: agg || :avg, unit: :millisecond]

    with {:ok, series} <- union(selectors, &TimelessMetrics.query_aggregate(store, nil, &1, opts)) do
      {:ok, Enum.map(series, fn s -> s |> Map.put(:points, s.buckets) |> Map.delete(:buckets) end)}
    end
  end

  defp resolution(_from, _to, nil), do: :ok

  defp resolution(from, to, step) do
    if div(to - from, step) > @max_points_per_series,
      do: {:error, {:bad_input, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}},
      else: :ok
  end

  # ------------------------------------------------------------------ native instant

  defp native_instant(request, config) do
    now = System.os_time(:millisecond)

    with {:ok, selectors} <- selectors(request),
         {:ok, time} <- Params.time(request, ["time"], now),
         {:ok, to} <- Params.time(request, ["to", "end"], time),
         {:ok, from} <- Params.time(request, ["from", "start"], to - @lookback_ms),
         :ok <- ordered(from, to),
         {:ok, agg} <- aggregate(request),
         {:ok, series} <-
           union(selectors, &TimelessMetrics.query_multi(config.store, nil, &1, from: from, to: to, unit: :millisecond)) do
      result =
        for s <- series, sample = instant_sample(s.points, agg, from, to), sample != nil do
          %{"metric" => metric_labels(s), "value" => sample}
        end

      JSON.ok(%{"resultType" => "vector", "result" => result})
    else
      {:error, reason} -> Errors.response(reason)
    end
  end

  defp instant_sample(points, nil, _from, _to) do
    case for({t, v} <- points, v != :stale, do: {t, v}) |> List.last() do
      nil -> nil
      {t, v} -> [JSON.timestamp(t), JSON.format_value(v)]
    end
  end

  defp instant_sample(points, agg, from, to) do
    case Window.aggregate(points, agg, max(to - from, 1)) do
      nil -> nil
      v -> [JSON.timestamp(to), JSON.format_value(v)]
    end
  end

  # ------------------------------------------------------------------ shared

  @label_name ~r/^[a-zA-Z_][a-zA-Z0-9_]*$/

  # The native series parameters as a list of matcher lists.
  defp selectors(request) do
    filters =
      for {"label." <> name, values} <- request.query, value <- values, do: {name, :eq, value}

    metric = Request.param(request, "metric")

    with :ok <- label_names(filters),
         {:ok, matched} <- Params.selectors(request, "match[]") do
      native =
        cond do
          metric not in [nil, ""] -> [[{"__name__", :eq, metric} | filters]]
          filters != [] -> [filters]
          true -> []
        end

      case native ++ matched do
        [] -> {:error, {:bad_input, "missing parameter: give metric= (with optional label.<name>= filters), match[] or query="}}
        all -> {:ok, all}
      end
    end
  end

  defp label_names(filters) do
    case Enum.find(filters, fn {name, _, _} -> not Regex.match?(@label_name, name) end) do
      nil -> :ok
      {name, _, _} -> Params.bad("label." <> name, "invalid label name #{inspect(name)}")
    end
  end

  defp aggregate(request) do
    case Request.param(request, "aggregate") do
      nil -> {:ok, nil}
      "" -> {:ok, nil}
      name when is_map_key(@aggregate_atoms, name) -> {:ok, Map.fetch!(@aggregate_atoms, name)}
      other -> Params.bad("aggregate", "unknown aggregate #{inspect(other)}; expected one of #{Enum.join(@aggregates, ", ")}")
    end
  end

  defp ordered(from, to) when from <= to, do: :ok
  defp ordered(_from, _to), do: {:error, {:bad_input, "invalid parameter \"end\": end timestamp must not be before start time"}}

  @doc false
  # Series of every selector, each label set once, sorted by labels.
  @spec union([list()], (list() -> {:ok, [map()]} | {:error, term()})) :: {:ok, [map()]} | {:error, term()}
  def union(selectors, fetch) do
    Enum.reduce_while(selectors, {:ok, %{}}, fn matchers, {:ok, acc} ->
      case fetch.(matchers) do
        {:ok, rows} -> {:cont, {:ok, Enum.reduce(rows, acc, &Map.put_new(&2, series_key(&1), &1))}}
        {:error, _} = error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, by_key} -> {:ok, by_key |> Enum.sort_by(fn {k, _} -> k end) |> Enum.map(fn {_, s} -> s end)}
      error -> error
    end
  end

  defp series_key(%{metric: m, labels: labels}), do: Enum.sort([{"__name__", m} | Map.to_list(labels)])

  defp metric_labels(%{metric: nil, labels: labels}), do: labels
  defp metric_labels(%{metric: m, labels: labels}), do: Map.put(labels, "__name__", m)

  defp samples(%{points: points}) do
    for {t, v} <- points, v != :stale, do: [JSON.timestamp(t), JSON.format_value(v)]
  end
end
