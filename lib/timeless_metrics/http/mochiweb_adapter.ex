defmodule TimelessMetrics.HTTP.MochiwebAdapter do
  @moduledoc """
  The only module that knows mochiweb: mochiweb's socket server listens and keeps a
  pool of acceptors; each accepted connection runs `TimelessMetrics.HTTP.Connection`
  (HTTP/1.1 framing from a byte buffer) in the acceptor's process, which hands the
  request maps to `TimelessMetrics.HTTP.Router`.

  mochiweb's own request loop (`:mochiweb_http`) is not used: it switches socket
  options for every header line and builds its header tree per request, which cost
  more than the rest of a small request (measured with wrk on `GET /health`: ~20k
  requests/s through it, ~80k through `Connection` on the same 2 cores).

      spec = TimelessMetrics.HTTP.MochiwebAdapter.child_spec(:my_listener, config)
      Supervisor.start_link([spec], strategy: :one_for_one)
      :mochiweb_socket_server.get(:my_listener, :port)
  """

  alias TimelessMetrics.HTTP.Connection

  @doc "A child spec for a listener named `name` serving `config` (its `ip` and `port`)."
  @spec child_spec(atom(), TimelessMetrics.HTTP.config()) :: Supervisor.child_spec()
  def child_spec(name, config) do
    options = [
      name: name,
      ip: config.ip,
      port: config.port,
      nodelay: true,
      recbuf: 1_048_576,
      backlog: 1024,
      # mochiweb's own default is 2,048 connections: a third agent past that waits unserved
      max: config.max_connections,
      acceptor_pool_size: min(32, config.max_connections),
      loop: {__MODULE__, :loop, [config]}
    ]

    %{id: :listener, start: {:mochiweb_socket_server, :start_link, [options]}}
  end

  @doc "The listener's TCP port (useful with `port: 0`)."
  @spec port(atom()) :: :inet.port_number()
  def port(name), do: :mochiweb_socket_server.get(name, :port)

  @doc false
  # Called by mochiweb's acceptor with the accepted socket (passive, binary).
  @spec loop(:gen_tcp.socket(), keyword(), TimelessMetrics.HTTP.config()) :: :ok
  def loop(socket, _socket_options, config), do: Connection.serve(socket, config)
end
