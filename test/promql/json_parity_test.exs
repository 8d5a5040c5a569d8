defmodule TimelessMetrics.PromQL.JSONParityTest do
  # The engine writes the HTTP body itself (PromQL.instant_json/range_json); it must
  # be byte for byte what the Elixir encoder (HTTP.PromQL.encode/1) writes for the
  # term results of PromQL.instant/range, over varied data: random values from
  # 1e-320 to 1e308 with NaN, +-Inf and zeros, millisecond timestamps, labels that
  # need escaping, empty results, scalars, strings, vectors and matrices.
  use ExUnit.Case, async: true

  import Bitwise

  alias TimelessMetrics, as: TM
  alias TimelessMetrics.HTTP.PromQL, as: Encoder
  alias TimelessMetrics.PromQL
  alias TimelessMetrics.TestStore

  @seeds [1, 2, 3]
  @points 40
  @step 7_001

  setup do
    %{store: TestStore.start!()}
  end

  # A random sample value: any magnitude, either sign, whole numbers, specials.
  defp value do
    case :rand.uniform(10) do
      1 -> Enum.random([:nan, :infinity, :neg_infinity, 0.0])
      2 -> (:rand.uniform(2_000_001) - 1_000_001) * 1.0
      3 -> :rand.uniform() * :math.pow(10, :rand.uniform(40) - 20)
      4 -> -:rand.uniform() * :math.pow(10, :rand.uniform(600) - 300)
      # dyadic values with few fraction bits, where shortest digits can tie
      6 -> (:rand.uniform(1 <<< 53) + 0.0) * :math.pow(2, :rand.uniform(24) - 12)
      5 -> Enum.random([1.0e-6, 9.99999e-7, 1.0e21, 9.999999999999999e20, 1.0e15, 123_456_789_012_345_678.0, 5.0e-324, 0.1])
      _ -> :rand.uniform() * :math.pow(10, :rand.uniform(10) - 3)
    end
  end

  defp load(store, seed) do
    :rand.seed(:exsss, {seed, 17, 29})
    names = ["plain", "a<b>&c", "quote\"back\\slash", "line\nbreak\ttab", "uni\u2028\u2029é", ""]

    entries =
      for s <- 0..7, i <- 0..(@points - 1), :rand.uniform(5) > 1 do
        labels = %{"series" => Integer.to_string(s), "tag" => Enum.at(names, rem(s, length(names)))}
        {"metric", labels, value(), 1_000_000 + i * @step + :rand.uniform(999)}
      end

    :ok = TM.write_batch(store, entries, unit: :millisecond)
  end

  defp same!(store, seed, kind, query, args) do
    {terms, json} =
      case kind do
        :instant ->
          [t] = args
          {PromQL.instant(store, query, t), PromQL.instant_json(store, query, t)}

        :range ->
          [a, b, step] = args
          {PromQL.range(store, query, a, b, step), PromQL.range_json(store, query, a, b, step)}
      end

    assert {:ok, result} = terms, "#{kind} #{query}: #{inspect(terms)}"
    assert {:ok, body} = json
    expected = result |> Encoder.encode() |> IO.iodata_to_binary()
    actual = IO.iodata_to_binary(body)
    if actual != expected,
      do: flunk("seed #{seed}, #{kind} #{inspect(query)} #{inspect(args)}: #{first_difference(actual, expected)}")
    result
  end

  defp first_difference(a, b) do
    at = Enum.find(0..max(byte_size(a), byte_size(b)), &(:binary.part(a, 0, min(&1, byte_size(a))) != :binary.part(b, 0, min(&1, byte_size(b)))))
    from = max(at - 60, 0)
    "engine #{inspect(slice_at(a, from, 100))} vs Elixir #{inspect(slice_at(b, from, 100))}"
  end

  defp slice_at(bin, from, len), do: :binary.part(bin, min(from, byte_size(bin)), min(len, max(byte_size(bin) - from, 0)))

  @instant_queries [
    "metric",
    "metric / 3",
    "metric * 1e-9",
    "-metric",
    "metric > 1e300",
    "sum by (tag) (metric)",
    "metric[1m]",
    "rate(metric[1m])",
    "scalar(sum(metric))",
    "time()",
    "1e-7",
    "-Inf",
    "NaN",
    ~s("a<b>\\n"),
    "nothing_here",
    ~s|label_replace(metric, "dst", "$1<&>", "series", "(.*)")|
  ]

  @range_queries [
    "metric",
    "metric / 7",
    "avg_over_time(metric[30s])",
    "sum(metric)",
    "1e-7",
    "time() * 1e-3",
    "nothing_here",
    "metric > 0"
  ]

  test "instant queries: engine JSON equals the Elixir encoder's", %{store: store} do
    for seed <- @seeds do
      load(store, seed)

      for query <- @instant_queries, t <- [1_000_000 + 20 * @step + 123, 1_000_000 + 39 * @step, 5_000] do
        same!(store, seed, :instant, query, [t])
      end
    end
  end

  test "range queries: engine JSON equals the Elixir encoder's", %{store: store} do
    for seed <- @seeds do
      load(store, seed)

      for query <- @range_queries, {a, b, step} <- [{1_000_000, 1_000_000 + 40 * @step, 5_250}, {999_001, 1_300_000, 60_000}, {0, 10, 1}] do
        same!(store, seed, :range, query, [a, b, step])
      end
    end
  end

  test "the data exercises every value form", %{store: store} do
    load(store, 1)
    result = same!(store, 1, :range, "metric", [1_000_000, 1_000_000 + 40 * @step, 1_000])
    body = result |> Encoder.encode() |> IO.iodata_to_binary()

    for form <- [~s("NaN"), ~s("+Inf"), ~s("-Inf"), "e-", "e+", ~s(\\u003c), ~s(\\u2028), ~s(\\n), ~s(.), ~s("0")] do
      assert String.contains?(body, form), "no #{form} in the test data"
    end
  end

  test "a parsed AST is accepted, anything else is a bad_data error", %{store: store} do
    load(store, 2)
    {:ok, ast} = TimelessMetrics.PromQL.Parser.parse("sum(metric)")
    assert {:ok, a} = PromQL.instant_json(store, ast, 1_100_000)
    assert {:ok, b} = PromQL.instant_json(store, "sum(metric)", 1_100_000)
    assert IO.iodata_to_binary(a) == IO.iodata_to_binary(b)
    assert {:error, {:bad_data, "query must be a string" <> _}} = PromQL.instant_json(store, 42, 0)
    assert {:error, {:bad_data, "1:5: parse error" <> _}} = PromQL.range_json(store, "sum(", 0, 10, 1)
  end
end
