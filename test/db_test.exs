defmodule TimelessMetrics.DBTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics.{DB, TestStore}

  @tables ~w(admin_kv alert_rules alert_state annotations metric_metadata rollups schema_migrations scrape_targets)

  test "the admin schema is created by versioned migrations" do
    s = TestStore.start!()
    {:ok, tables} = DB.tables(s)
    for t <- @tables, do: assert(t in tables, "missing table #{t}")
    {:ok, migrations} = DB.migrations(s)
    versions = Enum.map(migrations, &elem(&1, 0))
    assert versions == Enum.to_list(1..length(versions))
  end

  @tag :tmp_dir
  test "rows persist across restarts; errors are tuples", %{tmp_dir: dir} do
    s = TestStore.start!(data_dir: dir)
    assert {:ok, %{changes: 1}} = DB.execute(s, "INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, ?3)", ["k", "v", 1])
    assert {:error, {:bad_input, msg}} = DB.execute(s, "INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, ?3)", ["k", "v", 1])
    assert msg =~ "UNIQUE"
    assert {:error, {:bad_input, _}} = DB.query(s, "SELEC nonsense", [])
    assert {:error, {:bad_input, _}} =
             DB.transaction(s, [
               {"INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, ?3)", ["k2", 1, 1]},
               {"INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, ?3)", ["k", 1, 1]}
             ])

    TestStore.stop(s)
    s = TestStore.start!(data_dir: dir, name: s)
    assert {:ok, %{columns: ["key", "value"], rows: [["k", "v"]]}} = DB.query(s, "SELECT key, value FROM admin_kv", [])
    backup = Path.join(dir, "backup.sqlite3")
    assert :ok = DB.backup(s, backup)
    assert File.exists?(backup)
  end
end
