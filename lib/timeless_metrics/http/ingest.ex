defmodule TimelessMetrics.HTTP.Ingest do
  @moduledoc """
  The HTTP ingest endpoints' handler, called by the router with the format of the
  endpoint, the request (body already read within the raw size limit) and the server
  config (`store:`, `max_body_bytes:`). It answers `{status, headers, body}`:

  | status | when |
  |---|---|
  | 204 | the body is accepted: spooled durably (on disk) and queued; ingestion follows |
  | 400 | a bad query parameter (named), or a body not valid in its `Content-Encoding` (named) |
  | 413 | the body decodes to more than `max_body_bytes` |
  | 415 | an unknown `Content-Encoding`, or snappy without the engine's decompressor |
  | 429 | the ingest queue is full (`ingest_queue_max_bodies` / `_bytes`), with `Retry-After` |
  | 503 | the store is not running or its spool cannot be written, with `Retry-After` |

  Remote write bodies are always snappy (block format), whatever the header says when
  it says nothing. Query parameters: see `TimelessMetrics.Ingest.Params`.

      iex> {:ok, _} = TimelessMetrics.start_link(name: :http_ingest_doc, mode: :memory, ingest_fun: fn _, _, _, _ -> {:ok, %{samples: 1}} end)
      iex> req = %{method: "POST", path: "/api/v1/import/prometheus", query: %{"extra_label" => "dc=eu"}, headers: %{}, body: "up 1\\n"}
      iex> TimelessMetrics.HTTP.Ingest.handle(:prometheus_text, req, %{store: :http_ingest_doc, max_body_bytes: 1_048_576})
      {204, [], ""}
      iex> TimelessMetrics.HTTP.Ingest.handle(:influx, %{req | query: %{"precision" => "y"}}, %{store: :http_ingest_doc, max_body_bytes: 1_048_576})
      {400, [{"content-type", "text/plain; charset=utf-8"}], "invalid query parameter precision=\\"y\\": expected one of ns, us, ms, s (or n, u)\\n"}
      iex> TimelessMetrics.stop(:http_ingest_doc)
      :ok
  """

  alias TimelessMetrics.{Ingest, IngestStats}
  alias TimelessMetrics.Ingest.{Decompress, Params, Queue}

  @type format :: :vm_json | :prometheus_text | :influx | :remote_write
  @type request :: %{
          required(:query) => %{String.t() => String.t() | [String.t()]},
          required(:headers) => %{String.t() => String.t()},
          required(:body) => binary(),
          optional(atom()) => term()
        }
  @type response :: {pos_integer(), [{String.t(), String.t()}], iodata()}

  @retry_full "1"
  @retry_down "5"

  @doc "Handle one ingest request of `format`."
  @spec handle(format(), request(), %{required(:store) => atom(), required(:max_body_bytes) => pos_integer()}) :: response()
  def handle(format, request, config) do
    received_ms = System.os_time(:millisecond)

    case Queue.fetch(config.store) do
      {:ok, q} ->
        IngestStats.count_request(q.stats, format)

        case accept(q, format, request, config.max_body_bytes, received_ms) do
          :ok ->
            {204, [], ""}

          {:error, reason, status, message, headers} ->
            IngestStats.add_refused(q.stats, format, reason)
            text(status, message, headers)
        end

      {:error, {:unavailable, message}} ->
        text(503, message, [{"retry-after", @retry_down}])
    end
  end

  defp accept(q, format, request, max_bytes, received_ms) do
    with {:ok, opts} <- params(format, request, received_ms),
         :ok <- room(q),
         {:ok, body} <- decode(format, request, max_bytes) do
      submit(q, format, body, opts)
    end
  end

  defp params(format, request, received_ms) do
    case Params.parse(format, Map.get(request, :query, %{}), received_ms) do
      {:ok, opts} -> {:ok, opts}
      {:error, message} -> {:error, :bad_parameter, 400, message, []}
    end
  end

  # Refuse before spending CPU on decoding when the queue is already full.
  defp room(q), do: if(Queue.room?(q), do: :ok, else: full())

  defp decode(format, request, max_bytes) do
    encoding = request |> Map.get(:headers, %{}) |> Map.get("content-encoding")

    with {:ok, encoding} <- encoding(format, encoding) do
      case Decompress.decode(encoding, request.body, max_bytes) do
        {:ok, body} -> {:ok, body}
        {:error, {:too_large, message}} -> {:error, :too_large, 413, message, []}
        {:error, {:bad_input, message}} -> {:error, :bad_encoding, 400, message, []}
        {:error, {:unsupported, message}} -> {:error, :bad_encoding, 415, message, []}
      end
    end
  end

  defp encoding(:remote_write, enc) when enc in [nil, ""], do: {:ok, "snappy"}

  defp encoding(:remote_write, enc) do
    if String.downcase(String.trim(enc)) == "snappy",
      do: {:ok, "snappy"},
      else: {:error, :bad_encoding, 415, "remote write bodies must be snappy-compressed, got Content-Encoding #{inspect(enc)}", []}
  end

  defp encoding(_format, enc), do: {:ok, enc}

  defp submit(_q, _format, "", _opts), do: :ok

  defp submit(q, format, body, opts) do
    case Ingest.submit(q, format, body, opts) do
      :ok -> :ok
      {:error, :full} -> full()
      {:error, {:unavailable, message}} -> {:error, :unavailable, 503, message, [{"retry-after", @retry_down}]}
      {:error, {_kind, message}} -> {:error, :unavailable, 503, message, [{"retry-after", @retry_down}]}
    end
  end

  defp full do
    {:error, :queue_full, 429, "the ingest queue is full; retry later", [{"retry-after", @retry_full}]}
  end

  defp text(status, message, headers) do
    {status, [{"content-type", "text/plain; charset=utf-8"} | headers], message <> "\n"}
  end
end
