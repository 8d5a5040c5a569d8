# The data set, encoders, senders and report of bench/vs_victoriametrics.exs (also used by
# bench/rss_probe.exs). Loaded with Code.require_file after devops, stats, victoria,
# http_client, servers and test/support/wire_formats.ex.
defmodule Bench.VsVM do
  alias Bench.{Devops, HttpClient, Servers, Stats}
  alias TimelessMetrics.WireFormats, as: W

  @metrics_per_host 39


  # ------------------------------------------------------------------ data set

  @doc """
  The data set and sender knobs both scripts take from the environment (defaults in the
  header of bench/vs_victoriametrics.exs), and the first timestamp: the last point an
  hour before now.
  """
  def knobs do
    steps = Stats.env_int("BENCH_STEPS", 260)

    %{
      hosts: Stats.env_int("BENCH_HOSTS", 1000),
      steps: steps,
      body_hosts: Stats.env_int("BENCH_BODY_HOSTS", 26),
      body_steps: Stats.env_int("BENCH_BODY_STEPS", 10),
      concurrency: Stats.env_int("BENCH_CONCURRENCY", 8),
      rounds: Stats.env_int("BENCH_ROUNDS", 4),
      formats: System.get_env("BENCH_FORMATS", "vm_json,prometheus_text,influx,remote_write") |> String.split(",") |> Enum.map(&String.to_atom/1),
      start_ms: (System.os_time(:second) - steps * 10 - 3600) * 1000
    }
  end

  @doc "Bodies of points `{sid, value, ts}` in send order (time windows, then host groups)."
  def generate(hosts, steps, body_hosts, body_steps, start_ms) do
    groups = Enum.chunk_every(0..(hosts - 1), body_hosts) |> Enum.map(&(hd(&1)..List.last(&1)))

    per_group =
      groups
      |> Task.async_stream(
        fn range ->
          first_sid = range.first * @metrics_per_host

          Devops.batches(range, start_ms, steps, 10_000, 42 + range.first)
          |> Enum.map(fn step -> step |> Enum.with_index(first_sid) |> Enum.map(fn {{_, _, v, ts}, sid} -> {sid, v, ts} end) end)
          |> Enum.chunk_every(body_steps)
          |> Enum.map(&Enum.concat/1)
        end,
        timeout: :infinity,
        ordered: true
      )
      |> Enum.map(fn {:ok, windows} -> windows end)

    # window-major order: every host group's body for window 0, then window 1...
    per_group |> Enum.zip() |> Enum.flat_map(&Tuple.to_list/1)
  end

  # ------------------------------------------------------------------ encoders

  @doc "Per-series encodings of every format, as tuples indexed by sid."
  def series_table(hosts) do
    Devops.series(hosts)
    |> Task.async_stream(
      fn {m, labels} ->
        {meas, field} = W.split_measurement(m)

        %{
          prom: W.prom_series(m, labels),
          json: :jiffy.encode(Map.put(labels, "__name__", m)),
          influx: {IO.iodata_to_binary(W.influx_prefix(meas, labels)), field},
          rw: W.rw_labels(m, labels)
        }
      end,
      ordered: true,
      max_concurrency: System.schedulers_online() * 2
    )
    |> Enum.map(fn {:ok, e} -> e end)
    |> List.to_tuple()
  end

  def encode(:prometheus_text, table, points) do
    Enum.map(points, fn {sid, v, ts} -> [elem(table, sid).prom, ?\s, W.text_value(v), ?\s, Integer.to_string(ts), ?\n] end)
  end

  def encode(:vm_json, table, points) do
    points
    |> by_series()
    |> Enum.map(fn {sid, samples} ->
      values = Enum.map_intersperse(samples, ?,, fn {_ts, v} -> W.text_value(v) end)
      stamps = Enum.map_intersperse(samples, ?,, fn {ts, _v} -> Integer.to_string(ts) end)
      [~s({"metric":), elem(table, sid).json, ~s(,"values":[), values, ~s(],"timestamps":[), stamps, "]}\n"]
    end)
  end

  def encode(:remote_write, table, points) do
    points
    |> by_series()
    |> Enum.map(fn {sid, samples} -> W.rw_time_series(elem(table, sid).rw, Enum.map(samples, fn {ts, v} -> W.rw_sample(ts, v) end)) end)
    |> W.snappy_literal()
  end

  # consecutive points of one host, measurement and time share a line (as telegraf writes them)
  def encode(:influx, table, points) do
    points
    |> Enum.chunk_by(fn {sid, _v, ts} -> {elem(elem(table, sid).influx, 0), ts} end)
    |> Enum.map(fn [{sid, _, ts} | _] = line ->
      fields = Enum.map_intersperse(line, ?,, fn {sid, v, _} -> W.influx_field(elem(elem(table, sid).influx, 1), v) end)
      [elem(elem(table, sid).influx, 0), ?\s, fields, ?\s, Integer.to_string(ts * 1_000_000), ?\n]
    end)
  end

  defp by_series(points) do
    {groups, order} =
      Enum.reduce(points, {%{}, []}, fn {sid, v, ts}, {groups, order} ->
        case groups do
          %{^sid => s} -> {%{groups | sid => [{ts, v} | s]}, order}
          _ -> {Map.put(groups, sid, [{ts, v}]), [sid | order]}
        end
      end)

    order |> Enum.reverse() |> Enum.map(&{&1, Enum.reverse(Map.fetch!(groups, &1))})
  end

  def encode_all(format, table, bodies) do
    bodies
    |> Task.async_stream(&IO.iodata_to_binary(encode(format, table, &1)), ordered: true, timeout: :infinity)
    |> Enum.map(fn {:ok, b} -> b end)
  end

  def request(:vm_json), do: {"/api/v1/import", []}
  def request(:prometheus_text), do: {"/api/v1/import/prometheus", []}
  def request(:influx), do: {"/write?db=bench", []}

  def request(:remote_write),
    do: {"/api/v1/write", [{"content-encoding", "snappy"}, {"content-type", "application/x-protobuf"}, {"x-prometheus-remote-write-version", "0.1.0"}]}

  # ------------------------------------------------------------------ sending

  @doc "Send `bodies` (a tuple) with `n` senders; `%{retries_429: n, errors: n}`."
  def send_all(server, format, bodies, n) do
    {path, headers} = request(format)
    next = :atomics.new(1, [])
    total = tuple_size(bodies)

    1..n
    |> Enum.map(fn _ -> Task.async(fn -> sender(server.http_port, path, headers, bodies, total, next) end) end)
    |> Task.await_many(:infinity)
    |> Enum.reduce(%{retries_429: 0, errors: 0}, fn r, acc -> %{retries_429: acc.retries_429 + r.retries_429, errors: acc.errors + r.errors} end)
  end

  defp sender(port, path, headers, bodies, total, next) do
    {:ok, conn} = HttpClient.connect(port)
    result = send_loop(conn, path, headers, bodies, total, next, %{retries_429: 0, errors: 0})
    result
  end

  defp send_loop(conn, path, headers, bodies, total, next, acc) do
    i = :atomics.add_get(next, 1, 1)

    if i > total do
      HttpClient.close(conn)
      acc
    else
      {conn, acc} = send_one(conn, path, headers, elem(bodies, i - 1), acc)
      send_loop(conn, path, headers, bodies, total, next, acc)
    end
  end

  defp send_one(conn, path, headers, body, acc) do
    case HttpClient.request(conn, "POST", path, headers, body) do
      {:ok, status, _, conn} when status in 200..299 ->
        {conn, acc}

      {:ok, 429, _, conn} ->
        Process.sleep(20)
        send_one(conn, path, headers, body, %{acc | retries_429: acc.retries_429 + 1})

      {:ok, status, resp, conn} ->
        IO.puts("HTTP #{status}: #{String.slice(resp, 0, 200)}")
        {conn, %{acc | errors: acc.errors + 1}}

      {:error, reason} ->
        IO.puts("request failed: #{inspect(reason)}")
        {:ok, conn} = HttpClient.connect(conn.port)
        {conn, %{acc | errors: acc.errors + 1}}
    end
  end

  # ------------------------------------------------------------------ one format

  def run_format(format, table, point_bodies, opts) do
    IO.puts("\n== #{format}: encoding #{length(point_bodies)} bodies ...")
    {enc_us, bodies} = :timer.tc(fn -> encode_all(format, table, point_bodies) end)
    wire = bodies |> Enum.map(&byte_size/1) |> Enum.sum()
    IO.puts("   #{Stats.fmt(wire / 1_048_576)} MiB on the wire, encoded in #{Stats.fmt(enc_us / 1.0e6)} s")

    rounds = bodies |> Enum.chunk_every(ceil(length(bodies) / opts.rounds)) |> Enum.map(&List.to_tuple/1)
    round_points = point_bodies |> Enum.chunk_every(ceil(length(bodies) / opts.rounds)) |> Enum.map(fn bs -> bs |> Enum.map(&length/1) |> Enum.sum() end)

    servers = %{vm: Servers.start(:vm), tm: Servers.start(:tm)}
    cpu0 = Map.new(servers, fn {k, s} -> {k, Servers.cpu_seconds(s)} end)
    acc0 = %{wall_s: 0.0, client_cpu_s: 0.0, retries_429: 0, errors: 0, points: 0}

    {acc, _} =
      rounds
      |> Enum.zip(round_points)
      |> Enum.with_index()
      |> Enum.reduce({%{vm: acc0, tm: acc0}, 0}, fn {{round, points}, r}, {acc, done} ->
        order = if rem(r, 2) == 0, do: [:vm, :tm], else: [:tm, :vm]

        acc =
          Enum.reduce(order, acc, fn k, acc ->
            res = timed_round(servers[k], format, round, done + points, opts.concurrency)
            IO.puts("   round #{r + 1} #{k}: #{Stats.rate(points / res.wall_s)} points/s (client #{Stats.fmt(res.client_cpu_s / res.wall_s)} cores)")
            Map.update!(acc, k, &merge_round(&1, res, points))
          end)

        {acc, done + points}
      end)

    ingest_cpu = Map.new(servers, fn {k, s} -> {k, Servers.cpu_seconds(s) - cpu0[k]} end)
    # high-water mark of the ingest phase alone, before the forced flush + merge below
    ingest_peak = Map.new(servers, fn {k, s} -> {k, Servers.peak_rss(s)} end)
    stored = Map.new(servers, fn {k, s} -> {k, elem(Servers.ingested(s), 0)} end)
    sizes = Map.new(servers, fn {k, s} -> {k, Servers.flush_merge_bytes(s)} end)
    peak = Map.new(servers, fn {k, s} -> {k, Servers.peak_rss(s)} end)
    Enum.each(servers, fn {_, s} -> Servers.stop(s) end)

    %{format: format, wire_bytes: wire, bodies: length(bodies), acc: acc, ingest_cpu: ingest_cpu, stored: stored, sizes: sizes, peak_rss: peak,
      ingest_peak_rss: ingest_peak}
  end

  defp timed_round(server, format, bodies, expected_total, concurrency) do
    client0 = Stats.cpu_seconds(System.pid())
    t0 = System.monotonic_time(:microsecond)
    counts = send_all(server, format, bodies, concurrency)
    :ok = Servers.await_queryable(server, expected_total)
    wall = (System.monotonic_time(:microsecond) - t0) / 1.0e6
    Map.merge(counts, %{wall_s: wall, client_cpu_s: Stats.cpu_seconds(System.pid()) - client0})
  end

  defp merge_round(acc, res, points) do
    %{acc | wall_s: acc.wall_s + res.wall_s, client_cpu_s: acc.client_cpu_s + res.client_cpu_s, retries_429: acc.retries_429 + res.retries_429,
            errors: acc.errors + res.errors, points: acc.points + points}
  end

  # ------------------------------------------------------------------ report

  def report(result, total) do
    %{acc: acc, ingest_cpu: cpu, sizes: sizes, peak_rss: peak, ingest_peak_rss: ingest_peak, stored: stored} = result
    rate = fn k -> acc[k].points / acc[k].wall_s end
    cpu_pm = fn k -> cpu[k] / (total / 1.0e6) end
    bpp = fn k, key -> sizes[k][key] / total end
    row = fn label, f, fmt -> "| #{label} | #{fmt.(f.(:tm))} | #{fmt.(f.(:vm))} | #{Stats.fmt(f.(:tm) / max(f.(:vm), 1.0e-9))} |" end
    mib = fn b -> Stats.fmt(b / 1_048_576) end

    [
      "\n### #{result.format}\n",
      "#{result.bodies} bodies, #{Stats.fmt(result.wire_bytes / 1_048_576)} MiB on the wire (#{Stats.fmt(result.wire_bytes / total)} bytes/point).\n",
      "| figure | TimelessMetrics | VictoriaMetrics | ours/VM |",
      "|---|---:|---:|---:|",
      row.("points/s, end-to-end (until queryable)", rate, &Stats.rate/1),
      row.("server CPU s per 1M points (ingest phase, incl. background)", cpu_pm, &Stats.fmt/1),
      row.("server cores busy during ingest", fn k -> cpu[k] / acc[k].wall_s end, &Stats.fmt/1),
      row.("peak RSS of the server during ingest, until queryable (MiB)", fn k -> ingest_peak[k] / 1.0 end, mib),
      row.("peak RSS of the server incl. the forced flush + merge (MiB)", fn k -> peak[k] / 1.0 end, mib),
      row.("bytes/point on disk after flush+merge: samples", &bpp.(&1, :samples), &Stats.fmt/1),
      row.("bytes/point on disk after flush+merge: total (data dir)", &bpp.(&1, :total), &Stats.fmt/1),
      row.("client cores busy while sending to it", fn k -> acc[k].client_cpu_s / acc[k].wall_s end, &Stats.fmt/1),
      "| 429 retries / errors | #{acc.tm.retries_429} / #{acc.tm.errors} | #{acc.vm.retries_429} / #{acc.vm.errors} | |",
      "| points stored / sent | #{stored.tm} / #{total} | #{stored.vm} / #{total} | |"
    ]
  end
end
