defmodule Bench.HttpClient do
  @moduledoc """
  A minimal HTTP/1.1 keep-alive client on `:gen_tcp` for the load benchmarks: one
  connection per sender process, requests with `content-length`, responses read with
  the `:http_bin` packet parser then the body by its `content-length` (or chunked).

      {:ok, c} = Bench.HttpClient.connect(8428)
      {:ok, 204, _body, c} = Bench.HttpClient.request(c, "POST", "/api/v1/import/prometheus", [], "up 1\\n")
      Bench.HttpClient.close(c)
  """

  defstruct [:socket, :port]

  @doc "Open a connection to 127.0.0.1:`port`."
  def connect(port) do
    opts = [:binary, active: false, nodelay: true, packet: :http_bin, sndbuf: 1_048_576, recbuf: 1_048_576]

    case :gen_tcp.connect({127, 0, 0, 1}, port, opts, 5_000) do
      {:ok, socket} -> {:ok, %__MODULE__{socket: socket, port: port}}
      error -> error
    end
  end

  def close(%__MODULE__{socket: s}), do: :gen_tcp.close(s)

  @doc """
  Send a request and read the response: `{:ok, status, body, conn}`. On a closed
  connection it reconnects once and retries.
  """
  def request(conn, method, path, headers, body, retry \\ true) do
    head = [method, ?\s, path, " HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ", Integer.to_string(IO.iodata_length(body)), "\r\n",
            Enum.map(headers, fn {k, v} -> [k, ": ", v, "\r\n"] end), "\r\n"]

    with :ok <- :gen_tcp.send(conn.socket, [head, body]),
         {:ok, status, resp} <- read_response(conn.socket) do
      {:ok, status, resp, conn}
    else
      {:error, _} = error when not retry ->
        error

      {:error, _} ->
        close(conn)

        case connect(conn.port) do
          {:ok, conn} -> request(conn, method, path, headers, body, false)
          error -> error
        end
    end
  end

  defp read_response(socket) do
    with {:ok, {:http_response, _, status, _}} <- :gen_tcp.recv(socket, 0, 120_000),
         {:ok, headers} <- read_headers(socket, %{}) do
      body = read_body(socket, headers)
      :ok = :inet.setopts(socket, packet: :http_bin)
      with {:ok, body} <- body, do: {:ok, status, body}
    else
      {:ok, other} -> {:error, {:unexpected, other}}
      error -> error
    end
  end

  defp read_headers(socket, acc) do
    case :gen_tcp.recv(socket, 0, 120_000) do
      {:ok, {:http_header, _, name, _, value}} -> read_headers(socket, Map.put(acc, normalize(name), value))
      {:ok, :http_eoh} -> {:ok, acc}
      {:ok, other} -> {:error, {:unexpected, other}}
      error -> error
    end
  end

  defp normalize(name) when is_atom(name), do: name |> Atom.to_string() |> String.downcase()
  defp normalize(name), do: String.downcase(name)

  defp read_body(socket, headers) do
    :ok = :inet.setopts(socket, packet: :raw)

    cond do
      (len = headers["content-length"]) != nil -> recv_exact(socket, String.to_integer(len))
      String.downcase(headers["transfer-encoding"] || "") == "chunked" -> read_chunks(socket, [])
      true -> {:ok, ""}
    end
  end

  defp recv_exact(_socket, 0), do: {:ok, ""}
  defp recv_exact(socket, n), do: :gen_tcp.recv(socket, n, 120_000)

  defp read_chunks(socket, acc) do
    :ok = :inet.setopts(socket, packet: :line)
    {:ok, line} = :gen_tcp.recv(socket, 0, 120_000)
    :ok = :inet.setopts(socket, packet: :raw)
    size = line |> String.trim() |> String.split(";") |> hd() |> String.to_integer(16)
    {:ok, data} = recv_exact(socket, size + 2)

    if size == 0,
      do: {:ok, IO.iodata_to_binary(acc)},
      else: read_chunks(socket, [acc, binary_part(data, 0, size)])
  end
end
