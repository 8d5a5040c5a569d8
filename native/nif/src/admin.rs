//! Lifecycle and admin NIFs: open/close, flush, merge, maintenance, info,
//! delete, and the admin SQLite database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustler::{Atom, Binary, Encoder, Env, NifResult, ResourceArc, Term};
use timeless_admin::{AdminDb, AdminError, AdminErrorKind, Value};
use timeless_engine::series::LabelLimits;
use timeless_engine::store::{FlushStats, Store, StoreConfig};
use timeless_engine::wal::FsyncPolicy;
use timeless_engine::{Error, ErrorKind};

use crate::convert::{bad_input, decode_matchers, engine_err, text, tuple_elems};
use crate::{atoms, AdminRes, StoreRes};

fn opt<'a, T: rustler::Decoder<'a>>(map: Term<'a>, key: &str, default: T) -> NifResult<T> {
    let env = map.get_env();
    let k = rustler::Atom::from_str(env, key)?;
    match map.map_get(k) {
        Ok(v) if v.decode::<Atom>().ok() == Some(atoms::nil()) => Ok(default),
        Ok(v) => v.decode().map_err(|_| bad_input(format!("option {key} has the wrong type"))),
        Err(_) => Ok(default),
    }
}

fn decode_config(map: Term) -> NifResult<StoreConfig> {
    let d = StoreConfig::default();
    let data_dir: Option<String> = match map.map_get(rustler::Atom::from_str(map.get_env(), "data_dir")?) {
        Ok(v) if v.is_binary() => Some(text(v).ok_or_else(|| bad_input("data_dir must be a UTF-8 path"))?),
        _ => None,
    };
    let fsync: Atom = opt(map, "fsync", atoms::interval())?;
    let interval_ms: u64 = opt(map, "fsync_interval_ms", 1000)?;
    let fsync = if fsync == atoms::always() {
        FsyncPolicy::Always
    } else if fsync == atoms::never() {
        FsyncPolicy::Never
    } else {
        FsyncPolicy::Interval(Duration::from_millis(interval_ms.max(1)))
    };
    let limits = LabelLimits::default();
    Ok(StoreConfig {
        data_dir: data_dir.map(PathBuf::from),
        fsync,
        label_limits: LabelLimits {
            max_labels: opt(map, "max_labels", limits.max_labels)?,
            max_label_len: opt(map, "max_label_length", limits.max_label_len)?,
        },
        max_points_per_series: opt(map, "max_points_per_series", d.max_points_per_series)?,
        max_chunk_points: opt(map, "max_chunk_points", d.max_chunk_points)?,
        flush_age_ms: opt(map, "flush_age_ms", d.flush_age_ms)?,
        max_buffered_points: opt(map, "max_buffered_points", d.max_buffered_points)?,
        max_chunk_files: opt(map, "max_chunk_files", d.max_chunk_files)?,
        shards: opt(map, "shards", d.shards)?,
    })
}

/// `store_open(config_map) -> {store, warnings}`
#[rustler::nif(schedule = "DirtyIo")]
fn store_open<'a>(env: Env<'a>, config: Term<'a>) -> NifResult<Term<'a>> {
    let cfg = decode_config(config)?;
    let (store, warnings) = Store::open(cfg).map_err(engine_err)?;
    let handle = ResourceArc::new(StoreRes { store: Arc::new(store) });
    Ok((handle, warnings).encode(env))
}

/// Flushes and releases the data directory; later calls answer `{:error, {:unavailable, _}}`.
#[rustler::nif(schedule = "DirtyIo")]
fn store_close(res: ResourceArc<StoreRes>) -> NifResult<Atom> {
    res.store.close().map_err(engine_err)?;
    Ok(atoms::ok())
}

fn atom_map<'a>(env: Env<'a>, keys: &[&str], values: &[Term<'a>]) -> NifResult<Term<'a>> {
    let keys: Vec<Term> = keys.iter().map(|k| Atom::from_str(env, k).map(|a| a.encode(env))).collect::<NifResult<_>>()?;
    Term::map_from_term_arrays(env, &keys, values)
}

fn stats_term<'a>(env: Env<'a>, s: &FlushStats) -> NifResult<Term<'a>> {
    let values = [s.series.encode(env), s.points.encode(env), s.files.encode(env), s.bytes.encode(env)];
    atom_map(env, &["series", "points", "files", "bytes"], &values)
}

