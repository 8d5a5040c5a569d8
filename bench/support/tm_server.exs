# A TimelessMetrics store + HTTP server in its own OS process, for the side-by-side
# benchmarks (so its CPU and RSS are its own, not the load generator's).
#
#   elixir -pa _build/prod/lib/timeless_metrics/ebin bench/support/tm_server.exs DATA_DIR PORT
#
# Prints "READY <http port> <os pid>" once listening; exits when stdin closes.
[dir, port] = System.argv()
{:ok, _} = TimelessMetrics.start_link(name: :bench, data_dir: dir)
{:ok, _} = TimelessMetrics.HTTP.start_link(store: :bench, port: String.to_integer(port))
IO.puts("READY #{TimelessMetrics.HTTP.port(:bench)} #{System.pid()}")
_ = IO.read(:stdio, :line)
System.halt(0)
