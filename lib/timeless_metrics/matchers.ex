defmodule TimelessMetrics.Matchers do
  @moduledoc """
  Label filters as the engine takes them: a list of `{label, op, value}` with op
  `:eq | :ne | :re | :nre` (Prometheus's `=`, `!=`, `=~`, `!~`; regexes fully anchored).

  Accepted forms: a map or keyword list of exact values (`%{"host" => "a"}`,
  `[host: "a"]`), or a list of matcher tuples whose op may also be written
  `"="`, `"!="`, `"=~"`, `"!~"`.

      iex> TimelessMetrics.Matchers.build("cpu", %{"host" => "a"})
      {:ok, [{"__name__", :eq, "cpu"}, {"host", :eq, "a"}]}
      iex> TimelessMetrics.Matchers.build(nil, [{"host", "=~", "web-.*"}])
      {:ok, [{"host", :re, "web-.*"}]}
  """

  @type op :: :eq | :ne | :re | :nre
  @type t :: [{String.t(), op(), String.t()}]

  @doc "Build matchers for an optional metric name plus a label filter."
  @spec build(String.t() | nil, map() | list()) :: {:ok, t()} | {:error, {:bad_input, String.t()}}
  def build(metric, filter) do
    with {:ok, rest} <- normalize(filter) do
      case metric do
        nil -> {:ok, rest}
        m when is_binary(m) or is_atom(m) -> {:ok, [{"__name__", :eq, to_string(m)} | rest]}
        other -> {:error, {:bad_input, "metric name must be a string, got #{inspect(other)}"}}
      end
    end
  end

  @doc "Normalize a filter (see moduledoc)."
  @spec normalize(map() | list()) :: {:ok, t()} | {:error, {:bad_input, String.t()}}
  def normalize(filter) when is_map(filter), do: normalize(Map.to_list(filter))

  def normalize(filter) when is_list(filter) do
    Enum.reduce_while(filter, {:ok, []}, fn m, {:ok, acc} ->
      case one(m) do
        {:ok, m} -> {:cont, {:ok, [m | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, ms} -> {:ok, Enum.reverse(ms)}
      error -> error
    end
  end

  def normalize(other), do: {:error, {:bad_input, "a label filter must be a map or a list, got #{inspect(other)}"}}

  defp one({name, value}) when is_binary(value) or is_atom(value) or is_number(value),
    do: {:ok, {to_string(name), :eq, to_string(value)}}

  defp one({name, op, value}) do
    case op(op) do
      nil -> {:error, {:bad_input, "unknown matcher op #{inspect(op)} for #{inspect(name)}"}}
      op -> {:ok, {to_string(name), op, to_string(value)}}
    end
  end

  defp one(other), do: {:error, {:bad_input, "not a matcher: #{inspect(other)}"}}

  defp op(op) when op in [:eq, :ne, :re, :nre], do: op
  defp op("="), do: :eq
  defp op("!="), do: :ne
  defp op("=~"), do: :re
  defp op("!~"), do: :nre
  defp op(_), do: nil
end
