defmodule Mix.Tasks.Timeless.PromqlConformance do
  @shortdoc "Runs Prometheus's PromQL test scripts (*.test) against TimelessMetrics.PromQL"
  @moduledoc """
  Runs every `*.test` file of a folder of Prometheus v2.53 PromQL test scripts
  through `TimelessMetrics.PromQL.Conformance` and prints a table per file, the
  skipped cases (the explicit list in `TimelessMetrics.PromQL.Conformance.skips/0`),
  and a last line `N passed, M failed, K skipped`.

      $ mix timeless.promql_conformance ../shared/promql-conformance/testdata
      file                    passed  failed  skipped
      aggregators.test            83       0        0
      ...
      567 passed, 0 failed, 201 skipped

  Options:

    * `--verbose` - also print every failing case: file, line, query, the reason,
      the expected lines and what the engine returned;
    * `--strict` - exit with status 1 when a case failed (default: exit 0; the
      ExUnit test `test/promql/conformance_test.exs` enforces the baseline);
    * `--no-range-check` - skip upstream's range-mode cross-check of instant cases;
    * `--engine Module` - run another module with `instant/4` and `range/6`.

  Without a folder, or when the engine is not compiled into this build, it says so,
  runs nothing and exits 0.
  """
  use Mix.Task

  alias TimelessMetrics.PromQL.Conformance

  @switches [verbose: :boolean, strict: :boolean, range_check: :boolean, engine: :string]

  @impl true
  def run(args) do
    {opts, folders, invalid} = OptionParser.parse(args, strict: @switches)
    if invalid != [], do: Mix.raise("unknown options #{inspect(invalid)}; see `mix help timeless.promql_conformance`")

    case folders do
      [] ->
        Mix.shell().info("No folder given (mix timeless.promql_conformance <folder>); skipped, nothing was run.")

      [folder | _] ->
        unless File.dir?(folder), do: Mix.raise("#{folder} is not a directory")
        Mix.Task.run("app.start")
        engine = engine(opts[:engine])
        run_opts = [engine: engine, range_check: Keyword.get(opts, :range_check, true)]

        case Conformance.run_dir(folder, run_opts) do
          {:error, message} ->
            Mix.shell().info("#{message}; skipped.")

          {:ok, summary} ->
            Mix.shell().info(Conformance.report(summary, verbose: Keyword.get(opts, :verbose, false)))
            if opts[:strict] && summary.failed > 0, do: exit({:shutdown, 1})
        end
    end

    :ok
  end

  defp engine(nil), do: TimelessMetrics.PromQL
  defp engine(name), do: Module.concat([name])
end