#[rustler::nif(schedule = "DirtyIo")]
fn store_flush<'a>(env: Env<'a>, res: ResourceArc<StoreRes>) -> NifResult<Term<'a>> {
    let stats = res.store.flush().map_err(engine_err)?;
    stats_term(env, &stats)
}

#[rustler::nif(schedule = "DirtyIo")]
fn store_merge<'a>(env: Env<'a>, res: ResourceArc<StoreRes>) -> NifResult<Term<'a>> {
    let stats = res.store.merge().map_err(engine_err)?;
    stats_term(env, &stats)
}

/// `store_maintain(store, now_ms) -> {flushed_stats | nil, warnings}`
#[rustler::nif(schedule = "DirtyIo")]
fn store_maintain<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, now: i64) -> NifResult<Term<'a>> {
    let stats = res.store.maintain(now).map_err(engine_err)?;
    let warnings = res.store.take_warnings();
    let stats = match stats {
        Some(s) => stats_term(env, &s)?,
        None => atoms::nil().encode(env),
    };
    Ok((stats, warnings).encode(env))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_info<'a>(env: Env<'a>, res: ResourceArc<StoreRes>) -> NifResult<Term<'a>> {
    let i = res.store.info();
    let opt_ts = |t: Option<i64>| t.map_or(atoms::nil().encode(env), |t| t.encode(env));
    let keys = [
        "series",
        "points_stored",
        "points_buffered",
        "chunk_files",
        "chunks",
        "bytes_chunks",
        "bytes_wal",
        "bytes_series_log",
        "oldest_ms",
        "newest_ms",
    ];
    let values = [
        i.series.encode(env),
        i.points_stored.encode(env),
        i.points_buffered.encode(env),
        i.chunk_files.encode(env),
        i.chunks.encode(env),
        i.bytes_chunks.encode(env),
        i.bytes_wal.encode(env),
        i.bytes_series_log.encode(env),
        opt_ts(i.oldest_ts),
        opt_ts(i.newest_ts),
    ];
    atom_map(env, &keys, &values)
}

/// `delete_series(store, matchers) -> count`
#[rustler::nif(schedule = "DirtyIo")]
fn delete_series(res: ResourceArc<StoreRes>, matchers: Term) -> NifResult<usize> {
    let matchers = decode_matchers(matchers)?;
    res.store.delete(&matchers).map_err(engine_err)
}

// ------------------------------------------------------------------ admin db

fn admin_err(e: AdminError) -> rustler::Error {
    let kind = match e.kind {
        AdminErrorKind::BadInput => ErrorKind::BadInput,
        AdminErrorKind::Constraint => ErrorKind::BadInput,
        AdminErrorKind::Corrupt => ErrorKind::Corrupt,
        AdminErrorKind::Io => ErrorKind::Io,
        AdminErrorKind::Version => ErrorKind::Corrupt,
    };
    let prefix = if e.kind == AdminErrorKind::Constraint { "constraint: " } else { "" };
    engine_err(Error::new(kind, format!("{prefix}{}", e.message)))
}

fn with_db<T>(res: &AdminRes, f: impl FnOnce(&AdminDb) -> Result<T, AdminError>) -> NifResult<T> {
    let guard = res.db.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(db) => f(db).map_err(admin_err),
        None => Err(engine_err(Error::new(ErrorKind::Unavailable, "the admin database is closed"))),
    }
}

fn decode_params(term: Term) -> NifResult<Vec<Value>> {
    let iter = term.into_list_iterator().map_err(|_| bad_input("params must be a list"))?;
    iter.enumerate()
        .map(|(i, p)| {
            if p.decode::<Atom>().ok() == Some(atoms::nil()) {
                Ok(Value::Null)
            } else if let Ok(v) = p.decode::<i64>() {
                Ok(Value::Integer(v))
            } else if let Ok(v) = p.decode::<f64>() {
                Ok(Value::Real(v))
            } else if let Ok(b) = p.decode::<Binary>() {
                Ok(match std::str::from_utf8(b.as_slice()) {
                    Ok(s) => Value::Text(s.to_string()),
                    Err(_) => Value::Blob(b.as_slice().to_vec()),
                })
            } else if let Some(parts) = tuple_elems(p).filter(|t| t.len() == 2) {
                match (parts[0].decode::<Atom>(), parts[1].decode::<Binary>()) {
                    (Ok(a), Ok(b)) if a == atoms::blob() => Ok(Value::Blob(b.as_slice().to_vec())),
                    _ => Err(bad_input(format!("param {}: unsupported tuple", i + 1))),
                }
            } else if let Ok(a) = p.decode::<Atom>() {
                Ok(Value::Text(a.to_term(p.get_env()).atom_to_string()?))
            } else {
                Err(bad_input(format!("param {}: unsupported type", i + 1)))
            }
        })
        .collect()
}

