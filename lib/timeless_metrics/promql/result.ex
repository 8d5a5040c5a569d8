defmodule TimelessMetrics.PromQL.Result do
  @moduledoc """
  Shapes the compact answer of `Native.promql_eval/6` into PromQL result maps.

  The NIF answers `{:scalar, values}`, `{:vector, [{labels, values, presence}]}`,
  `{:matrix, [{labels, points}]}` or `{:string, text}`: `values` holds one
  little-endian f64 per step, `presence` one bit per step (least significant bit
  first; a NaN sample has its bit set, a step without a sample has it clear), and
  `points` 16-byte records of i64 time and f64 value.

      iex> TimelessMetrics.PromQL.Result.instant({:scalar, <<2.5::float-little-64>>}, 1000)
      %{type: :scalar, result: {1000, 2.5}}
  """

  @type raw :: {:scalar, binary()} | {:vector, list()} | {:matrix, list()} | {:string, binary()}

  @doc "The result of an instant query evaluated at `time_ms`."
  @spec instant(raw(), integer()) :: map()
  def instant({:scalar, <<bits::little-unsigned-64>>}, t), do: %{type: :scalar, result: {t, value(bits)}}
  def instant({:string, s}, t), do: %{type: :string, result: {t, s}}

  def instant({:vector, rows}, t) do
    result =
      for {labels, <<bits::little-unsigned-64, _::binary>>, <<p, _::binary>>} <- rows, Bitwise.band(p, 1) == 1,
          do: %{metric: labels, value: {t, value(bits)}}

    %{type: :vector, result: result}
  end

  def instant({:matrix, rows}, _t), do: %{type: :matrix, result: Enum.map(rows, &matrix_row/1)}

  @doc "The result of a range query starting at `start_ms` with `step_ms`: always a matrix."
  @spec range(raw(), integer(), pos_integer()) :: map()
  def range({:scalar, values}, start, step) do
    %{type: :matrix, result: [%{metric: %{}, values: steps(values, start, step)}]}
  end

  def range({:vector, rows}, start, step) do
    result =
      for {labels, values, presence} <- rows,
          points = present(values, presence, start, step, 0, []),
          points != [],
          do: %{metric: labels, values: points}

    %{type: :matrix, result: result}
  end

  def range({:matrix, rows}, _start, _step), do: %{type: :matrix, result: Enum.map(rows, &matrix_row/1)}

  defp matrix_row({labels, points}) do
    %{metric: labels, values: for(<<t::little-signed-64, bits::little-unsigned-64 <- points>>, do: {t, value(bits)})}
  end

  defp steps(values, start, step) do
    values
    |> then(&for(<<bits::little-unsigned-64 <- &1>>, do: value(bits)))
    |> Enum.with_index()
    |> Enum.map(fn {v, i} -> {start + i * step, v} end)
  end

  defp present(<<bits::little-unsigned-64, rest::binary>>, presence, start, step, i, acc) do
    byte = :binary.at(presence, div(i, 8))
    acc = if Bitwise.band(byte, Bitwise.bsl(1, rem(i, 8))) != 0, do: [{start + i * step, value(bits)} | acc], else: acc
    present(rest, presence, start, step, i + 1, acc)
  end

  defp present(<<>>, _presence, _start, _step, _i, acc), do: Enum.reverse(acc)

  @exp_mask 0x7FF0000000000000
  @frac_mask 0x000FFFFFFFFFFFFF

  @doc "An f64 bit pattern as a float, or `:nan`, `:inf`, `:neg_inf`."
  @spec value(non_neg_integer()) :: float() | :nan | :inf | :neg_inf
  def value(bits) when Bitwise.band(bits, @exp_mask) == @exp_mask do
    cond do
      Bitwise.band(bits, @frac_mask) != 0 -> :nan
      bits == 0x7FF0000000000000 -> :inf
      true -> :neg_inf
    end
  end

  def value(bits) do
    <<f::float-64>> = <<bits::unsigned-64>>
    f
  end
end
