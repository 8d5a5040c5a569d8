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

  @opts %{extra_labels: [{"dc", "eu"}], default_ts_ms: 1_700_000_000_000, precision: :ms}

  defp segments(dir), do: dir |> Path.join("*.spool") |> Path.wildcard() |> Enum.sort()

  describe "the spool" do
    test "bodies not done are replayed with their options, done ones are not", %{tmp_dir: dir} do
      {:ok, spool, [], []} = Spool.open(dir, false)
      {:ok, a} = Spool.append(spool, :vm_json, @opts, "{\"metric\":{}}", false)
      {:ok, b} = Spool.append(spool, :influx, %{@opts | precision: :s}, "cpu v=1 1", true)
      {:ok, c} = Spool.append(spool, :prometheus_text, @opts, :binary.copy("x", 100_000), false)
      assert b == a + 1 and c == b + 1
      assert :ok = Spool.done(spool, [a])
      :ok = Spool.close(spool)
      assert {:error, {:unavailable, _}} = Spool.append(spool, :influx, @opts, "late", false)

      {:ok, spool, pending, []} = Spool.open(dir, false)
      assert pending == [{b, :influx, %{@opts | precision: :s}, 9}, {c, :prometheus_text, @opts, 100_000}]
      assert Spool.read(spool, b) == {:ok, :influx, %{@opts | precision: :s}, "cpu v=1 1"}
      assert {:error, {:not_found, _}} = Spool.read(spool, a)
      assert %{pending: 2} = Spool.info(spool)
    end

    test "a torn tail is cut and reported, the bodies before it replayed", %{tmp_dir: dir} do
      {:ok, spool, [], []} = Spool.open(dir, false)
      for i <- 1..3, do: {:ok, _} = Spool.append(spool, :influx, @opts, "body #{i}", false)
      Spool.close(spool)
      [seg] = segments(dir)
      size = File.stat!(seg).size
      File.write!(seg, binary_part(File.read!(seg), 0, size - 4))

      {:ok, spool, pending, [{:torn_tail, ^seg, offset, message}]} = Spool.open(dir, false)
      assert message =~ "torn tail"
      assert offset == File.stat!(seg).size
      assert for({seq, _, _, _} <- pending, do: elem(Spool.read(spool, seq), 3)) == ["body 1", "body 2"]
    end
  end

  describe "a store on disk" do
    test "a body is spooled before 204 and marked done once ingested; done segments are deleted", %{tmp_dir: dir} do
      s = TestStore.start!(data_dir: dir, ingest_fun: blocking(self()), ingest_workers: 1)
      spool = Spool.dir(dir)

      assert {204, _, _} = Handler.handle(:influx, request("cpu v=1 1"), config(s))
      assert_receive {:ingesting, ^s, worker, "cpu v=1 1"}, 5_000
      assert [seg] = segments(spool)
      assert File.read!(seg) =~ "cpu v=1 1"
      assert %{spool_bytes: bytes, spool_pending: 1} = IngestStats.snapshot(s)
      assert bytes == File.stat!(seg).size

      send(worker, :release)
      await_drained(s)
      assert IngestStats.snapshot(s).spool_pending == 0

      # once the segment is old enough it is closed, and deleted as all its bodies are done
      Process.sleep(1_100)
      assert {204, _, _} = Handler.handle(:influx, request("cpu v=2 2"), config(s))
      assert_receive {:ingesting, ^s, worker, "cpu v=2 2"}, 5_000
      send(worker, :release)
      await_drained(s)
      wait(fn -> seg not in segments(spool) end, System.monotonic_time(:millisecond) + 5_000, "#{seg} was not deleted")
    end

    test "the segment of the last body of a burst is deleted without further traffic", %{tmp_dir: dir} do
      s = TestStore.start!(data_dir: dir, ingest_workers: 1)
      spool = Spool.dir(dir)

      assert {204, _, _} = Handler.handle(:influx, request("cpu v=1 1"), config(s))
      await_drained(s)
      [seg] = Enum.filter(segments(spool), &(File.read!(&1) =~ "cpu v=1 1"))
      # no request follows: the queue's housekeeping tick rotates and deletes it
      wait(fn -> seg not in segments(spool) end, System.monotonic_time(:millisecond) + 6_000, "#{seg} was not deleted")
    end

    test "bodies accepted before a brutal kill of the store are ingested after restart, with their options, once",
         %{tmp_dir: dir} do
      name = TestStore.unique_name("spool_replay")
      held = fn _, _, _, _ -> {:error, {:unavailable, "held by the test"}} end
      opts = [name: name, data_dir: dir, ingest_workers: 2]

      {:ok, sup} = TimelessMetrics.start_link([ingest_fun: reporting(self())] ++ opts)
      # ingested before the kill: must not come back
      assert {204, _, _} = Handler.handle(:influx, request("done v=0 0"), config(name))
      assert_receive {:ingested, ^name, :influx, "done v=0 0", _}, 5_000
      await_drained(name)
      capture_log(fn -> kill_store(sup, name) end)

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
      refute_received {:ingested, _, _, "done v=0 0", _}
      assert IngestStats.snapshot(s).spool_pending == 0

      # new bodies get sequence numbers after the replayed ones
      assert {204, _, _} = Handler.handle(:influx, request("after"), config(s))
      assert_receive {:ingested, ^s, :influx, "after", _}, 5_000
      await_drained(s)
      TestStore.stop(s)

      # and a clean restart replays nothing
      s = TestStore.start!([ingest_fun: reporting(self())] ++ opts)
      Process.sleep(100)
      refute_received {:ingested, ^s, _, _, _}
      assert IngestStats.snapshot(s).spool_pending == 0
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

    test "a spool record damaged while the store was down is skipped and reported with file and offset", %{tmp_dir: dir} do
      name = TestStore.unique_name("spool_corrupt")
      opts = [name: name, data_dir: dir, ingest_workers: 1]
      {:ok, sup} = TimelessMetrics.start_link([ingest_fun: blocking(self())] ++ opts)
      assert {204, _, _} = Handler.handle(:influx, request("keep v=1"), config(name))
      assert {204, _, _} = Handler.handle(:influx, request("lose v=1"), config(name))
      assert {204, _, _} = Handler.handle(:influx, request("also v=1"), config(name))
      assert_receive {:ingesting, ^name, _, "keep v=1"}, 5_000
      capture_log(fn -> kill_store(sup, name) end)

      [seg] = segments(Spool.dir(dir))
      bin = File.read!(seg)
      {at, _} = :binary.match(bin, "lose v=1")
      File.write!(seg, [binary_part(bin, 0, at), "LOSE", binary_part(bin, at + 4, byte_size(bin) - at - 4)])

      log =
        capture_log(fn ->
          s = TestStore.start!([ingest_fun: reporting(self())] ++ opts)
          assert_receive {:ingested, ^s, :influx, "keep v=1", _}, 5_000
          assert_receive {:ingested, ^s, :influx, "also v=1", _}, 5_000
          await_drained(s)
          assert IngestStats.snapshot(s).rejected == %{{:unknown, :corrupt_spool} => 1}
        end)

      assert log =~ ~r/ingest spool #{Regex.escape(seg)} at offset \d+: payload checksum mismatch/
      refute_received {:ingested, _, _, "LOSE v=1", _}
    end

    test "bodies left in the previous one-file-per-body layout are moved into the spool and ingested", %{tmp_dir: dir} do
      spool = Spool.dir(dir)
      File.mkdir_p!(spool)
      opts = %{extra_labels: [{"db", "tg"}], default_ts_ms: 1_700_000_000_000, precision: :s}
      meta = :erlang.term_to_binary(%{format: :influx, opts: opts})
      body = "cpu v=1 1"
      legacy = ["TMSPOOL1", <<byte_size(meta)::32, byte_size(body)::64, :erlang.crc32([meta, body])::32>>, meta, body]
      File.write!(Path.join(spool, "00000000000000000007.req"), legacy)
      File.write!(Path.join(spool, "00000000000000000008.req"), "TMSPOOL1 torn")

      log =
        capture_log(fn ->
          s = TestStore.start!(data_dir: dir, ingest_fun: reporting(self()), ingest_workers: 1)
          assert_receive {:ingested, ^s, :influx, "cpu v=1 1", ^opts}, 5_000
          await_drained(s)
          assert IngestStats.snapshot(s).rejected == %{{:unknown, :corrupt_spool} => 1}
        end)

      assert log =~ "moved 1 bodies of the previous spool layout"
      assert Path.wildcard(Path.join(spool, "*.req")) == []
      assert File.exists?(Path.join(spool, "00000000000000000008.corrupt"))
    end

    test "503 with Retry-After when the spool cannot be written; nothing stays reserved", %{
      tmp_dir: dir
    } do
      s = TestStore.start!(data_dir: dir, ingest_fun: reporting(self()))
      {:ok, q} = TimelessMetrics.Ingest.Queue.fetch(s)
      Spool.close(q.spool)
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

      # restart in a fresh VM, as after a real crash (nothing loaded but what the store loads)
      replayed_bodies = replay_in_new_vm(dir)
      # nothing ingested before the kill comes back (at most the batches in flight)
      assert MapSet.size(MapSet.intersection(replayed_bodies, ingested_before)) <= 2 * 64
      # and a second restart replays nothing: the replayed bodies were marked done
      assert replay_in_new_vm(dir) == MapSet.new()

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
