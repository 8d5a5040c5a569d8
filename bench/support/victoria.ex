Code.require_file("../../test/support/victoria_server.ex", __DIR__)

defmodule Bench.Victoria do
  @moduledoc """
  VictoriaMetrics for side-by-side benchmarks: started through
  `TimelessMetrics.VictoriaServer` (test/support, shared with the compatibility test)
  on 127.0.0.1 with a temporary data dir, plus what benchmarks need on top: flush and
  merge until the data dir settles, its size, and JSON-lines bodies.
  """

  alias TimelessMetrics.VictoriaServer

  @doc "Start VictoriaMetrics on a free loopback port with a temporary data dir."
  def start do
    dir = Path.join(System.tmp_dir!(), "vm-bench-#{System.unique_integer([:positive])}")

    case VictoriaServer.start(dir) do
      {:ok, vm} -> {:ok, vm}
      {:error, :not_installed} -> {:error, "victoria-metrics is not installed (apt-get install victoria-metrics)"}
      {:error, message} -> {:error, message}
    end
  end

  def stop(vm) do
    VictoriaServer.stop(vm)
    File.rm_rf(vm.dir)
    :ok
  end

  def get(vm, path), do: VictoriaServer.request(vm, :get, path)

  def post(vm, path, body, headers \\ []), do: VictoriaServer.request(vm, :post, path, body, headers)

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
