# HTTP ingestion side by side with VictoriaMetrics, per ingest format.
#
#   LANG=C.UTF-8 MIX_ENV=prod mix run bench/vs_victoriametrics.exs
#
# Both servers run in their own OS process on 127.0.0.1 (ours: bench/support/tm_server.exs
# with default options), fresh for each format. This VM only generates, encodes and sends,
# so its CPU is the client's. One TSBS-devops-like data set is encoded into bodies of every
# format (same points, same bodies: BENCH_BODY_HOSTS hosts x BENCH_BODY_STEPS steps each)
# and sent by BENCH_CONCURRENCY sender processes on keep-alive connections, in BENCH_ROUNDS
# rounds alternating between the servers. A round ends when its points are queryable: ours
# when the ingest counters reach the total and the queue is empty, VictoriaMetrics when
# vm_rows_added_to_storage_total reaches it, then /internal/force_flush.
#
# Environment knobs [defaults]:
#   BENCH_HOSTS [1000] (39 series each), BENCH_STEPS [260] (10 s apart): 10.14M points
#   BENCH_BODY_HOSTS [26], BENCH_BODY_STEPS [10]: 10,140 points per body
#   BENCH_CONCURRENCY [8], BENCH_ROUNDS [4], BENCH_FORMATS [vm_json,prometheus_text,influx,remote_write]
#
# Peak RSS (VmHWM of each server's OS process) is read twice: once the ingest rounds are
# done (the ingest phase alone) and after the forced flush + merge that the disk figures need.
#
# Remote write bodies are snappy *literal-only* blocks (valid snappy, not compressed: there
# is no snappy compressor here), so they are larger on the wire than Prometheus would send.
for f <- ~w(devops stats victoria http_client servers), do: Code.require_file("support/#{f}.ex", __DIR__)
Code.require_file("../test/support/wire_formats.ex", __DIR__)
Code.require_file("support/vs_vm.ex", __DIR__)

alias Bench.{Stats, VsVM}

{:ok, _} = Application.ensure_all_started(:inets)
%{hosts: hosts, steps: steps, body_hosts: body_hosts, body_steps: body_steps, formats: formats, start_ms: start_ms} =
  knobs = VsVM.knobs()

opts = Map.take(knobs, [:concurrency, :rounds])
{uptime_start, 0} = System.cmd("uptime", [])

IO.puts("generating #{hosts} hosts x 39 series x #{steps} steps ...")
{gen_us, bodies} = :timer.tc(fn -> VsVM.generate(hosts, steps, body_hosts, body_steps, start_ms) end)
table = VsVM.series_table(hosts)
total = bodies |> Enum.map(&length/1) |> Enum.sum()
IO.puts("#{total} points in #{length(bodies)} bodies, generated in #{Stats.fmt(gen_us / 1.0e6)} s")

results = Enum.map(formats, &VsVM.run_format(&1, table, bodies, opts))
{uptime_end, 0} = System.cmd("uptime", [])

summary =
  Enum.map(results, fn r ->
    rate = fn k -> r.acc[k].points / r.acc[k].wall_s end
    cpu = fn k -> r.ingest_cpu[k] / (total / 1.0e6) end
    "| #{r.format} | #{Stats.rate(rate.(:tm))} | #{Stats.rate(rate.(:vm))} | #{Stats.fmt(rate.(:tm) / rate.(:vm))} | #{Stats.fmt(cpu.(:tm) / cpu.(:vm))} | #{Stats.fmt(r.ingest_peak_rss.tm / r.ingest_peak_rss.vm)} | #{Stats.fmt(r.peak_rss.tm / r.peak_rss.vm)} | #{Stats.fmt(r.sizes.tm.total / r.sizes.vm.total)} |"
  end)

lines =
  [
    "Load at start: `#{String.trim(uptime_start)}`; at end: `#{String.trim(uptime_end)}` (2 shared cores; other builds may run).\n",
    "Data set: TSBS-devops-like, #{hosts} hosts x 39 series = #{hosts * 39} series, #{steps} points each at 10 s: #{total} points per format; " <>
      "bodies of #{body_hosts} hosts x #{body_steps} steps (#{body_hosts * 39 * body_steps} points); #{opts.concurrency} senders on keep-alive connections; " <>
      "#{opts.rounds} rounds alternating between the servers. Both servers fresh for each format, each in its own OS process; ours with default options. " <>
      "Remote write bodies are literal-only snappy (not compressed).\n",
    "## Summary (ratios ours / VictoriaMetrics)\n",
    "| format | ours points/s | VM points/s | throughput ratio | CPU/point ratio | peak RSS ratio, ingest | peak RSS ratio, incl. flush + merge | disk bytes ratio |",
    "|---|---:|---:|---:|---:|---:|---:|---:|"
  ] ++ summary ++ ["\n## Per format"] ++ Enum.flat_map(results, &VsVM.report(&1, total))

Stats.record("vs_victoriametrics", lines)
