defmodule TimelessMetrics.HTTP.Errors do
  @moduledoc """
  The one place where error kinds become HTTP statuses and Prometheus error envelopes.

  Engine reasons are `{kind, message}` (see `TimelessMetrics.Engine`); the HTTP layer
  adds a few kinds of its own (`:unauthorized`, `:forbidden`, `:method_not_allowed`,
  `:timeout`).

  | kind | status | `errorType` |
  |---|---|---|
  | `:bad_input` | 400 | `bad_data` |
  | `:unauthorized` | 401 (+ `WWW-Authenticate: Bearer`) | `bad_data` |
  | `:forbidden` | 403 | `bad_data` |
  | `:not_found` | 404 | `not_found` |
  | `:method_not_allowed` | 405 | `bad_data` |
  | `:timeout` | 408 | `timeout` |
  | `:too_large` | 413 | `bad_data` |
  | `:head_too_large` | 431 | `bad_data` |
  | `:limit_exceeded`, `:execution` | 422 | `execution` |
  | `:query_timeout` (a PromQL query ran out of time) | 503 | `timeout` |
  | `:overloaded` | 429 (+ `Retry-After`) | `too_many_requests` |
  | `:unavailable` | 503 | `unavailable` |
  | anything else | 500 | `internal` |

      iex> {status, _headers, body} = TimelessMetrics.HTTP.Errors.response({:bad_input, "bad step"})
      iex> {status, IO.iodata_to_binary(body)}
      {400, ~s({"status":"error","errorType":"bad_data","error":"bad step"})}
  """

  alias TimelessMetrics.HTTP.JSON

  @typedoc "An error kind with its message."
  @type reason :: {atom(), String.t()} | atom()

  @retry_after_seconds "1"

  @doc "The HTTP status of an error kind."
  @spec status(atom()) :: 400..599
  def status(:bad_input), do: 400
  def status(:unauthorized), do: 401
  def status(:forbidden), do: 403
  def status(:not_found), do: 404
  def status(:method_not_allowed), do: 405
  def status(:timeout), do: 408
  def status(:too_large), do: 413
  def status(:head_too_large), do: 431
  def status(:limit_exceeded), do: 422
  def status(:execution), do: 422
  def status(:query_timeout), do: 503
  def status(:overloaded), do: 429
  def status(:unavailable), do: 503
  def status(_other), do: 500

  @doc "Prometheus's `errorType` for an error kind."
  @spec error_type(atom()) :: String.t()
  def error_type(kind) when kind in [:bad_input, :unauthorized, :forbidden, :method_not_allowed, :too_large, :head_too_large],
    do: "bad_data"

  def error_type(:not_found), do: "not_found"
  def error_type(kind) when kind in [:timeout, :query_timeout], do: "timeout"
  def error_type(kind) when kind in [:limit_exceeded, :execution], do: "execution"
  def error_type(:overloaded), do: "too_many_requests"
  def error_type(:unavailable), do: "unavailable"
  def error_type(_other), do: "internal"

  @doc "Extra response headers an error kind carries (`WWW-Authenticate`, `Retry-After`)."
  @spec headers(atom()) :: [{String.t(), String.t()}]
  def headers(:unauthorized), do: [{"www-authenticate", "Bearer"}]
  def headers(:overloaded), do: [{"retry-after", @retry_after_seconds}]
  def headers(_kind), do: []

  @doc """
  A complete error response `{status, headers, body}` with Prometheus's envelope
  `{"status":"error","errorType":...,"error":...}`. Accepts `{kind, message}` or
  `kind` and `message` separately; unknown reasons become 500 `internal`.
  """
  @spec response(reason()) :: {pos_integer(), [{String.t(), String.t()}], iodata()}
  def response({kind, message}) when is_atom(kind) and is_binary(message), do: response(kind, message)
  def response(kind) when is_atom(kind), do: response(kind, Atom.to_string(kind))
  def response(other), do: response(:internal, inspect(other))

  @doc "Same as `response/1` with the kind and message apart."
  @spec response(atom(), String.t()) :: {pos_integer(), [{String.t(), String.t()}], iodata()}
  def response(kind, message) do
    body =
      JSON.encode(
        {[{"status", "error"}, {"errorType", error_type(kind)}, {"error", to_string(message)}]}
      )

    {status(kind), [{"content-type", JSON.content_type()} | headers(kind)], body}
  end
end
