defmodule TimelessMetricsTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.TestStore

  setup do
    %{store: TestStore.start!()}
  end

  describe "write and query" do
    test "single writes read back in seconds and milliseconds", %{store: s} do
      assert :ok = TM.write(s, "cpu", %{"host" => "a"}, 1.5, 1_700_000_000)
      assert :ok = TM.write(s, "cpu", %{"host" => "a"}, 2, timestamp: 1_700_000_010)
      assert :ok = TM.write(s, "cpu", [host: "a"], 3.25, timestamp: 1_700_000_020_500, unit: :millisecond)

      assert {:ok, [{1_700_000_000, 1.5}, {1_700_000_010, 2.0}, {1_700_000_020, 3.25}]} =
               TM.query(s, "cpu", %{"host" => "a"})

      assert {:ok, [{1_700_000_010_000, 2.0}]} =
               TM.query(s, "cpu", %{host: "a"}, from: 1_700_000_005_000, to: 1_700_000_015_000, unit: :millisecond)

      assert {:ok, []} = TM.query(s, "cpu", %{"host" => "zzz"})
    end

    test "a write without timestamp gets the current time", %{store: s} do
      before = System.os_time(:second)
      assert :ok = TM.write(s, "up", %{}, 1)
      assert {:ok, [{t, 1.0}]} = TM.query(s, "up", %{})
      assert t >= before and t <= System.os_time(:second)
    end

    test "label order does not matter; labels are exact for query/4", %{store: s} do
      :ok = TM.write(s, "m", %{"a" => "1", "b" => "2"}, 1, 100)
      :ok = TM.write(s, "m", [b: "2", a: "1"], 2, 200)
      :ok = TM.write(s, "m", %{"a" => "1"}, 9, 300)
      assert {:ok, [{100, 1.0}, {200, 2.0}]} = TM.query(s, "m", %{"b" => "2", "a" => "1"})
      assert {:ok, [{300, 9.0}]} = TM.query(s, "m", %{"a" => "1"})
    end

    test "special values round-trip", %{store: s} do
      :ok = TM.write_batch(s, [
        {"x", %{}, :nan, 1},
        {"x", %{}, :infinity, 2},
        {"x", %{}, :neg_infinity, 3},
        {"x", %{}, :stale, 4},
        {"x", %{}, -0.0, 5}
      ])

      assert {:ok, [{1, :nan}, {2, :infinity}, {3, :neg_infinity}, {4, :stale}, {5, v}]} = TM.query(s, "x", %{})
      assert v == 0.0
    end

    test "out-of-order writes are sorted; a duplicate timestamp keeps the last value", %{store: s} do
      :ok = TM.write_batch(s, [{"o", %{}, 3, 30}, {"o", %{}, 1, 10}, {"o", %{}, 2, 20}, {"o", %{}, 1.5, 10}])
      assert {:ok, [{10, 1.5}, {20, 2.0}, {30, 3.0}]} = TM.query(s, "o", %{})
      {:ok, _} = TM.flush(s)
      :ok = TM.write(s, "o", %{}, 2.5, 20)
      :ok = TM.write(s, "o", %{}, 0.5, 5)
      assert {:ok, [{5, 0.5}, {10, 1.5}, {20, 2.5}, {30, 3.0}]} = TM.query(s, "o", %{})
      {:ok, _} = TM.flush(s)
      assert {:ok, [{5, 0.5}, {10, 1.5}, {20, 2.5}, {30, 3.0}]} = TM.query(s, "o", %{})
      {:ok, _} = TM.merge(s)
      assert {:ok, [{5, 0.5}, {10, 1.5}, {20, 2.5}, {30, 3.0}]} = TM.query(s, "o", %{})
    end

    test "writes stay queryable before and after a flush", %{store: s} do
      entries = for i <- 1..1000, do: {"f", %{"h" => "#{rem(i, 10)}"}, i, i}
      :ok = TM.write_batch(s, entries)
      assert {:ok, rows} = TM.query_multi(s, "f", %{})
      assert Enum.sum(Enum.map(rows, &length(&1.points))) == 1000
      assert {:ok, %{points: 1000, series: 10}} = TM.flush(s)
      assert {:ok, rows} = TM.query_multi(s, "f", %{})
      assert Enum.sum(Enum.map(rows, &length(&1.points))) == 1000
      assert {:ok, %{points_buffered: 0, points_stored: 1000}} = TM.info(s)
    end
  end

  describe "resolved writes" do
    test "resolve_series is stable and write_resolved appends", %{store: s} do
      assert {:ok, id} = TM.resolve_series(s, "req", %{"code" => "200"})
      assert {:ok, ^id} = TM.resolve_series(s, "req", [code: "200"])
      assert {:ok, other} = TM.resolve_series(s, "req", %{"code" => "500"})
      assert other != id
      assert :ok = TM.write_resolved(s, id, 1, 10)
      assert :ok = TM.write_resolved(s, id, 2, timestamp: 20_000, unit: :millisecond)
      assert :ok = TM.write_resolved(s, [{id, 3, 30}, {other, 7, 30}])
      assert {:ok, [{10, 1.0}, {20, 2.0}, {30, 3.0}]} = TM.query(s, "req", %{"code" => "200"})
      assert {:ok, [{30, 7.0}]} = TM.query(s, "req", %{"code" => "500"})
    end

    test "columnar batches: binaries of ids, timestamps and values", %{store: s} do
      {:ok, a} = TM.resolve_series(s, "col", %{"k" => "a"})
      {:ok, b} = TM.resolve_series(s, "col", %{"k" => "b"})
      cols = fn rows -> {for({id, _, _} <- rows, into: <<>>, do: <<id::little-64>>),
                         for({_, t, _} <- rows, into: <<>>, do: <<t::little-signed-64>>),
                         for({_, _, v} <- rows, into: <<>>, do: <<v::float-little-64>>)} end

      assert :ok = TM.write_resolved(s, cols.([{a, 10, 1.5}, {b, 10, 2.5}, {a, 20, -0.0}]))
      assert :ok = TM.write_resolved(s, cols.([{b, 30_500, 4.0}]), unit: :millisecond)
      assert {:ok, [{10, 1.5}, {20, -0.0}]} = TM.query(s, "col", %{"k" => "a"})
      assert {:ok, [{10_000, 2.5}, {30_500, 4.0}]} = TM.query(s, "col", %{"k" => "b"}, unit: :millisecond)

      {ids, ts, vals} = cols.([{a, 40, 1.0}, {b + 1000, 40, 1.0}])
      assert {:error, {:bad_input, msg}} = TM.write_resolved(s, {ids, ts, vals})
      assert msg =~ "unknown series id"
      assert {:error, {:bad_input, msg}} = TM.write_resolved(s, {ids, ts, binary_part(vals, 0, 8)})
      assert msg =~ "equal count"
      assert {:error, {:bad_input, msg}} = TM.write_resolved(s, cols.([{a, 9_223_372_036_854_776, 1.0}]))
      assert msg =~ "entry 1: timestamp"
      assert {:ok, [{10, 1.5}, {20, -0.0}]} = TM.query(s, "col", %{"k" => "a"})
    end

    test "an unknown id refuses the whole batch", %{store: s} do
      {:ok, id} = TM.resolve_series(s, "req", %{})
      assert {:error, {:bad_input, msg}} = TM.write_resolved(s, [{id, 1, 1}, {id + 1000, 1, 2}])
      assert msg =~ "entry 1"
      assert msg =~ "unknown series id"
      assert {:ok, []} = TM.query(s, "req", %{})
    end
  end

  describe "bad input" do
    test "errors name the problem and refuse the whole batch", %{store: s} do
      :ok = TM.write(s, "keep", %{}, 1, 1)

      cases = [
        {[{"cpu", %{}, "high", 1}], "entry 0: value is not a number"},
        {[{"cpu", %{}, 1, 1}, {"cpu", %{}, 1, :nan}], "entry 1: timestamp is not a finite number"},
        {[{"", %{}, 1, 1}], "entry 0:"},
        {[{"cpu", %{"1bad" => "x"}, 1, 1}], "1bad"},
        {[{"cpu", %{"a-b" => "x"}, 1, 1}], "a-b"},
        {[{"cpu", %{}, 1, 1}, {:cpu}], "entry 1: expected"},
        {[{"cpu", %{"v" => String.duplicate("x", 5000)}, 1, 1}], "entry 0:"},
        {[{"cpu", 42, 1, 1}], "labels must be a map"}
      ]

      for {batch, expected} <- cases do
        assert {:error, {:bad_input, msg}} = TM.write_batch(s, batch), "batch #{inspect(batch)}"
        assert msg =~ expected
      end

      too_many = Map.new(1..31, &{"l#{&1}", "v"})
      assert {:error, {:bad_input, msg}} = TM.write(s, "cpu", too_many, 1, 1)
      assert msg =~ "label"

      # nothing of the refused batches was written, not even their series
      assert {:ok, ["keep"]} = TM.list_metrics(s)
      assert {:ok, [{1, 1.0}]} = TM.query(s, "keep", %{})
    end

    test "limits are options", %{} do
      s = TestStore.start!(max_labels: 2, max_label_length: 8)
      assert :ok = TM.write(s, "m", %{"a" => "1", "b" => "2"}, 1, 1)
      assert {:error, {:bad_input, _}} = TM.write(s, "m", %{"a" => "1", "b" => "2", "c" => "3"}, 1, 1)
      assert {:error, {:bad_input, _}} = TM.write(s, "m", %{"a" => "123456789"}, 1, 1)
    end

    test "bad regex and bad aggregate are reported", %{store: s} do
      :ok = TM.write(s, "m", %{}, 1, 1)
      assert {:error, {:bad_input, msg}} = TM.query_multi(s, "m", [{"a", :re, "("}])
      assert msg =~ "("
      assert {:error, {:bad_input, msg}} = TM.query_aggregate(s, "m", %{}, aggregate: :median)
      assert msg =~ "median"
      assert {:error, {:bad_input, _}} = TM.query_aggregate(s, "m", %{}, step: 0)
    end

    test "a store that is not running", %{} do
      assert {:error, {:unavailable, _}} = TM.write(:no_such_store, "m", %{}, 1)
      assert {:error, {:unavailable, _}} = TM.query(:no_such_store, "m", %{})
    end
  end

  describe "multi-series reads" do
    setup %{store: s} do
      entries =
        for host <- ~w(web-1 web-2 db-1), t <- 0..5 do
          {"cpu", %{"host" => host, "env" => if(host == "db-1", do: "prod", else: "dev")}, t * 10 + byte_size(host), t * 10}
        end

      :ok = TM.write_batch(s, entries)
      :ok = TM.write_batch(s, for(t <- 0..5, do: {"reqs_total", %{"host" => "web-1"}, t * 100.0, t * 10}))
      :ok = TM.write_batch(s, [{"reqs_total", %{"host" => "web-2"}, 50.0, 0}, {"reqs_total", %{"host" => "web-2"}, 10.0, 10}])
      :ok
    end

    test "query_multi with every matcher kind", %{store: s} do
      hosts = fn filter ->
        {:ok, rows} = TM.query_multi(s, "cpu", filter)
        rows |> Enum.map(& &1.labels["host"]) |> Enum.sort()
      end

      assert hosts.(%{"env" => "dev"}) == ["web-1", "web-2"]
      assert hosts.([{"host", :ne, "web-1"}]) == ["db-1", "web-2"]
      assert hosts.([{"host", "=~", "web-.*"}]) == ["web-1", "web-2"]
      assert hosts.([{"host", "!~", "web-.*"}]) == ["db-1"]
      assert hosts.([{"host", :re, "web"}]) == []
      assert hosts.([{"missing", :eq, ""}]) == ["db-1", "web-1", "web-2"]

      {:ok, [row]} = TM.query_multi(s, "cpu", %{"host" => "db-1"}, from: 20, to: 30)
      assert row.metric == "cpu"
      assert row.labels == %{"host" => "db-1", "env" => "prod"}
      assert row.points == [{20, 24.0}, {30, 34.0}]

      {:ok, rows} = TM.query_multi(s, nil, %{"host" => "web-1"})
      assert Enum.map(rows, & &1.metric) |> Enum.sort() == ["cpu", "reqs_total"]
    end

    test "query_aggregate buckets per series", %{store: s} do
      {:ok, [row]} = TM.query_aggregate(s, "cpu", %{"host" => "web-1"}, from: 0, to: 59, step: 20, aggregate: :avg)
      assert row.buckets == [{0, 10.0}, {20, 30.0}, {40, 50.0}]
      {:ok, [row]} = TM.query_aggregate(s, "cpu", %{"host" => "web-1"}, from: 0, to: 59, step: 20, aggregate: :count)
      assert row.buckets == [{0, 2.0}, {20, 2.0}, {40, 2.0}]
      {:ok, rows} = TM.query_aggregate(s, "cpu", %{}, from: 0, to: 59, step: 60, aggregate: :max)
      assert rows |> Enum.map(&{&1.labels["host"], &1.buckets}) |> Enum.sort() ==
               [{"db-1", [{0, 54.0}]}, {"web-1", [{0, 55.0}]}, {"web-2", [{0, 55.0}]}]

      for {agg, expected} <- [sum: 180.0, min: 5.0, first: 5.0, last: 55.0] do
        {:ok, [row]} = TM.query_aggregate(s, "cpu", %{"host" => "web-1"}, from: 0, to: 59, step: 60, aggregate: agg)
        assert row.buckets == [{0, expected}], "aggregate #{agg}"
      end
    end

    test "rate and increase are counter-aware", %{store: s} do
      {:ok, [row]} = TM.query_aggregate(s, "reqs_total", %{"host" => "web-1"}, from: 0, to: 59, step: 30, aggregate: :increase)
      assert row.buckets == [{0, 200.0}, {30, 300.0}]
      {:ok, [row]} = TM.query_aggregate(s, "reqs_total", %{"host" => "web-1"}, from: 0, to: 59, step: 30, aggregate: :rate)
      assert row.buckets == [{0, 200.0 / 30}, {30, 10.0}]
      # web-2 reset from 50 to 10: the reset adds the new value
      {:ok, [row]} = TM.query_aggregate(s, "reqs_total", %{"host" => "web-2"}, from: 0, to: 59, step: 60, aggregate: :increase)
      assert row.buckets == [{0, 10.0}]
    end

    test "latest per series and for one series", %{store: s} do
      assert {:ok, {50, 55.0}} = TM.latest(s, "cpu", %{"host" => "web-1", "env" => "dev"})
      assert {:ok, nil} = TM.latest(s, "cpu", %{"host" => "nope"})
      {:ok, rows} = TM.latest(s, "cpu", [{"env", :eq, "dev"}])
      assert rows |> Enum.map(&{&1.labels["host"], &1.timestamp, &1.value}) |> Enum.sort() ==
               [{"web-1", 50, 55.0}, {"web-2", 50, 55.0}]
    end

    test "listings", %{store: s} do
      assert {:ok, ["cpu", "reqs_total"]} = TM.list_metrics(s)
      assert {:ok, ["__name__", "env", "host"]} = TM.label_names(s)
      assert {:ok, ["__name__", "host"]} = TM.label_names(s, match: [{"__name__", :eq, "reqs_total"}])
      assert {:ok, ["db-1", "web-1", "web-2"]} = TM.label_values(s, "host")
      assert {:ok, ["web-1", "web-2"]} = TM.label_values(s, "host", match: %{"env" => "dev"})
      assert {:ok, ["web-1"]} = TM.label_values(s, "host", match: %{"__name__" => "reqs_total"}, from: 20, to: 60)
      assert {:ok, series} = TM.list_series(s, "reqs_total")
      assert Enum.sort_by(series, & &1.labels["host"]) ==
               [%{metric: "reqs_total", labels: %{"host" => "web-1"}}, %{metric: "reqs_total", labels: %{"host" => "web-2"}}]
      assert {:ok, [_]} = TM.list_series(s, nil, [{"host", :eq, "db-1"}])
    end

    test "delete_series removes series and their points", %{store: s} do
      assert {:ok, 2} = TM.delete_series(s, [{"__name__", :eq, "reqs_total"}])
      assert {:ok, ["cpu"]} = TM.list_metrics(s)
      assert {:ok, []} = TM.query(s, "reqs_total", %{"host" => "web-1"})
      assert {:ok, 0} = TM.delete_series(s, %{"__name__" => "nothing"})
      assert {:error, {:bad_input, _}} = TM.delete_series(s, [])
      # writing the same series again starts it afresh
      :ok = TM.write(s, "reqs_total", %{"host" => "web-1"}, 1, 1000)
      assert {:ok, [{1000, 1.0}]} = TM.query(s, "reqs_total", %{"host" => "web-1"})
    end

    test "info", %{store: s} do
      {:ok, info} = TM.info(s)
      assert info.series == 5
      assert info.points == 18 + 6 + 2
      assert info.points_buffered == 26
      assert info.oldest_timestamp == 0
      assert info.newest_timestamp == 50
      {:ok, _} = TM.flush(s)
      {:ok, info} = TM.info(s)
      assert info.points_stored == 26
      assert info.chunk_files == 1
      assert info.bytes_per_point > 0
      # memory mode writes nothing to disk
      assert info.wal_bytes == 0
    end
  end

  describe "options" do
    test "are validated with the bad option named" do
      assert {:error, {:invalid_option, :data_dir, _}} = TM.start_link(name: :x)
      assert {:error, {:invalid_option, :fsync, _}} = TM.start_link(name: :x, mode: :memory, fsync: :weekly)
      assert {:error, {:invalid_option, :bogus, _}} = TM.start_link(name: :x, mode: :memory, bogus: 1)
      assert {:error, {:invalid_option, :name, _}} = TM.start_link(mode: :memory)
      assert {:error, {:invalid_option, :max_labels, _}} = TM.start_link(name: :x, mode: :memory, max_labels: 0)
      assert {:error, {:invalid_option, :engine, msg}} = TM.start_link(name: :x, mode: :memory, engine: :legacy)
      assert msg =~ "legacy engine is not part of this project"
    end
  end
end
