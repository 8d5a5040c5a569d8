defmodule TimelessMetrics.HTTP.Ops do
  @moduledoc """
  Operations endpoints:

  - `GET /health`: `200 OK` while the store answers, `503` otherwise (no token needed);
  - `GET /health/detailed`: JSON with the store's `TimelessMetrics.info/1`, the ingest
    queue and counters (from `TimelessMetrics.IngestStats.snapshot/1` when that module
    is present) and the HTTP request count;
  - `GET /metrics`: the server's own metrics in Prometheus text format
    (`timeless_series`, `timeless_points`, `timeless_bytes_on_disk`, `timeless_wal_bytes`,
    `timeless_ingested_points_total{format}`, `timeless_rejected_lines_total{format,reason}`,
    `timeless_refused_requests_total{format,reason}`,
    `timeless_ingest_queue_depth`, `timeless_http_requests_total{path,code}`,
    `timeless_http_request_duration_seconds{path}` histogram...);
  - `GET|POST /internal/force_flush` and `/internal/force_merge`: as in VictoriaMetrics,
    run `TimelessMetrics.flush/1` / `merge/1` now (admin token when tokens are set).

      $ curl localhost:8428/metrics | grep timeless_series
      timeless_series 1042
  """

  alias TimelessMetrics.HTTP.{Errors, JSON, Request, Stats}

  @ingest_stats TimelessMetrics.IngestStats
  @text "text/plain; charset=utf-8"
  @exposition "text/plain; version=0.0.4; charset=utf-8"

  @doc "`/health`."
  @spec health(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def health(_request, config) do
    # O(1): the store is up when its engine handle is published (info/1 walks every chunk).
    case TimelessMetrics.Engine.handle(config.store) do
      {:ok, _} -> {200, [{"content-type", @text}], "OK"}
      {:error, reason} -> {503, [{"content-type", @text}], "unavailable: #{message(reason)}"}
    end
  end

  @doc "`/health/detailed`."
  @spec health_detailed(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def health_detailed(_request, config) do
    {status, store} =
      case TimelessMetrics.info(config.store) do
        {:ok, info} -> {200, %{"status" => "ok", "info" => info}}
        {:error, reason} -> {503, %{"status" => "unavailable", "error" => message(reason)}}
      end

    body = %{
      "status" => if(status == 200, do: "ok", else: "unavailable"),
      "store" => Map.put(store, "name", config.store),
      "ingest" => ingest_json(ingest_snapshot(config.store)),
      "http" => %{"requests_total" => config.stats |> Stats.requests() |> Enum.map(&elem(&1, 2)) |> Enum.sum()}
    }

    {status, [{"content-type", JSON.content_type()}], JSON.encode(body)}
  end

  @doc "`/metrics`: Prometheus text exposition of the server's own metrics."
  @spec metrics(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def metrics(_request, config) do
    store =
      case TimelessMetrics.info(config.store) do
        {:ok, info} ->
          [
            gauge("timeless_up", "1 while the store answers.", 1),
            gauge("timeless_series", "Series in the store.", info.series),
            gauge("timeless_points", "Points in the store (stored and buffered).", info.points),
            gauge("timeless_bytes_on_disk", "Bytes of chunk files, WAL and series log.", info.bytes_on_disk),
            gauge("timeless_wal_bytes", "Bytes of write-ahead log.", info.wal_bytes)
          ]

        {:error, _} ->
          [gauge("timeless_up", "1 while the store answers.", 0)]
      end

    body = [store, ingest_metrics(ingest_snapshot(config.store)), http_metrics(config.stats)]
    {200, [{"content-type", @exposition}], body}
  end

  @doc "`/internal/force_flush`: flush buffered points to chunks now."
  @spec force_flush(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def force_flush(_request, config), do: admin_result(TimelessMetrics.flush(config.store))

  @doc "`/internal/force_merge`: merge chunk files now."
  @spec force_merge(Request.t(), map()) :: {pos_integer(), list(), iodata()}
  def force_merge(_request, config), do: admin_result(TimelessMetrics.merge(config.store))

  defp admin_result({:ok, stats}) when is_map(stats) do
    JSON.ok(Map.new(for {k, v} <- stats, is_number(v) or is_binary(v), do: {to_string(k), v}))
  end

  defp admin_result({:ok, _other}), do: JSON.ok(%{})
  defp admin_result({:error, reason}), do: Errors.response(reason)

  # ------------------------------------------------------------------ ingest stats

  defp ingest_snapshot(store) do
    if Code.ensure_loaded?(@ingest_stats) and function_exported?(@ingest_stats, :snapshot, 1) do
      try do
        apply(@ingest_stats, :snapshot, [store])
      rescue
        _ -> nil
      catch
        :exit, _ -> nil
      end
    end
  end

  defp ingest_json(nil), do: nil

  defp ingest_json(snapshot) do
    %{
      "queue_depth" => Map.get(snapshot, :queue_depth, 0),
      "queue_bytes" => Map.get(snapshot, :queue_bytes, 0),
      "spool_bytes" => Map.get(snapshot, :spool_bytes, 0),
      "points" => stringify(Map.get(snapshot, :points, %{})),
      "requests" => stringify(Map.get(snapshot, :requests, %{})),
      "rejected" => pairs_json(Map.get(snapshot, :rejected, %{})),
      "refused" => pairs_json(Map.get(snapshot, :refused, %{}))
    }
  end

  defp pairs_json(counts) do
    for {{format, reason}, n} <- Enum.sort(counts),
        do: %{"format" => to_string(format), "reason" => to_string(reason), "count" => n}
  end

  defp stringify(map), do: Map.new(map, fn {k, v} -> {to_string(k), v} end)

  defp ingest_metrics(nil), do: []

  defp ingest_metrics(snapshot) do
    [
      header("timeless_ingested_points_total", "Points accepted by ingest, per format.", "counter"),
      for({format, n} <- Enum.sort(Map.get(snapshot, :points, %{})), do: sample("timeless_ingested_points_total", [format: format], n)),
      header("timeless_ingest_requests_total", "Ingest requests, per format.", "counter"),
      for({format, n} <- Enum.sort(Map.get(snapshot, :requests, %{})), do: sample("timeless_ingest_requests_total", [format: format], n)),
      header("timeless_rejected_lines_total", "Ingest lines or samples rejected, per format and reason.", "counter"),
      for({{format, reason}, n} <- Enum.sort(Map.get(snapshot, :rejected, %{})),
          do: sample("timeless_rejected_lines_total", [format: format, reason: reason], n)),
      header("timeless_refused_requests_total", "Ingest requests refused before queuing, per format and reason.", "counter"),
      for({{format, reason}, n} <- Enum.sort(Map.get(snapshot, :refused, %{})),
          do: sample("timeless_refused_requests_total", [format: format, reason: reason], n)),
      gauge("timeless_ingest_queue_depth", "Batches waiting in the ingest queue.", Map.get(snapshot, :queue_depth, 0)),
      gauge("timeless_ingest_queue_bytes", "Bytes waiting in the ingest queue.", Map.get(snapshot, :queue_bytes, 0)),
      gauge("timeless_ingest_spool_bytes", "Bytes spooled to disk by ingest.", Map.get(snapshot, :spool_bytes, 0))
    ]
  end

  # ------------------------------------------------------------------ http stats

  defp http_metrics(table) do
    requests = Stats.requests(table)
    durations = Stats.durations(table)

    [
      header("timeless_http_requests_total", "HTTP requests served, per route and status code.", "counter"),
      for({path, code, n} <- requests, do: sample("timeless_http_requests_total", [path: path, code: code], n)),
      header("timeless_http_request_duration_seconds", "HTTP request latency, per route.", "histogram"),
      for {path, count, sum, buckets} <- durations do
        [
          for({le, n} <- buckets, do: sample("timeless_http_request_duration_seconds_bucket", [path: path, le: le(le)], n)),
          sample("timeless_http_request_duration_seconds_sum", [path: path], sum),
          sample("timeless_http_request_duration_seconds_count", [path: path], count)
        ]
      end
    ]
  end

  defp le(:infinity), do: "+Inf"
  defp le(bound), do: JSON.format_value(bound)

  # ------------------------------------------------------------------ exposition

  defp gauge(name, help, value), do: [header(name, help, "gauge"), sample(name, [], value)]

  defp header(name, help, type), do: ["# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n"]

  defp sample(name, [], value), do: [name, " ", number(value), "\n"]

  defp sample(name, labels, value) do
    pairs = Enum.map_intersperse(labels, ",", fn {k, v} -> [Atom.to_string(k), "=\"", escape(to_string(v)), "\""] end)
    [name, "{", pairs, "} ", number(value), "\n"]
  end

  defp number(v) when is_integer(v), do: Integer.to_string(v)
  defp number(v) when is_float(v), do: JSON.format_value(v)

  defp escape(v), do: v |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")

  defp message({_kind, message}) when is_binary(message), do: message
  defp message(other), do: inspect(other)
end
