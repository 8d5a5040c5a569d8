defmodule TimelessMetrics.HTTP.GrafanaTest do
  # Replays, over a real socket, the calls Grafana's Prometheus data source (v10/v11)
  # makes when it tests the connection, fills the query editor and draws a panel,
  # with the parameters it sends (start/end/time as Go-formatted unix seconds, step
  # in seconds, POST form bodies), and checks the response shapes Grafana parses.
  #
  # Queries run on the real engine, TimelessMetrics.PromQL.
  use ExUnit.Case, async: true

  import TimelessMetrics.HTTPHelpers

  @engine TimelessMetrics.PromQL
  @grafana_headers [{"user-agent", "Grafana/11.1.0"}, {"accept", "application/json, text/plain, */*"}]
  @form "application/x-www-form-urlencoded"

  setup do
    store = seeded_store!()
    server = start_server!(store, promql_engine: @engine)
    # Grafana's default time range "last 1 hour" ending just after the seed data
    %{url: server.url, start: t0() - 3600 + 0.25, end: t0() + 300}
  end

  defp get(url, path), do: decode(http(:get, url <> path, @grafana_headers))
  defp post(url, path, form), do: decode(http(:post, url <> path, @grafana_headers, URI.encode_query(form), @form))

  defp decode({status, headers, body}) do
    assert headers["content-type"] == "application/json"
    {status, json(body)}
  end

  # Grafana's formatting of times: strconv.FormatFloat(seconds, 'f', -1, 64)
  defp ts(seconds) when is_integer(seconds), do: Integer.to_string(seconds)
  defp ts(seconds), do: TimelessMetrics.HTTP.JSON.format_value(seconds)

  describe "data source health check and query editor" do
    test "buildinfo: a semver version Grafana can compare", %{url: url} do
      assert {200, %{"status" => "success", "data" => data}} = get(url, "/api/v1/status/buildinfo")
      assert data["version"] =~ ~r/^\d+\.\d+\.\d+/
      assert is_binary(data["revision"]) and is_binary(data["goVersion"])
    end

    test "health check: instant query of 1+1 (Grafana v10+) answers", %{url: url} do
      # Grafana's health check runs `1+1` as an instant query.
      {status, body} = post(url, "/api/v1/query", %{"query" => "1+1", "time" => ts(t0())})
      assert {200, %{"status" => "success", "data" => %{"resultType" => "scalar", "result" => [_, "2"]}}} = {status, body}
    end

    test "labels (POST with start/end)", %{url: url, start: s, end: e} do
      assert {200, %{"status" => "success", "data" => names}} = post(url, "/api/v1/labels", %{"start" => ts(s), "end" => ts(e)})
      assert names == ["__name__", "code", "instance", "job", "method"]
    end

    test "metric names: label/__name__/values with match[]", %{url: url, start: s, end: e} do
      assert {200, %{"data" => names}} = get(url, "/api/v1/label/__name__/values?start=#{ts(s)}&end=#{ts(e)}")
      assert names == ["http_requests_total", "up"]

      match = URI.encode_www_form(~s({job="db"}))
      assert {200, %{"data" => ["up"]}} = get(url, "/api/v1/label/__name__/values?match[]=#{match}&start=#{ts(s)}&end=#{ts(e)}")
    end

    test "label values of job", %{url: url, start: s, end: e} do
      assert {200, %{"data" => ["api", "db"]}} = get(url, "/api/v1/label/job/values?start=#{ts(s)}&end=#{ts(e)}")
    end

    test "series for a selector", %{url: url, start: s, end: e} do
      match = URI.encode_www_form(~s(http_requests_total{job="api"}))
      assert {200, %{"status" => "success", "data" => series}} = get(url, "/api/v1/series?match[]=#{match}&start=#{ts(s)}&end=#{ts(e)}")

      assert series == [
               %{"__name__" => "http_requests_total", "code" => "200", "job" => "api", "method" => "GET"},
               %{"__name__" => "http_requests_total", "code" => "500", "job" => "api", "method" => "POST"}
             ]
    end

    test "metadata is an object keyed by metric", %{url: url} do
      assert {200, %{"status" => "success", "data" => data}} = get(url, "/api/v1/metadata")
      assert is_map(data)
    end

    test "exemplars: an empty list", %{url: url, start: s, end: e} do
      assert {200, %{"status" => "success", "data" => []}} =
               get(url, "/api/v1/query_exemplars?query=#{URI.encode_www_form("up")}&start=#{ts(s)}&end=#{ts(e)}")
    end
  end

  describe "panel queries" do
    test "time series panel: POST query_range with query, start, end, step", %{url: url} do
      form = %{"query" => ~s(up{job="api"}), "start" => ts(t0()), "end" => ts(t0() + 60), "step" => "15"}
      assert {200, %{"status" => "success", "data" => %{"resultType" => "matrix", "result" => [series]}}} = post(url, "/api/v1/query_range", form)
      assert series["metric"] == %{"__name__" => "up", "instance" => "a:1", "job" => "api"}
      # Grafana reads [float seconds, "value string"] pairs
      assert series["values"] == [[t0(), "1"], [t0() + 15, "0"], [t0() + 30, "0"], [t0() + 45, "0"], [t0() + 60, "0"]]
    end

    test "fractional start/end and step as Grafana formats them", %{url: url} do
      form = %{"query" => ~s(up{job="db"}), "start" => ts(t0() + 0.5), "end" => ts(t0() + 1.5), "step" => "0.5"}
      assert {200, %{"data" => %{"result" => [series]}}} = post(url, "/api/v1/query_range", form)
      assert series["values"] == [[t0() + 0.5, "1"], [t0() + 1, "1"], [t0() + 1.5, "1"]]
    end

    test "stat/table panel: POST instant query with time", %{url: url} do
      form = %{"query" => "up", "time" => ts(t0() + 20)}
      assert {200, %{"data" => %{"resultType" => "vector", "result" => result}}} = post(url, "/api/v1/query", form)

      assert result == [
               %{"metric" => %{"__name__" => "up", "instance" => "a:1", "job" => "api"}, "value" => [t0() + 20, "0"]},
               %{"metric" => %{"__name__" => "up", "instance" => "b:1", "job" => "db"}, "value" => [t0() + 20, "1"]}
             ]
    end

    test "a query error is shown from error/errorType", %{url: url} do
      form = %{"query" => "sum(up", "start" => ts(t0()), "end" => ts(t0() + 60), "step" => "15"}
      assert {400, %{"status" => "error", "errorType" => "bad_data", "error" => "invalid parameter \"query\": 1:" <> _}} = post(url, "/api/v1/query_range", form)
    end

    test "rate and sum by, as Grafana's default panels write them", %{url: url} do
      form = %{"query" => "sum by (code) (rate(http_requests_total[5m]))", "start" => ts(t0() + 60), "end" => ts(t0() + 120), "step" => "60"}
      assert {200, %{"data" => %{"resultType" => "matrix", "result" => result}}} = post(url, "/api/v1/query_range", form)
      # code="500" has a single sample, so no rate
      assert [%{"metric" => %{"code" => "200"}, "values" => [[t1, v1], [t2, v2]]}] = result
      assert {t1, t2} == {t0() + 60, t0() + 120}
      assert {f1, ""} = Float.parse(v1)
      assert {f2, ""} = Float.parse(v2)
      assert f1 > 0 and f2 > 0
      assert Enum.all?(result, fn s -> Enum.all?(s["values"], fn [t, v] -> is_number(t) and is_binary(v) end) end)
    end
  end
end
