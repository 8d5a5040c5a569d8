# Many small HTTP requests from many connections, side by side with VictoriaMetrics.
#
#   LANG=C.UTF-8 MIX_ENV=prod mix run bench/http_concurrency.exs
#
# Scenarios (each against both servers, one after the other, order alternating):
#   1. POST a 1-line Prometheus text body to /api/v1/import/prometheus (distinct series
#      per thread and request slot, current timestamps);
#   2. GET /api/v1/series?match[]=bench_up{job="jN"} (10 of 1000 preloaded series, N varies);
#   3. GET /health (the HTTP stack alone).
# Load generator: wrk (apt-get install wrk) with a Lua script, BENCH_THREADS threads and
# BENCH_CONNECTIONS connections for BENCH_DURATION seconds; without wrk an Elixir
# keep-alive client (bench/support/http_client.ex) with the same connection count.
# Servers: each in its own OS process (see bench/support/servers.ex).
#
# Knobs [defaults]: BENCH_CONNECTIONS [64], BENCH_THREADS [2], BENCH_DURATION [15]
for f <- ~w(devops stats victoria http_client servers), do: Code.require_file("support/#{f}.ex", __DIR__)

defmodule Bench.Concurrency do
  alias Bench.{HttpClient, Servers, Stats}


  # ------------------------------------------------------------------ scenarios as wrk Lua

  def lua(:ingest, _now_s) do
    """
    local counter = 0
    local id = 0
    local threads = 0
    function setup(thread) thread:set("id", threads); threads = threads + 1 end
    function init(args) id = tonumber(wrk.thread:get("id")) or 0 end
    request = function()
      counter = counter + 1
      local ts = os.time() * 1000 + (counter % 1000)
      local body = string.format('bench_conc{thread="%d",slot="%d"} %d %d\\n', id, counter % 1000, counter, ts)
      return wrk.format("POST", "/api/v1/import/prometheus", {["Content-Type"] = "text/plain"}, body)
    end
    """
  end

  def lua(:series, now_s) do
    """
    local counter = 0
    request = function()
      counter = counter + 1
      local path = string.format('/api/v1/series?match%%5B%%5D=bench_up%%7Bjob%%3D%%22j%d%%22%%7D&start=#{now_s - 3600}&end=#{now_s + 3600}', counter % 100)
      return wrk.format("GET", path)
    end
    """
  end

  def lua(:health, _now_s) do
    """
    request = function() return wrk.format("GET", "/health") end
    """
  end

  # the same request stream for the Elixir fallback client: {method, path, body}
  def elixir_request(:ingest, n, id) do
    ts = System.os_time(:second) * 1000 + rem(n, 1000)
    {"POST", "/api/v1/import/prometheus", ~s(bench_conc{thread="#{id}",slot="#{rem(n, 1000)}"} #{n} #{ts}\n)}
  end

  def elixir_request(:series, n, _id) do
    now = System.os_time(:second)
    q = URI.encode_www_form(~s(bench_up{job="j#{rem(n, 100)}"}))
    {"GET", "/api/v1/series?match%5B%5D=#{q}&start=#{now - 3600}&end=#{now + 3600}", ""}
  end

  def elixir_request(:health, _n, _id), do: {"GET", "/health", ""}

  # ------------------------------------------------------------------ running

  def preload(server) do
    now = System.os_time(:millisecond) - 60_000
    body = for j <- 0..99, i <- 0..9, into: "", do: ~s(bench_up{job="j#{j}",instance="i#{i}"} 1 #{now}\n)
    {:ok, c} = HttpClient.connect(server.http_port)
    {:ok, 204, _, c} = HttpClient.request(c, "POST", "/api/v1/import/prometheus", [], body)
    HttpClient.close(c)
    :ok = Servers.await_queryable(server, 1000)
  end

  def run(server, scenario, opts) do
    cpu0 = Servers.cpu_seconds(server)
    points0 = elem(Servers.ingested(server), 0)
    result = if opts.wrk, do: run_wrk(server, scenario, opts), else: run_elixir(server, scenario, opts)
    cpu = Servers.cpu_seconds(server) - cpu0
    drain = if scenario == :ingest, do: drain_seconds(server, points0 + result.ok_requests), else: nil
    Map.merge(result, %{cpu_s: cpu, drain_s: drain})
  end

  # after the load stops: seconds until every accepted point is stored
  defp drain_seconds(server, expected) do
    t0 = System.monotonic_time(:millisecond)
    :ok = Servers.await_queryable(server, expected, 300_000)
    (System.monotonic_time(:millisecond) - t0) / 1000
  end

  defp run_wrk(server, scenario, opts) do
    script = Path.join(System.tmp_dir!(), "bench-#{scenario}-#{System.unique_integer([:positive])}.lua")
    File.write!(script, lua(scenario, System.os_time(:second)))
    args = ["-t#{opts.threads}", "-c#{opts.connections}", "-d#{opts.duration}s", "--latency", "-s", script, Servers.url(server)]
    {out, 0} = System.cmd("wrk", args, stderr_to_stdout: true)
    File.rm(script)
    parse_wrk(out)
  end

  def parse_wrk(out) do
    rps = Regex.run(~r/Requests\/sec:\s+([\d.]+)/, out) |> Enum.at(1) |> String.to_float()
    [_, total] = Regex.run(~r/(\d+) requests in/, out)
    non2xx = case Regex.run(~r/Non-2xx or 3xx responses: (\d+)/, out), do: (nil -> 0; [_, n] -> String.to_integer(n))

    socket_errors =
      case Regex.run(~r/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/, out) do
        nil -> 0
        [_ | ns] -> ns |> Enum.map(&String.to_integer/1) |> Enum.sum()
      end

    total = String.to_integer(total)
    %{rps: rps, p50_ms: latency(out, "50%"), p99_ms: latency(out, "99%"), requests: total, errors: non2xx + socket_errors, ok_requests: total - non2xx}
  end

  defp latency(out, pct) do
    [_, v, unit] = Regex.run(~r/^\s+#{pct}\s+([\d.]+)(us|ms|s)\s*$/m, out)
    v = String.to_float(v)
    case unit, do: ("us" -> v / 1000; "ms" -> v; "s" -> v * 1000)
  end

  defp run_elixir(server, scenario, opts) do
    deadline = System.monotonic_time(:millisecond) + opts.duration * 1000
    t0 = System.monotonic_time(:microsecond)

    results =
      1..opts.connections
      |> Enum.map(fn id -> Task.async(fn -> client_loop(server.http_port, scenario, id, deadline) end) end)
      |> Task.await_many(:infinity)

    wall = (System.monotonic_time(:microsecond) - t0) / 1.0e6
    lat = results |> Enum.flat_map(& &1.latencies) |> Enum.sort()
    errors = results |> Enum.map(& &1.errors) |> Enum.sum()
    %{rps: length(lat) / wall, p50_ms: Stats.percentile(lat, 50) / 1000, p99_ms: Stats.percentile(lat, 99) / 1000,
      requests: length(lat), errors: errors, ok_requests: length(lat) - errors}
  end

  defp client_loop(port, scenario, id, deadline) do
    {:ok, c} = HttpClient.connect(port)
    loop(c, scenario, id, deadline, 0, [], 0)
  end

  defp loop(c, scenario, id, deadline, n, lat, errors) do
    if System.monotonic_time(:millisecond) >= deadline do
      HttpClient.close(c)
      %{latencies: lat, errors: errors}
    else
      {method, path, body} = elixir_request(scenario, n, id)
      t0 = System.monotonic_time(:microsecond)
      {:ok, status, _, c} = HttpClient.request(c, method, path, [], body)
      us = System.monotonic_time(:microsecond) - t0
      loop(c, scenario, id, deadline, n + 1, [us | lat], if(status in 200..299, do: errors, else: errors + 1))
    end
  end
end

alias Bench.{Concurrency, Servers, Stats}

{:ok, _} = Application.ensure_all_started(:inets)
wrk = System.find_executable("wrk")
opts = %{
  connections: Stats.env_int("BENCH_CONNECTIONS", 64),
  threads: Stats.env_int("BENCH_THREADS", 2),
  duration: Stats.env_int("BENCH_DURATION", 15),
  wrk: wrk != nil
}

{uptime_start, 0} = System.cmd("uptime", [])
servers = %{vm: Servers.start(:vm), tm: Servers.start(:tm)}
Enum.each(servers, fn {_, s} -> Concurrency.preload(s) end)

scenarios = [
  {:ingest, "POST 1-line Prometheus text"},
  {:series, "GET /api/v1/series (10 of 1000 series)"},
  {:health, "GET /health"}
]

results =
  scenarios
  |> Enum.with_index()
  |> Enum.map(fn {{scenario, label}, i} ->
    order = if rem(i, 2) == 0, do: [:vm, :tm], else: [:tm, :vm]

    r =
      Map.new(order, fn k ->
        res = Concurrency.run(servers[k], scenario, opts)
        IO.puts("#{label} #{k}: #{Stats.fmt(res.rps)} req/s, p50 #{Stats.fmt(res.p50_ms)} ms, p99 #{Stats.fmt(res.p99_ms)} ms, errors #{res.errors}")
        {k, res}
      end)

    {label, r}
  end)

peak = Map.new(servers, fn {k, s} -> {k, Servers.peak_rss(s)} end)
Enum.each(servers, fn {_, s} -> Servers.stop(s) end)
{uptime_end, 0} = System.cmd("uptime", [])

rows =
  Enum.map(results, fn {label, %{tm: t, vm: v}} ->
    cpu_us = fn r -> r.cpu_s * 1.0e6 / max(r.requests, 1) end
    drain = if t.drain_s, do: " (ours drained its queue #{Stats.fmt(t.drain_s)} s after the load; VM #{Stats.fmt(v.drain_s)} s)", else: ""

    ok_rps = fn r -> r.rps * r.ok_requests / max(r.requests, 1) end

    "| #{label}#{drain} | #{Stats.fmt(t.rps)} | #{Stats.fmt(v.rps)} | #{Stats.fmt(ok_rps.(t))} | #{Stats.fmt(ok_rps.(v))} | #{Stats.fmt(ok_rps.(t) / ok_rps.(v))} | #{Stats.fmt(t.p50_ms)} / #{Stats.fmt(v.p50_ms)} | " <>
      "#{Stats.fmt(t.p99_ms)} / #{Stats.fmt(v.p99_ms)} | #{Stats.fmt(cpu_us.(t))} / #{Stats.fmt(cpu_us.(v))} | #{t.errors} / #{v.errors} |"
  end)

lines =
  [
    "Load at start: `#{String.trim(uptime_start)}`; at end: `#{String.trim(uptime_end)}` (2 shared cores; the load generator shares them).\n",
    "Load generator: #{if wrk, do: "wrk #{opts.threads} threads", else: "Elixir keep-alive client (wrk not installed)"}, #{opts.connections} keep-alive connections, " <>
      "#{opts.duration} s per scenario and server; servers in their own OS processes, ours with default options.\n",
    "| scenario | ours req/s (all answers) | VM req/s | ours 2xx/s | VM 2xx/s | 2xx ratio | p50 ms ours / VM | p99 ms ours / VM | server CPU us/request ours / VM | non-2xx + socket errors ours / VM |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  ] ++ rows ++ [
    "\nNon-2xx answers of ours to the ingest flood were 429 (ingest queue full: the `ingest_queue_max_bodies` bound) when checked by hand with a status-printing wrk script; wrk does not back off, " <>
      "so \"req/s\" counts those fast refusals: compare the 2xx/s columns for accepted work.",
    "\nPeak RSS: ours #{Stats.fmt(peak.tm / 1_048_576)} MiB, VM #{Stats.fmt(peak.vm / 1_048_576)} MiB."]

Stats.record("http_concurrency", lines)
