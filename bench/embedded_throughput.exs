# Embedded API throughput, read latency, compression and restart, side by side with
# VictoriaMetrics for bytes per point.
#
#   MIX_ENV=prod mix run bench/embedded_throughput.exs
#
# Environment knobs (defaults in brackets):
#   BENCH_HOSTS [200]        hosts of the TSBS-devops-like data set (39 series each)
#   BENCH_STEPS [2160]       10 s steps per series (2160 = 6 h)
#   BENCH_RESTART_SERIES [1000000], BENCH_RESTART_POINTS [100] points per series for the restart test
#   BENCH_SKIP_VM=1          skip the VictoriaMetrics comparison
#   BENCH_WRITES_ONLY=1      only the write sections (no flush/compression, reads or restart test)
for f <- ~w(devops stats victoria), do: Code.require_file("support/#{f}.ex", __DIR__)

alias Bench.{Devops, Stats, Victoria}
alias TimelessMetrics, as: TM

hosts = Stats.env_int("BENCH_HOSTS", 200)
steps = Stats.env_int("BENCH_STEPS", 2160)
restart_series = Stats.env_int("BENCH_RESTART_SERIES", 1_000_000)
restart_points = Stats.env_int("BENCH_RESTART_POINTS", 100)
writes_only = System.get_env("BENCH_WRITES_ONLY") not in [nil, "", "0"]

{:ok, _} = Application.ensure_all_started(:inets)
tmp = Path.join(System.tmp_dir!(), "tm-bench-#{System.unique_integer([:positive])}")
File.mkdir_p!(tmp)
report = []
add = fn report, line -> report ++ [line] end
{uptime_start, 0} = System.cmd("uptime", [])

start_ms = (System.os_time(:second) - steps * 10 - 3600) * 1000
IO.puts("generating #{hosts} hosts x 39 series x #{steps} steps ...")
{gen_us, batches} = :timer.tc(fn -> Devops.batches(hosts, start_ms, steps) end)
n_series = hosts * 39
total = n_series * steps
IO.puts("#{total} points in #{Float.round(gen_us / 1.0e6, 1)} s")

# Client batches of about 10k points: group whole time steps.
per_batch = max(1, div(10_000, n_series))
client_batches = batches |> Enum.chunk_every(per_batch) |> Enum.map(&Enum.concat/1)

start_store = fn name, opts ->
  {:ok, _} = TM.start_link([name: name, data_dir: Path.join(tmp, "#{name}")] ++ opts)
  name
end

throughput = fn fun, points ->
  :erlang.garbage_collect()
  {us, _} = :timer.tc(fun)
  points / (us / 1.0e6)
end

report = add.(report, "Data set: TSBS-devops-like, #{hosts} hosts x 39 series = #{n_series} series, #{steps} points each at 10 s, #{total} points; client batches of #{per_batch * n_series} points.\n")
report = add.(report, "## Writes (points/s)\n\n| path | points/s | target |\n|---|---:|---:|")

# Each batch is built right before its write and only the write is timed, as in an
# application that builds a batch and hands it over: the tuples and floats are fresh
# (in cache), label maps are the application's long-lived ones (shared by reference).
# Timing writes out of a 16.8M-point list built minutes earlier would mostly measure
# cache misses on cold list cells.
timed_writes = fn batches, build, write ->
  :erlang.garbage_collect()

  Enum.reduce(batches, 0, fn batch, acc ->
    fresh = build.(batch)
    {us, :ok} = :timer.tc(fn -> write.(fresh) end)
    acc + us
  end)
end

fresh_labeled = fn b -> Enum.map(b, fn {m, l, v, t} -> {m, l, v * 1.0, t} end) end

# 1. Labeled write_batch (first pass creates the series).
s1 = start_store.(:labeled, [])
labeled_us = timed_writes.(client_batches, fresh_labeled, &TM.write_batch(s1, &1, unit: :millisecond))
labeled = total / (labeled_us / 1.0e6)
IO.puts("labeled write_batch: #{Stats.rate(labeled)} points/s")
report = add.(report, "| labeled `write_batch` | #{Stats.rate(labeled)} | >= 3M |")

