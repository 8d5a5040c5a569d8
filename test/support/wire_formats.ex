defmodule TimelessMetrics.WireFormats do
  @moduledoc """
  Encoders of the four ingest formats, for tests and benchmarks that must send the
  same points to TimelessMetrics and to VictoriaMetrics.

  A point is `{metric, labels, value, ts_ms}`: `labels` a map of strings, `value` a
  number or one of `:nan`, `:inf`, `:neg_inf`. Every encoder returns iodata.

      iex> alias TimelessMetrics.WireFormats, as: W
      iex> points = [{"up", %{"job" => "a"}, 1, 1000}, {"up", %{"job" => "a"}, :nan, 2000}]
      iex> IO.iodata_to_binary(W.prometheus_text(points))
      "up{job=\\"a\\"} 1 1000\\nup{job=\\"a\\"} NaN 2000\\n"
      iex> IO.iodata_to_binary(W.vm_json(points))
      ~s({"metric":{"job":"a","__name__":"up"},"values":[1,NaN],"timestamps":[1000,2000]}\\n)
      iex> IO.iodata_to_binary(W.influx([{"cpu_usage_user", %{"host" => "h 1"}, 1.5, 1000}]))
      "cpu,host=h\\\\ 1 usage_user=1.5 1000000000\\n"
      iex> W.snappy_literal("abc")
      <<3, 8, "abc">>

  Formats:

  - `prometheus_text/1`: one line per point, labels sorted, escapes `\\\\ \\" \\n`;
  - `vm_json/1`: one line per series (in order of first appearance), values written as
    VictoriaMetrics's export writes them (numbers, bare `NaN`, `+Inf`, `-Inf`);
  - `influx/1`: measurement is the metric name up to its first `_`, the field the rest;
    the fields of one `{measurement, labels, ts}` share a line; nanosecond timestamps;
  - `remote_write/1`: the protobuf `WriteRequest` (one `TimeSeries` per series,
    labels sorted by name), to wrap with `snappy_literal/1`.
  """

  import Bitwise

  @type value :: number() | :nan | :inf | :neg_inf
  @type point :: {String.t(), %{String.t() => String.t()}, value(), integer()}

  # ------------------------------------------------------------------ Prometheus text

  @doc "Prometheus text exposition lines, with timestamps in ms."
  @spec prometheus_text([point()]) :: iodata()
  def prometheus_text(points) do
    {lines, _cache} =
      Enum.map_reduce(points, %{}, fn {m, labels, v, ts}, cache ->
        {prefix, cache} = cached(cache, {m, labels}, fn -> prom_series(m, labels) end)
        {[prefix, ?\s, text_value(v), ?\s, Integer.to_string(ts), ?\n], cache}
      end)

    lines
  end

  @doc "`name{a=\"1\",b=\"2\"}` with labels sorted and values escaped."
  @spec prom_series(String.t(), map()) :: binary()
  def prom_series(metric, labels) when map_size(labels) == 0, do: metric

  def prom_series(metric, labels) do
    pairs = labels |> Enum.sort() |> Enum.map_join(",", fn {k, v} -> [k, "=\"", prom_escape(v), ?"] end)
    IO.iodata_to_binary([metric, ?{, pairs, ?}])
  end

  defp prom_escape(v), do: v |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")

  @doc "A value as the text formats write it."
  @spec text_value(value()) :: binary()
  def text_value(:nan), do: "NaN"
  def text_value(:inf), do: "+Inf"
  def text_value(:neg_inf), do: "-Inf"
  def text_value(v) when is_integer(v), do: Integer.to_string(v)
  def text_value(v) when is_float(v), do: :erlang.float_to_binary(v, [:short])

  # ------------------------------------------------------------------ VM JSON lines

  @doc "VictoriaMetrics JSON lines, one per series."
  @spec vm_json([point()]) :: iodata()
  def vm_json(points) do
    points
    |> group_series()
    |> Enum.map(fn {{m, labels}, samples} ->
      metric = :jiffy.encode(Map.put(labels, "__name__", m))
      values = Enum.map_intersperse(samples, ?,, fn {_ts, v} -> text_value(v) end)
      stamps = Enum.map_intersperse(samples, ?,, fn {ts, _v} -> Integer.to_string(ts) end)
      [~s({"metric":), metric, ~s(,"values":[), values, ~s(],"timestamps":[), stamps, "]}\n"]
    end)
  end

  # ------------------------------------------------------------------ Influx

  @doc "A field `key=value` of an Influx line."
  @spec influx_field(String.t(), value()) :: iodata()
  def influx_field(field, v), do: [influx_escape(field), ?=, text_value(v)]

  @doc "Influx line protocol (nanosecond timestamps), fields of one measurement/tags/time on one line."
  @spec influx([point()]) :: iodata()
  def influx(points) do
    {rows, order} =
      Enum.reduce(points, {%{}, []}, fn {m, labels, v, ts}, {rows, order} ->
        {meas, field} = split_measurement(m)
        key = {meas, labels, ts}

        case rows do
          %{^key => fields} -> {%{rows | key => [{field, v} | fields]}, order}
          _ -> {Map.put(rows, key, [{field, v}]), [key | order]}
        end
      end)

    order
    |> Enum.reverse()
    |> Enum.map(fn {meas, labels, ts} = key ->
      fields = rows |> Map.fetch!(key) |> Enum.reverse() |> Enum.map_intersperse(?,, fn {f, v} -> influx_field(f, v) end)
      [influx_prefix(meas, labels), ?\s, fields, ?\s, Integer.to_string(ts * 1_000_000), ?\n]
    end)
  end

  @doc "`cpu_usage_user` -> `{\"cpu\", \"usage_user\"}` (the whole name and `value` when it has no `_`)."
  @spec split_measurement(String.t()) :: {String.t(), String.t()}
  def split_measurement(metric) do
    case String.split(metric, "_", parts: 2) do
      [meas, field] when meas != "" and field != "" -> {meas, field}
      _ -> {metric, "value"}
    end
  end

  @doc "`measurement,tag=value,...` (tags sorted, escaped)."
  @spec influx_prefix(String.t(), map()) :: iodata()
  def influx_prefix(meas, labels) do
    tags = labels |> Enum.sort() |> Enum.map(fn {k, v} -> [?,, influx_escape(k), ?=, influx_escape(v)] end)
    [String.replace(meas, [",", " "], &("\\" <> &1)), tags]
  end

  defp influx_escape(s), do: String.replace(s, [",", " ", "="], &("\\" <> &1))

  # ------------------------------------------------------------------ remote write

  @doc "A remote write 1.0 `WriteRequest` (protobuf, not compressed)."
  @spec remote_write([point()]) :: iodata()
  def remote_write(points) do
    points
    |> group_series()
    |> Enum.map(fn {{m, labels}, samples} -> rw_time_series(rw_labels(m, labels), Enum.map(samples, fn {ts, v} -> rw_sample(ts, v) end)) end)
  end

  @doc "The `Label` fields of a `TimeSeries` (sorted by name, `__name__` included)."
  @spec rw_labels(String.t(), map()) :: binary()
  def rw_labels(metric, labels) do
    [{"__name__", metric} | Map.to_list(labels)]
    |> Enum.sort()
    |> Enum.map(fn {k, v} -> field(1, [field(1, k), field(2, v)]) end)
    |> IO.iodata_to_binary()
  end

  @doc "One `Sample` field of a `TimeSeries`."
  @spec rw_sample(integer(), value()) :: iodata()
  def rw_sample(ts, v), do: field(2, [<<0x09>>, double(v), <<0x10>>, varint(ts)])

  @doc "A `TimeSeries` field of a `WriteRequest`, from `rw_labels/2` and `rw_sample/2` output."
  @spec rw_time_series(iodata(), iodata()) :: iodata()
  def rw_time_series(labels, samples), do: field(1, [labels, samples])

  # a length-delimited field (wire type 2)
  defp field(n, iodata), do: [varint(n <<< 3 ||| 2), varint(IO.iodata_length(iodata)), iodata]

  defp double(:nan), do: <<0x7FF8000000000001::little-64>>
  defp double(:inf), do: <<0x7FF0000000000000::little-64>>
  defp double(:neg_inf), do: <<0xFFF0000000000000::little-64>>
  defp double(v), do: <<v * 1.0::float-little-64>>

  @doc "Protobuf base-128 varint (negative integers as 64-bit two's complement)."
  @spec varint(integer()) :: binary()
  def varint(n) when n < 0, do: varint(n + (1 <<< 64))
  def varint(n) when n < 0x80, do: <<n>>
  def varint(n), do: <<1::1, n &&& 0x7F::7, varint(n >>> 7)::binary>>

  @doc """
  Snappy block format with literals only (no back-references): the uncompressed length
  as a varint, then literal chunks of at most 65536 bytes. Valid snappy that any
  decoder reads; it just does not compress.
  """
  @spec snappy_literal(iodata()) :: binary()
  def snappy_literal(data) do
    data = IO.iodata_to_binary(data)
    IO.iodata_to_binary([varint(byte_size(data)), literals(data)])
  end

  defp literals(<<>>), do: []

  defp literals(data) do
    n = min(byte_size(data), 65_536)
    <<chunk::binary-size(n), rest::binary>> = data
    [literal_tag(n - 1), chunk | literals(rest)]
  end

  defp literal_tag(len1) when len1 < 60, do: <<len1 <<< 2>>
  defp literal_tag(len1) when len1 < 256, do: <<60 <<< 2, len1>>
  defp literal_tag(len1), do: <<61 <<< 2, len1::little-16>>

  # ------------------------------------------------------------------ helpers

  @doc "Points grouped by series, in order of first appearance: `[{{metric, labels}, [{ts, v}]}]`."
  @spec group_series([point()]) :: [{{String.t(), map()}, [{integer(), value()}]}]
  def group_series(points) do
    {groups, order} =
      Enum.reduce(points, {%{}, []}, fn {m, labels, v, ts}, {groups, order} ->
        key = {m, labels}

        case groups do
          %{^key => samples} -> {%{groups | key => [{ts, v} | samples]}, order}
          _ -> {Map.put(groups, key, [{ts, v}]), [key | order]}
        end
      end)

    order |> Enum.reverse() |> Enum.map(fn key -> {key, Enum.reverse(Map.fetch!(groups, key))} end)
  end

  defp cached(cache, key, fun) do
    case cache do
      %{^key => v} -> {v, cache}
      _ -> v = fun.(); {v, Map.put(cache, key, v)}
    end
  end
end
