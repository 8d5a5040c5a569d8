defmodule TimelessMetrics.HTTP.PromQLTest do
  # PromQL over HTTP. Parameter handling and the exact JSON are checked with
  # TimelessMetrics.FakePromQL (test/support), which has the evaluator's contract;
  # the "real engine" block runs against TimelessMetrics.PromQL once it is merged.
  use ExUnit.Case, async: true

  import TimelessMetrics.HTTPHelpers

  alias TimelessMetrics.HTTP.Params

  doctest TimelessMetrics.HTTP.PromQL


  setup do
    store = seeded_store!()
    %{store: store, config: config(store, promql_engine: TimelessMetrics.FakePromQL)}
  end

  defp body(config, method, target, opts \\ []) do
    {status, _headers, body} = route(config, method, target, opts)
    {status, body}
  end

  defp q(text), do: URI.encode_www_form(text)

  describe "Params.prom_time/1 (Prometheus's parseTime)" do
    test "unix seconds" do
      assert Params.prom_time("1700000000") == {:ok, 1_700_000_000_000}
      assert Params.prom_time("1700000000.5") == {:ok, 1_700_000_000_500}
      assert Params.prom_time("1700000000.0006") == {:ok, 1_700_000_000_001}
      assert Params.prom_time("1.7e9") == {:ok, 1_700_000_000_000}
      assert Params.prom_time("+12") == {:ok, 12_000}
      assert Params.prom_time("-1.5") == {:ok, -1500}
      assert Params.prom_time(".25") == {:ok, 250}
    end

    test "RFC 3339 with fractions and offsets" do
      assert Params.prom_time("2023-11-14T22:13:20Z") == {:ok, 1_700_000_000_000}
      assert Params.prom_time("2023-11-14T22:13:20.123456789Z") == {:ok, 1_700_000_000_123}
      assert Params.prom_time("2023-11-14T23:13:20.9+01:00") == {:ok, 1_700_000_000_900}
      assert Params.prom_time("2023-11-14T20:13:20-02:00") == {:ok, 1_700_000_000_000}
    end

    test "anything else" do
      for bad <- ["", "x", "2023-11-14 22:13:20Z", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "2023-11-14t22:13:20z", "Inf", "NaN", "1e400", "0x10"] do
        assert Params.prom_time(bad) == {:error, "cannot parse #{inspect(bad)} to a valid timestamp"}, bad
      end
    end
  end

  describe "Params.prom_duration/1 (Prometheus's parseDuration)" do
    test "seconds and durations" do
      assert Params.prom_duration("15") == {:ok, 15_000}
      assert Params.prom_duration("0.5") == {:ok, 500}
      assert Params.prom_duration("1e1") == {:ok, 10_000}
      assert Params.prom_duration("1m30s") == {:ok, 90_000}
      assert Params.prom_duration("1y2w3d4h5m6s7ms") == {:ok, 31_536_000_000 + 2 * 604_800_000 + 3 * 86_400_000 + 4 * 3_600_000 + 5 * 60_000 + 6007}
      assert Params.prom_duration("0") == {:ok, 0}
      assert Params.prom_duration("-1") == {:ok, -1000}
    end

    test "errors" do
      assert Params.prom_duration("") == {:error, ~s(cannot parse "" to a valid duration)}
      assert Params.prom_duration("5 m") == {:error, ~s(cannot parse "5 m" to a valid duration)}
      assert Params.prom_duration("1s1m") == {:error, ~s(cannot parse "1s1m" to a valid duration)}
      assert Params.prom_duration("1e10") == {:error, ~s(cannot parse "1e10" to a valid duration. It overflows int64)}
    end
  end

  describe "instant queries" do
    test "exact JSON of a vector", %{config: c} do
      assert {200, body} = body(c, "GET", "/api/v1/query?query=up&time=#{t0() + 20}")

      assert body ==
               ~s({"status":"success","data":{"resultType":"vector","result":[) <>
                 ~s({"metric":{"__name__":"up","instance":"a:1","job":"api"},"value":[1700000020,"0"]},) <>
                 ~s({"metric":{"__name__":"up","instance":"b:1","job":"db"},"value":[1700000020,"1"]}]}})
    end

    test "fractional and RFC 3339 times, POST form, /prometheus prefix", %{config: c} do
      assert {200, body} = body(c, "GET", "/api/v1/query?query=#{q(~s(up{job="db"}))}&time=1700000020.05")
      assert body =~ ~s("value":[1700000020.050,"1"])

      assert {200, ^body} = body(c, "GET", "/api/v1/query?query=#{q(~s(up{job="db"}))}&time=#{q("2023-11-14T22:13:40.05Z")}")

      form = [body: "query=#{q(~s(up{job="db"}))}&time=1700000020.05", headers: %{"content-type" => "application/x-www-form-urlencoded"}]
      assert {200, ^body} = body(c, "POST", "/prometheus/api/v1/query", form)
    end

    test "scalars and strings are [seconds, string] with Go float seconds", %{config: c} do
      assert {200, ~s({"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"-Inf"]}})} =
               body(c, "GET", "/api/v1/query?query=-Inf&time=1700000000.5")

      assert {200, ~s({"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.000001"]}})} =
               body(c, "GET", "/api/v1/query?query=0.000001&time=1700000000")

      assert {200, ~s({"status":"success","data":{"resultType":"string","result":[1700000000,"a\\u003cb"]}})} =
               body(c, "GET", "/api/v1/query?query=#{q(~s("a<b"))}&time=1700000000")
    end

    test "warnings come after data", %{config: c} do
      assert {200, body} = body(c, "GET", "/api/v1/query?query=fake_warning&time=1700000000")
      assert body == ~s({"status":"success","data":{"resultType":"vector","result":[]},"warnings":["fake warning"]})
    end

    test "lookback_delta and timeout reach the engine", %{store: store} do
      c = config(store, promql_engine: __MODULE__.OptsEngine, query_timeout: 60_000, lookback_delta: 120_000)
      opts = fn target -> {200, body} = body(c, "GET", target); json(body)["data"]["result"] |> List.last() end

      assert opts.("/api/v1/query?query=up&time=0") == "[lookback_delta_ms: 120000, timeout_ms: 60000]"
      assert opts.("/api/v1/query?query=up&time=0&timeout=5s&lookback_delta=1m") == "[lookback_delta_ms: 60000, timeout_ms: 5000]"
      # a timeout above the server's is capped; lookback_delta=0 means the default
      assert opts.("/api/v1/query?query=up&time=0&timeout=1h&lookback_delta=0") == "[lookback_delta_ms: 120000, timeout_ms: 60000]"

      c = config(store, promql_engine: __MODULE__.OptsEngine, query_max_samples: 1000)
      assert {200, body} = body(c, "GET", "/api/v1/query?query=up&time=0")
      assert json(body)["data"]["result"] |> List.last() =~ "max_samples: 1000"
    end

    test "lookback_delta changes what a selector sees", %{config: c} do
      late = t0() + 400
      assert {200, body} = body(c, "GET", "/api/v1/query?query=up&time=#{late}")
      assert json(body)["data"]["result"] == []
      assert {200, body} = body(c, "GET", "/api/v1/query?query=up&time=#{late}&lookback_delta=10m")
      assert length(json(body)["data"]["result"]) == 2
    end
  end

  describe "range queries" do
    test "exact JSON of a matrix; step in seconds or as a duration", %{config: c} do
      target = "/api/v1/query_range?query=#{q(~s(up{job="db"}))}&start=#{t0()}&end=#{t0() + 60}&step="
      assert {200, body} = body(c, "GET", target <> "30")

      assert body ==
               ~s({"status":"success","data":{"resultType":"matrix","result":[) <>
                 ~s({"metric":{"__name__":"up","instance":"b:1","job":"db"},"values":[[1700000000,"1"],[1700000030,"1"],[1700000060,"1"]]}]}})

      assert {200, ^body} = body(c, "GET", target <> "30s")
      assert {200, ^body} = body(c, "GET", target <> "30.0")
    end

    test "millisecond timestamps and special values", %{store: store, config: c} do
      :ok =
        TimelessMetrics.write_batch(
          store,
          [{"special", %{}, 1.0e-7, 0}, {"special", %{}, 1.5e21, 250}, {"special", %{}, :nan, 500}, {"special", %{}, :neg_infinity, 750}],
          unit: :millisecond
        )

      assert {200, body} = body(c, "POST", "/api/v1/query_range", body: "query=special&start=0&end=0.75&step=0.25", headers: %{"content-type" => "application/x-www-form-urlencoded"})
      assert body =~ ~s("values":[[0,"1e-07"],[0.250,"1.5e+21"],[0.500,"NaN"],[0.750,"-Inf"]])
    end

    test "parameter errors, in Prometheus's order and words", %{config: c} do
      base = "/api/v1/query_range?query=up"

      errors = [
        {"", ~s(invalid parameter "start": cannot parse "" to a valid timestamp)},
        {"&start=x&end=1&step=1", ~s(invalid parameter "start": cannot parse "x" to a valid timestamp)},
        {"&start=1", ~s(invalid parameter "end": cannot parse "" to a valid timestamp)},
        {"&start=10&end=5&step=1", ~s(invalid parameter "end": end timestamp must not be before start time)},
        {"&start=1&end=5", ~s(invalid parameter "step": cannot parse "" to a valid duration)},
        {"&start=1&end=5&step=abc", ~s(invalid parameter "step": cannot parse "abc" to a valid duration)},
        {"&start=1&end=5&step=0", ~s(invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer)},
        {"&start=1&end=5&step=-1m", ~s(invalid parameter "step": cannot parse "-1m" to a valid duration)},
        {"&start=1&end=5&step=-1", ~s(invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer)},
        {"&start=0&end=11001&step=1", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"},
        {"&start=1&end=5&step=1&timeout=soon", ~s(invalid parameter "timeout": cannot parse "soon" to a valid duration)},
        {"&start=1&end=5&step=1&lookback_delta=x", ~s(error parsing lookback delta duration: cannot parse "x" to a valid duration)}
      ]

      for {params, message} <- errors do
        assert {400, body} = body(c, "GET", base <> params)
        assert json(body) == %{"status" => "error", "errorType" => "bad_data", "error" => message}, params
      end

      assert {200, _} = body(c, "GET", base <> "&start=0&end=11000&step=1")
    end

    test "a range query needs a scalar or instant vector expression", %{config: c} do
      assert {400, body} = body(c, "GET", "/api/v1/query_range?query=#{q("up[5m]")}&start=1&end=2&step=1")
      assert json(body)["error"] == ~s(invalid parameter "query": invalid expression type "range vector" for range query, must be Scalar or instant Vector)

      assert {400, body} = body(c, "GET", "/api/v1/query_range?query=#{q(~s("x"))}&start=1&end=2&step=1")
      assert json(body)["error"] =~ ~s(invalid expression type "string")
    end
  end

  describe "errors" do
    test "parse errors are bad_data with the parser's position, escaped as Go does", %{config: c} do
      for query <- ["sum(up", "up{", "*", "rate(up)"] do
        {:error, error} = TimelessMetrics.PromQL.Parser.parse(query)
        expected = ~s(invalid parameter "query": ) <> TimelessMetrics.PromQL.Parser.format_error(query, error)
        assert {400, body} = body(c, "GET", "/api/v1/query?query=#{q(query)}")
        assert json(body) == %{"status" => "error", "errorType" => "bad_data", "error" => expected}
        refute body =~ "<"
      end

      assert {400, body} = body(c, "GET", "/api/v1/query?query=up&time=abc")
      assert json(body)["error"] == ~s(invalid parameter "time": Invalid time value for 'time': cannot parse "abc" to a valid timestamp)
    end

    test "engine error kinds map to Prometheus's types and statuses", %{config: c} do
      for {metric, status, type, message} <- [
            {"fake_bad_data", 400, "bad_data", ~s(invalid parameter "query": fake bad data)},
            {"fake_execution", 422, "execution", "fake execution error"},
            {"fake_timeout", 503, "timeout", "query timed out in expression evaluation"},
            {"fake_unavailable", 503, "unavailable", "fake engine unavailable"}
          ] do
        for target <- ["/api/v1/query?query=#{metric}", "/api/v1/query_range?query=#{metric}&start=1&end=2&step=1"] do
          assert {^status, body} = body(c, "GET", target)
          assert json(body) == %{"status" => "error", "errorType" => type, "error" => message}
        end
      end
    end

    test "no engine: 503 unavailable; a hung engine: 503 timeout", %{store: store} do
      c = config(store, promql_engine: __MODULE__.NoSuchEngine)
      assert {503, body} = body(c, "GET", "/api/v1/query?query=up")
      assert %{"errorType" => "unavailable", "error" => "PromQL engine " <> _} = json(body)

      c = config(store, promql_engine: __MODULE__.HangingEngine, query_timeout: 50)
      assert {503, body} = body(c, "GET", "/api/v1/query?query=up&time=0")
      assert json(body) == %{"status" => "error", "errorType" => "timeout", "error" => "query timed out in query execution"}
    end

    test "server options are validated", %{store: store} do
      assert {:error, {:invalid_option, :query_timeout, _}} = TimelessMetrics.HTTP.validate(store: store, query_timeout: 0)
      assert {:error, {:invalid_option, :promql_engine, _}} = TimelessMetrics.HTTP.validate(store: store, promql_engine: "x")
      assert {:error, {:invalid_option, :query_max_samples, _}} = TimelessMetrics.HTTP.validate(store: store, query_max_samples: -1)
    end

    test "the native form keeps working beside PromQL", %{config: c} do
      assert {200, body} = body(c, "GET", "/api/v1/query_range?metric=up&label.job=db&from=#{t0()}&to=#{t0() + 10}")
      assert json(body)["data"]["result"] == [%{"metric" => %{"__name__" => "up", "job" => "db", "instance" => "b:1"}, "values" => [[t0(), "1"]]}]
    end
  end

  describe "real engine (TimelessMetrics.PromQL)" do
    test "aggregation over HTTP", %{store: store} do
      c = config(store)
      assert {200, body} = body(c, "GET", "/api/v1/query?query=#{q("sum by (job) (up)")}&time=#{t0() + 20}")

      assert body ==
               ~s({"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000020,"0"]},{"metric":{"job":"db"},"value":[1700000020,"1"]}]}})
    end

    test "range query of an expression", %{store: store} do
      c = config(store)
      assert {200, body} = body(c, "GET", "/api/v1/query_range?query=#{q(~s(up{job="db"} * 2))}&start=#{t0()}&end=#{t0() + 60}&step=60")

      assert body ==
               ~s({"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"b:1","job":"db"},"values":[[1700000000,"2"],[1700000060,"2"]]}]}})
    end

    test "scalar result of a range query is a matrix", %{store: store} do
      c = config(store)
      assert {200, body} = body(c, "GET", "/api/v1/query_range?query=1%2B1&start=0&end=60&step=60")
      assert body == ~s({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"2"],[60,"2"]]}]}})
    end

    test "max samples over HTTP: 422 execution", %{store: store} do
      c = config(store, query_max_samples: 1)
      assert {422, body} = body(c, "GET", "/api/v1/query?query=up&time=#{t0() + 20}")
      assert %{"status" => "error", "errorType" => "execution", "error" => "query processing would load too many samples" <> _} = json(body)
    end

    test "an answer that comes by message (the query outlasts the NIF's wait) is the same", %{store: store} do
      t = (t0() + 20) * 1000
      # these small queries are evaluated on the calling scheduler; sync_wait_us: 0 sends
      # them to the query pool and makes the NIF return at once, so the engine answers by
      # message: both ways give the same body
      for query <- ["up", "sum by (job) (up)", "rate(http_requests_total[5m])", "1 + 1", ~s("text")] do
        assert {:ok, direct} = TimelessMetrics.PromQL.instant_json(store, query, t)
        assert {:ok, by_message} = TimelessMetrics.PromQL.instant_json(store, query, t, sync_wait_us: 0)
        assert IO.iodata_to_binary(by_message) == IO.iodata_to_binary(direct), query
      end

      assert {:ok, direct} = TimelessMetrics.PromQL.range_json(store, "up * 2", t - 60_000, t, 15_000)
      assert {:ok, by_message} = TimelessMetrics.PromQL.range_json(store, "up * 2", t - 60_000, t, 15_000, sync_wait_us: 0)
      assert IO.iodata_to_binary(by_message) == IO.iodata_to_binary(direct)

      error = {:error, {:execution, "query processing would load too many samples into memory in query execution"}}
      assert TimelessMetrics.PromQL.instant_json(store, "up", t, max_samples: 1) == error
      assert TimelessMetrics.PromQL.instant_json(store, "up", t, max_samples: 1, sync_wait_us: 0) == error

      # nothing is left in the mailbox
      refute_received {:timeless_promql, _, _}
    end
  end

  defmodule OptsEngine do
    @moduledoc false
    def instant(_store, _q, t, opts), do: {:ok, %{type: :string, result: {t, inspect(Enum.sort(opts))}}}
    def range(_store, _q, s, _e, _step, opts), do: {:ok, %{type: :string, result: {s, inspect(Enum.sort(opts))}}}
  end

  defmodule HangingEngine do
    @moduledoc false
    def instant(_, _, _, _), do: Process.sleep(:infinity)
    def range(_, _, _, _, _, _), do: Process.sleep(:infinity)
  end
end
