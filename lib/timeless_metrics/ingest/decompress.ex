defmodule TimelessMetrics.Ingest.Decompress do
  @moduledoc """
  Decoding of a request body's `Content-Encoding` with a cap on the decoded size, in
  the engine (`TimelessMetrics.Native.decompress/3`), so a decompression bomb is
  refused after at most `max_bytes` of output.

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
      enc when enc in ["gzip", "deflate", "snappy"] -> native(enc, body, max_bytes)
      other -> {:error, {:unsupported, "unsupported Content-Encoding #{inspect(other)}; use gzip, deflate or snappy"}}
    end
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

  defp identity(body, max),
    do: {:error, {:too_large, "identity: body of #{byte_size(body)} bytes is over the #{max}-byte limit"}}

  defp name_encoding(enc, msg), do: if(String.contains?(msg, enc), do: msg, else: "#{enc}: #{msg}")

  defp native(enc, body, max) do
    case Native.decompress(enc, body, max) do
      bin when is_binary(bin) -> {:ok, bin}
      {:error, {kind, msg}} when kind in [:too_large, :bad_input] -> {:error, {kind, name_encoding(enc, msg)}}
      {:error, other} -> {:error, {:bad_input, "#{enc}: #{inspect(other)}"}}
    end
  end
end
