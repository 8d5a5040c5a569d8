defmodule Bench.Victoria do
  @moduledoc """
  Starts Debian's `victoria-metrics` on 127.0.0.1 with a temporary data dir for a
  side-by-side run, and talks to it over HTTP with OTP's :httpc.
  """

  defstruct [:port, :os_pid, :dir, :url, :os_port]

  @doc "Start VictoriaMetrics on `http_port`; returns the handle or {:error, reason}."
  def start(http_port \\ 18428) do
    exe = System.find_executable("victoria-metrics")

    if exe == nil do
      {:error, "victoria-metrics is not installed (apt-get install victoria-metrics)"}
    else
      dir = Path.join(System.tmp_dir!(), "vm-bench-#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)

      port =
        Port.open({:spawn_executable, exe}, [
          :binary,
          :exit_status,
          :stderr_to_stdout,
          args: [
            "-storageDataPath=#{dir}",
            "-httpListenAddr=127.0.0.1:#{http_port}",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
            "-search.disableCache"
          ]
        ])

      {:os_pid, os_pid} = Port.info(port, :os_pid)
      vm = %__MODULE__{port: port, os_port: port, os_pid: os_pid, dir: dir, url: "http://127.0.0.1:#{http_port}"}
      :ok = wait_healthy(vm, 100)
      {:ok, vm}
    end
  end

  defp wait_healthy(vm, 0), do: raise("victoria-metrics did not become healthy: #{vm.url}")

  defp wait_healthy(vm, n) do
    case get(vm, "/health") do
      {:ok, 200, _} -> :ok
      _ -> Process.sleep(100) && wait_healthy(vm, n - 1)
    end
  end

  def stop(%__MODULE__{} = vm) do
    System.cmd("kill", ["#{vm.os_pid}"])
    Process.sleep(500)
    File.rm_rf(vm.dir)
    :ok
  end

  def get(vm, path) do
    case :httpc.request(:get, {~c"#{vm.url}#{path}", []}, [timeout: 600_000], body_format: :binary) do
      {:ok, {{_, status, _}, _h, body}} -> {:ok, status, body}
      other -> other
    end
  end

  def post(vm, path, body, content_type \\ "application/octet-stream", headers \\ []) do
    req = {~c"#{vm.url}#{path}", headers, ~c"#{content_type}", body}

    case :httpc.request(:post, req, [timeout: 600_000], body_format: :binary) do
      {:ok, {{_, status, _}, _h, resp}} -> {:ok, status, resp}
      other -> other
    end
  end

  @doc "Flush, force-merge every partition and wait for the data dir size to settle."
  def flush_and_merge(vm) do
    {:ok, 200, _} = get(vm, "/internal/force_flush")
    {:ok, 200, _} = get(vm, "/internal/force_merge")
    settle(vm, -1, 0)
  end

  defp settle(vm, _last, stable) when stable >= 5, do: data_bytes(vm)

  defp settle(vm, last, stable) do
    Process.sleep(1000)
    size = data_bytes(vm).total
    if size == last, do: settle(vm, size, stable + 1), else: settle(vm, size, 0)
  end

  @doc "Bytes of the samples (data/) and of the index (indexdb/)."
  def data_bytes(vm) do
    data = Bench.Stats.dir_bytes(Path.join(vm.dir, "data"))
    index = Bench.Stats.dir_bytes(Path.join(vm.dir, "indexdb"))
    %{data: data, index: index, total: data + index}
  end

  @doc "VictoriaMetrics JSON lines for series with their points: [{metric, labels, [{ts_ms, v}]}]."
  def json_lines(series) do
    Enum.map(series, fn {metric, labels, points} ->
      m = Map.put(labels, "__name__", metric)
      {ts, vs} = Enum.unzip(points)
      [:jiffy.encode(%{"metric" => m, "values" => vs, "timestamps" => ts}), ?\n]
    end)
  end
end
