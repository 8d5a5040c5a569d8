defmodule TimelessMetrics.HTTP.Selector do
  @moduledoc """
  Parser for Prometheus series selectors, as `match[]` takes them: an optional metric
  name followed by `{label op "value", ...}` with the ops `=`, `!=`, `=~`, `!~`.
  Strings are Go string literals: `"..."` and `'...'` with escapes (`\\n`, `\\t`,
  `\\\\`, `\\"`, `\\xHH`, octal `\\ooo`, `\\uHHHH`, `\\UHHHHHHHH`...) or raw `` `...` ``.

  The result is a matcher list for `TimelessMetrics.Matchers` (the metric name as a
  `__name__` equality matcher). As in Prometheus, a selector must have at least one
  matcher that does not match the empty string.

      iex> TimelessMetrics.HTTP.Selector.parse(~s(http_requests_total{code=~"2..",method!="GET"}))
      {:ok, [{"__name__", :eq, "http_requests_total"}, {"code", :re, "2.."}, {"method", :ne, "GET"}]}
      iex> TimelessMetrics.HTTP.Selector.parse(~s({job="a\\\\tb"}))
      {:ok, [{"job", :eq, "a\\tb"}]}
      iex> TimelessMetrics.HTTP.Selector.parse("{}")
      {:error, "vector selector must contain at least one non-empty matcher"}
  """

  @type matcher :: {String.t(), :eq | :ne | :re | :nre, String.t()}

  @doc "Parse a selector into matchers, or `{:error, message}` with the column of the problem."
  @spec parse(String.t()) :: {:ok, [matcher()]} | {:error, String.t()}
  def parse(input) when is_binary(input) do
    with {:ok, matchers, rest} <- selector(skip_ws(input), input),
         :ok <- at_end(skip_ws(rest), input),
         :ok <- single_name(matchers),
         :ok <- check_regexes(matchers),
         :ok <- non_empty(matchers) do
      {:ok, matchers}
    end
  end

  # ------------------------------------------------------------------ grammar

  defp selector(<<c, _::binary>> = s, input) when c in ?a..?z or c in ?A..?Z or c in [?_, ?:] do
    {name, rest} = take_while(s, &metric_char?/1)
    name_matcher = {"__name__", :eq, name}

    case skip_ws(rest) do
      "{" <> rest -> with {:ok, ms, rest} <- matchers(rest, input, []), do: {:ok, [name_matcher | ms], rest}
      rest -> {:ok, [name_matcher], rest}
    end
  end

  defp selector("{" <> rest, input), do: matchers(rest, input, [])
  defp selector("", input), do: error(input, "", "unexpected end of input, expected a metric name or '{'")
  defp selector(rest, input), do: unexpected(input, rest, "a metric name or '{'")

  defp matchers(s, input, acc) do
    case skip_ws(s) do
      "}" <> rest ->
        {:ok, Enum.reverse(acc), rest}

      rest ->
        with {:ok, m, rest} <- matcher(rest, input) do
          case skip_ws(rest) do
            "," <> rest -> matchers(rest, input, [m | acc])
            "}" <> rest -> {:ok, Enum.reverse([m | acc]), rest}
            "" -> error(input, "", "unexpected end of input inside braces")
            other -> unexpected(input, other, "',' or '}'")
          end
        end
    end
  end

  defp matcher(<<c, _::binary>> = s, input) when c in ?a..?z or c in ?A..?Z or c == ?_ do
    {label, rest} = take_while(s, &label_char?/1)

    with {:ok, op, rest} <- op(skip_ws(rest), input),
         {:ok, value, rest} <- string(skip_ws(rest), input) do
      {:ok, {label, op, value}, rest}
    end
  end

  defp matcher("", input), do: error(input, "", "unexpected end of input inside braces")
  defp matcher(rest, input), do: unexpected(input, rest, "a label name")

  defp op("=~" <> rest, _input), do: {:ok, :re, rest}
  defp op("!~" <> rest, _input), do: {:ok, :nre, rest}
  defp op("!=" <> rest, _input), do: {:ok, :ne, rest}
  defp op("=" <> rest, _input), do: {:ok, :eq, rest}
  defp op("", input), do: error(input, "", "unexpected end of input, expected a label matching operator")
  defp op(rest, input), do: unexpected(input, rest, "a label matching operator (=, !=, =~, !~)")

  defp string("`" <> rest, input) do
    case :binary.split(rest, "`") do
      [value, rest] -> {:ok, value, rest}
      [_] -> error(input, "", "unterminated raw string")
    end
  end

  defp string(<<q, rest::binary>>, input) when q in [?", ?'], do: quoted(rest, q, input, [])
  defp string("", input), do: error(input, "", "unexpected end of input, expected a string")
  defp string(rest, input), do: unexpected(input, rest, "a quoted string")

  defp quoted(<<q, rest::binary>>, q, input, acc) do
    value = IO.iodata_to_binary(Enum.reverse(acc))

    if String.valid?(value),
      do: {:ok, value, rest},
      else: error(input, rest, "invalid UTF-8 in string")
  end

  defp quoted(<<"\\", rest::binary>> = s, q, input, acc) do
    case escape(rest, q) do
      {:ok, bytes, rest} -> quoted(rest, q, input, [bytes | acc])
      :error -> error(input, s, "invalid escape sequence in string")
    end
  end

  defp quoted(<<"\n", _::binary>> = s, _q, input, _acc), do: error(input, s, "newline in string")
  defp quoted(<<c, rest::binary>>, q, input, acc), do: quoted(rest, q, input, [c | acc])
  defp quoted("", _q, input, _acc), do: error(input, "", "unterminated quoted string")

  @simple_escapes %{?a => 7, ?b => 8, ?f => 12, ?n => 10, ?r => 13, ?t => 9, ?v => 11, ?\\ => ?\\}

  defp escape(<<c, rest::binary>>, _q) when is_map_key(@simple_escapes, c),
    do: {:ok, Map.fetch!(@simple_escapes, c), rest}

  defp escape(<<q, rest::binary>>, q), do: {:ok, q, rest}
  defp escape(<<"x", h::binary-size(2), rest::binary>>, _q), do: hex_byte(h, rest)

  defp escape(<<o::binary-size(3), rest::binary>>, _q) when binary_part(o, 0, 1) in ~w(0 1 2 3 4 5 6 7) do
    case Integer.parse(o, 8) do
      {n, ""} when n <= 255 -> {:ok, n, rest}
      _ -> :error
    end
  end

  defp escape(<<"u", h::binary-size(4), rest::binary>>, _q), do: code_point(h, rest)
  defp escape(<<"U", h::binary-size(8), rest::binary>>, _q), do: code_point(h, rest)
  defp escape(_other, _q), do: :error

  defp hex_byte(h, rest) do
    case Integer.parse(h, 16) do
      {n, ""} -> {:ok, n, rest}
      _ -> :error
    end
  end

  defp code_point(h, rest) do
    case Integer.parse(h, 16) do
      {n, ""} when n <= 0x10FFFF and n not in 0xD800..0xDFFF -> {:ok, <<n::utf8>>, rest}
      _ -> :error
    end
  end

  # ------------------------------------------------------------------ checks

  defp at_end("", _input), do: :ok
  defp at_end(rest, input), do: unexpected(input, rest, "end of selector")

  defp single_name(matchers) do
    case for({"__name__", :eq, v} <- matchers, do: v) do
      [a, b | _] -> {:error, "metric name must not be set twice: #{inspect(a)} or #{inspect(b)}"}
      _ -> :ok
    end
  end

  defp check_regexes(matchers) do
    Enum.reduce_while(matchers, :ok, fn
      {label, op, re}, :ok when op in [:re, :nre] ->
        case Regex.compile("^(?:" <> re <> ")$") do
          {:ok, _} -> {:cont, :ok}
          {:error, {why, _at}} -> {:halt, {:error, "invalid regular expression for #{label}: #{inspect(re)}: #{why}"}}
        end

      _, :ok ->
        {:cont, :ok}
    end)
  end

  defp non_empty(matchers) do
    if Enum.any?(matchers, &(not matches_empty?(&1))),
      do: :ok,
      else: {:error, "vector selector must contain at least one non-empty matcher"}
  end

  defp matches_empty?({_, :eq, v}), do: v == ""
  defp matches_empty?({_, :ne, v}), do: v != ""
  defp matches_empty?({_, :re, re}), do: Regex.match?(Regex.compile!("^(?:" <> re <> ")$"), "")
  defp matches_empty?({_, :nre, re}), do: not Regex.match?(Regex.compile!("^(?:" <> re <> ")$"), "")

  # ------------------------------------------------------------------ helpers

  defp metric_char?(c), do: c in ?a..?z or c in ?A..?Z or c in ?0..?9 or c in [?_, ?:]
  defp label_char?(c), do: c in ?a..?z or c in ?A..?Z or c in ?0..?9 or c == ?_

  defp take_while(s, pred), do: take_while(s, pred, 0)

  defp take_while(s, pred, n) do
    case s do
      <<_::binary-size(n), c, _::binary>> -> if pred.(c), do: take_while(s, pred, n + 1), else: split_at(s, n)
      _ -> split_at(s, n)
    end
  end

  defp split_at(s, n), do: {binary_part(s, 0, n), binary_part(s, n, byte_size(s) - n)}

  defp skip_ws(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip_ws(rest)
  defp skip_ws(s), do: s

  defp unexpected(input, <<c::utf8, _::binary>> = rest, expected),
    do: error(input, rest, "unexpected #{inspect(<<c::utf8>>)}, expected #{expected}")

  defp unexpected(input, rest, expected), do: error(input, rest, "unexpected byte, expected #{expected}")

  # Prometheus reports "line:column: parse error: ...".
  defp error(input, rest, message) do
    column = byte_size(input) - byte_size(rest) + 1
    {:error, "1:#{column}: parse error: #{message}"}
  end
end
