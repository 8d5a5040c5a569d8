defmodule TimelessMetrics.HTTP.JSON do
  @moduledoc """
  JSON the way Prometheus clients expect it: success envelopes, sample values as
  strings in Go's shortest `'f'` form (`"1"`, `"0.001"`, `"1e21"` written out in full),
  `"NaN"`, `"+Inf"`, `"-Inf"`, and timestamps as unix seconds with millisecond
  fractions. Encoding goes through jiffy; objects may be ordered (`{[{k, v}]}`).

      iex> TimelessMetrics.HTTP.JSON.format_value(1.0)
      "1"
      iex> TimelessMetrics.HTTP.JSON.format_value(:neg_infinity)
      "-Inf"
      iex> TimelessMetrics.HTTP.JSON.timestamp(1_700_000_000_250)
      1700000000.25
      iex> TimelessMetrics.HTTP.JSON.success(["up"]) |> IO.iodata_to_binary()
      ~s({"status":"success","data":["up"]})
  """

  @doc "The content type of JSON responses."
  @spec content_type() :: String.t()
  def content_type, do: "application/json"

  @doc "Encode a term (maps, `{[{k, v}]}` objects, lists, binaries, numbers, `nil` as null) to iodata."
  @spec encode(term()) :: iodata()
  def encode(term), do: :jiffy.encode(term, [:use_nil])

  @doc "The success envelope `{\"status\":\"success\",\"data\":data}` as iodata."
  @spec success(term(), [String.t()]) :: iodata()
  def success(data, warnings \\ [])
  def success(data, []), do: encode({[{"status", "success"}, {"data", data}]})
  def success(data, warnings), do: encode({[{"status", "success"}, {"data", data}, {"warnings", warnings}]})

  @doc "A 200 response carrying the success envelope."
  @spec ok(term(), [String.t()]) :: {200, [{String.t(), String.t()}], iodata()}
  def ok(data, warnings \\ []), do: {200, [{"content-type", content_type()}], success(data, warnings)}

  @doc "A millisecond timestamp as Prometheus writes it: unix seconds, fraction only when needed."
  @spec timestamp(integer()) :: integer() | float()
  def timestamp(ms) when rem(ms, 1000) == 0, do: div(ms, 1000)
  def timestamp(ms), do: ms / 1000

  @doc "A sample value as Prometheus writes it (Go's `strconv.FormatFloat(v, 'f', -1, 64)`)."
  @spec format_value(number() | atom()) :: String.t()
  def format_value(:nan), do: "NaN"
  def format_value(:stale), do: "NaN"
  def format_value(:infinity), do: "+Inf"
  def format_value(:neg_infinity), do: "-Inf"
  def format_value(v) when is_integer(v), do: Integer.to_string(v)

  def format_value(v) when is_float(v) do
    {sign, text} =
      case :erlang.float_to_binary(v, [:short]) do
        "-" <> rest -> {"-", rest}
        rest -> {"", rest}
      end

    {mantissa, exponent} =
      case String.split(text, "e") do
        [m, e] -> {m, String.to_integer(e)}
        [m] -> {m, 0}
      end

    {int, frac} =
      case String.split(mantissa, ".") do
        [i, f] -> {i, f}
        [i] -> {i, ""}
      end

    sign <> place_point(int <> frac, byte_size(int) + exponent)
  end

  # `digits` with the decimal point after `point` digits, without exponent.
  defp place_point(digits, point) do
    {digits, point} = drop_leading_zeros(digits, point)
    digits = String.trim_trailing(digits, "0")
    len = byte_size(digits)

    cond do
      digits == "" -> "0"
      point <= 0 -> "0." <> String.duplicate("0", -point) <> digits
      point >= len -> digits <> String.duplicate("0", point - len)
      true -> binary_part(digits, 0, point) <> "." <> binary_part(digits, point, len - point)
    end
  end

  defp drop_leading_zeros("0" <> rest, point), do: drop_leading_zeros(rest, point - 1)
  defp drop_leading_zeros(digits, point), do: {digits, point}
end
