defmodule TimelessMetrics.HTTP.Auth do
  @moduledoc """
  Bearer-token access control. When neither `tokens` nor `read_only_tokens` is
  configured, everything is open. Otherwise each route has an access class:

  - `:public` (`/health`): always open;
  - `:read` (queries, discovery, export, `/metrics`, `/health/detailed`): a token or a read-only token;
  - `:write` (ingest) and `:admin` (`/internal/*`): a full token; a read-only token gets 403.

  A missing or unknown token gets 401 with `WWW-Authenticate: Bearer`. Tokens are
  compared in constant time (SHA-256 of both sides, then `:crypto.hash_equals/2`), and
  every configured token is compared, so timing does not reveal which one matched.

      iex> config = %{tokens: ["s3cret"], read_only_tokens: ["viewer"]}
      iex> req = %{headers: %{"authorization" => "Bearer viewer"}}
      iex> TimelessMetrics.HTTP.Auth.check(req, :read, config)
      :ok
      iex> TimelessMetrics.HTTP.Auth.check(req, :admin, config)
      {:error, {:forbidden, "a read-only token cannot use this endpoint"}}
  """

  @type access :: :public | :read | :write | :admin

  @doc "Check a request's token against the route's access class."
  @spec check(map(), access(), map()) :: :ok | {:error, {:unauthorized | :forbidden, String.t()}}
  def check(_req, :public, _config), do: :ok

  def check(req, access, config) do
    tokens = Map.get(config, :tokens, [])
    read_only = Map.get(config, :read_only_tokens, [])

    if tokens == [] and read_only == [] do
      :ok
    else
      case bearer(req) do
        nil ->
          {:error, {:unauthorized, "missing bearer token"}}

        token ->
          cond do
            member?(token, tokens) -> :ok
            member?(token, read_only) and access == :read -> :ok
            member?(token, read_only) -> {:error, {:forbidden, "a read-only token cannot use this endpoint"}}
            true -> {:error, {:unauthorized, "invalid bearer token"}}
          end
      end
    end
  end

  defp bearer(req) do
    with value when is_binary(value) <- Map.get(req.headers, "authorization"),
         [scheme, token] <- String.split(String.trim(value), " ", parts: 2),
         "bearer" <- String.downcase(scheme),
         token when token != "" <- String.trim(token) do
      token
    else
      _ -> nil
    end
  end

  # Compares against every token (no early exit) in constant time per comparison.
  defp member?(token, tokens) do
    digest = :crypto.hash(:sha256, token)

    Enum.reduce(tokens, false, fn candidate, found ->
      :crypto.hash_equals(digest, :crypto.hash(:sha256, candidate)) or found
    end)
  end
end