# 2. Pre-resolved writes: resolve once, then write by id.
s2 = start_store.(:resolved, [])
ids = Map.new(Devops.series(hosts), fn {m, l} -> {{m, l}, elem(TM.resolve_series(s2, m, l), 1)} end)
resolved_batches = Enum.map(client_batches, fn b -> Enum.map(b, fn {m, l, v, t} -> {Map.fetch!(ids, {m, l}), v, t} end) end)
fresh_resolved = fn b -> Enum.map(b, fn {id, v, t} -> {id, v * 1.0, t} end) end
resolved_us = timed_writes.(resolved_batches, fresh_resolved, &TM.write_resolved(s2, &1, unit: :millisecond))
resolved = total / (resolved_us / 1.0e6)
IO.puts("pre-resolved write_resolved: #{Stats.rate(resolved)} points/s")
report = add.(report, "| pre-resolved `write_resolved` (tuples) | #{Stats.rate(resolved)} | >= 10M |")

column_batches =
  Enum.map(resolved_batches, fn b ->
    {for({id, _, _} <- b, into: <<>>, do: <<id::little-64>>), for({_, _, t} <- b, into: <<>>, do: <<t + 1::little-signed-64>>),
     for({_, v, _} <- b, into: <<>>, do: <<v * 1.0::float-little-64>>)}
  end)

columns = throughput.(fn -> Enum.each(column_batches, &(:ok = TM.write_resolved(s2, &1, unit: :millisecond))) end, total)
IO.puts("pre-resolved columns: #{Stats.rate(columns)} points/s")
report = add.(report, "| pre-resolved columnar (`write_resolved` with `{ids, timestamps, values}` binaries) | #{Stats.rate(columns)} | >= 10M |")

# 3. Concurrent labeled writers on one store: 1, 2 and 4 writers with the same harness.
# The samples sit in ETS as {value, ts} rows per batch; each writer keeps its own label
# maps (one per series, as an application does) and, inside the clock, looks its batches
# up and builds their entries before writing them. A writer's heap stays small: holding a
# copy of its whole slice (GBs) put major collections of that heap inside the clock.
sample_table = :ets.new(:bench_batches, [:set, :public, read_concurrency: true])
for {b, i} <- Enum.with_index(client_batches), do: :ets.insert(sample_table, {i, Enum.map(b, fn {_m, _l, v, t} -> {v, t} end)})
batch_count = length(client_batches)

for writers <- [1, 2, 4] do
  name = :"concurrent_#{writers}"
  s = start_store.(name, [])
  parent = self()

  tasks =
    for w <- 0..(writers - 1) do
      Task.async(fn ->
        series = Devops.series(hosts)
        send(parent, {:ready, self()})
        receive do: (:go -> :ok)

        for i <- w..(batch_count - 1)//writers do
          [{^i, rows}] = :ets.lookup(sample_table, i)
          batch = Enum.zip_with(Stream.cycle(series), rows, fn {m, l}, {v, t} -> {m, l, v, t} end)
          :ok = TM.write_batch(s, batch, unit: :millisecond)
        end
      end)
    end

  for _ <- tasks, do: receive(do: ({:ready, _} -> :ok))
  t0 = System.monotonic_time(:microsecond)
  Enum.each(tasks, &send(&1.pid, :go))
  Task.await_many(tasks, :infinity)
  rate = total / ((System.monotonic_time(:microsecond) - t0) / 1.0e6)

  IO.puts("#{writers} concurrent writers: #{Stats.rate(rate)} points/s")
  TM.stop(s)
  Process.put({:concurrent, writers}, rate)
end

:ets.delete(sample_table)
report = add.(report, "| labeled, 1 writer fed like the concurrent ones (entries built inside the clock) | #{Stats.rate(Process.get({:concurrent, 1}))} | |")
report = add.(report, "| labeled, 2 concurrent writers | #{Stats.rate(Process.get({:concurrent, 2}))} | |")
report = add.(report, "| labeled, 4 concurrent writers | #{Stats.rate(Process.get({:concurrent, 4}))} | |")
TM.stop(s2)

