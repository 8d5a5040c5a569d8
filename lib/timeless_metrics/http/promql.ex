defmodule TimelessMetrics.HTTP.PromQL do
  @moduledoc """
  PromQL over Prometheus's HTTP API: `/api/v1/query` and `/api/v1/query_range`
  (also under `/prometheus`, GET or POST with a form body) when the request has a
  `query=` parameter. `TimelessMetrics.HTTP.Query` sends such requests here; the
  engine is `TimelessMetrics.PromQL` (or the server option `:promql_engine`).
  An engine that exports `instant_json/4` and `range_json/6` (as
  `TimelessMetrics.PromQL` does) writes the body itself, from the parsed query;
  otherwise `encode/1` below writes it from the result terms.

  Parameters and their checks follow Prometheus v2.53's `web/api/v1/api.go`, in its order:

  | endpoint | parameter | format |
  |---|---|---|
  | `query` | `time` (default now) | unix seconds (fractions allowed) or RFC 3339 |
  | `query_range` | `start`, `end` (required), `step` (required, > 0) | times as above; `step` in seconds (float) or a duration (`15s`) |
  | both | `timeout` | seconds or a duration; capped by the server's `:query_timeout` |
  | both | `lookback_delta` | seconds or a duration; 0 or absent means the server's `:lookback_delta` |

  The response is Prometheus's JSON, byte for byte where clients could tell:
  `{"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[1700000000.500,"1"]}]}}`:
  labels sorted by name, sample timestamps as `jsonutil.MarshalTimestamp` writes
  them, sample values as `jsonutil.MarshalFloat` (see
  `TimelessMetrics.HTTP.JSON.format_sample_value/1`), scalars and strings as
  `[1700000000.5,"1"]`, strings escaped as Go's `encoding/json` does, and
  `warnings`/`infos` when the engine returns some.

  Errors: `bad_data` 400 (parameters; parse errors as
  `invalid parameter "query": 1:5: parse error: ...`), `execution` 422, `timeout`
  503, `unavailable` 503 (also when no engine is compiled in).

      $ curl 'localhost:8428/api/v1/query?query=up&time=1700000000.5'
      {"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"api"},"value":[1700000000.500,"1"]}]}}
  """


  alias TimelessMetrics.HTTP.{Errors, JSON, Params, Request}
  alias TimelessMetrics.PromQL.{AST, Parser}

  @max_points_per_series 11_000
  # Time the HTTP layer waits beyond the engine's own timeout before giving up.
  @grace_ms 1_000

  @doc "`/api/v1/query` with `query=`: an instant query."
  @spec instant(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def instant(request, config) do
    query = Request.param(request, "query", "")

    with {:ok, time} <- time_param(request, "time", System.os_time(:millisecond)),
         {:ok, opts} <- query_opts(request, config),
         {:ok, ast} <- parse(query),
         {:ok, engine} <- engine(config) do
      if function_exported?(engine, :instant_json, 4),
        do: run(engine, fn -> encoded(engine.instant_json(config.store, ast, time, opts)) end, opts),
        else: run(nil, fn -> engine.instant(config.store, query, time, opts) end, opts)
    end
    |> respond()
  end

  @doc "`/api/v1/query_range` with `query=`: a range query."
  @spec range(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def range(request, config) do
    query = Request.param(request, "query", "")

    with {:ok, start} <- required_time(request, "start"),
         {:ok, stop} <- required_time(request, "end"),
         :ok <- ordered(start, stop),
         {:ok, step} <- step(request),
         :ok <- resolution(start, stop, step),
         {:ok, opts} <- query_opts(request, config),
         {:ok, ast} <- parse(query),
         :ok <- range_type(ast),
         {:ok, engine} <- engine(config) do
      if function_exported?(engine, :range_json, 6),
        do: run(engine, fn -> encoded(engine.range_json(config.store, ast, start, stop, step, opts)) end, opts),
        else: run(nil, fn -> engine.range(config.store, query, start, stop, step, opts) end, opts)
    end
    |> respond()
  end

  # ------------------------------------------------------------------ parameters

  defp time_param(request, name, default) do
    case Request.param(request, name, "") do
      "" ->
        {:ok, default}

      text ->
        with {:error, message} <- Params.prom_time(text),
             do: bad(name, "Invalid time value for '#{name}': #{message}")
    end
  end

  defp required_time(request, name) do
    with {:error, message} <- Params.prom_time(Request.param(request, name, "")), do: bad(name, message)
  end

  defp ordered(start, stop) when stop >= start, do: :ok
  defp ordered(_, _), do: bad("end", "end timestamp must not be before start time")

  defp step(request) do
    case Params.prom_duration(Request.param(request, "step", "")) do
      {:ok, ms} when ms > 0 -> {:ok, ms}
      {:ok, _} -> bad("step", "zero or negative query resolution step widths are not accepted. Try a positive integer")
      {:error, message} -> bad("step", message)
    end
  end

  defp resolution(start, stop, step) do
    if div(stop - start, step) > @max_points_per_series,
      do: {:error, {:bad_input, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}},
      else: :ok
  end

  defp query_opts(request, config) do
    default_timeout = Map.get(config, :query_timeout, 120_000)

    with {:ok, timeout} <- optional_duration(request, "timeout", &bad("timeout", &1)),
         {:ok, lookback} <-
           optional_duration(request, "lookback_delta", &{:error, {:bad_input, "error parsing lookback delta duration: " <> &1}}) do
      timeout = if timeout == nil, do: default_timeout, else: timeout |> min(default_timeout) |> max(1)
      lookback = if lookback in [nil] or lookback <= 0, do: Map.get(config, :lookback_delta, 300_000), else: lookback

      opts = [lookback_delta_ms: lookback, timeout_ms: timeout]
      opts = if max = Map.get(config, :query_max_samples), do: [{:max_samples, max} | opts], else: opts
      {:ok, opts}
    end
  end

  defp optional_duration(request, name, on_error) do
    case Request.param(request, name, "") do
      "" ->
        {:ok, nil}

      text ->
        case Params.prom_duration(text) do
          {:ok, ms} -> {:ok, ms}
          {:error, message} -> on_error.(message)
        end
    end
  end

  # Dashboards repeat the same query texts over keep-alive connections, so each
  # connection process keeps its last parses (a query's AST does not depend on the
  # request's time parameters). Bounded: the cache is dropped when it is full.
  @parse_cache :timeless_promql_parsed
  @parse_cache_size 64

  defp parse(query) do
    cache = Process.get(@parse_cache, %{})

    case cache do
      %{^query => ast} ->
        {:ok, ast}

      _ ->
        case Parser.parse(query) do
          {:ok, ast} ->
            cache = if map_size(cache) >= @parse_cache_size, do: %{}, else: cache
            Process.put(@parse_cache, Map.put(cache, query, ast))
            {:ok, ast}

          {:error, error} ->
            bad("query", Parser.format_error(query, error))
        end
    end
  end

  defp range_type(ast) do
    case AST.type_of(ast) do
      type when type in [:vector, :scalar] ->
        :ok

      type ->
        bad("query", "invalid expression type #{inspect(documented_type(type))} for range query, must be Scalar or instant Vector")
    end
  end

  defp documented_type(:matrix), do: "range vector"
  defp documented_type(:vector), do: "instant vector"
  defp documented_type(other), do: Atom.to_string(other)

  defp bad(name, message), do: {:error, {:bad_input, "invalid parameter #{inspect(name)}: #{message}"}}

  defp engine(config) do
    case Map.get(config, :promql_engine, TimelessMetrics.PromQL) do
      TimelessMetrics.PromQL -> {:ok, TimelessMetrics.PromQL}
      other -> loaded_engine(other)
    end
  end

  defp loaded_engine(engine) do
    if Code.ensure_loaded?(engine) and function_exported?(engine, :instant, 4) and function_exported?(engine, :range, 6),
      do: {:ok, engine},
      else: {:error, {:unavailable, "PromQL engine #{inspect(engine)} is not available in this build"}}
  end

  # ------------------------------------------------------------------ running

  # The built-in engine bounds its own wait (the query's timeout plus a grace
  # period, see `TimelessMetrics.PromQL`), so it runs in the connection's process.
  # Any other engine runs in a task, so a query that overruns its timeout answers
  # 503 instead of holding the connection.
  defp run(TimelessMetrics.PromQL, fun, _opts) do
    case fun.() do
      {:ok, result} -> {:ok, result}
      {:error, {kind, message}} when is_atom(kind) -> {:error, engine_error(kind, message)}
      other -> {:error, {:internal, "PromQL engine returned #{inspect(other, limit: 10)}"}}
    end
  end

  defp run(_engine, fun, opts) do
    task = Task.async(fun)
    wait = Keyword.fetch!(opts, :timeout_ms) + @grace_ms

    case Task.yield(task, wait) || Task.shutdown(task, :brutal_kill) do
      {:ok, {:ok, result}} -> {:ok, result}
      {:ok, {:error, {kind, message}}} when is_atom(kind) -> {:error, engine_error(kind, message)}
      {:ok, other} -> {:error, {:internal, "PromQL engine returned #{inspect(other, limit: 10)}"}}
      nil -> {:error, {:query_timeout, "query timed out in query execution"}}
      {:exit, reason} -> {:error, {:internal, "PromQL engine failed: #{Exception.format_exit(reason)}"}}
    end
  end

  # An engine that writes the JSON body itself (`instant_json/4`, `range_json/6`).
  defp encoded({:ok, body}), do: {:ok, {:encoded, body}}
  defp encoded(error), do: error

  # Engine error kinds (the evaluator's contract) to HTTP error kinds.
  defp engine_error(:bad_data, message), do: {:bad_input, prefixed(message)}
  defp engine_error(:execution, message), do: {:execution, message}
  defp engine_error(:timeout, message), do: {:query_timeout, message}
  defp engine_error(:unavailable, message), do: {:unavailable, message}
  defp engine_error(_other, message), do: {:execution, to_string(message)}

  # bad_data from the engine comes from preparing the query, which Prometheus
  # reports as `invalid parameter "query": ...`.
  defp prefixed("invalid parameter " <> _ = message), do: message
  defp prefixed(message), do: "invalid parameter \"query\": " <> message

  defp respond({:ok, {:encoded, body}}), do: {200, [{"content-type", JSON.content_type()}], body}
  defp respond({:ok, result}), do: {200, [{"content-type", JSON.content_type()}], encode(result)}
  defp respond({:error, {kind, message}}), do: error(kind, message)

  @doc """
  An error response in Prometheus's envelope, strings escaped as Go does.

      iex> {status, _headers, body} = TimelessMetrics.HTTP.PromQL.error(:execution, "a < b")
      iex> {status, IO.iodata_to_binary(body)}
      {422, ~S({"status":"error","errorType":"execution","error":"a \\u003c b"})}
  """
  @spec error(atom(), String.t()) :: {pos_integer(), list(), iodata()}
  def error(kind, message) do
    body = [~s({"status":"error","errorType":), JSON.go_string(Errors.error_type(kind)), ~s(,"error":), JSON.go_string(message), ?}]
    {Errors.status(kind), [{"content-type", JSON.content_type()} | Errors.headers(kind)], body}
  end

  # ------------------------------------------------------------------ encoding

  @doc """
  The success body for an engine result (see `TimelessMetrics.PromQL`'s contract),
  as Prometheus writes it.

      iex> TimelessMetrics.HTTP.PromQL.encode(%{type: :vector, result: [%{metric: %{"job" => "a", "__name__" => "up"}, value: {1_700_000_000_500, 1.0}}]})
      ...> |> IO.iodata_to_binary()
      ~s({"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.500,"1"]}]}})
      iex> TimelessMetrics.HTTP.PromQL.encode(%{type: :scalar, result: {1_700_000_000_500, :inf}}) |> IO.iodata_to_binary()
      ~s({"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"+Inf"]}})
  """
  @spec encode(map()) :: iodata()
  def encode(%{type: type, result: result} = answer) do
    [
      ~s({"status":"success","data":{"resultType":"),
      Atom.to_string(type),
      ~s(","result":),
      encode_result(type, result),
      ?},
      string_list("warnings", Map.get(answer, :warnings, [])),
      string_list("infos", Map.get(answer, :infos, [])),
      ?}
    ]
  end

  defp string_list(_key, []), do: []
  defp string_list(key, list), do: [?,, ?", key, ?", ?:, ?[, Enum.intersperse(Enum.map(list, &JSON.go_string(to_string(&1))), ?,), ?]]

  defp encode_result(:vector, samples) do
    [?[, Enum.intersperse(Enum.map(samples, fn %{metric: m, value: {t, v}} -> [~s({"metric":), labels(m), ~s(,"value":), point(t, v), ?}] end), ?,), ?]]
  end

  defp encode_result(:matrix, series) do
    encoded =
      Enum.map(series, fn %{metric: m, values: points} ->
        [~s({"metric":), labels(m), ~s(,"values":[), Enum.intersperse(Enum.map(points, fn {t, v} -> point(t, v) end), ?,), "]}"]
      end)

    [?[, Enum.intersperse(encoded, ?,), ?]]
  end

  defp encode_result(:scalar, {t, v}), do: [?[, JSON.format_value(t / 1000), ",\"", JSON.format_value(value(v)), "\"]"]
  defp encode_result(:string, {t, s}), do: [?[, JSON.format_value(t / 1000), ?,, JSON.go_string(s), ?]]

  defp point(t, v), do: [?[, JSON.sample_timestamp(t), ",\"", JSON.format_sample_value(value(v)), "\"]"]

  defp labels(metric) do
    pairs =
      metric
      |> Enum.map(fn {k, v} -> {to_string(k), to_string(v)} end)
      |> Enum.reject(fn {_k, v} -> v == "" end)
      |> Enum.sort()
      |> Enum.map(fn {k, v} -> [JSON.go_string(k), ?:, JSON.go_string(v)] end)

    [?{, Enum.intersperse(pairs, ?,), ?}]
  end

  defp value(:inf), do: :infinity
  defp value(:neg_inf), do: :neg_infinity
  defp value(v), do: v
end
