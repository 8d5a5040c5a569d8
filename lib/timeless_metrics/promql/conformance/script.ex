defmodule TimelessMetrics.PromQL.Conformance.Script do
  @moduledoc """
  Parser of Prometheus's PromQL test scripts (`promql/promqltest/testdata/*.test`,
  v2.53), faithful to `promqltest/test.go` and `parser.ParseSeriesDesc`.

  A script becomes a list of commands:

    * `%{cmd: :load, line:, interval_ms:, series: [{labels, samples}]}`: samples are
      `[{ts_ms, value}]` with `value` a float, `:nan`, `:inf`, `:neg_inf`, `:stale`
      or `{:histogram, map}`; omitted slots (`_`) are left out. A later definition
      of the same label set in one `load` replaces the earlier one (order kept).
    * `%{cmd: :clear, line:}`
    * `%{cmd: :eval, ...}`: see `t:eval/0`.

  Lines are trimmed; `#` lines count as blank; a blank line ends a block. Commands
  are case-insensitive (`load`, `clear`, `eval...`). Every value expansion of the
  series description grammar is supported: `7`, `-2.5`, `1e3`, `.5`, `Inf`, `NaN`
  (any case, optional sign), `a+bxN` and `a-bxN` (N+1 values, by repeated float
  addition), `axN` (N+1 copies), `_` (one empty slot), `_xN` (N empty slots),
  `stale`, and native histograms `{{...}}`, `{{...}}xN`, `{{A}}+{{B}}xN`,
  `{{A}}-{{B}}xN`.

      iex> {:ok, [load, eval]} = TimelessMetrics.PromQL.Conformance.Script.parse(\"""
      ...> load 5m
      ...>   up{job="a"} 0+10x2 _ stale
      ...>
      ...> eval instant at 10m up
      ...>   up{job="a"} 20
      ...> \""")
      iex> load.series
      [{%{"__name__" => "up", "job" => "a"}, [{0, 0.0}, {300_000, 10.0}, {600_000, 20.0}, {1_200_000, :stale}]}]
      iex> {eval.time_ms, eval.query, eval.series}
      {600_000, "up", [%{pos: 1, labels: %{"__name__" => "up", "job" => "a"}, values: [20.0]}]}

  The query of an `eval` is not parsed here (the runner does that, so that one
  query our parser rejects fails one case, not the whole file).
  """

  @typedoc "A sample value; `:omitted` appears only in expectations (`_`)."
  @type value :: float() | :nan | :inf | :neg_inf | :stale | {:histogram, map()}

  @typedoc """
  An `eval` command. `range` is true for `eval range from .. to .. step ..`;
  an instant eval has `start_ms == end_ms == time_ms` and `step_ms == 0`.
  `scalar` is the expected scalar (a bare number line), `series` the expected
  series lines (position `pos` counts expectation lines from 1), `lines` the raw
  expectation lines (for reports).
  """
  @type eval :: %{
          cmd: :eval,
          line: pos_integer(),
          header: String.t(),
          query: String.t(),
          range: boolean(),
          time_ms: integer(),
          start_ms: integer(),
          end_ms: integer(),
          step_ms: non_neg_integer(),
          fail: boolean(),
          ordered: boolean(),
          fail_message: String.t() | nil,
          fail_regexp: Regex.t() | nil,
          scalar: value() | nil,
          series: [%{pos: pos_integer(), labels: map(), values: [value() | :omitted]}],
          lines: [String.t()]
        }

  @type command ::
          %{cmd: :load, line: pos_integer(), interval_ms: non_neg_integer(), series: [{map(), [{integer(), value()}]}]}
          | %{cmd: :clear, line: pos_integer()}
          | eval()

  @type error :: %{line: pos_integer(), message: String.t()}

  @pat_load ~r/^load\s+(.+?)$/
  @pat_eval_instant ~r/^eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$/
  @pat_eval_range ~r/^eval(?:_(fail))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$/

  @doc "Parse a script file. See `parse/1`."
  @spec parse_file(Path.t()) :: {:ok, [command()]} | {:error, error()}
  def parse_file(path), do: path |> File.read!() |> parse()

  @doc """
  Parse a script into commands, or the first format error with its 1-based line.

      iex> TimelessMetrics.PromQL.Conformance.Script.parse("frobnicate 5m")
      {:error, %{line: 1, message: "invalid command \\"frobnicate 5m\\""}}
  """
  @spec parse(String.t()) :: {:ok, [command()]} | {:error, error()}
  def parse(text) when is_binary(text) do
    lines =
      text
      |> String.split("\n")
      |> Enum.map(fn l ->
        l = String.trim(l)
        if String.starts_with?(l, "#"), do: "", else: l
      end)
      |> List.to_tuple()

    try do
      {:ok, commands(lines, 0, [])}
    catch
      {:script_error, i, message} -> {:error, %{line: i + 1, message: message}}
    end
  end

  defp commands(lines, i, acc) when i >= tuple_size(lines), do: Enum.reverse(acc)

  defp commands(lines, i, acc) do
    case elem(lines, i) do
      "" ->
        commands(lines, i + 1, acc)

      l ->
        word = l |> String.split(~r/[\t ]+/, parts: 2) |> hd() |> String.downcase()

        {next, cmd} =
          cond do
            word == "clear" -> {i, %{cmd: :clear, line: i + 1}}
            word == "load" -> parse_load(lines, i)
            String.starts_with?(word, "eval") -> parse_eval(lines, i)
            true -> raise_at(i, "invalid command #{inspect(l)}")
          end

        commands(lines, next + 1, [cmd | acc])
    end
  end

  defp raise_at(i, message), do: throw({:script_error, i, message})

  # ------------------------------------------------------------------ load

  defp parse_load(lines, i) do
    step =
      case Regex.run(@pat_load, elem(lines, i)) do
        [_, step] -> step
        nil -> raise_at(i, "invalid load command. (load <step:duration>)")
      end

    gap =
      case model_duration(step) do
        {:ok, ms} -> ms
        {:error, msg} -> raise_at(i, "invalid step definition #{inspect(step)}: #{msg}")
      end

    {last, defs} = block(lines, i)

    series =
      defs
      |> Enum.reduce({%{}, []}, fn {j, l}, {seen, order} ->
        {labels, vals} = series_or_raise(l, j)
        order = if Map.has_key?(seen, labels), do: order, else: [labels | order]
        {Map.put(seen, labels, samples(vals, gap)), order}
      end)
      |> then(fn {by_labels, order} -> order |> Enum.reverse() |> Enum.map(&{&1, Map.fetch!(by_labels, &1)}) end)

    {last, %{cmd: :load, line: i + 1, interval_ms: gap, series: series}}
  end

  defp samples(vals, gap) do
    vals
    |> Enum.with_index()
    |> Enum.flat_map(fn
      {:omitted, _} -> []
      {v, k} -> [{k * gap, v}]
    end)
  end

  # The lines of the block after line i: [{index, line}], and the index of the last one.
  defp block(lines, i) do
    Stream.iterate(i + 1, &(&1 + 1))
    |> Enum.take_while(fn j -> j < tuple_size(lines) and elem(lines, j) != "" end)
    |> then(fn js -> {List.last(js) || i, Enum.map(js, &{&1, elem(lines, &1)})} end)
  end

  defp series_or_raise(line, j) do
    case parse_series_desc(line) do
      {:ok, labels, vals} -> {labels, vals}
      {:error, msg} -> raise_at(j, "bad series #{inspect(line)}: #{msg}")
    end
  end

  # ------------------------------------------------------------------ eval

  defp parse_eval(lines, i) do
    header = elem(lines, i)
    instant = Regex.run(@pat_eval_instant, header)
    range = Regex.run(@pat_eval_range, header)

    cmd =
      cond do
        instant != nil ->
          [_, mod, at, expr] = pad(instant, 4)
          ts = duration_or_raise(at, i, "invalid timestamp definition")
          base(i, header, expr, mod) |> Map.merge(%{range: false, time_ms: ts, start_ms: ts, end_ms: ts, step_ms: 0})

        range != nil ->
          [_, mod, from, to, step, expr] = pad(range, 6)
          from_ms = duration_or_raise(from, i, "invalid start timestamp definition")
          to_ms = duration_or_raise(to, i, "invalid end timestamp definition")

          if to_ms < from_ms,
            do: raise_at(i, "invalid test definition, end timestamp (#{to}) is before start timestamp (#{from})")

          step_ms = duration_or_raise(step, i, "invalid step definition")
          base(i, header, expr, mod) |> Map.merge(%{range: true, time_ms: from_ms, start_ms: from_ms, end_ms: to_ms, step_ms: step_ms})

        true ->
          raise_at(
            i,
            "invalid evaluation command. Must be either 'eval[_fail|_ordered] instant [at <offset:duration>] <query>' " <>
              "or 'eval[_fail] range from <from> to <to> step <step> <query>'"
          )
      end

    {_last, defs} = block(lines, i)
    expectations(defs, i, 1, cmd)
  end

  defp pad(groups, n), do: groups ++ List.duplicate("", n - length(groups))

  defp base(i, header, expr, mod) do
    %{
      cmd: :eval,
      line: i + 1,
      header: header,
      query: expr,
      fail: mod == "fail",
      ordered: mod == "ordered",
      fail_message: nil,
      fail_regexp: nil,
      scalar: nil,
      series: [],
      lines: []
    }
  end

  defp duration_or_raise(text, i, what) do
    case model_duration(text) do
      {:ok, ms} -> ms
      {:error, msg} -> raise_at(i, "#{what} #{inspect(text)}: #{msg}")
    end
  end

  # Expectation lines, as test.go reads them: a fail message/regexp or a number
  # ends the block; otherwise a series line.
  defp expectations([], i, _j, cmd), do: {i, finish(cmd)}

  defp expectations([{k, l} | rest], _i, j, cmd) do
    cmd = %{cmd | lines: [l | cmd.lines]}

    cond do
      cmd.fail and String.starts_with?(l, "expected_fail_message") ->
        {k, finish(%{cmd | fail_message: l |> String.replace_prefix("expected_fail_message", "") |> String.trim()})}

      cmd.fail and String.starts_with?(l, "expected_fail_regexp") ->
        pattern = l |> String.replace_prefix("expected_fail_regexp", "") |> String.trim()

        case Regex.compile(pattern) do
          {:ok, re} -> {k, finish(%{cmd | fail_regexp: re})}
          {:error, {msg, _}} -> raise_at(k, "invalid #{cmd.header} on line #{cmd.line}: #{msg}")
        end

      match?({:ok, _}, parse_expected_number(l)) ->
        {:ok, v} = parse_expected_number(l)
        {k, finish(%{cmd | scalar: v})}

      true ->
        {labels, vals} = series_or_raise(l, k)

        if length(vals) > 1 and not cmd.range,
          do: raise_at(k, "invalid #{cmd.header} on line #{cmd.line}: expecting multiple values in instant evaluation not allowed")

        # Same label set twice: the later line wins (Prometheus keys by label hash).
        series = Enum.reject(cmd.series, &(&1.labels == labels))
        expectations(rest, k, j + 1, %{cmd | series: [%{pos: j, labels: labels, values: vals} | series]})
    end
  end

  defp finish(cmd), do: %{cmd | lines: Enum.reverse(cmd.lines), series: Enum.sort_by(cmd.series, & &1.pos)}

  # ------------------------------------------------------------------ numbers and durations

  @max_int64 9_223_372_036_854_775_807

  @doc "Prometheus's `model.ParseDuration` in milliseconds (see `TimelessMetrics.HTTP.Params.model_duration/1`)."
  @spec model_duration(String.t()) :: {:ok, non_neg_integer()} | {:error, String.t()}
  defdelegate model_duration(text), to: TimelessMetrics.HTTP.Params

  @doc """
  An expectation line read as a number, as test.go's `parseNumber` does
  (`strconv.ParseInt(s, 0, 64)`, then `strconv.ParseFloat(s, 64)`).

      iex> TimelessMetrics.PromQL.Conformance.Script.parse_expected_number("-Inf")
      {:ok, :neg_inf}
      iex> TimelessMetrics.PromQL.Conformance.Script.parse_expected_number("0x10")
      {:ok, 16.0}
      iex> TimelessMetrics.PromQL.Conformance.Script.parse_expected_number("{} 1")
      :error
  """
  @spec parse_expected_number(String.t()) :: {:ok, value()} | :error
  def parse_expected_number(text) do
    {sign, body} =
      case text do
        "-" <> rest -> {-1, rest}
        "+" <> rest -> {1, rest}
        rest -> {1, rest}
      end

    lower = String.downcase(body)

    cond do
      lower in ["inf", "infinity"] -> {:ok, if(sign < 0, do: :neg_inf, else: :inf)}
      lower == "nan" -> {:ok, :nan}
      Regex.match?(~r/^0[bB][01]+$/, body) -> int_value(String.to_integer(binary_part(body, 2, byte_size(body) - 2), 2), sign)
      Regex.match?(~r/^0[oO][0-7]+$/, body) -> int_value(String.to_integer(binary_part(body, 2, byte_size(body) - 2), 8), sign)
      Regex.match?(~r/^[0-9.]/, body) and not String.contains?(body, ["_"]) -> plain_number(body, sign)
      true -> :error
    end
  end

  defp int_value(n, sign) when n <= @max_int64, do: {:ok, sign * n * 1.0}
  defp int_value(_n, _sign), do: :error

  defp plain_number(body, sign) do
    case TimelessMetrics.PromQL.Parser.parse_number(body) do
      {:ok, v} -> {:ok, if(sign < 0, do: negate(v), else: v)}
      {:error, _} -> :error
    end
  end

  # ------------------------------------------------------------------ series descriptions

  @doc """
  `parser.ParseSeriesDesc`: a metric name and/or `{label="value", ...}` followed by
  value items. Returns the label map (with `__name__`; labels with empty values are
  dropped, as the store does) and the expanded values (`:omitted` for `_`).

      iex> TimelessMetrics.PromQL.Conformance.Script.parse_series_desc(~S|foo{a="x", b='y'} 1+1x2 _x2 -Inf 3x1|)
      {:ok, %{"__name__" => "foo", "a" => "x", "b" => "y"}, [1.0, 2.0, 3.0, :omitted, :omitted, :neg_inf, 3.0, 3.0]}
      iex> TimelessMetrics.PromQL.Conformance.Script.parse_series_desc("{} 1")
      {:ok, %{}, [1.0]}
  """
  @spec parse_series_desc(String.t()) :: {:ok, map(), [value() | :omitted]} | {:error, String.t()}
  def parse_series_desc(line) do
    with {:ok, name, rest} <- metric_name(line),
         {:ok, labels, rest} <- label_set(rest, name == nil),
         {:ok, items} <- value_items(rest),
         {:ok, vals} <- expand_all(items) do
      labels = if name, do: Map.put(labels, "__name__", name), else: labels
      {:ok, labels |> Enum.reject(fn {_, v} -> v == "" end) |> Map.new(), vals}
    end
  end

  defp metric_name(line) do
    case Regex.run(~r/^[a-zA-Z_:][a-zA-Z0-9_:]*/, line) do
      [name] -> {:ok, name, binary_part(line, byte_size(name), byte_size(line) - byte_size(name))}
      nil -> {:ok, nil, line}
    end
  end

  defp label_set("{" <> rest, _required), do: label_items(skip_ws(rest), %{})
  defp label_set(_rest, true), do: {:error, "expected a metric name or a label set"}
  defp label_set(rest, false), do: {:ok, %{}, rest}

  defp label_items("}" <> rest, acc), do: {:ok, acc, rest}

  defp label_items(text, acc) do
    with [name] <- Regex.run(~r/^[a-zA-Z_][a-zA-Z0-9_]*/, text),
         "=" <> after_eq <- skip_ws(binary_part(text, byte_size(name), byte_size(text) - byte_size(name))),
         {:ok, value, rest} <- unquote_prefix(skip_ws(after_eq)) do
      case skip_ws(rest) do
        "," <> more -> label_items(skip_ws(more), Map.put(acc, name, value))
        "}" <> _ = more -> label_items(more, Map.put(acc, name, value))
        _ -> {:error, "unexpected text in label set: #{inspect(rest)}"}
      end
    else
      {:error, _} = error -> error
      _ -> {:error, "bad label matcher in #{inspect(text)} (a series label set takes name=\"value\" pairs)"}
    end
  end

  defp skip_ws(text), do: String.trim_leading(text, " ") |> String.trim_leading("\t") |> trim_ws_again()
  defp trim_ws_again(<<c, rest::binary>>) when c in [?\s, ?\t], do: skip_ws(rest)
  defp trim_ws_again(text), do: text

  @doc """
  Reads one PromQL string literal (`"..."`, `'...'` or a raw `` `...` ``) from the start
  of `text`, with Go's escapes decoded; returns the value and the rest.

      iex> TimelessMetrics.PromQL.Conformance.Script.unquote_prefix(~S|"a\\"b\\x41\\u00e9" tail|)
      {:ok, "a\\"bAé", " tail"}
  """
  @spec unquote_prefix(String.t()) :: {:ok, binary(), String.t()} | {:error, String.t()}
  def unquote_prefix(<<?`, rest::binary>>) do
    case :binary.split(rest, "`") do
      [value, tail] -> {:ok, value, tail}
      _ -> {:error, "unterminated raw string"}
    end
  end

  def unquote_prefix(<<q, rest::binary>>) when q in [?", ?'], do: unescape(rest, q, [])
  def unquote_prefix(_), do: {:error, "expected a quoted string"}

  @escapes %{?a => 7, ?b => 8, ?f => 12, ?n => 10, ?r => 13, ?t => 9, ?v => 11, ?\\ => ?\\, ?' => ?', ?" => ?"}

  defp unescape(<<q, rest::binary>>, q, acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc)), rest}
  defp unescape(<<?\n, _::binary>>, _q, _acc), do: {:error, "unterminated quoted string"}
  defp unescape(<<>>, _q, _acc), do: {:error, "unterminated quoted string"}

  defp unescape(<<?\\, c, rest::binary>>, q, acc) when is_map_key(@escapes, c),
    do: unescape(rest, q, [Map.fetch!(@escapes, c) | acc])

  defp unescape(<<?\\, ?x, h::binary-size(2), rest::binary>>, q, acc), do: hex_escape(h, rest, q, acc, :byte)
  defp unescape(<<?\\, ?u, h::binary-size(4), rest::binary>>, q, acc), do: hex_escape(h, rest, q, acc, :rune)
  defp unescape(<<?\\, ?U, h::binary-size(8), rest::binary>>, q, acc), do: hex_escape(h, rest, q, acc, :rune)

  defp unescape(<<?\\, o::binary-size(3), rest::binary>>, q, acc) do
    case Integer.parse(o, 8) do
      {n, ""} when n < 256 -> unescape(rest, q, [n | acc])
      _ -> {:error, "invalid escape sequence \\#{o}"}
    end
  end

  defp unescape(<<?\\, _::binary>>, _q, _acc), do: {:error, "invalid escape sequence"}
  defp unescape(<<c::utf8, rest::binary>>, q, acc), do: unescape(rest, q, [<<c::utf8>> | acc])
  defp unescape(<<b, rest::binary>>, q, acc), do: unescape(rest, q, [b | acc])

  defp hex_escape(hex, rest, q, acc, kind) do
    case Integer.parse(hex, 16) do
      {n, ""} when kind == :byte -> unescape(rest, q, [n | acc])
      {n, ""} when n <= 0x10FFFF and (n < 0xD800 or n > 0xDFFF) -> unescape(rest, q, [<<n::utf8>> | acc])
      _ -> {:error, "invalid escape sequence"}
    end
  end

  # Split the value part into items; `{{...}}` may contain spaces.
  defp value_items(""), do: {:ok, []}

  defp value_items(<<c, _::binary>> = text) when c in [?\s, ?\t], do: items(skip_ws(text), [])
  defp value_items(text), do: {:error, "unexpected #{inspect(text)} after the label set"}

  defp items("", acc), do: {:ok, Enum.reverse(acc)}

  defp items(text, acc) do
    case take_item(text, []) do
      {:ok, item, rest} -> items(skip_ws(rest), [item | acc])
      {:error, _} = error -> error
    end
  end

  defp take_item(<<c, _::binary>> = rest, acc) when c in [?\s, ?\t], do: {:ok, IO.iodata_to_binary(Enum.reverse(acc)), rest}
  defp take_item("", acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc)), ""}

  defp take_item("{{" <> rest, acc) do
    case :binary.split(rest, "}}") do
      [inner, tail] -> take_item(tail, ["{{" <> inner <> "}}" | acc])
      _ -> {:error, "unterminated histogram {{...}}"}
    end
  end

  defp take_item(<<c, rest::binary>>, acc), do: take_item(rest, [c | acc])

  defp expand_all(items) do
    Enum.reduce_while(items, {:ok, []}, fn item, {:ok, acc} ->
      case expand(item) do
        {:ok, vals} -> {:cont, {:ok, [vals | acc]}}
        {:error, msg} -> {:halt, {:error, "bad value item #{inspect(item)}: #{msg}"}}
      end
    end)
    |> case do
      {:ok, chunks} -> {:ok, chunks |> Enum.reverse() |> List.flatten()}
      error -> error
    end
  end

  @num "[+-]?(?:(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])"
  @num_item Regex.compile!("^(#{@num})(?:(?:([+-])(#{@num}))?x([0-9]+))?$")

  defp expand("_"), do: {:ok, [:omitted]}
  defp expand("stale"), do: {:ok, [:stale]}

  defp expand("_x" <> n) do
    with {:ok, n} <- uint(n), do: {:ok, List.duplicate(:omitted, n)}
  end

  defp expand("{{" <> _ = item), do: expand_histogram(item)

  defp expand(item) do
    case Regex.run(@num_item, item) do
      nil ->
        {:error, "not a value"}

      [_, base] ->
        with {:ok, v} <- number(base), do: {:ok, [v]}

      [_, base, sign, inc, n] ->
        # `Infx3` lexes as one identifier in Prometheus, so it is not a repetition.
        if Regex.match?(~r/(?i:inf|nan)x[0-9]+$/, item) do
          {:error, "not a value"}
        else
          with {:ok, a} <- number(base),
               {:ok, b} <- increment(sign, inc),
               {:ok, n} <- uint(n) do
            {:ok, series(a, b, n)}
          end
        end
    end
  end

  defp increment("", ""), do: {:ok, 0.0}
  defp increment(sign, inc), do: number(sign <> String.trim_leading(inc, "+"))

  # N+1 values a, a+b, ... computed by repeated addition (bit-identical to Go).
  defp series(a, b, n), do: Enum.map_reduce(0..n, a, fn _, acc -> {acc, add(acc, b)} end) |> elem(0)

  defp number("+" <> rest), do: number(rest)

  defp number("-" <> rest) do
    with {:ok, v} <- number(rest), do: {:ok, negate(v)}
  end

  defp number(text) do
    case TimelessMetrics.PromQL.Parser.parse_number(text) do
      {:ok, v} -> {:ok, v}
      {:error, msg} -> {:error, msg}
    end
  end

  defp uint(text) do
    case Integer.parse(text) do
      {n, ""} when n >= 0 and n <= 18_446_744_073_709_551_615 -> {:ok, n}
      _ -> {:error, "invalid repetition count #{inspect(text)}"}
    end
  end

  defp negate(:inf), do: :neg_inf
  defp negate(:neg_inf), do: :inf
  defp negate(:nan), do: :nan
  defp negate(v), do: -v

  @doc false
  # IEEE addition over floats and the atoms :inf, :neg_inf, :nan.
  def add(:nan, _), do: :nan
  def add(_, :nan), do: :nan
  def add(:inf, :neg_inf), do: :nan
  def add(:neg_inf, :inf), do: :nan
  def add(:inf, _), do: :inf
  def add(:neg_inf, _), do: :neg_inf
  def add(_, :inf), do: :inf
  def add(_, :neg_inf), do: :neg_inf

  def add(a, b) do
    a + b
  rescue
    ArithmeticError -> if a > 0, do: :inf, else: :neg_inf
  end

  # ------------------------------------------------------------------ native histograms

  defp expand_histogram(item) do
    case Regex.run(~r/^\{\{(.*?)\}\}(?:(?:([+-])\{\{(.*?)\}\})?x([0-9]+))?$/s, item) do
      [_, h] ->
        with {:ok, h} <- histogram(h), do: {:ok, [{:histogram, h}]}

      [_, h, sign, inc, n] ->
        with {:ok, h} <- histogram(h),
             {:ok, inc} <- if(inc == "" and sign == "", do: {:ok, nil}, else: histogram(inc)),
             {:ok, n} <- uint(n) do
          step = fn acc -> if inc == nil, do: acc, else: histogram_add(acc, inc, if(sign == "-", do: -1, else: 1)) end
          {:ok, Enum.map_reduce(0..n, h, fn _, acc -> {{:histogram, acc}, step.(acc)} end) |> elem(0)}
        end

      nil ->
        {:error, "not a histogram"}
    end
  end

  @histogram_keys ~w(schema sum count z_bucket z_bucket_w buckets offset n_buckets n_offset counter_reset_hint)

  # `{{schema:0 sum:5 count:4 buckets:[1 2 1]}}` as a map; buckets keyed by absolute index.
  defp histogram(text) do
    pairs = Regex.scan(~r/([a-z_]+):(\[[^\]]*\]|[^\s\[]+)/, text, capture: :all_but_first)
    raw = Map.new(pairs, fn [k, v] -> {k, v} end)

    with :ok <- known_keys(raw),
         {:ok, schema} <- int_field(raw, "schema", 0),
         {:ok, offset} <- int_field(raw, "offset", 0),
         {:ok, n_offset} <- int_field(raw, "n_offset", 0),
         {:ok, buckets} <- bucket_field(raw, "buckets", offset),
         {:ok, n_buckets} <- bucket_field(raw, "n_buckets", n_offset),
         {:ok, sum} <- float_field(raw, "sum"),
         {:ok, count} <- float_field(raw, "count"),
         {:ok, z} <- float_field(raw, "z_bucket"),
         {:ok, zw} <- float_field(raw, "z_bucket_w") do
      {:ok,
       %{
         schema: schema,
         sum: sum,
         count: count,
         z_bucket: z,
         z_bucket_w: zw,
         buckets: buckets,
         n_buckets: n_buckets,
         counter_reset_hint: Map.get(raw, "counter_reset_hint", "unknown")
       }}
    end
  end

  defp known_keys(raw) do
    case Enum.find(Map.keys(raw), &(&1 not in @histogram_keys)) do
      nil -> :ok
      key -> {:error, "unknown histogram field #{inspect(key)}"}
    end
  end

  defp int_field(raw, key, default) do
    case Map.fetch(raw, key) do
      :error -> {:ok, default}
      {:ok, text} -> with {n, ""} <- Integer.parse(text), do: {:ok, n}, else: (_ -> {:error, "bad #{key}"})
    end
  end

  defp float_field(raw, key) do
    case Map.fetch(raw, key) do
      :error -> {:ok, 0.0}
      {:ok, text} -> number(text)
    end
  end

  defp bucket_field(raw, key, offset) do
    case Map.fetch(raw, key) do
      :error ->
        {:ok, %{}}

      {:ok, "[" <> list} ->
        list
        |> String.trim_trailing("]")
        |> String.split(~r/[\s,]+/, trim: true)
        |> Enum.with_index(offset)
        |> Enum.reduce_while({:ok, %{}}, fn {text, idx}, {:ok, acc} ->
          case number(text) do
            {:ok, v} -> {:cont, {:ok, Map.put(acc, idx, v)}}
            error -> {:halt, error}
          end
        end)

      {:ok, _} ->
        {:error, "bad #{key}"}
    end
  end

  defp histogram_add(a, b, sign) do
    scale = fn v -> if sign < 0, do: negate(v), else: v end
    merge = fn x, y -> Map.merge(x, Map.new(y, fn {k, v} -> {k, scale.(v)} end), fn _k, p, q -> add(p, q) end) end

    %{
      a
      | sum: add(a.sum, scale.(b.sum)),
        count: add(a.count, scale.(b.count)),
        z_bucket: add(a.z_bucket, scale.(b.z_bucket)),
        buckets: merge.(a.buckets, b.buckets),
        n_buckets: merge.(a.n_buckets, b.n_buckets)
    }
  end
end