report =
  if writes_only do
    TM.stop(s1)
    report
  else
    # 4. Flush + merge, then compression.
    {flush_us, {:ok, _}} = :timer.tc(fn -> TM.flush(s1) end)
    {merge_us, {:ok, _}} = :timer.tc(fn -> TM.merge(s1) end)
    {:ok, info} = TM.info(s1)
    ours_total = info.chunk_bytes + info.series_log_bytes
    IO.puts("flush #{flush_us / 1000} ms, merge #{merge_us / 1000} ms, #{info.bytes_per_point} bytes/point")

    report = add.(report, "\n## Bytes per point after flush + merge\n")
    report = add.(report, "Flush of #{total} points: #{Stats.fmt(flush_us / 1000)} ms; merge: #{Stats.fmt(merge_us / 1000)} ms.\n")

    vm_result =
      if System.get_env("BENCH_SKIP_VM") do
        nil
      else
        case Victoria.start() do
          {:ok, vm} ->
            IO.puts("importing the same points into VictoriaMetrics ...")
            by_series = batches |> Enum.concat() |> Enum.group_by(fn {m, l, _, _} -> {m, l} end, fn {_, _, v, t} -> {t, v} end)

            by_series
            |> Enum.map(fn {{m, l}, pts} -> {m, l, pts} end)
            |> Enum.chunk_every(500)
            |> Enum.each(fn chunk ->
              {:ok, 204, _} = Victoria.post(vm, "/api/v1/import", IO.iodata_to_binary(Victoria.json_lines(chunk)))
            end)

            sizes = Victoria.flush_and_merge(vm)
            Victoria.stop(vm)
            sizes

          {:error, reason} ->
            IO.puts("skipping VictoriaMetrics: #{reason}")
            nil
        end
      end

    report = add.(report, "| store | sample bytes | index/series bytes | bytes/point (samples) | bytes/point (total) |\n|---|---:|---:|---:|---:|")
    report = add.(report, "| TimelessMetrics | #{info.chunk_bytes} | #{info.series_log_bytes} | #{Stats.fmt(info.chunk_bytes / total)} | #{Stats.fmt(ours_total / total)} |")

    report =
      case vm_result do
        nil ->
          add.(report, "| VictoriaMetrics | not measured | | | |")

        %{data: d, index: i, total: t} ->
          report
          |> add.("| VictoriaMetrics 1.79 | #{d} | #{i} | #{Stats.fmt(d / total)} | #{Stats.fmt(t / total)} |")
          |> add.("\nRatio (ours / VictoriaMetrics): samples #{Stats.fmt(info.chunk_bytes / d)}, total #{Stats.fmt(ours_total / t)} (target <= 0.8).")
      end

    # 5. Reads on the flushed store.
    single = Devops.host_labels(7)
    m100 = [{"__name__", :re, "cpu_usage_.*"}, {"hostname", :re, "host_1[0-9]"}]
    m1000 = [{"__name__", :re, "cpu_usage_.*"}, {"hostname", :re, "host_1[0-9][0-9]"}]
    to = start_ms + steps * 10_000
    {:ok, r100} = TM.query_multi(s1, nil, m100, unit: :millisecond)
    {:ok, r1000} = TM.query_multi(s1, nil, m1000, unit: :millisecond)

    reads = [
      {"raw single series, full range (#{steps} points)", fn -> {:ok, _} = TM.query(s1, "cpu_usage_user", single, unit: :millisecond) end},
      {"fan-out #{length(r100)} series, full range", fn -> {:ok, _} = TM.query_multi(s1, nil, m100, unit: :millisecond) end},
      {"fan-out #{length(r1000)} series, last hour", fn -> {:ok, _} = TM.query_multi(s1, nil, m1000, from: to - 3_600_000, to: to, unit: :millisecond) end},
      {"aggregate avg 5 min over #{length(r1000)} series, full range", fn ->
         {:ok, _} = TM.query_aggregate(s1, nil, m1000, step: 300_000, aggregate: :avg, unit: :millisecond)
       end},
      {"aggregate rate 5 min over 1 counter x #{hosts} hosts", fn ->
         {:ok, _} = TM.query_aggregate(s1, "net_bytes_sent", %{}, step: 300_000, aggregate: :rate, unit: :millisecond)
       end},
      {"latest, one series", fn -> {:ok, {_, _}} = TM.latest(s1, "cpu_usage_user", single) end},
      {"latest, #{length(r1000)} series", fn -> {:ok, _} = TM.latest(s1, nil, m1000) end}
    ]

    report = add.(report, "\n## Reads (after flush + merge)\n\n| read | median ms | p99 ms |\n|---|---:|---:|")

    report =
      Enum.reduce(reads, report, fn {label, fun}, report ->
        # In a fresh process: this one holds the whole data set, and a large result
        # built on its heap would pay for collecting it.
        {med, p99} =
          Task.async(fn ->
            _warm = fun.()
            Stats.summary(Stats.sample(50, fun))
          end)
          |> Task.await(:infinity)

        IO.puts("#{label}: median #{med} ms, p99 #{p99} ms")
        add.(report, "| #{label} | #{Stats.fmt(med)} | #{Stats.fmt(p99)} |")
      end)

    TM.stop(s1)

    # 6. Restart recovery of a large store, measured in a fresh OS process.
    IO.puts("restart test: #{restart_series} series x #{restart_points} points ...")
    rdir = Path.join(tmp, "restart")
    {:ok, _} = TM.start_link(name: :restart, data_dir: rdir, max_buffered_points: 400_000_000, flush_interval: 86_400_000)

    ids =
      for i <- 0..(restart_series - 1) do
        {:ok, id} = TM.resolve_series(:restart, "restart_metric", %{"series" => Integer.to_string(i), "job" => "bench"})
        id
      end

    {:ok, %{ref: rref}} = TimelessMetrics.Engine.handle(:restart)
    id_bin = for id <- ids, into: <<>>, do: <<id::little-64>>

    for p <- 0..(restart_points - 1) do
      ts = for _ <- ids, into: <<>>, do: <<start_ms + p * 10_000::little-signed-64>>
      vals = for i <- 0..(restart_series - 1), into: <<>>, do: <<rem(i * 7 + p, 1000) / 10::float-little-64>>
      :ok = TimelessMetrics.Native.write_columns(rref, id_bin, ts, vals, 1)
      if rem(p, 10) == 9, do: {:ok, _} = TM.flush(:restart)
    end

    {:ok, rinfo} = TM.info(:restart)
    TM.stop(:restart)
    ebin = :code.lib_dir(:timeless_metrics, :ebin) |> to_string()

    script = """
    {us, {:ok, _}} = :timer.tc(fn -> TimelessMetrics.start_link(name: :r, data_dir: #{inspect(rdir)}) end)
    {:ok, info} = TimelessMetrics.info(:r)
    {:ok, [_ | _]} = TimelessMetrics.query(:r, "restart_metric", %{"series" => "123", "job" => "bench"})
    :erlang.garbage_collect()
    status = File.read!("/proc/self/status")
    kb = fn k -> [_, v] = Regex.run(~r/\#{k}:\\s+(\\d+) kB/, status); String.to_integer(v) * 1024 end
    IO.puts("RESULT \#{us} \#{info.series} \#{info.points} \#{kb.("VmRSS")} \#{kb.("VmHWM")}")
    """

    {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", script], stderr_to_stdout: true)
    [_, us, rs, rp, rss, hwm] = Regex.run(~r/RESULT (\d+) (\d+) (\d+) (\d+) (\d+)/, out)
    [us, rs, rp, rss, hwm] = Enum.map([us, rs, rp, rss, hwm], &String.to_integer/1)

    report =
      report
      |> add.("\n## Restart recovery\n")
      |> add.("Store of #{rs} series / #{rp} points (#{rinfo.chunk_files} chunk files, #{rinfo.chunk_bytes} chunk bytes) reopened in a fresh VM:\n")
      |> add.("| figure | value | target |\n|---|---:|---:|")
      |> add.("| open time | #{Stats.fmt(us / 1.0e6)} s | < 5 s |")
      |> add.("| RSS after open | #{Stats.fmt(rss / 1_048_576)} MiB | |")
      |> add.("| peak RSS (VmHWM) | #{Stats.fmt(hwm / 1_048_576)} MiB | < 1.5x RSS after open (#{Stats.fmt(hwm / max(rss, 1))}x) |")
    report
  end

File.rm_rf!(tmp)
{uptime_end, 0} = System.cmd("uptime", [])
load = "Load at start: `#{String.trim(uptime_start)}`; at end: `#{String.trim(uptime_end)}` (2 shared cores).\n"
Stats.record("embedded_throughput", [load | report])
