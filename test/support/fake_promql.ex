defmodule TimelessMetrics.FakePromQL do
  @moduledoc """
  A deliberately tiny PromQL engine with `TimelessMetrics.PromQL`'s contract, for
  testing the conformance runner and the HTTP layer before the real evaluator is
  merged. It evaluates number and string literals, parentheses, unary minus on
  numbers, and plain instant vector selectors (with `offset`, 5-minute or
  `lookback_delta_ms` lookback, staleness markers hiding a series). Anything else
  is `{:error, {:execution, "fake engine: unsupported expression"}}`. Selectors on
  the metric names `fake_bad_data`, `fake_execution`, `fake_timeout` and
  `fake_unavailable` return that error kind; `fake_warning` adds a warning.

      iex> store = TimelessMetrics.TestStore.start!()
      iex> :ok = TimelessMetrics.write_batch(store, [{"up", %{"job" => "a"}, 1, 0}], unit: :millisecond)
      iex> TimelessMetrics.FakePromQL.instant(store, "up", 1000, [])
      {:ok, %{type: :vector, result: [%{metric: %{"__name__" => "up", "job" => "a"}, value: {1000, 1.0}}]}}
  """

  alias TimelessMetrics.PromQL.Parser

  @errors %{
    "fake_bad_data" => {:bad_data, "fake bad data"},
    "fake_execution" => {:execution, "fake execution error"},
    "fake_timeout" => {:timeout, "query timed out in expression evaluation"},
    "fake_unavailable" => {:unavailable, "fake engine unavailable"}
  }

  @doc "An instant query at `time_ms`."
  @spec instant(atom(), String.t(), integer(), keyword()) :: {:ok, map()} | {:error, {atom(), String.t()}}
  def instant(store, query, time_ms, opts) do
    with {:ok, ast} <- parse(query),
         {:ok, {type, result}} <- eval(store, ast, time_ms, opts) do
      {:ok, maybe_warn(%{type: type, result: result}, ast)}
    end
  end

  @doc "A range query: the instant query at every step, as a matrix sorted by labels."
  @spec range(atom(), String.t(), integer(), integer(), pos_integer(), keyword()) :: {:ok, map()} | {:error, {atom(), String.t()}}
  def range(store, query, start_ms, end_ms, step_ms, opts) do
    with {:ok, ast} <- parse(query) do
      Stream.iterate(start_ms, &(&1 + step_ms))
      |> Enum.take_while(&(&1 <= end_ms))
      |> Enum.reduce_while({:ok, %{}}, fn t, {:ok, acc} ->
        case eval(store, ast, t, opts) do
          {:ok, {:scalar, {_, v}}} -> {:cont, {:ok, Map.update(acc, %{}, [{t, v}], &[{t, v} | &1])}}
          {:ok, {:vector, samples}} -> {:cont, {:ok, Enum.reduce(samples, acc, fn s, a -> Map.update(a, s.metric, [{t, elem(s.value, 1)}], &[{t, elem(s.value, 1)} | &1]) end)}}
          {:ok, {other, _}} -> {:halt, {:error, {:bad_data, "invalid expression type #{inspect(other)} for range query"}}}
          {:error, _} = error -> {:halt, error}
        end
      end)
      |> case do
        {:ok, by_metric} ->
          result =
            by_metric
            |> Enum.sort_by(fn {m, _} -> Enum.sort(m) end)
            |> Enum.map(fn {m, pts} -> %{metric: m, values: Enum.reverse(pts)} end)

          {:ok, maybe_warn(%{type: :matrix, result: result}, ast)}

        error ->
          error
      end
    end
  end

  defp parse(query) do
    case Parser.parse(query) do
      {:ok, ast} -> {:ok, ast}
      {:error, e} -> {:error, {:bad_data, Parser.format_error(query, e)}}
    end
  end

  defp maybe_warn(result, %{type: :vector_selector, name: "fake_warning"}), do: Map.put(result, :warnings, ["fake warning"])
  defp maybe_warn(result, _ast), do: result

  defp eval(_store, {:number, v}, t, _opts), do: {:ok, {:scalar, {t, v}}}
  defp eval(_store, {:string, s}, t, _opts), do: {:ok, {:string, {t, s}}}
  defp eval(store, %{type: :paren, expr: e}, t, opts), do: eval(store, e, t, opts)

  defp eval(store, %{type: :unary, op: :neg, expr: e}, t, opts) do
    case eval(store, e, t, opts) do
      {:ok, {:scalar, {t, v}}} when is_float(v) -> {:ok, {:scalar, {t, -v}}}
      {:ok, {:scalar, {t, :inf}}} -> {:ok, {:scalar, {t, :neg_inf}}}
      {:ok, {:scalar, {t, :neg_inf}}} -> {:ok, {:scalar, {t, :inf}}}
      {:ok, {:scalar, {t, :nan}}} -> {:ok, {:scalar, {t, :nan}}}
      _ -> unsupported()
    end
  end

  defp eval(_store, %{type: :vector_selector, name: name}, _t, _opts) when is_map_key(@errors, name),
    do: {:error, Map.fetch!(@errors, name)}

  defp eval(store, %{type: :vector_selector, matchers: matchers, offset_ms: offset, at: nil}, t, opts) do
    lookback = Keyword.get(opts, :lookback_delta_ms, 300_000)
    ref = t - offset

    case TimelessMetrics.query_multi(store, nil, matchers, from: ref - lookback, to: ref, unit: :millisecond) do
      {:ok, series} ->
        samples =
          for s <- series, {_ts, v} = List.last(s.points), v != :stale do
            %{metric: Map.put(s.labels, "__name__", s.metric), value: {t, value(v)}}
          end

        {:ok, {:vector, Enum.sort_by(samples, &Enum.sort(&1.metric))}}

      {:error, {_kind, message}} ->
        {:error, {:execution, message}}
    end
  end

  defp eval(_store, _ast, _t, _opts), do: unsupported()

  defp unsupported, do: {:error, {:execution, "fake engine: unsupported expression"}}

  defp value(:infinity), do: :inf
  defp value(:neg_infinity), do: :neg_inf
  defp value(v) when is_integer(v), do: v * 1.0
  defp value(v), do: v
end
