defmodule TimelessMetrics.HTTP.ConnectionTest do
  # HTTP/1.1 framing of TimelessMetrics.HTTP.Connection, over raw sockets.
  use ExUnit.Case, async: true
  import TimelessMetrics.TestStore, only: [wait_until: 1, wait_until: 2]

  import TimelessMetrics.HTTPHelpers

  alias TimelessMetrics.HTTP.Connection

  setup do
    store = seeded_store!()
    server = start_server!(store, max_body_bytes: 1000, read_timeout: 300)
    %{server: server}
  end

  defp responses(text), do: length(String.split(text, "HTTP/1.1 ")) - 1

  test "pipelined requests are answered in order on one connection", %{server: server} do
    reqs =
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" <>
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" <>
        "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\nmatch[]=up" <>
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    {:open, text} = raw(server.port, reqs, 1_000)
    statuses = Regex.scan(~r/HTTP\/1\.1 (\d{3}) /, text) |> Enum.map(fn [_, s] -> s end)
    assert statuses == ["200", "404", "200", "200"]
  end

  test "HTTP/1.0 closes unless it asks for keep-alive; Connection: close closes", %{server: server} do
    {:closed, text} = raw(server.port, "GET /health HTTP/1.0\r\n\r\n", 1_000)
    assert text =~ ~r/^HTTP\/1.1 200 OK\r\n/
    assert text =~ "connection: close\r\n"

    {:open, text} = raw(server.port, "GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1_000)
    assert responses(text) == 1
    refute text =~ "connection: close"

    {:closed, text} = raw(server.port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n", 1_000)
    assert responses(text) == 1
  end

  test "responses carry Content-Length and Date; HEAD has no body; 204 has no length", %{server: server} do
    {:open, text} = raw(server.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 1_000)
    assert text =~ "content-length: 2\r\n"
    assert [_, date] = Regex.run(~r/\r\ndate: ([^\r]+)\r\n/, text)
    assert date =~ ~r/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/
    assert String.ends_with?(text, "\r\n\r\nOK")

    {:open, text} = raw(server.port, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", 1_000)
    assert text =~ "content-length: 2\r\n"
    assert String.ends_with?(text, "\r\n\r\n")

    body = "up 1\n"

    {:closed, text} =
      raw(
        server.port,
        "POST /api/v1/import/prometheus HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: #{byte_size(body)}\r\n\r\n" <> body
      )

    assert text =~ ~r/^HTTP\/1.1 204 No Content\r\n/
    refute text =~ "content-length"
  end

  test "a request split across many packets is read whole", %{server: server} do
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", server.port, [:binary, active: false, nodelay: true])
    req = "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\nmatch[]=up"

    for <<byte::binary-size(1) <- req>> do
      :ok = :gen_tcp.send(socket, byte)
    end

    {:ok, text} = :gen_tcp.recv(socket, 0, 2_000)
    :gen_tcp.close(socket)
    assert text =~ ~r/^HTTP\/1.1 200 /
    assert text =~ ~s("status":"success")
  end

  test "Expect: 100-continue is answered before the body is sent", %{server: server} do
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", server.port, [:binary, active: false])

    :ok =
      :gen_tcp.send(
        socket,
        "POST /api/v1/labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
      )

    assert {:ok, "HTTP/1.1 100 Continue\r\n\r\n"} = :gen_tcp.recv(socket, 0, 2_000)
    :ok = :gen_tcp.send(socket, "match[]=up")
    {:ok, text} = :gen_tcp.recv(socket, 0, 2_000)
    :gen_tcp.close(socket)
    assert text =~ ~r/^HTTP\/1.1 200 /
  end

  test "malformed request line, oversized head, too many headers, and a slow head", %{server: server} do
    {:closed, text} = raw(server.port, "NOT A REQUEST\r\n\r\n", 1_000)
    assert text =~ ~r/^HTTP\/1.1 400 /
    assert text =~ "malformed request"

    {:closed, text} = raw(server.port, "GET /health HTTP/1.1\r\nX-Big: " <> String.duplicate("a", 70_000), 1_000)
    assert text =~ ~r/^HTTP\/1.1 431 /

    headers = for i <- 1..201, into: "", do: "X-H#{i}: v\r\n"
    {:closed, text} = raw(server.port, "GET /health HTTP/1.1\r\n" <> headers <> "\r\n", 1_000)
    assert text =~ ~r/^HTTP\/1.1 431 /
    assert text =~ "more than 200 header lines"

    # read_timeout is 300 ms in this server
    {:closed, text} = raw(server.port, "GET /health HTTP/1.1\r\nHost: x\r\n", 2_000)
    assert text =~ ~r/^HTTP\/1.1 408 /
  end

  test "repeated headers are joined; header names are case-insensitive", %{server: server} do
    body = "match[]=up"

    req =
      "POST /api/v1/labels HTTP/1.1\r\nConnection: close\r\nhOsT: x\r\nCONTENT-TYPE: application/x-www-form-urlencoded\r\n" <>
        "content-length: #{byte_size(body)}\r\nX-A: 1\r\nX-A: 2\r\n\r\n" <> body

    {:closed, text} = raw(server.port, req)
    assert text =~ ~r/^HTTP\/1.1 200 /
    assert text =~ ~s(["__name__","instance","job"])
  end

  test "a keep-alive connection does not keep a large body alive after answering it" do
    test = self()
    store = TimelessMetrics.TestStore.start!(ingest_fun: fn _, _, body, _ -> send(test, {:ingested, byte_size(body)}); {:ok, %{samples: 1}} end)
    server = start_server!(store)
    body = IO.iodata_to_binary(for i <- 1..30_000, do: "m#{i} #{i}\n")
    size = byte_size(body)
    assert size > 262_144

    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", server.port, [:binary, active: false])
    :ok = :gen_tcp.send(socket, "POST /api/v1/import/prometheus HTTP/1.1\r\nHost: x\r\nContent-Length: #{size}\r\n\r\n" <> body)
    {:ok, text} = :gen_tcp.recv(socket, 0, 5_000)
    assert text =~ ~r/^HTTP\/1.1 204 /
    assert_receive {:ingested, ^size}, 5_000

    # the server side of this connection: the process whose socket's peer is our socket
    {:ok, local} = :inet.sockname(socket)
    [conn] = for port <- Port.list(), :inet.peername(port) == {:ok, local}, do: Keyword.fetch!(Port.info(port), :connected)

    # it is waiting for the next request, holding no binary of the body's size (it holds
    # one until its heap is collected, which a waiting process would not do by itself)
    assert wait_until(fn -> Process.info(conn, :binary) |> elem(1) |> Enum.all?(fn {_, bytes, _} -> bytes < size end) end)
    assert Process.alive?(conn)
    :gen_tcp.close(socket)
  end

  test "a busy connection keeps a larger heap; an idle one gives it back", %{server: server} do
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", server.port, [:binary, active: false])
    :ok = :gen_tcp.send(socket, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    {:ok, text} = :gen_tcp.recv(socket, 0, 5_000)
    assert text =~ ~r/^HTTP\/1.1 200 /

    {:ok, local} = :inet.sockname(socket)
    [conn] = for port <- Port.list(), :inet.peername(port) == {:ok, local}, do: Keyword.fetch!(Port.info(port), :connected)
    min_heap = fn -> conn |> Process.info(:garbage_collection) |> elem(1) |> Keyword.fetch!(:min_heap_size) end

    # Half a request head keeps the connection busy (it waits for the rest, not for a new
    # request), however long this test takes to look: checking right after a response
    # would race with the 100 ms after which a waiting connection counts as idle.
    :ok = :gen_tcp.send(socket, "GET /health HTTP/1.1\r\n")
    assert wait_until(fn -> min_heap.() > 1000 end, 300)
    :ok = :gen_tcp.send(socket, "Host: x\r\n\r\n")
    {:ok, text} = :gen_tcp.recv(socket, 0, 5_000)
    assert text =~ ~r/^HTTP\/1.1 200 /

    # with no request for a while, it collects down to the small heap
    assert wait_until(fn -> min_heap.() < 1000 end, 300)
    assert {:total_heap_size, words} = Process.info(conn, :total_heap_size)
    assert words < 1000

    # the next request is served as before, with the larger heap again
    :ok = :gen_tcp.send(socket, "GET /health HTTP/1.1\r\n")
    assert wait_until(fn -> min_heap.() > 1000 end, 300)
    :ok = :gen_tcp.send(socket, "Host: x\r\n\r\n")
    {:ok, text} = :gen_tcp.recv(socket, 0, 5_000)
    assert text =~ ~r/^HTTP\/1.1 200 /
    :gen_tcp.close(socket)
  end

  test "http_date/1 formats RFC 9110 dates" do
    assert Connection.http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert Connection.http_date(1_795_000_000) == "Wed, 18 Nov 2026 11:06:40 GMT"
  end
end
