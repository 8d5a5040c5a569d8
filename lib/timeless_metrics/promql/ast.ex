defmodule TimelessMetrics.PromQL.AST do
  @moduledoc """
  The PromQL syntax tree produced by `TimelessMetrics.PromQL.Parser.parse/1`.

  Nodes are plain maps with a `:type` key, except the two literals, which
  are tagged tuples. No positions are kept: every position-dependent check
  is done by the parser. All durations and times are integer
  **milliseconds**.

  ## Literals

    * `{:number, value}` - a float, or `:inf`, `:neg_inf`, `:nan` (Erlang
      floats cannot hold those). Integers are converted (`1` is `{:number, 1.0}`).
      A sign written directly before a literal is folded in: `-1` is
      `{:number, -1.0}`, `-Inf` is `{:number, :neg_inf}`; `-(1)` is a
      `:unary` node.
    * `{:string, binary}` - escapes already decoded. `\\x..` and octal
      escapes produce raw bytes, so the value is not always valid UTF-8.

  ## Selectors

    * `:vector_selector` - `name` is the metric name written before the
      braces (`nil` for `{__name__="x"}` or `{job="a"}`). `matchers` is
      authoritative: `{label, op, value}` with `op` one of `:eq` (`=`),
      `:ne` (`!=`), `:re` (`=~`), `:nre` (`!~`), in source order; when
      `name` is set, `{"__name__", :eq, name}` is appended last. Regex
      values are **not** anchored here; Prometheus matches them fully
      (`^(?:re)$`) with RE2 syntax. `offset_ms` is `0` when no offset is
      given (it can be negative). `at` is `nil`, `{:ms, unix_ms}`, `:start`
      or `:end` (`@ start()` / `@ end()`).
    * `:matrix_selector` - `vector[range]`. Offset and `@` of a range
      selector are stored in its inner `vector` (as in Prometheus), whether
      they were written before (`x offset 1m[5m]` is a parse error) or
      after the brackets.
    * `:subquery` - `expr[range:step]`; `step_ms` is `nil` for `expr[5m:]`
      (use the default resolution). Offset and `@` are on the subquery node.

  ## Operators

    * `:binary` - `op` is one of `:add :sub :mul :div :mod :pow :atan2`
      (arithmetic), `:eq :ne :gt :lt :ge :le` (comparison) or
      `:and :or :unless` (set). `bool` is true only for comparisons
      written with `bool`. `matching` is `nil` unless **both** operands are
      instant vectors; then it is a map with `card` (`:one_to_one`,
      `:many_to_one` for `group_left`, `:one_to_many` for `group_right`,
      `:many_to_many` for set operators), `on` (`true` for `on(...)`,
      `false` for `ignoring(...)` or no clause), `labels` (the `on` /
      `ignoring` list) and `include` (the `group_left/right` list).
    * `:unary` - `op` is `:neg` or `:pos`; only on scalars and instant vectors.
    * `:paren` - kept so the evaluator and printers see the source shape.

  ## Calls and aggregations

    * `:call` - `func` is the function name (see
      `TimelessMetrics.PromQL.Functions` for its signature and flags),
      `args` the argument nodes, already type-checked.
    * `:aggregate` - `op` is one of `:sum :avg :count :min :max :group
      :stddev :stdvar :topk :bottomk :quantile :count_values`. `param` is
      the first argument of `topk`/`bottomk`/`quantile` (a scalar
      expression) and `count_values` (a string expression), else `nil`.
      `grouping` is `:by`, `:without` or `nil` (no clause); `labels` the
      clause's label list (`[]` when absent or empty).
  """

  @type value_type :: :vector | :matrix | :scalar | :string
  @type number_value :: float() | :inf | :neg_inf | :nan
  @type match_op :: :eq | :ne | :re | :nre
  @type matcher :: {label :: String.t(), match_op(), value :: binary()}
  @type at_modifier :: nil | {:ms, integer()} | :start | :end

  @type number_literal :: {:number, number_value()}
  @type string_literal :: {:string, binary()}

  @type vector_selector :: %{
          type: :vector_selector,
          name: String.t() | nil,
          matchers: [matcher()],
          offset_ms: integer(),
          at: at_modifier()
        }

  @type matrix_selector :: %{
          type: :matrix_selector,
          vector: vector_selector(),
          range_ms: pos_integer()
        }

  @type subquery :: %{
          type: :subquery,
          expr: t(),
          range_ms: pos_integer(),
          step_ms: pos_integer() | nil,
          offset_ms: integer(),
          at: at_modifier()
        }

  @type call :: %{type: :call, func: String.t(), args: [t()]}

  @type aggregate_op ::
          :sum
          | :avg
          | :count
          | :min
          | :max
          | :group
          | :stddev
          | :stdvar
          | :topk
          | :bottomk
          | :quantile
          | :count_values

  @type aggregate :: %{
          type: :aggregate,
          op: aggregate_op(),
          param: t() | nil,
          expr: t(),
          grouping: :by | :without | nil,
          labels: [String.t()]
        }

  @type binary_op ::
          :add
          | :sub
          | :mul
          | :div
          | :mod
          | :pow
          | :atan2
          | :eq
          | :ne
          | :gt
          | :lt
          | :ge
          | :le
          | :and
          | :or
          | :unless

  @type vector_matching :: %{
          card: :one_to_one | :many_to_one | :one_to_many | :many_to_many,
          on: boolean(),
          labels: [String.t()],
          include: [String.t()]
        }

  @type binary_expr :: %{
          type: :binary,
          op: binary_op(),
          lhs: t(),
          rhs: t(),
          bool: boolean(),
          matching: vector_matching() | nil
        }

  @type unary :: %{type: :unary, op: :neg | :pos, expr: t()}
  @type paren :: %{type: :paren, expr: t()}

  @type t ::
          number_literal()
          | string_literal()
          | vector_selector()
          | matrix_selector()
          | subquery()
          | call()
          | aggregate()
          | binary_expr()
          | unary()
          | paren()

  @comparison_ops [:eq, :ne, :gt, :lt, :ge, :le]
  @set_ops [:and, :or, :unless]

  @doc """
  The value type an expression evaluates to: `:vector` (instant vector),
  `:matrix` (range vector), `:scalar` or `:string`.
  """
  @spec type_of(t()) :: value_type()
  def type_of({:number, _}), do: :scalar
  def type_of({:string, _}), do: :string
  def type_of(%{type: :vector_selector}), do: :vector
  def type_of(%{type: :matrix_selector}), do: :matrix
  def type_of(%{type: :subquery}), do: :matrix
  def type_of(%{type: :aggregate}), do: :vector
  def type_of(%{type: :paren, expr: e}), do: type_of(e)
  def type_of(%{type: :unary, expr: e}), do: type_of(e)

  def type_of(%{type: :call, func: name}) do
    {:ok, f} = TimelessMetrics.PromQL.Functions.get(name)
    f.return_type
  end

  def type_of(%{type: :binary, lhs: l, rhs: r}) do
    if type_of(l) == :scalar and type_of(r) == :scalar, do: :scalar, else: :vector
  end

  @doc "Prometheus's documented name of a value type (as used in error messages)."
  @spec documented_type(value_type()) :: String.t()
  def documented_type(:vector), do: "instant vector"
  def documented_type(:matrix), do: "range vector"
  def documented_type(:scalar), do: "scalar"
  def documented_type(:string), do: "string"

  @doc "True for `== != > < >= <=`."
  @spec comparison_op?(atom()) :: boolean()
  def comparison_op?(op), do: op in @comparison_ops

  @doc "True for `and or unless`."
  @spec set_op?(atom()) :: boolean()
  def set_op?(op), do: op in @set_ops

  @doc """
  Calls `fun` on every node of the tree, parents before children,
  left to right, and returns the nodes for which it returned true.
  Useful for e.g. finding all selectors of a query.
  """
  @spec collect(t(), (t() -> boolean())) :: [t()]
  def collect(node, fun) do
    node |> walk([], fn n, acc -> if fun.(n), do: [n | acc], else: acc end) |> Enum.reverse()
  end

  defp walk(node, acc, fun) do
    acc = fun.(node, acc)
    Enum.reduce(children(node), acc, &walk(&1, &2, fun))
  end

  @doc "The direct child nodes of a node, in source order."
  @spec children(t()) :: [t()]
  def children({:number, _}), do: []
  def children({:string, _}), do: []
  def children(%{type: :vector_selector}), do: []
  def children(%{type: :matrix_selector, vector: v}), do: [v]
  def children(%{type: :subquery, expr: e}), do: [e]
  def children(%{type: :call, args: args}), do: args
  def children(%{type: :aggregate, param: nil, expr: e}), do: [e]
  def children(%{type: :aggregate, param: p, expr: e}), do: [p, e]
  def children(%{type: :binary, lhs: l, rhs: r}), do: [l, r]
  def children(%{type: :unary, expr: e}), do: [e]
  def children(%{type: :paren, expr: e}), do: [e]
end
