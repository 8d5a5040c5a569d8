defmodule TimelessMetrics.Engine do
  @moduledoc """
  The layer just above `TimelessMetrics.Native`: finds a running store's engine
  handle and turns NIF results into `{:ok, value} | {:error, reason}`.

  Reasons are `{kind, message}` tuples from the engine (`{:bad_input, "entry 3: ..."}`),
  or `{:unavailable, message}` when the store is not running.

      iex> TimelessMetrics.Engine.call(:no_such_store, &TimelessMetrics.Native.store_info/1)
      {:error, {:unavailable, "store :no_such_store is not running"}}
  """

  alias TimelessMetrics.Native

  @typedoc "`{kind, message}` from the engine, or `:locked`."
  @type reason :: {atom(), String.t()} | atom()

  @doc false
  def key(store), do: {__MODULE__, store}

  @doc "The engine handle and settings of a running store."
  @spec handle(atom()) :: {:ok, map()} | {:error, reason()}
  def handle(store) do
    case :persistent_term.get(key(store), nil) do
      nil -> {:error, {:unavailable, "store #{inspect(store)} is not running"}}
      handle -> {:ok, handle}
    end
  end

  @doc "Run `fun` with the store's NIF handle and normalize its result."
  @spec call(atom(), (reference() -> term())) :: :ok | {:ok, term()} | {:error, reason()}
  def call(store, fun) do
    with {:ok, %{ref: ref}} <- handle(store), do: wrap(fn -> fun.(ref) end)
  end

  @doc "Normalize a NIF call: `:ok` stays, `{:error, _}` stays, anything else becomes `{:ok, value}`."
  @spec wrap((-> term())) :: :ok | {:ok, term()} | {:error, reason()}
  def wrap(fun) do
    case fun.() do
      :ok -> :ok
      {:error, _} = error -> error
      value -> {:ok, value}
    end
  rescue
    e in ArgumentError ->
      {:error, {:bad_input, "invalid argument: #{Exception.message(e)}"}}

    e in ErlangError ->
      case e do
        %ErlangError{original: :nif_panicked} -> {:error, {:internal, "the engine panicked; see the VM's stderr"}}
        other -> {:error, {:internal, Exception.message(other)}}
      end
  end

  @doc "Open an engine (used by `TimelessMetrics.RustEngine`)."
  @spec open(map()) :: {:ok, {reference(), [String.t()]}} | {:error, reason()}
  def open(config) do
    case wrap(fn -> Native.store_open(config) end) do
      {:error, {:locked, _}} -> {:error, :locked}
      other -> other
    end
  end
end
