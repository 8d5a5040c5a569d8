defmodule TimelessMetrics.PromQL.EvalTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.PromQL
  alias TimelessMetrics.TestStore

  doctest TimelessMetrics.PromQL
  doctest TimelessMetrics.PromQL.Result

  @m 60_000

  setup do
    store = TestStore.start!()
    # http_requests{job, instance}: 0, 10, 20, ... every minute for 10 minutes.
    entries =
      for {job, inst, mult} <- [{"api", "0", 1}, {"api", "1", 2}, {"db", "0", 3}], i <- 0..10 do
        {"http_requests", %{"job" => job, "instance" => inst}, i * 10 * mult, i * 60}
      end

    :ok = TM.write_batch(store, entries)
    %{store: store}
  end

  test "instant vector selector keeps the metric name", %{store: s} do
    assert {:ok, %{type: :vector, result: result}} = PromQL.instant(s, ~s|http_requests{job="api"}|, 5 * @m)

    assert Enum.sort_by(result, & &1.metric["instance"]) == [
             %{metric: %{"__name__" => "http_requests", "job" => "api", "instance" => "0"}, value: {5 * @m, 50.0}},
             %{metric: %{"__name__" => "http_requests", "job" => "api", "instance" => "1"}, value: {5 * @m, 100.0}}
           ]
  end

  test "aggregation, rate and arithmetic", %{store: s} do
    assert {:ok, %{type: :vector, result: result}} = PromQL.instant(s, "sum by (job) (rate(http_requests[5m]))", 10 * @m)
    by_job = Map.new(result, fn %{metric: %{"job" => j}, value: {_, v}} -> {j, v} end)
    assert_in_delta by_job["api"], 30 / 60, 1.0e-9
    assert_in_delta by_job["db"], 30 / 60, 1.0e-9
  end

  test "scalars, strings and special values", %{store: s} do
    assert {:ok, %{type: :scalar, result: {1000, 3.0}}} = PromQL.instant(s, "1 + 2", 1000)
    assert {:ok, %{type: :scalar, result: {0, :inf}}} = PromQL.instant(s, "1 / 0", 0)
    assert {:ok, %{type: :scalar, result: {0, :neg_inf}}} = PromQL.instant(s, "-1 / 0", 0)
    assert {:ok, %{type: :scalar, result: {0, :nan}}} = PromQL.instant(s, "0 / 0", 0)
    assert {:ok, %{type: :string, result: {7, "hi"}}} = PromQL.instant(s, ~s|"hi"|, 7)
    assert {:ok, %{type: :vector, result: [%{metric: %{}, value: {0, :nan}}]}} = PromQL.instant(s, "vector(0/0)", 0)
  end

  test "an instant query of a range vector returns the raw points", %{store: s} do
    q = ~s|http_requests{job="db"}[2m]|
    assert {:ok, %{type: :matrix, result: [%{values: values}]}} = PromQL.instant(s, q, 5 * @m)
    assert values == [{3 * @m, 90.0}, {4 * @m, 120.0}, {5 * @m, 150.0}]
  end

  test "range queries give sorted matrices; scalars become a series without labels", %{store: s} do
    assert {:ok, %{type: :matrix, result: result}} = PromQL.range(s, "http_requests", 0, 2 * @m, @m)
    assert Enum.map(result, & &1.metric["instance"]) == ["0", "0", "1"]
    assert Enum.map(result, & &1.metric["job"]) == ["api", "db", "api"]
    assert hd(result).values == [{0, 0.0}, {@m, 10.0}, {2 * @m, 20.0}]

    assert {:ok, %{type: :matrix, result: [%{metric: %{}, values: [{0, 0.0}, {1000, 1.0}]}]}} =
             PromQL.range(s, "time()", 0, 1000, 1000)
  end

  test "range query steps without a sample are left out", %{store: s} do
    assert {:ok, %{result: [%{values: values}]}} =
             PromQL.range(s, ~s|http_requests{job="db"} > 250|, 8 * @m, 20 * @m, @m)

    assert values == [{9 * @m, 270.0}, {10 * @m, 300.0}, {11 * @m, 300.0}, {12 * @m, 300.0}, {13 * @m, 300.0}, {14 * @m, 300.0},
             {15 * @m, 300.0}]
  end

  test "@ start() and @ end() resolve to the query bounds", %{store: s} do
    q = ~s|http_requests{job="db"} @ end()|
    assert {:ok, %{result: [%{values: values}]}} = PromQL.range(s, q, 0, 2 * @m, @m)
    assert values == [{0, 60.0}, {@m, 60.0}, {2 * @m, 60.0}]
  end

  test "parse errors are bad_data with Prometheus's position format", %{store: s} do
    assert {:error, {:bad_data, "1:15: parse error: unclosed left parenthesis"}} = PromQL.instant(s, "sum(rate(x[5m]", 0)
    assert {:error, {:bad_data, msg}} = PromQL.range(s, "foo{", 0, 10, 1)
    assert msg =~ "parse error"
  end

  test "range query limits", %{store: s} do
    assert {:error, {:bad_data, "end timestamp must not be before start time"}} = PromQL.range(s, "1", 10, 0, 1)
    assert {:error, {:bad_data, msg}} = PromQL.range(s, "1", 0, 10, 0)
    assert msg =~ "zero or negative"

    assert {:error,
            {:bad_data,
             "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}} =
             PromQL.range(s, "1", 0, 11_001, 1)

    assert {:ok, _} = PromQL.range(s, "1", 0, 11_000, 1)

    assert {:error, {:bad_data, "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"}} =
             PromQL.range(s, "http_requests[5m]", 0, 10, 1)
  end

  test "execution errors", %{store: s} do
    assert {:error, {:execution, msg}} = PromQL.instant(s, ~s|http_requests + on(job) http_requests|, 5 * @m)
    assert msg =~ "many-to-many matching not allowed"

    assert {:error, {:execution, "vector cannot contain metrics with the same labelset"}} =
             PromQL.instant(s, ~s|label_replace(http_requests, "job", "", "", "")|, 5 * @m)

    assert {:error, {:execution, "query processing would load too many samples into memory in query execution"}} =
             PromQL.instant(s, "http_requests", 5 * @m, max_samples: 5)

    assert {:error, {:execution, "function histogram_count is not supported yet" <> _}} =
             PromQL.instant(s, "histogram_count(http_requests)", 5 * @m)
  end

  test "a query past its deadline times out", %{store: s} do
    assert {:error, {:timeout, "query timed out in expression evaluation"}} =
             PromQL.range(s, "sum(rate(http_requests[5m]))", 0, 10_000 * 1000, 1000, timeout_ms: 0)
  end

  test "instant results keep sort_desc and topk order", %{store: s} do
    assert {:ok, %{result: result}} = PromQL.instant(s, "sort_desc(http_requests)", 5 * @m)
    assert Enum.map(result, fn %{value: {_, v}} -> v end) == [150.0, 100.0, 50.0]

    assert {:ok, %{result: result}} = PromQL.instant(s, "topk(2, http_requests)", 5 * @m)
    assert Enum.map(result, fn %{value: {_, v}} -> v end) == [150.0, 100.0]
  end

  test "subqueries, offset and lookback through the public API", %{store: s} do
    assert {:ok, %{result: [%{value: {_, 150.0}}]}} =
             PromQL.instant(s, ~s|max_over_time(http_requests{job="db"}[5m:1m])|, 5 * @m)

    assert {:ok, %{result: [%{value: {_, 120.0}}]}} = PromQL.instant(s, ~s|http_requests{job="db"} offset 1m|, 5 * @m)
    assert {:ok, %{result: []}} = PromQL.instant(s, ~s|http_requests{job="db"}|, 16 * @m)
    assert {:ok, %{result: [_]}} = PromQL.instant(s, ~s|http_requests{job="db"}|, 16 * @m, lookback_delta_ms: 10 * @m)
  end

  test "an unknown store is unavailable" do
    assert {:error, {:unavailable, _}} = PromQL.instant(:no_such_store_promql, "1", 0)
  end
end
