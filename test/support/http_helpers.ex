defmodule TimelessMetrics.HTTPHelpers do
  @moduledoc """
  Helpers for the HTTP tests: a seeded store, router calls with request maps, and
  a real server on a free port spoken to with `:httpc` or a raw socket.

      store = TimelessMetrics.HTTPHelpers.seeded_store!()
      {200, json} = TimelessMetrics.HTTPHelpers.route_json(store, "GET", "/api/v1/labels")
  """
  import ExUnit.Callbacks, only: [start_supervised!: 1]

  alias TimelessMetrics.HTTP.{Request, Router}

  @t0 1_700_000_000

  @doc "The base timestamp of the seed data (unix seconds)."
  def t0, do: @t0

  @doc """
  A memory store holding:
  - `up{job="api",instance="a:1"}` 1 @t0, 0 @t0+15
  - `up{job="db",instance="b:1"}` 1 @t0
  - `http_requests_total{job="api",code="200",method="GET"}` 10 @t0, 20 @t0+60, 5 @t0+120 (reset)
  - `http_requests_total{job="api",code="500",method="POST"}` 1 @t0
  - `old_metric{job="legacy"}` 7 @t0-86400
  """
  def seeded_store!(opts \\ []) do
    store = TimelessMetrics.TestStore.start!(opts)

    :ok =
      TimelessMetrics.write_batch(store, [
        {"up", %{"job" => "api", "instance" => "a:1"}, 1, @t0},
        {"up", %{"job" => "api", "instance" => "a:1"}, 0, @t0 + 15},
        {"up", %{"job" => "db", "instance" => "b:1"}, 1, @t0},
        {"http_requests_total", %{"job" => "api", "code" => "200", "method" => "GET"}, 10, @t0},
        {"http_requests_total", %{"job" => "api", "code" => "200", "method" => "GET"}, 20, @t0 + 60},
        {"http_requests_total", %{"job" => "api", "code" => "200", "method" => "GET"}, 5, @t0 + 120},
        {"http_requests_total", %{"job" => "api", "code" => "500", "method" => "POST"}, 1, @t0},
        {"old_metric", %{"job" => "legacy"}, 7, @t0 - 86_400}
      ])

    store
  end

  @doc "The server config for a store (not started), with extra options."
  def config(store, opts \\ []) do
    {:ok, config} = TimelessMetrics.HTTP.validate([store: store] ++ opts)
    config
  end

  @doc "Call the router; a streamed body is collected. Returns `{status, headers, binary}`."
  def route(config_or_store, method, target, opts \\ []) do
    config = if is_map(config_or_store), do: config_or_store, else: config(config_or_store)
    {status, headers, body} = Router.call(Request.new(method, target, opts), config)
    {status, headers, collect(body)}
  end

  @doc "Call the router and decode a JSON body: `{status, term}`."
  def route_json(config_or_store, method, target, opts \\ []) do
    {status, _headers, body} = route(config_or_store, method, target, opts)
    {status, :jiffy.decode(body, [:return_maps, :use_nil])}
  end

  @doc "The body of a response, running a `{:stream, fun}` body into a binary."
  def collect({:stream, fun}) do
    {:ok, acc} = Agent.start_link(fn -> [] end)
    fun.(fn data -> Agent.update(acc, &[&1, data]) end)
    data = Agent.get(acc, & &1)
    Agent.stop(acc)
    IO.iodata_to_binary(data)
  end

  def collect(body), do: IO.iodata_to_binary(body)

  @doc "Start an HTTP server for `store` on a free port; returns its base URL."
  def start_server!(store, opts \\ []) do
    name = :"http_#{System.unique_integer([:positive])}"
    start_supervised!({TimelessMetrics.HTTP, [store: store, port: 0, name: name] ++ opts})
    port = TimelessMetrics.HTTP.port(name)
    %{url: "http://127.0.0.1:#{port}", port: port, name: name}
  end

  @doc "An HTTP request with `:httpc`: `{status, headers_map, body}`."
  def http(method, url, headers \\ [], body \\ nil, content_type \\ "application/x-www-form-urlencoded") do
    headers = Enum.map(headers, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)
    # :httpc refuses brackets in URIs
    url = url |> String.replace("[", "%5B") |> String.replace("]", "%5D")

    request =
      if body == nil,
        do: {String.to_charlist(url), headers},
        else: {String.to_charlist(url), headers, String.to_charlist(content_type), body}

    {:ok, {{_, status, _}, resp_headers, resp_body}} =
      :httpc.request(method, request, [timeout: 10_000], body_format: :binary)

    {status, Map.new(resp_headers, fn {k, v} -> {to_string(k), to_string(v)} end), resp_body}
  end

  @doc "Decode JSON."
  def json(body), do: :jiffy.decode(body, [:return_maps, :use_nil])

  @doc "Send raw bytes on a new connection and read until the server closes it (or `timeout`)."
  def raw(port, data, timeout \\ 5_000) do
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
    :ok = :gen_tcp.send(socket, data)
    result = read_all(socket, timeout, [])
    :gen_tcp.close(socket)
    result
  end

  defp read_all(socket, timeout, acc) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} -> read_all(socket, timeout, [acc, data])
      {:error, :closed} -> {:closed, IO.iodata_to_binary(acc)}
      {:error, :timeout} -> {:open, IO.iodata_to_binary(acc)}
    end
  end
end
