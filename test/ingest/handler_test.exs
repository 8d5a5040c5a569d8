Code.require_file("ingest_helpers.exs", __DIR__)

defmodule TimelessMetrics.HTTP.IngestTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.IngestHelpers

  alias TimelessMetrics.HTTP.Ingest, as: Handler
  alias TimelessMetrics.{IngestStats, TestStore}

  doctest TimelessMetrics.HTTP.Ingest

  setup do
    %{store: TestStore.start!(ingest_fun: reporting(self()), ingest_workers: 2)}
  end

  test "204 at once, then the body reaches the ingest function with the receive time", %{store: s} do
    before = System.os_time(:millisecond)
    assert {204, [], ""} = Handler.handle(:prometheus_text, request("up 1\n"), config(s))
    assert_receive {:ingested, ^s, :prometheus_text, "up 1\n", opts}, 5_000
    assert opts.extra_labels == []
    assert opts.precision == :ms
    assert opts.default_ts_ms >= before and opts.default_ts_ms <= System.os_time(:millisecond)
  end

  test "extra_label (repeated) and the timestamp parameter are passed on", %{store: s} do
    q = %{"extra_label" => ["dc=eu-1", "team=db=x"], "timestamp" => "1700000000"}
    assert {204, _, _} = Handler.handle(:vm_json, request("{}"), config(s))
    assert {204, _, _} = Handler.handle(:vm_json, request("{}\n", q), config(s))
    assert_receive {:ingested, ^s, :vm_json, "{}\n", opts}, 5_000
    assert opts.extra_labels == [{"dc", "eu-1"}, {"team", "db=x"}]
    assert opts.default_ts_ms == 1_700_000_000_000
  end

  test "Influx db becomes the label db and precision is passed on", %{store: s} do
    q = %{"db" => "telegraf", "precision" => "u", "extra_label" => "env=prod"}
    assert {204, _, _} = Handler.handle(:influx, request("cpu v=1 1"), config(s))
    assert_receive {:ingested, ^s, :influx, "cpu v=1 1", %{precision: :ns, extra_labels: []}}, 5_000
    assert {204, _, _} = Handler.handle(:influx, request("cpu v=2 2", q), config(s))
    assert_receive {:ingested, ^s, :influx, "cpu v=2 2", opts}, 5_000
    assert opts.extra_labels == [{"env", "prod"}, {"db", "telegraf"}]
    assert opts.precision == :us
  end

  test "db means nothing outside Influx", %{store: s} do
    assert {204, _, _} = Handler.handle(:prometheus_text, request("up 1", %{"db" => "x"}), config(s))
    assert_receive {:ingested, ^s, :prometheus_text, "up 1", %{extra_labels: []}}, 5_000
  end

  test "a gzip or deflate body is decoded before ingestion", %{store: s} do
    gz = request(:zlib.gzip("cpu v=1 1\n"), %{}, %{"content-encoding" => "gzip"})
    assert {204, _, _} = Handler.handle(:influx, gz, config(s))
    assert_receive {:ingested, ^s, :influx, "cpu v=1 1\n", _}, 5_000

    df = request(:zlib.compress("up 2\n"), %{}, %{"content-encoding" => "deflate"})
    assert {204, _, _} = Handler.handle(:prometheus_text, df, config(s))
    assert_receive {:ingested, ^s, :prometheus_text, "up 2\n", _}, 5_000
  end

  test "400 naming gzip for a body that is not gzip", %{store: s} do
    req = request("definitely not gzip", %{}, %{"content-encoding" => "gzip"})
    assert {400, headers, msg} = Handler.handle(:influx, req, config(s))
    assert {"content-type", "text/plain; charset=utf-8"} in headers
    assert msg =~ "gzip"
    refute_receive {:ingested, _, _, _, _}, 50
  end

  test "400 naming gzip for a truncated gzip body", %{store: s} do
    gz = :zlib.gzip(:binary.copy("cpu v=1 1\n", 1000))
    req = request(binary_part(gz, 0, div(byte_size(gz), 2)), %{}, %{"content-encoding" => "gzip"})
    assert {400, _, msg} = Handler.handle(:influx, req, config(s))
    assert msg =~ "gzip"
  end

  test "413 naming the encoding for a 200 MB gzip bomb with a 1 MiB cap, fast", %{store: s} do
    bomb = gzip_zeros(200)
    assert byte_size(bomb) < 1_048_576
    req = request(bomb, %{}, %{"content-encoding" => "gzip"})
    {us, {status, _, msg}} = :timer.tc(fn -> Handler.handle(:prometheus_text, req, config(s)) end)
    assert status == 413
    assert msg =~ "gzip"
    assert us < 1_000_000, "took #{us} us"
    refute_receive {:ingested, _, _, _, _}, 50
  end

  test "413 for a plain body over the cap", %{store: s} do
    assert {413, _, msg} = Handler.handle(:prometheus_text, request(:binary.copy("x", 2000)), config(s, 1000))
    assert msg =~ "1000"
  end

  test "400 naming precision, extra_label or timestamp for bad values", %{store: s} do
    for {query, name} <- [
          {%{"precision" => "fortnight"}, "precision"},
          {%{"precision" => "h"}, "precision"},
          {%{"extra_label" => "novalue"}, "extra_label"},
          {%{"extra_label" => "1bad=x"}, "extra_label"},
          {%{"timestamp" => "yesterday"}, "timestamp"}
        ] do
      assert {400, _, msg} = Handler.handle(:influx, request("cpu v=1", query), config(s))

      assert msg =~ "invalid query parameter #{name}=", "#{inspect(query)}: #{msg}"
    end

    refute_receive {:ingested, _, _, _, _}, 50
  end

  test "415 naming an unknown Content-Encoding", %{store: s} do
    req = request("x", %{}, %{"content-encoding" => "br"})
    assert {415, _, msg} = Handler.handle(:influx, req, config(s))
    assert msg =~ "br"
  end

  test "remote write refuses a non-snappy Content-Encoding", %{store: s} do
    req = request("x", %{}, %{"content-encoding" => "gzip"})
    assert {415, _, msg} = Handler.handle(:remote_write, req, config(s))
    assert msg =~ "snappy"
  end

  test "an empty body is answered 204 and not queued", %{store: s} do
    assert {204, _, _} = Handler.handle(:influx, request(""), config(s))
    refute_receive {:ingested, _, _, _, _}, 50
    assert IngestStats.snapshot(s).requests.influx == 1
  end

  test "503 with Retry-After when the store is not running" do
    assert {503, headers, msg} = Handler.handle(:influx, request("cpu v=1"), config(:no_such_store_here))
    assert {"retry-after", "5"} in headers
    assert msg =~ "not running"
  end

  test "requests and refusals are counted per format", %{store: s} do
    Handler.handle(:influx, request("cpu v=1 1"), config(s))
    Handler.handle(:influx, request("cpu v=1 1", %{"precision" => "x"}), config(s))
    Handler.handle(:vm_json, request("{}", %{}, %{"content-encoding" => "gzip"}), config(s))
    await_drained(s)

    snap = IngestStats.snapshot(s)
    assert snap.requests == %{influx: 2, vm_json: 1, prometheus_text: 0, remote_write: 0}
    assert snap.refused == %{{:influx, :bad_parameter} => 1, {:vm_json, :bad_encoding} => 1}
    assert snap.points.influx == 1
  end
