# Where the memory of our server goes during HTTP bulk ingest: the data set and senders of
# bench/vs_victoriametrics.exs against our server only, started with TM_MEMPROBE (see
# bench/support/tm_server.exs), then a breakdown at idle (baseline), at peak RSS, and the
# maxima over the ingest.
#
#   LANG=C.UTF-8 MIX_ENV=prod mix run bench/rss_probe.exs
#
# Knobs: those of vs_victoriametrics.exs (BENCH_HOSTS, BENCH_STEPS, BENCH_BODY_*,
# BENCH_CONCURRENCY, BENCH_ROUNDS, BENCH_FORMATS), and PROBE_ERL="<erl flags>" for the
# server's VM, PROBE_ENV="NAME=value,..." for its environment, PROBE_WRAP=heaptrack to attach a
# profiler to it (`heaptrack -p`), PROBE_FLUSH=0 to stop after the ingest.
for f <- ~w(devops stats victoria http_client servers), do: Code.require_file("support/#{f}.ex", __DIR__)
Code.require_file("../test/support/wire_formats.ex", __DIR__)
Code.require_file("support/vs_vm.ex", __DIR__)

alias Bench.{Servers, Stats, VsVM}

defmodule Bench.RssProbe do
  def mib(b), do: Stats.fmt(b / 1_048_576)

  def print(format, report, wall_s, points) do
    %{baseline: b, peak: p, now: n, timeline: tl} = report
    cols = [:rss, :total, :processes, :binary, :ets, :carriers, :queue_bytes, :queue_depth]
    maxima = for {c, i} <- Enum.with_index(cols, 1), into: %{}, do: {c, tl |> Enum.map(&elem(&1, i)) |> Enum.max(fn -> 0 end)}

    row = fn label, f -> "| #{label} | #{f.(b)} | #{f.(p)} | #{f.(n)} |" end
    m = fn key -> fn s -> mib(s.memory[key]) end end
    c = fn key -> fn s -> mib(s.carriers[key] || 0) end end
    sm = fn key -> fn s -> mib(s.smaps[key] || 0) end end
    ct = fn s -> s.carriers |> Map.values() |> Enum.sum() end

    IO.puts("""

    ### #{format}: #{Stats.rate(points / wall_s)} points/s over #{Stats.fmt(wall_s)} s

    | figure (MiB) | idle | at peak RSS | after ingest |
    |---|---:|---:|---:|
    #{row.("RSS", &mib(&1.rss))}
    #{row.("smaps anon", sm.(:anon))}
    #{row.("smaps brk heap", sm.(:brk_heap))}
    #{row.("smaps file-backed", sm.(:file))}
    #{row.("ERTS carriers, all", &mib(ct.(&1)))}
    #{row.("  binary_alloc carriers", c.(:binary_alloc))}
    #{row.("  eheap_alloc carriers", c.(:eheap_alloc))}
    #{row.("  ets_alloc carriers", c.(:ets_alloc))}
    #{row.("  others", &mib(ct.(&1) - (&1.carriers[:binary_alloc] + &1.carriers[:eheap_alloc] + &1.carriers[:ets_alloc])))}
    #{row.("RSS - ERTS carriers (NIF, libs, code)", &mib(&1.rss - ct.(&1)))}
    #{row.(":erlang.memory total", m.(:total))}
    #{row.("  processes", m.(:processes))}
    #{row.("  binary", m.(:binary))}
    #{row.("  ets", m.(:ets))}
    #{row.("  code+atom+system-rest", &mib(&1.memory[:code] + &1.memory[:atom]))}
    #{row.("queue bytes", &mib(&1.queue[:queue_bytes] || 0))}
    #{row.("queue depth (bodies)", &"#{&1.queue[:queue_depth] || 0}")}
    #{row.("connections: n / heap MiB / bin MiB", &"#{&1.connections.n} / #{mib(&1.connections.heap)} / #{mib(&1.connections.bin_bytes)}")}

    Maxima over the timeline (#{length(tl)} samples at 50 ms): #{Enum.map_join(cols, ", ", fn k -> "#{k} #{if k == :queue_depth, do: maxima[k], else: mib(maxima[k])}" end)}

    Top processes at peak (memory incl. heap, off-heap binaries referenced):
    #{Enum.map_join(Enum.take(p.top, 8), "\n", fn t -> "- #{inspect(t.name || t.call)}: #{mib(t.memory)} MiB, #{t.bins} binaries #{mib(t.bin_bytes)} MiB, mq #{t.mq}" end)}

    ETS at peak: #{Enum.map_join(p.ets, ", ", fn {name, bytes, size} -> "#{inspect(name)} #{mib(bytes)} MiB (#{size})" end)}

    Store at peak: #{inspect(p.info && Map.take(p.info, [:series, :points_buffered, :points_stored, :bytes_wal]))}
    """)
  end
