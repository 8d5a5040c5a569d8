defmodule TimelessMetrics.VictoriaServer do
  @moduledoc """
  Debian's `victoria-metrics` started for a test on 127.0.0.1, with a temporary data
  dir, on a free port (VictoriaMetrics does not accept port 0: a port is taken from a
  `:gen_tcp` listener that is closed just before).

      case TimelessMetrics.VictoriaServer.start(dir) do
        {:ok, vm} ->
          {:ok, 204, _} = TimelessMetrics.VictoriaServer.request(vm, :post, "/api/v1/import/prometheus", "up 1\\n")
          TimelessMetrics.VictoriaServer.stop(vm)

        {:error, :not_installed} ->
          :skip
      end
  """

  defstruct [:port, :os_pid, :dir, :url, :http_port]

  @type t :: %__MODULE__{port: port(), os_pid: non_neg_integer(), dir: Path.t(), url: String.t(), http_port: :inet.port_number()}

  @doc "The `victoria-metrics` executable, or nil."
  @spec executable() :: String.t() | nil
  def executable, do: System.find_executable("victoria-metrics")

  @doc "Start VictoriaMetrics with its data under `dir`; waits until `/health` answers."
  @spec start(Path.t()) :: {:ok, t()} | {:error, :not_installed | String.t()}
  def start(dir) do
    case executable() do
      nil -> {:error, :not_installed}
      exe -> launch(exe, dir, free_port())
    end
  end

  @doc "A TCP port free right now on 127.0.0.1."
  @spec free_port() :: :inet.port_number()
  def free_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1}, reuseaddr: true)
    {:ok, port} = :inet.port(socket)
    :ok = :gen_tcp.close(socket)
    port
  end

  defp launch(exe, dir, http_port) do
    File.mkdir_p!(dir)

    port =
      Port.open({:spawn_executable, exe}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: [
          "-storageDataPath=#{dir}",
          "-httpListenAddr=127.0.0.1:#{http_port}",
          "-retentionPeriod=100y",
          "-loggerLevel=ERROR",
          "-search.disableCache"
        ]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    vm = %__MODULE__{port: port, os_pid: os_pid, dir: dir, url: "http://127.0.0.1:#{http_port}", http_port: http_port}

    case wait_healthy(vm, 100) do
      :ok -> {:ok, vm}
      {:error, message} -> stop(vm) && {:error, message}
    end
  end

  defp wait_healthy(vm, 0), do: {:error, "victoria-metrics did not become healthy at #{vm.url}"}

  defp wait_healthy(vm, n) do
    case request(vm, :get, "/health") do
      {:ok, 200, _} -> :ok
      _ -> Process.sleep(100) && wait_healthy(vm, n - 1)
    end
  end

  @doc "Stop the server (SIGTERM, then wait for its exit)."
  @spec stop(t()) :: true
  def stop(%__MODULE__{} = vm) do
    System.cmd("kill", ["#{vm.os_pid}"], stderr_to_stdout: true)

    receive do
      {port, {:exit_status, _}} when port == vm.port -> true
    after
      5_000 -> System.cmd("kill", ["-9", "#{vm.os_pid}"], stderr_to_stdout: true) && true
    end
  end

  @doc "An HTTP request to the server with `:httpc`: `{:ok, status, body}`."
  @spec request(t(), :get | :post, String.t(), iodata() | nil, [{String.t(), String.t()}]) ::
          {:ok, pos_integer(), binary()} | {:error, term()}
  def request(vm, method, path, body \\ nil, headers \\ []), do: http(vm.url, method, path, body, headers)

  @doc "An HTTP request to any base URL with `:httpc` (brackets in the path are escaped)."
  @spec http(String.t(), :get | :post, String.t(), iodata() | nil, [{String.t(), String.t()}]) ::
          {:ok, pos_integer(), binary()} | {:error, term()}
  def http(base, method, path, body \\ nil, headers \\ []) do
    url = String.to_charlist(base <> (path |> String.replace("[", "%5B") |> String.replace("]", "%5D")))
    headers = Enum.map(headers, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)
    req = if body == nil, do: {url, headers}, else: {url, headers, ~c"application/octet-stream", IO.iodata_to_binary(body)}

    case :httpc.request(method, req, [timeout: 30_000], body_format: :binary) do
      {:ok, {{_, status, _}, _headers, resp}} -> {:ok, status, resp}
      {:error, reason} -> {:error, reason}
    end
  end
end
