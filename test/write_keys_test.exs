defmodule TimelessMetrics.WriteKeysTest do
  @moduledoc """
  The labeled write path finds series by the bytes the client sent (metric text and
  label pairs in the order given), through a cache. These tests pin that every
  spelling of one series reaches the same series, that label sets which would run
  together when concatenated stay apart, and that batches larger than the decoder's
  prefetch window keep every sample on its own series.
  """
  use ExUnit.Case, async: true

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.TestStore

  setup do
    %{store: TestStore.start!()}
  end

  test "every spelling of one series is the same series, before and after caching", %{store: s} do
    spellings = [
      {"http_requests", %{"code" => "200", "method" => "get"}},
      {"http_requests", [{"method", "get"}, {"code", "200"}]},
      {"http_requests", [code: "200", method: "get"]},
      {:http_requests, %{code: "200", method: :get}},
      {"http_requests", %{"code" => 200, "method" => "get"}}
    ]

    # One batch with every spelling, each series new to the store.
    batch = spellings |> Enum.with_index() |> Enum.map(fn {{m, l}, i} -> {m, l, i, 100 + i} end)
    assert :ok = TM.write_batch(s, batch)
    ids = Enum.map(spellings, fn {m, l} -> TestStore.series_id!(s, m, l) end)
    assert length(Enum.uniq(ids)) == 1

    # Again, now from the cache.
    batch = spellings |> Enum.with_index() |> Enum.map(fn {{m, l}, i} -> {m, l, i, 200 + i} end)
    assert :ok = TM.write_batch(s, batch)
    assert {:ok, ["http_requests"]} = TM.list_metrics(s)
    assert {:ok, points} = TM.query(s, "http_requests", %{"code" => "200", "method" => "get"})
    assert Enum.map(points, &elem(&1, 0)) == [100, 101, 102, 103, 104, 200, 201, 202, 203, 204]
  end

  test "label sets that run together when concatenated stay apart", %{store: s} do
    series = [
      {"m", %{"a" => "bc"}},
      {"m", %{"ab" => "c"}},
      {"ma", %{"b" => "c"}},
      {"m", %{"a" => "b", "c" => "d"}},
      {"m", %{"a" => "b\u0001\u0000\u0000\u0000c", "c" => "d"}},
      {"m", %{"a" => "", "b" => "c"}},
      {"m", %{"b" => "c"}}
    ]

    for round <- 1..2 do
      batch =
        series |> Enum.with_index() |> Enum.map(fn {{m, l}, i} -> {m, l, i * 1.0, round} end)

      assert :ok = TM.write_batch(s, batch)
    end

    for {{m, l}, i} <- Enum.with_index(series), Map.get(l, "a") != "" do
      assert {:ok, [{1, v}, {2, v}]} = TM.query(s, m, l), "#{m} #{inspect(l)}"
      assert v == i * 1.0
    end

    # An empty label value is no label: {"a" => "", "b" => "c"} is {"b" => "c"},
    # and the later entry of the same batch wins at the same timestamp.
    assert TestStore.series_id!(s, "m", %{"a" => "", "b" => "c"}) == TestStore.series_id!(s, "m", %{"b" => "c"})
    assert {:ok, [{1, 6.0}, {2, 6.0}]} = TM.query(s, "m", %{"b" => "c"})
  end

  test "a large batch sharing label maps keeps every sample on its series", %{store: s} do
    hosts = for h <- 1..40, do: %{"host" => "h#{h}", "dc" => "dc#{rem(h, 3)}"}
    metrics = for m <- 1..25, do: "metric_#{m}"

    batch = fn ts ->
      for l <- hosts,
          m <- metrics,
          do: {m, l, ts * 1000 + String.to_integer(l["host"] |> String.trim_leading("h")), ts}
    end

    # The first batch creates the 1000 series, the later ones hit the cache.
    for ts <- 1..3, do: assert(:ok = TM.write_batch(s, batch.(ts)))

    for %{"host" => "h" <> n} = l <- hosts, m <- Enum.take_random(metrics, 3) do
      n = String.to_integer(n)
      assert {:ok, [{1, a}, {2, b}, {3, c}]} = TM.query(s, m, l)
      assert {a, b, c} == {1000.0 + n, 2000.0 + n, 3000.0 + n}
    end

    assert {:ok, %{series: 1000}} = TM.info(s)
  end

  test "a batch received as a message (label maps no longer shared) keeps every sample on its series", %{store: s} do
    hosts = for h <- 1..30, do: %{"host" => "h#{h}", "rack" => "r#{rem(h, 4)}"}
    # Alternate hosts within a run of metrics too, so equal neighbours and changes both occur.
    batch = fn ts -> for m <- 1..12, l <- Enum.take(hosts, 30), do: {"m#{m}", l, m * 100 + String.length(l["host"]), ts} end
    parent = self()

    writer =
      spawn_link(fn ->
        for _ <- 1..2 do
          receive do
            {:batch, b} -> send(parent, {:written, TM.write_batch(s, b)})
          end
        end
      end)

    for ts <- 1..2 do
      send(writer, {:batch, batch.(ts)})
      assert_receive {:written, :ok}, 5000
    end

    assert {:ok, %{series: 360}} = TM.info(s)

    for m <- [1, 7, 12], l <- [hd(hosts), List.last(hosts)] do
      v = (m * 100 + String.length(l["host"])) * 1.0
      assert {:ok, [{1, ^v}, {2, ^v}]} = TM.query(s, "m#{m}", l)
    end
  end

  test "a bad entry refuses a batch that would create series", %{store: s} do
    labels = %{"host" => "new"}

    batch =
      for(i <- 0..29, do: {"fresh_#{i}", labels, i, 1}) ++
        [{"fresh_x", %{"ok" => "1", {:not, :text} => "x"}, 1, 1}]

    assert {:error, {:bad_input, msg}} = TM.write_batch(s, batch)
    assert msg =~ "entry 30: label names must be strings"

    batch = for(i <- 0..29, do: {"fresh_#{i}", labels, i, 1}) ++ [{"fresh_y", labels, 1, "soon"}]
    assert {:error, {:bad_input, msg}} = TM.write_batch(s, batch)
    assert msg =~ "entry 30: timestamp is not a finite number"

    assert {:ok, []} = TM.list_metrics(s)
    assert {:ok, %{series: 0}} = TM.info(s)
  end

  test "a bad entry in a batch of known series writes nothing", %{store: s} do
    good = for i <- 0..40, do: {"known", %{"i" => "#{i}"}, i, 1}
    assert :ok = TM.write_batch(s, good)

    bad =
      for(i <- 0..40, do: {"known", %{"i" => "#{i}"}, i, 2}) ++
        [{"known", %{"i" => "0"}, :oops, 3}]

    assert {:error, {:bad_input, msg}} = TM.write_batch(s, bad)
    assert msg =~ "entry 41: value is not a number"
    assert {:ok, [{1, 0.0}]} = TM.query(s, "known", %{"i" => "0"})
    assert {:ok, [{1, 40.0}]} = TM.query(s, "known", %{"i" => "40"})
  end

  test "a list that is not a proper list is refused", %{store: s} do
    improper = [{"m", %{}, 1, 1}, {"m", %{}, 2, 2} | :tail]
    assert {:error, {:bad_input, "entries must be a list"}} = TM.write_batch(s, improper)

    assert {:error, {:bad_input, "entries must be a list"}} =
             TM.write_resolved(s, [{1, 1, 1} | :tail], [])

    assert {:ok, []} = TM.list_metrics(s)
  end

  test "series deleted and written again start afresh", %{store: s} do
    l = %{"host" => "a"}
    assert :ok = TM.write_batch(s, [{"gone", l, 1, 10}, {"kept", l, 1, 10}])
    old = TestStore.series_id!(s, "gone", l)
    assert {:ok, 1} = TM.delete_series(s, [{"__name__", :eq, "gone"}])
    assert {:ok, []} = TM.query(s, "gone", l)
    assert :ok = TM.write_batch(s, [{"gone", l, 2, 20}, {"kept", l, 2, 20}])
    assert TestStore.series_id!(s, "gone", l) != old
    assert {:ok, [{20, 2.0}]} = TM.query(s, "gone", l)
    assert {:ok, [{10, 1.0}, {20, 2.0}]} = TM.query(s, "kept", l)
  end

  test "write_resolved names a bad entry deep in a large batch", %{store: s} do
    ids = for i <- 1..50, do: TestStore.series_id!(s, "r", %{"i" => "#{i}"})
    entries = for {id, n} <- Enum.with_index(ids), do: {id, n * 1.5, 100}
    assert :ok = TM.write_resolved(s, entries, [])
    assert {:ok, [{100, 3.0}]} = TM.query(s, "r", %{"i" => "3"})

    bad = List.replace_at(entries, 37, {hd(ids), "x", 100})

    assert {:error, {:bad_input, "entry 37: value is not a number"}} =
             TM.write_resolved(s, bad, [])

    bad = List.replace_at(entries, 45, {hd(ids), 1})
    assert :ok = TM.write_resolved(s, bad, [])
    bad = List.replace_at(entries, 45, :nope)
    assert {:error, {:bad_input, "entry 45: expected" <> _}} = TM.write_resolved(s, bad, [])
  end
end
