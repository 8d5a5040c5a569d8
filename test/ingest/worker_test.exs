Code.require_file("ingest_helpers.exs", __DIR__)

defmodule TimelessMetrics.IngestWorkerTest do
  use ExUnit.Case, async: true
  import TimelessMetrics.TestStore, only: [wait_until: 1]

  import TimelessMetrics.IngestHelpers
  import ExUnit.CaptureLog

  alias TimelessMetrics.{DB, IngestStats, TestStore}
  alias TimelessMetrics.HTTP.Ingest, as: Handler
  alias TimelessMetrics.Ingest.{Metadata, Queue, RejectLog}

  doctest TimelessMetrics.Ingest

  defp rejection(line, reason), do: %{line: line, reason: reason, message: "#{reason} here", sample: "bad line #{line}"}

  describe "rejections" do
    test "are counted per format and reason and logged with format, line and sample" do
      report = %{
        samples: 7,
        rejected: [rejection(3, :bad_value), rejection(9, :bad_timestamp)],
        rejected_by_reason: [{:bad_value, 1}, {:bad_timestamp, 1}]
      }

      s = TestStore.start!(ingest_fun: reporting(self(), report), ingest_workers: 1)

      log =
        capture_log(fn ->
          assert {204, _, _} = Handler.handle(:influx, request("x"), config(s))
          assert {204, _, _} = Handler.handle(:vm_json, request("y"), config(s))
          assert_receive {:ingested, _, :vm_json, _, _}, 5_000
          await_drained(s)
        end)

      assert log =~ ~s[influx line 3 rejected (bad_value): bad_value here: "bad line 3"]
      assert log =~ "vm_json line 9 rejected (bad_timestamp)"

      snap = IngestStats.snapshot(s)
      assert snap.points == %{influx: 7, vm_json: 7, prometheus_text: 0, remote_write: 0}

      assert snap.rejected == %{
               {:influx, :bad_value} => 1,
               {:influx, :bad_timestamp} => 1,
               {:vm_json, :bad_value} => 1,
               {:vm_json, :bad_timestamp} => 1
             }
    end

    test "logging is rate limited, and the suppressed count is logged when the window moves on" do
      limit = :atomics.new(3, signed: true)
      many = for i <- 1..500, do: rejection(i, :bad_value)

      log = capture_log(fn -> RejectLog.log(limit, :rl_store, :influx, many) end)
      # capture_log also sees other async tests: count this store's lines only
      assert length(Regex.scan(~r/:rl_store: influx line \d+ rejected \(bad_value\)/, log)) == RejectLog.per_window()

      # pretend the window is over
      :atomics.put(limit, 1, -1)
      log = capture_log(fn -> RejectLog.log(limit, :rl_store, :influx, [rejection(1, :x)]) end)
      assert log =~ "#{500 - RejectLog.per_window()} more rejected ingest lines were not logged"
      assert log =~ "influx line 1 rejected (x)"
    end

    test "long samples are truncated in the log" do
      limit = :atomics.new(3, signed: true)
      sample = String.duplicate("é", 1000)
      log = capture_log(fn -> RejectLog.log(limit, :rl_store, :influx, [%{line: 1, reason: :r, message: "m", sample: sample}]) end)
      assert log =~ String.duplicate("é", 100) <> "...\""
      refute log =~ String.duplicate("é", 101)
    end

    test "a body the engine cannot decode is counted, logged and dropped" do
      fun = fn _, _, _, _ -> {:error, {:bad_input, "not a protobuf WriteRequest"}} end
      s = TestStore.start!(ingest_fun: fun, ingest_workers: 1)

      log =
        capture_log(fn ->
          assert {204, _, _} = Handler.handle(:vm_json, request("zzz"), config(s))
          await_drained(s)
        end)

      assert log =~ "vm_json line 0 rejected (bad_input): not a protobuf WriteRequest"
      assert IngestStats.snapshot(s).rejected == %{{:vm_json, :bad_input} => 1}
    end
  end

  describe "metadata" do
    test "is upserted into metric_metadata, a field at a time, latest wins" do
      test = self()

      fun = fn _store, _format, body, _opts ->
        send(test, {:ingested, body})

        metadata =
          case body do
            "1" -> [%{metric: "http_total", type: "counter", help: "Requests.", unit: nil},
                    %{metric: "temp", type: "GAUGE", help: nil, unit: "celsius"}]
            "2" -> [%{metric: "http_total", type: nil, help: "All requests.", unit: nil},
                    %{metric: "temp", type: "nonsense", help: nil, unit: nil}]
          end

        {:ok, Map.put(default_report(), :metadata, metadata)}
      end

      s = TestStore.start!(ingest_fun: fun, ingest_workers: 1)
      assert {204, _, _} = Handler.handle(:prometheus_text, request("1"), config(s))
      await_drained(s)

      assert rows(s) == [["http_total", "counter", "Requests.", ""], ["temp", "gauge", "", "celsius"]]

      assert {204, _, _} = Handler.handle(:prometheus_text, request("2"), config(s))
      await_drained(s)
      assert rows(s) == [["http_total", "counter", "All requests.", ""], ["temp", "unknown", "", "celsius"]]
    end

    test "unchanged metadata is not written again; one transaction per body" do
      s = TestStore.start!(ingest_fun: reporting(self()))
      cache = :ets.new(:cache, [:set, :public])
      items = [%{metric: "a", type: "counter", help: "A", unit: nil}, %{metric: "b", type: "gauge", help: nil, unit: nil}]

      assert Metadata.upsert(s, cache, items) == {:ok, 2}
      assert Metadata.upsert(s, cache, items) == {:ok, 0}
      assert Metadata.upsert(s, cache, [%{metric: "a", type: nil, help: "A", unit: "s"}]) == {:ok, 1}
      assert Metadata.upsert(s, cache, [%{metric: "", type: "gauge", help: nil, unit: nil}]) == {:ok, 0}
      assert rows(s) == [["a", "counter", "A", "s"], ["b", "gauge", "", ""]]
    end

    defp rows(s) do
      {:ok, %{rows: rows}} = DB.query(s, "SELECT metric_name, type, help, unit FROM metric_metadata ORDER BY metric_name")
      rows
    end
  end

  describe "workers" do
    test "several workers share a backlog" do
      s = TestStore.start!(ingest_fun: blocking(self()), ingest_workers: 3)
      for i <- 1..3, do: assert({204, _, _} = Handler.handle(:influx, request("b#{i}"), config(s)))

      workers =
        for _ <- 1..3 do
          assert_receive {:ingesting, ^s, worker, _}, 5_000
          worker
        end

      assert length(Enum.uniq(workers)) == 3
      Enum.each(workers, &send(&1, :release))
      await_drained(s)
    end

    test "a worker is sent :work once per look at the queue, not once per body" do
      name = :"wake_test_#{System.unique_integer([:positive])}"
      Process.register(self(), name)
      q = %Queue{wake_flags: :atomics.new(1, signed: false), worker_names: {name}}

      for _ <- 1..3, do: assert(:ok = Queue.wake(q, 0))
      assert_received :work
      refute_received :work

      # the worker looks at the queue again: the next body wakes it again
      :ok = Queue.arm(q, 0)
      :ok = Queue.wake(q, 0)
      assert_received :work
    end

    test "bodies pushed from many processes while the workers ingest are all ingested" do
      test = self()
      s = TestStore.start!(ingest_fun: fn _, _, body, _ -> send(test, {:ingested, body}); {:ok, %{samples: 1}} end, ingest_workers: 2)

      1..8
      |> Enum.map(fn p -> Task.async(fn -> for i <- 1..50, do: {204, _, _} = Handler.handle(:influx, request("p#{p} #{i}"), config(s)) end) end)
      |> Task.await_many(10_000)

      await_drained(s)
      bodies = for _ <- 1..400, do: (assert_receive({:ingested, body}, 5_000); body)
      assert length(Enum.uniq(bodies)) == 400
      refute_received {:ingested, _}
    end

    test "a worker keeps no reference to the bodies of a batch it is done with" do
      test = self()
      s = TestStore.start!(ingest_fun: fn _, _, body, _ -> send(test, {:ingested, byte_size(body)}); {:ok, %{samples: 1}} end, ingest_workers: 1)
      body = :binary.copy("m 1\n", 100_000)
      size = byte_size(body)
      assert {204, _, _} = Handler.handle(:prometheus_text, request(body), config(s))
      assert_receive {:ingested, ^size}, 5_000
      await_drained(s)

      worker = Process.whereis(Queue.worker_name(s, 0))
      assert wait_until(fn -> Process.info(worker, :binary) |> elem(1) |> Enum.all?(fn {_, bytes, _} -> bytes < size end) end)
    end

    test "a worker that crashes on a body restarts and ingests it (memory mode)" do
      test = self()
      tries = :counters.new(1, [])

      fun = fn _store, format, body, opts ->
        :counters.add(tries, 1, 1)
        if :counters.get(tries, 1) == 1, do: raise("boom on the first try")
        send(test, {:ingested, format, body, opts})
        {:ok, default_report()}
      end

      s = TestStore.start!(ingest_fun: fun, ingest_workers: 1)

      log =
        capture_log(fn ->
          assert {204, _, _} = Handler.handle(:influx, request("cpu v=1"), config(s))
          assert_receive {:ingested, :influx, "cpu v=1", _}, 5_000
          await_drained(s)
        end)

      assert log =~ "boom on the first try"
      assert log =~ "retrying body"
      assert :counters.get(tries, 1) == 2
      assert IngestStats.snapshot(s).points.influx == 1
    end

    test "a body that always crashes is given up after 3 attempts; the others go through" do
      test = self()

      fun = fn _store, format, body, _opts ->
        if body == "poison", do: raise("poisoned")
        send(test, {:ingested, format, body})
        {:ok, default_report()}
      end

      s = TestStore.start!(ingest_fun: fun, ingest_workers: 1)

      log =
        capture_log(fn ->
          assert {204, _, _} = Handler.handle(:influx, request("poison"), config(s))
          assert {204, _, _} = Handler.handle(:influx, request("fine"), config(s))
          assert_receive {:ingested, :influx, "fine"}, 5_000
          await_drained(s)
        end)

      assert log =~ "crashed the ingest workers 3 times"
      assert IngestStats.snapshot(s).rejected == %{{:influx, :worker_crash} => 1}
    end

    test "a body the engine cannot take now is retried" do
      test = self()
      tries = :counters.new(1, [])

      fun = fn _store, _format, body, _opts ->
        :counters.add(tries, 1, 1)

        if :counters.get(tries, 1) < 3 do
          {:error, {:unavailable, "engine restarting"}}
        else
          send(test, {:ingested, body})
          {:ok, default_report()}
        end
      end

      s = TestStore.start!(ingest_fun: fun, ingest_workers: 1)
      capture_log(fn ->
        assert {204, _, _} = Handler.handle(:influx, request("later"), config(s))
        assert_receive {:ingested, "later"}, 5_000
      end)

      assert :counters.get(tries, 1) == 3
    end

    test "a clean stop ingests what is still queued (memory mode)" do
      test = self()

      fun = fn _store, _format, body, _opts ->
        Process.sleep(20)
        send(test, {:ingested, body})
        {:ok, default_report()}
      end

      s = TestStore.start!(ingest_fun: fun, ingest_workers: 1)
      for i <- 1..10, do: assert({204, _, _} = Handler.handle(:influx, request("b#{i}"), config(s)))
      assert IngestStats.snapshot(s).queue_depth > 5
      TestStore.stop(s)

      for i <- 1..10 do
        body = "b#{i}"
        assert_received {:ingested, ^body}
      end
    end

    test "the queue and workers are named after the store; two stores do not mix" do
      a = TestStore.start!(ingest_fun: reporting(self()), ingest_workers: 2)
      b = TestStore.start!(ingest_fun: reporting(self()), ingest_workers: 1)
      assert Process.whereis(Queue.worker_name(a, 1))
      refute Process.whereis(Queue.worker_name(b, 1))

      Handler.handle(:influx, request("to a"), config(a))
      Handler.handle(:influx, request("to b"), config(b))
      assert_receive {:ingested, ^a, :influx, "to a", _}, 5_000
      assert_receive {:ingested, ^b, :influx, "to b", _}, 5_000
      assert IngestStats.snapshot(a).requests.influx == 1
      assert IngestStats.snapshot(b).requests.influx == 1
    end
  end

  describe "options" do
    test "ingest options are validated, naming the option" do
      for {key, bad} <- [ingest_workers: 0, ingest_queue_max_bodies: -1, ingest_queue_max_bytes: "big", ingest_fun: fn -> :ok end] do
        assert {:error, {:invalid_option, ^key, _}} = TimelessMetrics.Options.validate([{:name, :o}, {:mode, :memory}, {key, bad}])
      end

      {:ok, opts} = TimelessMetrics.Options.validate(name: :o, mode: :memory)
      assert opts.ingest_workers == System.schedulers_online()
      assert opts.ingest_fun == nil
      assert opts.ingest_queue_max_bytes == 16 * 1_048_576
      assert opts.ingest_queue_max_bodies == 8192
    end
  end
end
