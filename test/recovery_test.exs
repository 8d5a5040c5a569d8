defmodule TimelessMetrics.RecoveryTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.TestStore

  @moduletag :tmp_dir

  test "a restarted store finds every point, flushed or not", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir)
    :ok = TM.write_batch(s, for(i <- 1..500, do: {"a", %{"h" => "#{rem(i, 5)}"}, i * 1.0, i}))
    {:ok, _} = TM.flush(s)
    :ok = TM.write_batch(s, for(i <- 501..700, do: {"a", %{"h" => "#{rem(i, 5)}"}, i * 1.0, i}))
    {:ok, id} = TM.resolve_series(s, "b", %{})
    :ok = TM.write_resolved(s, id, :stale, 5)
    TestStore.stop(s)

    s = TestStore.start!(data_dir: dir, name: s)
    {:ok, rows} = TM.query_multi(s, "a", %{})
    points = rows |> Enum.flat_map(& &1.points) |> Enum.sort()
    assert points == for(i <- 1..700, do: {i, i * 1.0})
    assert {:ok, [{5, :stale}]} = TM.query(s, "b", %{})
    assert {:ok, ^id} = TM.resolve_series(s, "b", %{})
    assert {:ok, %{series: 6}} = TM.info(s)
  end

  test "a killed engine owner is restarted by its supervisor with the data intact", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir, flush_interval: 3_600_000)
    :ok = TM.write_batch(s, for(i <- 1..100, do: {"w", %{}, i, i}))
    {:ok, info} = TM.info(s)
    assert info.wal_bytes > 0
    engine = TimelessMetrics.Supervisor.child_name(s, :engine)
    pid = Process.whereis(engine)
    ref = Process.monitor(pid)
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, _, _, :killed}
    wait_for_restart(s, engine, pid)
    {:ok, [%{points: points}]} = TM.query_multi(s, "w", %{})
    assert points == for(i <- 1..100, do: {i, i * 1.0})
  end

  test "a second store on the same data dir is refused", %{tmp_dir: dir} do
    _s = TestStore.start!(data_dir: dir)
    Process.flag(:trap_exit, true)
    assert {:error, :locked} = TM.start_link(name: TestStore.unique_name(), data_dir: dir)
  end

  test "deletes survive a restart", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir)
    :ok = TM.write_batch(s, [{"x", %{"k" => "1"}, 1, 1}, {"x", %{"k" => "2"}, 2, 1}])
    {:ok, 1} = TM.delete_series(s, %{"k" => "1"})
    TestStore.stop(s)
    s = TestStore.start!(data_dir: dir, name: s)
    assert {:ok, [%{labels: %{"k" => "2"}}]} = TM.list_series(s, "x")
    assert {:ok, []} = TM.query(s, "x", %{"k" => "1"})
  end

  test "two stores in one VM are independent", %{tmp_dir: dir} do
    a = TestStore.start!(data_dir: Path.join(dir, "a"))
    b = TestStore.start!(data_dir: Path.join(dir, "b"))
    c = TestStore.start!()
    :ok = TM.write(a, "only_a", %{}, 1, 1)
    :ok = TM.write(b, "only_b", %{}, 2, 1)
    :ok = TM.write(c, "only_c", %{}, 3, 1)
    assert {:ok, ["only_a"]} = TM.list_metrics(a)
    assert {:ok, ["only_b"]} = TM.list_metrics(b)
    assert {:ok, ["only_c"]} = TM.list_metrics(c)
  end

  test "memory mode writes no file", %{tmp_dir: dir} do
    File.cd!(dir, fn ->
      s = TestStore.start!()
      :ok = TM.write_batch(s, for(i <- 1..100, do: {"m", %{}, i, i}))
      {:ok, _} = TM.flush(s)
      assert {:ok, %{points_stored: 100, wal_bytes: 0}} = TM.info(s)
      assert File.ls!(dir) == []
    end)
  end

  test "a corrupt chunk file is skipped and the rest stays readable", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir)
    :ok = TM.write(s, "first", %{}, 1, 1)
    {:ok, _} = TM.flush(s)
    :ok = TM.write(s, "second", %{}, 2, 2)
    {:ok, _} = TM.flush(s)
    TestStore.stop(s)
    [bad | _] = dir |> Path.join("chunks/*.chunks") |> Path.wildcard() |> Enum.sort()
    File.write!(bad, "this is not a chunk file")

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        s = TestStore.start!(data_dir: dir, name: s)
        assert {:ok, [{2, 2.0}]} = TM.query(s, "second", %{})
        assert {:ok, []} = TM.query(s, "first", %{})
      end)

    assert log =~ Path.basename(bad)
  end

  defp wait_for_restart(store, name, old, tries \\ 200) do
    # The name is registered before init/1 runs; :sys.get_state returns only after it.
    with pid when is_pid(pid) and pid != old <- Process.whereis(name),
         _state <- :sys.get_state(pid),
         {:ok, _} <- TM.info(store) do
      :ok
    else
      _ when tries > 0 -> Process.sleep(10) && wait_for_restart(store, name, old, tries - 1)
    end
  end
end
