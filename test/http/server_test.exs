defmodule TimelessMetrics.HTTP.ServerTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.HTTPHelpers

  setup do
    store = seeded_store!()
    server = start_server!(store, max_body_bytes: 1000, read_timeout: 300)
    %{store: store, server: server, url: server.url}
  end

  describe "discovery over HTTP" do
    test "every endpoint under both prefixes", %{url: url} do
      for prefix <- ["", "/prometheus"] do
        base = url <> prefix <> "/api/v1"
        assert {200, h, body} = http(:get, base <> "/labels")
        assert h["content-type"] == "application/json"
        assert json(body) == %{"status" => "success", "data" => ["__name__", "code", "instance", "job", "method"]}

        assert {200, _, body} = http(:get, base <> "/label/instance/values?match[]=up")
        assert json(body)["data"] == ["a:1", "b:1"]

        assert {200, _, body} = http(:get, base <> "/series?match[]=up&limit=1")
        assert %{"data" => [_], "warnings" => ["results truncated due to limit"]} = json(body)

        assert {200, _, body} = http(:get, base <> "/metadata")
        assert json(body) == %{"status" => "success", "data" => %{}}

        assert {200, _, body} = http(:get, base <> "/status/buildinfo")
        assert %{"version" => _, "goVersion" => _} = json(body)["data"]

        assert {200, _, body} = http(:get, base <> "/query_exemplars")
        assert json(body)["data"] == []
      end
    end

    test "POST form bodies", %{url: url} do
      assert {200, _, body} = http(:post, url <> "/api/v1/series", [], "match[]=" <> URI.encode_www_form(~s(up{job="db"})))
      assert json(body)["data"] == [%{"__name__" => "up", "job" => "db", "instance" => "b:1"}]

      assert {200, _, body} =
               http(:post, url <> "/prometheus/api/v1/label/job/values", [], "start=#{t0() - 90_000}&end=#{t0() - 1}")

      assert json(body)["data"] == ["legacy"]
    end

    test "native query_range over HTTP", %{url: url} do
      assert {200, _, body} = http(:get, url <> "/api/v1/query_range?metric=up&label.job=db&start=#{t0()}&end=#{t0() + 10}")

      assert json(body)["data"] == %{
               "resultType" => "matrix",
               "result" => [%{"metric" => %{"__name__" => "up", "job" => "db", "instance" => "b:1"}, "values" => [[t0(), "1"]]}]
             }
    end
  end

  describe "export" do
    test "streamed with chunked transfer encoding", %{url: url, server: server} do
      assert {200, h, body} = http(:get, url <> "/api/v1/export?match[]=up")
      assert h["content-type"] =~ "application/stream+json"
      lines = body |> String.split("\n", trim: true) |> Enum.map(&json/1)
      assert Enum.map(lines, & &1["metric"]["job"]) == ["api", "db"]
      assert hd(lines)["timestamps"] == [t0() * 1000, (t0() + 15) * 1000]

      {_, raw} = raw(server.port, "GET /api/v1/export?match[]=up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert raw =~ ~r/transfer-encoding: chunked/i
      assert String.ends_with?(raw, "\r\n0\r\n\r\n")
    end
  end

  describe "errors over HTTP" do
    test "404, 405 and bad selector envelopes", %{url: url} do
      assert {404, _, body} = http(:get, url <> "/nope")
      assert %{"status" => "error", "errorType" => "not_found"} = json(body)
      assert {405, h, _} = http(:delete, url <> "/api/v1/series")
      assert h["allow"] == "GET, HEAD, POST"
      assert {400, _, body} = http(:get, url <> "/api/v1/series?match[]=" <> URI.encode_www_form("up{"))
      assert %{"errorType" => "bad_data", "error" => "invalid parameter \"match[]\": 1:4: parse error" <> _} = json(body)
    end

    test "a Content-Length over the limit is 413 without reading the body", %{server: server} do
      # the body is never sent: the answer must come anyway, and the connection closes
      {:closed, response} =
        raw(server.port, "POST /api/v1/series HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n")

      assert response =~ ~r/^HTTP\/1.1 413 /
      assert response =~ ~s("errorType":"bad_data")
      assert response =~ "5000 bytes is over the limit of 1000 bytes"
    end

    test "a chunked body over the limit is 413; under it is served", %{server: server} do
      chunk = String.duplicate("a", 600)
      head = "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
      chunks = "258\r\n#{chunk}\r\n258\r\n#{chunk}\r\n0\r\n\r\n"
      {:closed, response} = raw(server.port, head <> chunks)
      assert response =~ ~r/^HTTP\/1.1 413 /

      form = "match[]=up"
      ok_body = "#{Integer.to_string(byte_size(form), 16)}\r\n#{form}\r\n0\r\n\r\n"
      {_, response} = raw(server.port, String.replace(head, "Host: x", "Host: x\r\nConnection: close") <> ok_body)
      assert response =~ ~r/^HTTP\/1.1 200 /
      assert response =~ ~s(["__name__","instance","job"])
    end

    test "Content-Length lies: short body times out (408), garbage is 400", %{server: server} do
      {:closed, response} =
        raw(server.port, "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nmatch[]=up")

      assert response =~ ~r/^HTTP\/1.1 408 /
      assert response =~ ~s("errorType":"timeout")

      {:closed, response} = raw(server.port, "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n")
      assert response =~ ~r/^HTTP\/1.1 400 /
      assert response =~ "invalid Content-Length"

      {:closed, response} =
        raw(server.port, "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")

      assert response =~ ~r/^HTTP\/1.1 400 /
    end

    test "keep-alive: several requests on one connection", %{server: server} do
      req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
      {:open, response} = raw(server.port, req <> req <> req, 300)
      assert length(String.split(response, "HTTP/1.1 200 OK")) == 4
    end
  end

  describe "auth over HTTP" do
    setup %{store: store} do
      %{secured: start_server!(store, tokens: ["full"], read_only_tokens: ["ro"])}
    end

    test "401 without or with a wrong token; read-only token reads, 403 on force_flush", %{secured: s} do
      assert {401, h, body} = http(:get, s.url <> "/api/v1/labels")
      assert h["www-authenticate"] == "Bearer"
      assert %{"status" => "error"} = json(body)
      assert {401, _, _} = http(:get, s.url <> "/api/v1/labels", [{"authorization", "Bearer wrong"}])
      assert {200, _, _} = http(:get, s.url <> "/api/v1/labels", [{"authorization", "Bearer ro"}])
      assert {403, _, _} = http(:get, s.url <> "/internal/force_flush", [{"authorization", "Bearer ro"}])
      assert {200, _, _} = http(:get, s.url <> "/internal/force_flush", [{"authorization", "Bearer full"}])
      assert {200, _, "OK"} = http(:get, s.url <> "/health")
    end
  end

  describe "ops over HTTP" do
    test "health/detailed and /metrics with request counters", %{url: url} do
      assert {200, _, "OK"} = http(:get, url <> "/health")
      assert {404, _, _} = http(:get, url <> "/missing")
      assert {200, _, body} = http(:get, url <> "/health/detailed")
      detailed = json(body)
      assert detailed["status"] == "ok"
      assert detailed["store"]["info"]["series"] == 5
      assert detailed["http"]["requests_total"] == 2

      assert {200, h, text} = http(:get, url <> "/metrics")
      assert h["content-type"] =~ "text/plain; version=0.0.4"
      assert text =~ "\ntimeless_series 5\n"
      assert text =~ ~s(timeless_http_requests_total{path="/health",code="200"} 1\n)
      assert text =~ ~s(timeless_http_requests_total{path="other",code="404"} 1\n)
      assert text =~ ~s(timeless_http_request_duration_seconds_count{path="/health/detailed"} 1\n)
      assert text =~ ~s(timeless_http_request_duration_seconds_bucket{path="/health",le="+Inf"} 1\n)
    end

    test "port/1 finds a server by its name or by its store", %{store: store, server: server} do
      assert TimelessMetrics.HTTP.port(server.name) == server.port
      {:ok, _} = start_supervised({TimelessMetrics.HTTP, store: store, port: 0}, id: :default_named)
      assert TimelessMetrics.HTTP.port(store) > 0
      assert TimelessMetrics.HTTP.port(store) != server.port
    end
  end
end