fn value_term<'a>(env: Env<'a>, v: &Value) -> Term<'a> {
    match v {
        Value::Null => atoms::nil().encode(env),
        Value::Integer(i) => i.encode(env),
        Value::Real(f) => f.encode(env),
        Value::Text(s) => s.encode(env),
        Value::Blob(b) => {
            let mut bin = rustler::NewBinary::new(env, b.len());
            bin.as_mut_slice().copy_from_slice(b);
            let bin: Binary = bin.into();
            bin.encode(env)
        }
    }
}

/// `admin_open(path | nil) -> db`
#[rustler::nif(schedule = "DirtyIo")]
fn admin_open(path: Option<String>) -> NifResult<ResourceArc<AdminRes>> {
    let db = AdminDb::open(path.as_deref().map(std::path::Path::new)).map_err(admin_err)?;
    Ok(ResourceArc::new(AdminRes { db: std::sync::Mutex::new(Some(db)) }))
}

#[rustler::nif(schedule = "DirtyIo")]
fn admin_close(res: ResourceArc<AdminRes>) -> Atom {
    res.db.lock().unwrap_or_else(|p| p.into_inner()).take();
    atoms::ok()
}

/// `admin_execute(db, sql, params) -> {changed_rows, last_insert_rowid}`
#[rustler::nif(schedule = "DirtyIo")]
fn admin_execute(res: ResourceArc<AdminRes>, sql: String, params: Term) -> NifResult<(usize, i64)> {
    let params = decode_params(params)?;
    with_db(&res, |db| {
        let n = db.execute(&sql, &params)?;
        Ok((n, db.last_insert_rowid()))
    })
}

/// `admin_query(db, sql, params) -> {columns, rows}`
#[rustler::nif(schedule = "DirtyIo")]
fn admin_query<'a>(env: Env<'a>, res: ResourceArc<AdminRes>, sql: String, params: Term<'a>) -> NifResult<Term<'a>> {
    let params = decode_params(params)?;
    let (cols, rows) = with_db(&res, |db| db.query(&sql, &params))?;
    let rows: Vec<Term<'a>> =
        rows.iter().map(|r| r.iter().map(|v| value_term(env, v)).collect::<Vec<_>>().encode(env)).collect();
    Ok((cols, rows).encode(env))
}

/// `admin_transaction(db, [{sql, params}]) -> [changed_rows]`
#[rustler::nif(schedule = "DirtyIo")]
fn admin_transaction(res: ResourceArc<AdminRes>, statements: Term) -> NifResult<Vec<usize>> {
    let iter = statements.into_list_iterator().map_err(|_| bad_input("statements must be a list"))?;
    let mut stmts = Vec::new();
    for s in iter {
        let parts = tuple_elems(s).filter(|p| p.len() == 2).ok_or_else(|| bad_input("statement must be {sql, params}"))?;
        let sql = text(parts[0]).ok_or_else(|| bad_input("sql must be a string"))?;
        stmts.push((sql, decode_params(parts[1])?));
    }
    with_db(&res, |db| db.transaction(&stmts))
}

/// `admin_migrations(db) -> [{version, name}]`
#[rustler::nif(schedule = "DirtyIo")]
fn admin_migrations(res: ResourceArc<AdminRes>) -> NifResult<Vec<(i64, String)>> {
    with_db(&res, |db| db.migrations())
}

#[rustler::nif(schedule = "DirtyIo")]
fn admin_tables(res: ResourceArc<AdminRes>) -> NifResult<Vec<String>> {
    with_db(&res, |db| db.table_names())
}

#[rustler::nif(schedule = "DirtyIo")]
fn admin_backup(res: ResourceArc<AdminRes>, dest: String) -> NifResult<Atom> {
    with_db(&res, |db| db.backup_to(std::path::Path::new(&dest)))?;
    Ok(atoms::ok())
}
