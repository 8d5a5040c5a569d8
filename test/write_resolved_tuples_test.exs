defmodule TimelessMetrics.WriteResolvedTuplesTest do
  @moduledoc """
  `write_resolved/3` with a list of `{id, value}` / `{id, value, timestamp}` tuples:
  the NIF reads the common shape (small integer id and timestamp, float or integer
  value) directly and anything else through the documented enif calls, decodes on a
  normal scheduler in slices of 4,096 entries and writes in slices of 2,048 points,
  yielding when its timeslice is used up. These tests pin that both readers agree,
  that errors name the entry across slices and leave nothing written, and that a
  batch long enough to yield stores every point exactly once.
  """
  use ExUnit.Case, async: true
  import Bitwise

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.TestStore

  setup do
    %{store: TestStore.start!()}
  end

  test "mixed integer and float values, 2- and 3-tuples, special values, float timestamps", %{store: s} do
    a = TestStore.series_id!(s, "m", %{"k" => "a"})
    big = 1 <<< 62

    entries = [
      {a, 1, 10},
      {a, 2.5, 20},
      {a, -3, 30},
      {a, big, 40},
      {a, -0.0, 50},
      {a, :nan, 60},
      {a, :infinity, 70},
      {a, :neg_infinity, 80},
      {a, 9, 90.4},
      {a, 1.0e300, 100}
    ]

    assert :ok = TM.write_resolved(s, entries)
    {:ok, points} = TM.query(s, "m", %{"k" => "a"})

    assert [{10, 1.0}, {20, 2.5}, {30, -3.0}, {40, big_f}, {50, -0.0}, {60, :nan}, {70, :infinity},
            {80, :neg_infinity}, {90, 9.0}, {100, 1.0e300}] = points

    assert big_f == big * 1.0

    # {id, value} takes the time of the call.
    b = TestStore.series_id!(s, "m", %{"k" => "b"})
    c = TestStore.series_id!(s, "m", %{"k" => "c"})
    before = System.os_time(:millisecond)
    assert :ok = TM.write_resolved(s, [{b, 7}, {c, 8.5}], unit: :millisecond)
    {:ok, [{t1, 7.0}]} = TM.query(s, "m", %{"k" => "b"}, unit: :millisecond)
    {:ok, [{t2, 8.5}]} = TM.query(s, "m", %{"k" => "c"}, unit: :millisecond)
    assert t1 >= before and t2 >= before
  end

  test "bad entries name their index, in any slice, and nothing of the batch is written", %{store: s} do
    a = TestStore.series_id!(s, "m", %{"k" => "a"})
    n = 20_000
    good = for i <- 0..(n - 1), do: {a, i * 1.0, i}

    cases = [
      {5, {a, "x", 5}, "entry 5: value is not a number"},
      {4095, {a, 1.0}, nil},
      {4096, {a, 1.0, :soon}, "entry 4096: timestamp is not a finite number"},
      {9000, {-1, 1.0, 1}, "entry 9000: series id must be a non-negative integer"},
      {12_345, {a, 1.0, 1, 1}, "entry 12345: expected {series_id, value} or {series_id, value, timestamp}"},
      {19_999, :nope, "entry 19999: expected"},
      {17_000, {a + 10, 1.0, 1}, "entry 17000: unknown series id"},
      {3, {a, 1.0, 1 <<< 70}, "entry 3: timestamp out of range"},
      {18_000, {1 <<< 64, 1.0, 1}, "entry 18000: series id must be a non-negative integer"}
    ]

    for {at, entry, msg} <- cases, msg != nil do
      bad = List.replace_at(good, at, entry)
      assert {:error, {:bad_input, got}} = TM.write_resolved(s, bad)
      assert String.starts_with?(got, msg), "#{inspect(entry)} at #{at}: #{got}"
    end

    assert {:error, {:bad_input, "entries must be a list"}} = TM.write_resolved(s, good ++ :tail)
    assert {:ok, []} = TM.query(s, "m", %{"k" => "a"})
  end

  test "a batch long enough to yield stores every point exactly once", %{store: s} do
    ids = for i <- 1..64, do: TestStore.series_id!(s, "y", %{"i" => "#{i}"})
    steps = 5_000
    # 320,000 points: about 80 decode slices and 160 write slices.
    entries = for t <- 1..steps, {id, k} <- Enum.with_index(ids), do: {id, if(rem(t, 2) == 0, do: t + k, else: t + k + 0.5), t}

    {:reductions, r0} = Process.info(self(), :reductions)
    assert :ok = TM.write_resolved(s, entries, unit: :millisecond)
    {:reductions, r1} = Process.info(self(), :reductions)

    for {id, k} <- Enum.with_index(ids) do
      {:ok, pts} = TM.query(s, "y", %{"i" => "#{Enum.find_index(ids, &(&1 == id)) + 1}"}, unit: :millisecond)
      assert length(pts) == steps
      assert pts == for(t <- 1..steps, do: {t, if(rem(t, 2) == 0, do: (t + k) * 1.0, else: t + k + 0.5)})
    end

    {:ok, info} = TM.info(s)
    assert info.points_buffered + info.points_stored == 64 * steps
    # The NIF told the scheduler about its time (enif_consume_timeslice adds reductions):
    # more than one whole timeslice (4,000 reductions), so it yielded on the way.
    assert r1 - r0 > 4_000
  end

  test "fsync: :always writes on a dirty I/O scheduler and keeps every point", %{} do
    dir = Path.join(System.tmp_dir!(), "tm-tuples-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    s = TestStore.start!(data_dir: dir, fsync: :always)
    a = TestStore.series_id!(s, "f", %{})
    assert :ok = TM.write_resolved(s, for(t <- 1..10_000, do: {a, t, t}), unit: :millisecond)
    assert {:ok, pts} = TM.query(s, "f", %{}, unit: :millisecond)
    assert length(pts) == 10_000
    assert {:error, {:bad_input, "entry 2: value" <> _}} = TM.write_resolved(s, [{a, 1, 1}, {a, 2, 2}, {a, nil, 3}])
  end
end
