defmodule TimelessMetrics.Ingest.Decompress do
  @moduledoc """
  Decoding of a request body's `Content-Encoding` with a cap on the decoded size,
  so a decompression bomb is refused after at most `max_bytes` of output.

  The engine's `TimelessMetrics.Native.decompress/3` is used when the loaded NIF has
  it (it also decodes snappy, the block format of Prometheus remote write). Without
  it, gzip and deflate are decoded here with `:zlib.safeInflate/2` (16 KiB of output
  per step) and snappy is refused as unsupported.

      iex> TimelessMetrics.Ingest.Decompress.decode("identity", "up 1", 1024)
      {:ok, "up 1"}
      iex> TimelessMetrics.Ingest.Decompress.decode("gzip", :zlib.gzip("up 1"), 1024)
      {:ok, "up 1"}
      iex> {:error, {:too_large, _}} = TimelessMetrics.Ingest.Decompress.decode("gzip", :zlib.gzip(String.duplicate("0", 4096)), 1024)

  Errors are `{:too_large, message}` (decoded size over the cap), `{:bad_input, message}`
  (not valid data of the encoding) and `{:unsupported, message}` (unknown encoding); the
  message names the encoding.
  """

  alias TimelessMetrics.Native

  @compile {:no_warn_undefined, [{Native, :decompress, 3}]}

  @type error :: {:too_large | :bad_input | :unsupported, String.t()}

  @doc """
  Decode `body` encoded with `encoding` (a `Content-Encoding` value: `nil`, `""`,
  `"identity"`, `"gzip"`, `"x-gzip"`, `"deflate"`, `"snappy"`; case-insensitive) into at
  most `max_bytes` bytes.
  """
  @spec decode(String.t() | nil, binary(), pos_integer()) :: {:ok, binary()} | {:error, error()}
  def decode(encoding, body, max_bytes) do
    case normalize(encoding) do
      "identity" -> identity(body, max_bytes)
      enc when enc in ["gzip", "deflate", "snappy"] -> decode_with(enc, body, max_bytes)
      other -> {:error, {:unsupported, "unsupported Content-Encoding #{inspect(other)}; use gzip, deflate or snappy"}}
    end
  end

  @doc "Whether the loaded engine decodes bodies itself (`TimelessMetrics.Native.decompress/3`)."
  @spec native?() :: boolean()
  def native? do
    Code.ensure_loaded?(Native) and function_exported?(Native, :decompress, 3)
  end

  defp normalize(nil), do: "identity"
  defp normalize(""), do: "identity"

  defp normalize(enc) do
    case enc |> String.trim() |> String.downcase() do
      "x-gzip" -> "gzip"
      other -> other
    end
  end

  defp identity(body, max) when byte_size(body) <= max, do: {:ok, body}
  defp identity(body, max), do: {:error, too_large("identity", byte_size(body), max)}

  defp decode_with(enc, body, max) do
    if native?() do
      native(enc, body, max)
    else
      elixir(enc, body, max)
    end
  end

  defp native(enc, body, max) do
    case Native.decompress(enc, body, max) do
      bin when is_binary(bin) -> {:ok, bin}
      {:error, {kind, msg}} when kind in [:too_large, :bad_input] -> {:error, {kind, "#{enc}: #{msg}"}}
      {:error, other} -> {:error, {:bad_input, "#{enc}: #{inspect(other)}"}}
    end
  rescue
    e in [ArgumentError, ErlangError] -> {:error, {:bad_input, "#{enc}: #{Exception.message(e)}"}}
  end

  defp elixir("gzip", body, max), do: inflate("gzip", body, 31, max)
  defp elixir("deflate", body, max), do: inflate("deflate", body, deflate_window(body), max)

  defp elixir("snappy", _body, _max),
    do: {:error, {:unsupported, "snappy bodies need the engine's decompress NIF, which this build lacks"}}

  # RFC 9110 "deflate" is the zlib format (RFC 1950), but some clients send raw
  # deflate (RFC 1951): a zlib stream starts with a header whose check bits hold.
  defp deflate_window(<<cmf, flg, _::binary>>) when rem(cmf, 16) == 8 and rem(cmf * 256 + flg, 31) == 0, do: 15
  defp deflate_window(_), do: -15

  defp inflate(enc, body, window, max) do
    z = :zlib.open()

    try do
      :ok = :zlib.inflateInit(z, window)
      result = inflate_loop(z, body, [], 0, max, enc)
      # inflateEnd raises data_error when the stream did not reach its end (truncated input)
      with {:ok, _} <- result, do: :zlib.inflateEnd(z)
      result
    catch
      :error, reason when reason in [:data_error, :stream_error, :buf_error, :einval] ->
        {:error, {:bad_input, "body is not valid #{enc} data (#{reason})"}}
    after
      :zlib.close(z)
    end
  end

  defp inflate_loop(z, input, acc, size, max, enc) do
    {status, out} =
      case :zlib.safeInflate(z, input) do
        {:continue, out} -> {:continue, out}
        {:finished, out} -> {:finished, out}
        {:need_dictionary, _, _} -> throw_bad(enc)
      end

    size = size + IO.iodata_length(out)

    cond do
      size > max -> {:error, too_large(enc, nil, max)}
      status == :finished -> {:ok, IO.iodata_to_binary([acc | out])}
      true -> inflate_loop(z, [], [acc | out], size, max, enc)
    end
  end

  defp throw_bad(_enc), do: :erlang.error(:data_error)

  defp too_large(enc, nil, max), do: {:too_large, "#{enc} body decodes to more than #{max} bytes"}
  defp too_large(enc, size, max), do: {:too_large, "#{enc} body of #{size} bytes is over the limit of #{max} bytes"}
end
