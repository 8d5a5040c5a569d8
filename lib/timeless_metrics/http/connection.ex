defmodule TimelessMetrics.HTTP.Connection do
  @moduledoc """
  HTTP/1.1 on one accepted TCP socket: requests are read from a byte buffer with
  `:erlang.decode_packet/3` (no socket option changes per header line), turned into
  the plain request map of `TimelessMetrics.HTTP.Request`, answered by
  `TimelessMetrics.HTTP.Router`, and written back with one `send` per response.
  Keep-alive and pipelining follow HTTP/1.1 (HTTP/1.0 closes unless it asks for
  keep-alive).

  Bodies are bounded by `max_body_bytes`:

  - route, method and token are checked first, so 404/405/401/403 never read a body;
  - `Content-Length` over the limit: 413 without reading (the connection is closed);
  - `Transfer-Encoding: chunked`: each chunk size is checked before its bytes are read;
  - a malformed `Content-Length`, or both headers at once: 400;
  - a body (or a request head) that does not arrive within `read_timeout` ms: 408;
  - a request head over #{64 * 1024} bytes or with over 200 header lines: 431;
  - the body is passed on as sent: `Content-Encoding` is decoded by the handler that
    knows the format (ingest decodes gzip, deflate and snappy with the same limit);
  - `Expect: 100-continue` is answered before reading.

  A response body of `{:stream, fun}` is sent with chunked transfer encoding: `fun`
  receives an `emit` function taking iodata, one chunk per call.

  The accepting side is `TimelessMetrics.HTTP.MochiwebAdapter`; any acceptor that
  hands over a passive, binary `:gen_tcp` socket can call `serve/2`.
  """

  require Logger

  alias TimelessMetrics.HTTP.{Errors, Request, Router, Stats}

  @idle_timeout 300_000

  # A busy connection keeps a heap of @busy_heap words, so that it is not collected after
  # every request or two (a request leaves a few hundred words of garbage; under wrk with
  # 1-line POSTs a connection was collected about 2.3 times less often with this minimum,
  # 5-8% less CPU per request). A connection with no request for @busy_ms is not in a
  # closed loop: it collects its heap down to @idle_heap words while it waits, dropping
  # the last body's binaries with it (an agent pushing every few seconds holds only its
  # live data between pushes: with 2,000 agents pushing every second, 334 -> 158 MiB RSS,
  # about 40 KB less per connection, see bench/results/realistic-rss-notes-2026-11-26.md).
  @busy_heap 1597
  @idle_heap 233
  @busy_ms 100
  @max_head_bytes 64 * 1024
  @max_headers 200
  @max_chunk_line 4096
  @piece 1_048_576

  # The user-space buffer of a `recv(socket, 0)` (the request head and what follows it).
  # The listener's 1 MiB `recbuf` sets the socket's `buffer` to the same size, and the
  # inet driver allocates that much for every such read before shrinking it to the bytes
  # read: for a 200-byte request, a 1 MiB carrier mapped and unmapped per read. A socket
  # waiting in `recv` holds one such buffer, so it is kept small (an agent's whole push,
  # head and a ~10 KB body, still arrives in one read). Bodies are read with explicit
  # lengths and are not bounded by this.
  @recv_buffer 16_384

  @doc "Serve requests on `socket` until the client closes it or asks to."
  @spec serve(:gen_tcp.socket(), TimelessMetrics.HTTP.config()) :: :ok
  def serve(socket, config) do
    _ = :inet.setopts(socket, buffer: @recv_buffer)
    Process.flag(:min_heap_size, @busy_heap)
    config = Map.put(config, :stats_table, Stats.table(config.stats))

    peer =
      case :inet.peername(socket) do
        {:ok, {ip, _port}} -> ip
        _ -> nil
      end

    next_request(socket, "", peer, config)
  end

  defp next_request(socket, buffer, peer, config) do
    case read_head(socket, buffer, config) do
      {:ok, head, rest} ->
        started = System.monotonic_time(:microsecond)

        case handle(socket, head, rest, peer, config, started) do
          {:keep_alive, rest, body_bytes} ->
            release_body_garbage(body_bytes)
            next_request(socket, rest, peer, config)

          :close ->
            close(socket)

          :linger ->
            linger_close(socket)
        end

      :closed ->
        close(socket)

      {:error, reason} ->
        {status, headers, body} = Errors.response(reason)
        write(socket, status, headers, body, false, false)
        linger_close(socket)
    end
  end

  defp close(socket) do
    :gen_tcp.close(socket)
    :ok
  end

  # A large body leaves binaries behind on this process's heap: the pieces it was read in,
  # the body itself. Off-heap, they stay allocated until this (small, rarely collected)
  # heap is garbage collected, and on an ingest connection that is several bodies per
  # connection. Collect between requests once a large body was read: the heap is a few
  # kilobytes, so this costs microseconds next to reading a body of this size.
  @gc_after_body_bytes 262_144

  defp release_body_garbage(body_bytes) when body_bytes >= @gc_after_body_bytes do
    :erlang.garbage_collect()
    :ok
  end

  defp release_body_garbage(_body_bytes), do: :ok

  # Closing with unread input makes the kernel answer with a reset, which can destroy
  # the error response still in flight to the client: stop writing, read and drop
  # what the client is still sending (bounded in time and bytes), then close.
  @linger_ms 500
  @linger_bytes 4 * 1_048_576

  defp linger_close(socket) do
    :gen_tcp.shutdown(socket, :write)
    drain(socket, System.monotonic_time(:millisecond) + @linger_ms, @linger_bytes)
    close(socket)
  end

  defp drain(socket, deadline, budget) when budget > 0 do
    case :gen_tcp.recv(socket, 0, max(deadline - System.monotonic_time(:millisecond), 0)) do
      {:ok, data} -> drain(socket, deadline, budget - byte_size(data))
      {:error, _closed_or_timeout} -> :ok
    end
  end

  defp drain(_socket, _deadline, _budget), do: :ok

  # ------------------------------------------------------------------ one request

  defp handle(socket, {method, target, version, headers}, rest, peer, config, started) do
    request = request_map(method, target, headers, peer)
    keep_alive? = keep_alive?(version, headers)

    {request, {status, resp_headers, body}, rest, body_bytes} =
      case Router.preflight(request, config) do
        {:routed, routed_request, _access, _target} = routed ->
          case read_body(socket, request, rest, config, started) do
            {:ok, body, rest} -> {routed_request, Router.dispatch(routed, config, body), rest, if(body, do: byte_size(body), else: 0)}
            {:error, reason} -> {routed_request, Errors.response(reason), :close, 0}
            :closed -> {routed_request, {:closed, [], []}, :close, 0}
          end

        refused ->
          # the body was not read: the connection cannot be reused unless there was none
          {request, refused, if(body_expected?(request), do: :close, else: rest), 0}
      end

    keep_alive? = keep_alive? and rest != :close

    sent =
      if status == :closed,
        do: false,
        else: write(socket, status, resp_headers, body, keep_alive?, method == "HEAD")

    record(config, request, status, started)

    cond do
      keep_alive? and sent -> {:keep_alive, rest, body_bytes}
      # an unread or partly read body may still be arriving
      rest == :close and status != :closed -> :linger
      true -> :close
    end
  end

  defp request_map(method, target, headers, peer) do
    {path, qs} =
      case :binary.split(target, "?") do
        [path, qs] -> {path, qs}
        [path] -> {path, ""}
      end

    %{method: method, path: decode_path(path), query: Request.parse_query(qs), headers: headers, body: nil, peer: peer}
  end

  defp decode_path(path) do
    if :binary.match(path, "%") == :nomatch, do: path, else: URI.decode(path)
  rescue
    ArgumentError -> path
  end

  defp keep_alive?({1, 1}, headers), do: not token?(headers, "connection", "close")
  defp keep_alive?({1, 0}, headers), do: token?(headers, "connection", "keep-alive")
  defp keep_alive?(_version, _headers), do: false

  defp token?(headers, name, token) do
    case Map.get(headers, name) do
      nil -> false
      value -> value |> String.downcase(:ascii) |> String.split(",") |> Enum.any?(&(String.trim(&1) == token))
    end
  end

  defp body_expected?(request),
    do: Map.has_key?(request.headers, "content-length") or Map.has_key?(request.headers, "transfer-encoding")

  # ------------------------------------------------------------------ request head

  # {:ok, {method, target, version, headers}, rest} | :closed | {:error, reason}
  defp read_head(socket, buffer, config) do
    case parse_head(buffer) do
      {:ok, head, rest} ->
        {:ok, head, rest}

      {:error, _} = error ->
        error

      :more when byte_size(buffer) > @max_head_bytes ->
        {:error, {:head_too_large, "request head over #{@max_head_bytes} bytes"}}

      :more when buffer == "" ->
        case await_request(socket) do
          {:ok, data} -> read_head(socket, data, config)
          {:error, _closed_or_idle} -> :closed
        end

      :more ->
        case :gen_tcp.recv(socket, 0, config.read_timeout) do
          {:ok, data} -> read_head(socket, buffer <> data, config)
          {:error, :timeout} -> {:error, {:timeout, "timed out reading the request head"}}
          {:error, _closed} -> :closed
        end
    end
  end

  defp await_request(socket) do
    case :gen_tcp.recv(socket, 0, @busy_ms) do
      {:error, :timeout} ->
        Process.flag(:min_heap_size, @idle_heap)
        :erlang.garbage_collect()
        result = :gen_tcp.recv(socket, 0, @idle_timeout - @busy_ms)
        Process.flag(:min_heap_size, @busy_heap)
        result

      result ->
        result
    end
  end

  # Blank lines before a request line are ignored (RFC 9112, section 2.2).
  defp parse_head(<<"\r\n", rest::binary>>), do: parse_head(rest)
  defp parse_head(<<"\n", rest::binary>>), do: parse_head(rest)

  defp parse_head(buffer) do
    case :erlang.decode_packet(:http_bin, buffer, []) do
      {:ok, {:http_request, method, target, version}, rest} ->
        with {:ok, method} <- method(method),
             {:ok, target} <- target(target) do
          parse_headers(rest, {method, target, version}, %{}, 0)
        end

      {:ok, {:http_error, line}, _rest} ->
        {:error, {:bad_input, "malformed request line #{inspect(String.slice(line, 0, 100))}"}}

      {:ok, _other, _rest} ->
        {:error, {:bad_input, "malformed request line"}}

      {:more, _} ->
        :more

      {:error, reason} ->
        {:error, {:bad_input, "malformed request: #{inspect(reason)}"}}
    end
  end

  defp parse_headers(_buffer, _line, _headers, n) when n > @max_headers,
    do: {:error, {:head_too_large, "more than #{@max_headers} header lines"}}

  defp parse_headers(buffer, {method, target, version} = line, headers, n) do
    case :erlang.decode_packet(:httph_bin, buffer, []) do
      {:ok, {:http_header, _, name, _, value}, rest} ->
        name = header_name(name)

        headers =
          case headers do
            %{^name => earlier} -> %{headers | name => earlier <> ", " <> value}
            _ -> Map.put(headers, name, value)
          end
        parse_headers(rest, line, headers, n + 1)

      {:ok, :http_eoh, rest} ->
        {:ok, {method, target, version, headers}, rest}

      {:ok, {:http_error, text}, _rest} ->
        {:error, {:bad_input, "malformed header line #{inspect(String.slice(text, 0, 100))}"}}

      {:more, _} ->
        :more

      {:error, reason} ->
        {:error, {:bad_input, "malformed request head: #{inspect(reason)}"}}
    end
  end

  for m <- ~w(GET POST HEAD PUT DELETE OPTIONS) do
    defp method(unquote(String.to_atom(m))), do: {:ok, unquote(m)}
  end

  defp method(m) when is_atom(m), do: {:ok, Atom.to_string(m)}
  defp method(m) when is_binary(m), do: {:ok, String.upcase(m, :ascii)}

  defp target({:abs_path, path}), do: {:ok, path}
  defp target({:absoluteURI, _scheme, _host, _port, path}), do: {:ok, path}
  defp target(other), do: {:error, {:bad_input, "unsupported request target #{inspect(other)}"}}

  # The header names `:erlang.decode_packet/3` returns as atoms (in its spelling), each
  # lower-cased once here at compile time rather than per request.
  @packet_headers ~w(Cache-Control Connection Date Pragma Transfer-Encoding Upgrade Via Accept Accept-Charset
                     Accept-Encoding Accept-Language Authorization From Host If-Modified-Since If-Match If-None-Match
                     If-Range If-Unmodified-Since Max-Forwards Proxy-Authorization Range Referer User-Agent Age
                     Location Proxy-Authenticate Public Retry-After Server Vary Warning Www-Authenticate Allow
                     Content-Base Content-Encoding Content-Language Content-Length Content-Location Content-Md5
                     Content-Range Content-Type Etag Expires Last-Modified Accept-Ranges Set-Cookie Set-Cookie2
                     X-Forwarded-For Cookie Keep-Alive Proxy-Connection)

  for name <- @packet_headers do
    defp header_name(unquote(String.to_atom(name))), do: unquote(String.downcase(name))
  end

  defp header_name(name) when is_atom(name), do: name |> Atom.to_string() |> String.downcase(:ascii)
  defp header_name(name), do: String.downcase(name, :ascii)

  # ------------------------------------------------------------------ body

  # {:ok, body | nil, rest} | {:error, reason} | :closed; `started` (µs) is when the head
  # was read, the body's deadline counts from there
  defp read_body(socket, request, rest, config, started) do
    headers = request.headers
    deadline = div(started, 1000) + config.read_timeout

    case {Map.get(headers, "transfer-encoding"), Map.get(headers, "content-length")} do
      {nil, nil} -> {:ok, nil, rest}
      {nil, length} -> read_sized(socket, request, length, rest, config.max_body_bytes, deadline)
      {te, nil} -> read_chunked(socket, request, te, rest, config.max_body_bytes, deadline)
      {_te, _length} -> {:error, {:bad_input, "a request may not have both Content-Length and Transfer-Encoding"}}
    end
  end

  defp read_sized(socket, request, length, rest, max, deadline) do
    case Integer.parse(String.trim(length)) do
      {0, ""} ->
        {:ok, "", rest}

      {n, ""} when n > max ->
        {:error, {:too_large, "request body of #{n} bytes is over the limit of #{max} bytes"}}

      {n, ""} when n > 0 ->
        if byte_size(rest) < n, do: continue_if_expected(socket, request)
        take(socket, rest, n, deadline)

      _ ->
        {:error, {:bad_input, "invalid Content-Length #{inspect(length)}"}}
    end
  end

  defp read_chunked(socket, request, te, rest, max, deadline) do
    if String.downcase(String.trim(te), :ascii) == "chunked" do
      continue_if_expected(socket, request)
      read_chunks(socket, rest, max, deadline, [], 0)
    else
      {:error, {:bad_input, "unsupported Transfer-Encoding #{inspect(te)}"}}
    end
  end

  defp continue_if_expected(socket, request) do
    if String.downcase(Map.get(request.headers, "expect", ""), :ascii) == "100-continue" do
      :gen_tcp.send(socket, "HTTP/1.1 100 Continue\r\n\r\n")
    end
  end

  defp read_chunks(socket, buffer, max, deadline, acc, size) do
    with {:ok, line, buffer} <- take_line(socket, buffer, deadline),
         {:ok, chunk_size} <- chunk_size(line) do
      cond do
        chunk_size == 0 ->
          with {:ok, buffer} <- skip_trailers(socket, buffer, deadline) do
            {:ok, IO.iodata_to_binary(Enum.reverse(acc)), buffer}
          end

        size + chunk_size > max ->
          {:error, {:too_large, "chunked request body is over the limit of #{max} bytes"}}

        true ->
          with {:ok, data, buffer} <- take(socket, buffer, chunk_size, deadline),
               {:ok, "\r\n", buffer} <- take(socket, buffer, 2, deadline) do
            read_chunks(socket, buffer, max, deadline, [data | acc], size + chunk_size)
          else
            {:ok, _, _} -> {:error, {:bad_input, "malformed chunked body: missing CRLF after a chunk"}}
            other -> other
          end
      end
    end
  end

  defp chunk_size(line) do
    hex = line |> String.split(";", parts: 2) |> hd() |> String.trim()

    case Integer.parse(hex, 16) do
      {n, ""} when n >= 0 -> {:ok, n}
      _ -> {:error, {:bad_input, "malformed chunked body: bad chunk size #{inspect(String.slice(hex, 0, 40))}"}}
    end
  end

  defp skip_trailers(socket, buffer, deadline) do
    case take_line(socket, buffer, deadline) do
      {:ok, "", buffer} -> {:ok, buffer}
      {:ok, _trailer, buffer} -> skip_trailers(socket, buffer, deadline)
      other -> other
    end
  end

  # The next CRLF-terminated line of the buffer, reading more as needed.
  defp take_line(socket, buffer, deadline) do
    case :binary.split(buffer, "\r\n") do
      [line, rest] ->
        {:ok, line, rest}

      [_] when byte_size(buffer) > @max_chunk_line ->
        {:error, {:bad_input, "malformed chunked body: line over #{@max_chunk_line} bytes"}}

      [_] ->
        with {:ok, data} <- recv(socket, 0, deadline), do: take_line(socket, buffer <> data, deadline)
    end
  end

  # Exactly `n` bytes: from the buffer first, then from the socket.
  defp take(_socket, buffer, n, _deadline) when byte_size(buffer) >= n do
    <<data::binary-size(n), rest::binary>> = buffer
    {:ok, data, rest}
  end

  defp take(socket, buffer, n, deadline), do: take_more(socket, n - byte_size(buffer), deadline, [buffer])

  defp take_more(_socket, 0, _deadline, acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc)), ""}

  defp take_more(socket, missing, deadline, acc) do
    with {:ok, data} <- recv(socket, min(missing, @piece), deadline),
         do: take_more(socket, missing - byte_size(data), deadline, [data | acc])
  end

  defp recv(socket, n, deadline) do
    case :gen_tcp.recv(socket, n, max(deadline - System.monotonic_time(:millisecond), 0)) do
      {:ok, data} -> {:ok, data}
      {:error, :timeout} -> {:error, {:timeout, "timed out reading the request body"}}
      {:error, _closed} -> :closed
    end
  end

  # ------------------------------------------------------------------ response

  # true when the whole response went out
  defp write(socket, status, headers, {:stream, fun}, keep_alive?, head_only?) do
    head = [response_head(status, headers, keep_alive?), "transfer-encoding: chunked\r\n\r\n"]

    with :ok <- :gen_tcp.send(socket, head) do
      if head_only?, do: true, else: stream(socket, fun)
    else
      _ -> false
    end
  end

  defp write(socket, status, headers, body, keep_alive?, head_only?) do
    length = if status in [204, 304], do: [], else: ["content-length: ", Integer.to_string(IO.iodata_length(body)), "\r\n"]
    payload = if head_only? or status in [204, 304], do: [], else: body
    :gen_tcp.send(socket, [response_head(status, headers, keep_alive?), length, "\r\n" | payload]) == :ok
  end

  defp stream(socket, fun) do
    emit = fn data ->
      case IO.iodata_length(data) do
        0 -> :ok
        n -> :ok = :gen_tcp.send(socket, [Integer.to_string(n, 16), "\r\n", data, "\r\n"])
      end

      :ok
    end

    try do
      fun.(emit)
      :gen_tcp.send(socket, "0\r\n\r\n") == :ok
    catch
      kind, reason ->
        # The status is already sent: end the connection without the last chunk so
        # the client sees a truncated response rather than a complete one.
        Logger.error("TimelessMetrics.HTTP: streamed response failed: " <> Exception.format(kind, reason, __STACKTRACE__))
        false
    end
  end

  defp response_head(status, headers, keep_alive?) do
    [
      "HTTP/1.1 ",
      Integer.to_string(status),
      " ",
      reason(status),
      "\r\ndate: ",
      date(),
      "\r\n",
      if(keep_alive?, do: [], else: "connection: close\r\n")
      | Enum.map(headers, fn {name, value} -> [name, ": ", value, "\r\n"] end)
    ]
  end

  # The Date header, formatted once per second per connection process.
  defp date do
    now = System.os_time(:second)

    case Process.get(:timeless_http_date) do
      {^now, text} ->
        text

      _ ->
        text = http_date(now)
        Process.put(:timeless_http_date, {now, text})
        text
    end
  end

  @days {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
  @months {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

  @doc false
  @spec http_date(integer()) :: String.t()
  def http_date(unix_seconds) do
    {{y, mo, d}, {h, mi, s}} = :calendar.system_time_to_universal_time(unix_seconds, :second)
    day = elem(@days, :calendar.day_of_the_week(y, mo, d) - 1)
    month = elem(@months, mo - 1)
    "#{day}, #{pad(d)} #{month} #{y} #{pad(h)}:#{pad(mi)}:#{pad(s)} GMT"
  end

  defp pad(n) when n < 10, do: "0#{n}"
  defp pad(n), do: Integer.to_string(n)

  @reasons %{
    200 => "OK",
    204 => "No Content",
    206 => "Partial Content",
    304 => "Not Modified",
    400 => "Bad Request",
    401 => "Unauthorized",
    403 => "Forbidden",
    404 => "Not Found",
    405 => "Method Not Allowed",
    406 => "Not Acceptable",
    408 => "Request Timeout",
    409 => "Conflict",
    413 => "Payload Too Large",
    415 => "Unsupported Media Type",
    422 => "Unprocessable Entity",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    501 => "Not Implemented",
    503 => "Service Unavailable",
    504 => "Gateway Timeout"
  }

  defp reason(status), do: Map.get(@reasons, status, "Status")

  defp record(config, request, status, started) do
    status = if status == :closed, do: 499, else: status
    Stats.record(config.stats_table, Router.label(request), status, System.monotonic_time(:microsecond) - started)
  rescue
    ArgumentError -> :ok
  end
end
