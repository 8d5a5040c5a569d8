defmodule TimelessMetrics.Points do
  @moduledoc """
  Decoding of the engine's compact point binaries and sample values.

  The engine returns points as one binary of 16-byte records (timestamp as a signed
  little-endian 64-bit integer, value as a little-endian IEEE double). Erlang floats
  cannot be NaN or infinite, so such values decode to atoms:
  `:nan`, `:infinity`, `:neg_infinity`, and `:stale` for Prometheus's staleness marker.

      iex> bin = <<10::signed-little-64, 1.5::float-little-64, 20::signed-little-64, 0x7FF0000000000002::little-64>>
      iex> TimelessMetrics.Points.decode(bin)
      [{10, 1.5}, {20, :stale}]
  """

  @stale 0x7FF0000000000002

  @type value :: float() | :nan | :infinity | :neg_infinity | :stale

  @doc "Decode a point binary into `[{timestamp, value}]`."
  @spec decode(binary()) :: [{integer(), value()}]
  def decode(bin), do: decode(bin, [])

  defp decode(<<ts::signed-little-64, v::float-little-64, rest::binary>>, acc),
    do: decode(rest, [{ts, v} | acc])

  defp decode(<<ts::signed-little-64, bits::unsigned-little-64, rest::binary>>, acc),
    do: decode(rest, [{ts, special(bits)} | acc])

  defp decode(<<>>, acc), do: :lists.reverse(acc)

  defp special(@stale), do: :stale
  defp special(bits) when bits in [0x7FF0000000000000], do: :infinity
  defp special(bits) when bits in [0xFFF0000000000000], do: :neg_infinity
  defp special(_nan), do: :nan
end
