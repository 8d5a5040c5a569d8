defmodule TimelessMetrics.Ingest.WorkerSupervisor do
  @moduledoc """
  Supervises a store's `ingest_workers` `TimelessMetrics.IngestWorker`s, one for one:
  a crashed worker restarts alone (and queues its in-flight body again) without
  disturbing the others. Registered as `:"<store>.ingest_workers"`.

      {TimelessMetrics.Ingest.WorkerSupervisor, opts}   # opts from TimelessMetrics.Options.validate/1
  """
  use Supervisor

  @doc false
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}

  @doc "Start the workers of a store (validated options)."
  @spec start_link(map()) :: Supervisor.on_start()
  def start_link(opts) do
    Supervisor.start_link(__MODULE__, opts, name: TimelessMetrics.Supervisor.child_name(opts.name, :ingest_workers))
  end

  @impl true
  def init(opts) do
    children = for i <- 0..(opts.ingest_workers - 1), do: {TimelessMetrics.IngestWorker, {opts, i}}
    # a poison body gets 3 attempts (see TimelessMetrics.Ingest.Queue.recover/2): allow them
    Supervisor.init(children, strategy: :one_for_one, max_restarts: 3 * opts.ingest_workers + 3, max_seconds: 5)
  end
end
