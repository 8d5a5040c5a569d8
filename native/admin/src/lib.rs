//! TimelessMetrics admin database.
//!
//! An SQLite database (`<data_dir>/admin.sqlite3`, or in-memory) holding the
//! store's small relational state: metric metadata, annotations, alert rules
//! and alert state, scrape targets, rollups and a generic key-value table.
//! The schema is created and upgraded by the versioned migrations in
//! [`MIGRATIONS`]; see `SCHEMA.md` next to this crate's `Cargo.toml`.
//!
//! [`AdminDb`] is `Send` but not `Sync`: callers put it behind a `Mutex`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Batch, Connection, ErrorCode, OpenFlags, ToSql, Transaction, TransactionBehavior};

mod migrations;
#[cfg(test)]
mod tests;

pub use migrations::{Migration, LATEST_SCHEMA_VERSION, MIGRATIONS};
pub use rusqlite;

/// How long a statement waits for a lock held by another connection before
/// failing with an `Io` error ("database is locked").
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A value bound to, or read from, an SQL statement.
///
/// `Real(f64::NAN)` is stored by SQLite as NULL. Text read back from the
/// database that is not valid UTF-8 is converted lossily.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(v as i64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

/// What went wrong, coarsely, so callers can map it to an API response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminErrorKind {
    /// The caller's SQL or parameters are wrong: syntax error, unknown table
    /// or column, wrong parameter count, several statements where one is
    /// expected, a row-returning statement passed to `execute`.
    BadInput,
    /// A UNIQUE, NOT NULL, CHECK, FOREIGN KEY or datatype constraint failed.
    Constraint,
    /// The file is not an SQLite database, or the database is damaged.
    Corrupt,
    /// Everything else: file system errors, locks held too long, disk full.
    Io,
    /// The database schema is newer than this build, or its migration
    /// history does not match this build's migrations.
    Version,
}

impl fmt::Display for AdminErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminErrorKind::BadInput => "bad input",
            AdminErrorKind::Constraint => "constraint violation",
            AdminErrorKind::Corrupt => "corrupt database",
            AdminErrorKind::Io => "i/o error",
            AdminErrorKind::Version => "schema version error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub kind: AdminErrorKind,
    pub message: String,
}

impl AdminError {
    pub fn new(kind: AdminErrorKind, message: impl Into<String>) -> Self {
        AdminError {
            kind,
            message: message.into(),
        }
    }

    fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "admin db {}: {}", self.kind, self.message)
    }
}

impl std::error::Error for AdminError {}

impl From<rusqlite::Error> for AdminError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match e {
            E::SqliteFailure(code, msg) => {
                let message = match msg {
                    Some(m) => format!("{m} ({code})"),
                    None => code.to_string(),
                };
                AdminError::new(kind_of(code.code), message)
            }
            // Errors found while preparing (syntax, unknown table/column).
            E::SqlInputError {
                error,
                msg,
                sql,
                offset,
            } => AdminError::new(
                kind_of(error.code),
                format!("{msg} (at offset {offset} of SQL: {sql})"),
            ),
            E::InvalidParameterCount(given, expected) => AdminError::new(
                AdminErrorKind::BadInput,
                format!("wrong number of parameters: statement takes {expected}, got {given}"),
            ),
            E::MultipleStatement => AdminError::new(
                AdminErrorKind::BadInput,
                "only one SQL statement is allowed here; use transaction() for several",
            ),
            E::ExecuteReturnedResults => AdminError::new(
                AdminErrorKind::BadInput,
                "statement returns rows; use query() instead of execute()",
            ),
            e @ (E::InvalidParameterName(_)
            | E::NulError(_)
            | E::Utf8Error(_)
            | E::InvalidQuery
            | E::InvalidColumnIndex(_)
            | E::InvalidColumnName(_)) => AdminError::new(AdminErrorKind::BadInput, e.to_string()),
            other => AdminError::new(AdminErrorKind::Io, other.to_string()),
        }
    }
}

/// Maps an SQLite primary result code to an error kind.
fn kind_of(code: ErrorCode) -> AdminErrorKind {
    match code {
        ErrorCode::ConstraintViolation => AdminErrorKind::Constraint,
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => AdminErrorKind::Corrupt,
        // SQLITE_ERROR: syntax errors, unknown tables/columns,
        // "cannot start a transaction within a transaction", ...
        ErrorCode::Unknown
        | ErrorCode::ParameterOutOfRange
        | ErrorCode::TypeMismatch
        | ErrorCode::TooBig => AdminErrorKind::BadInput,
        _ => AdminErrorKind::Io,
    }
}

