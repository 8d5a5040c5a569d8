defmodule TimelessMetrics.HTTP.MochiwebAdapter do
  @moduledoc """
  The only module that knows mochiweb: it turns a mochiweb request into a plain
  request map (see `TimelessMetrics.HTTP.Request`), asks `TimelessMetrics.HTTP.Router`
  for a `{status, headers, body}` and sends it back.

  It reads the body itself, bounded by `max_body_bytes` (mochiweb's own `recv_body`
  caps at 1 MB and drops the connection):

  - route, method and token are checked first, so 404/405/401/403 never read a body;
  - `Content-Length` over the limit: 413 without reading (the connection is closed);
  - `Transfer-Encoding: chunked`: each chunk size is checked before its bytes are read;
  - a malformed `Content-Length`, or both headers at once: 400;
  - a body that does not arrive within `read_timeout` ms (a `Content-Length` that
    promises more than is sent): 408;
  - the body is passed on as sent: `Content-Encoding` is decoded by the handler that
    knows the format (ingest decodes gzip, deflate and snappy with the same limit);
  - `Expect: 100-continue` is answered before reading.

  A body of `{:stream, fun}` is sent with chunked transfer encoding: `fun` receives an
  `emit` function taking iodata, one chunk per call.

      loop = fn req -> TimelessMetrics.HTTP.MochiwebAdapter.handle(req, config) end
      :mochiweb_http.start_link(name: :my_listener, port: 0, loop: loop)
  """

  require Logger

  alias TimelessMetrics.HTTP.{Errors, Request, Router, Stats}

  @piece 1_048_576

  @doc "Serve one mochiweb request with the server's `config`."
  @spec handle(term(), TimelessMetrics.HTTP.config()) :: :ok
  def handle(req, config) do
    started = System.monotonic_time(:microsecond)
    request = request_map(req)

    {request, {status, headers, body}} =
      case Router.preflight(request, config) do
        {:routed, routed_request, _access, _target} = routed ->
          case read_body(req, request, config) do
            {:ok, body} -> {routed_request, Router.dispatch(routed, config, body)}
            {:error, reason} -> {routed_request, close_after(Errors.response(reason), req)}
            :closed -> {routed_request, {:closed, [], []}}
          end

        {_status, _headers, _body} = refused ->
          {request, if(body_expected?(request), do: close_after(refused, req), else: refused)}
      end

    if status != :closed, do: send_response(status, headers, body, request, req)
    record(config, request, status, started)
    :ok
  end

  # ------------------------------------------------------------------ request map

  defp request_map(req) do
    raw_path = :erlang.list_to_binary(:mochiweb_request.get(:raw_path, req))

    qs =
      case :binary.split(raw_path, "?") do
        [_path, qs] -> qs
        [_path] -> ""
      end

    %{
      method: method(:mochiweb_request.get(:method, req)),
      path: :erlang.list_to_binary(:mochiweb_request.get(:path, req)),
      query: Request.parse_query(qs),
      headers: headers(req),
      body: nil,
      peer: peer(req)
    }
  end

  defp method(m) when is_atom(m), do: Atom.to_string(m)
  defp method(m) when is_list(m), do: :erlang.list_to_binary(m)
  defp method(m) when is_binary(m), do: m

  defp headers(req) do
    req
    |> then(&:mochiweb_request.get(:headers, &1))
    |> :mochiweb_headers.to_list()
    |> Map.new(fn {k, v} -> {String.downcase(to_string(k)), IO.iodata_to_binary(v)} end)
  end

  defp peer(req) do
    case :mochiweb_socket.peername(:mochiweb_request.get(:socket, req)) do
      {:ok, {ip, _port}} -> ip
      _ -> nil
    end
  end

  # ------------------------------------------------------------------ body

  defp read_body(req, request, config) do
    headers = request.headers
    max = config.max_body_bytes

    case {Map.get(headers, "transfer-encoding"), Map.get(headers, "content-length")} do
      {nil, nil} -> {:ok, nil}
      {nil, length} -> read_sized(req, request, length, max, config.read_timeout)
      {te, nil} -> read_encoded(req, request, te, max, config.read_timeout)
      {_te, _length} -> {:error, {:bad_input, "a request may not have both Content-Length and Transfer-Encoding"}}
    end
  end

  defp read_sized(req, request, length, max, timeout) do
    case Integer.parse(String.trim(length)) do
      {0, ""} ->
        {:ok, ""}

      {n, ""} when n > max ->
        {:error, {:too_large, "request body of #{n} bytes is over the limit of #{max} bytes"}}

      {n, ""} when n > 0 ->
        continue_if_expected(req, request)
        socket = :mochiweb_request.get(:socket, req)
        recv_exact(socket, n, deadline(timeout), [])

      _ ->
        {:error, {:bad_input, "invalid Content-Length #{inspect(length)}"}}
    end
  end

  defp read_encoded(req, request, te, max, timeout) do
    if String.downcase(String.trim(te)) == "chunked" do
      continue_if_expected(req, request)
      socket = :mochiweb_request.get(:socket, req)
      read_chunks(socket, max, deadline(timeout), [], 0)
    else
      {:error, {:bad_input, "unsupported Transfer-Encoding #{inspect(te)}"}}
    end
  end

  defp continue_if_expected(req, request) do
    if String.downcase(Map.get(request.headers, "expect", "")) == "100-continue" do
      :mochiweb_request.send("HTTP/1.1 100 Continue\r\n\r\n", req)
    end
  end

  defp deadline(timeout), do: System.monotonic_time(:millisecond) + timeout
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  defp recv_exact(_socket, 0, _deadline, acc) do
    mark_received()
    {:ok, IO.iodata_to_binary(Enum.reverse(acc))}
  end

  defp recv_exact(socket, n, deadline, acc) do
    case :mochiweb_socket.recv(socket, min(n, @piece), remaining(deadline)) do
      {:ok, data} -> recv_exact(socket, n - byte_size(data), deadline, [data | acc])
      {:error, :timeout} -> {:error, {:timeout, "timed out reading the request body"}}
      {:error, _closed} -> :closed
    end
  end

  defp read_chunks(socket, max, deadline, acc, size) do
    with {:ok, line} <- recv_line(socket, deadline),
         {:ok, chunk_size} <- chunk_size(line) do
      cond do
        chunk_size == 0 ->
          with :ok <- skip_trailers(socket, deadline) do
            mark_received()
            {:ok, IO.iodata_to_binary(Enum.reverse(acc))}
          end

        size + chunk_size > max ->
          {:error, {:too_large, "chunked request body is over the limit of #{max} bytes"}}

        true ->
          with {:ok, data} <- recv_exact(socket, chunk_size, deadline, []),
               {:ok, "\r\n"} <- recv_exact(socket, 2, deadline, []) do
            read_chunks(socket, max, deadline, [data | acc], size + chunk_size)
          else
            {:ok, _} -> {:error, {:bad_input, "malformed chunked body: missing CRLF after a chunk"}}
            other -> other
          end
      end
    end
  end

  defp recv_line(socket, deadline) do
    :ok = :mochiweb_socket.setopts(socket, packet: :line)
    result = :mochiweb_socket.recv(socket, 0, remaining(deadline))
    :ok = :mochiweb_socket.setopts(socket, packet: :raw)

    case result do
      {:ok, line} -> {:ok, line}
      {:error, :timeout} -> {:error, {:timeout, "timed out reading the request body"}}
      {:error, _closed} -> :closed
    end
  end

  defp chunk_size(line) do
    hex = line |> String.split(";", parts: 2) |> hd() |> String.trim()

    case Integer.parse(hex, 16) do
      {n, ""} when n >= 0 -> {:ok, n}
      _ -> {:error, {:bad_input, "malformed chunked body: bad chunk size #{inspect(hex)}"}}
    end
  end

  defp skip_trailers(socket, deadline) do
    case recv_line(socket, deadline) do
      {:ok, line} when line in ["\r\n", "\n"] -> :ok
      {:ok, _trailer} -> skip_trailers(socket, deadline)
      other -> other
    end
  end

  # mochiweb decides keep-alive in `should_close/1`: a body it did not read itself
  # closes the connection unless it is marked as received.
  defp mark_received, do: Process.put(:mochiweb_request_recv, true)

  defp body_expected?(request),
    do: Map.has_key?(request.headers, "content-length") or Map.has_key?(request.headers, "transfer-encoding")

  defp close_after(response, _req) do
    Process.put(:mochiweb_request_force_close, true)
    response
  end

  # ------------------------------------------------------------------ response

  defp send_response(status, headers, {:stream, fun}, request, req) do
    resp = :mochiweb_request.respond({status, headers, :chunked}, req)

    if request.method != "HEAD" do
      emit = fn data ->
        if IO.iodata_length(data) > 0, do: :mochiweb_response.write_chunk(data, resp)
        :ok
      end

      try do
        fun.(emit)
        :mochiweb_response.write_chunk("", resp)
      catch
        kind, reason ->
          # The status is already sent: end the connection without the last chunk so
          # the client sees a truncated response rather than a complete one.
          Logger.error("TimelessMetrics.HTTP: streamed response failed: " <> Exception.format(kind, reason, __STACKTRACE__))
          Process.put(:mochiweb_request_force_close, true)
      end
    end

    :ok
  end

  defp send_response(status, headers, body, _request, req) do
    :mochiweb_request.respond({status, headers, body}, req)
    :ok
  end

  defp record(config, request, status, started) do
    status = if status == :closed, do: 499, else: status
    Stats.record(config.stats, Router.label(request), status, System.monotonic_time(:microsecond) - started)
  rescue
    ArgumentError -> :ok
  end
end
