Code.require_file("ingest_helpers.exs", __DIR__)

defmodule TimelessMetrics.Ingest.SpoolTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.IngestHelpers
  import ExUnit.CaptureLog

  alias TimelessMetrics.HTTP.Ingest, as: Handler
  alias TimelessMetrics.{IngestStats, TestStore, WriterProcess}
  alias TimelessMetrics.Ingest.Spool

  doctest TimelessMetrics.Ingest.Spool

  @moduletag :tmp_dir

  describe "files" do
    test "a flipped byte or a short file is detected", %{tmp_dir: dir} do
      :ok = Spool.init(dir)

      {:ok, path, size} =
        Spool.write(dir, 1, :vm_json, %{precision: :ms}, "{\"metric\":{}}", false)

      assert File.stat!(path).size == size
      bin = File.read!(path)
      <<head::binary-size(size - 3), b, tail::binary>> = bin
      File.write!(path, [head, <<Bitwise.bxor(b, 1)>>, tail])
      assert Spool.read(path) == {:error, :corrupt}
      File.write!(path, binary_part(bin, 0, size - 1))
      assert Spool.read(path) == {:error, :corrupt}
    end

    test "init deletes half-written files, scan sorts by sequence and sets aside junk", %{
      tmp_dir: dir
    } do
      :ok = Spool.init(dir)
      {:ok, p10, s10} = Spool.write(dir, 10, :influx, %{}, "b", true)
      {:ok, p9, s9} = Spool.write(dir, 9, :influx, %{}, "a", false)
      File.write!(Path.join(dir, "00000000000000000011.tmp"), "half")
      File.write!(Path.join(dir, "00000000000000000012.req"), "short")

      :ok = Spool.init(dir)
      refute File.exists?(Path.join(dir, "00000000000000000011.tmp"))
      {files, bad} = with_log(fn -> Spool.scan(dir) end) |> elem(0)
      assert files == [{9, p9, s9}, {10, p10, s10}]
      assert [_] = bad
      assert File.exists?(Path.join(dir, "00000000000000000012.corrupt"))
    end
  end

  describe "a store on disk" do
    test "a body is spooled before 204 and its file deleted once ingested", %{tmp_dir: dir} do
      s = TestStore.start!(data_dir: dir, ingest_fun: blocking(self()), ingest_workers: 1)
      spool = Spool.dir(dir)

      assert {204, _, _} = Handler.handle(:influx, request("cpu v=1 1"), config(s))
      assert_receive {:ingesting, ^s, worker, "cpu v=1 1"}, 5_000
      assert [path] = Path.wildcard(Path.join(spool, "*.req"))
      assert {:ok, %{format: :influx}, "cpu v=1 1"} = Spool.read(path)
      assert IngestStats.snapshot(s).spool_bytes == File.stat!(path).size

      send(worker, :release)
      await_drained(s)
      assert Path.wildcard(Path.join(spool, "*")) == []
      assert IngestStats.snapshot(s).spool_bytes == 0
    end

    test "bodies accepted before a brutal kill of the store are ingested after restart, with their options",
         %{tmp_dir: dir} do
      name = TestStore.unique_name("spool_replay")
      held = fn _, _, _, _ -> {:error, {:unavailable, "held by the test"}} end
      opts = [name: name, data_dir: dir, ingest_workers: 2]

      {:ok, sup} = TimelessMetrics.start_link([ingest_fun: held] ++ opts)

      q = %{
        "extra_label" => "dc=eu",
        "db" => "tg",
        "precision" => "s",
        "timestamp" => "1700000000"
      }

      capture_log(fn ->
        for i <- 1..5 do
          assert {204, _, _} =
                   Handler.handle(:influx, request("cpu v=#{i} #{i}", q), config(name))
        end

        # the workers got the bodies and put them back: the spool still holds them
        Process.sleep(50)
        kill_store(sup, name)
      end)

      assert length(Path.wildcard(Path.join(Spool.dir(dir), "*.req"))) == 5

      s = TestStore.start!([ingest_fun: reporting(self())] ++ opts)
      await_drained(s)

      got =
        for _ <- 1..5 do
          assert_receive {:ingested, ^s, :influx, body, opts}, 5_000

          assert opts == %{
                   extra_labels: [{"dc", "eu"}, {"db", "tg"}],
                   precision: :s,
                   default_ts_ms: 1_700_000_000_000
                 }

          body
        end

      assert Enum.sort(got) == for(i <- 1..5, do: "cpu v=#{i} #{i}")
      assert Path.wildcard(Path.join(Spool.dir(dir), "*")) == []

      # new bodies get sequence numbers after the replayed ones
      assert {204, _, _} = Handler.handle(:influx, request("after"), config(s))
      assert_receive {:ingested, ^s, :influx, "after", _}, 5_000
    end

    test "a body whose ingestion was cut by the kill is ingested again on restart", %{
      tmp_dir: dir
    } do
      name = TestStore.unique_name("spool_inflight")
      opts = [name: name, data_dir: dir, ingest_workers: 1]
      {:ok, sup} = TimelessMetrics.start_link([ingest_fun: blocking(self())] ++ opts)

      assert {204, _, _} = Handler.handle(:prometheus_text, request("up 1\n"), config(name))
      assert_receive {:ingesting, ^name, _worker, "up 1\n"}, 5_000
      capture_log(fn -> kill_store(sup, name) end)

      s = TestStore.start!([ingest_fun: reporting(self())] ++ opts)
      assert_receive {:ingested, ^s, :prometheus_text, "up 1\n", _}, 5_000
      await_drained(s)
    end

    test "a spool file damaged while the store was down is set aside", %{tmp_dir: dir} do
      name = TestStore.unique_name("spool_corrupt")
      opts = [name: name, data_dir: dir, ingest_workers: 1]
      {:ok, sup} = TimelessMetrics.start_link([ingest_fun: blocking(self())] ++ opts)
      assert {204, _, _} = Handler.handle(:influx, request("keep v=1"), config(name))
      assert {204, _, _} = Handler.handle(:influx, request("lose v=1"), config(name))
      assert_receive {:ingesting, ^name, _, "keep v=1"}, 5_000
      capture_log(fn -> kill_store(sup, name) end)

      [_, second] = Path.wildcard(Path.join(Spool.dir(dir), "*.req")) |> Enum.sort()
      File.write!(second, binary_part(File.read!(second), 0, 30) <> "garbage")

      log =
        capture_log(fn ->
          s = TestStore.start!([ingest_fun: reporting(self())] ++ opts)
          assert_receive {:ingested, ^s, :influx, "keep v=1", _}, 5_000
          await_drained(s)
          assert IngestStats.snapshot(s).rejected == %{{:unknown, :corrupt_spool} => 1}
        end)

      assert log =~ "unreadable"
      assert [_] = Path.wildcard(Path.join(Spool.dir(dir), "*.corrupt"))
      refute_received {:ingested, _, _, "lose v=1", _}
    end

    test "503 with Retry-After when the spool cannot be written; nothing stays reserved", %{
      tmp_dir: dir
    } do
      s = TestStore.start!(data_dir: dir, ingest_fun: reporting(self()))
      File.rm_rf!(Spool.dir(dir))
      assert {503, headers, msg} = Handler.handle(:influx, request("cpu v=1"), config(s))
      assert {"retry-after", "5"} in headers
      assert msg =~ "spool"

      assert %{queue_depth: 0, queue_bytes: 0, refused: %{{:influx, :unavailable} => 1}} =
               IngestStats.snapshot(s)
    end
  end

  describe "kill -9" do
    @tag timeout: 120_000
    test "every body answered 204 is ingested or replayed after kill -9 of the VM", %{
      tmp_dir: dir
    } do
      engine_log = Path.join(dir, "fake_engine.log")
      port = start_writer(dir, engine_log)
      # Bodies refused with 429 (queue full) are not acknowledged: the set is checked.
      acked = WriterProcess.acks(port, 200)
      :ok = WriterProcess.kill(port)
      acked = WriterProcess.drain(port, acked)

      ingested_before =
        engine_log |> File.read!() |> String.split("\n", trim: true) |> MapSet.new()

      replayed = length(Path.wildcard(Path.join(Spool.dir(dir), "*.req")))

      # restart in a fresh VM, as after a real crash (nothing loaded but what the store loads)
      replayed_bodies = replay_in_new_vm(dir)
      assert MapSet.size(replayed_bodies) == replayed
      assert Path.wildcard(Path.join(Spool.dir(dir), "*")) == []

      for b <- acked do
        body = "crash b=#{b}"

        assert MapSet.member?(ingested_before, body) or MapSet.member?(replayed_bodies, body),
               "body #{b} was answered 204 but was neither ingested nor replayed"
      end
    end
  end

  defp replay_in_new_vm(dir) do
    ebin = :code.lib_dir(:timeless_metrics, :ebin) |> to_string()

    script = """
    fun = fn _store, _format, body, _opts -> IO.puts("got " <> String.trim_trailing(body)); {:ok, %{samples: 1}} end
    {:ok, _} = TimelessMetrics.start_link(name: :replay, data_dir: #{inspect(dir)}, ingest_fun: fun, ingest_workers: 2)
    wait = fn wait -> if TimelessMetrics.IngestStats.snapshot(:replay).queue_depth > 0, do: (Process.sleep(10); wait.(wait)) end
    wait.(wait)
    :ok = TimelessMetrics.stop(:replay)
    IO.puts("drained")
    """

    {out, 0} =
      System.cmd(System.find_executable("elixir"), ["-pa", ebin, "-e", script],
        stderr_to_stdout: true
      )

    lines = String.split(out, "\n", trim: true)
    assert List.last(lines) == "drained", out
    for "got " <> body <- lines, into: MapSet.new(), do: body
  end

  # A VM running a store whose fake engine appends each ingested body to a file
  # (write(2) before returning, as the engine's WAL does) and slowly, so the spool fills.
  defp start_writer(dir, engine_log) do
    script = """
    log = #{inspect(engine_log)}
    File.write!(log, "")
    fake = fn _store, _format, body, _opts ->
      Process.sleep(2)
      File.write!(log, body, [:append])
      {:ok, %{samples: 1}}
    end
    {:ok, _} = TimelessMetrics.start_link(name: :kill9, data_dir: #{inspect(dir)}, ingest_fun: fake, ingest_workers: 2)
    config = %{store: :kill9, max_body_bytes: 1_048_576}
    Stream.iterate(0, &(&1 + 1))
    |> Enum.each(fn b ->
      req = %{method: "POST", path: "/write", query: %{}, headers: %{}, body: "crash b=\#{b}\\n"}
      case TimelessMetrics.HTTP.Ingest.handle(:influx, req, config) do
        {204, _, _} -> IO.puts("ack \#{b}")
        {429, _, _} -> Process.sleep(5)
      end
    end)
    """

    WriterProcess.start(script)
  end

  defp kill_store(sup, name) do
    Process.unlink(sup)
    {:links, children} = Process.info(sup, :links)

    workers =
      Supervisor.which_children(TimelessMetrics.Supervisor.child_name(name, :ingest_workers))

    pids = [sup | children] ++ for({_, pid, _, _} <- workers, is_pid(pid), do: pid)
    pids = Enum.filter(pids, &(is_pid(&1) and &1 != self()))
    refs = for pid <- pids, do: Process.monitor(pid)
    Enum.each(pids, &:erlang.suspend_process/1)
    Enum.each(pids, &Process.exit(&1, :kill))
    for ref <- refs, do: assert_receive({:DOWN, ^ref, _, _, _}, 10_000)
  end
end
