defmodule TimelessMetrics.Ingest do
  @moduledoc """
  Ingestion of whole bodies in the agents' formats (`:vm_json`, `:prometheus_text`,
  `:influx`, `:remote_write`):

  - `submit/4` accepts a decoded body durably (spool, then queue) for the store's
    `TimelessMetrics.IngestWorker`s; this is what the HTTP handler
    (`TimelessMetrics.HTTP.Ingest`) answers `204` on;
  - `ingest/4` parses and stores a body now, in the engine (what the workers call).

      iex> {:ok, _} = TimelessMetrics.start_link(name: :ingest_doc, mode: :memory, ingest_fun: fn _, _, _, _ -> {:ok, %{samples: 1}} end)
      iex> opts = %{extra_labels: [], default_ts_ms: 1_700_000_000_000, precision: :ms}
      iex> TimelessMetrics.Ingest.submit(:ingest_doc, :prometheus_text, "up 1\\n", opts)
      :ok
      iex> TimelessMetrics.stop(:ingest_doc)
      :ok
  """

  alias TimelessMetrics.{Engine, Native}
  alias TimelessMetrics.Ingest.{Queue, Spool}

  @type format :: :vm_json | :prometheus_text | :influx | :remote_write
  @type opts :: %{extra_labels: [{String.t(), String.t()}], default_ts_ms: integer(), precision: :ns | :us | :ms | :s}
  @type report :: %{
          samples: non_neg_integer(),
          series_created: non_neg_integer(),
          rejected: [%{line: non_neg_integer(), reason: atom(), message: String.t(), sample: String.t()}],
          rejected_by_reason: [{atom(), non_neg_integer()}],
          metadata: [%{metric: String.t(), type: String.t() | nil, help: String.t() | nil, unit: String.t() | nil}]
        }

  @doc """
  Parse `body` in `format` and store its samples in the engine now. Returns the
  engine's report (samples stored, series created, rejected lines, metadata found), or
  `{:error, {kind, message}}` for a body that cannot be decoded at all.
  """
  @spec ingest(atom(), format(), binary(), opts()) :: {:ok, report()} | {:error, Engine.reason()}
  def ingest(store, format, body, opts) do
    Engine.call(store, &Native.ingest(&1, format, body, opts))
  end

  @doc """
  Accept a (decompressed) body for ingestion: reserve room in the queue, write it to
  the spool (on disk), queue it. Once this returns `:ok` the body survives a crash of
  the VM. When the queue's byte bound is reached it waits up to the store's
  `ingest_queue_wait` ms for room. Errors: `:full` (queue bounds reached), `{:unavailable, message}` (store not
  running), `{:io, message}` (the spool could not be written).
  """
  @spec submit(atom() | Queue.t(), format(), binary(), opts()) :: :ok | {:error, :full | Engine.reason()}
  def submit(store, format, body, opts) when is_atom(store) do
    with {:ok, q} <- Queue.fetch(store), do: submit(q, format, body, opts)
  end

  def submit(%Queue{} = q, format, body, opts) do
    size = byte_size(body)

    with :ok <- reserve(q, size, nil, 1) do
      case spool(q, format, opts, body) do
        {:ok, seq, spooled} ->
          Queue.push(q, %{seq: seq, format: format, opts: opts, body: body, spooled: spooled, size: size, attempts: 0})

        {:error, {kind, message}} when kind in [:unavailable, :io] ->
          Queue.release(q, size)
          {:error, {kind, "ingest spool: #{message}"}}

        {:error, {_kind, message}} ->
          Queue.release(q, size)
          {:error, {:io, "ingest spool: #{message}"}}
      end
    end
  rescue
    # the queue's tables went away with a restarting store
    ArgumentError -> {:error, {:unavailable, "store #{inspect(q.store)} is restarting"}}
  end

  # A full byte bound means large bodies are waiting for the workers: hold the request
  # (backpressure through latency, as VictoriaMetrics does) up to the queue's `wait_ms`
  # before refusing it. A full body count is refused at once: those are floods of small
  # requests, where waiting would only pile up connections. `deadline` is nil until the
  # first refusal (most requests never read the clock here).
  defp reserve(q, size, deadline, pause) do
    case Queue.reserve(q, size) do
      {:error, :full_bytes} ->
        now = System.monotonic_time(:millisecond)
        deadline = deadline || now + (q.wait_ms || 0)
        left = deadline - now

        if left > 0 do
          Process.sleep(min(pause, left))
          reserve(q, size, deadline, min(pause * 2, 50))
        else
          {:error, :full}
        end

      other ->
        other
    end
  end

  defp spool(%Queue{spool: nil} = q, _format, _opts, _body), do: {:ok, Queue.next_seq(q), false}

  defp spool(q, format, opts, body) do
    with {:ok, seq} <- Spool.append(q.spool, format, opts, body, q.sync?), do: {:ok, seq, true}
  end

  @doc """
  Parse and store several bodies now, in one engine call (what the workers call for a
  batch of queued bodies): one result per body, in order, as `ingest/4` would answer it.
  A store failure fails every body.
  """
  @spec ingest_many(atom(), [{format(), binary(), opts()}]) :: [{:ok, report()} | {:error, Engine.reason()}]
  def ingest_many(_store, []), do: []

  def ingest_many(store, items) do
    call = if small_batch?(items, 0), do: &Native.ingest_many_small(&1, items), else: &Native.ingest_many(&1, items)

    case Engine.call(store, call) do
      {:ok, results} -> Enum.map(results, fn {:error, _} = e -> e; report -> {:ok, report} end)
      {:error, _} = error -> List.duplicate(error, length(items))
    end
  end

  # A batch this small is parsed on the calling scheduler: a hand-off to a dirty
  # scheduler and back costs more than parsing a few kilobytes.
  @small_batch_bytes 16_384

  defp small_batch?([], _bytes), do: true
  defp small_batch?([{_format, body, _opts} | rest], bytes) do
    bytes = bytes + byte_size(body)
    bytes <= @small_batch_bytes and small_batch?(rest, bytes)
  end
end
