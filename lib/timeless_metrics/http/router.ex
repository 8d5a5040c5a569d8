defmodule TimelessMetrics.HTTP.Router do
  @moduledoc """
  Routing of request maps (see `TimelessMetrics.HTTP.Request`) to handlers, with the
  whole routing table in `@routes`. Every `/api/...` path is also served under
  `/prometheus/api/...`. HEAD is accepted wherever GET is.

  | path | methods | access | handler |
  |---|---|---|---|
  | `/api/v1/query`, `/api/v1/query_range` | GET POST | read | `TimelessMetrics.HTTP.Query` |
  | `/api/v1/export` | GET POST | read | `TimelessMetrics.HTTP.Export` (streamed JSON lines) |
  | `/api/v1/labels`, `/api/v1/label/:name/values`, `/api/v1/series` | GET POST | read | `TimelessMetrics.HTTP.Discovery` |
  | `/api/v1/metadata`, `/api/v1/query_exemplars`, `/api/v1/status/buildinfo`, `/api/v1/status/tsdb` | GET POST | read | `TimelessMetrics.HTTP.Discovery` |
  | `/api/v1/import` | POST | write | ingest `:vm_json` |
  | `/api/v1/import/prometheus` | POST | write | ingest `:prometheus_text` |
  | `/write`, `/api/v2/write`, `/influx/write`, `/influx/api/v2/write` | POST | write | ingest `:influx` |
  | `/api/v1/write` | POST | write | ingest `:remote_write` |
  | `/health` | GET | public | `TimelessMetrics.HTTP.Ops` |
  | `/health/detailed`, `/metrics` | GET | read | `TimelessMetrics.HTTP.Ops` |
  | `/internal/force_flush`, `/internal/force_merge` | GET POST | admin | `TimelessMetrics.HTTP.Ops` |

  Ingest routes call `TimelessMetrics.HTTP.Ingest.handle(format, request, config)`,
  which returns `{status, headers, body}` like every handler. Read routes see a
  form-encoded POST body merged into `query` (`TimelessMetrics.HTTP.Request.merge_form/1`).

      iex> req = TimelessMetrics.HTTP.Request.new("DELETE", "/prometheus/api/v1/labels")
      iex> {status, headers, _body} = TimelessMetrics.HTTP.Router.call(req, %{})
      iex> {status, List.keyfind(headers, "allow", 0)}
      {405, {"allow", "GET, HEAD, POST"}}
  """

  require Logger

  alias TimelessMetrics.HTTP.{Auth, Discovery, Errors, Export, Ops, Query, Request}

  @ingest TimelessMetrics.HTTP.Ingest

  @read ~w(GET POST)
  @routes [
    {"/api/v1/query", @read, :read, {Query, :instant}},
    {"/api/v1/query_range", @read, :read, {Query, :range}},
    {"/api/v1/export", @read, :read, {Export, :export}},
    {"/api/v1/labels", @read, :read, {Discovery, :labels}},
    {"/api/v1/label/:name/values", @read, :read, {Discovery, :label_values}},
    {"/api/v1/series", @read, :read, {Discovery, :series}},
    {"/api/v1/metadata", @read, :read, {Discovery, :metadata}},
    {"/api/v1/query_exemplars", @read, :read, {Discovery, :exemplars}},
    {"/api/v1/status/buildinfo", @read, :read, {Discovery, :buildinfo}},
    {"/api/v1/status/tsdb", @read, :read, {Discovery, :tsdb}},
    {"/api/v1/import", ~w(POST), :write, {:ingest, :vm_json}},
    {"/api/v1/import/prometheus", ~w(POST), :write, {:ingest, :prometheus_text}},
    {"/api/v1/write", ~w(POST), :write, {:ingest, :remote_write}},
    {"/api/v2/write", ~w(POST), :write, {:ingest, :influx}},
    {"/write", ~w(POST), :write, {:ingest, :influx}},
    {"/influx/write", ~w(POST), :write, {:ingest, :influx}},
    {"/influx/api/v2/write", ~w(POST), :write, {:ingest, :influx}},
    {"/health", ~w(GET), :public, {Ops, :health}},
    {"/health/detailed", ~w(GET), :read, {Ops, :health_detailed}},
    {"/metrics", ~w(GET), :read, {Ops, :metrics}},
    {"/internal/force_flush", ~w(GET POST), :admin, {Ops, :force_flush}},
    {"/internal/force_merge", ~w(GET POST), :admin, {Ops, :force_merge}}
  ]

  @type response :: {pos_integer(), [{String.t(), String.t()}], iodata() | {:stream, ((iodata() -> :ok) -> term())}}

  @typedoc "A request that passed `preflight/2`: its route, access class and handler are known."
  @type routed :: {:routed, Request.t(), Auth.access(), {module() | :ingest, atom()}}

  @doc "The routing table: `[{pattern, methods, access, target}]`."
  @spec routes() :: [{String.t(), [String.t()], Auth.access(), {module() | :ingest, atom()}}]
  def routes, do: @routes

  @doc "Answer a request map (routing, checks and the handler in one step)."
  @spec call(Request.t(), map()) :: response()
  def call(request, config) do
    case preflight(request, config) do
      {:routed, _, _, _} = routed -> dispatch(routed, config)
      refused -> refused
    end
  end

  @doc """
  Route, method and token checks only, before the body is read: the routed request
  (hand it to `dispatch/2` once its body is in) or the refusal (404, 405, 401, 403).
  The route is matched once per request.
  """
  @spec preflight(Request.t(), map()) :: routed() | response()
  def preflight(request, config) do
    case resolve(request, config) do
      {:ok, request, access, target} -> {:routed, request, access, target}
      {:error, response} -> response
    end
  end

  @doc "Run the handler of a routed request, `body` being the request body read since."
  @spec dispatch(routed(), map(), binary() | nil) :: response()
  def dispatch({:routed, request, access, target}, config, body) do
    dispatch({:routed, %{request | body: body}, access, target}, config)
  end

  defp dispatch({:routed, request, access, target}, config) do
    request = if access == :read, do: Request.merge_form(request), else: request
    run(target, request, config)
  end

  @doc "The route pattern a request matches (`\"other\"` when none), for metrics labels."
  @spec label(Request.t()) :: String.t()
  def label(%{route: route}), do: route

  def label(request) do
    case match(request.path) do
      {:ok, {pattern, _methods, _access, _target}, _params} -> pattern
      :error -> "other"
    end
  end

  defp resolve(request, config) do
    with {:ok, {pattern, methods, access, target}, params} <- route(request),
         :ok <- method_allowed(request.method, methods),
         :ok <- Auth.check(request, access, config) do
      {:ok, Map.merge(request, %{route: pattern, path_params: params}), access, target}
    else
      {:error, {:method_not_allowed, _message, allowed}} ->
        {status, headers, body} = Errors.response(:method_not_allowed, "method #{request.method} not allowed; use #{allowed}")
        {:error, {status, [{"allow", allowed} | headers], body}}

      {:error, reason} ->
        {:error, Errors.response(reason)}
    end
  end

  defp route(request) do
    case match(request.path) do
      {:ok, route, params} -> {:ok, route, params}
      :error -> {:error, {:not_found, "unknown path #{request.path}"}}
    end
  end

  # Routes without `:name` segments by their exact path (also under /prometheus): one
  # map lookup for what clients send, before splitting the path into segments.
  @literal_routes (for {pattern, _methods, _access, _target} = route <- @routes,
                       not String.contains?(pattern, ":"),
                       path <- [pattern | if(String.starts_with?(pattern, "/api/"), do: ["/prometheus" <> pattern], else: [])],
                       into: %{},
                       do: {path, route})

  defp match(path) do
    case @literal_routes do
      %{^path => route} -> {:ok, route, %{}}
      _ -> match_split(path)
    end
  end

  defp match_split("/prometheus/api/" <> rest), do: match_segments(String.split("api/" <> rest, "/", trim: true))
  defp match_split(path), do: match_segments(String.split(path, "/", trim: true))

  # One function clause per route, generated from @routes: `:name` segments bind.
  for {pattern, methods, access, target} <- @routes do
    {segments, bindings} =
      pattern
      |> String.split("/", trim: true)
      |> Enum.map_reduce([], fn
        ":" <> name, acc ->
          var = Macro.var(String.to_atom(name), __MODULE__)
          {var, [{name, var} | acc]}

        literal, acc ->
          {literal, acc}
      end)

    params = {:%{}, [], Enum.reverse(bindings)}

    defp match_segments(unquote(segments)),
      do: {:ok, {unquote(pattern), unquote(methods), unquote(access), unquote(Macro.escape(target))}, unquote(params)}
  end

  defp match_segments(_segments), do: :error

  defp method_allowed("HEAD", methods), do: method_allowed("GET", methods)

  defp method_allowed(method, methods) do
    if method in methods do
      :ok
    else
      allowed = if "GET" in methods, do: Enum.sort(["HEAD" | methods]), else: methods
      {:error, {:method_not_allowed, "not allowed", Enum.join(allowed, ", ")}}
    end
  end

  defp run(target, request, config) do
    case target do
      # ingest handlers always get a binary body ("" when the request had none)
      {:ingest, format} -> apply(@ingest, :handle, [format, %{request | body: request.body || ""}, config])
      {module, fun} -> apply(module, fun, [request, config])
    end
  rescue
    e ->
      Logger.error("TimelessMetrics.HTTP: #{request.method} #{request.path} failed: " <> Exception.format(:error, e, __STACKTRACE__))
      Errors.response(:internal, "internal error: #{Exception.message(e)}")
  end
end
