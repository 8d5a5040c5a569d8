defmodule TimelessMetrics.Supervisor do
  @moduledoc """
  One supervisor per store. Children are named after the store, so several stores
  run in one VM.

  ```text
  TimelessMetrics.Supervisor  (name: :"<store>.supervisor", strategy: :rest_for_one)
  ├── TimelessMetrics.RustEngine   :"<store>.engine"   engine handle, WAL, maintenance ticks
  ├── TimelessMetrics.DB           :"<store>.db"       admin SQLite (metadata, alerts, targets...)
  ├── TimelessMetrics.Ingest.Queue :"<store>.ingest_queue"  ingest queue tables, counters;
  │                                                          replays the spool <data_dir>/ingest_spool on start
  └── TimelessMetrics.Ingest.WorkerSupervisor :"<store>.ingest_workers"  (one_for_one)
      └── TimelessMetrics.IngestWorker x ingest_workers  :"<store>.ingest_worker_<i>"
  ```

  `:rest_for_one`: a restart of the engine or the database restarts the ingest queue
  (which replays its spool) and the workers. In memory mode there is no spool.

  Later features add (skipped in memory mode where they need disk): AlertEvaluator,
  SelfMonitor, the scrape DynamicSupervisor and Scraper.

      children = [{TimelessMetrics, name: :metrics, data_dir: "/var/lib/metrics"}]
      Supervisor.start_link(children, strategy: :one_for_one)
  """
  use Supervisor

  @doc "Start a store's supervisor from validated options."
  @spec start_link(map()) :: Supervisor.on_start()
  def start_link(opts), do: Supervisor.start_link(__MODULE__, opts, name: child_name(opts.name, :supervisor))

  @doc "The registered name of a store's child."
  @spec child_name(atom(), atom()) :: atom()
  def child_name(store, role), do: :"#{store}.#{role}"

  @impl true
  def init(opts) do
    children = [
      {TimelessMetrics.RustEngine, opts},
      {TimelessMetrics.DB, opts},
      {TimelessMetrics.Ingest.Queue, opts},
      {TimelessMetrics.Ingest.WorkerSupervisor, opts}
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end
end
