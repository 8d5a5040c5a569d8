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
    |> :binary.split("&", [:global, :trim_all])
    |> Enum.reduce(%{}, fn pair, acc ->
      {k, v} =
        case :binary.split(pair, "=") do
          [k, v] -> {decode(k), decode(v)}
          [k] -> {decode(k), ""}
        end

      case acc do
        %{^k => vs} -> %{acc | k => [v | vs]}
        _ -> Map.put(acc, k, [v])
      end
    end)
    |> Map.new(fn {k, vs} -> {k, :lists.reverse(vs)} end)
  end

  # `+` is a space, then `%XX` escapes are decoded; a `%` without two hex digits
  # after it stays as it is (as `URI.decode/1` does). Splitting on the byte
  # patterns: values are mostly short and plain, a PromQL query has a few escapes.
  defp decode(s) do
    s = if :binary.match(s, "+") == :nomatch, do: s, else: :binary.replace(s, "+", " ", [:global])

    case :binary.split(s, "%", [:global]) do
      [_] -> s
      [first | escaped] -> unescape(escaped, [first])
    end
  end

  defguardp hex?(c) when c in ?0..?9 or c in ?a..?f or c in ?A..?F

  defp unescape([<<a, b, rest::binary>> | more], acc) when hex?(a) and hex?(b),
    do: unescape(more, [rest, hex(a) * 16 + hex(b) | acc])

  defp unescape([piece | more], acc), do: unescape(more, [piece, ?% | acc])
  defp unescape([], acc), do: IO.iodata_to_binary(:lists.reverse(acc))

  defp hex(c) when c in ?0..?9, do: c - ?0
  defp hex(c) when c in ?a..?f, do: c - ?a + 10
  defp hex(c), do: c - ?A + 10

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
