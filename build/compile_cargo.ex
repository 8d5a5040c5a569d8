defmodule Mix.Tasks.Compile.Cargo do
  @moduledoc """
  Builds the rustler NIF crate with cargo (release profile) and installs the shared
  library into `priv/native/`.

  Configured in `mix.exs` under `:cargo`:

      cargo: [workspace: "native", crate: "timeless_nif",
              lib: "libtimeless_nif.so", out: "timeless_nif.so"]

  Loaded from `mix.exs` with `Code.require_file/2` because a compiler under
  `lib/mix/tasks` is not available yet when Mix compiles the project itself.
  cargo's own dependency tracking decides whether anything is rebuilt; the `.so`
  is installed by copy-then-rename so a running VM never sees a half-written file.
  """
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    config = Mix.Project.config()[:cargo]
    workspace = Path.expand(Keyword.fetch!(config, :workspace))
    cargo = find_cargo()

    Mix.shell().info("cargo build --release -p #{config[:crate]}")

    {_, status} =
      System.cmd(cargo, ["build", "--release", "-p", config[:crate]],
        cd: workspace,
        into: IO.stream(:stdio, :line),
        stderr_to_stdout: true
      )

    if status != 0, do: Mix.raise("cargo build failed with status #{status}")

    built = Path.join([workspace, "target", "release", config[:lib]])
    dir = Path.expand("priv/native")
    File.mkdir_p!(dir)
    target = Path.join(dir, config[:out])

    if stale?(built, target) do
      tmp = target <> ".tmp"
      File.cp!(built, tmp)
      File.rename!(tmp, target)
    end

    # _build/<env>/lib/<app>/priv must point at ./priv before the NIF is loaded;
    # on the first compile of a fresh clone nothing has created it yet.
    Mix.Project.build_structure()
    {:ok, []}
  end

  defp stale?(built, target) do
    case {File.stat(built, time: :posix), File.stat(target, time: :posix)} do
      {{:ok, b}, {:ok, t}} -> b.mtime > t.mtime or b.size != t.size
      _ -> true
    end
  end

  defp find_cargo do
    System.find_executable("cargo") ||
      Enum.find(
        [Path.expand("~/.cargo/bin/cargo")],
        &File.exists?/1
      ) ||
      Mix.raise("""
      cargo not found. Install Rust with rustup (https://rustup.rs) so that ~/.cargo/bin/cargo exists,
      then run this again. Debian's own cargo is too old for rustler.
      """)
  end
end
