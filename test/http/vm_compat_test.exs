Code.require_file("../ingest/ingest_helpers.exs", __DIR__)

defmodule TimelessMetrics.HTTP.VmCompatTest do
  @moduledoc """
  Compatibility with the real VictoriaMetrics (Debian's `victoria-metrics`, 1.79): the
  same points are sent through each ingest format to a `victoria-metrics` started here
  and to a TimelessMetrics HTTP server, then `/api/v1/export`, `/api/v1/series`,
  `/api/v1/labels` and `/api/v1/label/<name>/values` must answer the same, except for
  the differences documented in `native/engine/FORMAT-ingest.md`, which are asserted:

  - VictoriaMetrics 1.79 drops NaN points (its export never shows them); we keep them;
  - VictoriaMetrics rounds the values of a block to decimals with one exponent (values of
    very different scales lose precision); we store floats exactly;
  - Influx: a field named `value` is `<measurement>_value` in VM and `<measurement>` here;
    label names are sanitised here (`k8s.pod` -> `k8s_pod`), kept in VM; a string field
    is written as 0 by VM and skipped here.

  Skipped (with the reason) when `victoria-metrics` is not installed
  (`apt-get install victoria-metrics`; `scripts/setup` installs it).
  """
  use ExUnit.Case, async: false

  import TimelessMetrics.HTTPHelpers, only: [start_server!: 2]
  import TimelessMetrics.IngestHelpers, only: [await_drained: 2]

  alias TimelessMetrics.{TestStore, VictoriaServer}
  alias TimelessMetrics.WireFormats, as: W

  @moduletag :vm_compat
  @moduletag :tmp_dir

  if VictoriaServer.executable() == nil do
    @moduletag skip: "victoria-metrics is not installed (apt-get install victoria-metrics, or run scripts/setup)"
  end

  setup_all do
    dir = Path.join(System.tmp_dir!(), "vm-compat-#{System.unique_integer([:positive])}")
    {:ok, vm} = VictoriaServer.start(dir)

    on_exit(fn ->
      VictoriaServer.stop(vm)
      File.rm_rf(dir)
    end)

    # VictoriaMetrics refuses samples far outside its retention and the near future
    t0 = div(System.os_time(:millisecond) - 2 * 3_600_000, 1000) * 1000
    %{vm: vm, t0: t0}
  end

  setup %{tmp_dir: dir} do
    store = TestStore.start!(data_dir: dir)
    server = start_server!(store, [])
    %{store: store, tm: server.url}
  end

  # ------------------------------------------------------------------ the data set

  # {metric, labels, [values]} at t0, t0 + 15 s, t0 + 30 s
  @series [
    {"cmp_temp_celsius", %{"host" => "h1", "dc" => "eu-west", "rack" => "r 1"}, [21.5, 22.25, -3.0]},
    {"cmp_requests_total", %{"host" => "h1", "code" => "200", "path" => "/api/v1"}, [100, 150, 225]},
    {"cmp_mem_bytes", %{"host" => "h2"}, [17_179_869_184, 17_179_869_185, 0.001]},
    {"cmp_escaped", %{"msg" => ~s(say "hi"), "win" => "C:\\temp", "multi" => "l1\nl2"}, [1, 2, 3]},
    {"cmp_limit", %{"host" => "h2"}, [:inf, :neg_inf, 7]},
    {"cmp_ratio", %{"host" => "h2"}, [:nan, 0.5, 0.25]}
  ]

  defp points(fmt, t0) do
    for {m, labels, values} <- @series,
        # a newline cannot be written in an Influx tag value
        labels = if(fmt == "influx", do: Map.delete(labels, "multi"), else: labels),
        {v, i} <- Enum.with_index(values),
        do: {m, Map.put(labels, "fmt", fmt), v, t0 + i * 15_000}
  end

  # ------------------------------------------------------------------ one test per format

  test "VM JSON lines (/api/v1/import)", ctx do
    body = W.vm_json(points("vm_json", ctx.t0))
    assert_same_everywhere(ctx, "vm_json", fn base -> post(base, "/api/v1/import", body) end)
  end

  test "Prometheus text (/api/v1/import/prometheus)", ctx do
    body = W.prometheus_text(points("prom", ctx.t0))
    assert_same_everywhere(ctx, "prom", fn base -> post(base, "/api/v1/import/prometheus", body) end)
  end

  test "Prometheus text with extra_label", ctx do
    body = W.prometheus_text(points("prom_extra", ctx.t0))
    send = fn base -> post(base, "/api/v1/import/prometheus?extra_label=dc=added&extra_label=team=a", body) end
    assert_same_everywhere(ctx, "prom_extra", send, fn labels -> Map.merge(labels, %{"dc" => "added", "team" => "a"}) end)
  end

  test "Influx line protocol (/write?db=...)", ctx do
    body = W.influx(points("influx", ctx.t0))
    assert_same_everywhere(ctx, "influx", fn base -> post(base, "/write?db=cmpdb", body) end, &Map.put(&1, "db", "cmpdb"))
  end

  test "Prometheus remote write (/api/v1/write, snappy + protobuf)", ctx do
    body = W.snappy_literal(W.remote_write(points("rw", ctx.t0)))
    headers = [{"content-encoding", "snappy"}, {"content-type", "application/x-protobuf"}, {"x-prometheus-remote-write-version", "0.1.0"}]
    assert_same_everywhere(ctx, "rw", fn base -> post(base, "/api/v1/write", body, headers) end)
  end

  test "Influx: the documented differences (value field, label sanitising, string fields)", ctx do
    ts_ns = ctx.t0 * 1_000_000
    body = "cmpx,fmt=influx_diff,host=h3,k8s.pod=p1 value=3,msg=\"some text\",num=\"4.5\" #{ts_ns}\n"
    for base <- [ctx.vm.url, ctx.tm], do: assert({:ok, 204, _} = post(base, "/write", body))
    flush(ctx)

    vm = export(ctx.vm.url, "influx_diff")
    ours = export(ctx.tm, "influx_diff")
    base = %{"fmt" => "influx_diff", "host" => "h3"}

    assert vm ==
             MapSet.new([
               {Map.merge(base, %{"__name__" => "cmpx_value", "k8s.pod" => "p1"}), [{ctx.t0, 3.0}]},
               {Map.merge(base, %{"__name__" => "cmpx_num", "k8s.pod" => "p1"}), [{ctx.t0, 4.5}]},
               {Map.merge(base, %{"__name__" => "cmpx_msg", "k8s.pod" => "p1"}), [{ctx.t0, 0.0}]}
             ])

    assert ours ==
             MapSet.new([
               {Map.merge(base, %{"__name__" => "cmpx", "k8s_pod" => "p1"}), [{ctx.t0, 3.0}]},
               {Map.merge(base, %{"__name__" => "cmpx_num", "k8s_pod" => "p1"}), [{ctx.t0, 4.5}]}
             ])
  end

  test "floats of very different scales in one series: exact here, rounded by VictoriaMetrics", ctx do
    values = [1.0e-300, 1.7976931348623157e308, 123_456_789.12345679]
    points = for {v, i} <- Enum.with_index(values), do: {"cmp_wide", %{"fmt" => "wide"}, v, ctx.t0 + i * 15_000}
    for base <- [ctx.vm.url, ctx.tm], do: assert({:ok, 204, _} = post(base, "/api/v1/import/prometheus", W.prometheus_text(points)))
    flush(ctx)

    sent = expected_export(points, & &1)
    assert_same_set(export(ctx.tm, "wide"), sent, "our export vs the points sent")
    # VictoriaMetrics 1.79 stores a block's values as decimals with one exponent: 1e-300
    # and 123456789.12345679 become 0 next to 1.8e308 (measured; by its design, not ours)
    assert [{_labels, [{_, 0.0}, {_, big}, {_, 0.0}]}] = Enum.to_list(export(ctx.vm.url, "wide"))
    assert_in_delta big, 1.7976931348623157e308, 1.0e294
  end

  test "VM's own export lines (bare +Inf/-Inf) are imported back", ctx do
    points = points("reimport", ctx.t0)
    assert {:ok, 204, _} = post(ctx.vm.url, "/api/v1/import", W.vm_json(points))
    flush(ctx)
    {:ok, 200, exported} = get(ctx.vm.url, "/api/v1/export?match[]=" <> URI.encode_www_form(~s({fmt="reimport"})))
    assert exported =~ "+Inf"

    assert {:ok, 204, _} = post(ctx.tm, "/api/v1/import", exported)
    flush(ctx)
    assert export(ctx.tm, "reimport") == export(ctx.vm.url, "reimport")
  end

  # ------------------------------------------------------------------ comparison

  defp assert_same_everywhere(ctx, fmt, send, extra \\ & &1) do
    for base <- [ctx.vm.url, ctx.tm], do: assert({:ok, 204, _} = send.(base), "ingest into #{base} failed")
    flush(ctx)

    expected = expected_export(points(fmt, ctx.t0), extra)
    ours = export(ctx.tm, fmt)
    vm = export(ctx.vm.url, fmt)

    assert_same_set(ours, expected, "our export vs the points sent")
    # documented difference: VictoriaMetrics 1.79 drops NaN points (its export never has them)
    assert_same_set(vm, drop_nan(expected), "VictoriaMetrics's export vs the points sent (NaN excepted)")
    assert Enum.any?(ours, fn {_labels, samples} -> Enum.any?(samples, &(elem(&1, 1) == :nan)) end)

    assert series(ctx.tm, fmt, ctx.t0) == series(ctx.vm.url, fmt, ctx.t0)
    assert series(ctx.tm, fmt, ctx.t0) == expected |> Enum.map(&elem(&1, 0)) |> Enum.sort()

    {:ok, labels} = labels(ctx.vm.url, fmt, ctx.t0)
    assert labels(ctx.tm, fmt, ctx.t0) == {:ok, labels}
    assert "__name__" in labels and "fmt" in labels

    for name <- labels do
      assert label_values(ctx.tm, name, fmt, ctx.t0) == label_values(ctx.vm.url, name, fmt, ctx.t0), "values of label #{name}"
    end
  end

  defp expected_export(points, extra) do
    points
    |> W.group_series()
    |> MapSet.new(fn {{m, labels}, samples} ->
      {labels |> extra.() |> Map.put("__name__", m), Enum.map(samples, fn {ts, v} -> {ts, norm(v)} end)}
    end)
  end

  defp assert_same_set(got, want, what) do
    unless got == want do
      flunk("""
      #{what}: differ
      only in the answer: #{inspect(MapSet.difference(got, want) |> Enum.to_list(), limit: :infinity)}
      missing from it:    #{inspect(MapSet.difference(want, got) |> Enum.to_list(), limit: :infinity)}
      """)
    end
  end

  defp drop_nan(set) do
    MapSet.new(set, fn {labels, samples} -> {labels, Enum.reject(samples, &(elem(&1, 1) == :nan))} end)
  end

  defp flush(ctx) do
    await_drained(ctx.store, 10_000)
    assert {:ok, 200, _} = get(ctx.tm, "/internal/force_flush")
    assert {:ok, 200, _} = get(ctx.vm.url, "/internal/force_flush")
  end

  # export lines as a set of {labels, [{ts, value}]}; values normalised (NaN == NaN)
  defp export(base, fmt) do
    {:ok, 200, body} = get(base, "/api/v1/export?match[]=" <> URI.encode_www_form(~s({fmt="#{fmt}"})))

    body
    |> String.split("\n", trim: true)
    |> MapSet.new(fn line ->
      %{"metric" => metric, "values" => values, "timestamps" => stamps} = lenient_json(line)
      {metric, Enum.zip(stamps, Enum.map(values, &norm/1))}
    end)
  end

  # VictoriaMetrics writes +Inf, -Inf and NaN as bare tokens (not JSON)
  defp lenient_json(line) do
    line
    |> String.replace(~r/(?<=[\[,])(NaN|[+-]Inf)(?=[,\]])/, ~s("\\1"))
    |> :jiffy.decode([:return_maps, :use_nil])
  end

  defp norm(v) when is_number(v), do: v * 1.0
  defp norm(v) when v in [:nan, "NaN"], do: :nan
  defp norm(v) when v in [:inf, "+Inf", "Inf"], do: :inf
  defp norm(v) when v in [:neg_inf, "-Inf"], do: :neg_inf

  defp range(t0), do: "&start=#{div(t0, 1000) - 3600}&end=#{div(System.os_time(:millisecond), 1000)}"
  defp match(fmt), do: "match[]=" <> URI.encode_www_form(~s({fmt="#{fmt}"}))

  defp series(base, fmt, t0) do
    {:ok, 200, body} = get(base, "/api/v1/series?" <> match(fmt) <> range(t0))
    %{"status" => "success", "data" => data} = :jiffy.decode(body, [:return_maps])
    Enum.sort(data)
  end

  defp labels(base, fmt, t0) do
    {:ok, 200, body} = get(base, "/api/v1/labels?" <> match(fmt) <> range(t0))
    %{"status" => "success", "data" => data} = :jiffy.decode(body, [:return_maps])
    {:ok, Enum.sort(data)}
  end

  defp label_values(base, name, fmt, t0) do
    {:ok, 200, body} = get(base, "/api/v1/label/#{name}/values?" <> match(fmt) <> range(t0))
    %{"status" => "success", "data" => data} = :jiffy.decode(body, [:return_maps])
    Enum.sort(data)
  end

  defp get(base, path), do: VictoriaServer.http(base, :get, path)
  defp post(base, path, body, headers \\ []), do: VictoriaServer.http(base, :post, path, body, headers)
end
