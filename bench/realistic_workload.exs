# A ramp of simulated agents pushing Prometheus text, side by side with VictoriaMetrics.
#
#   LANG=C.UTF-8 MIX_ENV=prod mix run bench/realistic_workload.exs
#
# Each agent is one TSBS-devops host (39 series, 10 labels each) with its own keep-alive
# connection; it pushes all its series (one Prometheus text body, current timestamps) every
# BENCH_INTERVAL_MS. Real agents push every 10 s: the interval is compressed to 1 s by
# default, so N agents here make the request and point rate of 10 x N agents at 10 s.
# Agents start at random offsets inside the interval, keep a fixed schedule, and count a
# push as late when the previous one took the whole interval.
#
# The agent count rises through BENCH_LEVELS, BENCH_LEVEL_S seconds per level, both servers
# per level (order alternating). A server stops ramping at the first level where the push
# p99 latency is over 1 s, a push fails (HTTP error, refused or dropped connection), or
# fewer than 99% of the scheduled pushes were made. After each level we also measure how
# long the server needs to make every accepted point queryable (ours answers 204 once a body
# is spooled and parses it later: its ingest lag is reported beside the HTTP figures), and
# each server's peak RSS so far (VmHWM); memory is compared at the highest level both servers
# sustained, since each ramp ends at its own first failure.
#
# Knobs [defaults]: BENCH_INTERVAL_MS [1000], BENCH_LEVEL_S [10],
#   BENCH_LEVELS [100,200,400,800,1200,1600,2000,3000,4000,6000]
for f <- ~w(devops stats victoria http_client servers), do: Code.require_file("support/#{f}.ex", __DIR__)
Code.require_file("../test/support/wire_formats.ex", __DIR__)

defmodule Bench.Workload do
  alias Bench.{Devops, HttpClient, Servers, Stats}
  alias TimelessMetrics.WireFormats, as: W


  @doc "The 39 `name{labels}` prefixes of agent `i`, and initial values."
  def agent_series(i) do
    labels = Devops.host_labels(i)
    Devops.metrics() |> Enum.map(&{W.prom_series(&1, labels), Devops.kind(&1)})
  end

  def body(series, tick, ts) do
    Enum.map(series, fn {prefix, kind} -> [prefix, ?\s, value(kind, tick), ?\s, ts, ?\n] end)
  end

  # cheap deterministic values shaped like the devops kinds (gauges wander, counters grow)
  defp value(kind, tick) when kind in [:cpu, :percent], do: Integer.to_string(rem(tick * 7, 100)) <> ".5"
  defp value(:load, tick), do: "0." <> Integer.to_string(rem(tick, 90) + 10)
  defp value(:constant, _tick), do: "17179869184"
  defp value(_counter, tick), do: Integer.to_string(1_000_000 + tick * 1_234)

  # ------------------------------------------------------------------ one level

  def level(server, n_agents, series_of, interval, level_ms) do
    now = System.monotonic_time(:millisecond)
    start_at = now + 200 + div(n_agents, 10)
    stop_at = start_at + level_ms
    parent = self()
    client0 = Stats.cpu_seconds(System.pid())
    server0 = Servers.cpu_seconds(server)
    points0 = elem(Servers.ingested(server), 0)

    pids =
      for i <- 0..(n_agents - 1) do
        first = start_at + :rand.uniform(interval) - 1
        # bind the agent's own series here: the closure must not capture the whole table
        series = series_of.(i)
        port = server.http_port
        spawn_link(fn -> send(parent, {:agent, self(), agent(port, series, first, interval, stop_at)}) end)
      end

    results = collect(pids, stop_at + 30_000, [])
    wall = (System.monotonic_time(:millisecond) - start_at) / 1000
    client_cpu = Stats.cpu_seconds(System.pid()) - client0
    server_cpu = Servers.cpu_seconds(server) - server0
    ok = results |> Enum.map(& &1.ok) |> Enum.sum()
    lag = drain_seconds(server, points0 + ok * 39)
    summarize(results, n_agents, wall, ok, %{client_cores: client_cpu / wall, server_cores: server_cpu / wall, lag_s: lag})
  end

  defp collect([], _deadline, acc), do: acc

  defp collect(pids, deadline, acc) do
    receive do
      {:agent, pid, result} -> collect(List.delete(pids, pid), deadline, [result | acc])
    after
      max(0, deadline - System.monotonic_time(:millisecond)) ->
        Enum.each(pids, fn pid -> Process.unlink(pid) && Process.exit(pid, :kill) end)
        acc ++ Enum.map(pids, fn _ -> %{scheduled: 0, ok: 0, errors: 1, late: 0, latencies: [], failures: %{hung: 1}} end)
    end
  end

  defp drain_seconds(server, expected) do
    t0 = System.monotonic_time(:millisecond)

    try do
      :ok = Servers.await_queryable(server, expected, 120_000)
      (System.monotonic_time(:millisecond) - t0) / 1000
    rescue
      e -> IO.puts("   drain: #{Exception.message(e)}") && :timeout
    end
  end

  defp summarize(results, n, wall, ok, extra) do
    lat = results |> Enum.flat_map(& &1.latencies) |> Enum.sort()
    scheduled = results |> Enum.map(& &1.scheduled) |> Enum.sum()
    errors = results |> Enum.map(& &1.errors) |> Enum.sum()
    late = results |> Enum.map(& &1.late) |> Enum.sum()
    failures = results |> Enum.map(& &1.failures) |> Enum.reduce(%{}, &Map.merge(&1, &2, fn _k, a, b -> a + b end))
    pct = fn p -> if lat == [], do: 0.0, else: Stats.percentile(lat, p) / 1000 end

    Map.merge(extra, %{
      agents: n, scheduled: scheduled, ok: ok, errors: errors, late: late, failures: failures,
      p50_ms: pct.(50), p99_ms: pct.(99), max_ms: pct.(100),
      points_per_s: ok * 39 / wall
    })
  end

  # ------------------------------------------------------------------ an agent

  defp agent(port, series, first, interval, stop_at) do
    scheduled = max(0, div(stop_at - first - 1, interval) + 1)
    acc = %{scheduled: scheduled, ok: 0, errors: 0, late: 0, latencies: [], failures: %{}}

    case HttpClient.connect(port) do
      {:ok, c} -> push_loop(c, series, first, interval, stop_at, 0, acc)
      {:error, reason} -> failed(acc, {:connect, reason})
    end
  end

  defp push_loop(c, series, next_at, interval, stop_at, tick, acc) do
    now = System.monotonic_time(:millisecond)

    if next_at >= stop_at do
      HttpClient.close(c)
      acc
    else
      if next_at > now, do: Process.sleep(next_at - now)
      ts = Integer.to_string(System.os_time(:millisecond))
      t0 = System.monotonic_time(:microsecond)

      case HttpClient.request(c, "POST", "/api/v1/import/prometheus", [], body(series, tick, ts)) do
        {:ok, status, _, c} ->
          us = System.monotonic_time(:microsecond) - t0
          late = if System.monotonic_time(:millisecond) > next_at + interval, do: 1, else: 0
          acc = %{acc | latencies: [us | acc.latencies], late: acc.late + late}
          acc = if status in 200..299, do: %{acc | ok: acc.ok + 1}, else: failed(acc, status)
          push_loop(c, series, next_at + interval, interval, stop_at, tick + 1, acc)

        {:error, reason} ->
          failed(acc, reason)
      end
    end
  end

  # an error counted by kind: the HTTP status, or the client's error reason
  defp failed(acc, kind), do: %{acc | errors: acc.errors + 1, failures: Map.update(acc.failures, kind, 1, &(&1 + 1))}

  def sustained?(r), do: r.p99_ms <= 1000 and r.errors == 0 and r.ok >= 0.99 * r.scheduled
