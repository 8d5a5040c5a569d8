defmodule TimelessMetrics.HTTP do
  @moduledoc """
  The HTTP server of a store: Prometheus- and VictoriaMetrics-compatible read,
  ingest and operations endpoints (mochiweb's socket server accepts, `TimelessMetrics.HTTP.Connection` speaks HTTP/1.1). It runs as its own child beside the
  store (it only calls the store's public API).

      children = [
        {TimelessMetrics, name: :metrics, data_dir: "/var/lib/metrics"},
        {TimelessMetrics.HTTP, store: :metrics, port: 8428}
        # listen on every interface instead of loopback only:
        # {TimelessMetrics.HTTP, store: :metrics, port: 8428, ip: {0, 0, 0, 0}}
      ]
      Supervisor.start_link(children, strategy: :rest_for_one)

      $ curl 'http://127.0.0.1:8428/api/v1/series?match[]=up'

  ```text
  TimelessMetrics.HTTP  (name: :"<store>.http", strategy: :rest_for_one)
  ├── TimelessMetrics.HTTP.Stats    :"<name>.stats"     ETS request counters (/metrics)
  └── mochiweb socket server        :"<name>.listener"  acceptor pool; one process per connection:
        Connection (HTTP/1.1 framing, request map, bounded body) -> Router -> Query |
        Export | Discovery | Ops | TimelessMetrics.HTTP.Ingest
  ```

  ## Options

  | option | default | meaning |
  |---|---|---|
  | `:store` | required | the store's name |
  | `:port` | `8428` | TCP port; `0` picks a free one (see `port/1`) |
  | `:ip` | `{127, 0, 0, 1}` | interface; `{0, 0, 0, 0}` listens on all interfaces |
  | `:max_body_bytes` | `33_554_432` (32 MiB) | request body limit, after decompression (413 beyond) |
  | `:read_timeout` | `60_000` | ms to receive a request body (408 beyond) |
  | `:max_connections` | `16_384` | open connections served at once (each agent keeps one); further ones wait in the listen backlog (keep it below the process's file descriptor limit) |
  | `:tokens` | `[]` | bearer tokens allowed everywhere (see `TimelessMetrics.HTTP.Auth`) |
  | `:read_only_tokens` | `[]` | bearer tokens allowed on read endpoints only |
  | `:name` | `:"<store>.http"` | the server's name; several servers may serve one store |
  | `:promql_engine` | `TimelessMetrics.PromQL` | module answering PromQL (`instant/4`, `range/6`) |
  | `:query_timeout` | `120_000` | ms a PromQL query may run (Prometheus's `--query.timeout`); the `timeout` parameter can only lower it |
  | `:lookback_delta` | `300_000` | ms of PromQL lookback (`--query.lookback-delta`); the `lookback_delta` parameter overrides it |
  | `:query_max_samples` | `nil` (engine default) | passed to the engine as `max_samples` (`--query.max-samples`) |

  Routes are listed in `TimelessMetrics.HTTP.Router`.
  """
  import TimelessMetrics.OptionCheck, only: [check: 3, known_keys: 2, positive: 2]
  use Supervisor

  alias TimelessMetrics.HTTP.{MochiwebAdapter, Stats}

  @type config :: %{
          store: atom(),
          name: atom(),
          port: :inet.port_number(),
          ip: :inet.ip_address(),
          max_body_bytes: pos_integer(),
          read_timeout: pos_integer(),
          max_connections: pos_integer(),
          tokens: [String.t()],
          read_only_tokens: [String.t()],
          promql_engine: module(),
          query_timeout: pos_integer(),
          lookback_delta: pos_integer(),
          query_max_samples: pos_integer() | nil,
          stats: atom()
        }

  @defaults %{
    port: 8428,
    ip: {127, 0, 0, 1},
    max_body_bytes: 32 * 1024 * 1024,
    read_timeout: 60_000,
    max_connections: 16_384,
    tokens: [],
    read_only_tokens: [],
    promql_engine: TimelessMetrics.PromQL,
    query_timeout: 120_000,
    lookback_delta: 300_000,
    query_max_samples: nil
  }

  @doc false
  def child_spec(opts) do
    %{
      id: {__MODULE__, Keyword.get(opts, :name) || Keyword.get(opts, :store)},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  @doc """
  Start a server. Returns `{:error, {:invalid_option, key, message}}` for a bad option.

      {:ok, _pid} = TimelessMetrics.HTTP.start_link(store: :metrics, port: 0)
      TimelessMetrics.HTTP.port(:metrics)
      #=> 41235
  """
  @spec start_link(keyword()) :: Supervisor.on_start() | {:error, {:invalid_option, atom(), String.t()}}
  def start_link(opts) do
    with {:ok, config} <- validate(opts) do
      case Supervisor.start_link(__MODULE__, config, name: config.name) do
        {:error, {:shutdown, {:failed_to_start_child, _child, reason}}} -> {:error, reason}
        other -> other
      end
    end
  end

  @doc """
  Validate options into the server configuration (the `config` map handlers receive).

      iex> {:ok, config} = TimelessMetrics.HTTP.validate(store: :metrics)
      iex> {config.name, config.port, config.ip}
      {:"metrics.http", 8428, {127, 0, 0, 1}}
      iex> TimelessMetrics.HTTP.validate(store: :metrics, port: -1)
      {:error, {:invalid_option, :port, "expected an integer in 0..65535, got -1"}}
  """
  @spec validate(keyword()) :: {:ok, config()} | {:error, {:invalid_option, atom(), String.t()}}
  def validate(opts) when is_list(opts) do
    allowed = [:store, :name | Map.keys(@defaults)]

    with :ok <- known_keys(opts, allowed),
         {:ok, store} <- required_atom(opts),
         config = Map.merge(@defaults, Map.new(opts)),
         name = Map.get(config, :name) || :"#{store}.http",
         :ok <- check(:name, is_atom(name) and name not in [nil, true, false], "expected an atom, got #{inspect(name)}"),
         :ok <- check(:port, is_integer(config.port) and config.port in 0..65_535, "expected an integer in 0..65535, got #{inspect(config.port)}"),
         :ok <- check(:ip, ip?(config.ip), "expected an IPv4 or IPv6 address tuple such as {0, 0, 0, 0}, got #{inspect(config.ip)}"),
         :ok <- positive(config, [:max_body_bytes, :read_timeout, :max_connections, :query_timeout, :lookback_delta]),
         :ok <- check(:promql_engine, is_atom(config.promql_engine) and config.promql_engine not in [nil, true, false], "expected a module, got #{inspect(config.promql_engine)}"),
         :ok <- check(:query_max_samples, config.query_max_samples == nil or (is_integer(config.query_max_samples) and config.query_max_samples > 0), "expected a positive integer or nil, got #{inspect(config.query_max_samples)}"),
         :ok <- tokens(config, :tokens),
         :ok <- tokens(config, :read_only_tokens) do
      {:ok, config |> Map.merge(%{store: store, name: name, stats: :"#{name}.stats"})}
    end
  end

  def validate(other), do: {:error, {:invalid_option, :options, "expected a keyword list, got #{inspect(other)}"}}

  defp required_atom(opts) do
    case Keyword.fetch(opts, :store) do
      {:ok, store} when is_atom(store) and store not in [nil, true, false] -> {:ok, store}
      {:ok, other} -> {:error, {:invalid_option, :store, "expected the store's name (an atom), got #{inspect(other)}"}}
      :error -> {:error, {:invalid_option, :store, "required"}}
    end
  end

  defp ip?({a, b, c, d} = ip) when is_integer(a) and is_integer(b) and is_integer(c) and is_integer(d),
    do: Enum.all?(Tuple.to_list(ip), &(&1 in 0..255))

  defp ip?(ip) when is_tuple(ip) and tuple_size(ip) == 8, do: Enum.all?(Tuple.to_list(ip), &(is_integer(&1) and &1 in 0..65_535))
  defp ip?(_), do: false

  defp tokens(config, key) do
    case Map.fetch!(config, key) do
      list when is_list(list) ->
        if Enum.all?(list, &(is_binary(&1) and &1 != "")),
          do: :ok,
          else: {:error, {:invalid_option, key, "expected a list of non-empty strings"}}

      other ->
        {:error, {:invalid_option, key, "expected a list of non-empty strings, got #{inspect(other)}"}}
    end
  end

  @doc """
  The TCP port a server listens on, by server name or by store name (for the
  default server name). Useful with `port: 0`.
  """
  @spec port(atom()) :: :inet.port_number()
  def port(server_or_store) do
    listener =
      Enum.find([listener_name(server_or_store), listener_name(:"#{server_or_store}.http")], &Process.whereis/1)

    case listener do
      nil -> raise ArgumentError, "no TimelessMetrics.HTTP server named #{inspect(server_or_store)} or serving that store"
      listener -> MochiwebAdapter.port(listener)
    end
  end

  defp listener_name(name), do: :"#{name}.listener"

  @impl true
  def init(config) do
    children = [
      %{id: Stats, start: {Stats, :start_link, [[name: :"#{config.name}.stats_owner", table: config.stats]]}},
      MochiwebAdapter.child_spec(listener_name(config.name), config)
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end
end
