defmodule TimelessMetrics.CrashTest do
  @moduledoc """
  A writer in a separate OS process is killed with SIGKILL mid-stream; after a
  restart every point it saw acknowledged must be there.
  """
  use ExUnit.Case, async: true

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.TestStore

  @moduletag :tmp_dir
  @batch 200

  test "every acknowledged point survives kill -9 of the writer's VM", %{tmp_dir: dir} do
    port = start_writer(dir)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    acked = read_acks(port, -1, 30)
    {_, 0} = System.cmd("kill", ["-9", "#{os_pid}"])
    acked = drain(port, acked)
    assert acked >= 30

    s = TestStore.start!(data_dir: dir)
    {:ok, rows} = TM.query_multi(s, "crash", %{}, unit: :millisecond)
    got = rows |> Enum.flat_map(fn r -> Enum.map(r.points, fn {t, _} -> {r.labels["w"], t} end) end) |> MapSet.new()

    for b <- 0..acked, i <- 0..(@batch - 1) do
      key = {"#{rem(i, 10)}", b * @batch + i}
      assert MapSet.member?(got, key), "acknowledged point #{inspect(key)} of batch #{b} is missing"
    end
  end

  defp start_writer(dir) do
    ebin = :code.lib_dir(:timeless_metrics, :ebin) |> to_string()

    script = """
    {:ok, _} = TimelessMetrics.start_link(name: :crash, data_dir: #{inspect(dir)}, flush_interval: 50, maintenance_interval: 20)
    Stream.iterate(0, &(&1 + 1))
    |> Enum.each(fn b ->
      entries = for i <- 0..#{@batch - 1}, do: {"crash", %{"w" => Integer.to_string(rem(i, 10))}, i, b * #{@batch} + i}
      :ok = TimelessMetrics.write_batch(:crash, entries, unit: :millisecond)
      IO.puts("ack \#{b}")
    end)
    """

    Port.open({:spawn_executable, System.find_executable("elixir")}, [
      :binary,
      :exit_status,
      {:line, 1024},
      args: ["-pa", ebin, "-e", script]
    ])
  end

  defp read_acks(port, last, want) do
    receive do
      {^port, {:data, {:eol, "ack " <> n}}} ->
        n = String.to_integer(n)
        if n >= want, do: n, else: read_acks(port, n, want)

      {^port, {:data, _other}} ->
        read_acks(port, last, want)

      {^port, {:exit_status, status}} ->
        flunk("writer exited with #{status} after ack #{last}")
    after
      60_000 -> flunk("writer gave no ack within 60 s (last #{last})")
    end
  end

  defp drain(port, last) do
    receive do
      {^port, {:data, {:eol, "ack " <> n}}} -> drain(port, max(last, String.to_integer(n)))
      {^port, {:data, _}} -> drain(port, last)
      {^port, {:exit_status, _}} -> last
    after
      10_000 -> last
    end
  end
end
