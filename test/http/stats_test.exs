defmodule TimelessMetrics.HTTP.StatsTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics.HTTP.Stats

  setup do
    table = :"stats_#{System.unique_integer([:positive])}"
    start_supervised!({Stats, table: table})
    %{table: table}
  end

  test "requests per route and status", %{table: t} do
    Stats.record(t, "/health", 200, 10)
    Stats.record(t, "/health", 200, 10)
    Stats.record(t, "/health", 503, 10)
    Stats.record(t, "/api/v1/series", 200, 10)
    assert Stats.requests(t) == [{"/api/v1/series", 200, 1}, {"/health", 200, 2}, {"/health", 503, 1}]
  end

  test "the latency histogram is cumulative, with bounds inclusive and +Inf last", %{table: t} do
    for micros <- [500, 1_000, 3_000, 60_000, 20_000_000], do: Stats.record(t, "/q", 200, micros)

    [{"/q", 5, sum, buckets}] = Stats.durations(t)
    assert_in_delta sum, 20.0645, 1.0e-9

    assert buckets == [
             {0.001, 2},
             {0.005, 3},
             {0.01, 3},
             {0.025, 3},
             {0.05, 3},
             {0.1, 4},
             {0.25, 4},
             {0.5, 4},
             {1.0, 4},
             {2.5, 4},
             {5.0, 4},
             {10.0, 4},
             {:infinity, 5}
           ]
  end
end
