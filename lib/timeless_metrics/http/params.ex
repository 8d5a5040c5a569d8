defmodule TimelessMetrics.HTTP.Params do
  @moduledoc """
  Parsing of the query parameters shared by the read endpoints, with Prometheus's
  error wording (`invalid parameter "start": ...`). Times come back in milliseconds.

  - times: unix seconds (fractions allowed) or RFC 3339 (`2024-01-01T00:00:00Z`);
  - durations: seconds (`30`, `1.5`) or Prometheus durations (`30s`, `5m`, `1h30m`, `100ms`, `1d`, `1w`, `1y`);
  - selectors: `match[]` values parsed by `TimelessMetrics.HTTP.Selector`;
  - limits: non-negative integers, 0 meaning no limit.

      iex> req = TimelessMetrics.HTTP.Request.new("GET", "/x?start=1700000000.5&step=1m30s")
      iex> TimelessMetrics.HTTP.Params.time(req, ["start"], nil)
      {:ok, 1_700_000_000_500}
      iex> TimelessMetrics.HTTP.Params.duration(req, "step", nil)
      {:ok, 90_000}
  """

  alias TimelessMetrics.HTTP.{Request, Selector}

  @type error :: {:error, {:bad_input, String.t()}}

  @doc "The first present parameter of `names` as a millisecond time, or `default`."
  @spec time(Request.t(), [String.t()], term()) :: {:ok, integer() | term()} | error()
  def time(req, names, default) do
    case first_present(req, names) do
      nil -> {:ok, default}
      {name, value} -> parse_time(name, value)
    end
  end

  defp first_present(req, names) do
    Enum.find_value(names, fn name ->
      case Request.param(req, name) do
        nil -> nil
        "" -> nil
        v -> {name, v}
      end
    end)
  end

  defp parse_time(name, value) do
    case Float.parse(value) do
      {secs, ""} when secs > -9.2e15 and secs < 9.2e15 ->
        {:ok, round(secs * 1000)}

      _ ->
        case DateTime.from_iso8601(value) do
          {:ok, dt, _offset} -> {:ok, DateTime.to_unix(dt, :millisecond)}
          _ -> bad(name, "cannot parse #{inspect(value)} to a valid timestamp")
        end
    end
  end

  @doc "A parameter as a positive duration in milliseconds, or `default` when absent."
  @spec duration(Request.t(), String.t(), term()) :: {:ok, pos_integer() | term()} | error()
  def duration(req, name, default) do
    case Request.param(req, name) do
      nil -> {:ok, default}
      "" -> {:ok, default}
      value -> parse_duration(name, value)
    end
  end

  @units [{"ms", 1}, {"s", 1000}, {"m", 60_000}, {"h", 3_600_000}, {"d", 86_400_000},
          {"w", 604_800_000}, {"y", 31_536_000_000}]

  defp parse_duration(name, value) do
    result =
      case Float.parse(value) do
        {secs, ""} -> round(secs * 1000)
        _ -> units(value, 0)
      end

    case result do
      ms when is_integer(ms) and ms > 0 -> {:ok, ms}
      ms when is_integer(ms) -> bad(name, "zero or negative query resolution step widths are not accepted. Try a positive integer")
      :error -> bad(name, "cannot parse #{inspect(value)} to a valid duration")
    end
  end

  defp units("", acc), do: acc

  defp units(s, acc) do
    with {n, rest} when n >= 0 <- Integer.parse(s),
         {unit, mult} <- Enum.find(@units, fn {u, _} -> String.starts_with?(rest, u) end) do
      units(binary_part(rest, byte_size(unit), byte_size(rest) - byte_size(unit)), acc + n * mult)
    else
      _ -> :error
    end
  end

  @doc """
  The selectors of a repeated parameter (`match[]`) as matcher lists. With
  `required: true` an absent parameter is an error.
  """
  @spec selectors(Request.t(), String.t(), keyword()) :: {:ok, [[Selector.matcher()]]} | error()
  def selectors(req, name, opts \\ []) do
    case Request.params(req, name) do
      [] ->
        if Keyword.get(opts, :required, false),
          do: {:error, {:bad_input, "no #{name} parameter provided"}},
          else: {:ok, []}

      values ->
        Enum.reduce_while(values, {:ok, []}, fn text, {:ok, acc} ->
          case Selector.parse(text) do
            {:ok, matchers} -> {:cont, {:ok, [matchers | acc]}}
            {:error, message} -> {:halt, bad(name, message)}
          end
        end)
        |> then(fn
          {:ok, list} -> {:ok, Enum.reverse(list)}
          error -> error
        end)
    end
  end

  @doc "A non-negative integer parameter; absent or 0 means `nil` (no limit)."
  @spec limit(Request.t(), String.t()) :: {:ok, pos_integer() | nil} | error()
  def limit(req, name \\ "limit") do
    case Request.param(req, name) do
      nil -> {:ok, nil}
      "" -> {:ok, nil}
      value ->
        case Integer.parse(value) do
          {0, ""} -> {:ok, nil}
          {n, ""} when n > 0 -> {:ok, n}
          _ -> bad(name, "cannot parse #{inspect(value)} to a non-negative integer")
        end
    end
  end

  @doc "Keep the first `limit` items; returns them and a warning list."
  @spec apply_limit(list(), pos_integer() | nil) :: {list(), [String.t()]}
  def apply_limit(items, nil), do: {items, []}

  def apply_limit(items, limit) do
    case Enum.split(items, limit) do
      {kept, []} -> {kept, []}
      {kept, _more} -> {kept, ["results truncated due to limit"]}
    end
  end


  # ------------------------------------------------------------------ Prometheus API parsing (PromQL endpoints)

  @doc """
  Prometheus's API `parseTime`: unix seconds as a Go float (`1700000000`,
  `1700000000.5`, `1.7e9`; the fraction rounded to the millisecond) or RFC 3339
  with optional fractional seconds (truncated to the millisecond) and `Z` or a
  `±hh:mm` offset. Returns milliseconds, or the error text Prometheus gives.

      iex> TimelessMetrics.HTTP.Params.prom_time("1700000000.1234")
      {:ok, 1_700_000_000_123}
      iex> TimelessMetrics.HTTP.Params.prom_time("2023-11-14T22:13:20.5+01:00")
      {:ok, 1_699_996_400_500}
      iex> TimelessMetrics.HTTP.Params.prom_time("x")
      {:error, ~s(cannot parse "x" to a valid timestamp)}
  """
  @spec prom_time(String.t()) :: {:ok, integer()} | {:error, String.t()}
  def prom_time(text) do
    case go_float(text) do
      {:ok, secs} when is_float(secs) and abs(secs) < 9.2e15 ->
        whole = trunc(secs)
        {:ok, whole * 1000 + round((secs - whole) * 1000)}

      _ ->
        rfc3339(text)
    end
  end

  @rfc3339 ~r/^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):(\d{2}))$/

  defp rfc3339(text) do
    with [_ | parts] <- Regex.run(@rfc3339, text),
         [y, mo, d, h, mi, sec, frac | zone] = pad(parts, 10),
         {:ok, naive} <- NaiveDateTime.new(int(y), int(mo), int(d), int(h), int(mi), int(sec)),
         {:ok, offset_ms} <- zone_offset(zone) do
      ms = frac |> String.pad_trailing(3, "0") |> binary_part(0, 3) |> int()
      {:ok, (naive |> DateTime.from_naive!("Etc/UTC") |> DateTime.to_unix(:millisecond)) + ms - offset_ms}
    else
      _ -> {:error, "cannot parse #{inspect(text)} to a valid timestamp"}
    end
  end

  defp pad(parts, n), do: parts ++ List.duplicate("", n - length(parts))
  defp int(""), do: 0
  defp int(s), do: String.to_integer(s)

  defp zone_offset(["", "", ""]), do: {:ok, 0}

  defp zone_offset([sign, h, m]) do
    {h, m} = {int(h), int(m)}
    ms = (h * 60 + m) * 60_000
    if h < 24 and m < 60, do: {:ok, if(sign == "-", do: -ms, else: ms)}, else: :error
  end

  @doc """
  Prometheus's API `parseDuration` in milliseconds: seconds as a Go float
  (`15`, `0.5`, `1e3`) or a Prometheus duration (`1m30s`). Zero and negative values
  parse; the caller decides whether they are allowed.

      iex> TimelessMetrics.HTTP.Params.prom_duration("1.5")
      {:ok, 1500}
      iex> TimelessMetrics.HTTP.Params.prom_duration("5m")
      {:ok, 300_000}
      iex> TimelessMetrics.HTTP.Params.prom_duration("5 minutes")
      {:error, ~s(cannot parse "5 minutes" to a valid duration)}
  """
  @spec prom_duration(String.t()) :: {:ok, integer()} | {:error, String.t()}
  def prom_duration(text) do
    case go_float(text) do
      {:ok, secs} when is_float(secs) ->
        ns = secs * 1.0e9

        if ns > 9.223372036854775807e18 or ns < -9.223372036854775808e18,
          do: {:error, "cannot parse #{inspect(text)} to a valid duration. It overflows int64"},
          else: {:ok, div(trunc(ns), 1_000_000)}

      {:ok, _special} ->
        {:error, "cannot parse #{inspect(text)} to a valid duration. It overflows int64"}

      :error ->
        case model_duration(text) do
          {:ok, ms} -> {:ok, ms}
          {:error, _} -> {:error, "cannot parse #{inspect(text)} to a valid duration"}
        end
    end
  end

  @go_float ~r/^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/

  # strconv.ParseFloat(s, 64) for decimal input: a float, :inf/:neg_inf/:nan, or
  # :error (out of range counts as an error, as Go returns ErrRange).
  # up to 15 digits: exact as a float, the common case of `start`, `end`, `step`
  defp go_float(text) when byte_size(text) in 1..15 and binary_part(text, 0, 1) in ~w(0 1 2 3 4 5 6 7 8 9) do
    if digits?(text), do: {:ok, :erlang.binary_to_integer(text) * 1.0}, else: go_float_general(text)
  end

  defp go_float(text), do: go_float_general(text)

  defp digits?(<<c, rest::binary>>) when c in ?0..?9, do: digits?(rest)
  defp digits?(<<>>), do: true
  defp digits?(_), do: false

  defp go_float_general(text) do
    lower = String.downcase(text)

    cond do
      lower in ["inf", "+inf", "infinity", "+infinity"] -> {:ok, :inf}
      lower in ["-inf", "-infinity"] -> {:ok, :neg_inf}
      lower in ["nan", "+nan", "-nan"] -> {:ok, :nan}
      Regex.match?(@go_float, text) -> decimal_float(text)
      true -> :error
    end
  end

  defp decimal_float(text) do
    {sign, body} =
      case text do
        "-" <> b -> {"-", b}
        "+" <> b -> {"", b}
        b -> {"", b}
      end

    [mantissa | exp] = String.split(String.downcase(body), "e")
    [int | frac] = String.split(mantissa, ".")
    int = if int == "", do: "0", else: int
    frac = case frac do
      [f] when f != "" -> f
      _ -> "0"
    end

    exp = case exp do
      [e] -> e
      [] -> "0"
    end

    {:ok, :erlang.binary_to_float("#{sign}#{int}.#{frac}e#{exp}")}
  rescue
    ArgumentError ->
      # binary_to_float fails on overflow (Go: ±Inf with ErrRange) and on underflow
      # to zero (Go: 0, no error)
      if Regex.match?(~r/e-/i, text), do: {:ok, 0.0}, else: :error
  end

  @doc """
  Prometheus's `model.ParseDuration` in milliseconds (see
  `TimelessMetrics.PromQL.Parser.model_duration/1`, which this is).

      iex> TimelessMetrics.HTTP.Params.model_duration("1h30m")
      {:ok, 5_400_000}
      iex> TimelessMetrics.HTTP.Params.model_duration("0")
      {:ok, 0}
      iex> TimelessMetrics.HTTP.Params.model_duration("5 m")
      {:error, "not a valid duration string: \\"5 m\\""}
  """
  @spec model_duration(String.t()) :: {:ok, non_neg_integer()} | {:error, String.t()}
  defdelegate model_duration(text), to: TimelessMetrics.PromQL.Parser

  @doc "A `{:bad_input, ...}` error naming the parameter."
  @spec bad(String.t(), String.t()) :: error()
  def bad(name, message), do: {:error, {:bad_input, "invalid parameter #{inspect(name)}: #{message}"}}
end
