defmodule TimelessMetrics.IngestHelpers do
  @moduledoc """
  Shared helpers of the ingest tests: fake ingest functions (the `ingest_fun` store
  option) that report to the test process, requests, and waiting for a drained queue.

      store = TestStore.start!(ingest_fun: IngestHelpers.reporting(self()))
      {204, _, _} = TimelessMetrics.HTTP.Ingest.handle(:influx, IngestHelpers.request("cpu v=1"), IngestHelpers.config(store))
      assert_receive {:ingested, ^store, :influx, "cpu v=1", _opts}
  """
  import ExUnit.Assertions

  alias TimelessMetrics.IngestStats

  @doc "An ingest function that sends `{:ingested, store, format, body, opts}` to `pid` and answers `report`."
  def reporting(pid, report \\ %{}) do
    fn store, format, body, opts ->
      send(pid, {:ingested, store, format, body, opts})
      {:ok, Map.merge(default_report(), report)}
    end
  end

  @doc "An ingest function that sends `{:ingesting, store, worker_pid, body}`, waits for `:release` in the worker, then reports like `reporting/2`."
  def blocking(pid) do
    fn store, format, body, opts ->
      send(pid, {:ingesting, store, self(), body})

      receive do
        :release -> :ok
      end

      send(pid, {:ingested, store, format, body, opts})
      {:ok, default_report()}
    end
  end

  @doc "A report for `samples` samples with nothing rejected."
  def default_report(samples \\ 1) do
    %{samples: samples, series_created: 0, rejected: [], rejected_by_reason: [], metadata: []}
  end

  @doc "An ingest request map as the router builds it."
  def request(body, query \\ %{}, headers \\ %{}) do
    %{method: "POST", path: "/ingest", query: query, headers: headers, body: body}
  end

  @doc "The handler's config for `store`."
  def config(store, max_body_bytes \\ 1_048_576), do: %{store: store, max_body_bytes: max_body_bytes}

  @doc "Wait until the store's ingest queue is empty."
  def await_drained(store, timeout_ms \\ 10_000) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    wait(fn -> IngestStats.snapshot(store).queue_depth == 0 end, deadline, "the ingest queue of #{inspect(store)} did not drain")
  end

  @doc "Wait until `fun` answers true."
  def wait(fun, deadline, message) do
    cond do
      fun.() -> :ok
      System.monotonic_time(:millisecond) > deadline -> flunk(message)
      true -> Process.sleep(10) && wait(fun, deadline, message)
    end
  end

  @doc "gzip of `mib` MiB of zeros, compressed in steps (never holding the plain data)."
  def gzip_zeros(mib) do
    z = :zlib.open()
    :ok = :zlib.deflateInit(z, :best_compression, :deflated, 31, 8, :default)
    chunk = :binary.copy(<<0>>, 1_048_576)
    parts = for _ <- 1..mib, do: :zlib.deflate(z, chunk)
    last = :zlib.deflate(z, [], :finish)
    :zlib.close(z)
    IO.iodata_to_binary([parts, last])
  end
end
