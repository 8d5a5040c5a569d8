defmodule Mix.Tasks.Timeless.Server do
  @shortdoc "Starts a TimelessMetrics store and its HTTP server (data in ./data, port 8428)"
  @moduledoc """
  Starts a store named `:metrics` with its data in `./data` (or `$TIMELESS_DATA_DIR`)
  and its HTTP server (`TimelessMetrics.HTTP`) on `127.0.0.1:8428`.

  | variable | default | meaning |
  |---|---|---|
  | `TIMELESS_DATA_DIR` | `data` | the store's directory |
  | `TIMELESS_PORT` | `8428` | HTTP port (`0` picks a free one) |
  | `TIMELESS_IP` | `127.0.0.1` | interface to listen on; `0.0.0.0` for all interfaces |

      $ iex -S mix timeless.server
      iex> TimelessMetrics.write(:metrics, "cpu", %{"host" => "a"}, 1.0)
      :ok
      $ curl 'http://127.0.0.1:8428/api/v1/series?match[]=cpu'

  Without iex it keeps running in the foreground until stopped.
  """
  use Mix.Task

  @impl true
  def run(_args) do
    Mix.Task.run("app.start")
    data_dir = System.get_env("TIMELESS_DATA_DIR", "data")
    port = port(System.get_env("TIMELESS_PORT", "8428"))
    ip = ip(System.get_env("TIMELESS_IP", "127.0.0.1"))

    {:ok, _} =
      Supervisor.start_link(
        [
          {TimelessMetrics, name: :metrics, data_dir: data_dir},
          {TimelessMetrics.HTTP, store: :metrics, port: port, ip: ip}
        ],
        strategy: :rest_for_one,
        name: TimelessMetrics.Server
      )

    Mix.shell().info(
      "TimelessMetrics store :metrics running, data in #{Path.expand(data_dir)}, " <>
        "HTTP on http://#{:inet.ntoa(ip)}:#{TimelessMetrics.HTTP.port(:metrics)}"
    )

    unless iex_running?(), do: Process.sleep(:infinity)
  end

  defp port(text) do
    case Integer.parse(text) do
      {port, ""} when port in 0..65_535 -> port
      _ -> Mix.raise("TIMELESS_PORT must be a port number (0..65535), got #{inspect(text)}")
    end
  end

  defp ip(text) do
    case :inet.parse_address(String.to_charlist(text)) do
      {:ok, ip} -> ip
      {:error, _} -> Mix.raise("TIMELESS_IP must be an IP address such as 0.0.0.0, got #{inspect(text)}")
    end
  end

  defp iex_running?, do: Code.ensure_loaded?(IEx) and IEx.started?()
end
