defmodule Bench.Stats do
  @moduledoc "Timing helpers and result recording for the benchmarks in bench/."

  @doc "An integer knob from the environment (`BENCH_*`), or `default`."
  def env_int(name, default), do: String.to_integer(System.get_env(name, "#{default}"))

  @doc "Run `fun` `n` times; returns sorted durations in microseconds."
  def sample(n, fun) do
    for _ <- 1..n do
      {us, _} = :timer.tc(fun)
      us
    end
    |> Enum.sort()
  end

  def median(sorted), do: percentile(sorted, 50)

  def percentile(sorted, p) do
    n = length(sorted)
    Enum.at(sorted, min(n - 1, trunc(Float.ceil(p / 100 * n)) - 1) |> max(0))
  end

  @doc "`{median_ms, p99_ms}` of a sample."
  def summary(sorted), do: {median(sorted) / 1000, percentile(sorted, 99) / 1000}

  def fmt(x) when is_float(x) and x >= 100, do: :erlang.float_to_binary(x, decimals: 0)
  def fmt(x) when is_float(x) and x >= 1, do: :erlang.float_to_binary(x, decimals: 2)
  def fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 4)
  def fmt(x) when is_integer(x), do: Integer.to_string(x)
  def fmt(x), do: to_string(x)

  @doc "Human rate: 1234567.0 -> \"1.23M\"."
  def rate(x) when x >= 1.0e6, do: "#{fmt(x / 1.0e6)}M"
  def rate(x) when x >= 1.0e3, do: "#{fmt(x / 1.0e3)}k"
  def rate(x), do: fmt(x * 1.0)

  @doc "Resident set size of an OS process (default: this VM) in bytes: {rss, peak}."
  def rss(os_pid \\ System.pid()) do
    case File.read("/proc/#{os_pid}/status") do
      {:ok, status} ->
        get = fn key ->
          case Regex.run(~r/#{key}:\s+(\d+) kB/, status) do
            [_, kb] -> String.to_integer(kb) * 1024
            _ -> 0
          end
        end

        {get.("VmRSS"), get.("VmHWM")}

      _ ->
        {0, 0}
    end
  end

  @doc "Total size in bytes of the files under `dir`."
  def dir_bytes(dir) do
    Path.wildcard(Path.join(dir, "**"), match_dot: true)
    |> Enum.map(&File.lstat!/1)
    |> Enum.filter(&(&1.type == :regular))
    |> Enum.map(& &1.size)
    |> Enum.sum()
  end

  @doc "CPU seconds (user+sys) used so far by an OS process."
  def cpu_seconds(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        [_, rest] = String.split(stat, ") ", parts: 2)
        fields = String.split(rest, " ")
        (String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))) / 100

      _ ->
        0.0
    end
  end

  @doc "Write a markdown report to bench/results/<name>-<timestamp>.md and print it."
  def record(name, lines) do
    stamp = Calendar.strftime(DateTime.utc_now(), "%Y-%m-%dT%H%M%SZ")
    dir = Path.join(Path.dirname(__DIR__), "results")
    File.mkdir_p!(dir)
    path = Path.join(dir, "#{name}-#{stamp}.md")
    header = ["# #{name} (#{stamp})", "", machine(), ""]
    File.write!(path, Enum.join(header ++ lines, "\n") <> "\n")
    IO.puts(Enum.join(lines, "\n"))
    IO.puts("\nrecorded in #{Path.relative_to_cwd(path)}")
  end

  defp machine do
    {cpus, _} = System.cmd("nproc", [])
    model = case File.read("/proc/cpuinfo") do
      {:ok, info} -> (Regex.run(~r/model name\s*:\s*(.+)/, info) || [nil, "?"]) |> Enum.at(1)
      _ -> "?"
    end

    "Machine: #{String.trim(cpus)} cores (#{model}), OTP #{System.otp_release()}, Elixir #{System.version()}"
  end
end
