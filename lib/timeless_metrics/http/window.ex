defmodule TimelessMetrics.HTTP.Window do
  @moduledoc """
  One aggregate over all the raw points of a time window, for native instant
  queries (`/api/v1/query?metric=...&aggregate=max`). Same definitions as the
  engine's bucketed aggregates (`TimelessMetrics.query_aggregate/4`): stale markers
  are skipped, `min`/`max` prefer numbers over NaN, `increase` is counter-aware (a
  drop counts the new value), `rate` is `increase` per second of the window. IEEE
  specials (`:nan`, `:infinity`, `:neg_infinity`) propagate as in float arithmetic.

      iex> points = [{0, 1.0}, {10_000, 5.0}, {20_000, 2.0}]
      iex> TimelessMetrics.HTTP.Window.aggregate(points, :increase, 20_000)
      6.0
      iex> TimelessMetrics.HTTP.Window.aggregate(points, :rate, 20_000)
      0.3
      iex> TimelessMetrics.HTTP.Window.aggregate([{0, 1.0}, {1, :infinity}], :sum, 1)
      :infinity
  """

  @type value :: float() | :nan | :infinity | :neg_infinity
  @type aggregate :: :avg | :min | :max | :sum | :count | :first | :last | :rate | :increase

  @doc """
  The aggregate of `points` (`[{ms, value}]`, oldest first) over a window of
  `window_ms`; nil when there is nothing to aggregate (no points, or fewer than two
  for `rate`/`increase`).
  """
  @spec aggregate([{integer(), value() | :stale}], aggregate(), pos_integer()) :: value() | nil
  def aggregate(points, agg, window_ms) do
    values = for {_t, v} <- points, v != :stale, do: v
    if values == [], do: nil, else: over(values, agg, window_ms)
  end

  defp over(values, :count, _w), do: length(values) * 1.0
  defp over(values, :first, _w), do: hd(values)
  defp over(values, :last, _w), do: List.last(values)
  defp over(values, :sum, _w), do: Enum.reduce(values, &add/2)
  defp over(values, :avg, _w), do: divide(Enum.reduce(values, &add/2), length(values))
  defp over(values, :min, _w), do: Enum.reduce(values, &min_of/2)
  defp over(values, :max, _w), do: Enum.reduce(values, &max_of/2)

  defp over([_single], agg, _w) when agg in [:rate, :increase], do: nil

  defp over([first | rest], :increase, _w) do
    {total, _prev} = Enum.reduce(rest, {0.0, first}, fn v, {acc, prev} -> {add(acc, step(prev, v)), v} end)
    total
  end

  defp over(values, :rate, w), do: divide(over(values, :increase, w), w / 1000)

  # counter step: a drop is a reset, so the new value is the increase
  defp step(prev, v) when is_float(prev) and is_float(v), do: if(v >= prev, do: v - prev, else: v)
  defp step(_prev, _v), do: :nan

  defp add(a, b) when is_float(a) and is_float(b), do: a + b
  defp add(:nan, _), do: :nan
  defp add(_, :nan), do: :nan
  defp add(:infinity, :neg_infinity), do: :nan
  defp add(:neg_infinity, :infinity), do: :nan
  defp add(inf, b) when is_atom(inf) and is_float(b), do: inf
  defp add(a, inf) when is_float(a) and is_atom(inf), do: inf
  defp add(inf, inf), do: inf

  defp divide(a, n) when is_float(a), do: a / n
  defp divide(special, _n), do: special

  # NaN is replaced by any other value
  defp min_of(:nan, acc), do: acc
  defp min_of(v, :nan), do: v
  defp min_of(v, acc), do: if(rank(v) < rank(acc), do: v, else: acc)

  defp max_of(:nan, acc), do: acc
  defp max_of(v, :nan), do: v
  defp max_of(v, acc), do: if(rank(v) > rank(acc), do: v, else: acc)

  defp rank(:neg_infinity), do: {0, 0}
  defp rank(v) when is_float(v), do: {1, v}
  defp rank(:infinity), do: {2, 0}
end
