defmodule Bench.Servers do
  @moduledoc """
  The two servers of the side-by-side benchmarks, each in its own OS process on
  127.0.0.1 with a fresh data dir, behind one interface:

      vm = Bench.Servers.start(:vm)
      tm = Bench.Servers.start(:tm)     # bench/support/tm_server.exs under `elixir -pa`
      Bench.Servers.cpu_seconds(tm)     # user+sys of the server process
      Bench.Servers.stop(vm)

  A server is `%{kind: :vm | :tm, name, http_port, os_pid, dir, ...}`.
  """

  alias Bench.{Stats, Victoria}

  @doc "Start VictoriaMetrics (`:vm`) or TimelessMetrics (`:tm`)."
  def start(kind, opts \\ [])

  def start(:vm, _opts) do
    {:ok, vm} = Victoria.start()
    %{kind: :vm, name: "VictoriaMetrics 1.79", http_port: vm.http_port, os_pid: vm.os_pid, dir: vm.dir, handle: vm}
  end

  # opts: `env: [{name, value}]` for the server's OS process (e.g. TM_MEMPROBE, see
  # tm_server.exs), `erl: "flags"` passed to the VM with `elixir --erl`, `wrap: exe`.
  def start(:tm, opts) do
    dir = Path.join(System.tmp_dir!(), "tm-bench-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    ebin = :code.lib_dir(:timeless_metrics, :ebin) |> to_string()
    script = Path.join(__DIR__, "tm_server.exs")
    env = [{~c"LANG", ~c"C.UTF-8"} | Enum.map(Keyword.get(opts, :env, []), fn {k, v} -> {to_charlist(k), to_charlist(v)} end)]
    erl = if flags = opts[:erl], do: ["--erl", flags], else: []
    args = erl ++ ["-pa", ebin, script, dir, "0"]

    # `wrap: "heaptrack"` runs the server under a profiler (its executable, then elixir's)
    {exe, args} =
      case opts[:wrap] do
        nil -> {System.find_executable("elixir"), args}
        wrap -> {System.find_executable(wrap), [System.find_executable("elixir") | args]}
      end

    port =
      Port.open({:spawn_executable, exe}, [
        :binary,
        :exit_status,
        {:line, 4096},
        {:env, env},
        args: args
      ])

    {http_port, os_pid} = await_ready(port)
    %{kind: :tm, name: "TimelessMetrics", http_port: http_port, os_pid: os_pid, dir: dir, handle: port}
  end

  defp await_ready(port) do
    receive do
      {^port, {:data, {:eol, "READY " <> rest}}} ->
        [p, pid] = String.split(rest)
        {String.to_integer(p), String.to_integer(pid)}

      {^port, {:data, {_, line}}} ->
        IO.puts("[tm] #{line}")
        await_ready(port)

      {^port, {:exit_status, status}} ->
        raise "TimelessMetrics server exited with #{status}"
    after
      60_000 -> raise "TimelessMetrics server did not start"
    end
  end

  @doc "The memory report of a server started with `env: [{\"TM_MEMPROBE\", file}]` (see tm_server.exs)."
  def mem_report(%{kind: :tm, handle: port}, file) do
    Port.command(port, "mem\n")
    await_line(port, "MEM written")
    file |> File.read!() |> :erlang.binary_to_term()
  end

  defp await_line(port, line) do
    receive do
      {^port, {:data, {:eol, ^line}}} -> :ok
      {^port, {:data, {_, other}}} -> IO.puts("[tm] #{other}") && await_line(port, line)
      {^port, {:exit_status, status}} -> raise "TimelessMetrics server exited with #{status}"
    after
      60_000 -> raise "no memory report from the server"
    end
  end

  @doc "Stop a server and delete its data dir."
  def stop(%{kind: :vm, handle: vm}), do: Victoria.stop(vm)

  def stop(%{kind: :tm, handle: port, dir: dir, os_pid: os_pid}) do
    Port.close(port)
    wait_exit(os_pid, 100)
    File.rm_rf(dir)
    :ok
  end

  defp wait_exit(_pid, 0), do: :ok

  defp wait_exit(pid, n) do
    if File.exists?("/proc/#{pid}"), do: Process.sleep(100) && wait_exit(pid, n - 1), else: :ok
  end

  def url(%{http_port: p}), do: "http://127.0.0.1:#{p}"

  def cpu_seconds(%{os_pid: pid}), do: Stats.cpu_seconds(pid)
  def peak_rss(%{os_pid: pid}), do: elem(Stats.rss(pid), 1)
  def rss(%{os_pid: pid}), do: elem(Stats.rss(pid), 0)

  @doc "A TCP port free right now."
  def free_port do
    {:ok, s} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, p} = :inet.port(s)
    :gen_tcp.close(s)
    p
  end

  @doc "GET with :httpc: `{status, body}`."
  def get(server, path) do
    url = String.to_charlist(url(server) <> (path |> String.replace("[", "%5B") |> String.replace("]", "%5D")))
    {:ok, {{_, status, _}, _, body}} = :httpc.request(:get, {url, []}, [timeout: 600_000], body_format: :binary)
    {status, body}
  end

  @doc "Points the server has stored (accepted into storage), and bodies still queued (0 for VM)."
  def ingested(%{kind: :tm} = s) do
    {200, body} = get(s, "/health/detailed")
    %{"ingest" => ingest} = :jiffy.decode(body, [:return_maps])
    {ingest["points"] |> Map.values() |> Enum.sum(), ingest["queue_depth"]}
  end

  def ingested(%{kind: :vm} = s) do
    {200, body} = get(s, "/metrics")
    [_, n] = Regex.run(~r/^vm_rows_added_to_storage_total (\d+)/m, body)
    {String.to_integer(n), 0}
  end

  @doc """
  Wait until `expected` points are stored and the queue is empty (then, for
  VictoriaMetrics, force a flush). Returns :ok or raises after `timeout_ms`.
  """
  def await_queryable(server, expected, timeout_ms \\ 600_000) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    poll(server, expected, deadline)
    # VictoriaMetrics makes recent rows searchable on flush; ours are queryable once ingested
    if server.kind == :vm, do: {200, _} = get(server, "/internal/force_flush")
    :ok
  end

  defp poll(server, expected, deadline) do
    {points, depth} = ingested(server)

    cond do
      points >= expected and depth == 0 -> :ok
      System.monotonic_time(:millisecond) > deadline -> raise "#{server.name}: #{points}/#{expected} points stored, queue #{depth}"
      true -> Process.sleep(20) && poll(server, expected, deadline)
    end
  end

  @doc "Flush, merge, wait for the data dir to settle; `%{samples: bytes, total: bytes}`."
  def flush_merge_bytes(%{kind: :vm, handle: vm}) do
    %{data: d, total: t} = Victoria.flush_and_merge(vm)
    %{samples: d, total: t}
  end

  def flush_merge_bytes(%{kind: :tm} = s) do
    {200, _} = get(s, "/internal/force_flush")
    {200, _} = get(s, "/internal/force_merge")
    settle(s, -1, 0)
    {200, body} = get(s, "/health/detailed")
    %{"store" => %{"info" => info}} = :jiffy.decode(body, [:return_maps])
    %{samples: info["chunk_bytes"], total: Stats.dir_bytes(s.dir), info: info}
  end

  defp settle(_s, _last, stable) when stable >= 3, do: :ok

  defp settle(s, last, stable) do
    Process.sleep(500)
    size = Stats.dir_bytes(s.dir)
    if size == last, do: settle(s, size, stable + 1), else: settle(s, size, 0)
  end
end
