defmodule TimelessMetrics.Ingest.RejectLog do
  @moduledoc """
  Rate-limited warnings about rejected ingest lines: at most 20 lines per store
  every 10 seconds; the count of those left out is logged when the next window opens.
  The state is an `:atomics` array of 3 (window, logged in window, suppressed), shared
  by the store's workers.

      limit = :atomics.new(3, signed: true)
      TimelessMetrics.Ingest.RejectLog.log(limit, :metrics, :influx,
        [%{line: 3, reason: :bad_value, message: "field value is not a number", sample: "cpu v=x 1"}], 42)
      # [warning] TimelessMetrics :metrics: influx line 3 rejected (bad_value): field value is not a number: "cpu v=x 1" (body 42)
  """

  require Logger

  @per_window 20
  @window_s 10
  @sample_bytes 200

  @doc "The number of lines logged per window."
  @spec per_window() :: pos_integer()
  def per_window, do: @per_window

  @doc "Log (some of) the rejections of one body (`body`: its sequence number, named in the log)."
  @spec log(:atomics.atomics_ref(), atom(), atom(), [map()], non_neg_integer() | nil) :: :ok
  def log(limit, store, format, rejected, body \\ nil)
  def log(_limit, _store, _format, [], _body), do: :ok

  def log(limit, store, format, rejected, body) do
    where = if body, do: " (body #{body})", else: ""

    roll_window(limit, store)

    Enum.each(rejected, fn r ->
      if :atomics.add_get(limit, 2, 1) <= @per_window do
        Logger.warning(
          "TimelessMetrics #{inspect(store)}: #{format} line #{Map.get(r, :line)} rejected (#{Map.get(r, :reason)}): " <>
            "#{Map.get(r, :message)}: #{inspect(truncate(Map.get(r, :sample, "")))}" <> where
        )
      else
        :atomics.add(limit, 3, 1)
      end
    end)
  end

  defp roll_window(limit, store) do
    window = div(System.monotonic_time(:second), @window_s)
    old = :atomics.get(limit, 1)

    # Only the process that moves the window on resets it and reports the suppressed.
    if old != window and :atomics.compare_exchange(limit, 1, old, window) == :ok do
      :atomics.put(limit, 2, 0)
      suppressed = :atomics.exchange(limit, 3, 0)

      if suppressed > 0 do
        Logger.warning("TimelessMetrics #{inspect(store)}: #{suppressed} more rejected ingest lines were not logged")
      end
    end

    :ok
  end

  defp truncate(sample) when is_binary(sample) and byte_size(sample) > @sample_bytes do
    # cut on a character boundary when the sample is UTF-8
    cut =
      case :unicode.characters_to_binary(binary_part(sample, 0, @sample_bytes)) do
        bin when is_binary(bin) -> bin
        {_incomplete_or_error, good, _rest} -> good
      end

    cut <> "..."
  end

  defp truncate(sample) when is_binary(sample), do: sample
  defp truncate(other), do: inspect(other)
end
