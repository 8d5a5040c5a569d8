Code.require_file("ingest_helpers.exs", __DIR__)

defmodule TimelessMetrics.Ingest.EndToEndTest do
  @moduledoc """
  The whole pipeline with the engine's parsers (`TimelessMetrics.Native.ingest/4`):
  skipped while the loaded NIF lacks them.
  """
  use ExUnit.Case, async: true

  import TimelessMetrics.IngestHelpers

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.{DB, IngestStats, TestStore, WriterProcess}
  alias TimelessMetrics.HTTP.Ingest, as: Handler

  @moduletag :tmp_dir

  @t 1_700_000_000_000

  test "Prometheus text: samples, extra labels, rejected lines and metadata", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir)

    body = """
    # HELP e2e_requests_total Requests served.
    # TYPE e2e_requests_total counter
    e2e_requests_total{code="200"} 5 #{@t}
    e2e_requests_total{code="500"} 1 #{@t}
    this is not a sample
    """

    req = request(:zlib.gzip(body), %{"extra_label" => "dc=eu"}, %{"content-encoding" => "gzip"})

    ExUnit.CaptureLog.capture_log(fn ->
      assert {204, _, _} = Handler.handle(:prometheus_text, req, config(s))
      await_drained(s)
    end)

    assert TM.query(s, "e2e_requests_total", %{"code" => "200", "dc" => "eu"},
             from: 0,
             unit: :millisecond
           ) == {:ok, [{@t, 5.0}]}

    assert TM.query(s, "e2e_requests_total", %{"code" => "500", "dc" => "eu"},
             from: 0,
             unit: :millisecond
           ) == {:ok, [{@t, 1.0}]}

    snap = IngestStats.snapshot(s)
    assert snap.points.prometheus_text == 2
    assert [{{:prometheus_text, _reason}, 1}] = Map.to_list(snap.rejected)

    assert {:ok, %{rows: [["counter", "Requests served."]]}} =
             DB.query(s, "SELECT type, help FROM metric_metadata WHERE metric_name = ?1", [
               "e2e_requests_total"
             ])
  end

  test "Influx line protocol with db and precision", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir)
    q = %{"db" => "telegraf", "precision" => "s"}

    assert {204, _, _} =
             Handler.handle(
               :influx,
               request("e2e_cpu,host=a usage=1.5 1700000000\n", q),
               config(s)
             )

    await_drained(s)

    assert {:ok, [row]} =
             TM.query_multi(s, nil, %{"host" => "a", "db" => "telegraf"},
               from: 0,
               unit: :millisecond
             )

    assert String.starts_with?(row.metric, "e2e_cpu")
    assert row.points == [{@t, 1.5}]
  end

  test "VictoriaMetrics JSON lines, and the timestamp parameter for samples without one", %{
    tmp_dir: dir
  } do
    s = TestStore.start!(data_dir: dir)

    line =
      ~s({"metric":{"__name__":"e2e_vm","a":"b"},"values":[1,2],"timestamps":[#{@t},#{@t + 1000}]}\n)

    assert {204, _, _} = Handler.handle(:vm_json, request(line), config(s))

    assert {204, _, _} =
             Handler.handle(
               :prometheus_text,
               request("e2e_nots 3\n", %{"timestamp" => "1700000000"}),
               config(s)
             )

    await_drained(s)

    assert TM.query(s, "e2e_vm", %{"a" => "b"}, from: 0, unit: :millisecond) ==
             {:ok, [{@t, 1.0}, {@t + 1000, 2.0}]}

    assert TM.query(s, "e2e_nots", %{}, from: 0, unit: :millisecond) == {:ok, [{@t, 3.0}]}
  end

  test "every body answered 204 is stored after kill -9 of the VM", %{tmp_dir: dir} do
    port = start_writer(dir)
    acked = WriterProcess.acks(port, 30)
    :ok = WriterProcess.kill(port)
    acked = WriterProcess.drain(port, acked)

    s = TestStore.start!(data_dir: dir)
    await_drained(s, 60_000)
    assert IngestStats.snapshot(s).spool_pending == 0

    {:ok, rows} = TM.query_multi(s, "e2e_crash", %{}, from: 0, unit: :millisecond)

    got =
      rows
      |> Enum.flat_map(fn r -> Enum.map(r.points, fn {t, _} -> {r.labels["w"], t} end) end)
      |> MapSet.new()

    for b <- acked, i <- 0..99 do
      key = {"#{rem(i, 10)}", @t + b * 100 + i}

      assert MapSet.member?(got, key),
             "point #{inspect(key)} of body #{b} was answered 204 but is missing"
    end
  end

  defp start_writer(dir) do
    script = """
    {:ok, _} = TimelessMetrics.start_link(name: :e2e_crash, data_dir: #{inspect(dir)}, maintenance_interval: 20)
    config = %{store: :e2e_crash, max_body_bytes: 1_048_576}
    send_body = fn send_body, body ->
      req = %{method: "POST", path: "/api/v1/import/prometheus", query: %{}, headers: %{}, body: body}
      case TimelessMetrics.HTTP.Ingest.handle(:prometheus_text, req, config) do
        {204, _, _} -> :ok
        {429, _, _} -> Process.sleep(5); send_body.(send_body, body)
      end
    end
    Stream.iterate(0, &(&1 + 1))
    |> Enum.each(fn b ->
      body = for i <- 0..99, into: "", do: ~s(e2e_crash{w="\#{rem(i, 10)}"} \#{i} \#{#{@t} + b * 100 + i}\\n)
      send_body.(send_body, body)
      IO.puts("ack \#{b}")
    end)
    """

    WriterProcess.start(script)
  end
end
