defmodule TimelessMetrics.PromQL.ParserTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics.PromQL.{AST, Functions, Parser}

  doctest Parser

  @conformance_dir "/work/shared/promql-conformance/testdata"

  defp parse!(q) do
    case Parser.parse(q) do
      {:ok, ast} -> ast
      {:error, e} -> flunk("#{inspect(q)} failed: #{Parser.format_error(q, e)}")
    end
  end

  defp error!(q) do
    case Parser.parse(q) do
      {:error, e} -> e
      {:ok, ast} -> flunk("#{inspect(q)} parsed: #{inspect(ast)}")
    end
  end

  defp vs(name, matchers \\ [], mods \\ []) do
    matchers = if name, do: matchers ++ [{"__name__", :eq, name}], else: matchers

    %{
      type: :vector_selector,
      name: name,
      matchers: matchers,
      offset_ms: Keyword.get(mods, :offset, 0),
      at: Keyword.get(mods, :at)
    }
  end

  defp bin(op, lhs, rhs, opts \\ []) do
    %{
      type: :binary,
      op: op,
      lhs: lhs,
      rhs: rhs,
      bool: Keyword.get(opts, :bool, false),
      matching: Keyword.get(opts, :matching)
    }
  end

  defp one_to_one, do: %{card: :one_to_one, on: false, labels: [], include: []}
  defp many_to_many, do: %{card: :many_to_many, on: false, labels: [], include: []}

  describe "number literals" do
    test "decimal, hex, octal, exponents, Inf and NaN" do
      for {q, v} <- [
            {"1", 1.0},
            {".5", 0.5},
            {"5.", 5.0},
            {"123.4567", 123.4567},
            {"5e-3", 0.005},
            {"5e3", 5000.0},
            {"1E+2", 100.0},
            {"0xc", 12.0},
            {"0X1F", 31.0},
            {"0755", 493.0},
            {"089", 89.0},
            {"+5.5e-3", 0.0055},
            {"-0755", -493.0},
            {"+Inf", :inf},
            {"-Inf", :neg_inf},
            {"inf", :inf},
            {"iNf", :inf},
            {"NaN", :nan},
            {"-nan", :nan},
            {"--1", 1.0},
            {"1e-400", 0.0},
            {"99999999999999999999", 1.0e20}
          ] do
        assert parse!(q) == {:number, v}, q
      end
    end

    test "a sign before a parenthesis is a unary node" do
      assert parse!("-(1)") == %{
               type: :unary,
               op: :neg,
               expr: %{type: :paren, expr: {:number, 1.0}}
             }
    end

    test "number errors" do
      assert error!(String.duplicate("9", 320)).message =~ "value out of range"

      assert error!("1e").message ==
               ~S|error parsing number: strconv.ParseFloat: parsing "1e": invalid syntax|

      assert error!("0deadbeef") == %{
               position: 0,
               message: ~S|bad number or duration syntax: "0de"|
             }

      assert error!("100..4").message == ~S|unexpected number ".4"|
    end
  end

  describe "string literals" do
    test "three quote styles and Go escapes" do
      assert parse!(~S|"double \" quoted"|) == {:string, "double \" quoted"}
      assert parse!(~S|'single \' quoted'|) == {:string, "single ' quoted"}
      assert parse!("`raw \\n string`") == {:string, "raw \\n string"}

      assert parse!(~S|"\a\b\f\n\r\t\v\\ \x41\101\u00e9\U0001F600☺"|) ==
               {:string, "\a\b\f\n\r\t\v\\ AAé😀☺"}

      assert parse!(~S|"\xff\377"|) == {:string, <<255, 255>>}
      assert parse!("`multi\nline`") == {:string, "multi\nline"}
    end

    test "string errors" do
      for {q, msg} <- [
            {"`\\``", "unterminated raw string"},
            {"\"\\", "escape sequence not terminated"},
            {~S|"\c"|, "unknown escape sequence U+0063 'c'"},
            {~S|"\x."|, "illegal character U+002E '.' in escape sequence"},
            {~S|"\x4"|, "illegal character U+0022 '\"' in escape sequence"},
            {~S|'\"'|, "unknown escape sequence U+0022 '\"'"},
            {~S|"\ud800"|, "escape sequence is an invalid Unicode code point"},
            {~S|"\400"|, "escape sequence is an invalid Unicode code point"},
            {~S|"abc|, "unterminated quoted string"},
            {"\"ab\ncd\"", "unterminated quoted string"},
            {"some_metric{a=\"\xff\"}", "invalid UTF-8 rune"}
          ] do
        assert error!(q).message == msg, q
      end

      assert error!("label_replace(a, `b`, `c\xff`, `d`, `.*`)") ==
               %{position: 22, message: "invalid UTF-8 rune"}
    end
  end

  describe "vector selectors" do
    test "name, matchers of all four kinds, trailing comma" do
      assert parse!("foo") == vs("foo")
      assert parse!("foo:bar") == vs("foo:bar")
      assert parse!(":foo") == vs(":foo")

      expected =
        vs("foo", [
          {"a", :eq, "b"},
          {"foo", :ne, "bar"},
          {"test", :re, "test"},
          {"bar", :nre, "baz"}
        ])

      assert parse!(~S|foo{a="b", foo!="bar", test=~"test", bar!~"baz"}|) == expected
      assert parse!(~S|foo{a="b", foo!="bar", test=~"test", bar!~"baz",}|) == expected
      assert parse!(~S|foo{bar='}'}|) == vs("foo", [{"bar", :eq, "}"}])
      assert parse!("foo{}") == vs("foo")
    end

    test "__name__ inside braces" do
      assert parse!(~S|{__name__="foo"}|) == vs(nil, [{"__name__", :eq, "foo"}])

      assert parse!(~S[{__name__=~"foo|bar", job="x"}]) ==
               vs(nil, [{"__name__", :re, "foo|bar"}, {"job", :eq, "x"}])
    end

    test "keywords as metric names and label names" do
      for name <-
            ~w(sum avg count min max group stddev stdvar topk bottomk count_values quantile by without and or unless offset start end) do
        assert parse!(name) == vs(name), name
      end

      assert parse!(~S|sum{by="x", offset="y", on="z", bool="w", NaN="v"}|) ==
               vs("sum", [
                 {"by", :eq, "x"},
                 {"offset", :eq, "y"},
                 {"on", :eq, "z"},
                 {"bool", :eq, "w"},
                 {"NaN", :eq, "v"}
               ])

      assert parse!(~S|start{end="foo"}|) == vs("start", [{"end", :eq, "foo"}])

      for kw <- ~w(on ignoring bool group_left group_right atan2) do
        assert error!(kw).message == "unexpected <#{kw}>" or
                 error!(kw).message == "unexpected <op:#{kw}>",
               kw
      end
    end

    test "selector errors" do
      for {q, pos, msg} <- [
            {"{}", 0, "vector selector must contain at least one non-empty matcher"},
            {~S|{x=""}|, 0, "vector selector must contain at least one non-empty matcher"},
            {~S|{x=~".*"}|, 0, "vector selector must contain at least one non-empty matcher"},
            {~S|{x!~".+"}|, 0, "vector selector must contain at least one non-empty matcher"},
            {~S|{x!="a"}|, 0, "vector selector must contain at least one non-empty matcher"},
            {~S|foo{__name__="bar"}|, 0, ~S|metric name must not be set twice: "foo" or "bar"|},
            {"{", 1, "unexpected end of input inside braces"},
            {"}", 0, "unexpected character: '}'"},
            {~S|some_metric{a=b}|, 14,
             ~S|unexpected identifier "b" in label matching, expected string|},
            {~S|some_metric{a:b="b"}|, 13, "unexpected character inside braces: ':'"},
            {~S|foo{a*"b"}|, 5, "unexpected character inside braces: '*'"},
            {~S|foo{a>="b"}|, 5, "unexpected character inside braces: '>'"},
            {"foo{gibberish}", 13,
             ~S|unexpected "}" in label matching, expected label matching operator|},
            {"foo{1}", 4, "unexpected character inside braces: '1'"},
            {"foo{__name__= =}", 14, ~S|unexpected "=" in label matching, expected string|},
            {~S|foo{__name__ == "bar"}|, 14,
             ~S|unexpected "=" in label matching, expected string|},
            {"foo{,}", 4, ~S|unexpected "," in label matching, expected identifier or "}"|},
            {~S|foo{__name__="bar" lol}|, 19,
             ~S|unexpected identifier "lol" in label matching, expected "," or "}"|},
            {~S|foo{"a"="b"}|, 4,
             ~S|unexpected string "\"a\"" in label matching, expected identifier or "}"|},
            {~S|foo{a=~"("}|, 4, nil},
            {~S|foo{a=~"(?=x)"}|, 4,
             "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
            {"foo{a!~`(a)\\1`}", 4, "error parsing regexp: invalid escape sequence: `\\1`"}
          ] do
        e = error!(q)
        assert e.position == pos, q
        if msg, do: assert(e.message == msg, q), else: assert(e.message =~ "error parsing regexp")
      end
    end
  end

  describe "range selectors, offset and @" do
    test "ranges and durations" do
      for {q, ms} <- [
            {"test[5s]", 5_000},
            {"test[5m]", 300_000},
            {"foo[5m30s]", 330_000},
            {"foo[1h30m]", 5_400_000},
            {"foo[1m30ms]", 60_030},
            {"foo[5d]", 5 * 86_400_000},
            {"foo[2w]", 14 * 86_400_000},
            {"foo[1y]", 365 * 86_400_000},
            {"foo[ 10ms ]", 10}
          ] do
        name = q |> String.split("[") |> hd()
        assert parse!(q) == %{type: :matrix_selector, vector: vs(name), range_ms: ms}, q
      end
    end

    test "offset and @ in either order, on instant and range selectors" do
      assert parse!("foo offset 5m") == vs("foo", [], offset: 300_000)
      assert parse!("foo offset -7m") == vs("foo", [], offset: -420_000)
      assert parse!("foo OFFSET 1h30m") == vs("foo", [], offset: 5_400_000)
      assert parse!("foo @ 1603774568") == vs("foo", [], at: {:ms, 1_603_774_568_000})
      assert parse!("foo @ -100") == vs("foo", [], at: {:ms, -100_000})
      assert parse!("foo @ .3") == vs("foo", [], at: {:ms, 300})
      assert parse!("foo @ 3.3335") == vs("foo", [], at: {:ms, 3334})
      assert parse!("foo @ 0xA") == vs("foo", [], at: {:ms, 10_000})
      assert parse!("foo @ start()") == vs("foo", [], at: :start)
      assert parse!("foo @ END()") == vs("foo", [], at: :end)
      assert parse!("foo offset 5m @ 100") == vs("foo", [], offset: 300_000, at: {:ms, 100_000})
      assert parse!("foo @ 100 offset 5m") == vs("foo", [], offset: 300_000, at: {:ms, 100_000})

      assert parse!(~S|test{a="b"}[5y] OFFSET 3d|) ==
               %{
                 type: :matrix_selector,
                 range_ms: 5 * 365 * 86_400_000,
                 vector: vs("test", [{"a", :eq, "b"}], offset: 3 * 86_400_000)
               }

      assert parse!("test[5m] @ end() offset 1m") ==
               %{
                 type: :matrix_selector,
                 range_ms: 300_000,
                 vector: vs("test", [], at: :end, offset: 60_000)
               }
    end

    test "errors" do
      for {q, pos, msg} <- [
            {"foo[5mm]", 4, ~S|bad duration syntax: "5mm"|},
            {"foo[5m1]", 4, ~S|bad duration syntax: "5m1"|},
            {"foo[5m:1m1]", 7, ~S|bad number or duration syntax: "1m1"|},
            {"foo[5y1hs]", 4, ~S|not a valid duration string: "5y1hs"|},
            {"foo[5m1h]", 4, ~S|not a valid duration string: "5m1h"|},
            {"foo[5m1m]", 4, ~S|not a valid duration string: "5m1m"|},
            {"foo[0m]", 4, "duration must be greater than 0"},
            {~S|foo["5m"]|, 4, "missing unit character in duration"},
            {"foo[]", 4, "missing unit character in duration"},
            {"foo[1]", 4, "missing unit character in duration"},
            {"foo[5m", 6, "unclosed left bracket"},
            {"foo[5m]]", 7, "unexpected right bracket ']'"},
            {"foo[5m[5m]]", 6, "unexpected left bracket '['"},
            {"some_metric[5m] OFFSET 1", 23,
             ~S|unexpected number "1" in offset, expected duration|},
            {"some_metric[5m] OFFSET 1mm", 23, ~S|bad number or duration syntax: "1mm"|},
            {"some_metric[5m] OFFSET", 22,
             "unexpected end of input in offset, expected duration"},
            {"some_metric OFFSET +1m", 19, "unexpected <op:+> in offset, expected duration"},
            {"some_metric OFFSET 1m[5m]", 21, "no offset modifiers allowed before range"},
            {"some_metric[5m] @ 1m", 18, ~S|unexpected duration "1m" in @, expected timestamp|},
            {"some_metric[5m] @", 17, "unexpected end of input in @, expected timestamp"},
            {"some_metric @ start", 19, "unexpected end of input in @, expected timestamp"},
            {"some_metric @ 1234 [5m]", 19, "no @ modifiers allowed before range"},
            {"(foo + bar)[5m]", 11, "ranges only allowed for vector selectors"},
            {"rate(food[1m])[1h] offset 1h", 14, "ranges only allowed for vector selectors"},
            {"1 offset 1d", 0,
             "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"},
            {"foo offset 1s offset 2s", 0, "offset may not be set multiple times"},
            {"foo offset 0s", 11, "duration must be greater than 0"},
            {"rate(some_metric[5m]) @ 1234", 0,
             "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"},
            {"(foo) @ 1", 0,
             "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"},
            {"foo @ 1 @ 2", 0, "@ <timestamp> may not be set multiple times"},
            {"foo @ +Inf", 0, "timestamp out of bounds for @ modifier: +Inf"},
            {"foo @ -Inf", 0, "timestamp out of bounds for @ modifier: -Inf"},
            {"foo @ NaN", 0, "timestamp out of bounds for @ modifier: NaN"},
            {"foo @ 9223372036854775808.000000", 0,
             "timestamp out of bounds for @ modifier: 9223372036854775808.000000"}
          ] do
        assert error!(q) == %{position: pos, message: msg}, q
      end
    end
  end

  describe "subqueries" do
    test "with and without step, with modifiers" do
      foo = vs("foo", [{"bar", :eq, "baz"}])
      sq = %{type: :subquery, expr: foo, range_ms: 600_000, step_ms: 6_000, offset_ms: 0, at: nil}
      assert parse!(~S|foo{bar="baz"}[10m:6s]|) == sq

      assert parse!(~S|foo{bar="baz"}[10m5s:1h6ms]|) == %{
               sq
               | range_ms: 605_000,
                 step_ms: 3_600_006
             }

      assert parse!(~S|foo{bar="baz"}[10m:]|) == %{sq | step_ms: nil}

      assert parse!(~S|foo{bar="baz"}[10m:6s] offset 1m @ 123|) == %{
               sq
               | offset_ms: 60_000,
                 at: {:ms, 123_000}
             }

      assert parse!(~S|foo{bar="baz"}[10m:6s] @ start()|) == %{sq | at: :start}

      assert parse!("some_metric @ 123 offset 1m [10m:5s]") ==
               %{
                 type: :subquery,
                 expr: vs("some_metric", [], at: {:ms, 123_000}, offset: 60_000),
                 range_ms: 600_000,
                 step_ms: 5_000,
                 offset_ms: 0,
                 at: nil
               }

      assert %{
               type: :subquery,
               expr: %{
                 type: :call,
                 func: "min_over_time",
                 args: [%{type: :subquery, step_ms: nil, offset_ms: 240_000}]
               }
             } = parse!(~S|min_over_time(rate(foo{bar="baz"}[2s])[5m:] offset 4m)[4m:3s]|)

      assert %{type: :subquery, expr: %{type: :paren}} = parse!(~S|(foo + bar{nm="val"})[5m:]|)
    end

    test "errors" do
      assert error!("test[5d] OFFSET 10s [10m:5s]") ==
               %{
                 position: 0,
                 message: "subquery is only allowed on instant vector, got matrix instead"
               }

      assert error!(~S|(foo + bar{nm="val"})[5m:][10m:5s]|).message ==
               "subquery is only allowed on instant vector, got matrix instead"

      assert error!("foo[5m:1]").message ==
               ~S|unexpected number "1" in subquery selector, expected duration or "]"|

      assert error!("foo[5m 1m]").message ==
               ~S|unexpected duration "1m" in subquery or range, expected ":" or "]"|

      assert error!("foo[5m:1m 1m]").message ==
               ~S|unexpected duration "1m" in subquery selector, expected "]"|

      assert error!("foo[5m::1m]").message == "unexpected colon ':'"
      assert error!("foo[5m:x]").message == "unexpected character: 'x', expected ':'"
    end
  end

  describe "operators" do
    test "precedence and associativity" do
      one = {:number, 1.0}
      two = {:number, 2.0}
      three = {:number, 3.0}
      assert parse!("1 + 2 * 3") == bin(:add, one, bin(:mul, two, three))
      assert parse!("1 * 2 + 3") == bin(:add, bin(:mul, one, two), three)
      assert parse!("1 - 2 - 3") == bin(:sub, bin(:sub, one, two), three)
      assert parse!("2 ^ 3 ^ 2") == bin(:pow, two, bin(:pow, three, two))
      assert parse!("1 % 2 atan2 3") == bin(:atan2, bin(:mod, one, two), three)
      assert parse!("-1^2") == %{type: :unary, op: :neg, expr: bin(:pow, one, two)}
      assert parse!("-1^-2") == %{type: :unary, op: :neg, expr: bin(:pow, one, {:number, -2.0})}
      assert parse!("-1*2") == bin(:mul, {:number, -1.0}, two)
      assert parse!("+1 + -2 * 1") == bin(:add, one, bin(:mul, {:number, -2.0}, one))

      assert parse!("1 < bool 2 - 1 * 2") ==
               bin(:lt, one, bin(:sub, two, bin(:mul, one, two)), bool: true)

      foo = vs("foo")
      bar = vs("bar")
      bla = vs("bla")
      blub = vs("blub")

      assert parse!("foo + bar or bla and blub") ==
               bin(
                 :or,
                 bin(:add, foo, bar, matching: one_to_one()),
                 bin(:and, bla, blub, matching: many_to_many()),
                 matching: many_to_many()
               )

      assert parse!("foo and bar unless bla or blub") ==
               bin(
                 :or,
                 bin(:unless, bin(:and, foo, bar, matching: many_to_many()), bla,
                   matching: many_to_many()
                 ),
                 blub,
                 matching: many_to_many()
               )

      assert parse!("-foo offset 5m") == %{
               type: :unary,
               op: :neg,
               expr: vs("foo", [], offset: 300_000)
             }

      assert parse!("-metric @ 100") == %{
               type: :unary,
               op: :neg,
               expr: vs("metric", [], at: {:ms, 100_000})
             }

      assert parse!("+foo") == %{type: :unary, op: :pos, expr: foo}
      assert parse!("foo # comment\n + bar") == bin(:add, foo, bar, matching: one_to_one())
    end

    test "all binary operators, bool, and case-insensitive keywords" do
      for {text, op} <- [
            {"+", :add},
            {"-", :sub},
            {"*", :mul},
            {"/", :div},
            {"%", :mod},
            {"^", :pow},
            {"atan2", :atan2},
            {"==", :eq},
            {"!=", :ne},
            {">", :gt},
            {"<", :lt},
            {">=", :ge},
            {"<=", :le}
          ] do
        assert %{op: ^op, matching: %{card: :one_to_one}} = parse!("foo #{text} bar")
        assert %{op: ^op, matching: nil} = parse!("foo #{text} 1")
      end

      assert %{op: :eq, bool: true, matching: nil} = parse!("1 == bool 1")
      assert %{op: :ge, bool: true, matching: nil} = parse!("foo >= BOOL 1")
      assert %{op: :and, matching: %{card: :many_to_many}} = parse!("foo AND bar")
      assert %{op: :unless, matching: %{card: :many_to_many}} = parse!("foo Unless bar")
      assert %{op: :atan2} = parse!("foo ATAN2 bar")
    end

    test "vector matching" do
      foo = vs("foo")
      bar = vs("bar")

      assert parse!("foo * on(test,blub) bar") ==
               bin(:mul, foo, bar,
                 matching: %{card: :one_to_one, on: true, labels: ["test", "blub"], include: []}
               )

      assert parse!("foo * on(test,blub) group_left bar") ==
               bin(:mul, foo, bar,
                 matching: %{card: :many_to_one, on: true, labels: ["test", "blub"], include: []}
               )

      assert parse!("foo and on() bar") ==
               bin(:and, foo, bar,
                 matching: %{card: :many_to_many, on: true, labels: [], include: []}
               )

      assert parse!("foo and ignoring(test,blub) bar") ==
               bin(:and, foo, bar,
                 matching: %{
                   card: :many_to_many,
                   on: false,
                   labels: ["test", "blub"],
                   include: []
                 }
               )

      assert parse!("foo / ignoring(test,blub) group_left(blub) bar") ==
               bin(:div, foo, bar,
                 matching: %{
                   card: :many_to_one,
                   on: false,
                   labels: ["test", "blub"],
                   include: ["blub"]
                 }
               )

      assert parse!("foo - on(test,blub) group_right(bar,foo,) bar") ==
               bin(:sub, foo, bar,
                 matching: %{
                   card: :one_to_many,
                   on: true,
                   labels: ["test", "blub"],
                   include: ["bar", "foo"]
                 }
               )

      assert parse!("foo > bool on(a) group_left (b) bar") ==
               bin(:gt, foo, bar,
                 bool: true,
                 matching: %{card: :many_to_one, on: true, labels: ["a"], include: ["b"]}
               )

      assert parse!("foo unless on(start) bar") ==
               bin(:unless, foo, bar,
                 matching: %{card: :many_to_many, on: true, labels: ["start"], include: []}
               )

      assert %{
               op: :add,
               rhs: %{op: :div, matching: %{card: :one_to_many, include: ["test"]}},
               matching: %{on: true, labels: ["foo"]}
             } = parse!("bar + on(foo) bla / on(baz, buz) group_right(test) blub")

      # Vector matching with an empty label list is dropped when a side is a scalar.
      assert parse!("foo + on() 1") == bin(:add, foo, {:number, 1.0})
    end

    test "errors" do
      for {q, pos, msg} <- [
            {"1 == 1", 2, "comparisons between scalars must use BOOL modifier"},
            {"1 and 1", 0, ~S|set operator "and" not allowed in binary scalar expression|},
            {"1 or 1", 0, ~S|set operator "or" not allowed in binary scalar expression|},
            {"1 unless 1", 0, ~S|set operator "unless" not allowed in binary scalar expression|},
            {"foo and 1", 0, ~S|set operator "and" not allowed in binary scalar expression|},
            {"1 or foo", 0, ~S|set operator "or" not allowed in binary scalar expression|},
            {"1 or on(bar) foo", 0, "vector matching only allowed between instant vectors"},
            {"foo == on(bar) 10", 0, "vector matching only allowed between instant vectors"},
            {"foo + group_left(baz) bar", 6, "unexpected <group_left>"},
            {"foo and on(bar) group_left(baz) bar", 0,
             ~S|no grouping allowed for "and" operation|},
            {"foo or on(bar) group_right(baz) bar", 0,
             ~S|no grouping allowed for "or" operation|},
            {"foo UNLESS on(bar) group_left(baz) bar", 0,
             ~S|no grouping allowed for "unless" operation|},
            {~S|http_requests{group="production"} + on(instance) group_left(job,instance) cpu_count{type="smp"}|,
             34, ~S|label "instance" must not occur in ON and GROUP clause at once|},
            {"foo + bool bar", 4, "bool modifier can only be used on comparison operators"},
            {"foo + bool 10", 4, "bool modifier can only be used on comparison operators"},
            {"foo and bool 10", 4, "bool modifier can only be used on comparison operators"},
            {"a - on(b) ignoring(c) d", 10, "unexpected <ignoring>"},
            {"foo[5m] + 1", 0,
             "binary expression must contain only scalar and instant vector types"},
            {~S|1 + "a"|, 4,
             "binary expression must contain only scalar and instant vector types"},
            {~S|-"string"|, 0,
             ~S|unary expression only allowed on expressions of type scalar or instant vector, got "string"|},
            {"-test[5m]", 0,
             ~S|unary expression only allowed on expressions of type scalar or instant vector, got "range vector"|},
            {"*1", 0, "unexpected <op:*>"},
            {"*test", 0, "unexpected <op:*>"},
            {"1+", 2, "unexpected end of input"},
            {"1 /", 3, "unexpected end of input"},
            {"-=", 1, ~S|unexpected "="|},
            {"++-++-+-+-<", 10, "unexpected <op:<>"},
            {"e-+=/(0)", 3, ~S|unexpected "="|},
            {"1 !~ 1", 2, "unexpected character after '!': '~'"},
            {"1 =~ 1", 2, "unexpected character after '=': '~'"},
            {"foo ! bar", 4, "unexpected character after '!': ' '"}
          ] do
        assert error!(q) == %{position: pos, message: msg}, q
      end
    end
  end

  describe "aggregations" do
    test "by/without before or after, parameters, keywords as labels" do
      some = vs("some_metric")
      agg = %{type: :aggregate, op: :sum, param: nil, expr: some, grouping: :by, labels: ["foo"]}
      assert parse!("sum by (foo)(some_metric)") == agg
      assert parse!("sum(some_metric) by (foo)") == agg
      assert parse!("SUM BY (foo) (some_metric)") == agg
      assert parse!("sum without (foo) (some_metric)") == %{agg | grouping: :without}
      assert parse!("sum (some_metric) without (foo)") == %{agg | grouping: :without}
      assert parse!("sum(some_metric)") == %{agg | grouping: nil, labels: []}
      assert parse!("sum by ()(some_metric)") == %{agg | labels: []}
      assert parse!("sum by (foo,bar,)(some_metric)") == %{agg | labels: ["foo", "bar"]}

      for op <- ~w(avg count min max group stddev stdvar)a do
        assert parse!("#{op}(some_metric)") == %{agg | op: op, grouping: nil, labels: []}
      end

      assert parse!("topk(5, some_metric)") == %{
               agg
               | op: :topk,
                 param: {:number, 5.0},
                 grouping: nil,
                 labels: []
             }

      assert parse!("bottomk by (foo) (scalar(x), some_metric)").param.func == "scalar"
      assert parse!("quantile(0.9, some_metric) without (a)").param == {:number, 0.9}
      assert parse!(~S|count_values("value", some_metric)|).param == {:string, "value"}

      assert parse!(
               "sum without(and, by, avg, count, alert, annotations, on, bool, offset, start, end, atan2, group_left)(some_metric)"
             ).labels ==
               ~w(and by avg count alert annotations on bool offset start end atan2 group_left)

      assert parse!("sum(sum)") == %{agg | expr: vs("sum"), grouping: nil, labels: []}
    end

    test "errors" do
      for {q, pos, msg} <- [
            {"sum without(==)(some_metric)", 12,
             "unexpected <op:==> in grouping opts, expected label"},
            {"sum without(,)(some_metric)", 12,
             ~S|unexpected "," in grouping opts, expected label|},
            {"sum without(foo,,)(some_metric)", 16,
             ~S|unexpected "," in grouping opts, expected label|},
            {"sum by (a b) (x)", 10,
             ~S|unexpected identifier "b" in grouping opts, expected "," or ")"|},
            {"sum by (a:b) (x)", 8,
             ~S|unexpected metric identifier "a:b" in grouping opts, expected label|},
            {"sum some_metric by (test)", 4,
             ~S|unexpected identifier "some_metric" in aggregation|},
            {"sum (some_metric) by test", 21,
             ~S|unexpected identifier "test" in grouping opts, expected "("|},
            {"sum by (foo) bar", 13, ~S|unexpected identifier "bar" in aggregation|},
            {"sum () by (test)", 0, "no arguments for aggregate expression provided"},
            {"MIN keep_common (some_metric)", 4,
             ~S|unexpected identifier "keep_common" in aggregation|},
            {"MIN (some_metric) keep_common", 18, ~S|unexpected identifier "keep_common"|},
            {"sum (some_metric) without (test) by (test)", 33, "unexpected <by>"},
            {"sum without (test) (some_metric) by (test)", 33, "unexpected <by>"},
            {"topk(some_metric)", 0,
             "wrong number of arguments for aggregate expression provided, expected 2, got 1"},
            {"sum(a, b)", 0,
             "wrong number of arguments for aggregate expression provided, expected 1, got 2"},
            {"topk(some_metric,)", 16, "trailing commas not allowed in function call args"},
            {"topk(some_metric, other_metric)", 5,
             "expected type scalar in aggregation parameter, got instant vector"},
            {"count_values(5, other_metric)", 13,
             "expected type string in aggregation parameter, got scalar"},
            {"sum(rate(x[5m])[5m])", 15, "ranges only allowed for vector selectors"},
            {"sum(x[5m])", 4,
             "expected type instant vector in aggregation expression, got range vector"}
          ] do
        assert error!(q) == %{position: pos, message: msg}, q
      end
    end
  end

  describe "function calls" do
    test "calls and arity" do
      assert parse!("time()") == %{type: :call, func: "time", args: []}

      assert parse!(~S|floor(some_metric{foo!="bar"})|) == %{
               type: :call,
               func: "floor",
               args: [vs("some_metric", [{"foo", :ne, "bar"}])]
             }

      assert parse!("rate(some_metric[5m])") ==
               %{
                 type: :call,
                 func: "rate",
                 args: [%{type: :matrix_selector, vector: vs("some_metric"), range_ms: 300_000}]
               }

      assert parse!("round(some_metric, 5)").args |> length() == 2
      assert parse!("hour()").args == []
      assert parse!(~S|label_join(x, "dst", "-", "a", "b", "c")|).args |> length() == 6
      assert parse!(~S|label_join(x, "dst", "-")|).args |> length() == 3
      assert parse!(~S|sort_by_label(x, "a", "b")|).func == "sort_by_label"

      assert parse!("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))").func ==
               "histogram_quantile"

      assert parse!("absent_over_time(nonexistent[1m:])").func == "absent_over_time"
    end

    test "errors" do
      for {q, pos, msg} <- [
            {"floor()", 0, ~S|expected 1 argument(s) in call to "floor", got 0|},
            {"floor(some_metric, other_metric)", 0,
             ~S|expected 1 argument(s) in call to "floor", got 2|},
            {"floor(1)", 6,
             ~S|expected type instant vector in call to function "floor", got scalar|},
            {"hour(some_metric, some_metric, some_metric)", 0,
             ~S|expected at most 1 argument(s) in call to "hour", got 3|},
            {"time(some_metric)", 0, ~S|expected 0 argument(s) in call to "time", got 1|},
            {~S|label_join(x, "a")|, 0,
             ~S|expected at least 3 argument(s) in call to "label_join", got 2|},
            {~S|label_join(x, "a", "b", 1)|, 24,
             ~S|expected type string in call to function "label_join", got scalar|},
            {"non_existent_function_far_bar()", 0,
             ~S|unknown function with name "non_existent_function_far_bar"|},
            {"RATE(x[5m])", 0, ~S|unknown function with name "RATE"|},
            {"rate(some_metric)", 5,
             ~S|expected type range vector in call to function "rate", got instant vector|},
            {"rate(avg)", 5,
             ~S|expected type range vector in call to function "rate", got instant vector|},
            {"a>b()", 2, ~S|unknown function with name "b"|},
            {"rate(x[5m],)", 10, "trailing commas not allowed in function call args"},
            {"rate(x[5m] y)", 11, ~S|unexpected identifier "y"|},
            {"start()", 5, ~S|unexpected "("|},
            {"end()", 3, ~S|unexpected "("|}
          ] do
        assert error!(q) == %{position: pos, message: msg}, q
      end
    end

    test "experimental functions can be refused" do
      assert {:ok, _} = Parser.parse(~S|sort_by_label(x, "a")|)

      assert Parser.parse(~S|sort_by_label(x, "a")|, experimental_functions: false) ==
               {:error, %{position: 0, message: ~S|function "sort_by_label" is not enabled|}}

      assert {:ok, _} = Parser.parse("rate(x[5m])", experimental_functions: false)
    end
  end

  describe "lexer errors and general errors" do
    test "Prometheus messages" do
      for {q, pos, msg} <- [
            {"", 0, "no expression found in input"},
            {"# just a comment\n\n", 0, "no expression found in input"},
            {".", 0, "unexpected character: '.'"},
            {"2.5.", 3, "unexpected character: '.'"},
            {"(1))", 3, "unexpected right parenthesis ')'"},
            {"((1)", 4, "unclosed left parenthesis"},
            {"(", 1, "unclosed left parenthesis"},
            {"sum(foo", 7, "unclosed left parenthesis"},
            {"foo é", 4, "unexpected character: 'é'"},
            {"foo \x01", 4, "unexpected character: '\\x01'"},
            {"foo{a=\"b\"} )", 11, "unexpected right parenthesis ')'"},
            {"sum(1 2", 6, ~S|unexpected number "2"|},
            {~S|foo "a very long string"|, 4, ~S|unexpected string "\"a very lo"...|}
          ] do
        assert error!(q) == %{position: pos, message: msg}, q
      end
    end

    test "an early syntax error wins over a later lexer error" do
      assert error!("foo bar (") == %{position: 4, message: ~S|unexpected identifier "bar"|}
    end

    test "format_error renders line and column like Prometheus" do
      q = "foo +\n  *"
      assert Parser.format_error(q, error!(q)) == "2:3: parse error: unexpected <op:*>"

      assert Parser.format_error("1 == 1", error!("1 == 1")) ==
               "1:3: parse error: comparisons between scalars must use BOOL modifier"
    end

    test "huge inputs are handled quickly" do
      q = "(" <> String.duplicate("-{}-1", 10_000) <> ")" <> String.duplicate("[1m:]", 1000)

      assert error!(q) == %{
               position: 2,
               message: "vector selector must contain at least one non-empty matcher"
             }

      assert {:ok, _} =
               Parser.parse(String.duplicate("(", 3000) <> "1" <> String.duplicate(")", 3000))

      assert {:ok, _} = Parser.parse(Enum.map_join(1..5000, " + ", &"m#{&1}"))
    end
  end

  describe "AST helpers and function table" do
    test "type_of" do
      for {q, t} <- [
            {"1", :scalar},
            {~S|"a"|, :string},
            {"foo", :vector},
            {"foo[5m]", :matrix},
            {"foo[5m:]", :matrix},
            {"rate(foo[5m])", :vector},
            {"time()", :scalar},
            {"scalar(foo)", :scalar},
            {"sum(foo)", :vector},
            {"1 + 2", :scalar},
            {"foo + 2", :vector},
            {"-(1)", :scalar},
            {"(foo)", :vector}
          ] do
        assert AST.type_of(parse!(q)) == t, q
      end
    end

    test "collect finds nested selectors" do
      ast = parse!("sum(rate(a[5m])) / on(x) group_left b")

      assert [%{name: "a"}, %{name: "b"}] =
               AST.collect(ast, &match?(%{type: :vector_selector}, &1))
    end

    test "every Prometheus 2.53 function is in the table, flagged as required" do
      names =
        ~w(abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
        clamp_max clamp_min cos cosh count_over_time days_in_month day_of_month day_of_week day_of_year deg
        delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join
        label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
        predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
        sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year
        sort_by_label sort_by_label_desc histogram_avg histogram_count histogram_sum histogram_fraction
        histogram_stddev histogram_stdvar)

      assert Enum.sort(names) == Functions.names()

      experimental = for {n, %{experimental: true}} <- Functions.all(), do: n
      assert Enum.sort(experimental) == ~w(mad_over_time sort_by_label sort_by_label_desc)
      native = for {n, %{native_histogram: true}} <- Functions.all(), do: n

      assert Enum.sort(native) ==
               ~w(histogram_avg histogram_count histogram_fraction histogram_stddev histogram_stdvar histogram_sum)

      {:ok, round} = Functions.get("round")
      assert {Functions.min_args(round), Functions.max_args(round)} == {1, 2}
      {:ok, join} = Functions.get("label_join")
      assert {Functions.min_args(join), Functions.max_args(join)} == {3, :infinity}
      assert Functions.arg_type(join, 7) == :string
    end
  end

  describe "conformance files" do
    test "every eval query (except native histograms) parses" do
      if File.dir?(@conformance_dir) do
        queries =
          for file <- Path.wildcard(Path.join(@conformance_dir, "*.test")),
              Path.basename(file) != "native_histograms.test",
              {line, n} <- file |> File.read!() |> String.split("\n") |> Enum.with_index(1),
              line = String.trim(line),
              Regex.match?(~r/^eval/i, line) do
            [cmd | _] = String.split(line, ~r/\s+/, parts: 2)

            query =
              case Regex.run(~r/^\S+\s+instant\s+at\s+\S+\s+(.*)$/i, line) do
                [_, q] ->
                  q

                nil ->
                  Regex.run(~r/^\S+\s+range\s+from\s+\S+\s+to\s+\S+\s+step\s+\S+\s+(.*)$/i, line)
                  |> List.last()
              end

            {"#{Path.basename(file)}:#{n}", String.downcase(cmd), query}
          end

        assert length(queries) > 500

        failures =
          for {where, cmd, q} <- queries,
              cmd != "eval_fail",
              {:error, e} <- [Parser.parse(q)],
              do: "#{where}: #{q}\n    #{Parser.format_error(q, e)}"

        assert failures == []
      else
        IO.puts("skipping conformance parse test: #{@conformance_dir} not found")
      end
    end
  end

  describe "fuzzing" do
    @fragments ~w|( ) { } [ ] , : @ = == != =~ !~ + - * / % ^ < > <= >= " ' ` \\ # 5m 1h30m 1 0x1f 1e3 .5 Inf NaN
                 foo bar:baz sum by without on ignoring group_left group_right bool offset start end and or
                 unless atan2 rate topk count_values quantile label_replace x __name__ job| ++
                 [" ", "\n", "é", <<255>>, ~S|"a"|, "'b'", "`c`", "{a=\"b\"}", "[5m:]"]

    test "random input never crashes the parser" do
      :rand.seed(:exsss, {7, 11, 13})

      seeds = [
        ~S|sum by (job) (rate(http_requests_total{code=~"5..", job!="x"}[5m] offset 1m))|,
        "histogram_quantile(0.9, sum without (instance) (rate(x_bucket[5m:1m] @ end())))",
        ~S|foo * on(a) group_left(b) -bar{c!~"d"} > bool 1 or label_replace(x, "a", "$1", "b", "(.*)")|
      ]

      for i <- 1..20_000 do
        q =
          case rem(i, 3) do
            0 ->
              for _ <- 1..:rand.uniform(12),
                  into: "",
                  do: Enum.random(@fragments) <> Enum.random(["", " "])

            1 ->
              for _ <- 1..:rand.uniform(30), into: <<>>, do: <<:rand.uniform(256) - 1>>

            2 ->
              s = Enum.random(seeds)
              p = :rand.uniform(byte_size(s)) - 1
              k = min(p + :rand.uniform(4), byte_size(s))

              binary_part(s, 0, p) <>
                Enum.random(@fragments) <> binary_part(s, k, byte_size(s) - k)
          end

        case Parser.parse(q) do
          {:ok, _} ->
            :ok

          {:error, %{position: pos, message: msg}} ->
            assert is_integer(pos) and pos >= 0 and pos <= byte_size(q), inspect(q)
            assert is_binary(msg) and not String.starts_with?(msg, "internal"), inspect({q, msg})
        end
      end
    end
  end
end
