defmodule TimelessMetrics.CrashTest do
  @moduledoc """
  A writer in a separate OS process is killed with SIGKILL mid-stream; after a
  restart every point it saw acknowledged must be there.
  """
  use ExUnit.Case, async: true

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.{TestStore, WriterProcess}

  @moduletag :tmp_dir
  @batch 200

  test "every acknowledged point survives kill -9 of the writer's VM", %{tmp_dir: dir} do
    port = start_writer(dir)
    acked = WriterProcess.acks(port, 30)
    :ok = WriterProcess.kill(port)
    acked = WriterProcess.drain(port, acked)

    s = TestStore.start!(data_dir: dir)
    {:ok, rows} = TM.query_multi(s, "crash", %{}, unit: :millisecond)

    got =
      rows
      |> Enum.flat_map(fn r -> Enum.map(r.points, fn {t, _} -> {r.labels["w"], t} end) end)
      |> MapSet.new()

    for b <- acked, i <- 0..(@batch - 1) do
      key = {"#{rem(i, 10)}", b * @batch + i}

      assert MapSet.member?(got, key),
             "acknowledged point #{inspect(key)} of batch #{b} is missing"
    end
  end

  defp start_writer(dir) do
    script = """
    {:ok, _} = TimelessMetrics.start_link(name: :crash, data_dir: #{inspect(dir)}, flush_interval: 50, maintenance_interval: 20)
    Stream.iterate(0, &(&1 + 1))
    |> Enum.each(fn b ->
      entries = for i <- 0..#{@batch - 1}, do: {"crash", %{"w" => Integer.to_string(rem(i, 10))}, i, b * #{@batch} + i}
      :ok = TimelessMetrics.write_batch(:crash, entries, unit: :millisecond)
      IO.puts("ack \#{b}")
    end)
    """

    WriterProcess.start(script)
  end
end
