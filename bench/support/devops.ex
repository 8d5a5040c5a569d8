defmodule Bench.Devops do
  @moduledoc """
  A TSBS-devops-like data set, deterministic for a seed: per host the tags
  `hostname region datacenter rack os arch team service service_version
  service_environment`, and 39 series per host:

  - `cpu_usage_*` (10 fields): percents with one or two decimals, random walks in 0..100
  - `mem_*` (6): bytes as integers (total fixed, used/free/cached walking), `mem_used_percent` with 2 decimals
  - `disk_*` (4): bytes and inodes as integers, slowly growing
  - `diskio_*` (4) and `net_*` (8): monotonic counters (integers, increments of realistic size)
  - `kernel_*` (4): counters (context switches, interrupts, forks) and boot time (constant)
  - `system_load*` (3): load averages with 2 decimals

  Timestamps are every `interval_ms` with a few ms of jitter, as agents produce them.
  """

  @regions ~w(us-east-1 us-west-1 us-west-2 eu-west-1 eu-central-1 ap-southeast-1 ap-southeast-2 ap-northeast-1 sa-east-1)
  @cpu ~w(user system idle nice iowait irq softirq steal guest guest_nice)
  @counters ~w(diskio_reads diskio_writes diskio_read_bytes diskio_write_bytes net_bytes_sent net_bytes_recv
               net_packets_sent net_packets_recv net_err_in net_err_out net_drop_in net_drop_out
               kernel_context_switches kernel_interrupts kernel_processes_forked)

  @doc "Tags of host `i`."
  def host_labels(i) do
    region = Enum.at(@regions, rem(i, length(@regions)))

    %{
      "hostname" => "host_#{i}",
      "region" => region,
      "datacenter" => "#{region}#{<<?a + rem(i, 3)>>}",
      "rack" => "#{rem(i * 7, 100)}",
      "os" => Enum.at(~w(Ubuntu16.10 Ubuntu16.04LTS Ubuntu15.10), rem(i, 3)),
      "arch" => Enum.at(~w(x64 x86), rem(i, 2)),
      "team" => Enum.at(~w(SF NYC LON CHI), rem(i, 4)),
      "service" => "#{rem(i, 20)}",
      "service_version" => "#{rem(i, 2)}",
      "service_environment" => Enum.at(~w(production staging test), rem(i, 3))
    }
  end

  @doc "Metric names of one host, in a fixed order (39 series per host)."
  def metrics do
    Enum.map(@cpu, &"cpu_usage_#{&1}") ++
      ~w(mem_total mem_used mem_free mem_cached mem_buffered mem_used_percent) ++
      ~w(disk_total disk_used disk_inodes_used disk_inodes_free) ++
      @counters ++ ~w(kernel_boot_time system_load1 system_load5 system_load15)
  end

  @doc "Every series as `{metric, labels}` for `hosts` hosts (or for a range of host numbers)."
  def series(hosts) when is_integer(hosts), do: series(0..(hosts - 1))
  def series(%Range{} = hosts), do: for(h <- hosts, labels = host_labels(h), m <- metrics(), do: {m, labels})

  @doc "How a metric moves: one of :cpu, :constant, :percent, :mem, :disk, :load, :bytes_counter, :rare_counter, :counter."
  def kind(metric) do
    cond do
      String.starts_with?(metric, "cpu_") -> :cpu
      metric in ["mem_total", "disk_total", "kernel_boot_time"] -> :constant
      metric == "mem_used_percent" -> :percent
      String.starts_with?(metric, "mem_") -> :mem
      String.starts_with?(metric, "disk_") -> :disk
      String.starts_with?(metric, "system_load") -> :load
      String.contains?(metric, "bytes") -> :bytes_counter
      String.contains?(metric, ["err", "drop"]) -> :rare_counter
      true -> :counter
    end
  end

  @doc "Initial random-walk state of one series."
  def init_state(metric, rng) do
    {u, rng} = :rand.uniform_s(rng)

    v =
      case {metric, kind(metric)} do
        {_, :cpu} -> Float.round(u * 100, 1)
        {"mem_total", _} -> 17_179_869_184
        {"disk_total", _} -> 500_000_000_000
        {"kernel_boot_time", _} -> 1_700_000_000
        {_, :percent} -> Float.round(u * 100, 2)
        {_, :mem} -> trunc(u * 8_000_000_000)
        {_, :disk} -> trunc(u * 100_000_000)
        {_, :load} -> Float.round(u * 4, 2)
        _ -> trunc(u * 1_000_000)
      end

    {v, rng}
  end

  @doc "Next value of a series of the given kind."
  def step(kind, v, rng) do
    {u, rng} = :rand.uniform_s(rng)

    v =
      case kind do
        :cpu -> clamp(Float.round(v + (u - 0.5) * 4, 1), 0.0, 100.0)
        :constant -> v
        :percent -> clamp(Float.round(v + (u - 0.5), 2), 0.0, 100.0)
        :mem -> max(0, v + trunc((u - 0.5) * 50_000_000))
        :disk -> v + trunc(u * 4096)
        :load -> clamp(Float.round(v + (u - 0.5) * 0.2, 2), 0.0, 64.0)
        :bytes_counter -> v + trunc(u * 2_000_000)
        :rare_counter -> v + if(u > 0.97, do: 1, else: 0)
        :counter -> v + trunc(u * 2_000)
      end

    {v, rng}
  end

  defp clamp(v, lo, hi), do: v |> max(lo) |> min(hi)

  @doc """
  Points for `hosts` hosts over `steps` intervals starting at `start_ms`, as a list of
  batches; each batch is a list of `{metric, labels, value, ts_ms}` for one time step of
  every series (so a batch has `39 * hosts` points). `hosts` may be a range of host
  numbers, to generate host groups in parallel (give each group its own seed).
  """
  def batches(hosts, start_ms, steps, interval_ms \\ 10_000, seed \\ 42) do
    series = series(hosts)
    kinds = Enum.map(series, fn {m, _} -> kind(m) end)
    rng = :rand.seed_s(:exsss, {seed, 7, 11})
    {states, rng} = Enum.map_reduce(series, rng, fn {m, _}, rng -> init_state(m, rng) end)

    {batches, _} =
      Enum.map_reduce(0..(steps - 1), {states, rng}, fn s, {states, rng} ->
        {jitter, rng} = :rand.uniform_s(5, rng)
        ts = start_ms + s * interval_ms + jitter

        {points, rng} =
          Enum.zip([series, kinds, states])
          |> Enum.map_reduce(rng, fn {{m, labels}, kind, v}, rng ->
            {v2, rng} = step(kind, v, rng)
            {{m, labels, v2, ts}, rng}
          end)

        {points, {Enum.map(points, &elem(&1, 2)), rng}}
      end)

    batches
  end
end
