defmodule TimelessMetrics.HTTP.MaxConnectionsTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.HTTPHelpers

  @health "GET /health HTTP/1.1\r\nhost: x\r\n\r\n"

  defp connect(port) do
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
    socket
  end

  defp status(socket, timeout) do
    :ok = :gen_tcp.send(socket, @health)

    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, "HTTP/1.1 " <> <<code::binary-3, _::binary>>} -> String.to_integer(code)
      {:error, reason} -> reason
    end
  end

  test "connections past max_connections wait until one closes, then are served" do
    server = start_server!(TimelessMetrics.TestStore.start!(), max_connections: 2)
    [a, b] = for _ <- 1..2, do: connect(server.port)
    assert status(a, 2_000) == 200
    assert status(b, 2_000) == 200

    c = connect(server.port)
    assert status(c, 300) == :timeout

    :gen_tcp.close(a)
    assert {:ok, "HTTP/1.1 200" <> _} = :gen_tcp.recv(c, 0, 2_000)
    Enum.each([b, c], &:gen_tcp.close/1)
  end

  test "the default serves far more keep-alive connections than mochiweb's own 2,048" do
    assert {:ok, %{max_connections: 16_384}} = TimelessMetrics.HTTP.validate(store: :s)
    assert {:error, {:invalid_option, :max_connections, _}} = TimelessMetrics.HTTP.validate(store: :s, max_connections: 0)
  end
end