impl From<std::io::Error> for AdminError {
    fn from(e: std::io::Error) -> Self {
        AdminError::new(AdminErrorKind::Io, e.to_string())
    }
}

type Result<T> = std::result::Result<T, AdminError>;

/// The admin database of one store. `Send`; put it behind a `Mutex` to share.
pub struct AdminDb {
    conn: Connection,
    path: Option<PathBuf>,
}

impl fmt::Debug for AdminDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Prepares exactly one statement from `sql`: empty SQL and trailing
/// statements are refused (BadInput).
fn prepare_single<'c>(conn: &'c Connection, sql: &str) -> Result<rusqlite::Statement<'c>> {
    let mut batch = Batch::new(conn, sql);
    let stmt = batch.next()?.ok_or_else(|| {
        AdminError::new(
            AdminErrorKind::BadInput,
            "no SQL statement given (empty or only comments)",
        )
    })?;
    match batch.next() {
        Ok(None) => Ok(stmt),
        // Any further statement (even one that would not prepare on its own,
        // e.g. because it uses a table the first one creates) is refused.
        Ok(Some(_)) | Err(_) => Err(rusqlite::Error::MultipleStatement.into()),
    }
}

fn check_param_count(stmt: &rusqlite::Statement<'_>, params: &[Value]) -> Result<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(AdminError::new(
            AdminErrorKind::BadInput,
            format!(
                "wrong number of parameters: statement takes {expected}, got {}",
                params.len()
            ),
        ));
    }
    Ok(())
}

fn execute_on(conn: &Connection, sql: &str, params: &[Value]) -> Result<usize> {
    let mut stmt = prepare_single(conn, sql)?;
    check_param_count(&stmt, params)?;
    Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))?)
}

/// Checks the recorded migration history against `known`: every recorded
/// version must be known with the same name, and the recorded versions must
/// be exactly the first N known migrations. Returns the number applied.
fn check_history(conn: &Connection, known: &[Migration]) -> Result<usize> {
    let mut stmt = conn.prepare("SELECT version, name FROM schema_migrations ORDER BY version")?;
    let applied = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let latest_known = known.last().map_or(0, |m| m.version);
    if let Some((newest, _)) = applied.last() {
        if *newest > latest_known {
            return Err(AdminError::new(
                AdminErrorKind::Version,
                format!(
                    "database schema version {newest} is newer than this build supports \
                     (latest known version {latest_known}); upgrade TimelessMetrics to open it"
                ),
            ));
        }
    }
    for (i, (version, name)) in applied.iter().enumerate() {
        match known.get(i) {
            Some(m) if m.version == *version && m.name == name => {}
            Some(m) => {
                return Err(AdminError::new(
                    AdminErrorKind::Version,
                    format!(
                        "migration history does not match this build: database has \
                         migration {version} '{name}' where this build expects {} '{}'",
                        m.version, m.name
                    ),
                ))
            }
            None => {
                return Err(AdminError::new(
                    AdminErrorKind::Version,
                    format!("database has migration {version} '{name}' unknown to this build"),
                ))
            }
        }
    }
    Ok(applied.len())
}

fn migrate(conn: &Connection, known: &[Migration]) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         ) STRICT;",
    )
    .map_err(|e| AdminError::from(e).context("creating schema_migrations"))?;

    let applied = check_history(conn, known)?;
    for (idx, m) in known.iter().enumerate().skip(applied) {
        // IMMEDIATE takes the write lock up front, so two processes opening
        // the same file cannot both apply the same migration.
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        // Re-check under the lock: another process may have migrated meanwhile.
        if check_history(&tx, known)? > idx {
            continue;
        }
        let ctx = || format!("applying migration {} '{}'", m.version, m.name);
        tx.execute_batch(m.sql)
            .map_err(|e| AdminError::from(e).context(ctx()))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, now_ms()],
        )
        .map_err(|e| AdminError::from(e).context(ctx()))?;
        tx.commit()
            .map_err(|e| AdminError::from(e).context(ctx()))?;
    }
    Ok(())
}

impl AdminDb {
    /// Opens (creating if missing, with its parent directory) the admin
    /// database at `path`, or an in-memory database for `None`, and applies
    /// any pending migrations.
    pub fn open(path: Option<&Path>) -> Result<AdminDb> {
        Self::open_with_migrations(path, MIGRATIONS)
    }

