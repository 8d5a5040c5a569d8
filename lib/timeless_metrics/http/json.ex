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

  # Fast paths for the common cases (checked against format_general/1 in tests):
  # whole numbers below 1e15 print as integers; Erlang's shortest form without an
  # exponent is already Go's.
  def format_value(v) when is_float(v) and v != 0 and v == trunc(v) and abs(v) < 1.0e15,
    do: Integer.to_string(trunc(v))

  def format_value(v) when is_float(v) and v != 0 do
    text = :erlang.float_to_binary(v, [:short])

    cond do
      :binary.match(text, "e") != :nomatch -> format_general(v)
      :binary.part(text, byte_size(text) - 2, 2) == ".0" -> :binary.part(text, 0, byte_size(text) - 2)
      true -> text
    end
  end

  def format_value(v) when is_float(v), do: format_general(v)

  @doc false
  # Go's strconv.FormatFloat(v, 'f', -1, 64) for any float, built from Erlang's
  # shortest round-trip digits.
  @spec format_general(float()) :: String.t()
  def format_general(v) when is_float(v) do
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

  @doc """
  A sample value as Prometheus's JSON API writes it inside vectors and matrices
  (`jsonutil.MarshalFloat`): like `format_value/1`, except that magnitudes below
  1e-6 or from 1e21 up use Go's `'e'` form (`"1e-07"`, `"1.5e+21"`). Scalars use
  `format_value/1`.

      iex> TimelessMetrics.HTTP.JSON.format_sample_value(1.0e-7)
      "1e-07"
      iex> TimelessMetrics.HTTP.JSON.format_sample_value(-1.5e21)
      "-1.5e+21"
      iex> TimelessMetrics.HTTP.JSON.format_sample_value(0.000001)
      "0.000001"
  """
  @spec format_sample_value(number() | atom()) :: String.t()
  def format_sample_value(v) when is_float(v) and v != 0 and (abs(v) < 1.0e-6 or abs(v) >= 1.0e21) do
    [mantissa | exp] = :erlang.float_to_binary(v, [:short]) |> String.split("e")
    {sign, mantissa} = if String.starts_with?(mantissa, "-"), do: {"-", String.trim_leading(mantissa, "-")}, else: {"", mantissa}
    exp = case exp do
      [e] -> String.to_integer(e)
      [] -> 0
    end

    [int, frac] = case String.split(mantissa, ".") do
      [i, f] -> [i, f]
      [i] -> [i, ""]
    end

    # normalise to one non-zero digit before the point
    digits = int <> frac
    lead = byte_size(digits) - byte_size(String.trim_leading(digits, "0"))
    digits = digits |> String.trim_leading("0") |> String.trim_trailing("0")
    exp = exp + byte_size(int) - 1 - lead
    <<first::binary-size(1), rest::binary>> = digits
    esign = if exp < 0, do: "-", else: "+"
    sign <> first <> if(rest == "", do: "", else: "." <> rest) <> "e" <> esign <> String.pad_leading(Integer.to_string(abs(exp)), 2, "0")
  end

  def format_sample_value(v), do: format_value(v)

  @doc """
  A sample timestamp as Prometheus's JSON API writes it (`jsonutil.MarshalTimestamp`):
  seconds, and when there is a millisecond part, always three digits.

      iex> TimelessMetrics.HTTP.JSON.sample_timestamp(1_700_000_000_500) |> IO.iodata_to_binary()
      "1700000000.500"
      iex> TimelessMetrics.HTTP.JSON.sample_timestamp(-1_005) |> IO.iodata_to_binary()
      "-1.005"
  """
  @spec sample_timestamp(integer()) :: iodata()
  def sample_timestamp(ms) when ms < 0, do: ["-" | sample_timestamp(-ms)]
  def sample_timestamp(ms) when rem(ms, 1000) == 0, do: [Integer.to_string(div(ms, 1000))]

  def sample_timestamp(ms),
    do: [Integer.to_string(div(ms, 1000)), ".", String.pad_leading(Integer.to_string(rem(ms, 1000)), 3, "0")]

  @doc """
  A string as Go's `encoding/json` writes it (what Prometheus's API sends): `<`,
  `>`, `&`, U+2028 and U+2029 escaped as `\\uXXXX`, invalid UTF-8 as U+FFFD.

      iex> TimelessMetrics.HTTP.JSON.go_string("a<b>\\n") |> IO.iodata_to_binary()
      ~S("a\\u003cb\\u003e\\n")
  """
  @spec go_string(binary()) :: iodata()
  def go_string(s), do: [?", go_escape(s, []), ?"]

  defp go_escape(<<>>, acc), do: Enum.reverse(acc)
  defp go_escape(<<?", rest::binary>>, acc), do: go_escape(rest, ["\\\"" | acc])
  defp go_escape(<<?\\, rest::binary>>, acc), do: go_escape(rest, ["\\\\" | acc])
  defp go_escape(<<?\n, rest::binary>>, acc), do: go_escape(rest, ["\\n" | acc])
  defp go_escape(<<?\r, rest::binary>>, acc), do: go_escape(rest, ["\\r" | acc])
  defp go_escape(<<?\t, rest::binary>>, acc), do: go_escape(rest, ["\\t" | acc])
  defp go_escape(<<8, rest::binary>>, acc), do: go_escape(rest, ["\\b" | acc])
  defp go_escape(<<12, rest::binary>>, acc), do: go_escape(rest, ["\\f" | acc])
  defp go_escape(<<c, rest::binary>>, acc) when c < 0x20 or c in [?<, ?>, ?&], do: go_escape(rest, [u_escape(c) | acc])
  defp go_escape(<<c::utf8, rest::binary>>, acc) when c in [0x2028, 0x2029], do: go_escape(rest, [u_escape(c) | acc])
  defp go_escape(<<c::utf8, rest::binary>>, acc), do: go_escape(rest, [<<c::utf8>> | acc])
  defp go_escape(<<_, rest::binary>>, acc), do: go_escape(rest, ["\\ufffd" | acc])

  defp u_escape(c), do: "\\u" <> String.pad_leading(String.downcase(Integer.to_string(c, 16)), 4, "0")

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
