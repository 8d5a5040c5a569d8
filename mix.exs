Code.require_file("build/compile_cargo.ex", __DIR__)

defmodule TimelessMetrics.MixProject do
  use Mix.Project

  def project do
    [
      app: :timeless_metrics,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:cargo] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      cargo: [workspace: "native", crate: "timeless_nif", lib: "libtimeless_nif.so", out: "timeless_nif.so"]
    ]
  end

  def application do
    [extra_applications: [:logger, :jiffy, :mochiweb, :inets, :crypto]]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