end

defmodule TimelessMetrics.HTTP.IngestBackpressureTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.IngestHelpers

  alias TimelessMetrics.HTTP.Ingest, as: Handler
  alias TimelessMetrics.{IngestStats, TestStore}

  test "429 with Retry-After when the queue is full by bodies, accepted again once drained" do
    s = TestStore.start!(ingest_fun: blocking(self()), ingest_workers: 1, ingest_queue_max_bodies: 2)

    assert {204, _, _} = Handler.handle(:influx, request("a v=1"), config(s))
    assert_receive {:ingesting, ^s, worker, "a v=1"}, 5_000
    assert {204, _, _} = Handler.handle(:influx, request("b v=1"), config(s))
    assert {429, headers, msg} = Handler.handle(:influx, request("c v=1"), config(s))
    assert {"retry-after", "1"} in headers
    assert msg =~ "full"
    assert IngestStats.snapshot(s).queue_depth == 2
    assert IngestStats.snapshot(s).refused == %{{:influx, :queue_full} => 1}

    send(worker, :release)
    assert_receive {:ingested, ^s, :influx, "a v=1", _}, 5_000
    assert_receive {:ingesting, ^s, ^worker, "b v=1"}, 5_000
    assert {204, _, _} = Handler.handle(:influx, request("c v=1"), config(s))
    send(worker, :release)
    assert_receive {:ingesting, ^s, ^worker, "c v=1"}, 5_000
    send(worker, :release)
    assert_receive {:ingested, ^s, :influx, "c v=1", _}, 5_000
    await_drained(s)
  end

  test "429 when the queue is full by bytes (no wait)" do
    s = TestStore.start!(ingest_fun: blocking(self()), ingest_workers: 1, ingest_queue_max_bytes: 100, ingest_queue_wait: 0)
    body = :binary.copy("x", 60)

    assert {204, _, _} = Handler.handle(:influx, request(body), config(s))
    assert_receive {:ingesting, ^s, worker, ^body}, 5_000
    assert {429, _, _} = Handler.handle(:influx, request(body), config(s))
    assert IngestStats.snapshot(s).queue_bytes == 60
    send(worker, :release)
    await_drained(s)
    assert IngestStats.snapshot(s).queue_bytes == 0
    assert {204, _, _} = Handler.handle(:influx, request(body), config(s))
    assert_receive {:ingesting, ^s, ^worker, ^body}, 5_000
    send(worker, :release)
  end

  test "a request over the byte bound waits for room, then gets 204; past the wait, 429" do
    s = TestStore.start!(ingest_fun: blocking(self()), ingest_workers: 1, ingest_queue_max_bytes: 100, ingest_queue_wait: 3_000)
    first = :binary.copy("x", 60)
    second = :binary.copy("y", 60)

    assert {204, _, _} = Handler.handle(:influx, request(first), config(s))
    assert_receive {:ingesting, ^s, worker, ^first}, 5_000
    waiting = Task.async(fn -> elem(Handler.handle(:influx, request(second), config(s)), 0) end)
    # still waiting while the first body holds the bytes
    assert Task.yield(waiting, 200) == nil
    send(worker, :release)
    assert Task.await(waiting, 5_000) == 204
    assert_receive {:ingesting, ^s, ^worker, ^second}, 5_000

    # the worker holds `second` now: a third body waits the full 3 s and is refused
    {micros, {status, _, _}} = :timer.tc(fn -> Handler.handle(:influx, request(first), config(s)) end)
    assert status == 429
    assert micros >= 3_000_000
    send(worker, :release)
    await_drained(s)
  end

  test "concurrent requests never overfill the queue" do
    s = TestStore.start!(ingest_fun: blocking(self()), ingest_workers: 1, ingest_queue_max_bodies: 10)

    statuses =
      1..50
      |> Task.async_stream(fn i -> elem(Handler.handle(:influx, request("m v=#{i}"), config(s)), 0) end, max_concurrency: 50)
      |> Enum.map(fn {:ok, status} -> status end)

    assert Enum.count(statuses, &(&1 == 204)) == 10
    assert Enum.count(statuses, &(&1 == 429)) == 40
    assert IngestStats.snapshot(s).queue_depth == 10

    for _ <- 1..10 do
      assert_receive {:ingesting, ^s, worker, _}, 5_000
      send(worker, :release)
    end

    await_drained(s)
  end
end