end

{:ok, _} = Application.ensure_all_started(:inets)
%{hosts: hosts, steps: steps, body_hosts: body_hosts, body_steps: body_steps, start_ms: start_ms} = knobs = VsVM.knobs()
%{concurrency: concurrency, rounds: rounds, formats: formats} = knobs

env =
  System.get_env("PROBE_ENV", "")
  |> String.split(",", trim: true)
  |> Enum.map(fn kv -> [k, v] = String.split(kv, "=", parts: 2); {k, v} end)

erl = System.get_env("PROBE_ERL")
wrap = System.get_env("PROBE_WRAP")

point_bodies = VsVM.generate(hosts, steps, body_hosts, body_steps, start_ms)
table = VsVM.series_table(hosts)
IO.puts("server: erl flags #{inspect(erl)}, env #{inspect(env)}; #{concurrency} senders")

# PROBE_STORE_OPTS="opts A|opts B": run each format once per store options (TM_STORE_OPTS),
# alternating, PROBE_REPEAT [1] times
store_opts = System.get_env("PROBE_STORE_OPTS", "") |> String.split("|")
repeat = Stats.env_int("PROBE_REPEAT", 1)

for format <- formats, bodies = VsVM.encode_all(format, table, point_bodies), _ <- 1..repeat, so <- store_opts do
  IO.puts("\n== #{format}, store options: #{inspect(so)}")
  file = Path.join(System.tmp_dir!(), "tm-memprobe-#{System.unique_integer([:positive])}")
  env = if so == "", do: env, else: [{"TM_STORE_OPTS", so} | env]
  tm = Servers.start(:tm, env: [{"TM_MEMPROBE", file} | env], erl: erl)
  Process.sleep(500)

  if wrap do
    # attach the profiler to the running VM (it follows no exec from elixir's shell script)
    spawn(fn -> System.cmd(System.find_executable(wrap), ["-p", Integer.to_string(tm.os_pid)], stderr_to_stdout: true) |> elem(0) |> IO.puts() end)
    Process.sleep(5_000)
  end

  # rounds as the benchmark sends them (each waits until queryable)
  per = ceil(length(bodies) / rounds)
  t0 = System.monotonic_time(:microsecond)

  Enum.chunk_every(Enum.zip(bodies, point_bodies), per)
  |> Enum.reduce(0, fn chunk, done ->
    {bs, ps} = Enum.unzip(chunk)
    VsVM.send_all(tm, format, List.to_tuple(bs), concurrency)
    done = done + (ps |> Enum.map(&length/1) |> Enum.sum())
    :ok = Servers.await_queryable(tm, done)
    done
  end)

  wall = (System.monotonic_time(:microsecond) - t0) / 1.0e6
  points = point_bodies |> Enum.map(&length/1) |> Enum.sum()
  report = Servers.mem_report(tm, file)
  Bench.RssProbe.print(format, report, wall, points)
  IO.puts("peak RSS (VmHWM) after ingest: #{Bench.RssProbe.mib(Servers.peak_rss(tm))} MiB")
  # the benchmark reads the peak after its flush + merge: that phase too (PROBE_FLUSH=0: not)
  if System.get_env("PROBE_FLUSH") != "0" do
    # the two phases apart: VmHWM after the flush alone, then after the merge
    {200, _} = Servers.get(tm, "/internal/force_flush")
    IO.puts("peak RSS (VmHWM) after flush: #{Bench.RssProbe.mib(Servers.peak_rss(tm))} MiB (RSS now #{Bench.RssProbe.mib(Servers.rss(tm))})")
    Servers.flush_merge_bytes(tm)
    report = Servers.mem_report(tm, file)
    Bench.RssProbe.print("#{format} after flush + merge", report, wall, points)
    IO.puts("peak RSS (VmHWM) after flush + merge: #{Bench.RssProbe.mib(Servers.peak_rss(tm))} MiB")
  end
  Servers.stop(tm)
  File.rm(file)
end
