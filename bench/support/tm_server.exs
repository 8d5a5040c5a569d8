# A TimelessMetrics store + HTTP server in its own OS process, for the side-by-side
# benchmarks (so its CPU and RSS are its own, not the load generator's).
#
#   elixir -pa _build/prod/lib/timeless_metrics/ebin bench/support/tm_server.exs DATA_DIR PORT
#
# Prints "READY <http port> <os pid>" once listening; exits when stdin closes.
#
# With TM_MEMPROBE=<file> set, a sampler (Bench.MemProbe below) follows the process's
# RSS every 50 ms and snapshots where the memory is at each new peak; the line "mem" on
# stdin writes the report (Erlang term, `:erlang.term_to_binary`) to <file> and answers
# "MEM written". Without it the server does nothing extra.
defmodule Bench.MemProbe do
  @moduledoc false

  @interval 50
  # a new snapshot only when RSS passed the last one by this much
  @step 2 * 1_048_576

  def start(store) do
    baseline = snapshot(store)
    spawn_link(fn -> Process.flag(:priority, :high); loop(store, %{peak: baseline, baseline: baseline, timeline: [], t0: now()}) end)
  end

  defp now, do: System.monotonic_time(:millisecond)

  defp loop(store, state) do
    receive do
      {:report, from} ->
        send(from, {:report, Map.put(state, :timeline, Enum.reverse(state.timeline))})
        loop(store, state)
    after
      @interval ->
        rss = rss()

        state =
          if rss > state.peak.rss + @step,
            do: %{state | peak: snapshot(store)},
            else: state

        mem = :erlang.memory()
        q = queue(store)
        row = {now() - state.t0, rss, mem[:total], mem[:processes], mem[:binary], mem[:ets], carriers_total(), q[:queue_bytes] || 0, q[:queue_depth] || 0}
        loop(store, %{state | timeline: [row | state.timeline]})
    end
  end

  def rss do
    {:ok, status} = File.read("/proc/self/status")
    [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, status)
    String.to_integer(kb) * 1024
  end

  defp queue(store) do
    case TimelessMetrics.Ingest.Queue.fetch(store) do
      {:ok, q} -> TimelessMetrics.Ingest.Queue.sizes(q)
      _ -> %{}
    end
  end

  # bytes of carriers (mbcs + sbcs, current) per ERTS allocator type
  def carriers do
    for a <- :erlang.system_info(:alloc_util_allocators), into: %{} do
      instances = :erlang.system_info({:allocator, a}) || []

      size =
        for {:instance, _, props} <- instances, kind <- [:mbcs, :sbcs, :mbcs_pool], is_list(props[kind]), reduce: 0 do
          acc ->
            case List.keyfind(props[kind], :carriers_size, 0) do
              {:carriers_size, cur, _, _} -> acc + cur
              {:carriers_size, cur} -> acc + cur
              _ -> acc
            end
        end

      {a, size}
    end
  end

  defp carriers_total, do: carriers() |> Map.values() |> Enum.sum()

  # Rss of /proc/self/smaps by kind: anonymous (ERTS carriers, malloc arenas, mmaps of
  # the NIF), the brk heap, and file-backed (code, libraries)
  def smaps do
    {:ok, text} = File.read("/proc/self/smaps")

    text
    |> String.split("\n")
    |> Enum.reduce({nil, %{}}, fn line, {kind, acc} ->
      cond do
        Regex.match?(~r/^[0-9a-f]+-[0-9a-f]+ /, line) ->
          name = line |> String.split(~r/\s+/, parts: 6) |> Enum.at(5, "")
          kind = cond do
            name == "[heap]" -> :brk_heap
            name == "" -> :anon
            String.starts_with?(name, "[") -> :other
            true -> :file
          end
          {kind, acc}

        String.starts_with?(line, "Rss:") ->
          [_, kb] = Regex.run(~r/Rss:\s+(\d+) kB/, line)
          {kind, Map.update(acc, kind, String.to_integer(kb) * 1024, &(&1 + String.to_integer(kb) * 1024))}

        true ->
          {kind, acc}
      end
    end)
    |> elem(1)
  end

  # processes by memory: the top ones with their off-heap binary bytes
  defp processes do
    Process.list()
    |> Enum.flat_map(fn pid ->
      case Process.info(pid, [:memory, :binary, :registered_name, :initial_call, :dictionary, :message_queue_len]) do
        nil -> []
        info ->
          bins = info[:binary] |> Enum.uniq_by(&elem(&1, 0))
          [%{pid: pid, memory: info[:memory], bin_bytes: bins |> Enum.map(&elem(&1, 1)) |> Enum.sum(), bins: length(bins),
             name: info[:registered_name], call: info[:dictionary][:"$initial_call"] || info[:initial_call], mq: info[:message_queue_len]}]
      end
    end)
  end

  def snapshot(store) do
    procs = processes()
    conns = Enum.filter(procs, &match?({:mochiweb_acceptor, _, _}, &1.call))

    %{
      rss: rss(),
      at_ms: now(),
      memory: :erlang.memory(),
      carriers: carriers(),
      smaps: smaps(),
      queue: queue(store),
      ets: for(t <- :ets.all(), is_reference(t) or is_atom(t), info = :ets.info(t), info != :undefined, do: {info[:name], info[:memory] * 8, info[:size]}) |> Enum.sort_by(&(-elem(&1, 1))) |> Enum.take(8),
      top: procs |> Enum.sort_by(&(-(&1.memory + &1.bin_bytes))) |> Enum.take(12),
      connections: %{n: length(conns), heap: conns |> Enum.map(& &1.memory) |> Enum.sum(), bin_bytes: conns |> Enum.map(& &1.bin_bytes) |> Enum.sum()},
      info: (case TimelessMetrics.info(store) do {:ok, i} -> i; i when is_map(i) -> i; _ -> nil end)
    }
  end
end

[dir, port] = System.argv()
# TM_STORE_OPTS="max_buffered_points: 2_000_000" (a keyword list's body): store options for
# experiments; the benchmarks run with the defaults.
extra = with s when s not in [nil, ""] <- System.get_env("TM_STORE_OPTS"), do: elem(Code.eval_string("[" <> s <> "]"), 0), else: (_ -> [])
{:ok, _} = TimelessMetrics.start_link([name: :bench, data_dir: dir] ++ extra)
{:ok, _} = TimelessMetrics.HTTP.start_link(store: :bench, port: String.to_integer(port))

probe =
  case System.get_env("TM_MEMPROBE") do
    nil -> nil
    "" -> nil
    file -> {Bench.MemProbe.start(:bench), file}
  end

IO.puts("READY #{TimelessMetrics.HTTP.port(:bench)} #{System.pid()}")

serve = fn serve ->
  case IO.read(:stdio, :line) do
    "mem\n" when probe != nil ->
      {pid, file} = probe
      send(pid, {:report, self()})
      receive do
        {:report, report} -> File.write!(file, :erlang.term_to_binary(Map.put(report, :now, Bench.MemProbe.snapshot(:bench))))
      end

      IO.puts("MEM written")
      serve.(serve)

    _ ->
      :ok
  end
end

serve.(serve)
System.halt(0)
