defmodule TimelessMetrics.PromQL.Functions do
  @moduledoc """
  The PromQL function table of Prometheus v2.53: argument types, return type
  and arity of every function the parser accepts.

  Types are `:vector` (instant vector), `:matrix` (range vector), `:scalar`
  and `:string`.

  `variadic` follows Prometheus:

    * `0` - exactly `length(arg_types)` arguments;
    * `n > 0` - the last argument type is optional and may be given up to
      `n` times, so between `length(arg_types) - 1` and
      `length(arg_types) - 1 + n` arguments (`round(v)`, `round(v, 5)`,
      `hour()`, `hour(v)`);
    * `-1` - the last argument type may repeat without limit, at least
      `length(arg_types) - 1` arguments (`label_join`, `sort_by_label`).

  Two flags tell the evaluator what it may refuse:

    * `experimental: true` - behind `--enable-feature=promql-experimental-functions`
      upstream (`sort_by_label`, `sort_by_label_desc`, `mad_over_time`).
      The parser accepts them unless called with `experimental_functions: false`.
    * `native_histogram: true` - only meaningful on native-histogram samples
      (`histogram_avg`, `histogram_count`, `histogram_sum`,
      `histogram_fraction`, `histogram_stddev`, `histogram_stdvar`).
      The parser accepts them; an engine without native histograms should
      refuse them (or return empty results, as Prometheus does for float
      samples).
  """

  @type value_type :: :vector | :matrix | :scalar | :string

  @type t :: %{
          name: String.t(),
          arg_types: [value_type()],
          variadic: integer(),
          return_type: value_type(),
          experimental: boolean(),
          native_histogram: boolean()
        }

  v = :vector
  m = :matrix
  s = :scalar
  str = :string

  # {name, arg_types, variadic, return_type, flags}
  @table [
    {"abs", [v], 0, v, []},
    {"absent", [v], 0, v, []},
    {"absent_over_time", [m], 0, v, []},
    {"acos", [v], 0, v, []},
    {"acosh", [v], 0, v, []},
    {"asin", [v], 0, v, []},
    {"asinh", [v], 0, v, []},
    {"atan", [v], 0, v, []},
    {"atanh", [v], 0, v, []},
    {"avg_over_time", [m], 0, v, []},
    {"ceil", [v], 0, v, []},
    {"changes", [m], 0, v, []},
    {"clamp", [v, s, s], 0, v, []},
    {"clamp_max", [v, s], 0, v, []},
    {"clamp_min", [v, s], 0, v, []},
    {"cos", [v], 0, v, []},
    {"cosh", [v], 0, v, []},
    {"count_over_time", [m], 0, v, []},
    {"days_in_month", [v], 1, v, []},
    {"day_of_month", [v], 1, v, []},
    {"day_of_week", [v], 1, v, []},
    {"day_of_year", [v], 1, v, []},
    {"deg", [v], 0, v, []},
    {"delta", [m], 0, v, []},
    {"deriv", [m], 0, v, []},
    {"exp", [v], 0, v, []},
    {"floor", [v], 0, v, []},
    {"histogram_avg", [v], 0, v, [:native_histogram]},
    {"histogram_count", [v], 0, v, [:native_histogram]},
    {"histogram_fraction", [s, s, v], 0, v, [:native_histogram]},
    {"histogram_quantile", [s, v], 0, v, []},
    {"histogram_stddev", [v], 0, v, [:native_histogram]},
    {"histogram_stdvar", [v], 0, v, [:native_histogram]},
    {"histogram_sum", [v], 0, v, [:native_histogram]},
    {"holt_winters", [m, s, s], 0, v, []},
    {"hour", [v], 1, v, []},
    {"idelta", [m], 0, v, []},
    {"increase", [m], 0, v, []},
    {"irate", [m], 0, v, []},
    {"label_join", [v, str, str, str], -1, v, []},
    {"label_replace", [v, str, str, str, str], 0, v, []},
    {"last_over_time", [m], 0, v, []},
    {"ln", [v], 0, v, []},
    {"log10", [v], 0, v, []},
    {"log2", [v], 0, v, []},
    {"mad_over_time", [m], 0, v, [:experimental]},
    {"max_over_time", [m], 0, v, []},
    {"min_over_time", [m], 0, v, []},
    {"minute", [v], 1, v, []},
    {"month", [v], 1, v, []},
    {"pi", [], 0, s, []},
    {"predict_linear", [m, s], 0, v, []},
    {"present_over_time", [m], 0, v, []},
    {"quantile_over_time", [s, m], 0, v, []},
    {"rad", [v], 0, v, []},
    {"rate", [m], 0, v, []},
    {"resets", [m], 0, v, []},
    {"round", [v, s], 1, v, []},
    {"scalar", [v], 0, s, []},
    {"sgn", [v], 0, v, []},
    {"sin", [v], 0, v, []},
    {"sinh", [v], 0, v, []},
    {"sort", [v], 0, v, []},
    {"sort_by_label", [v, str], -1, v, [:experimental]},
    {"sort_by_label_desc", [v, str], -1, v, [:experimental]},
    {"sort_desc", [v], 0, v, []},
    {"sqrt", [v], 0, v, []},
    {"stddev_over_time", [m], 0, v, []},
    {"stdvar_over_time", [m], 0, v, []},
    {"sum_over_time", [m], 0, v, []},
    {"tan", [v], 0, v, []},
    {"tanh", [v], 0, v, []},
    {"time", [], 0, s, []},
    {"timestamp", [v], 0, v, []},
    {"vector", [s], 0, v, []},
    {"year", [v], 1, v, []}
  ]

  @functions Map.new(@table, fn {name, args, variadic, ret, flags} ->
               {name,
                %{
                  name: name,
                  arg_types: args,
                  variadic: variadic,
                  return_type: ret,
                  experimental: :experimental in flags,
                  native_histogram: :native_histogram in flags
                }}
             end)

  @doc "Looks a function up by its exact (case-sensitive) name."
  @spec get(String.t()) :: {:ok, t()} | :error
  def get(name) when is_binary(name), do: Map.fetch(@functions, name)

  @doc "All functions, keyed by name."
  @spec all() :: %{String.t() => t()}
  def all, do: @functions

  @doc "Sorted list of all function names."
  @spec names() :: [String.t()]
  def names, do: @functions |> Map.keys() |> Enum.sort()

  @doc "Minimum number of arguments a call must have."
  @spec min_args(t()) :: non_neg_integer()
  def min_args(%{arg_types: types, variadic: 0}), do: length(types)
  def min_args(%{arg_types: types}), do: length(types) - 1

  @doc "Maximum number of arguments, or `:infinity` for open-ended functions."
  @spec max_args(t()) :: non_neg_integer() | :infinity
  def max_args(%{arg_types: types, variadic: 0}), do: length(types)
  def max_args(%{variadic: n}) when n < 0, do: :infinity
  def max_args(%{arg_types: types, variadic: n}), do: length(types) - 1 + n

  @doc """
  The expected type of the argument at `index` (0-based), taking the
  repetition of the last type of variadic functions into account.
  """
  @spec arg_type(t(), non_neg_integer()) :: value_type() | nil
  def arg_type(%{arg_types: types, variadic: variadic}, index) do
    cond do
      index < length(types) -> Enum.at(types, index)
      variadic != 0 and types != [] -> List.last(types)
      true -> nil
    end
  end
end
