defmodule TimelessMetrics.Ingest.Spool do
  @moduledoc """
  The durable spool of accepted ingest bodies, so that a `204` answered to a client
  survives a `kill -9` of the VM. It is the engine's append-only spool
  (`timeless_engine::spool`, byte layout in `native/engine/FORMAT-ingest.md`, "Spool") in
  `<data_dir>/ingest_spool/`: segment files `<number>.spool` of framed, checksummed
  records.

  - `append/5` writes one body record (sequence number, format, the options needed to
    parse it later, the body) with one `write(2)` in the request's own process (a NIF
    call, no message to any process) and returns the body's sequence number; only then is
    the body queued and answered. With the store's `fsync: :always` the segment is also
    `fdatasync`ed first.
  - `done/2` marks bodies ingested with one completion record per call (workers call it
    once per batch). Segments rotate by size (16 MiB) and age (1 s) and are deleted once
    every body in them (and in every older segment) is done.
  - `open/2` (at store start) returns the bodies not done, to be queued again with their
    options; their bytes are read back with `read/2` by the worker that takes them. A torn
    tail is cut and a damaged record skipped, each reported with file and offset.
  - A crash after a body was ingested but before its completion record was written
    ingests it twice on the next start: harmless, the engine keeps the last value for a
    duplicate timestamp.

      iex> dir = Path.join(System.tmp_dir!(), "spool_doc_#{System.unique_integer([:positive])}")
      iex> {:ok, spool, [], []} = TimelessMetrics.Ingest.Spool.open(dir, false)
      iex> opts = %{extra_labels: [], default_ts_ms: 1_700_000_000_000, precision: :s}
      iex> {:ok, seq} = TimelessMetrics.Ingest.Spool.append(spool, :influx, opts, "cpu v=1 1", false)
      iex> TimelessMetrics.Ingest.Spool.close(spool)
      iex> {:ok, spool, [{^seq, :influx, ^opts, 9}], []} = TimelessMetrics.Ingest.Spool.open(dir, false)
      iex> TimelessMetrics.Ingest.Spool.read(spool, seq)
      {:ok, :influx, %{extra_labels: [], default_ts_ms: 1_700_000_000_000, precision: :s}, "cpu v=1 1"}
      iex> TimelessMetrics.Ingest.Spool.done(spool, [seq])
      :ok
  """

  alias TimelessMetrics.Native

  @typedoc "An open spool (a NIF resource)."
  @type t :: reference()
  @type pending :: {seq :: pos_integer(), format :: atom(), opts :: map(), bytes :: non_neg_integer()}
  @type issue :: {:torn_tail | :corrupt, path :: String.t(), offset :: non_neg_integer(), message :: String.t()}

  # Bodies up to this size are appended on a normal scheduler (a write(2) of a few
  # kilobytes takes microseconds); larger ones on a dirty I/O scheduler.
  @small_body 65_536
  @max_segment_bytes 16 * 1_048_576
  @max_segment_age_ms 1_000

  @doc "The spool directory of a store's data directory."
  @spec dir(Path.t()) :: Path.t()
  def dir(data_dir), do: Path.join(Path.expand(data_dir), "ingest_spool")

  @doc """
  Open (create) the spool in `dir`. Returns the bodies not done yet, in sequence order,
  and what was found damaged (torn tails cut, corrupt records skipped).
  """
  @spec open(Path.t(), boolean()) :: {:ok, t(), [pending()], [issue()]} | {:error, term()}
  def open(dir, sync?) do
    config = %{max_segment_bytes: @max_segment_bytes, max_segment_age_ms: @max_segment_age_ms, sync: sync?}

    case Native.spool_open(dir, config) do
      {:error, _} = error -> error
      {spool, pending, issues} -> {:ok, spool, pending, issues}
    end
  end

  @doc """
  Append one body; returns its sequence number once the bytes are written (and, with
  `sync?`, fdatasynced).
  """
  @spec append(t(), atom(), map(), binary(), boolean()) :: {:ok, pos_integer()} | {:error, term()}
  def append(spool, format, opts, body, sync?) do
    result =
      if sync? or byte_size(body) > @small_body,
        do: Native.spool_append_dirty(spool, format, opts, body),
        else: Native.spool_append(spool, format, opts, body)

    case result do
      seq when is_integer(seq) -> {:ok, seq}
      {:error, _} = error -> error
    end
  end

  @doc "Mark bodies ingested (or given up on): they are not replayed any more."
  @spec done(t(), [pos_integer()]) :: :ok | {:error, term()}
  def done(_spool, []), do: :ok

  def done(spool, seqs) do
    case Native.spool_done(spool, seqs) do
      n when is_integer(n) -> :ok
      {:error, _} = error -> error
    end
  end

  @doc """
  Housekeeping without completions: rotate an idle active segment once it is old
  enough and delete segments whose bodies are all done (otherwise the last segment
  of a burst would stay on disk until the next body arrives).
  """
  @spec tick(t()) :: :ok | {:error, term()}
  def tick(spool) do
    case Native.spool_done(spool, []) do
      n when is_integer(n) -> :ok
      {:error, _} = error -> error
    end
  end

  @doc "Read back a body returned by `open/2`."
  @spec read(t(), pos_integer()) :: {:ok, atom(), map(), binary()} | {:error, term()}
  def read(spool, seq) do
    case Native.spool_read(spool, seq) do
      {:error, _} = error -> error
      {format, opts, body} -> {:ok, format, opts, body}
    end
  end

  @doc "Refuse further appends (the store is stopping); what was written stays for the next start."
  @spec close(t()) :: :ok
  def close(spool), do: Native.spool_close(spool)

  @doc "Bytes on disk, segment files and bodies not done."
  @spec info(t()) :: %{bytes: non_neg_integer(), segments: pos_integer(), pending: non_neg_integer()}
  def info(spool), do: Native.spool_info(spool)

  @legacy_magic "TMSPOOL1"

  @doc """
  Move bodies left by the previous spool layout (one `<seq>.req` file per body:
  `"TMSPOOL1" | meta_size::32 | body_size::64 | crc32(meta <> body)::32 | meta | body`,
  `meta` an external term `%{format: f, opts: opts}`) into `spool`, oldest first, deleting
  each file once appended. Unreadable ones are renamed `*.corrupt`. Returns
  `{imported, corrupt_paths}`.
  """
  @spec import_legacy(Path.t(), t()) :: {non_neg_integer(), [Path.t()]}
  def import_legacy(dir, spool) do
    dir
    |> Path.join("*.req")
    |> Path.wildcard()
    |> Enum.sort()
    |> Enum.reduce({0, []}, fn path, {n, bad} ->
      with {:ok, bin} <- File.read(path),
           {:ok, format, opts, body} <- legacy_decode(bin),
           {:ok, _seq} <- append(spool, format, opts, body, false) do
        File.rm(path)
        {n + 1, bad}
      else
        _ ->
          File.rename(path, Path.rootname(path) <> ".corrupt")
          {n, [path | bad]}
      end
    end)
  end

  # The atoms a legacy meta may hold must exist for `binary_to_term(_, [:safe])`.
  @legacy_atoms [:format, :opts, :extra_labels, :default_ts_ms, :precision, :ns, :us, :ms, :s,
                 :vm_json, :prometheus_text, :influx, :remote_write]

  defp legacy_decode(<<@legacy_magic, ms::32, bs::64, crc::32, meta::binary-size(ms), body::binary-size(bs)>>) do
    with true <- :erlang.crc32([meta, body]) == crc,
         %{format: format, opts: opts} when format in @legacy_atoms and is_map(opts) <- :erlang.binary_to_term(meta, [:safe]) do
      {:ok, format, opts, body}
    else
      _ -> {:error, :corrupt}
    end
  rescue
    ArgumentError -> {:error, :corrupt}
  end

  defp legacy_decode(_), do: {:error, :corrupt}

  @doc """
  Keep a body that could not be ingested for inspection, as
  `<spool dir>/failed/<seq>.<format>`; returns the file's path.
  """
  @spec set_aside(Path.t(), pos_integer(), atom(), binary()) :: {:ok, Path.t()} | {:error, term()}
  def set_aside(dir, seq, format, body) do
    failed = Path.join(dir, "failed")
    path = Path.join(failed, "#{seq}.#{format}")

    with :ok <- File.mkdir_p(failed), :ok <- File.write(path, body), do: {:ok, path}
  end
end
