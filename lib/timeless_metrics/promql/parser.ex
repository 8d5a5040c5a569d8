# Design
# ------
# PromQL 2.x (Prometheus v2.53) parser, in four stages:
#
#  1. Lexing. `src/promql_lexer.xrl` (leex, over the raw bytes so lengths
#     are byte counts) cuts the context-free tokens: blanks, comments,
#     words, quoted strings, operators. `lex/1` below drives it one token
#     at a time and applies Prometheus's context rules on top: inside `{}`
#     every word is a label name; right after `[` a duration must follow;
#     `:` inside `[]` is the subquery colon; numbers and durations are
#     scanned by hand with the exact rules of Prometheus's lexer (so
#     `5m`, `1e-3`, `0x1f`, `1h30m` and errors like `0deadbeef` behave the
#     same); words map case-insensitively to keywords; string escapes are
#     checked and decoded. Lexer errors stop the token stream, as in
#     Prometheus: a syntax error earlier in the stream wins over them.
#  2. Syntax. `src/promql_parser.yrl` (yecc) mirrors Prometheus's grammar,
#     precedence and associativity, and returns a raw tree of tagged
#     tuples that still holds the tokens. yecc has no error recovery, so
#     on a syntax error `syntax_error/2` rebuilds Prometheus's message
#     ("unexpected <op:*> in grouping opts, expected label") from the
#     offending token and the tokens before it.
#  3. Build. `build/2` walks the raw tree in the order Prometheus reduces
#     its grammar and raises the errors Prometheus raises while parsing:
#     number and duration conversion, regex matchers, range/offset/@
#     placement, unknown functions, aggregation arity, trailing commas.
#  4. Check. `check/1` is Prometheus's `checkAST`: type checking of calls,
#     aggregations, binary and unary operators, subqueries, selectors,
#     and it produces the public AST (`TimelessMetrics.PromQL.AST`).
#
# Only the first error is reported (as Prometheus does), with the byte
# offset Prometheus would give; `format_error/2` renders it as
# "line:col: parse error: message".
defmodule TimelessMetrics.PromQL.Parser do
  @moduledoc """
  Parses PromQL (Prometheus 2.x) queries into `TimelessMetrics.PromQL.AST`.

      iex> TimelessMetrics.PromQL.Parser.parse(~S|sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))|)
      {:ok,
       %{
         type: :aggregate,
         op: :sum,
         param: nil,
         grouping: :by,
         labels: ["job"],
         expr: %{
           type: :call,
           func: "rate",
           args: [
             %{
               type: :matrix_selector,
               range_ms: 300_000,
               vector: %{
                 type: :vector_selector,
                 name: "http_requests_total",
                 matchers: [{"code", :re, "5.."}, {"__name__", :eq, "http_requests_total"}],
                 offset_ms: 0,
                 at: nil
               }
             }
           ]
         }
       }}

      iex> TimelessMetrics.PromQL.Parser.parse("sum(foo")
      {:error, %{position: 7, message: "unclosed left parenthesis"}}

  Errors use Prometheus's wording; `format_error/2` adds the line and
  column the way the Prometheus HTTP API shows them.
  """

  alias TimelessMetrics.PromQL.{AST, Functions}

  @type error :: %{position: non_neg_integer(), message: String.t()}

  @type option :: {:experimental_functions, boolean()}

  @doc """
  Parses a PromQL expression.

  Returns `{:ok, ast}` (see `TimelessMetrics.PromQL.AST` for the node
  shapes) or `{:error, %{position: byte_offset, message: message}}`.
  Never raises for any binary input.

  Options:

    * `:experimental_functions` (default `true`) - when `false`, calls to
      functions flagged experimental in `TimelessMetrics.PromQL.Functions`
      fail with `function "sort_by_label" is not enabled`, like Prometheus
      without `--enable-feature=promql-experimental-functions`.
  """
  @spec parse(String.t()) :: {:ok, AST.t()} | {:error, error()}
  @spec parse(String.t(), [option()]) :: {:ok, AST.t()} | {:error, error()}
  def parse(query, opts \\ [])

  def parse(query, opts) when is_binary(query) and is_list(opts) do
    o = %{experimental: Keyword.get(opts, :experimental_functions, true)}

    try do
      {:ok, run(query, o)}
    rescue
      e -> {:error, %{position: 0, message: "internal parser error: " <> Exception.message(e)}}
    catch
      {:promql_error, pos, msg} -> {:error, %{position: pos, message: msg}}
    end
  end

  @doc """
  Renders an error as Prometheus does: `"1:5: parse error: unexpected ..."`
  (1-based line and column, the column counted in bytes).
  """
  @spec format_error(String.t(), error()) :: String.t()
  def format_error(query, %{position: pos, message: msg}) when is_binary(query) do
    pos = pos |> max(0) |> min(byte_size(query))
    before = binary_part(query, 0, pos)
    lines = :binary.split(before, "\n", [:global])
    line = length(lines)
    col = byte_size(List.last(lines)) + 1
    "#{line}:#{col}: parse error: #{msg}"
  end

  # ---------------------------------------------------------------------------
  # Driver
  # ---------------------------------------------------------------------------

  defp run(query, o) do
    {toks, lex_err} = lex(query)

    if toks == [] do
      if lex_err, do: throw(lex_err), else: fail(0, "no expression found in input")
    end

    n = length(toks)
    end_pos = if lex_err, do: elem(lex_err, 1), else: byte_size(query)

    ytoks =
      toks
      |> Enum.with_index(1)
      |> Enum.map(fn {{cat, pos, text, value}, i} ->
        {cat, i, %{pos: pos, text: text, value: value}}
      end)

    ytoks = ytoks ++ [{:"$end", n + 1, %{pos: end_pos, text: "", value: nil}}]

    case :promql_parser.parse(ytoks) do
      {:ok, raw} ->
        node = build(raw, o)
        if lex_err, do: throw(lex_err)
        {ast, _type} = check(node)
        ast

      {:error, {idx, _mod, _msg}} when is_integer(idx) ->
        if lex_err != nil and idx == n + 1, do: throw(lex_err)
        syntax_error(List.to_tuple(ytoks), idx)
    end
  end

  defp fail(pos, msg), do: throw({:promql_error, pos, msg})

  # ---------------------------------------------------------------------------
  # Lexer driver (context rules of Prometheus's lex.go on top of leex)
  # ---------------------------------------------------------------------------

  @aggregators ~w(sum avg count min max group stddev stdvar topk bottomk count_values quantile)
  @keywords %{
    "and" => :and,
    "or" => :or,
    "unless" => :unless,
    "atan2" => :atan2,
    "offset" => :offset,
    "by" => :by,
    "without" => :without,
    "on" => :on,
    "ignoring" => :ignoring,
    "group_left" => :group_left,
    "group_right" => :group_right,
    "bool" => :bool,
    "start" => :start,
    "end" => :end,
    "inf" => :number,
    "nan" => :number
  }

  @simple_ops %{
    "+" => :+,
    "-" => :-,
    "*" => :*,
    "/" => :/,
    "%" => :%,
    "^" => :^,
    "@" => :@,
    "," => :",",
    "==" => :==,
    "!=" => :!=,
    "<=" => :<=,
    "<" => :<,
    ">=" => :>=,
    ">" => :>,
    "=" => :=
  }

  defp lex(input) do
    st = %{
      input: input,
      size: byte_size(input),
      pos: 0,
      rest: :binary.bin_to_list(input),
      paren: 0,
      brace: false,
      bracket: false,
      colon: false,
      after_lbracket: false,
      toks: []
    }

    lex_loop(st)
  end

  defp lex_loop(%{after_lbracket: true} = st) do
    st = skip_spaces(%{st | after_lbracket: false})
    bin = rest_bin(st)
    {ok, i} = scan_number(bin)

    if ok do
      lex_error(st, st.pos, "missing unit character in duration")
    else
      case accept_remaining_duration(bin, i) do
        {true, j} ->
          st |> emit(:duration, st.pos, binary_part(bin, 0, j)) |> advance(j) |> lex_loop()

        {false, j} ->
          lex_error(st, st.pos, "bad duration syntax: " <> go_quote(binary_part(bin, 0, j)))
      end
    end
  end

  defp lex_loop(%{rest: []} = st) do
    cond do
      st.brace -> lex_error(st, st.pos, "unexpected end of input inside braces")
      st.paren != 0 -> lex_error(st, st.pos, "unclosed left parenthesis")
      st.bracket -> lex_error(st, st.pos, "unclosed left bracket")
      true -> {Enum.reverse(st.toks), nil}
    end
  end

  defp lex_loop(%{brace: true} = st), do: lex_in_braces(st)
  defp lex_loop(st), do: lex_statement(st)

  defp lex_error(st, pos, msg), do: {Enum.reverse(st.toks), {:promql_error, pos, msg}}

  defp lex_statement(%{rest: [c | more]} = st) do
    cond do
      digit?(c) or (c == ?. and match?([d | _] when d in ?0..?9, more)) ->
        lex_number_or_duration(st)

      st.bracket and c == ?: ->
        if st.colon do
          lex_error(st, st.pos, "unexpected colon ':'")
        else
          %{st | colon: true} |> emit(:":", st.pos, ":") |> advance(1) |> lex_loop()
        end

      st.bracket and alpha?(c) ->
        lex_error(st, st.pos, "unexpected character: #{go_quote_rune(c)}, expected ':'")

      true ->
        {tok, len} = next_token(st)
        lex_statement_token(tok, len, st)
    end
  end

  defp lex_statement_token(tok, len, st) do
    pos = st.pos

    case tok do
      {kind, _} when kind in [:ws, :comment] ->
        st |> advance(len) |> lex_loop()

      {:word, chars} ->
        text = List.to_string(chars)
        lower = String.downcase(text)

        {cat, value} =
          cond do
            lower in @aggregators -> {:aggregator, String.to_atom(lower)}
            Map.has_key?(@keywords, lower) -> {Map.fetch!(@keywords, lower), nil}
            String.contains?(text, ":") -> {:metric_identifier, nil}
            true -> {:identifier, nil}
          end

        st |> emit(cat, pos, text, value) |> advance(len) |> lex_loop()

      {kind, chars} when kind in [:string, :open_string] ->
        lex_string(kind, chars, len, st)

      {:op, chars} ->
        lex_op(List.to_string(chars), len, st)

      {:char, _} ->
        lex_error(st, pos, "unexpected character: " <> go_quote_rune(rune_at(st.input, pos)))
    end
  end

  defp lex_op(op, len, st) do
    pos = st.pos

    case op do
      "(" ->
        %{st | paren: st.paren + 1} |> emit(:"(", pos, op) |> advance(1) |> lex_loop()

      ")" ->
        if st.paren == 0 do
          lex_error(st, pos, "unexpected right parenthesis ')'")
        else
          %{st | paren: st.paren - 1} |> emit(:")", pos, op) |> advance(1) |> lex_loop()
        end

      "{" ->
        %{st | brace: true} |> emit(:"{", pos, op) |> advance(1) |> lex_loop()

      "}" ->
        lex_error(st, pos, "unexpected character: '}'")

      "[" ->
        if st.bracket do
          lex_error(st, pos, "unexpected left bracket '['")
        else
          %{st | bracket: true, colon: false, after_lbracket: true}
          |> emit(:"[", pos, op)
          |> advance(1)
          |> lex_loop()
        end

      "]" ->
        if st.bracket do
          %{st | bracket: false} |> emit(:"]", pos, op) |> advance(1) |> lex_loop()
        else
          lex_error(st, pos, "unexpected right bracket ']'")
        end

      "=~" ->
        lex_error(st, pos, "unexpected character after '=': '~'")

      "!~" ->
        lex_error(st, pos, "unexpected character after '!': '~'")

      "!" ->
        lex_error(
          st,
          pos,
          "unexpected character after '!': " <> go_quote_rune(rune_at(st.input, pos + 1))
        )

      _ ->
        st |> emit(Map.fetch!(@simple_ops, op), pos, op) |> advance(len) |> lex_loop()
    end
  end

  defp lex_in_braces(st) do
    pos = st.pos
    {tok, len} = next_token(st)

    case tok do
      {kind, _} when kind in [:ws, :comment] ->
        st |> advance(len) |> lex_loop()

      {:word, chars} ->
        text = List.to_string(chars)

        case :binary.match(text, ":") do
          :nomatch ->
            st |> emit(:identifier, pos, text) |> advance(len) |> lex_loop()

          {0, _} ->
            lex_error(st, pos, "unexpected character inside braces: ':'")

          {k, _} ->
            st
            |> emit(:identifier, pos, binary_part(text, 0, k))
            |> lex_error(pos + k, "unexpected character inside braces: ':'")
        end

      {kind, chars} when kind in [:string, :open_string] ->
        lex_string(kind, chars, len, st)

      {:op, chars} ->
        case List.to_string(chars) do
          op when op in ["=", "=~", "!=", "!~", ","] ->
            st |> emit(String.to_atom(op), pos, op) |> advance(len) |> lex_loop()

          "==" ->
            st |> emit(:=, pos, "=") |> emit(:=, pos + 1, "=") |> advance(2) |> lex_loop()

          "}" ->
            %{st | brace: false} |> emit(:"}", pos, "}") |> advance(1) |> lex_loop()

          "{" ->
            lex_error(st, pos, "unexpected left brace '{'")

          "!" ->
            lex_error(
              st,
              pos,
              "unexpected character after '!' inside braces: " <>
                go_quote_rune(rune_at(st.input, pos + 1))
            )

          <<c, _::binary>> ->
            lex_error(st, pos, "unexpected character inside braces: " <> go_quote_rune(c))
        end

      {:char, _} ->
        lex_error(
          st,
          pos,
          "unexpected character inside braces: " <> go_quote_rune(rune_at(st.input, pos))
        )
    end
  end

  defp lex_string(kind, chars, len, st) do
    raw = :erlang.list_to_binary(chars)
    <<quote, _::binary>> = raw
    after_pos = st.pos + len

    terminator =
      cond do
        kind == :string -> :closed
        after_pos >= st.size -> :eof
        true -> :newline
      end

    body =
      if kind == :string,
        do: binary_part(raw, 1, byte_size(raw) - 2),
        else: binary_part(raw, 1, byte_size(raw) - 1)

    result =
      if quote == ?`,
        do: raw_string_value(body, terminator),
        else: unescape(body, quote, terminator, [])

    case result do
      {:ok, value} -> st |> emit(:string, st.pos, raw, value) |> advance(len) |> lex_loop()
      {:error, msg} -> lex_error(st, st.pos, msg)
    end
  end

  defp raw_string_value(body, terminator) do
    cond do
      not String.valid?(body) -> {:error, "invalid UTF-8 rune"}
      terminator != :closed -> {:error, "unterminated raw string"}
      true -> {:ok, body}
    end
  end

  # Go's escape rules (lex.go lexEscape + strutil.Unquote).
  defp unescape(<<>>, _quote, :closed, acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc))}
  defp unescape(<<>>, _quote, _open, _acc), do: {:error, "unterminated quoted string"}

  defp unescape(<<?\\, rest::binary>>, quote, term, acc) do
    case rest do
      <<>> ->
        if term == :eof,
          do: {:error, "escape sequence not terminated"},
          else: {:error, "unknown escape sequence U+000A"}

      <<c, more::binary>> when c in ~c"abfnrtv\\" ->
        unescape(more, quote, term, [simple_escape(c) | acc])

      <<^quote, more::binary>> ->
        unescape(more, quote, term, [quote | acc])

      <<c, _::binary>> when c in ?0..?7 ->
        numeric_escape(rest, 3, 8, 255, :byte, quote, term, acc)

      <<?x, more::binary>> ->
        numeric_escape(more, 2, 16, 255, :byte, quote, term, acc)

      <<?u, more::binary>> ->
        numeric_escape(more, 4, 16, 0x10FFFF, :utf8, quote, term, acc)

      <<?U, more::binary>> ->
        numeric_escape(more, 8, 16, 0x10FFFF, :utf8, quote, term, acc)

      <<c::utf8, _::binary>> ->
        {:error, "unknown escape sequence " <> go_sharp_u(c)}

      _ ->
        {:error, "invalid UTF-8 rune"}
    end
  end

  defp unescape(<<c::utf8, rest::binary>>, quote, term, acc),
    do: unescape(rest, quote, term, [<<c::utf8>> | acc])

  defp unescape(_invalid, _quote, _term, _acc), do: {:error, "invalid UTF-8 rune"}

  defp simple_escape(?a), do: 7
  defp simple_escape(?b), do: 8
  defp simple_escape(?f), do: 12
  defp simple_escape(?n), do: 10
  defp simple_escape(?r), do: 13
  defp simple_escape(?t), do: 9
  defp simple_escape(?v), do: 11
  defp simple_escape(?\\), do: ?\\

  defp numeric_escape(bin, n, base, max, kind, quote, term, acc) do
    case take_digits(bin, n, base, 0) do
      {:ok, value, rest} ->
        cond do
          value > max or (value >= 0xD800 and value < 0xE000) ->
            {:error, "escape sequence is an invalid Unicode code point"}

          kind == :byte ->
            unescape(rest, quote, term, [value | acc])

          true ->
            unescape(rest, quote, term, [<<value::utf8>> | acc])
        end

      {:bad, <<>>} ->
        case term do
          :closed -> {:error, "illegal character " <> go_sharp_u(quote) <> " in escape sequence"}
          :newline -> {:error, "illegal character U+000A in escape sequence"}
          :eof -> {:error, "escape sequence not terminated"}
        end

      {:bad, <<c::utf8, _::binary>>} ->
        {:error, "illegal character " <> go_sharp_u(c) <> " in escape sequence"}

      {:bad, _} ->
        {:error, "illegal character U+FFFD '\uFFFD' in escape sequence"}
    end
  end

  defp take_digits(rest, 0, _base, acc), do: {:ok, acc, rest}

  defp take_digits(<<c, rest::binary>> = bin, n, base, acc) do
    d = digit_val(c)
    if d < base, do: take_digits(rest, n - 1, base, acc * base + d), else: {:bad, bin}
  end

  defp take_digits(<<>>, _n, _base, _acc), do: {:bad, <<>>}

  defp digit_val(c) when c in ?0..?9, do: c - ?0
  defp digit_val(c) when c in ?a..?f, do: c - ?a + 10
  defp digit_val(c) when c in ?A..?F, do: c - ?A + 10
  defp digit_val(_), do: 16

  defp lex_number_or_duration(st) do
    bin = rest_bin(st)

    case scan_number(bin) do
      {true, i} ->
        st |> emit(:number, st.pos, binary_part(bin, 0, i)) |> advance(i) |> lex_loop()

      {false, i} ->
        case accept_remaining_duration(bin, i) do
          {true, j} ->
            st |> emit(:duration, st.pos, binary_part(bin, 0, j)) |> advance(j) |> lex_loop()

          {false, j} ->
            lex_error(
              st,
              st.pos,
              "bad number or duration syntax: " <> go_quote(binary_part(bin, 0, j))
            )
        end
    end
  end

  # Prometheus 2.x Lexer.scanNumber: {looks_like_a_number, bytes_consumed}.
  defp scan_number(bin) do
    {hex, i} =
      case bin do
        <<?0, x, _::binary>> when x in [?x, ?X] -> {true, 2}
        _ -> {false, 0}
      end

    digit = if hex, do: &hex_digit?/1, else: &digit?/1
    i = run(bin, i, digit)
    i = if byte_at(bin, i) == ?., do: run(bin, i + 1, digit), else: i

    i =
      if byte_at(bin, i) in [?e, ?E] do
        i = i + 1
        i = if byte_at(bin, i) in [?+, ?-], do: i + 1, else: i
        run(bin, i, &digit?/1)
      else
        i
      end

    {not alnum?(byte_at(bin, i)), i}
  end

  # Prometheus 2.x acceptRemainingDuration, from offset i.
  defp accept_remaining_duration(bin, i) do
    if byte_at(bin, i) in ~c"smhdwy" do
      i = i + 1
      i = if byte_at(bin, i) == ?s, do: i + 1, else: i
      duration_units(bin, i)
    else
      {false, i}
    end
  end

  defp duration_units(bin, i) do
    c = byte_at(bin, i)

    cond do
      digit?(c) ->
        i = run(bin, i, &digit?/1)

        if byte_at(bin, i) in ~c"smhdw" do
          i = i + 1
          i = if byte_at(bin, i) == ?s, do: i + 1, else: i
          duration_units(bin, i)
        else
          {false, i}
        end

      c == nil ->
        {true, i}

      alnum?(c) ->
        {false, i + 1}

      true ->
        {true, i}
    end
  end

  defp run(bin, i, pred) do
    if pred.(byte_at(bin, i)), do: run(bin, i + 1, pred), else: i
  end

  defp byte_at(bin, i) when i < byte_size(bin), do: :binary.at(bin, i)
  defp byte_at(_bin, _i), do: nil

  defp digit?(c), do: is_integer(c) and c >= ?0 and c <= ?9

  defp hex_digit?(c),
    do: digit?(c) or (is_integer(c) and ((c >= ?a and c <= ?f) or (c >= ?A and c <= ?F)))

  defp alpha?(c),
    do: is_integer(c) and (c == ?_ or (c >= ?a and c <= ?z) or (c >= ?A and c <= ?Z))

  defp alnum?(c), do: alpha?(c) or digit?(c)

  defp next_token(st) do
    {:done, {:ok, tok, _}, _rest} =
      case :promql_lexer.token([], st.rest) do
        {:more, cont} -> :promql_lexer.token(cont, :eof)
        done -> done
      end

    len =
      case tok do
        {kind, n} when kind in [:ws, :comment] -> n
        {_, chars} -> length(chars)
      end

    {tok, len}
  end

  defp skip_spaces(%{rest: [c | _]} = st) when c in [?\s, ?\t, ?\n, ?\r],
    do: st |> advance(1) |> skip_spaces()

  defp skip_spaces(st), do: st

  defp rest_bin(st), do: binary_part(st.input, st.pos, st.size - st.pos)

  defp advance(st, n), do: %{st | pos: st.pos + n, rest: Enum.drop(st.rest, n)}

  defp emit(st, cat, pos, text, value \\ nil),
    do: %{st | toks: [{cat, pos, text, value} | st.toks]}

  defp rune_at(input, pos) when pos >= byte_size(input), do: :eof

  defp rune_at(input, pos) do
    case binary_part(input, pos, byte_size(input) - pos) do
      <<c::utf8, _::binary>> -> c
      _ -> 0xFFFD
    end
  end

  # ---------------------------------------------------------------------------
  # Syntax errors: Prometheus's `unexpected(context, expected)` messages
  # ---------------------------------------------------------------------------

  @grouping_keywords [:by, :without, :on, :ignoring, :group_left, :group_right]

  defp syntax_error(toks, idx) do
    tok = elem(toks, idx - 1)
    prev = for i <- 0..(idx - 2)//1, do: elem(toks, i)
    {context, expected} = error_context(prev)

    msg =
      "unexpected " <>
        describe(tok) <>
        if(context, do: " in " <> context, else: "") <>
        if(expected, do: ", expected " <> expected, else: "")

    fail(tpos(tok), msg)
  end

  defp error_context(prev) do
    {stack, p, pp, agg_close} =
      Enum.reduce(prev, {[], nil, nil, nil}, fn tok, {stack, p1, p2, agg_close} ->
        {stack, agg_close} =
          case cat(tok) do
            :"{" ->
              {[:brace | stack], agg_close}

            :"[" ->
              {[:bracket | stack], agg_close}

            :"(" ->
              kind =
                cond do
                  cat(p1) in @grouping_keywords -> {:grouping, cat(p2) == :aggregator}
                  cat(p1) in [:start, :end] and cat(p2) == :@ -> :at
                  true -> :expr
                end

              {[{:paren, kind} | stack], agg_close}

            c when c in [:"}", :"]", :")"] ->
              case stack do
                [{:paren, {:grouping, true}} | rest] -> {rest, tok}
                [_ | rest] -> {rest, agg_close}
                [] -> {[], agg_close}
              end

            _ ->
              {stack, agg_close}
          end

        {stack, tok, p1, agg_close}
      end)

    top = List.first(stack)

    cond do
      top == :brace ->
        case cat(p) do
          c when c in [:"{", :","] -> {"label matching", ~s(identifier or "}")}
          :identifier -> {"label matching", "label matching operator"}
          :string -> {"label matching", "\",\" or \"}\""}
          _ -> {"label matching", "string"}
        end

      top == :bracket ->
        case {cat(p), cat(pp)} do
          {:"[", _} -> {"subquery selector", "duration"}
          {:":", _} -> {"subquery selector", "duration or \"]\""}
          {:duration, :":"} -> {"subquery selector", "\"]\""}
          _ -> {"subquery or range", "\":\" or \"]\""}
        end

      match?({:paren, {:grouping, _}}, top) ->
        if cat(p) in [:"(", :","],
          do: {"grouping opts", "label"},
          else: {"grouping opts", "\",\" or \")\""}

      top == {:paren, :at} ->
        {"@", "timestamp"}

      cat(p) in [:by, :without, :on, :ignoring] ->
        {"grouping opts", "\"(\""}

      cat(p) == :offset or (cat(p) == :- and cat(pp) == :offset) ->
        {"offset", "duration"}

      cat(p) == :@ or (cat(p) in [:+, :-, :start, :end] and cat(pp) == :@) ->
        {"@", "timestamp"}

      cat(p) == :aggregator or (p != nil and p == agg_close) ->
        {"aggregation", nil}

      true ->
        {nil, nil}
    end
  end

  @operator_cats [:+, :-, :*, :/, :%, :^, :==, :!=, :<=, :<, :>=, :>, :=~, :"!~", :@] ++
                   [:and, :or, :unless, :atan2]
  @keyword_cats [:by, :without, :on, :ignoring, :group_left, :group_right, :bool, :offset]

  # Prometheus Item.desc().
  defp describe({:"$end", _, _}), do: "end of input"

  defp describe({cat, _, %{text: text}}) do
    cond do
      cat == :identifier -> "identifier " <> go_quote(text)
      cat == :metric_identifier -> "metric identifier " <> go_quote(text)
      cat == :number -> "number " <> item_string(text)
      cat == :string -> "string " <> item_string(text)
      cat == :duration -> "duration " <> item_string(text)
      cat == :aggregator -> "<aggr:#{text}>"
      cat in @keyword_cats -> "<#{text}>"
      cat in @operator_cats -> "<op:#{text}>"
      true -> go_quote(text)
    end
  end

  defp item_string(text) do
    if byte_size(text) > 10,
      do: go_quote(text |> String.codepoints() |> Enum.take(10) |> Enum.join()) <> "...",
      else: go_quote(text)
  end

  defp cat(nil), do: nil
  defp cat(tok), do: elem(tok, 0)
  defp tpos(tok), do: elem(tok, 2).pos
  defp ttext(tok), do: elem(tok, 2).text

  # ---------------------------------------------------------------------------
  # Build: raw yecc tree -> internal nodes (public AST + positions), raising
  # the errors Prometheus raises while reducing its grammar.
  # ---------------------------------------------------------------------------

  @param_aggregators [:topk, :bottomk, :count_values, :quantile]

  @binary_ops %{
    :+ => :add,
    :- => :sub,
    :* => :mul,
    :/ => :div,
    :% => :mod,
    :^ => :pow,
    :atan2 => :atan2,
    :== => :eq,
    :!= => :ne,
    :> => :gt,
    :< => :lt,
    :>= => :ge,
    :<= => :le,
    :and => :and,
    :or => :or,
    :unless => :unless
  }

  defp build({:number, tok}, _o), do: %{type: :number, value: number!(tok), pos: tpos(tok)}
  defp build({:string, tok}, _o), do: %{type: :string, value: elem(tok, 2).value, pos: tpos(tok)}

  defp build({:vector_selector, name_tok, matchers}, _o) do
    {lbrace_pos, ms} =
      case matchers do
        nil -> {nil, []}
        {:matchers, lb, list} -> {tpos(lb), Enum.map(list, &build_matcher/1)}
      end

    {name, pos} = if name_tok, do: {ttext(name_tok), tpos(name_tok)}, else: {nil, lbrace_pos}
    nonempty = Enum.any?(ms, fn {_, _, _, matches_empty} -> not matches_empty end)
    ms = Enum.map(ms, fn {l, op, v, _} -> {l, op, v} end)
    ms = if name, do: ms ++ [{"__name__", :eq, name}], else: ms

    %{
      type: :vector_selector,
      name: name,
      matchers: ms,
      offset_ms: 0,
      at: nil,
      pos: pos,
      nonempty: nonempty or name != nil
    }
  end

  defp build({:matrix, expr, lbracket, dur}, o) do
    inner = build(expr, o)
    range = duration!(dur)
    at = tpos(lbracket)

    cond do
      inner.type != :vector_selector -> fail(at, "ranges only allowed for vector selectors")
      inner.offset_ms != 0 -> fail(at, "no offset modifiers allowed before range")
      inner.at != nil -> fail(at, "no @ modifiers allowed before range")
      true -> %{type: :matrix_selector, vector: inner, range_ms: range, pos: inner.pos}
    end
  end

  defp build({:subquery, expr, _lbracket, range, step}, o) do
    inner = build(expr, o)
    range = duration!(range)
    step = if step, do: duration!(step)

    %{
      type: :subquery,
      expr: inner,
      range_ms: range,
      step_ms: step,
      offset_ms: 0,
      at: nil,
      pos: inner.pos
    }
  end

  defp build({:offset, expr, _tok, negative, dur}, o) do
    inner = build(expr, o)
    d = duration!(dur)
    d = if negative, do: -d, else: d

    update_modifier(inner, :offset_ms, fn
      0 -> d
      _ -> fail(inner.pos, "offset may not be set multiple times")
    end)
  end

  defp build({:at, expr, _tok, spec}, o) do
    inner = build(expr, o)

    at =
      case spec do
        {:number, sign, num} ->
          v = number!(num)
          v = if sign != nil and cat(sign) == :-, do: negate(v), else: v

          if not is_float(v) or v >= 9.223372036854776e18 or v <= -9.223372036854776e18 do
            fail(inner.pos, "timestamp out of bounds for @ modifier: " <> go_f(v))
          end

          {:ms, round(v * 1000)}

        {:preprocessor, which} ->
          which
      end

    update_modifier(inner, :at, fn
      nil -> at
      _ -> fail(inner.pos, "@ <timestamp> may not be set multiple times")
    end)
  end

  defp build({:call, id, {:body, _lp, items, _rp}}, o) do
    args = build_args(items, o)
    name = ttext(id)

    case Functions.get(name) do
      :error ->
        fail(tpos(id), "unknown function with name " <> go_quote(name))

      {:ok, f} ->
        if f.experimental and not o.experimental,
          do: fail(tpos(id), "function " <> go_quote(name) <> " is not enabled")
    end

    %{type: :call, func: name, args: args, pos: tpos(id)}
  end

  defp build({:aggregate, op_tok, modifier, {:body, _lp, items, _rp}}, o) do
    {grouping, labels, args} =
      case modifier do
        nil ->
          {nil, [], build_args(items, o)}

        {:before, {kind, labels}} ->
          labels = grouping_labels(labels)
          {kind, labels, build_args(items, o)}

        {:after, {kind, labels}} ->
          args = build_args(items, o)
          {kind, grouping_labels(labels), args}
      end

    op = elem(op_tok, 2).value
    pos = tpos(op_tok)
    if args == [], do: fail(pos, "no arguments for aggregate expression provided")
    desired = if op in @param_aggregators, do: 2, else: 1

    if length(args) != desired do
      fail(
        pos,
        "wrong number of arguments for aggregate expression provided, expected #{desired}, got #{length(args)}"
      )
    end

    {param, expr} = if desired == 2, do: {hd(args), List.last(args)}, else: {nil, hd(args)}

    %{
      type: :aggregate,
      op: op,
      param: param,
      expr: expr,
      grouping: grouping,
      labels: labels,
      pos: pos
    }
  end

  defp build({:binary, op_tok, lhs, {bool_tok, on_ignoring, group}, rhs}, o) do
    lhs = build(lhs, o)

    {on, labels, has_labels} =
      case on_ignoring do
        nil -> {false, [], false}
        {:on, ls} -> {true, grouping_labels(ls), ls != []}
        {:ignoring, ls} -> {false, grouping_labels(ls), ls != []}
      end

    {group, include} =
      case group do
        nil -> {nil, []}
        {side, _tok, nil} -> {side, []}
        {side, _tok, ls} -> {side, grouping_labels(ls)}
      end

    rhs = build(rhs, o)

    %{
      type: :binary,
      op: Map.fetch!(@binary_ops, cat(op_tok)),
      op_text: String.downcase(ttext(op_tok)),
      lhs: lhs,
      rhs: rhs,
      bool: bool_tok != nil,
      on: on,
      labels: labels,
      has_labels: has_labels,
      group: group,
      include: include,
      pos: lhs.pos,
      op_pos: tpos(op_tok)
    }
  end

  defp build({:unary, op_tok, expr}, o) do
    inner = build(expr, o)
    neg = cat(op_tok) == :-

    case inner do
      %{type: :number, value: v} ->
        %{inner | value: if(neg, do: negate(v), else: v), pos: tpos(op_tok)}

      _ ->
        %{type: :unary, op: if(neg, do: :neg, else: :pos), expr: inner, pos: tpos(op_tok)}
    end
  end

  defp build({:paren, lp, expr, _rp}, o), do: %{type: :paren, expr: build(expr, o), pos: tpos(lp)}

  defp build_args(items, o) do
    Enum.map(items, fn
      {:arg, e} ->
        build(e, o)

      {:trailing_comma, tok} ->
        fail(tpos(tok), "trailing commas not allowed in function call args")
    end)
  end

  defp grouping_labels(toks) do
    Enum.map(toks, fn tok ->
      text = ttext(tok)

      if label_name?(text),
        do: text,
        else:
          fail(tpos(tok), "unexpected " <> describe(tok) <> " in grouping opts, expected label")
    end)
  end

  defp label_name?(<<c, rest::binary>>) when c == ?_ or c in ?a..?z or c in ?A..?Z,
    do: for(<<c <- rest>>, reduce: true, do: (ok -> ok and alnum?(c)))

  defp label_name?(_), do: false

  # Offset / @ go on vector selectors (also inside a range selector) and
  # subqueries only.
  defp update_modifier(%{type: t} = node, key, fun) when t in [:vector_selector, :subquery],
    do: Map.update!(node, key, fun)

  defp update_modifier(%{type: :matrix_selector} = node, key, fun),
    do: %{node | vector: Map.update!(node.vector, key, fun)}

  defp update_modifier(node, :offset_ms, _fun),
    do:
      fail(
        node.pos,
        "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"
      )

  defp update_modifier(node, :at, _fun),
    do:
      fail(
        node.pos,
        "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"
      )

  defp build_matcher({label_tok, op_tok, str_tok}) do
    label = ttext(label_tok)
    value = elem(str_tok, 2).value

    op =
      case cat(op_tok) do
        := -> :eq
        :!= -> :ne
        :=~ -> :re
        :"!~" -> :nre
      end

    matches_empty =
      case op do
        :eq -> value == ""
        :ne -> value != ""
        :re -> regex_matches_empty!(value, tpos(label_tok))
        :nre -> not regex_matches_empty!(value, tpos(label_tok))
      end

    {label, op, value, matches_empty}
  end

  defp regex_matches_empty!(value, pos) do
    cond do
      not String.valid?(value) ->
        fail(pos, "error parsing regexp: invalid UTF-8: " <> go_quote(value))

      (bad = unsupported_perl(value)) != nil ->
        fail(pos, "error parsing regexp: " <> bad)

      true ->
        case :re.compile("^(?:" <> value <> ")$", [:unicode]) do
          {:ok, re} ->
            :re.run("", re) != :nomatch

          {:error, {reason, at}} ->
            fail(pos, "error parsing regexp: #{reason} at offset #{max(at - 4, 0)}: `#{value}`")
        end
    end
  end

  # RE2 (Go) rejects some PCRE features that :re would accept.
  defp unsupported_perl(re), do: scan_re(re, false)

  defp scan_re(<<>>, _in_class), do: nil

  defp scan_re(<<?\\, d, _::binary>>, false) when d in ?1..?9,
    do: "invalid escape sequence: `\\#{<<d>>}`"

  defp scan_re(<<?\\, _::utf8, rest::binary>>, in_class), do: scan_re(rest, in_class)
  defp scan_re(<<?[, ?^, ?], rest::binary>>, false), do: scan_re(rest, true)
  defp scan_re(<<?[, ?], rest::binary>>, false), do: scan_re(rest, true)
  defp scan_re(<<?[, rest::binary>>, false), do: scan_re(rest, true)
  defp scan_re(<<?], rest::binary>>, true), do: scan_re(rest, false)

  defp scan_re(<<"(?", c, rest::binary>>, false) when c in [?=, ?!, ?>] do
    _ = rest
    "invalid or unsupported Perl syntax: `(?#{<<c>>}`"
  end

  defp scan_re(<<"(?<", c, _::binary>>, false) when c in [?=, ?!],
    do: "invalid or unsupported Perl syntax: `(?<#{<<c>>}`"

  defp scan_re(<<_::utf8, rest::binary>>, in_class), do: scan_re(rest, in_class)
  defp scan_re(<<_, rest::binary>>, in_class), do: scan_re(rest, in_class)

  # ---------------------------------------------------------------------------
  # Check: Prometheus's checkAST, producing the public AST and its type.
  # ---------------------------------------------------------------------------

  defp check(%{type: :number, value: v}), do: {{:number, v}, :scalar}
  defp check(%{type: :string, value: s}), do: {{:string, s}, :string}

  defp check(%{type: :vector_selector} = n) do
    if n.name do
      case Enum.find(Enum.drop(n.matchers, -1), fn {l, _, _} -> l == "__name__" end) do
        nil ->
          :ok

        {_, _, v} ->
          fail(n.pos, "metric name must not be set twice: #{go_quote(n.name)} or #{go_quote(v)}")
      end
    else
      unless n.nonempty,
        do: fail(n.pos, "vector selector must contain at least one non-empty matcher")
    end

    {Map.take(n, [:type, :name, :matchers, :offset_ms, :at]), :vector}
  end

  defp check(%{type: :matrix_selector} = n) do
    {v, _} = check(n.vector)
    {%{type: :matrix_selector, vector: v, range_ms: n.range_ms}, :matrix}
  end

  defp check(%{type: :subquery} = n) do
    {e, t} = check(n.expr)

    if t != :vector,
      do:
        fail(
          n.pos,
          "subquery is only allowed on instant vector, got #{value_type_name(t)} instead"
        )

    {%{
       type: :subquery,
       expr: e,
       range_ms: n.range_ms,
       step_ms: n.step_ms,
       offset_ms: n.offset_ms,
       at: n.at
     }, :matrix}
  end

  defp check(%{type: :call, func: name, args: args, pos: pos}) do
    {:ok, f} = Functions.get(name)
    nargs = length(f.arg_types)
    got = length(args)
    q = go_quote(name)

    cond do
      f.variadic == 0 and nargs != got ->
        fail(pos, "expected #{nargs} argument(s) in call to #{q}, got #{got}")

      f.variadic != 0 and nargs - 1 > got ->
        fail(pos, "expected at least #{nargs - 1} argument(s) in call to #{q}, got #{got}")

      f.variadic > 0 and nargs - 1 + f.variadic < got ->
        fail(
          pos,
          "expected at most #{nargs - 1 + f.variadic} argument(s) in call to #{q}, got #{got}"
        )

      true ->
        :ok
    end

    args =
      args
      |> Enum.with_index()
      |> Enum.map(fn {arg, i} ->
        {a, t} = check(arg)
        want = Functions.arg_type(f, i)

        if t != want do
          fail(
            arg.pos,
            "expected type #{AST.documented_type(want)} in call to function #{q}, got #{AST.documented_type(t)}"
          )
        end

        a
      end)

    {%{type: :call, func: name, args: args}, f.return_type}
  end

  defp check(%{type: :aggregate} = n) do
    {e, t} = check(n.expr)

    if t != :vector do
      fail(
        n.expr.pos,
        "expected type instant vector in aggregation expression, got #{AST.documented_type(t)}"
      )
    end

    param =
      if n.param do
        {p, pt} = check(n.param)
        want = if n.op == :count_values, do: :string, else: :scalar

        if pt != want do
          fail(
            n.param.pos,
            "expected type #{AST.documented_type(want)} in aggregation parameter, got #{AST.documented_type(pt)}"
          )
        end

        p
      end

    {%{
       type: :aggregate,
       op: n.op,
       param: param,
       expr: e,
       grouping: n.grouping,
       labels: n.labels
     }, :vector}
  end

  defp check(%{type: :binary} = n) do
    {l, lt} = check(n.lhs)
    {r, rt} = check(n.rhs)
    cmp = AST.comparison_op?(n.op)
    set = AST.set_op?(n.op)

    if n.bool and not cmp,
      do: fail(n.op_pos, "bool modifier can only be used on comparison operators")

    if cmp and not n.bool and lt == :scalar and rt == :scalar,
      do: fail(n.op_pos, "comparisons between scalars must use BOOL modifier")

    card =
      case {n.group, set} do
        {:left, _} -> :many_to_one
        {:right, _} -> :one_to_many
        {nil, true} -> :many_to_many
        {nil, false} -> :one_to_one
      end

    if n.on do
      case Enum.find(n.labels, &(&1 in n.include)) do
        nil -> :ok
        l -> fail(n.op_pos, "label #{go_quote(l)} must not occur in ON and GROUP clause at once")
      end
    end

    if lt not in [:scalar, :vector],
      do: fail(n.lhs.pos, "binary expression must contain only scalar and instant vector types")

    if rt not in [:scalar, :vector],
      do: fail(n.rhs.pos, "binary expression must contain only scalar and instant vector types")

    matching =
      cond do
        lt != :vector or rt != :vector ->
          if n.has_labels,
            do: fail(n.pos, "vector matching only allowed between instant vectors")

          nil

        set and card in [:one_to_many, :many_to_one] ->
          fail(n.pos, "no grouping allowed for #{go_quote(n.op_text)} operation")

        true ->
          %{card: card, on: n.on, labels: n.labels, include: n.include}
      end

    if set and (lt == :scalar or rt == :scalar),
      do:
        fail(n.pos, "set operator #{go_quote(n.op_text)} not allowed in binary scalar expression")

    type = if lt == :scalar and rt == :scalar, do: :scalar, else: :vector

    {%{type: :binary, op: n.op, lhs: l, rhs: r, bool: n.bool, matching: matching}, type}
  end

  defp check(%{type: :unary} = n) do
    {e, t} = check(n.expr)

    if t not in [:scalar, :vector] do
      fail(
        n.pos,
        "unary expression only allowed on expressions of type scalar or instant vector, got " <>
          go_quote(AST.documented_type(t))
      )
    end

    {%{type: :unary, op: n.op, expr: e}, t}
  end

  defp check(%{type: :paren} = n) do
    {e, t} = check(n.expr)
    {%{type: :paren, expr: e}, t}
  end

  defp value_type_name(:vector), do: "vector"
  defp value_type_name(:matrix), do: "matrix"
  defp value_type_name(:scalar), do: "scalar"
  defp value_type_name(:string), do: "string"

  # ---------------------------------------------------------------------------
  # Numbers and durations (Go strconv / Prometheus model semantics)
  # ---------------------------------------------------------------------------

  defp number!(tok) do
    case parse_number(ttext(tok)) do
      {:ok, v} -> v
      {:error, reason} -> fail(tpos(tok), "error parsing number: " <> reason)
    end
  end

  @max_int64 9_223_372_036_854_775_807

  # strconv.ParseInt(s, 0, 64), falling back to strconv.ParseFloat(s, 64).
  @doc false
  def parse_number(text) do
    lower = String.downcase(text)

    cond do
      lower == "inf" ->
        {:ok, :inf}

      lower == "nan" ->
        {:ok, :nan}

      Regex.match?(~r/^0[xX][0-9a-fA-F]+$/, text) ->
        n = String.to_integer(binary_part(text, 2, byte_size(text) - 2), 16)

        if n > @max_int64,
          do: {:error, "strconv.ParseFloat: parsing #{go_quote(text)}: invalid syntax"},
          else: {:ok, n * 1.0}

      Regex.match?(~r/^0[0-7]+$/, text) and String.to_integer(text, 8) <= @max_int64 ->
        {:ok, String.to_integer(text, 8) * 1.0}

      true ->
        parse_float(text)
    end
  end

  defp parse_float(text) do
    case Regex.run(~r/^([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/, text) do
      [_ | groups] ->
        [int, frac, exp] =
          case groups do
            [i] -> [i, "", ""]
            [i, f] -> [i, f, ""]
            [i, f, e] -> [i, f, e]
          end

        cond do
          int == "" and frac == "" ->
            {:error, "strconv.ParseFloat: parsing #{go_quote(text)}: invalid syntax"}

          String.trim(int <> frac, "0") == "" ->
            {:ok, 0.0}

          true ->
            exp = if exp == "", do: 0, else: String.to_integer(exp)
            to_float(int, frac, exp, text)
        end

      nil ->
        {:error, "strconv.ParseFloat: parsing #{go_quote(text)}: invalid syntax"}
    end
  end

  defp to_float(int, frac, exp, text) do
    digits = String.trim_leading(int <> frac, "0")
    # value = digits * 10^(exp - length(frac)); its decimal magnitude:
    magnitude = byte_size(digits) + exp - byte_size(frac)

    cond do
      magnitude > 310 ->
        {:error, "strconv.ParseFloat: parsing #{go_quote(text)}: value out of range"}

      magnitude < -330 ->
        {:ok, 0.0}

      true ->
        int = if int == "", do: "0", else: int
        frac = if frac == "", do: "0", else: frac

        try do
          {:ok, :erlang.binary_to_float("#{int}.#{frac}e#{exp}")}
        rescue
          ArgumentError ->
            if magnitude > 0,
              do: {:error, "strconv.ParseFloat: parsing #{go_quote(text)}: value out of range"},
              else: {:ok, 0.0}
        end
    end
  end

  defp negate(:inf), do: :neg_inf
  defp negate(:neg_inf), do: :inf
  defp negate(:nan), do: :nan
  defp negate(v), do: -v

  defp go_f(:inf), do: "+Inf"
  defp go_f(:neg_inf), do: "-Inf"
  defp go_f(:nan), do: "NaN"
  # Large floats are integral: print their exact integer value like Go's %f.
  defp go_f(v) when abs(v) >= 1.0e15, do: Integer.to_string(trunc(v)) <> ".000000"
  defp go_f(v), do: :erlang.float_to_binary(v, decimals: 6)

  @duration_re ~r/^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$/
  @duration_units [
    365 * 24 * 3_600_000,
    7 * 24 * 3_600_000,
    24 * 3_600_000,
    3_600_000,
    60_000,
    1000,
    1
  ]

  defp duration!(tok) do
    case parse_duration(ttext(tok)) do
      {:ok, ms} -> ms
      {:error, msg} -> fail(tpos(tok), msg)
    end
  end

  # Prometheus model.ParseDuration + promql parseDuration (must be > 0).
  @doc false
  def parse_duration(text) do
    case model_duration(text) do
      {:ok, 0} -> {:error, "duration must be greater than 0"}
      other -> other
    end
  end

  @doc """
  Prometheus's `model.ParseDuration` in milliseconds: units from `y` down to `ms`, each
  at most once, largest first; zero is allowed (`"0"`, `"0s"`). Shared with the HTTP
  parameters (`step`, `timeout`, `lookback_delta`).

      iex> TimelessMetrics.PromQL.Parser.model_duration("1h30m")
      {:ok, 5_400_000}
  """
  @spec model_duration(String.t()) :: {:ok, non_neg_integer()} | {:error, String.t()}
  def model_duration(""), do: {:error, "empty duration string"}
  def model_duration("0"), do: {:ok, 0}

  def model_duration(text) do
    case Regex.run(@duration_re, text) do
      nil ->
        {:error, "not a valid duration string: " <> go_quote(text)}

      [_ | groups] ->
        ms =
          groups
          |> Enum.zip(@duration_units)
          |> Enum.reduce(0, fn
            {"", _}, acc -> acc
            {n, unit}, acc -> acc + String.to_integer(n) * unit
          end)

        if ms * 1_000_000 > @max_int64, do: {:error, "duration out of range"}, else: {:ok, ms}
    end
  end

  # ---------------------------------------------------------------------------
  # Go-style quoting for messages (%q, %#U)
  # ---------------------------------------------------------------------------

  @doc false
  def go_quote(s) when is_binary(s), do: "\"" <> quote_body(s, ?", []) <> "\""

  defp quote_body(<<>>, _q, acc), do: IO.iodata_to_binary(Enum.reverse(acc))

  defp quote_body(<<c::utf8, rest::binary>>, q, acc),
    do: quote_body(rest, q, [escape_char(c, q) | acc])

  defp quote_body(<<b, rest::binary>>, q, acc),
    do: quote_body(rest, q, [hex_escape(b) | acc])

  defp go_quote_rune(:eof), do: "'\uFFFD'"
  defp go_quote_rune(c), do: "'" <> escape_char(c, ?') <> "'"

  defp escape_char(c, q) when c == q, do: <<?\\, c>>
  defp escape_char(?\\, _), do: "\\\\"
  defp escape_char(7, _), do: "\\a"
  defp escape_char(8, _), do: "\\b"
  defp escape_char(12, _), do: "\\f"
  defp escape_char(10, _), do: "\\n"
  defp escape_char(13, _), do: "\\r"
  defp escape_char(9, _), do: "\\t"
  defp escape_char(11, _), do: "\\v"
  defp escape_char(c, _) when c < 0x20 or c == 0x7F, do: hex_escape(c)

  defp escape_char(c, _) when c in 0x80..0x9F,
    do: "\\u" <> String.pad_leading(Integer.to_string(c, 16) |> String.downcase(), 4, "0")

  defp escape_char(c, _), do: <<c::utf8>>

  defp hex_escape(b),
    do: "\\x" <> String.pad_leading(Integer.to_string(b, 16) |> String.downcase(), 2, "0")

  defp go_sharp_u(c) do
    hex = c |> Integer.to_string(16) |> String.pad_leading(4, "0")
    printable = c >= 0x20 and c != 0x7F and c not in 0x80..0x9F
    if printable, do: "U+#{hex} '#{<<c::utf8>>}'", else: "U+#{hex}"
  end
end
