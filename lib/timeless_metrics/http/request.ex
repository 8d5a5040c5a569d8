defmodule TimelessMetrics.HTTP.Request do
  @moduledoc """
  The plain request map every handler receives (built by
  `TimelessMetrics.HTTP.MochiwebAdapter`, or by hand in tests):

      %{
        method: "GET",                       # upper case
        path: "/api/v1/series",              # percent-decoded, without the query string
        query: %{"match[]" => ["up"]},       # every value is a list, in order of appearance
        headers: %{"content-type" => "..."}, # lower-case names; repeated headers joined with ", "
        body: nil | binary(),                # already de-gzipped, at most max_body_bytes
        peer: {127, 0, 0, 1}                 # client IP tuple, or nil
      }

  The router adds `route` (the matched route pattern, e.g. `"/api/v1/label/:name/values"`,
  without the `/prometheus` prefix) and `path_params` (`%{"name" => "job"}`).

      iex> req = TimelessMetrics.HTTP.Request.new("GET", "/api/v1/series?match[]=up&match[]=down&limit=5")
      iex> TimelessMetrics.HTTP.Request.params(req, "match[]")
      ["up", "down"]
      iex> TimelessMetrics.HTTP.Request.param(req, "limit")
      "5"
  """

  @type t :: %{
          required(:method) => String.t(),
          required(:path) => String.t(),
          required(:query) => %{String.t() => [String.t()]},
          required(:headers) => %{String.t() => String.t()},
          required(:body) => binary() | nil,
          required(:peer) => :inet.ip_address() | nil,
          optional(:route) => String.t(),
          optional(:path_params) => %{String.t() => String.t()}
        }

  @doc """
  A request map from a method and a target (`"/path?query"`), for tests and tools.
  Options: `headers` (map or list, names lower-cased), `body`, `peer`.
  """
  @spec new(String.t(), String.t(), keyword()) :: t()
  def new(method, target, opts \\ []) do
    {path, qs} =
      case String.split(target, "?", parts: 2) do
        [p, q] -> {p, q}
        [p] -> {p, ""}
      end

    %{
      method: String.upcase(method),
      path: URI.decode(path),
      query: parse_query(qs),
      headers: Map.new(Keyword.get(opts, :headers, %{}), fn {k, v} -> {String.downcase(to_string(k)), v} end),
      body: Keyword.get(opts, :body),
      peer: Keyword.get(opts, :peer)
    }
  end

  @doc """
  Parse an `application/x-www-form-urlencoded` string (a query string or a form body)
  into `%{name => [values]}`. `+` is a space; malformed escapes are kept literally.
  """
  @spec parse_query(binary()) :: %{String.t() => [String.t()]}
  def parse_query(""), do: %{}

  def parse_query(qs) do
    qs
    |> String.split("&", trim: true)
    |> Enum.reduce([], fn pair, acc ->
      {k, v} =
        case String.split(pair, "=", parts: 2) do
          [k, v] -> {k, v}
          [k] -> {k, ""}
        end

      [{decode(k), decode(v)} | acc]
    end)
    |> Enum.reverse()
    |> merge_pairs(%{})
  end

  defp decode(s) do
    s = String.replace(s, "+", " ")

    try do
      URI.decode(s)
    rescue
      ArgumentError -> s
    end
  end

  defp merge_pairs(pairs, into) do
    pairs
    |> Enum.reduce(into, fn {k, v}, acc -> Map.update(acc, k, [v], &[v | &1]) end)
    |> Map.new(fn {k, vs} -> {k, Enum.reverse(vs)} end)
  end

  @doc """
  Merge a form-encoded POST body into `query`, body values first (as Go's
  `Request.FormValue` sees them). Other requests are returned unchanged.
  """
  @spec merge_form(t()) :: t()
  def merge_form(%{method: "POST", body: body} = req) when is_binary(body) and body != "" do
    if form?(req) do
      form = parse_query(body)
      %{req | query: Map.merge(req.query, form, fn _k, from_url, from_body -> from_body ++ from_url end)}
    else
      req
    end
  end

  def merge_form(req), do: req

  defp form?(req) do
    case header(req, "content-type") do
      nil -> false
      ct -> ct |> String.downcase() |> String.starts_with?("application/x-www-form-urlencoded")
    end
  end

  @doc "All values of a parameter (`[]` when absent)."
  @spec params(t(), String.t()) :: [String.t()]
  def params(req, name), do: Map.get(req.query, name, [])

  @doc "The first value of a parameter, or `default` when absent."
  @spec param(t(), String.t(), term()) :: String.t() | term()
  def param(req, name, default \\ nil) do
    case params(req, name) do
      [v | _] -> v
      [] -> default
    end
  end

  @doc "A header value by lower-case name, or nil."
  @spec header(t(), String.t()) :: String.t() | nil
  def header(req, name), do: Map.get(req.headers, name)
end