end

alias Bench.{Servers, Stats, Workload}

{:ok, _} = Application.ensure_all_started(:inets)
interval = Stats.env_int("BENCH_INTERVAL_MS", 1000)
level_ms = Stats.env_int("BENCH_LEVEL_S", 10) * 1000
levels = System.get_env("BENCH_LEVELS", "100,200,400,800,1200,1600,2000,3000,4000,6000") |> String.split(",") |> Enum.map(&String.to_integer/1)
{uptime_start, 0} = System.cmd("uptime", [])

series_table = 0..(Enum.max(levels) - 1) |> Enum.map(&Workload.agent_series/1) |> List.to_tuple()
series_of = &elem(series_table, &1)
servers = %{vm: Servers.start(:vm), tm: Servers.start(:tm)}

{rows, _} =
  levels
  |> Enum.with_index()
  |> Enum.reduce({[], MapSet.new([:vm, :tm])}, fn {n, i}, {rows, active} ->
    order = if(rem(i, 2) == 0, do: [:vm, :tm], else: [:tm, :vm]) |> Enum.filter(&(&1 in active))

    Enum.reduce(order, {rows, active}, fn k, {rows, active} ->
      r = Workload.level(servers[k], n, series_of, interval, level_ms)
      # VmHWM so far: the peak up to and including this level (compare servers at equal load)
      r = Map.put(r, :peak_rss, Servers.peak_rss(servers[k]))
      ok? = Workload.sustained?(r)
      lag = if r.lag_s == :timeout, do: "timeout", else: "#{Stats.fmt(r.lag_s)} s"

      IO.puts(
        "#{k} #{n} agents: #{Stats.rate(r.points_per_s)} points/s, p50 #{Stats.fmt(r.p50_ms)} ms, p99 #{Stats.fmt(r.p99_ms)} ms, " <>
          "#{r.ok}/#{r.scheduled} pushes, #{r.errors} errors #{inspect(r.failures)}, #{r.late} late, lag #{lag}, server #{Stats.fmt(r.server_cores)} cores, client #{Stats.fmt(r.client_cores)} cores, peak RSS #{Stats.fmt(r.peak_rss / 1_048_576)} MiB" <>
          if(ok?, do: "", else: "  <- not sustained")
      )

      {[{k, r, ok?} | rows], if(ok?, do: active, else: MapSet.delete(active, k))}
    end)
  end)