    /// `open` with an explicit migration list (tests use prefixes of
    /// `MIGRATIONS` to build databases of older versions).
    fn open_with_migrations(path: Option<&Path>, known: &[Migration]) -> Result<AdminDb> {
        let what = match path {
            Some(p) => format!("opening admin database {}", p.display()),
            None => "opening in-memory admin database".to_owned(),
        };
        Self::open_inner(path, known).map_err(|e| e.context(what))
    }

    fn open_inner(path: Option<&Path>, known: &[Migration]) -> Result<AdminDb> {
        let conn = match path {
            None => Connection::open_in_memory()?,
            Some(p) => {
                if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(parent)?;
                }
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                Connection::open_with_flags(p, flags)?
            }
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if path.is_some() {
            // The first statement that reads the file: a non-database file
            // fails here with SQLITE_NOTADB (-> Corrupt).
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(AdminError::new(
                    AdminErrorKind::Io,
                    format!("could not switch to WAL journal mode (mode is '{mode}')"),
                ));
            }
            // WAL + NORMAL: durable across application crashes; a power loss
            // may lose the last transactions but never corrupts the file.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                return Err(AdminError::new(
                    AdminErrorKind::Corrupt,
                    format!("integrity check failed: {check}"),
                ));
            }
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&conn, known)?;
        Ok(AdminDb {
            conn,
            path: path.map(Path::to_path_buf),
        })
    }

    /// The highest applied migration version (0 for none).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?)
    }

    /// Applied migrations as (version, name), oldest first.
    pub fn migrations(&self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT version, name FROM schema_migrations ORDER BY version")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Runs one statement with positional parameters (`?1`, `?2`, ...);
    /// returns the number of rows changed. Row-returning statements
    /// (SELECT, `RETURNING`) belong in [`AdminDb::query`].
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<usize> {
        execute_on(&self.conn, sql, params)
    }

    /// Runs one query; returns the column names and all rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        let mut stmt = prepare_single(&self.conn, sql)?;
        check_param_count(&stmt, params)?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(Value::from(row.get_ref(i)?));
            }
            out.push(values);
        }
        Ok((columns, out))
    }

    /// Runs the statements in one transaction: either all take effect or,
    /// if any fails, none does. Returns the rows changed per statement.
    pub fn transaction(&self, statements: &[(String, Vec<Value>)]) -> Result<Vec<usize>> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let mut changed = Vec::with_capacity(statements.len());
        for (i, (sql, params)) in statements.iter().enumerate() {
            // On error `tx` is dropped, which rolls back.
            let n = execute_on(&tx, sql, params).map_err(|e| {
                e.context(format!(
                    "statement {} of {} (rolled back)",
                    i + 1,
                    statements.len()
                ))
            })?;
            changed.push(n);
        }
        tx.commit()?;
        Ok(changed)
    }

    /// The rowid of the most recent successful INSERT on this connection.
    pub fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    /// Copies the whole database, consistently, to `dest` with SQLite's
    /// online backup API. `dest` is created (with its parent directory) if
    /// missing; an existing SQLite database there is overwritten. The copy is
    /// made in a single backup step, so `dest` is either the old or the
    /// complete new content, never a mix.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        self.backup_inner(dest)
            .map_err(|e| e.context(format!("backing up admin database to {}", dest.display())))
    }

    fn backup_inner(&self, dest: &Path) -> Result<()> {
        if let Some(src) = &self.path {
            if let (Ok(a), Ok(b)) = (src.canonicalize(), dest.canonicalize()) {
                if a == b {
                    return Err(AdminError::new(
                        AdminErrorKind::BadInput,
                        "destination is the database itself",
                    ));
                }
            }
        }
        if let Some(parent) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let mut dst = Connection::open(dest)?;
        dst.busy_timeout(BUSY_TIMEOUT)?;
        let backup = rusqlite::backup::Backup::new(&self.conn, &mut dst)?;
        // Busy/Locked: another connection holds a lock on `dest`; retry a
        // bounded number of times.
        let mut waited = Duration::ZERO;
        loop {
            use rusqlite::backup::StepResult;
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked => {
                    if waited >= BUSY_TIMEOUT {
                        return Err(AdminError::new(
                            AdminErrorKind::Io,
                            "destination database stayed locked",
                        ));
                    }
                    let pause = Duration::from_millis(50);
                    std::thread::sleep(pause);
                    waited += pause;
                }
                // `More` cannot happen with -1 (all pages at once); step again.
                _ => continue,
            }
        }
        drop(backup);
        dst.close().map_err(|(_, e)| AdminError::from(e))?;
        Ok(())
    }

    /// Names of the tables in the database (SQLite's internal `sqlite_*`
    /// tables excluded), sorted.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT name FROM sqlite_schema
             WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY name",
        )?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }
}
