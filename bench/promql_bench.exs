# PromQL query latency and throughput over HTTP, side by side with VictoriaMetrics.
#
#   LANG=C.UTF-8 MIX_ENV=prod mix run bench/promql_bench.exs
#
# Both servers run in their own OS process on 127.0.0.1 with a fresh data dir (ours:
# bench/support/tm_server.exs with default options; VictoriaMetrics 1.79 with
# -search.disableCache). ONE TSBS-devops-like data set (host labels and metric kinds of
# Bench.Devops; values are random walks, timestamps exactly 10 s apart) is built as
# VictoriaMetrics JSON lines, one line per series with all its values, and POSTed to
# /api/v1/import of both; then both are flushed (/internal/force_flush) once every point
# is stored. Every query of the fixed set runs over HTTP with the same client
# (Bench.HttpClient, keep-alive) against both, as /api/v1/query_range over the full range
# with step=60s and as /api/v1/query at the end time; repetitions alternate between the
# servers after one warm-up each (the warm-up gives the series count, compared between
# the two). Closed-loop throughput: wrk, 2 threads, 8 connections, 15 s, on a 1 h range
# query of one host and on an instant query of one series, in rounds alternating between
# the servers, with each server's CPU time per request.
#
# Environment knobs [defaults]:
#   BENCH_HOSTS [1000], BENCH_METRICS [10] (at least 10: the queries use the first 10),
#   BENCH_HOURS [24] (10 s interval), BENCH_REPS [10] (5x for queries under 20 ms, fewer for heavy ones, see reps/1),
#   BENCH_WRK_SECONDS [15], BENCH_WRK_ROUNDS [2] (each round: both queries on both servers),
#   BENCH_TM_ERL [none] (emulator flags for our server, e.g. "+sbwt none"; printed in the report)
for f <- ~w(devops stats victoria http_client servers), do: Code.require_file("support/#{f}.ex", __DIR__)

