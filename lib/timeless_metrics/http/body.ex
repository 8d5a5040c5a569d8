defmodule TimelessMetrics.HTTP.Body do
  @moduledoc """
  Request body decoding that cannot be turned into a memory bomb: `gzip`, `x-gzip`
  and `deflate` content encodings are inflated with `:zlib.safeInflate/2` in steps,
  stopping as soon as the output passes the byte limit. Other encodings (`snappy`
  for remote write, `zstd`...) are left to the endpoint's handler.

      iex> gz = :zlib.gzip("hello")
      iex> TimelessMetrics.HTTP.Body.decode(gz, "gzip", 100)
      {:ok, "hello", :decoded}
      iex> TimelessMetrics.HTTP.Body.decode(:zlib.gzip(String.duplicate("a", 1000)), "gzip", 100)
      {:error, {:too_large, "request body is over 100 bytes after decompression"}}
      iex> TimelessMetrics.HTTP.Body.decode("raw", "snappy", 100)
      {:ok, "raw", :kept}
  """

  @doc """
  Decode `body` according to a `Content-Encoding` value (nil for none). Returns
  `{:ok, body, :decoded}` when it inflated the body (the caller should drop the
  header), `{:ok, body, :kept}` when it left it as is.
  """
  @spec decode(binary(), String.t() | nil, pos_integer()) ::
          {:ok, binary(), :decoded | :kept} | {:error, {:too_large | :bad_input, String.t()}}
  def decode(body, nil, _max), do: {:ok, body, :kept}

  def decode(body, encoding, max) do
    case encoding |> String.trim() |> String.downcase() do
      e when e in ["gzip", "x-gzip", "deflate"] -> inflate(body, max)
      e when e in ["", "identity"] -> {:ok, body, :decoded}
      _other -> {:ok, body, :kept}
    end
  end

  # windowBits 47 = 32 + 15: accept both gzip and zlib headers.
  defp inflate(body, max) do
    z = :zlib.open()

    try do
      :ok = :zlib.inflateInit(z, 47)
      case step(z, :zlib.safeInflate(z, body), [], 0, max) do
        {:ok, data} ->
          :zlib.inflateEnd(z)
          {:ok, data, :decoded}

        :too_large ->
          {:error, {:too_large, "request body is over #{max} bytes after decompression"}}

        :truncated ->
          {:error, {:bad_input, "cannot decompress the request body (truncated gzip/deflate data)"}}
      end
    rescue
      ErlangError -> {:error, {:bad_input, "cannot decompress the request body (invalid gzip/deflate data)"}}
    after
      :zlib.close(z)
    end
  end

  defp step(z, {status, out}, acc, size, max) do
    size = size + IO.iodata_length(out)

    cond do
      size > max -> :too_large
      status == :finished -> {:ok, IO.iodata_to_binary(Enum.reverse([out | acc]))}
      # input used up without reaching the end of the stream
      IO.iodata_length(out) == 0 -> :truncated
      true -> step(z, :zlib.safeInflate(z, []), [out | acc], size, max)
    end
  end
end
