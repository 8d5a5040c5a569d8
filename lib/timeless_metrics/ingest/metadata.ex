defmodule TimelessMetrics.Ingest.Metadata do
  @moduledoc """
  Stores the metric metadata found by the parsers (`# TYPE`, `# HELP`, `# UNIT`,
  remote-write metadata) in the admin database's `metric_metadata` table.

  One transaction per ingested body, and only for families whose metadata changed:
  a cache (an ETS table of the store's `TimelessMetrics.Ingest.Queue`) remembers what
  was written, so a scrape repeating the same `# HELP` lines costs no SQLite write.
  A field the body does not give (`nil`) keeps its stored value.

      TimelessMetrics.Ingest.Metadata.upsert(:metrics, cache,
        [%{metric: "http_requests_total", type: "counter", help: "Requests.", unit: nil}])
      #=> {:ok, 1}
  """

  require Logger

  alias TimelessMetrics.DB

  @types ~w(counter gauge histogram gaugehistogram summary info stateset unknown)

  @sql """
  INSERT INTO metric_metadata (metric_name, type, help, unit, updated_at)
  VALUES (?1, coalesce(?2, 'unknown'), coalesce(?3, ''), coalesce(?4, ''), ?5)
  ON CONFLICT (metric_name) DO UPDATE SET
    type = coalesce(?2, type), help = coalesce(?3, help), unit = coalesce(?4, unit), updated_at = ?5
  """

  @type item :: %{metric: String.t(), type: String.t() | nil, help: String.t() | nil, unit: String.t() | nil}

  @doc """
  Upsert the changed items; returns how many families were written. `cache` is an ETS
  `set` table. A failed write is logged and retried with the next body that carries the
  family.
  """
  @spec upsert(atom(), :ets.tid(), [item()]) :: {:ok, non_neg_integer()} | {:error, term()}
  def upsert(_store, _cache, []), do: {:ok, 0}

  def upsert(store, cache, items) do
    changed =
      items
      |> Enum.flat_map(&normalize/1)
      |> merge_same_family()
      |> Enum.flat_map(fn {name, fields} -> changed(cache, name, fields) end)

    write(store, cache, changed)
  end

  defp normalize(%{metric: name} = item) when is_binary(name) and name != "" do
    [{name, {type(Map.get(item, :type)), text(Map.get(item, :help)), text(Map.get(item, :unit))}}]
  end

  defp normalize(_), do: []

  defp type(nil), do: nil

  defp type(t) when is_binary(t) do
    t = String.downcase(t)
    if t in @types, do: t, else: "unknown"
  end

  defp type(_), do: nil

  defp text(s) when is_binary(s), do: s
  defp text(_), do: nil

  # A body may describe a family on several lines (TYPE, then HELP...): one row each.
  defp merge_same_family(items) do
    items
    |> Enum.reduce(%{}, fn {name, fields}, acc -> Map.update(acc, name, fields, &overlay(&1, fields)) end)
    |> Enum.sort()
  end

  defp overlay({t0, h0, u0}, {t, h, u}), do: {t || t0, h || h0, u || u0}

  # The cache holds, per family, the fields this store wrote (nil = not written since start).
  defp changed(cache, name, fields) do
    known =
      case :ets.lookup(cache, name) do
        [{^name, known}] -> known
        [] -> {nil, nil, nil}
      end

    merged = overlay(known, fields)
    if merged == known, do: [], else: [{name, fields, merged}]
  end

  defp write(_store, _cache, []), do: {:ok, 0}

  defp write(store, cache, changed) do
    now = System.os_time(:millisecond)
    statements = Enum.map(changed, fn {name, {t, h, u}, _merged} -> {@sql, [name, t, h, u, now]} end)

    case DB.transaction(store, statements) do
      {:ok, _} ->
        :ets.insert(cache, Enum.map(changed, fn {name, _fields, merged} -> {name, merged} end))
        {:ok, length(changed)}

      {:error, reason} = error ->
        Logger.warning("TimelessMetrics #{inspect(store)}: metric metadata not stored: #{inspect(reason)}")
        error
    end
  end
end
