defmodule TimelessMetrics.OptionCheck do
  @moduledoc """
  The small checks shared by option validation (`TimelessMetrics.Options`,
  `TimelessMetrics.HTTP`), each answering `:ok` or
  `{:error, {:invalid_option, key, message}}` naming the option.

      iex> TimelessMetrics.OptionCheck.known_keys([port: 1, bogus: 2], [:port])
      {:error, {:invalid_option, :bogus, "unknown option; known options: :port"}}
      iex> TimelessMetrics.OptionCheck.positive(%{port: 0}, [:port])
      {:error, {:invalid_option, :port, "expected a positive integer, got 0"}}
  """

  @type error :: {:error, {:invalid_option, atom(), String.t()}}

  @doc "Every element is a `{key, value}` pair with a key from `allowed`."
  @spec known_keys(list(), [atom()]) :: :ok | error()
  def known_keys(opts, allowed) do
    case Enum.find(opts, fn
           {k, _} -> k not in allowed
           _ -> true
         end) do
      nil -> :ok
      {k, _} -> {:error, {:invalid_option, k, "unknown option; known options: #{Enum.map_join(Enum.sort(allowed), ", ", &inspect/1)}"}}
      other -> {:error, {:invalid_option, :options, "expected {key, value} pairs, got #{inspect(other)}"}}
    end
  end

  @doc "`:ok` when `condition` holds, else the error with `message`."
  @spec check(atom(), boolean(), String.t()) :: :ok | error()
  def check(_key, true, _message), do: :ok
  def check(key, false, message), do: {:error, {:invalid_option, key, message}}

  @doc "Each of `keys` in `opts` is a positive integer."
  @spec positive(map(), [atom()]) :: :ok | error()
  def positive(opts, keys) do
    Enum.reduce_while(keys, :ok, fn key, :ok ->
      case Map.fetch!(opts, key) do
        v when is_integer(v) and v > 0 -> {:cont, :ok}
        v -> {:halt, {:error, {:invalid_option, key, "expected a positive integer, got #{inspect(v)}"}}}
      end
    end)
  end
end
