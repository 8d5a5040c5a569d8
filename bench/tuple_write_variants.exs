# Pre-resolved tuple writes (`write_resolved(store, [{id, value, ts}])`): variants of the
# NIF side by side on the same batches, with the harness of embedded_throughput.exs
# (each batch built right before its call; only the call is timed). Every variant gets
# its own freshly built copy of each batch, and the order of variants rotates per batch.
#
#   MIX_ENV=prod mix run bench/tuple_write_variants.exs
#
#   BENCH_HOSTS [200], BENCH_STEPS [360]: data set as in embedded_throughput (7800-point batches)
#   BENCH_VARIANTS: |-separated substrings of the variant names below (a subset)
for f <- ~w(devops stats), do: Code.require_file("support/#{f}.ex", __DIR__)
alias Bench.{Devops, Stats}
alias TimelessMetrics, as: TM
alias TimelessMetrics.Native

hosts = Stats.env_int("BENCH_HOSTS", 200)
steps = Stats.env_int("BENCH_STEPS", 360)
tmp = Path.join(System.tmp_dir!(), "tm-tuples-#{System.unique_integer([:positive])}")
File.mkdir_p!(tmp)

start_ms = (System.os_time(:second) - steps * 10 - 3600) * 1000
batches = Devops.batches(hosts, start_ms, steps)
n_series = hosts * 39
total = n_series * steps
per_batch = max(1, div(10_000, n_series))
client_batches = batches |> Enum.chunk_every(per_batch) |> Enum.map(&Enum.concat/1)

store = fn name ->
  {:ok, _} = TM.start_link(name: name, data_dir: Path.join(tmp, "#{name}"))
  {:ok, h} = TimelessMetrics.Engine.handle(name)
  ids = Map.new(Devops.series(hosts), fn {m, l} -> {{m, l}, elem(TM.resolve_series(name, m, l), 1)} end)
  {h.ref, ids}
end

# Every store resolves the same series in the same order, so ids agree.
{_, ids} = store.(:ids_only)
resolved = Enum.map(client_batches, fn b -> Enum.map(b, fn {m, l, v, t} -> {Map.fetch!(ids, {m, l}), v, t} end) end)
fresh = fn b -> Enum.map(b, fn {id, v, t} -> {id, v * 1.0, t} end) end
columns = fn b ->
  {for({id, _, _} <- b, into: <<>>, do: <<id::little-64>>), for({_, _, t} <- b, into: <<>>, do: <<t::little-signed-64>>),
   for({_, v, _} <- b, into: <<>>, do: <<v * 1.0::float-little-64>>)}
end

all = [
  {"before: rustler-term decode + engine write, all on a dirty CPU scheduler (the old write_resolved)", :write, &Native.exp_write_raw_dirty(&1, &2, 1, 0)},
  {"enif calls decode + engine write, all on dirty", :write, &Native.exp_write_raw_dirty(&1, &2, 1, 1)},
  {"direct reads + engine write, all on dirty", :write, &Native.exp_write_raw_dirty(&1, &2, 1, 3)},
  {"direct reads on normal, engine write on dirty (schedule_nif)", :write, &Native.exp_write_split(&1, &2, 1, 3)},
  {"after: write_resolved (direct reads, normal scheduler, slices + yield)", :write, &Native.write_resolved(&1, &2, 1)},
  {"write_resolved with write slices of 4096", :write, fn r, e -> Native.exp_set_write_slice(4096); x = Native.write_resolved(r, e, 1); Native.exp_set_write_slice(2048); x end},
  {"write_resolved with write slices of 8192", :write, fn r, e -> Native.exp_set_write_slice(8192); x = Native.write_resolved(r, e, 1); Native.exp_set_write_slice(2048); x end},
  {"direct reads + one engine write on normal, no slicing (measurement only)", :write, &Native.exp_write_raw_normal(&1, &2, 1, 3)},
  {"columnar binaries built before the clock (reference)", :columns, nil}
]

pick = System.get_env("BENCH_VARIANTS")
variants = if pick in [nil, ""], do: all, else: Enum.filter(all, fn {n, _, _} -> Enum.any?(String.split(pick, "|"), &String.contains?(n, &1)) end)

variants =
  variants
  |> Enum.with_index()
  |> Enum.map(fn {{name, kind, fun}, i} ->
    ref = if kind in [:write, :columns], do: elem(store.(:"v#{i}"), 0), else: nil
    fun = if kind == :columns, do: &Native.write_columns(&1, elem(&2, 0), elem(&2, 1), elem(&2, 2), 1), else: fun
    {name, kind, ref, fun}
  end)

k = length(variants)
:erlang.garbage_collect()
IO.puts("#{total} points, #{length(resolved)} batches of #{per_batch * n_series}, #{k} variants; load: #{:os.cmd(~c"uptime") |> to_string() |> String.trim()}")

times =
  resolved
  |> Enum.with_index()
  |> Enum.reduce(List.duplicate(0, k), fn {b, bi}, acc ->
    order = Enum.map(0..(k - 1), &rem(&1 + bi, k))

    us =
      Map.new(order, fn vi ->
        {_, kind, ref, fun} = Enum.at(variants, vi)
        f = if kind == :columns, do: columns.(b), else: fresh.(b)
        {t, r} = :timer.tc(fn -> fun.(ref, f) end)
        true = r == :ok or is_integer(r)
        {vi, t}
      end)

    Enum.map(Enum.with_index(acc), fn {a, vi} -> a + us[vi] end)
  end)

lines =
  ["Data set: #{hosts} hosts x 39 series x #{steps} steps = #{total} points, batches of #{per_batch * n_series} built right before each call.",
   "Load at the end: #{:os.cmd(~c"uptime") |> to_string() |> String.trim()}", "",
   "| variant | points/s | ns/point |", "|---|---:|---:|"] ++
    Enum.map(Enum.zip(variants, times), fn {{name, _, _, _}, us} ->
      "| #{name} | #{Stats.rate(total / (us / 1.0e6))} | #{Stats.fmt(us * 1000 / total)} |"
    end)

Stats.record("tuple_write_variants", lines)
File.rm_rf!(tmp)
