defmodule TimelessMetrics.HTTP.RouterTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.HTTPHelpers

  alias TimelessMetrics.HTTP.Router

  setup do
    store = seeded_store!()
    %{store: store, config: config(store)}
  end

  @prefixes ["", "/prometheus"]

  describe "discovery" do
    test "labels, under both prefixes, GET and POST form", %{config: c} do
      for prefix <- @prefixes do
        assert {200, %{"status" => "success", "data" => data}} = route_json(c, "GET", prefix <> "/api/v1/labels")
        assert data == ["__name__", "code", "instance", "job", "method"]

        assert {200, %{"data" => ["__name__", "instance", "job"]}} =
                 route_json(c, "POST", prefix <> "/api/v1/labels",
                   headers: %{"content-type" => "application/x-www-form-urlencoded"},
                   body: "match[]=up"
                 )
      end
    end

    test "labels with a time range", %{config: c} do
      # only old_metric has data a day before t0
      assert {200, %{"data" => ["__name__", "job"]}} =
               route_json(c, "GET", "/api/v1/labels?start=#{t0() - 90_000}&end=#{t0() - 80_000}")
    end

    test "label values, with match[] and time range", %{config: c} do
      for prefix <- @prefixes do
        assert {200, %{"data" => ["api", "db", "legacy"]}} = route_json(c, "GET", prefix <> "/api/v1/label/job/values")
        assert {200, %{"data" => ["api", "db"]}} = route_json(c, "GET", prefix <> "/api/v1/label/job/values?match[]=up")

        assert {200, %{"data" => ["http_requests_total", "old_metric", "up"]}} =
                 route_json(c, "GET", prefix <> "/api/v1/label/__name__/values")

        assert {200, %{"data" => ["legacy"]}} =
                 route_json(c, "GET", prefix <> "/api/v1/label/job/values?start=#{t0() - 90_000}&end=#{t0() - 1}")

        # union of two selectors
        assert {200, %{"data" => ["db", "legacy"]}} =
                 route_json(c, "GET", prefix <> "/api/v1/label/job/values?match[]=old_metric&match[]=up{job=\"db\"}")
      end
    end

    test "label values: a bad label name is 400", %{config: c} do
      assert {400, %{"errorType" => "bad_data", "error" => "invalid label name: \"1bad\""}} =
               route_json(c, "GET", "/api/v1/label/1bad/values")
    end

    test "series: selectors, POST form, limit with warning", %{config: c} do
      for prefix <- @prefixes do
        assert {200, %{"data" => data}} =
                 route_json(c, "GET", prefix <> "/api/v1/series?match[]=" <> URI.encode_www_form(~s(http_requests_total{code=~"2.."})))

        assert data == [%{"__name__" => "http_requests_total", "job" => "api", "code" => "200", "method" => "GET"}]

        assert {200, %{"data" => posted}} =
                 route_json(c, "POST", prefix <> "/api/v1/series",
                   headers: %{"content-type" => "application/x-www-form-urlencoded"},
                   body: "match%5B%5D=%7Bjob%3D%22api%22%7D"
                 )

        assert length(posted) == 3

        assert {200, %{"data" => limited, "warnings" => ["results truncated due to limit"]}} =
                 route_json(c, "GET", prefix <> "/api/v1/series?match[]={job=\"api\"}&limit=2")

        assert length(limited) == 2
        assert limited == Enum.take(posted, 2)
      end
    end

    test "series: time range and required match[]", %{config: c} do
      assert {200, %{"data" => [%{"__name__" => "old_metric"}]}} =
               route_json(c, "GET", "/api/v1/series?match[]=#{URI.encode_www_form(~s({job=~".+"}))}&end=#{t0() - 1}")

      assert {400, %{"status" => "error", "errorType" => "bad_data", "error" => "no match[] parameter provided"}} =
               route_json(c, "GET", "/api/v1/series")
    end

    test "a bad selector is 400 naming the parameter", %{config: c} do
      assert {400, %{"errorType" => "bad_data", "error" => error}} =
               route_json(c, "GET", "/api/v1/series?match[]=" <> URI.encode_www_form("up{job=}"))

      assert error =~ ~s(invalid parameter "match[]": 1:8: parse error)
    end

    test "metadata from the metric_metadata table", %{store: store, config: c} do
      for {name, type, help} <- [{"up", "gauge", "Target is up."}, {"http_requests_total", "counter", "Requests."}] do
        {:ok, _} =
          TimelessMetrics.DB.execute(store, "INSERT INTO metric_metadata (metric_name, type, help, unit, updated_at) VALUES (?1, ?2, ?3, '', 0)", [name, type, help])
      end

      assert {200, %{"data" => data}} = route_json(c, "GET", "/prometheus/api/v1/metadata")

      assert data == %{
               "up" => [%{"type" => "gauge", "help" => "Target is up.", "unit" => ""}],
               "http_requests_total" => [%{"type" => "counter", "help" => "Requests.", "unit" => ""}]
             }

      assert {200, %{"data" => %{"up" => _} = one}} = route_json(c, "GET", "/api/v1/metadata?metric=up")
      assert map_size(one) == 1
      assert {200, %{"data" => limited}} = route_json(c, "GET", "/api/v1/metadata?limit=1")
      assert Map.keys(limited) == ["http_requests_total"]
    end

    test "buildinfo, exemplars and tsdb status", %{config: c} do
      for prefix <- @prefixes do
        assert {200, %{"data" => info}} = route_json(c, "GET", prefix <> "/api/v1/status/buildinfo")
        assert ~w(branch buildDate buildUser goVersion revision version) -- Map.keys(info) == []
        assert info["version"] =~ ~r/^\d+\.\d+\.\d+$/
        assert {200, %{"status" => "success", "data" => []}} = route_json(c, "GET", prefix <> "/api/v1/query_exemplars?query=up")
      end

      assert {200, %{"data" => tsdb}} = route_json(c, "GET", "/api/v1/status/tsdb?limit=1")
      assert tsdb["headStats"]["numSeries"] == 5
      assert tsdb["seriesCountByMetricName"] == [%{"name" => "http_requests_total", "value" => 2}]
    end
  end

  describe "native queries" do
    test "query_range without step: raw points as strings", %{config: c} do
      target = "/api/v1/query_range?metric=up&label.job=api&from=#{t0()}&to=#{t0() + 60}"

      for prefix <- @prefixes do
        assert {200, %{"data" => %{"resultType" => "matrix", "result" => result}}} = route_json(c, "GET", prefix <> target)

        assert result == [
                 %{"metric" => %{"__name__" => "up", "job" => "api", "instance" => "a:1"}, "values" => [[t0(), "1"], [t0() + 15, "0"]]}
               ]
      end
    end

    test "query_range with step and aggregate: engine buckets", %{config: c} do
      target = "/api/v1/query_range?match[]=http_requests_total{code=\"200\"}&start=#{t0()}&end=#{t0() + 179}&step=1m&aggregate=max"
      assert {200, %{"data" => %{"result" => [series]}}} = route_json(c, "GET", target)
      # buckets are aligned to multiples of 60 s since the epoch; t0 = 1_700_000_000 is 20 s past one
      b = div(t0(), 60) * 60
      assert series["values"] == [[b, "10"], [b + 60, "20"], [b + 120, "5"]]

      assert {200, %{"data" => %{"result" => [counted]}}} =
               route_json(c, "GET", "/api/v1/query_range?metric=http_requests_total&label.code=200&from=#{t0()}&to=#{t0() + 179}&step=1h&aggregate=count")

      assert counted["values"] == [[div(t0(), 3600) * 3600, "3"]]
    end

    test "query_range: union of metric= and match[], POST form", %{config: c} do
      assert {200, %{"data" => %{"result" => result}}} =
               route_json(c, "POST", "/api/v1/query_range",
                 headers: %{"content-type" => "application/x-www-form-urlencoded"},
                 body: "metric=old_metric&match[]=up{job=\"db\"}&from=#{t0() - 100_000}&to=#{t0() + 100}"
               )

      assert Enum.map(result, & &1["metric"]["job"]) == ["legacy", "db"]
    end

    test "instant query: newest point in the window, or an aggregate over it", %{config: c} do
      assert {200, %{"data" => %{"resultType" => "vector", "result" => [one]}}} =
               route_json(c, "GET", "/api/v1/query?metric=http_requests_total&label.code=200&time=#{t0() + 130}")

      assert one["value"] == [t0() + 120, "5"]

      assert {200, %{"data" => %{"result" => [inc]}}} =
               route_json(c, "GET", "/api/v1/query?metric=http_requests_total&label.code=200&from=#{t0()}&to=#{t0() + 200}&aggregate=increase")

      # 10 -> 20 (+10), reset to 5 (+5)
      assert inc["value"] == [t0() + 200, "15"]

      assert {200, %{"data" => %{"result" => []}}} =
               route_json(c, "GET", "/api/v1/query?metric=up&time=#{t0() + 10_000}")
    end

    test "special values are spelled as Prometheus does", %{store: store, config: c} do
      :ok = TimelessMetrics.write_batch(store, [{"special", %{"k" => "v"}, :nan, t0()}, {"special", %{"k" => "v"}, :infinity, t0() + 1}])

      assert {200, %{"data" => %{"result" => [s]}}} =
               route_json(c, "GET", "/api/v1/query_range?metric=special&from=#{t0()}&to=#{t0() + 1}")

      assert s["values"] == [[t0(), "NaN"], [t0() + 1, "+Inf"]]
    end

    test "query= goes to the PromQL engine; bad native parameters are 400", %{config: c} do
      assert {503, %{"errorType" => "unavailable", "error" => "PromQL engine NoSuchEngine is not available in this build"}} =
               route_json(%{c | promql_engine: NoSuchEngine}, "GET", "/api/v1/query?query=up")

      assert {400, %{"error" => "missing parameter" <> _}} = route_json(c, "GET", "/api/v1/query_range")
      assert {400, %{"error" => "invalid parameter \"aggregate\"" <> _}} = route_json(c, "GET", "/api/v1/query_range?metric=up&aggregate=median")
      assert {400, %{"error" => "invalid parameter \"step\"" <> _}} = route_json(c, "GET", "/api/v1/query_range?metric=up&step=abc")
      assert {400, %{"error" => "invalid parameter \"end\"" <> _}} = route_json(c, "GET", "/api/v1/query_range?metric=up&start=10&end=5")
      assert {400, %{"error" => "exceeded maximum resolution" <> _}} = route_json(c, "GET", "/api/v1/query_range?metric=up&start=0&end=100000&step=1")
      assert {400, %{"error" => "invalid parameter \"label.9x\"" <> _}} = route_json(c, "GET", "/api/v1/query_range?metric=up&label.9x=1")
    end
  end

  describe "export" do
    test "VictoriaMetrics JSON lines, streamed", %{config: c} do
      {status, headers, {:stream, fun}} =
        Router.call(TimelessMetrics.HTTP.Request.new("GET", "/api/v1/export?match[]={job=\"api\"}&start=#{t0()}"), c)

      assert status == 200
      assert {"content-type", "application/stream+json; charset=utf-8"} in headers
      body = collect({:stream, fun})
      lines = body |> String.split("\n", trim: true) |> Enum.map(&json/1)

      assert lines == [
               %{"metric" => %{"__name__" => "http_requests_total", "code" => "200", "job" => "api", "method" => "GET"},
                 "values" => [10, 20, 5], "timestamps" => [t0() * 1000, (t0() + 60) * 1000, (t0() + 120) * 1000]},
               %{"metric" => %{"__name__" => "http_requests_total", "code" => "500", "job" => "api", "method" => "POST"},
                 "values" => [1], "timestamps" => [t0() * 1000]},
               %{"metric" => %{"__name__" => "up", "instance" => "a:1", "job" => "api"},
                 "values" => [1, 0], "timestamps" => [t0() * 1000, (t0() + 15) * 1000]}
             ]
    end

    test "many series arrive in several groups", %{store: store, config: c} do
      :ok = TimelessMetrics.write_batch(store, for(i <- 1..150, do: {"many", %{"i" => "#{i}"}, i * 1.5, t0()}))
      {200, _, {:stream, fun}} = Router.call(TimelessMetrics.HTTP.Request.new("GET", "/api/v1/export?match[]=many"), c)
      {:ok, chunks} = Agent.start_link(fn -> [] end)
      fun.(fn data -> Agent.update(chunks, &[IO.iodata_to_binary(data) | &1]) end)
      chunks = Agent.get(chunks, &Enum.reverse/1)
      assert length(chunks) == 3
      lines = chunks |> Enum.join() |> String.split("\n", trim: true) |> Enum.map(&json/1)
      assert length(lines) == 150
      assert Enum.sort(Enum.flat_map(lines, & &1["values"])) == Enum.sort(for i <- 1..150, do: if(rem(i, 2) == 0, do: div(i * 3, 2), else: i * 1.5))
    end

    test "match[] is required and validated", %{config: c} do
      assert {400, %{"error" => "no match[] parameter provided"}} = route_json(c, "GET", "/api/v1/export")
      assert {400, %{"errorType" => "bad_data"}} = route_json(c, "GET", "/api/v1/export?match[]={")
    end
  end

  describe "matching" do
    test "every route by its path, under /prometheus for /api, with a trailing slash; :name binds" do
      for {pattern, _methods, _access, _target} <- Router.routes(), not String.contains?(pattern, ":") do
        prefixed = if String.starts_with?(pattern, "/api/"), do: ["/prometheus" <> pattern], else: []

        for path <- [pattern, pattern <> "/" | prefixed] do
          assert Router.label(TimelessMetrics.HTTP.Request.new("GET", path)) == pattern
        end
      end

      req = TimelessMetrics.HTTP.Request.new("GET", "/prometheus/api/v1/label/job/values")
      assert Router.label(req) == "/api/v1/label/:name/values"
      assert {:routed, %{path_params: %{"name" => "job"}}, :read, _} = Router.preflight(req, %{})
      assert Router.label(TimelessMetrics.HTTP.Request.new("GET", "/prometheus/write")) == "other"
    end
  end

  describe "routing errors" do
    test "unknown path is 404 JSON, wrong method 405 with Allow", %{config: c} do
      assert {404, %{"status" => "error", "errorType" => "not_found", "error" => "unknown path /api/v1/nope"}} =
               route_json(c, "GET", "/api/v1/nope")

      assert {404, _} = route_json(c, "GET", "/prometheus/health")
      {405, headers, body} = route(c, "GET", "/api/v1/import")
      assert {"allow", "POST"} in headers
      assert %{"errorType" => "bad_data"} = json(body)
      assert {405, _} = route_json(c, "PUT", "/api/v1/series")
      assert {200, _, _} = route(c, "HEAD", "/health")
    end
  end

  describe "auth" do
    setup %{store: store} do
      %{secured: config(store, tokens: ["admin-token"], read_only_tokens: ["viewer-token"])}
    end

    test "401 with WWW-Authenticate without or with a wrong token", %{secured: c} do
      {401, headers, body} = route(c, "GET", "/api/v1/labels")
      assert {"www-authenticate", "Bearer"} in headers
      assert %{"status" => "error", "error" => "missing bearer token"} = json(body)
      assert {401, %{"error" => "invalid bearer token"}} = route_json(c, "GET", "/api/v1/labels", headers: %{"authorization" => "Bearer nope"})
    end

    test "read-only token reads, gets 403 on admin and ingest; full token does both", %{secured: c} do
      viewer = [headers: %{"authorization" => "Bearer viewer-token"}]
      admin = [headers: %{"authorization" => "Bearer admin-token"}]
      assert {200, _} = route_json(c, "GET", "/api/v1/labels", viewer)
      assert {200, _, _} = route(c, "GET", "/metrics", viewer)
      assert {403, %{"status" => "error"}} = route_json(c, "GET", "/internal/force_flush", viewer)
      assert {403, _} = route_json(c, "POST", "/api/v1/import", viewer)
      assert {200, %{"status" => "success"}} = route_json(c, "GET", "/internal/force_flush", admin)
      assert {200, _} = route_json(c, "GET", "/api/v1/labels", admin)
      assert {200, _, "OK"} = route(c, "GET", "/health")
    end
  end

  describe "ops" do
    test "health follows the store", %{store: store, config: c} do
      assert {200, _, "OK"} = route(c, "GET", "/health")
      TimelessMetrics.TestStore.stop(store)
      assert {503, _, "unavailable: " <> _} = route(c, "GET", "/health")
      assert {503, %{"status" => "unavailable"}} = route_json(c, "GET", "/health/detailed")
      assert {503, %{"errorType" => "unavailable"}} = route_json(c, "GET", "/api/v1/labels")
    end

    test "health/detailed carries the store info", %{config: c} do
      assert {200, %{"status" => "ok", "store" => %{"status" => "ok", "info" => info}}} = route_json(c, "GET", "/health/detailed")
      assert info["series"] == 5
      assert info["points"] == 8
    end

    test "force_flush moves buffered points to chunks, force_merge runs", %{store: store, config: c} do
      {:ok, before} = TimelessMetrics.info(store)
      assert before.points_buffered == 8
      assert {200, %{"status" => "success"}} = route_json(c, "POST", "/internal/force_flush")
      {:ok, after_flush} = TimelessMetrics.info(store)
      assert after_flush.points_buffered == 0
      assert after_flush.points_stored == 8
      assert {200, %{"status" => "success"}} = route_json(c, "GET", "/internal/force_merge")
    end

    test "/metrics exposes the store's figures", %{config: c} do
      {200, headers, body} = route(c, "GET", "/metrics")
      assert {"content-type", "text/plain; version=0.0.4; charset=utf-8"} in headers
      assert body =~ "\ntimeless_series 5\n"
      assert body =~ "\ntimeless_points 8\n"
      assert body =~ "# TYPE timeless_bytes_on_disk gauge\n"
      assert body =~ ~r/\ntimeless_wal_bytes \d+\n/
    end
  end
end
