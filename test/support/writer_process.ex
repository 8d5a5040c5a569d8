defmodule TimelessMetrics.WriterProcess do
  @moduledoc """
  A writer in a separate OS process: an `elixir` VM running a script against this
  project's compiled code, for tests that kill it with SIGKILL. The script prints
  `ack N` after each write it saw acknowledged.

      port = TimelessMetrics.WriterProcess.start(~s|Enum.each(0..9, &IO.puts("ack \#{&1}"))|)
      acked = TimelessMetrics.WriterProcess.acks(port, 5)
      :ok = TimelessMetrics.WriterProcess.kill(port)
      acked = TimelessMetrics.WriterProcess.drain(port, acked)
  """
  import ExUnit.Assertions, only: [flunk: 1]

  @doc "Start `elixir -pa <our ebin> -e script` with its stdout as lines on a port."
  @spec start(String.t()) :: port()
  def start(script) do
    ebin = :code.lib_dir(:timeless_metrics, :ebin) |> to_string()

    Port.open({:spawn_executable, System.find_executable("elixir")}, [
      :binary,
      :exit_status,
      {:line, 1024},
      args: ["-pa", ebin, "-e", script]
    ])
  end

  @doc "SIGKILL the writer's VM."
  @spec kill(port()) :: :ok
  def kill(port) do
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    {_, 0} = System.cmd("kill", ["-9", "#{os_pid}"])
    :ok
  end

  @doc "Wait until at least `want` acknowledgements were printed; returns their numbers."
  @spec acks(port(), pos_integer(), MapSet.t()) :: MapSet.t()
  def acks(port, want, acked \\ MapSet.new()) do
    receive do
      {^port, {:data, {:eol, "ack " <> n}}} ->
        acked = MapSet.put(acked, String.to_integer(n))
        if MapSet.size(acked) >= want, do: acked, else: acks(port, want, acked)

      {^port, {:data, _other}} ->
        acks(port, want, acked)

      {^port, {:exit_status, status}} ->
        flunk("writer exited with #{status} after #{MapSet.size(acked)} acks")
    after
      60_000 -> flunk("writer gave only #{MapSet.size(acked)} acks within 60 s")
    end
  end

  @doc "Collect the acknowledgements printed until the writer's exit."
  @spec drain(port(), MapSet.t()) :: MapSet.t()
  def drain(port, acked) do
    receive do
      {^port, {:data, {:eol, "ack " <> n}}} ->
        drain(port, MapSet.put(acked, String.to_integer(n)))

      {^port, {:data, _}} ->
        drain(port, acked)

      {^port, {:exit_status, _}} ->
        acked
    after
      10_000 -> acked
    end
  end
end
