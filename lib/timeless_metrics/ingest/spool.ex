defmodule TimelessMetrics.Ingest.Spool do
  @moduledoc """
  The durable spool of accepted ingest bodies: one file per body in
  `<data_dir>/ingest_spool/`, so that a `204` answered to a client survives a `kill -9`
  of the VM.

  ## Layout

  A body accepted with sequence number `seq` is written by the request's own process to
  `<seq>.tmp` (the number zero-padded to 20 digits, so names sort by sequence) and renamed
  to `<seq>.req`; only then is it queued and answered. When a worker has ingested it, the
  file is deleted. A file is:

      "TMSPOOL1" | meta_size::32 | body_size::64 | crc32(meta <> body)::32 | meta | body

  where `meta` is `:erlang.term_to_binary(%{format: f, opts: opts})` (`opts` as for
  `TimelessMetrics.Ingest.ingest/4`, with the receive time already resolved into
  `default_ts_ms`, so a replay stores the samples at the same time as the first try).

  ## Crash semantics

  - The `write(2)` and the rename happen before the `204`: once answered, the body is in
    the OS and survives the death of the VM. With the store's `fsync: :always` the file is
    also `fdatasync`ed before the rename, so it survives a power loss too (the rename
    itself is left to the file system's ordering).
  - On start, every `*.req` is queued again in sequence order (`scan/1`); leftover `*.tmp`
    files were never acknowledged and are deleted. A `*.req` whose size or CRC does not
    match (a torn write after a power loss) is renamed `*.corrupt` and logged.
  - A crash after a body was ingested but before its file was deleted ingests it twice
    on the next start: harmless, the engine keeps the last value for a duplicate timestamp.

      iex> dir = Path.join(System.tmp_dir!(), "spool_doc_#{System.unique_integer([:positive])}")
      iex> :ok = TimelessMetrics.Ingest.Spool.init(dir)
      iex> {:ok, path, size} = TimelessMetrics.Ingest.Spool.write(dir, 7, :influx, %{precision: :s}, "cpu v=1 1", false)
      iex> TimelessMetrics.Ingest.Spool.read(path)
      {:ok, %{format: :influx, opts: %{precision: :s}}, "cpu v=1 1"}
      iex> TimelessMetrics.Ingest.Spool.scan(dir) == {[{7, path, size}], []}
      true
  """

  require Logger

  @magic "TMSPOOL1"

  # The atoms a spooled meta may hold. `binary_to_term(meta, [:safe])` refuses atoms
  # the VM does not know yet, and at start (replay) the modules that use them may not
  # be loaded: listing them here creates them when this module loads.
  @meta_atoms [:format, :opts, :extra_labels, :default_ts_ms, :precision, :ns, :us, :ms, :s,
               :vm_json, :prometheus_text, :influx, :remote_write]
  @header_size 8 + 4 + 8 + 4

  @doc "The spool directory of a store's data directory."
  @spec dir(Path.t()) :: Path.t()
  def dir(data_dir), do: Path.join(Path.expand(data_dir), "ingest_spool")

  @doc "Create the spool directory and delete half-written (`*.tmp`) files."
  @spec init(Path.t()) :: :ok | {:error, term()}
  def init(dir) do
    with :ok <- File.mkdir_p(dir) do
      dir |> Path.join("*.tmp") |> Path.wildcard() |> Enum.each(&File.rm/1)
    end
  end

  @doc """
  Durably write one body; returns the file's path and size. With `sync?` the data is
  `fdatasync`ed before the file gets its final name.
  """
  @spec write(Path.t(), non_neg_integer(), atom(), map(), binary(), boolean()) ::
          {:ok, Path.t(), non_neg_integer()} | {:error, term()}
  def write(dir, seq, format, opts, body, sync?) do
    meta = :erlang.term_to_binary(%{format: format, opts: opts})
    crc = :erlang.crc32([meta, body])
    data = [@magic, <<byte_size(meta)::32, byte_size(body)::64, crc::32>>, meta, body]
    name = name(seq)
    tmp = Path.join(dir, name <> ".tmp")
    path = Path.join(dir, name <> ".req")

    with {:ok, fd} <- :file.open(tmp, [:write, :raw, :binary]),
         :ok <- write_sync(fd, data, sync?),
         :ok <- :file.rename(tmp, path) do
      {:ok, path, IO.iodata_length(data)}
    else
      {:error, _} = error ->
        File.rm(tmp)
        error
    end
  end

  defp write_sync(fd, data, sync?) do
    result =
      with :ok <- :file.write(fd, data) do
        if sync?, do: :file.datasync(fd), else: :ok
      end

    :file.close(fd)
    result
  end

  @doc "Read and verify a spooled body."
  @spec read(Path.t()) :: {:ok, %{format: atom(), opts: map()}, binary()} | {:error, term()}
  def read(path) do
    with {:ok, bin} <- File.read(path) do
      decode(bin)
    end
  end

  @doc false
  def meta_atoms, do: @meta_atoms

  defp decode(<<@magic, ms::32, bs::64, crc::32, meta::binary-size(ms), body::binary-size(bs)>>) do
    if :erlang.crc32([meta, body]) == crc do
      {:ok, :erlang.binary_to_term(meta, [:safe]), body}
    else
      {:error, :corrupt}
    end
  rescue
    ArgumentError -> {:error, :corrupt}
  end

  defp decode(_), do: {:error, :corrupt}

  @doc "Delete a body's file once it is ingested."
  @spec delete(Path.t()) :: :ok | {:error, term()}
  def delete(path) do
    case File.rm(path) do
      {:error, :enoent} -> :ok
      other -> other
    end
  end

  @doc """
  Move a body out of the replay, keeping it for inspection: `*.corrupt` (unreadable)
  or `*.failed` (it crashed the workers repeatedly).
  """
  @spec quarantine(Path.t(), String.t()) :: :ok | {:error, term()}
  def quarantine(path, suffix \\ "corrupt"), do: File.rename(path, Path.rootname(path) <> "." <> suffix)

  @doc """
  The spooled bodies to replay, `{[{seq, path, size}], sorted by seq}` plus the paths of
  files too short to hold their header (moved aside as `*.corrupt`).
  """
  @spec scan(Path.t()) :: {[{non_neg_integer(), Path.t(), non_neg_integer()}], [Path.t()]}
  def scan(dir) do
    dir
    |> Path.join("*.req")
    |> Path.wildcard()
    |> Enum.reduce({[], []}, fn path, {ok, bad} ->
      with {seq, ""} <- Integer.parse(Path.basename(path, ".req")),
           {:ok, %File.Stat{size: size}} when size >= @header_size <- File.stat(path) do
        {[{seq, path, size} | ok], bad}
      else
        _ ->
          Logger.error("TimelessMetrics ingest spool: #{path} is not a spooled body; moved aside as .corrupt")
          quarantine(path)
          {ok, [path | bad]}
      end
    end)
    |> then(fn {ok, bad} -> {Enum.sort(ok), bad} end)
  end

  defp name(seq), do: seq |> Integer.to_string() |> String.pad_leading(20, "0")
end
