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

  @doc "A `{:bad_input, ...}` error naming the parameter."
  @spec bad(String.t(), String.t()) :: error()
  def bad(name, message), do: {:error, {:bad_input, "invalid parameter #{inspect(name)}: #{message}"}}
end