defmodule Bench.PromQLBench do
  alias Bench.{Devops, HttpClient, Servers, Stats}

  @first_metrics ~w(cpu_usage_user cpu_usage_system cpu_usage_idle cpu_usage_iowait mem_used_percent
                    system_load1 net_bytes_recv net_bytes_sent diskio_reads kernel_context_switches)


  def metrics(n), do: Enum.take(@first_metrics ++ (Devops.metrics() -- @first_metrics), n)

  # ------------------------------------------------------------------ data set

  @doc "JSON array of the timestamps, shared by every line."
  def ts_json(start_ms, steps), do: ["[", Enum.map_intersperse(0..(steps - 1), ?,, &Integer.to_string(start_ms + &1 * 10_000)), "]"]

  @doc "One JSON line: a series with all its values (a fast integer random walk per kind)."
  def line(metric, labels, seed, steps, ts) do
    rng = :rand.seed_s(:exsss, {seed, 7, 11})
    {v0, rng} = Devops.init_state(metric, rng)
    kind = Devops.kind(metric)
    values = walk(kind, scale(kind, v0), rng, steps, [])
    [~s({"metric":), :jiffy.encode(Map.put(labels, "__name__", metric)), ~s(,"values":[), values, ~s(],"timestamps":), ts, "}\n"]
  end

  # floats are walked as integers in tenths (cpu) or hundredths (percent, load)
  defp scale(:cpu, v), do: round(v * 10)
  defp scale(k, v) when k in [:percent, :load], do: round(v * 100)
  defp scale(_, v), do: v

  defp walk(_kind, _x, _rng, 0, acc), do: :lists.reverse(tl(acc))

  defp walk(kind, x, rng, n, acc) do
    {x, rng} = step(kind, x, rng)
    walk(kind, x, rng, n - 1, [?,, fmt(kind, x) | acc])
  end

  defp step(:cpu, x, rng), do: uni(rng, 41, fn u -> clamp(x + u - 21, 0, 1000) end)
  defp step(:percent, x, rng), do: uni(rng, 101, fn u -> clamp(x + u - 51, 0, 10_000) end)
  defp step(:load, x, rng), do: uni(rng, 21, fn u -> clamp(x + u - 11, 0, 6_400) end)
  defp step(:constant, x, rng), do: {x, rng}
  defp step(:mem, x, rng), do: uni(rng, 50_000_001, fn u -> max(0, x + u - 25_000_001) end)
  defp step(:disk, x, rng), do: uni(rng, 4096, &(x + &1))
  defp step(:bytes_counter, x, rng), do: uni(rng, 2_000_000, &(x + &1))
  defp step(:rare_counter, x, rng), do: uni(rng, 100, fn u -> if u > 97, do: x + 1, else: x end)
  defp step(:counter, x, rng), do: uni(rng, 2000, &(x + &1))

  defp uni(rng, k, f) do
    {u, rng} = :rand.uniform_s(k, rng)
    {f.(u), rng}
  end

  defp clamp(v, lo, hi), do: v |> max(lo) |> min(hi)

  defp fmt(:cpu, x), do: [Integer.to_string(div(x, 10)), ?., Integer.to_string(rem(x, 10))]
  defp fmt(k, x) when k in [:percent, :load], do: [Integer.to_string(div(x, 100)), ?., pad2(rem(x, 100))]
  defp fmt(_, x), do: Integer.to_string(x)

  defp pad2(r) when r < 10, do: [?0, Integer.to_string(r)]
  defp pad2(r), do: Integer.to_string(r)

  @doc "Generate the bodies (host groups of about 100 series) and POST each to both servers."
  def load(servers, hosts, metrics, steps, start_ms) do
    ts = IO.iodata_to_binary(ts_json(start_ms, steps))
    body_hosts = max(1, div(100, length(metrics)))
    groups = Enum.chunk_every(0..(hosts - 1), body_hosts)
    m_idx = Enum.with_index(metrics)

    groups
    |> Task.async_stream(
      fn group ->
        body =
          IO.iodata_to_binary(
            for h <- group, labels = Devops.host_labels(h), {m, i} <- m_idx, do: line(m, labels, h * 100 + i, steps, ts)
          )

        servers |> Enum.map(fn s -> Task.async(fn -> post(s, body) end) end) |> Task.await_many(:infinity)
        byte_size(body)
      end,
      max_concurrency: 4,
      timeout: :infinity
    )
    |> Enum.reduce(0, fn {:ok, b}, acc -> acc + b end)
  end

  defp post(server, body, tries \\ 0) do
    {:ok, c} = HttpClient.connect(server.http_port)
    result = HttpClient.request(c, "POST", "/api/v1/import", [], body)
    HttpClient.close(c)

    case result do
      {:ok, s, _, _} when s in 200..299 -> :ok
      {:ok, 429, _, _} when tries < 1000 -> Process.sleep(50) && post(server, body, tries + 1)
      other -> raise "#{server.name}: import failed: #{inspect(other) |> String.slice(0, 300)}"
    end
  end

  # ------------------------------------------------------------------ queries

  @doc "{name, query, heavy?}"
  def queries do
    [
      {"single series", ~S|cpu_usage_user{hostname="host_1"}|, false},
      {"rate, one series", ~S|rate(net_bytes_recv{hostname="host_1"}[5m])|, false},
      {"rate, all series of a counter", ~S|rate(net_bytes_recv[5m])|, true},
      {"sum by region of rate", ~S|sum by (region) (rate(net_bytes_recv[5m]))|, true},
      {"avg_over_time all hosts", ~S|avg_over_time(cpu_usage_user[5m])|, true},
      {"max by hostname of cpu_usage_.*", ~S|max by (hostname) ({__name__=~"cpu_usage_.*"})|, true},
      {"topk 5", ~S|topk(5, cpu_usage_user)|, true},
      {"quantile_over_time 0.9", ~S|quantile_over_time(0.9, cpu_usage_user[5m])|, true},
      {"increase 1h", ~S|increase(net_bytes_recv[1h])|, true},
      {"deriv 5m", ~S|deriv(mem_used_percent[5m])|, true},
      {"binary join on(hostname)", ~S|rate(net_bytes_sent[5m]) / on(hostname) rate(net_bytes_recv[5m])|, true},
      {"selective label filter", ~S|{hostname="host_7"}|, false},
      {"count by region", ~S|count by (region) (cpu_usage_user)|, true},
      {"fan-out one host, all names", ~S|{__name__=~".+", hostname="host_1"}|, false},
      {"sum of rate", ~S|sum(rate(diskio_reads[5m]))|, true},
      {"avg by region", ~S|avg by (region) (system_load1)|, true},
      {"comparison filter", ~S|cpu_usage_user > 95|, true},
      {"max_over_time 1h, one host", ~S|max_over_time(system_load1{hostname="host_1"}[1h])|, false}
    ]
  end

  def path(:range, q, t0, t1), do: "/api/v1/query_range?" <> URI.encode_query(%{"query" => q, "start" => t0, "end" => t1, "step" => "60"})
  def path(:instant, q, _t0, t1), do: "/api/v1/query?" <> URI.encode_query(%{"query" => q, "time" => t1})

  @doc "GET on a keep-alive connection: {us, status, body, conn}."
  def get(conn, path) do
    t = System.monotonic_time(:microsecond)
    {:ok, status, body, conn} = HttpClient.request(conn, "GET", path, [], "")
    {System.monotonic_time(:microsecond) - t, status, body, conn}
  end

  def series_count(200, body) do
    case :jiffy.decode(body, [:return_maps]) do
      %{"data" => %{"result" => r}} when is_list(r) -> length(r)
      %{"data" => %{"resultType" => "scalar"}} -> 1
      _ -> :bad
    end
  end

  def series_count(_status, _body), do: :error

  @doc """
  Where two servers return different series, whether they still agree on the values:
  `{steps whose sorted values differ, steps}` over both matrices (values compared to 12
  significant digits). `{0, n}` means the same values at every step, held by other series
  (ties broken differently, as by `topk` among equal values).
  """
  def steps_differ(body_a, body_b) do
    a = step_values(body_a)
    b = step_values(body_b)
    steps = Map.keys(a) ++ Map.keys(b) |> Enum.uniq()
    {Enum.count(steps, &(Map.get(a, &1) != Map.get(b, &1))), length(steps)}
  end

  defp step_values(body) do
    %{"data" => %{"result" => result}} = :jiffy.decode(body, [:return_maps])

    result
    |> Enum.flat_map(fn s -> Map.get(s, "values", List.wrap(s["value"])) end)
    |> Enum.group_by(fn [t, _] -> t end, &significant/1)
    |> Map.new(fn {t, vs} -> {t, Enum.sort(vs)} end)
  end

  defp significant([_t, v]) do
    case Float.parse(v) do
      {x, ""} -> :erlang.float_to_binary(x, scientific: 11)
      _ -> v
    end
  end

  @doc """
  Repetitions from the slower warm-up: 5x BENCH_REPS under 20 ms (a median of fast queries
  needs more samples to be stable), BENCH_REPS under 0.5 s, 5 under 2 s, 3 beyond (BENCH_REPS caps).
  """
  def reps(warm_us, max_reps) do
    cond do
      warm_us < 20_000 -> 5 * max_reps
      warm_us < 500_000 -> max_reps
      warm_us < 2_000_000 -> min(max_reps, 5)
      true -> min(max_reps, 3)
    end
  end

  @doc "Run one query in one mode against both: a result map."
  def measure(conns, mode, {name, q, _heavy}, t0, t1, max_reps) do
    p = path(mode, q, t0, t1)

    {warm, conns} =
      Enum.map_reduce([:tm, :vm], conns, fn k, conns ->
        {us, status, body, c} = get(conns[k], p)
        {{k, %{warm_us: us, status: status, body: body, count: series_count(status, body), err: if(status != 200, do: String.slice(body, 0, 160))}}, Map.put(conns, k, c)}
      end)

    warm = Map.new(warm)
    ok? = warm.tm.status == 200 and warm.vm.status == 200
    warm = if ok? and warm.tm.count != warm.vm.count, do: put_in(warm.tm[:steps_differ], steps_differ(warm.tm.body, warm.vm.body)), else: warm
    warm = Map.new(warm, fn {k, w} -> {k, Map.delete(w, :body)} end)
    n = reps(max(warm.tm.warm_us, warm.vm.warm_us), max_reps)

    {samples, conns} =
      if ok? do
        Enum.reduce(1..n, {%{tm: [], vm: []}, conns}, fn _, {acc, conns} ->
          Enum.reduce([:tm, :vm], {acc, conns}, fn k, {acc, conns} ->
            {us, 200, _, c} = get(conns[k], p)
            {Map.update!(acc, k, &[us | &1]), Map.put(conns, k, c)}
          end)
        end)
      else
        {%{tm: [], vm: []}, conns}
      end

    {%{name: name, query: q, mode: mode, n: if(ok?, do: n, else: 0), warm: warm,
       tm: summary(samples.tm), vm: summary(samples.vm)}, conns}
  end

  defp summary([]), do: nil
  defp summary(us), do: Stats.summary(Enum.sort(us))

  # ------------------------------------------------------------------ throughput

  def wrk(server, path, seconds) do
    url = Servers.url(server) <> path
    {out, 0} = System.cmd("wrk", ["-t2", "-c8", "-d#{seconds}s", "--latency", url], stderr_to_stdout: true)
    [_, rps] = Regex.run(~r/Requests\/sec:\s+([\d.]+)/, out)
    non2xx = case Regex.run(~r/Non-2xx or 3xx responses:\s+(\d+)/, out), do: (nil -> 0; [_, n] -> String.to_integer(n))
    p50 = case Regex.run(~r/\s50%\s+(\S+)/, out), do: (nil -> "?"; [_, v] -> v)
    p99 = case Regex.run(~r/\s99%\s+(\S+)/, out), do: (nil -> "?"; [_, v] -> v)
    %{rps: String.to_float(rps), non2xx: non2xx, p50: p50, p99: p99}
  end
end

alias Bench.{PromQLBench, Servers, Stats}

hosts = Stats.env_int("BENCH_HOSTS", 1000)
n_metrics = Stats.env_int("BENCH_METRICS", 10)
hours = Stats.env_int("BENCH_HOURS", 24)
max_reps = Stats.env_int("BENCH_REPS", 10)
wrk_s = Stats.env_int("BENCH_WRK_SECONDS", 15)
wrk_rounds = Stats.env_int("BENCH_WRK_ROUNDS", 2)
if n_metrics < 10, do: raise("BENCH_METRICS must be at least 10 (the queries use the first 10 metrics)")
if hosts < 8, do: raise("BENCH_HOSTS must be at least 8 (the queries use host_7)")
if System.find_executable("wrk") == nil, do: raise("wrk is not installed: apt-get install -y wrk")

{:ok, _} = Application.ensure_all_started(:inets)
{uptime_start, 0} = System.cmd("uptime", [])
metrics = PromQLBench.metrics(n_metrics)
steps = hours * 360
total = hosts * n_metrics * steps
end_ms = div(System.os_time(:millisecond), 60_000) * 60_000 - 60_000
start_ms = end_ms - (steps - 1) * 10_000
t0 = div(start_ms, 1000)
t1 = div(end_ms, 1000)

IO.puts("data set: #{hosts} hosts x #{n_metrics} metrics x #{hours} h at 10 s = #{hosts * n_metrics} series, #{total} points")
IO.puts("metrics: #{Enum.join(metrics, " ")}")
vm = Servers.start(:vm)
tm_erl = System.get_env("BENCH_TM_ERL")
tm = if tm_erl, do: Servers.start(:tm, erl: tm_erl), else: Servers.start(:tm)

try do
  {load_us, wire} = :timer.tc(fn -> PromQLBench.load([vm, tm], hosts, metrics, steps, start_ms) end)
  IO.puts("generated and sent #{Stats.fmt(wire / 1_048_576)} MiB to both in #{Stats.fmt(load_us / 1.0e6)} s")
  {settle_us, _} =
    :timer.tc(fn ->
      for s <- [vm, tm], do: :ok = Servers.await_queryable(s, total)
      {200, _} = Servers.get(tm, "/internal/force_flush")
    end)

  IO.puts("stored and flushed in both after another #{Stats.fmt(settle_us / 1.0e6)} s")
  # each query is measured by a fresh client process on fresh keep-alive connections (one
  # per server, warmed by the warm-up request), so that no query's client state (a heap
  # grown by earlier bodies, a socket's buffers) is carried into the next one's timings
  results =
    for mode <- [:range, :instant], q <- PromQLBench.queries() do
      r =
        Task.async(fn ->
          {:ok, ctm} = Bench.HttpClient.connect(tm.http_port)
          {:ok, cvm} = Bench.HttpClient.connect(vm.http_port)
          {r, conns} = PromQLBench.measure(%{tm: ctm, vm: cvm}, mode, q, t0, t1, max_reps)
          Enum.each(Map.values(conns), &Bench.HttpClient.close/1)
          r
        end)
        |> Task.await(:infinity)

      IO.puts("  #{mode} #{r.name}: n=#{r.n} ours #{inspect(r.tm)} vm #{inspect(r.vm)} series #{inspect(r.warm.tm.count)}/#{inspect(r.warm.vm.count)}")
      r
    end

  small = PromQLBench.path(:range, ~S|rate(net_bytes_recv{hostname="host_1"}[5m])|, t1 - 3600, t1)
  small_instant = PromQLBench.path(:instant, ~S|cpu_usage_user{hostname="host_1"}|, t0, t1)
  IO.puts("wrk #{wrk_s} s on each, #{wrk_rounds} rounds ...")

  # rounds alternate between the servers (the cores are shared: load drifts)
  wrk_runs =
    for round <- 1..wrk_rounds, {kind, p} <- [range: small, instant: small_instant], s <- [tm, vm] do
      cpu0 = Servers.cpu_seconds(s)
      r = PromQLBench.wrk(s, p, wrk_s)
      cpu_us = (Servers.cpu_seconds(s) - cpu0) * 1.0e6 / max(r.rps * wrk_s, 1)
      IO.puts("  round #{round} #{kind} #{s.kind}: #{Stats.fmt(r.rps)} req/s, #{Stats.fmt(cpu_us)} us CPU/request")
      Map.merge(r, %{round: round, kind: kind, server: s.kind, cpu_us: cpu_us})
    end

  median_rps = fn kind, server ->
    rps = Enum.sort(for r <- wrk_runs, r.kind == kind, r.server == server, do: r.rps)
    n = length(rps)
    if rem(n, 2) == 1, do: Enum.at(rps, div(n, 2)), else: (Enum.at(rps, div(n, 2) - 1) + Enum.at(rps, div(n, 2))) / 2
  end

  wrk_tm = %{rps: median_rps.(:range, :tm)}
  wrk_vm = %{rps: median_rps.(:range, :vm)}
  {uptime_end, 0} = System.cmd("uptime", [])

  ms = fn nil -> "-"; {med, _} -> Stats.fmt(med) end
  p99 = fn nil -> "-"; {_, p} -> Stats.fmt(p) end

  row = fn r ->
    ratio = if r.tm && r.vm, do: Stats.fmt(elem(r.tm, 0) / max(elem(r.vm, 0), 0.001)), else: "-"
    target = if r.tm && r.vm, do: (if elem(r.tm, 0) <= 0.5 * elem(r.vm, 0), do: "met", else: "missed"), else: "-"
    counts = "#{inspect(r.warm.tm.count)} / #{inspect(r.warm.vm.count)}"
    mismatch =
      case r.warm.tm do
        %{steps_differ: {0, n}} -> "MISMATCH, same values at all #{n} steps (ties chosen differently)"
        %{steps_differ: {d, n}} -> "MISMATCH, values differ at #{d} of #{n} steps"
        _ -> if r.warm.tm.count == r.warm.vm.count, do: "", else: "MISMATCH"
      end
    err = [r.warm.tm.err && "ours #{r.warm.tm.status}: #{r.warm.tm.err}", r.warm.vm.err && "VM #{r.warm.vm.status}: #{r.warm.vm.err}"] |> Enum.reject(&is_nil/1) |> Enum.join("; ") |> String.replace("|", "/")
    "| #{r.name} | `#{String.replace(r.query, "|", "\\|")}` | #{r.n} | #{ms.(r.tm)} | #{p99.(r.tm)} | #{ms.(r.vm)} | #{p99.(r.vm)} | #{ratio} | #{target} | #{counts} | #{mismatch} #{err} |"
  end

  table = fn mode ->
    ["| query | PromQL | n | ours median ms | ours p99 ms | VM median ms | VM p99 ms | ours/VM median | target <= 0.5 | series ours / VM | mismatch |",
     "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"] ++ (results |> Enum.filter(&(&1.mode == mode)) |> Enum.map(row))
  end

  met = Enum.count(results, &(&1.tm && &1.vm && elem(&1.tm, 0) <= 0.5 * elem(&1.vm, 0)))
  measured = Enum.count(results, &(&1.tm && &1.vm))

  lines =
    [
      "Load at start: `#{String.trim(uptime_start)}`; at end: `#{String.trim(uptime_end)}` (2 shared cores; client, wrk and both servers share them).",
      "",
      "Data set: TSBS-devops-like (Bench.Devops host labels and metric kinds, integer random walks), #{hosts} hosts x #{n_metrics} metrics (#{Enum.join(metrics, ", ")}) x #{hours} h at 10 s = #{hosts * n_metrics} series, #{total} points; one JSON line per series, #{Stats.fmt(wire / 1_048_576)} MiB sent to /api/v1/import of both (bodies of ~100 series, generated and sent in #{Stats.fmt(load_us / 1.0e6)} s; stored and flushed #{Stats.fmt(settle_us / 1.0e6)} s later).",
      "Both servers in their own OS process on 127.0.0.1; ours with default options#{if tm_erl, do: " and emulator flags `#{tm_erl}`", else: ""}, VictoriaMetrics 1.79.5 with -search.disableCache. Same client (Bench.HttpClient; per query a fresh client process with one new keep-alive connection per server); one warm-up per query and server (gives the series count), then n repetitions alternating between the servers (n = #{5 * max_reps} if the slower warm-up took < 20 ms, #{max_reps} if < 0.5 s, 5 if < 2 s, else 3). Latency is request sent to response body read.",
      "Range queries: start=#{t0} end=#{t1} (full range) step=60; instant queries: time=#{t1}.",
      "",
      "Target: each median <= 0.5x VictoriaMetrics's. Met on #{met} of #{measured} measured query/mode pairs.",
      "",
      "## query_range, full range, step 60 s",
      ""
    ] ++ table.(:range) ++
      ["", "## instant query at the end time", ""] ++ table.(:instant) ++
      [
        "",
        "## Closed-loop throughput",
        "",
        "wrk -t2 -c8 -d#{wrk_s}s, #{wrk_rounds} rounds alternating between the servers, on `GET #{small}` (range: rate of one series, 1 h range, step 60 s) and `GET #{small_instant}` (instant: one series). Server CPU per request: user+sys of the server's OS process over the run / requests. Target: ours >= VictoriaMetrics's requests/s on the range query.",
        "",
        "| query | round | server | requests/s | server CPU us/request | non-2xx | wrk p50 | wrk p99 |",
        "|---|---:|---|---:|---:|---:|---:|---:|"
      ] ++
      Enum.map(wrk_runs, fn r ->
        "| #{r.kind} | #{r.round} | #{if r.server == :tm, do: "TimelessMetrics", else: "VictoriaMetrics"} | #{Stats.fmt(r.rps)} | #{Stats.fmt(r.cpu_us)} | #{r.non2xx} | #{r.p50} | #{r.p99} |"
      end) ++
      [
        "",
        "Median requests/s over the rounds, ours/VM: range #{Stats.fmt(wrk_tm.rps / wrk_vm.rps)} (target >= 1: #{if wrk_tm.rps >= wrk_vm.rps, do: "met", else: "missed"}), instant #{Stats.fmt(median_rps.(:instant, :tm) / median_rps.(:instant, :vm))}."
      ]

  Stats.record("promql_bench", lines)
after
  # A server that died already must not hide the error that ended the run.
  for s <- [tm, vm] do
    try do
      Servers.stop(s)
    rescue
      e -> IO.puts("stopping #{s.name}: #{Exception.message(e)} (it had exited already)")
    end
  end
end
