defmodule TimelessMetrics.HTTP.Export do
  @moduledoc """
  `/api/v1/export`: VictoriaMetrics's JSON-lines export, one line per series,

      {"metric":{"__name__":"up","job":"api"},"values":[1,0.5],"timestamps":[1700000000000,1700000015000]}

  for the series matching the `match[]` selectors (required, repeatable), with
  points in `start`..`end` (unix seconds or RFC 3339; default: everything).
  Timestamps are milliseconds; values are JSON numbers, integral values without a
  fraction, and the IEEE specials as the strings `"NaN"`, `"+Inf"`, `"-Inf"`; stale
  markers are left out.

  The series list is resolved before answering (so a bad selector is a 400), then
  the points are read and sent in groups of 64 series with chunked transfer
  encoding: the response is never built whole in memory.

      $ curl 'localhost:8428/api/v1/export?match[]={job="api"}&start=1700000000'
  """

  alias TimelessMetrics.HTTP.{Errors, Params, Query}

  @group 64
  @content_type "application/stream+json; charset=utf-8"

  @doc "Answer an export request with a streamed body."
  @spec export(TimelessMetrics.HTTP.Request.t(), map()) ::
          {pos_integer(), list(), iodata() | {:stream, ((iodata() -> :ok) -> :ok)}}
  def export(request, config) do
    with {:ok, selectors} <- Params.selectors(request, "match[]", required: true),
         {:ok, from} <- Params.time(request, ["start", "from"], nil),
         {:ok, to} <- Params.time(request, ["end", "to"], nil),
         range = [from: from, to: to, unit: :millisecond],
         {:ok, series} <- Query.union(selectors, &TimelessMetrics.list_series(config.store, nil, &1, range)) do
      {200, [{"content-type", @content_type}], {:stream, &stream(config.store, series, range, &1)}}
    else
      {:error, reason} -> Errors.response(reason)
    end
  end

  @doc """
  Write the export lines of `series` (`[%{metric:, labels:}]`) through `emit`, one
  call per group of series.
  """
  @spec stream(atom(), [map()], keyword(), (iodata() -> :ok)) :: :ok
  def stream(store, series, range, emit) do
    series
    |> Stream.chunk_every(@group)
    |> Enum.each(fn group -> emit.(Enum.map(group, &line(store, &1, range))) end)
  end

  defp line(store, %{metric: metric, labels: labels}, range) do
    points =
      case TimelessMetrics.query(store, metric, labels, Keyword.reject(range, fn {_, v} -> v == nil end)) do
        {:ok, points} -> for {t, v} <- points, v != :stale, do: {t, v}
        {:error, reason} -> raise "export of #{metric}#{inspect(labels)} failed: #{inspect(reason)}"
      end

    if points == [] do
      []
    else
      object =
        {[
           {"metric", Map.put(labels, "__name__", metric)},
           {"values", Enum.map(points, fn {_t, v} -> number(v) end)},
           {"timestamps", Enum.map(points, fn {t, _v} -> t end)}
         ]}

      [:jiffy.encode(object), ?\n]
    end
  end

  @max_exact 9_007_199_254_740_992

  defp number(v) when is_float(v) and v == trunc(v) and abs(v) < @max_exact, do: trunc(v)
  defp number(v) when is_float(v), do: v
  defp number(:nan), do: "NaN"
  defp number(:infinity), do: "+Inf"
  defp number(:neg_infinity), do: "-Inf"
end
