defmodule TimelessMetrics.HTTP.JSONFormatTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics.HTTP.JSON

  test "the fast paths of format_value/1 agree with the general formatting" do
    :rand.seed(:exsss, {1, 2, 3})

    floats =
      for _ <- 1..20_000 do
        mag = :math.pow(10, :rand.uniform(40) - 20)
        v = (:rand.uniform() - 0.5) * mag

        case :rand.uniform(4) do
          1 -> Float.round(v, 1)
          2 -> trunc(v) * 1.0
          _ -> v
        end
      end

    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 100.0, 1.0e15, 1.0e15 - 1, 999_999_999_999_999.0, 1.0e21, 1.0e-7, 0.1, 123.456]

    for v <- specials ++ floats do
      assert JSON.format_value(v) == JSON.format_general(v), "#{inspect(v)}"
    end
  end

  test "a few values as Prometheus writes them" do
    assert JSON.format_value(1.0) == "1"
    assert JSON.format_value(-2.5) == "-2.5"
    assert JSON.format_value(0.0001) == "0.0001"
    assert JSON.format_value(1.0e20) == "100000000000000000000"
    assert JSON.format_value(-0.0) == "-0"
  end
end
