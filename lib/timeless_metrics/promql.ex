defmodule TimelessMetrics.PromQL do
  @moduledoc """
  PromQL queries over a running store, with Prometheus 2.53 semantics.

  Elixir parses (`TimelessMetrics.PromQL.Parser`) and plans the query: `@ start()`
  and `@ end()` become times, subqueries without a step get the default step,
  the expression type is checked against the query kind and the resolution
  limit is applied. Then one dirty NIF call (`Native.promql_eval/6`) evaluates
  the whole expression in Rust, and `TimelessMetrics.PromQL.Result` shapes the
  compact answer into result maps. `instant_json/4` and `range_json/6` (the HTTP
  path) have the engine write Prometheus's JSON body instead of building terms.

      iex> store = TimelessMetrics.TestStore.unique_name("doc")
      iex> {:ok, _} = TimelessMetrics.start_link(name: store, mode: :memory)
      iex> :ok = TimelessMetrics.write(store, "up", %{"job" => "a"}, 1, 60)
      iex> TimelessMetrics.PromQL.instant(store, "up * 2", 90_000)
      {:ok, %{type: :vector, result: [%{metric: %{"job" => "a"}, value: {90_000, 2.0}}]}}
      iex> TimelessMetrics.PromQL.instant(store, "sum(", 0)
      {:error, {:bad_data, "1:5: parse error: unclosed left parenthesis"}}

  Values are floats, or `:nan`, `:inf`, `:neg_inf`. Errors are
  `{:bad_data | :execution | :timeout | :unavailable, message}`.
  """

  alias TimelessMetrics.{Engine, Native}
  alias TimelessMetrics.PromQL.{AST, Parser, Result}

  @type value :: float() | :nan | :inf | :neg_inf
  @type metric :: %{String.t() => String.t()}
  @type result ::
          %{type: :vector, result: [%{metric: metric(), value: {integer(), value()}}]}
          | %{type: :matrix, result: [%{metric: metric(), values: [{integer(), value()}]}]}
          | %{type: :scalar, result: {integer(), value()}}
          | %{type: :string, result: {integer(), String.t()}}
  @type error :: {:error, {:bad_data | :execution | :timeout | :unavailable, String.t()}}

  @type option ::
          {:lookback_delta_ms, pos_integer()}
          | {:timeout_ms, pos_integer()}
          | {:max_samples, pos_integer()}
          | {:max_points_per_series, pos_integer()}
          | {:subquery_step_ms, pos_integer()}

  @defaults [
    lookback_delta_ms: 300_000,
    timeout_ms: 120_000,
    max_samples: 50_000_000,
    max_points_per_series: 11_000,
    subquery_step_ms: 60_000
  ]

  @doc """
  Evaluates `query` at `time_ms`. Options: `lookback_delta_ms` (300_000),
  `timeout_ms` (120_000), `max_samples` (50_000_000), `subquery_step_ms`
  (60_000, the step of `x[5m:]`).
  """
  @spec instant(atom(), String.t() | AST.t(), integer(), [option()]) :: {:ok, result()} | error()
  def instant(store, query, time_ms, opts \\ []) when is_integer(time_ms) do
    with {:ok, raw} <- run_instant(store, query, time_ms, opts, &Native.promql_eval/6),
         do: {:ok, Result.instant(raw, time_ms)}
  end

  @doc """
  Evaluates `query` at `start_ms, start_ms + step_ms, ..., end_ms`. The answer is
  always a `:matrix` sorted by label set (a scalar becomes one series with no
  labels). Besides the options of `instant/4`, `max_points_per_series` (11_000)
  bounds the number of steps.
  """
  @spec range(atom(), String.t() | AST.t(), integer(), integer(), integer(), [option()]) :: {:ok, result()} | error()
  def range(store, query, start_ms, end_ms, step_ms, opts \\ [])
      when is_integer(start_ms) and is_integer(end_ms) and is_integer(step_ms) do
    with {:ok, raw} <- run_range(store, query, start_ms, end_ms, step_ms, opts, &Native.promql_eval/6),
         do: {:ok, Result.range(raw, start_ms, step_ms)}
  end

  @doc """
  Like `instant/4`, but answers the body Prometheus's `/api/v1/query` sends,
  encoded by the engine (`TimelessMetrics.HTTP.PromQL.encode/1` gives the same bytes
  for the result of `instant/4`). `query` may also be an already parsed AST.

      iex> store = TimelessMetrics.TestStore.unique_name("doc")
      iex> {:ok, _} = TimelessMetrics.start_link(name: store, mode: :memory)
      iex> :ok = TimelessMetrics.write(store, "up", %{"job" => "a"}, 1, 60)
      iex> {:ok, body} = TimelessMetrics.PromQL.instant_json(store, "up / 4", 90_500)
      iex> IO.iodata_to_binary(body)
      ~s({"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[90.500,"0.25"]}]}})
  """
  @spec instant_json(atom(), String.t() | AST.t(), integer(), [option()]) :: {:ok, iodata()} | error()
  def instant_json(store, query, time_ms, opts \\ []) when is_integer(time_ms),
    do: run_instant(store, query, time_ms, opts, &Native.promql_eval_json/6)

  @doc """
  Like `range/6`, but answers the body Prometheus's `/api/v1/query_range` sends,
  encoded by the engine (the bytes `TimelessMetrics.HTTP.PromQL.encode/1` gives for
  the result of `range/6`). `query` may also be an already parsed AST.
  """
  @spec range_json(atom(), String.t() | AST.t(), integer(), integer(), integer(), [option()]) ::
          {:ok, iodata()} | error()
  def range_json(store, query, start_ms, end_ms, step_ms, opts \\ [])
      when is_integer(start_ms) and is_integer(end_ms) and is_integer(step_ms),
      do: run_range(store, query, start_ms, end_ms, step_ms, opts, &Native.promql_eval_json/6)

  defp run_instant(store, query, time_ms, opts, nif) do
    opts = Keyword.merge(@defaults, opts)

    with {:ok, ast} <- parse(query) do
      planned = plan(ast, time_ms, time_ms, opts[:subquery_step_ms])
      eval(store, nif, planned, time_ms, time_ms, 1, opts, false)
    end
  end

  defp run_range(store, query, start_ms, end_ms, step_ms, opts, nif) do
    opts = Keyword.merge(@defaults, opts)

    with :ok <- check_range(start_ms, end_ms, step_ms, opts[:max_points_per_series]),
         {:ok, ast} <- parse(query),
         :ok <- check_type(AST.type_of(ast)) do
      planned = plan(ast, start_ms, end_ms, opts[:subquery_step_ms])
      eval(store, nif, planned, start_ms, end_ms, step_ms, opts, true)
    end
  end

  defp parse(query) when is_binary(query) do
    case Parser.parse(query) do
      {:ok, ast} -> {:ok, ast}
      {:error, e} -> {:error, {:bad_data, Parser.format_error(query, e)}}
    end
  end

  defp parse(ast) when is_map(ast) or is_tuple(ast), do: {:ok, ast}
  defp parse(other), do: {:error, {:bad_data, "query must be a string, got #{inspect(other, limit: 5)}"}}

  defp check_range(start_ms, end_ms, _step, _max) when end_ms < start_ms,
    do: {:error, {:bad_data, "end timestamp must not be before start time"}}

  defp check_range(_start, _end, step, _max) when step <= 0,
    do: {:error, {:bad_data, "zero or negative query resolution step widths are not accepted. Try a positive integer"}}

  defp check_range(start_ms, end_ms, step_ms, max) do
    if div(end_ms - start_ms, step_ms) > max do
      {:error,
       {:bad_data,
        "exceeded maximum resolution of #{group_digits(max)} points per timeseries. Try decreasing the query resolution (?step=XX)"}}
    else
      :ok
    end
  end

  defp group_digits(n) do
    n |> Integer.to_string() |> String.reverse() |> String.replace(~r/(\d{3})(?=\d)/, "\\1,") |> String.reverse()
  end

  defp check_type(type) when type in [:scalar, :vector], do: :ok

  defp check_type(type) do
    {:error,
     {:bad_data,
      "invalid expression type \"#{AST.documented_type(type)}\" for range query, must be Scalar or instant Vector"}}
  end

  @doc """
  Plans an AST for evaluation: `@ start()` / `@ end()` become `{:ms, t}` and
  subqueries without a step get `default_step_ms`.

      iex> {:ok, ast} = TimelessMetrics.PromQL.Parser.parse("x @ end()")
      iex> TimelessMetrics.PromQL.plan(ast, 0, 5_000, 60_000).at
      {:ms, 5_000}
  """
  @spec plan(AST.t(), integer(), integer(), pos_integer()) :: AST.t()
  def plan({_, _} = literal, _start, _end, _step), do: literal

  def plan(%{type: :vector_selector} = n, s, e, _step), do: %{n | at: resolve_at(n.at, s, e)}

  def plan(%{type: :matrix_selector} = n, s, e, step), do: %{n | vector: plan(n.vector, s, e, step)}

  def plan(%{type: :subquery} = n, s, e, step) do
    %{n | expr: plan(n.expr, s, e, step), at: resolve_at(n.at, s, e), step_ms: n.step_ms || step}
  end

  def plan(%{type: :call} = n, s, e, step), do: %{n | args: Enum.map(n.args, &plan(&1, s, e, step))}

  def plan(%{type: :aggregate} = n, s, e, step) do
    %{n | expr: plan(n.expr, s, e, step), param: n.param && plan(n.param, s, e, step)}
  end

  def plan(%{type: :binary} = n, s, e, step), do: %{n | lhs: plan(n.lhs, s, e, step), rhs: plan(n.rhs, s, e, step)}
  def plan(%{type: t} = n, s, e, step) when t in [:unary, :paren], do: %{n | expr: plan(n.expr, s, e, step)}

  defp resolve_at(:start, s, _e), do: {:ms, s}
  defp resolve_at(:end, _s, e), do: {:ms, e}
  defp resolve_at(at, _s, _e), do: at

  # see await/2
  @grace_ms 1_000
  @late :timeless_promql_late
  @max_late 64

  defp eval(store, nif, ast, start_ms, end_ms, step_ms, opts, range?) do
    drop_late_answers()

    nif_opts = %{
      lookback_delta_ms: opts[:lookback_delta_ms],
      timeout_ms: opts[:timeout_ms],
      max_samples: opts[:max_samples],
      range: range?
    }

    # tests only: every query to the query pool, and how long the NIF waits for the answer
    # before it comes by message
    nif_opts = if wait = opts[:sync_wait_us], do: Map.put(nif_opts, :sync_wait_us, wait), else: nif_opts

    case Engine.call(store, &nif.(&1, ast, start_ms, end_ms, step_ms, nif_opts)) do
      {:ok, {:pending, tag}} -> await(tag, opts[:timeout_ms] + @grace_ms)
      {:ok, raw} -> {:ok, raw}
      {:error, {kind, msg}} -> {:error, {error_kind(kind), msg}}
    end
  end

  # `Native.promql_eval_json/6` answers a query that outlasts its short wait on the
  # scheduler by message. The engine enforces `timeout_ms` itself; the wait here
  # gives it `@grace_ms` more, then answers a timeout and drops the late answer
  # when it comes (at the next query of this process).
  defp await(tag, wait_ms) do
    receive do
      {:timeless_promql, ^tag, {:error, {kind, msg}}} -> {:error, {error_kind(kind), msg}}
      {:timeless_promql, ^tag, body} -> {:ok, body}
    after
      wait_ms ->
        Process.put(@late, Enum.take([tag | Process.get(@late, [])], @max_late))
        {:error, {:timeout, "query timed out in query execution"}}
    end
  end

  defp drop_late_answers do
    case Process.get(@late) do
      nil ->
        :ok

      tags ->
        case Enum.reject(tags, &dropped?/1) do
          [] -> Process.delete(@late)
          waiting -> Process.put(@late, waiting)
        end
    end
  end

  defp dropped?(tag) do
    receive do
      {:timeless_promql, ^tag, _} -> true
    after
      0 -> false
    end
  end

  defp error_kind(:bad_input), do: :bad_data
  defp error_kind(:timeout), do: :timeout
  defp error_kind(:unavailable), do: :unavailable
  defp error_kind(_other), do: :execution
end
