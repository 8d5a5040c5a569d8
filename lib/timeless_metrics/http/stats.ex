defmodule TimelessMetrics.HTTP.Stats do
  @moduledoc """
  Request counters of one HTTP server: requests per route and status code, and a
  latency histogram per route. Kept in a public named ETS table owned by this
  process (a child of the server's supervisor), updated by the connection processes
  with `:ets.update_counter/4`, read by `/metrics`.

      {:ok, _pid} = TimelessMetrics.HTTP.Stats.start_link(table: :my_http_stats)
      TimelessMetrics.HTTP.Stats.record(:my_http_stats, "/api/v1/series", 200, 1_500)
      TimelessMetrics.HTTP.Stats.requests(:my_http_stats)
      #=> [{"/api/v1/series", 200, 1}]
  """
  use GenServer

  @buckets [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
  @bucket_micros Enum.map(@buckets, &round(&1 * 1_000_000))
  @default_duration_row List.to_tuple([nil, 0, 0] ++ List.duplicate(0, length(@buckets) + 1))

  @doc "Start the owner of the named table `opts[:table]` (process name `opts[:name]`, optional)."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, Keyword.fetch!(opts, :table), Keyword.take(opts, [:name]))

  @impl true
  def init(table) do
    # Written on every request, read by /metrics only: no read_concurrency (its
    # reader-optimised locks make every update_counter pay for the readers).
    {:ok, :ets.new(table, [:set, :public, :named_table, write_concurrency: true])}
  end

  @doc """
  The table's id, for `record/4` (`:undefined` when it does not exist). Updates through
  the id skip the name lookup, which takes a lock of the VM's table of named tables on
  every call.
  """
  @spec table(atom()) :: :ets.tid() | :undefined
  def table(name), do: :ets.whereis(name)

  @doc "Histogram bucket upper bounds, in seconds (`+Inf` is implied)."
  @spec buckets() :: [float()]
  def buckets, do: @buckets

  @doc "Count one request of `route` answered with `status` after `micros` microseconds (table by name or `table/1`)."
  @spec record(atom() | :ets.tid(), String.t(), integer(), non_neg_integer()) :: :ok
  def record(table, route, status, micros) do
    :ets.update_counter(table, {:requests, route, status}, {2, 1}, {{:requests, route, status}, 0})

    # positions: 2 count, 3 sum (µs), 4.. one per bucket (not cumulative: the
    # request counts in its own bucket only; `durations/1` accumulates), last is +Inf
    ops = [{2, 1}, {3, micros}, {4 + bucket_index(micros), 1}]
    :ets.update_counter(table, {:duration, route}, ops, @default_duration_row)
    :ok
  end

  # index of the first bucket whose bound is >= micros (length(@buckets) for +Inf),
  # as one function clause per bound
  for {bound, i} <- Enum.with_index(@bucket_micros) do
    defp bucket_index(micros) when micros <= unquote(bound), do: unquote(i)
  end

  defp bucket_index(_micros), do: unquote(length(@buckets))

  @doc "`[{route, status, count}]`, sorted (`[]` when the table does not exist)."
  @spec requests(atom()) :: [{String.t(), integer(), non_neg_integer()}]
  def requests(table) do
    if :ets.whereis(table) == :undefined, do: [], else: requests_in(table)
  end

  defp requests_in(table) do
    table
    |> :ets.match({{:requests, :"$1", :"$2"}, :"$3"})
    |> Enum.map(&List.to_tuple/1)
    |> Enum.sort()
  end

  @doc """
  `[{route, count, sum_seconds, [{le, cumulative_count}]}]`, sorted by route; the
  last bucket has `le = :infinity`.
  """
  @spec durations(atom()) :: [{String.t(), non_neg_integer(), float(), [{float() | :infinity, non_neg_integer()}]}]
  def durations(table) do
    if :ets.whereis(table) == :undefined, do: [], else: durations_in(table)
  end

  defp durations_in(table) do
    table
    |> :ets.match_object(duration_pattern())
    |> Enum.map(fn row ->
      [{:duration, route}, count, sum | buckets] = Tuple.to_list(row)
      cumulative = buckets |> Enum.scan(&(&1 + &2))
      {route, count, sum / 1_000_000, Enum.zip(@buckets ++ [:infinity], cumulative)}
    end)
    |> Enum.sort()
  end

  defp duration_pattern do
    List.to_tuple([{:duration, :_}, :_, :_] ++ List.duplicate(:_, length(@buckets) + 1))
  end
end