peak = Map.new(servers, fn {k, s} -> {k, Servers.peak_rss(s)} end)
Enum.each(servers, fn {_, s} -> Servers.stop(s) end)
{uptime_end, 0} = System.cmd("uptime", [])
rows = Enum.reverse(rows)

best = fn k ->
  case for({^k, r, true} <- rows, do: r) |> Enum.max_by(& &1.agents, fn -> nil end) do
    nil -> "none"
    r -> "#{r.agents} agents (#{Stats.rate(r.points_per_s)} points/s, #{Stats.fmt(r.agents * 1000 / interval)} pushes/s)"
  end
end

name = fn :tm -> "TimelessMetrics"; :vm -> "VictoriaMetrics" end

# each server's ramp ends at its first level not sustained, so peaks over the whole ramp are at
# different loads; the fair comparison is the peak up to the highest level both sustained
top = fn k -> rows |> Enum.filter(&(elem(&1, 0) == k)) |> Enum.map(&elem(&1, 1).agents) |> Enum.max(fn -> 0 end) end
both = for({:tm, r, true} <- rows, {:vm, r2, true} <- rows, r.agents == r2.agents, do: r.agents) |> Enum.max(fn -> nil end)

equal_load =
  case both do
    nil ->
      "No level was sustained by both servers."

    n ->
      at = fn k -> Enum.find_value(rows, fn {^k, r, _} when r.agents == n -> r.peak_rss; _ -> nil end) end
      "Peak RSS up to #{n} agents, the highest level both sustained: ours #{Stats.fmt(at.(:tm) / 1_048_576)} MiB, VM #{Stats.fmt(at.(:vm) / 1_048_576)} MiB (#{Stats.fmt(at.(:tm) / at.(:vm))}x)."
  end

table =
  Enum.map(rows, fn {k, r, ok?} ->
    lag = if r.lag_s == :timeout, do: "> 120", else: Stats.fmt(r.lag_s)

    "| #{name.(k)} | #{r.agents} | #{Stats.rate(r.points_per_s)} | #{Stats.fmt(r.p50_ms)} | #{Stats.fmt(r.p99_ms)} | #{Stats.fmt(r.max_ms)} | " <>
      "#{r.ok}/#{r.scheduled} | #{r.errors} | #{r.late} | #{lag} | #{Stats.fmt(r.server_cores)} | #{Stats.fmt(r.client_cores)} | #{Stats.fmt(r.peak_rss / 1_048_576)} | #{if ok?, do: "yes", else: "**no**"} |"
  end)

errors_by_kind =
  for {k, r, _} <- rows, r.failures != %{} do
    kinds = r.failures |> Enum.sort() |> Enum.map_join(", ", fn {kind, n} -> "#{inspect(kind)} x#{n}" end)
    "\nErrors of #{name.(k)} at #{r.agents} agents: #{kinds} (an integer is the HTTP status answered)."
  end

lines =
  [
    "Load at start: `#{String.trim(uptime_start)}`; at end: `#{String.trim(uptime_end)}` (2 shared cores; the agents share them).\n",
    "Agents: TSBS-devops hosts, 39 series each, one Prometheus text body per push every #{interval} ms " <>
      "(real agents: every 10 s, so each agent here stands for #{Stats.fmt(10_000 / interval)} real ones), one keep-alive connection each; " <>
      "#{div(level_ms, 1000)} s per level; servers in their own OS processes, ours with default options.\n",
    "**Highest sustained** (p99 <= 1 s, no errors, >= 99% of scheduled pushes made): " <>
      "TimelessMetrics #{best.(:tm)}; VictoriaMetrics #{best.(:vm)}.\n",
    "| server | agents | points/s | p50 ms | p99 ms | max ms | pushes ok/scheduled | errors | late | lag until queryable s | server cores | client cores | peak RSS so far MiB | sustained |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  ] ++ table ++ errors_by_kind ++ ["\nPeak RSS over each server's whole ramp: ours #{Stats.fmt(peak.tm / 1_048_576)} MiB (to #{top.(:tm)} agents), VM #{Stats.fmt(peak.vm / 1_048_576)} MiB (to #{top.(:vm)} agents).", equal_load]

Stats.record("realistic_workload", lines)
