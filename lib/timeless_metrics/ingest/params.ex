defmodule TimelessMetrics.Ingest.Params do
  @moduledoc """
  The query parameters of an ingest request, turned into the options of
  `TimelessMetrics.Ingest.ingest/4`:

  - `extra_label=name=value` (repeatable, as VictoriaMetrics): labels added to every sample;
  - `db` (Influx only): becomes the label `db`, as VictoriaMetrics does;
  - `precision` (Influx only): unit of the line timestamps, `ns` (default), `us`, `ms`,
    `s`, and the Influx 1.x spellings `n`, `u`, `µ`; `m` and `h` are refused (the engine
    reads ns/us/ms/s only);
  - `timestamp`: time of samples that carry none, default the receive time. Unix
    seconds (fraction allowed) when below 10^11, else unix milliseconds.

  Any error names the parameter.

      iex> q = %{"extra_label" => ["dc=eu", "team=db"], "db" => "telegraf", "precision" => "s"}
      iex> {:ok, opts} = TimelessMetrics.Ingest.Params.parse(:influx, q, 1_700_000_000_123)
      iex> opts
      %{extra_labels: [{"dc", "eu"}, {"team", "db"}, {"db", "telegraf"}], default_ts_ms: 1_700_000_000_123, precision: :s}
      iex> TimelessMetrics.Ingest.Params.parse(:influx, %{}, 5)
      {:ok, %{extra_labels: [], default_ts_ms: 5, precision: :ns}}
      iex> TimelessMetrics.Ingest.Params.parse(:prometheus_text, %{"timestamp" => "7"}, 5)
      {:ok, %{extra_labels: [], default_ts_ms: 7000, precision: :ms}}
      iex> TimelessMetrics.Ingest.Params.parse(:influx, %{"precision" => "fortnight"}, 0)
      {:error, "invalid query parameter precision=\\"fortnight\\": expected one of ns, us, ms, s (or n, u)"}
  """

  @type opts :: %{extra_labels: [{String.t(), String.t()}], default_ts_ms: integer(), precision: :ns | :us | :ms | :s}

  @precisions %{"ns" => :ns, "n" => :ns, "us" => :us, "u" => :us, "µ" => :us, "ms" => :ms, "s" => :s}

  @doc """
  Parse the query map of a request of `format` (`%{"name" => "v" | ["v1", "v2"]}`);
  `received_ms` is the receive time in unix milliseconds.
  """
  @spec parse(atom(), map(), integer()) :: {:ok, opts()} | {:error, String.t()}
  # No parameters (what agents send): the defaults, without looking each one up.
  def parse(format, query, received_ms) when query == %{} do
    {:ok, %{extra_labels: [], default_ts_ms: received_ms, precision: if(format == :influx, do: :ns, else: :ms)}}
  end

  def parse(format, query, received_ms) do
    with {:ok, extra} <- extra_labels(values(query, "extra_label")),
         {:ok, db} <- db_label(format, last(query, "db")),
         {:ok, precision} <- precision(format, last(query, "precision")),
         {:ok, ts} <- timestamp(last(query, "timestamp"), received_ms) do
      {:ok, %{extra_labels: extra ++ db, default_ts_ms: ts, precision: precision}}
    end
  end

  defp values(query, name) do
    case Map.get(query, name) do
      nil -> []
      list when is_list(list) -> list
      v -> [v]
    end
  end

  defp last(query, name), do: query |> values(name) |> List.last()

  defp extra_labels(values) do
    Enum.reduce_while(values, {:ok, []}, fn raw, {:ok, acc} ->
      with [name, value] <- String.split(raw, "=", parts: 2),
           true <- label_name?(name) do
        {:cont, {:ok, [{name, value} | acc]}}
      else
        _ -> {:halt, bad("extra_label", raw, "expected name=value with a label name matching [a-zA-Z_][a-zA-Z0-9_]*")}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  defp label_name?(name), do: name =~ ~r/\A[a-zA-Z_][a-zA-Z0-9_]*\z/

  defp db_label(:influx, nil), do: {:ok, []}
  defp db_label(:influx, ""), do: {:ok, []}
  defp db_label(:influx, db), do: {:ok, [{"db", db}]}
  defp db_label(_format, _), do: {:ok, []}

  defp precision(:influx, nil), do: {:ok, :ns}

  defp precision(:influx, p) do
    case Map.fetch(@precisions, p) do
      {:ok, unit} -> {:ok, unit}
      :error when p in ["m", "h"] -> bad("precision", p, "minutes and hours are not supported; use ns, us, ms or s")
      :error -> bad("precision", p, "expected one of ns, us, ms, s (or n, u)")
    end
  end

  # Other formats carry millisecond timestamps (Prometheus text, VictoriaMetrics JSON
  # lines) or their own (remote write): precision does not apply.
  defp precision(_format, _), do: {:ok, :ms}

  defp timestamp(nil, received_ms), do: {:ok, received_ms}

  defp timestamp(raw, _received_ms) do
    case {Integer.parse(raw), Float.parse(raw)} do
      {{n, ""}, _} when n >= 0 and n < 100_000_000_000 -> {:ok, n * 1000}
      {{n, ""}, _} when n >= 100_000_000_000 -> {:ok, n}
      {_, {n, ""}} when n >= 0 and n < 1.0e11 -> {:ok, round(n * 1000)}
      _ -> bad("timestamp", raw, "expected unix seconds or milliseconds")
    end
  end

  defp bad(name, value, expected), do: {:error, "invalid query parameter #{name}=#{inspect(value)}: #{expected}"}
end
