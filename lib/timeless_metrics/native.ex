defmodule TimelessMetrics.Native do
  @moduledoc """
  NIF stubs of the Rust engine (`native/nif`). Nothing but stubs lives here; call
  `TimelessMetrics` (or `TimelessMetrics.Engine` / `TimelessMetrics.DB`), which turn
  results into `{:ok, _} | {:error, reason}`.

  Every function answers its value, `:ok`, or `{:error, {kind, message}}` with `kind`
  one of `:bad_input, :too_large, :limit_exceeded, :overloaded, :unavailable, :locked,
  :not_found, :corrupt, :io, :internal`.

      iex> {store, _warnings} = TimelessMetrics.Native.store_open(%{data_dir: nil})
      iex> TimelessMetrics.Native.write_small(store, [{"cpu", %{"host" => "a"}, 1.5, 1}], 1000)
      :ok
  """
  @on_load :load_nif
  @compile {:autoload, false}

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:timeless_metrics), ~c"native/timeless_nif")
    :erlang.load_nif(path, 0)
  end

  defp nif, do: :erlang.nif_error(:nif_not_loaded)

  # -- write path ------------------------------------------------------------
  def resolve(_store, _metric, _labels), do: nif()
  def lookup(_store, _metric, _labels), do: nif()
  def write_small(_store, _entries, _unit_ms), do: nif()
  def write_batch(_store, _entries, _unit_ms), do: nif()
  def write_resolved(_store, _entries, _unit_ms), do: nif()
  def write_columns(_store, _ids, _timestamps, _values, _unit_ms), do: nif()

  # -- ingest path -------------------------------------------------------------
  def decompress(_encoding, _body, _max_bytes), do: nif()
  def ingest(_store, _format, _body, _opts), do: nif()
  def ingest_many(_store, _items), do: nif()
  def ingest_many_small(_store, _items), do: nif()
  def spool_open(_dir, _config), do: nif()
  def spool_append(_spool, _format, _opts, _body), do: nif()
  def spool_append_dirty(_spool, _format, _opts, _body), do: nif()
  def spool_done(_spool, _seqs), do: nif()
  def spool_read(_spool, _seq), do: nif()
  def spool_close(_spool), do: nif()
  def spool_info(_spool), do: nif()

  # -- read path -------------------------------------------------------------
  def select(_store, _matchers, _from, _to), do: nif()
  def read_series(_store, _id, _from, _to, _unit_ms), do: nif()
  def read_many(_store, _matchers, _from, _to, _unit_ms), do: nif()
  def aggregate(_store, _matchers, _from, _to, _step, _aggregate, _unit_ms), do: nif()
  def latest(_store, _matchers, _unit_ms), do: nif()
  def series(_store, _matchers, _from, _to), do: nif()
  def series_json(_store, _selectors, _from, _to, _limit), do: nif()
  def series_json_dirty(_store, _selectors, _from, _to, _limit), do: nif()
  def metric_names(_store, _matchers, _from, _to), do: nif()
  def label_names(_store, _matchers, _from, _to), do: nif()
  def label_values(_store, _name, _matchers, _from, _to), do: nif()

  # -- PromQL ------------------------------------------------------------------
  def promql_eval(_store, _ast, _start_ms, _end_ms, _step_ms, _opts), do: nif()
  def promql_eval_json(_store, _ast, _start_ms, _end_ms, _step_ms, _opts), do: nif()

  # -- admin -----------------------------------------------------------------
  def store_open(_config), do: nif()
  def store_close(_store), do: nif()
  def store_flush(_store), do: nif()
  def store_merge(_store), do: nif()
  def store_maintain(_store, _now_ms), do: nif()
  def store_info(_store), do: nif()
  def delete_series(_store, _matchers), do: nif()

  # -- admin database (SQLite) -------------------------------------------------
  def admin_open(_path), do: nif()
  def admin_close(_db), do: nif()
  def admin_execute(_db, _sql, _params), do: nif()
  def admin_query(_db, _sql, _params), do: nif()
  def admin_transaction(_db, _statements), do: nif()
  def admin_migrations(_db), do: nif()
  def admin_tables(_db), do: nif()
  def admin_backup(_db, _dest), do: nif()
end
