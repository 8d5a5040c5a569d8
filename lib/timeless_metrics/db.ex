defmodule TimelessMetrics.DB do
  @moduledoc """
  The store's admin database: SQLite (through rusqlite in `native/admin`) at
  `<data_dir>/admin.sqlite3`, or in memory in memory mode. Its schema is created by
  versioned migrations (see `native/admin/SCHEMA.md`): metric metadata, annotations,
  alert rules and state, scrape targets, rollups and an admin key-value table.

  The process owns the connection; calls run in the caller on a dirty I/O scheduler
  (the connection is behind a mutex in Rust).

      iex> TimelessMetrics.DB.execute(:metrics, "INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, ?3)", ["k", "v", 0])
      {:ok, %{changes: 1, last_insert_id: 1}}
      iex> TimelessMetrics.DB.query(:metrics, "SELECT value FROM admin_kv WHERE key = ?1", ["k"])
      {:ok, %{columns: ["value"], rows: [["v"]]}}
  """
  use GenServer

  alias TimelessMetrics.{Engine, Native}

  @type param :: nil | integer() | float() | binary() | {:blob, binary()} | atom()

  @doc false
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @doc "Start the admin database owner for validated options."
  @spec start_link(map()) :: GenServer.on_start()
  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: TimelessMetrics.Supervisor.child_name(opts.name, :db))
  end

  defp key(store), do: {__MODULE__, store}

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    path = if opts.mode == :memory, do: nil, else: Path.join(Path.expand(opts.data_dir), "admin.sqlite3")

    case Engine.wrap(fn -> Native.admin_open(path) end) do
      {:ok, db} ->
        :persistent_term.put(key(opts.name), db)
        {:ok, %{name: opts.name, db: db}}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase(key(state.name))
    Native.admin_close(state.db)
  end

  defp with_db(store, fun) do
    case :persistent_term.get(key(store), nil) do
      nil -> {:error, {:unavailable, "store #{inspect(store)} is not running"}}
      db -> Engine.wrap(fn -> fun.(db) end)
    end
  end

  @doc "Run a statement with positional parameters (`?1`, `?2`...)."
  @spec execute(atom(), String.t(), [param()]) :: {:ok, %{changes: non_neg_integer(), last_insert_id: integer()}} | {:error, term()}
  def execute(store, sql, params \\ []) do
    with {:ok, {changes, id}} <- with_db(store, &Native.admin_execute(&1, sql, params)) do
      {:ok, %{changes: changes, last_insert_id: id}}
    end
  end

  @doc "Run a query; rows are lists in column order."
  @spec query(atom(), String.t(), [param()]) :: {:ok, %{columns: [String.t()], rows: [list()]}} | {:error, term()}
  def query(store, sql, params \\ []) do
    with {:ok, {columns, rows}} <- with_db(store, &Native.admin_query(&1, sql, params)) do
      {:ok, %{columns: columns, rows: rows}}
    end
  end

  @doc "Run statements atomically: all apply or none."
  @spec transaction(atom(), [{String.t(), [param()]}]) :: {:ok, [non_neg_integer()]} | {:error, term()}
  def transaction(store, statements), do: with_db(store, &Native.admin_transaction(&1, statements))

  @doc "Applied schema migrations as `[{version, name}]`."
  @spec migrations(atom()) :: {:ok, [{integer(), String.t()}]} | {:error, term()}
  def migrations(store), do: with_db(store, &Native.admin_migrations/1)

  @doc "Names of the tables in the admin database."
  @spec tables(atom()) :: {:ok, [String.t()]} | {:error, term()}
  def tables(store), do: with_db(store, &Native.admin_tables/1)

  @doc "Consistent online copy of the admin database to `path`."
  @spec backup(atom(), Path.t()) :: :ok | {:error, term()}
  def backup(store, path), do: with_db(store, &Native.admin_backup(&1, Path.expand(path)))
end
