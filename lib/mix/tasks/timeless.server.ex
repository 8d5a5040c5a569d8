defmodule Mix.Tasks.Timeless.Server do
  @shortdoc "Starts a TimelessMetrics store on the embedded default (data in ./data)"
  @moduledoc """
  Starts a store named `:metrics` with its data in `./data` (or `$TIMELESS_DATA_DIR`).

      $ iex -S mix timeless.server
      iex> TimelessMetrics.write(:metrics, "cpu", %{"host" => "a"}, 1.0)
      :ok

  Without iex it keeps running in the foreground until stopped.
  """
  use Mix.Task

  @impl true
  def run(_args) do
    Mix.Task.run("app.start")
    data_dir = System.get_env("TIMELESS_DATA_DIR", "data")

    {:ok, _} =
      Supervisor.start_link([{TimelessMetrics, name: :metrics, data_dir: data_dir}],
        strategy: :one_for_one,
        name: TimelessMetrics.Server
      )

    Mix.shell().info("TimelessMetrics store :metrics running, data in #{Path.expand(data_dir)}")

    unless iex_running?(), do: Process.sleep(:infinity)
  end

  defp iex_running?, do: Code.ensure_loaded?(IEx) and IEx.started?()
end
