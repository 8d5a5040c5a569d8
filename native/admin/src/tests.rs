use super::*;
use tempfile::TempDir;

const ALL_TABLES: &[&str] = &[
    "admin_kv",
    "alert_rules",
    "alert_state",
    "annotations",
    "metric_metadata",
    "rollups",
    "schema_migrations",
    "scrape_targets",
];

fn t(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn i(v: i64) -> Value {
    Value::Integer(v)
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("data").join("admin.sqlite3")
}

fn known_migrations() -> Vec<(i64, String)> {
    MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect()
}

fn scalar(db: &AdminDb, sql: &str, params: &[Value]) -> Value {
    let (_, rows) = db.query(sql, params).unwrap();
    assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
    rows[0][0].clone()
}

fn expect_err(r: Result<impl fmt::Debug>, kind: AdminErrorKind, needle: &str) -> AdminError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind, kind, "wrong kind for error: {e}");
    assert!(
        e.message.to_lowercase().contains(&needle.to_lowercase()),
        "message {:?} does not contain {needle:?}",
        e.message
    );
    e
}

fn insert_rule(db: &AdminDb, name: &str) -> i64 {
    db.execute(
        "INSERT INTO alert_rules (name, expr, for_ms, labels, annotations, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        &[
            t(name),
            t("up == 0"),
            i(60_000),
            t(r#"{"severity":"page"}"#),
            t(r#"{"summary":"down"}"#),
            i(1_700_000_000_000),
        ],
    )
    .unwrap();
    db.last_insert_rowid()
}

#[test]
fn migration_list_is_well_formed() {
    assert!(!MIGRATIONS.is_empty());
    for (idx, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version, idx as i64 + 1, "versions must be 1, 2, 3, ...");
        assert!(!m.name.is_empty() && !m.sql.trim().is_empty());
    }
    let mut names: Vec<_> = MIGRATIONS.iter().map(|m| m.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        MIGRATIONS.len(),
        "migration names must be unique"
    );
    assert_eq!(LATEST_SCHEMA_VERSION, MIGRATIONS.len() as i64);
}

#[test]
fn admin_db_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<AdminDb>();
    assert_send::<std::sync::Mutex<AdminDb>>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<std::sync::Mutex<AdminDb>>();
}

#[test]
fn fresh_open_creates_all_tables_at_latest_version() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    assert!(!path.parent().unwrap().exists());
    let db = AdminDb::open(Some(&path)).unwrap();
    assert!(
        path.is_file(),
        "database file and parent directory are created"
    );

    assert_eq!(db.table_names().unwrap(), ALL_TABLES);
    assert_eq!(db.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
    assert_eq!(db.migrations().unwrap(), known_migrations());

    assert_eq!(scalar(&db, "PRAGMA journal_mode", &[]), t("wal"));
    assert_eq!(scalar(&db, "PRAGMA foreign_keys", &[]), i(1));
    assert_eq!(
        scalar(&db, "PRAGMA busy_timeout", &[]),
        i(BUSY_TIMEOUT.as_millis() as i64)
    );
    let applied_at = scalar(&db, "SELECT MIN(applied_at) FROM schema_migrations", &[]);
    match applied_at {
        Value::Integer(ms) => assert!(ms > 1_600_000_000_000, "applied_at is unix ms: {ms}"),
        other => panic!("applied_at not an integer: {other:?}"),
    }

    let (_, idx) = db
        .query("SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name", &[])
        .unwrap();
    let idx: Vec<Value> = idx.into_iter().map(|mut r| r.remove(0)).collect();
    assert_eq!(
        idx,
        vec![
            t("alert_rules_name_idx"),
            t("alert_state_state_idx"),
            t("annotations_end_idx"),
            t("annotations_start_idx")
        ]
    );
}

#[test]
fn reopen_is_idempotent() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    {
        let db = AdminDb::open(Some(&path)).unwrap();
        db.execute(
            "INSERT INTO admin_kv (key, value, updated_at) VALUES ('settings.x', 1, 5)",
            &[],
        )
        .unwrap();
        // Mark the recorded rows: a re-run would fail or rewrite them.
        db.execute("UPDATE schema_migrations SET applied_at = 42", &[])
            .unwrap();
    }
    for _ in 0..2 {
        let db = AdminDb::open(Some(&path)).unwrap();
        assert_eq!(db.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
        assert_eq!(db.migrations().unwrap(), known_migrations());
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM schema_migrations WHERE applied_at = 42",
                &[]
            ),
            i(MIGRATIONS.len() as i64)
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT value FROM admin_kv WHERE key = 'settings.x'",
                &[]
            ),
            i(1)
        );
    }
}

#[test]
fn two_handles_on_one_file() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let a = AdminDb::open(Some(&path)).unwrap();
    let b = AdminDb::open(Some(&path)).unwrap();
    assert_eq!(b.migrations().unwrap(), known_migrations());
    a.execute(
        "INSERT INTO admin_kv (key, value, updated_at) VALUES ('k', 'from a', 1)",
        &[],
    )
    .unwrap();
    assert_eq!(
        scalar(&b, "SELECT value FROM admin_kv WHERE key = 'k'", &[]),
        t("from a")
    );
}

#[test]
fn upgrade_from_first_migration_only() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    {
        let old = AdminDb::open_with_migrations(Some(&path), &MIGRATIONS[..1]).unwrap();
        assert_eq!(old.schema_version().unwrap(), 1);
        assert_eq!(
            old.table_names().unwrap(),
            ["admin_kv", "metric_metadata", "schema_migrations"]
        );
        old.execute(
            "INSERT INTO metric_metadata (metric_name, type, help, unit, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[t("http_requests_total"), t("counter"), t("Requests."), t(""), i(1000)],
        )
        .unwrap();
    }
    let db = AdminDb::open(Some(&path)).unwrap();
    assert_eq!(db.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
    assert_eq!(db.migrations().unwrap(), known_migrations());
    assert_eq!(db.table_names().unwrap(), ALL_TABLES);
    assert_eq!(
        scalar(
            &db,
            "SELECT type FROM metric_metadata WHERE metric_name = ?1",
            &[t("http_requests_total")]
        ),
        t("counter")
    );
    // The later tables are usable.
    let id = insert_rule(&db, "InstanceDown");
    assert_eq!(
        scalar(&db, "SELECT name FROM alert_rules WHERE id = ?1", &[i(id)]),
        t("InstanceDown")
    );
}

#[test]
fn newer_database_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    drop(AdminDb::open(Some(&path)).unwrap());

    // A build that knows only the first two migrations must refuse it.
    let e = expect_err(
        AdminDb::open_with_migrations(Some(&path), &MIGRATIONS[..2]),
        AdminErrorKind::Version,
        "newer than this build supports",
    );
    assert!(
        e.message
            .contains(&format!("version {LATEST_SCHEMA_VERSION}")),
        "{e}"
    );

    // A migration from the future recorded by a later build.
    {
        let db = AdminDb::open(Some(&path)).unwrap();
        db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, 'from_the_future', 0)",
            &[i(LATEST_SCHEMA_VERSION + 1)],
        )
        .unwrap();
    }
    let e = expect_err(AdminDb::open(Some(&path)), AdminErrorKind::Version, "newer");
    assert!(e.to_string().contains("schema version error"), "{e}");
}

#[test]
fn mismatched_history_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    {
        let db = AdminDb::open(Some(&path)).unwrap();
        db.execute(
            "UPDATE schema_migrations SET name = 'something_else' WHERE version = 2",
            &[],
        )
        .unwrap();
    }
    expect_err(
        AdminDb::open(Some(&path)),
        AdminErrorKind::Version,
        "does not match",
    );
}

#[test]
fn every_value_type_round_trips() {
    let db = AdminDb::open(None).unwrap();
    db.execute(
        "CREATE TEMP TABLE rt (id INTEGER PRIMARY KEY, v ANY) STRICT",
        &[],
    )
    .unwrap();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let values = vec![
        Value::Null,
        i(0),
        i(i64::MIN),
        i(i64::MAX),
        Value::Real(1.5e300),
        Value::Real(-0.25),
        t(""),
        t("héllo ✓ \u{0} nul inside"),
        Value::Blob(Vec::new()),
        Value::Blob(all_bytes),
    ];
    for (n, v) in values.iter().enumerate() {
        let changed = db
            .execute(
                "INSERT INTO rt (id, v) VALUES (?1, ?2)",
                &[i(n as i64), v.clone()],
            )
            .unwrap();
        assert_eq!(changed, 1);
        assert_eq!(db.last_insert_rowid(), n as i64);
    }
    let (cols, rows) = db
        .query("SELECT id, v, typeof(v) AS ty FROM rt ORDER BY id", &[])
        .unwrap();
    assert_eq!(cols, ["id", "v", "ty"]);
    assert_eq!(rows.len(), values.len());
    let types = [
        "null", "integer", "integer", "integer", "real", "real", "text", "text", "blob", "blob",
    ];
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row[0], i(n as i64));
        assert_eq!(row[1], values[n], "value {n}");
        assert_eq!(row[2], t(types[n]), "storage type of value {n}");
    }

    // All five kinds as parameters of one query, selected back directly.
    let params = vec![
        Value::Null,
        i(7),
        Value::Real(2.5),
        t("x"),
        Value::Blob(vec![0, 1, 2]),
    ];
    let (cols, rows) = db
        .query(
            "SELECT ?1 AS a, ?2 AS b, ?3 AS c, ?4 AS d, ?5 AS e",
            &params,
        )
        .unwrap();
    assert_eq!(cols, ["a", "b", "c", "d", "e"]);
    assert_eq!(rows, vec![params]);

    // Parameters used in WHERE, NULL matched with IS.
    let (_, rows) = db
        .query("SELECT id FROM rt WHERE v IS ?1", &[Value::Null])
        .unwrap();
    assert_eq!(rows, vec![vec![i(0)]]);
    let (_, rows) = db
        .query("SELECT id FROM rt WHERE v = ?1", &[Value::Blob(Vec::new())])
        .unwrap();
    assert_eq!(rows, vec![vec![i(8)]]);

    // A query with no rows still reports its columns.
    let (cols, rows) = db.query("SELECT id, v FROM rt WHERE id < 0", &[]).unwrap();
    assert_eq!(cols, ["id", "v"]);
    assert!(rows.is_empty());

    // execute reports rows changed.
    assert_eq!(
        db.execute("DELETE FROM rt WHERE id >= ?1", &[i(5)])
            .unwrap(),
        5
    );
    assert_eq!(
        db.execute("DELETE FROM rt WHERE id >= ?1", &[i(5)])
            .unwrap(),
        0
    );

    // Conversions.
    assert_eq!(Value::from(Some("a")), t("a"));
    assert_eq!(Value::from(None::<i64>), Value::Null);
    assert_eq!(Value::from(true), i(1));
    assert_eq!(Value::from(vec![1u8]), Value::Blob(vec![1]));
}

#[test]
fn constraint_violations_are_constraint_errors() {
    let db = AdminDb::open(None).unwrap();
    db.execute(
        "INSERT INTO admin_kv (key, value, updated_at) VALUES ('a', 1, 1)",
        &[],
    )
    .unwrap();
    expect_err(
        db.execute(
            "INSERT INTO admin_kv (key, value, updated_at) VALUES ('a', 2, 1)",
            &[],
        ),
        AdminErrorKind::Constraint,
        "UNIQUE constraint failed: admin_kv.key",
    );
    expect_err(
        db.execute(
            "INSERT INTO metric_metadata (metric_name, updated_at) VALUES (?1, ?2)",
            &[t("m"), Value::Null],
        ),
        AdminErrorKind::Constraint,
        "NOT NULL constraint failed: metric_metadata.updated_at",
    );
    expect_err(
        db.execute(
            "INSERT INTO metric_metadata (metric_name, type, updated_at) VALUES ('m', 'bogus', 1)",
            &[],
        ),
        AdminErrorKind::Constraint,
        "CHECK constraint failed",
    );
    expect_err(
        db.execute(
            "INSERT INTO alert_state (rule_id, fingerprint, state, active_at) VALUES (999, 'abc', 'pending', 1)",
            &[],
        ),
        AdminErrorKind::Constraint,
        "FOREIGN KEY constraint failed",
    );
    // STRICT tables refuse values of the wrong type.
    expect_err(
        db.execute("INSERT INTO annotations (start_ms, end_ms, created_at, updated_at) VALUES ('soon', 1, 1, 1)", &[]),
        AdminErrorKind::Constraint,
        "cannot store TEXT value in INTEGER column",
    );
    // JSON columns must hold JSON of the right shape.
    expect_err(
        db.execute("INSERT INTO annotations (start_ms, end_ms, tags, created_at, updated_at) VALUES (1, 2, '{}', 1, 1)", &[]),
        AdminErrorKind::Constraint,
        "CHECK constraint failed",
    );
    // Nothing of the failed statements was stored.
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM metric_metadata", &[]),
        i(0)
    );
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM annotations", &[]), i(0));
}

#[test]
fn schema_relations_and_checks() {
    let db = AdminDb::open(None).unwrap();
    let rule = insert_rule(&db, "HighLatency");
    // Same alert name with other labels (warning vs critical) is allowed.
    let rule2 = insert_rule(&db, "HighLatency");
    assert_ne!(rule, rule2);

    // A firing alert needs fired_at.
    expect_err(
        db.execute(
            "INSERT INTO alert_state (rule_id, fingerprint, state, active_at) VALUES (?1, 'f1', 'firing', 1)",
            &[i(rule)],
        ),
        AdminErrorKind::Constraint,
        "CHECK constraint failed",
    );
    db.execute(
        "INSERT INTO alert_state (rule_id, fingerprint, labels, state, active_at, fired_at, last_value)
         VALUES (?1, 'f1', '{\"instance\":\"a\"}', 'firing', 1, 2, 0.97)",
        &[i(rule)],
    )
    .unwrap();
    // One state row per (rule, fingerprint).
    expect_err(
        db.execute(
            "INSERT INTO alert_state (rule_id, fingerprint, state, active_at) VALUES (?1, 'f1', 'pending', 1)",
            &[i(rule)],
        ),
        AdminErrorKind::Constraint,
        "UNIQUE",
    );
    // Deleting a rule deletes its state.
    assert_eq!(
        db.execute("DELETE FROM alert_rules WHERE id = ?1", &[i(rule)])
            .unwrap(),
        1
    );
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM alert_state", &[]), i(0));

    // Scrape targets: defaults, one row per (job, url), timeout <= interval.
    db.execute(
        "INSERT INTO scrape_targets (job, url, created_at, updated_at) VALUES ('node', 'http://h:9100/metrics', 1, 1)",
        &[],
    )
    .unwrap();
    let (_, rows) = db
        .query("SELECT interval_ms, timeout_ms, labels, enabled, health, last_error FROM scrape_targets", &[])
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            i(15_000),
            i(10_000),
            t("{}"),
            i(1),
            t("unknown"),
            t("")
        ]]
    );
    expect_err(
        db.execute(
            "INSERT INTO scrape_targets (job, url, created_at, updated_at) VALUES ('node', 'http://h:9100/metrics', 2, 2)",
            &[],
        ),
        AdminErrorKind::Constraint,
        "UNIQUE constraint failed: scrape_targets.job, scrape_targets.url",
    );
    expect_err(
        db.execute(
            "INSERT INTO scrape_targets (job, url, interval_ms, timeout_ms, created_at, updated_at)
             VALUES ('node', 'http://other/metrics', 5000, 6000, 1, 1)",
            &[],
        ),
        AdminErrorKind::Constraint,
        "CHECK",
    );

    // Rollups: one per (source, aggregate, resolution).
    let rollup = "INSERT INTO rollups (source, aggregate, resolution_ms, created_at, updated_at)
                  VALUES ('cpu_seconds_total', 'avg', 300000, 1, 1)";
    db.execute(rollup, &[]).unwrap();
    expect_err(
        db.execute(rollup, &[]),
        AdminErrorKind::Constraint,
        "UNIQUE",
    );

    // Annotations: end before start refused.
    expect_err(
        db.execute("INSERT INTO annotations (start_ms, end_ms, created_at, updated_at) VALUES (10, 5, 1, 1)", &[]),
        AdminErrorKind::Constraint,
        "CHECK",
    );
    db.execute(
        "INSERT INTO annotations (start_ms, end_ms, title, tags, created_at, updated_at)
         VALUES (10, 20, 'deploy', '[\"deploy\",\"api\"]', 1, 1)",
        &[],
    )
    .unwrap();
    let id = db.last_insert_rowid();
    // Tag filtering through json_each.
    let (_, rows) = db
        .query(
            "SELECT a.id FROM annotations a WHERE EXISTS (SELECT 1 FROM json_each(a.tags) WHERE value = ?1)",
            &[t("api")],
        )
        .unwrap();
    assert_eq!(rows, vec![vec![i(id)]]);
}

#[test]
fn bad_sql_is_bad_input() {
    let db = AdminDb::open(None).unwrap();
    let e = expect_err(
        db.execute("INSERT INTO admin_kv VALUES (1,,2)", &[]),
        AdminErrorKind::BadInput,
        "syntax error",
    );
    expect_err(
        db.execute("INSERT INTO admin_kv VALUES (", &[]),
        AdminErrorKind::BadInput,
        "incomplete input",
    );
    assert!(e.to_string().starts_with("admin db bad input: "), "{e}");
    expect_err(
        db.query("SELEC 1", &[]),
        AdminErrorKind::BadInput,
        "syntax error",
    );
    expect_err(
        db.query("SELECT * FROM no_such_table", &[]),
        AdminErrorKind::BadInput,
        "no such table: no_such_table",
    );
    expect_err(
        db.query("SELECT nope FROM admin_kv", &[]),
        AdminErrorKind::BadInput,
        "no such column: nope",
    );
    // Wrong parameter counts, both ways.
    expect_err(
        db.execute(
            "DELETE FROM admin_kv WHERE key = ?1 AND updated_at = ?2",
            &[t("a")],
        ),
        AdminErrorKind::BadInput,
        "statement takes 2, got 1",
    );
    expect_err(
        db.query("SELECT ?1", &[i(1), i(2)]),
        AdminErrorKind::BadInput,
        "statement takes 1, got 2",
    );
    expect_err(
        db.query("SELECT 1", &[i(1)]),
        AdminErrorKind::BadInput,
        "statement takes 0, got 1",
    );
    // One statement per call.
    expect_err(
        db.execute("DELETE FROM admin_kv; DELETE FROM annotations", &[]),
        AdminErrorKind::BadInput,
        "only one SQL statement",
    );
    expect_err(
        db.execute("CREATE TEMP TABLE x (a); INSERT INTO x VALUES (1)", &[]),
        AdminErrorKind::BadInput,
        "only one SQL statement",
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM temp.sqlite_schema WHERE name = 'x'",
            &[]
        ),
        i(0)
    );
    // Trailing semicolons, whitespace and comments are fine.
    assert_eq!(
        db.query("SELECT 1; -- done\n  ", &[]).unwrap().1,
        vec![vec![i(1)]]
    );
    expect_err(
        db.execute("", &[]),
        AdminErrorKind::BadInput,
        "no SQL statement",
    );
    expect_err(
        db.query("  -- only a comment", &[]),
        AdminErrorKind::BadInput,
        "no SQL statement",
    );
    // Row-returning statements belong in query().
    expect_err(
        db.execute("SELECT 1", &[]),
        AdminErrorKind::BadInput,
        "use query()",
    );
    // The connection is still healthy afterwards.
    assert_eq!(
        db.execute(
            "INSERT INTO admin_kv (key, value, updated_at) VALUES ('ok', NULL, 1)",
            &[]
        )
        .unwrap(),
        1
    );
}

#[test]
fn transaction_commits_all_or_nothing() {
    let db = AdminDb::open(None).unwrap();
    let ins = "INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, 1)";
    let changed = db
        .transaction(&[
            (ins.to_owned(), vec![t("a"), i(1)]),
            (ins.to_owned(), vec![t("b"), i(2)]),
            ("UPDATE admin_kv SET value = value * 10".to_owned(), vec![]),
        ])
        .unwrap();
    assert_eq!(changed, vec![1, 1, 2]);
    assert_eq!(scalar(&db, "SELECT SUM(value) FROM admin_kv", &[]), i(30));

    // Third statement violates UNIQUE: the first two are rolled back.
    let e = expect_err(
        db.transaction(&[
            (ins.to_owned(), vec![t("c"), i(3)]),
            ("DELETE FROM admin_kv WHERE key = 'a'".to_owned(), vec![]),
            (ins.to_owned(), vec![t("b"), i(4)]),
        ]),
        AdminErrorKind::Constraint,
        "UNIQUE constraint failed",
    );
    assert!(e.message.contains("statement 3 of 3"), "{e}");
    let (_, rows) = db
        .query("SELECT key, value FROM admin_kv ORDER BY key", &[])
        .unwrap();
    assert_eq!(rows, vec![vec![t("a"), i(10)], vec![t("b"), i(20)]]);

    // Bad SQL in the middle: BadInput, and nothing applied.
    expect_err(
        db.transaction(&[
            ("DELETE FROM admin_kv".to_owned(), vec![]),
            ("DELET FROM annotations".to_owned(), vec![]),
        ]),
        AdminErrorKind::BadInput,
        "syntax error",
    );
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM admin_kv", &[]), i(2));

    // The connection is out of the failed transaction: later ones work.
    assert_eq!(
        db.transaction(&[("DELETE FROM admin_kv".to_owned(), vec![])])
            .unwrap(),
        vec![2]
    );
    assert_eq!(db.transaction(&[]).unwrap(), Vec::<usize>::new());
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM admin_kv", &[]), i(0));
}

#[test]
fn transaction_rollback_on_file_database_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    {
        let db = AdminDb::open(Some(&path)).unwrap();
        let r = db.transaction(&[
            (
                "INSERT INTO rollups (source, aggregate, resolution_ms, created_at, updated_at) VALUES ('m', 'max', 60000, 1, 1)"
                    .to_owned(),
                vec![],
            ),
            ("INSERT INTO rollups (source) VALUES ('m')".to_owned(), vec![]),
        ]);
        expect_err(r, AdminErrorKind::Constraint, "NOT NULL");
    }
    let db = AdminDb::open(Some(&path)).unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM rollups", &[]), i(0));
}

#[test]
fn non_sqlite_file_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("admin.sqlite3");
    let junk: String = "this is definitely not an SQLite database\n".repeat(200);
    fs::write(&path, junk.as_bytes()).unwrap();
    let e = expect_err(
        AdminDb::open(Some(&path)),
        AdminErrorKind::Corrupt,
        "file is not a database",
    );
    assert!(
        e.message.contains(&path.display().to_string()),
        "message names the file: {e}"
    );
    // The file was left alone.
    assert_eq!(fs::read(&path).unwrap(), junk.as_bytes());
}

#[test]
fn damaged_database_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("admin.sqlite3");
    {
        let db = AdminDb::open(Some(&path)).unwrap();
        for n in 0..200 {
            db.execute(
                "INSERT INTO metric_metadata (metric_name, type, help, updated_at) VALUES (?1, 'gauge', ?2, 1)",
                &[t(&format!("metric_{n:04}")), t(&"help text ".repeat(20))],
            )
            .unwrap();
        }
        // Fold the WAL into the main file and leave WAL mode so the damage
        // below is what the next open reads.
        db.query("PRAGMA wal_checkpoint(TRUNCATE)", &[]).unwrap();
        db.query("PRAGMA journal_mode = DELETE", &[]).unwrap();
    }
    let mut bytes = fs::read(&path).unwrap();
    let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() > 4 * page_size);
    // Scribble over everything after the first page (schema stays readable).
    for b in &mut bytes[page_size..] {
        *b = 0xA5;
    }
    fs::write(&path, &bytes).unwrap();
    let e = AdminDb::open(Some(&path)).expect_err("damaged database must not open");
    assert_eq!(e.kind, AdminErrorKind::Corrupt, "{e}");
}

#[test]
fn backup_copies_all_rows() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let db = AdminDb::open(Some(&path)).unwrap();
    let rule = insert_rule(&db, "InstanceDown");
    db.execute(
        "INSERT INTO alert_state (rule_id, fingerprint, state, active_at, fired_at, last_value)
         VALUES (?1, 'abc', 'firing', 1, 2, 1.0)",
        &[i(rule)],
    )
    .unwrap();
    db.execute(
        "INSERT INTO admin_kv (key, value, updated_at) VALUES ('blob', ?1, 3)",
        &[Value::Blob(vec![0, 159, 146, 150])],
    )
    .unwrap();

    let dest = dir.path().join("backups").join("b1").join("admin.sqlite3");
    db.backup_to(&dest).unwrap();

    let dump = |d: &AdminDb| -> Vec<(String, Vec<Vec<Value>>)> {
        d.table_names()
            .unwrap()
            .into_iter()
            .filter(|n| n != "schema_migrations")
            .map(|n| {
                let rows = d
                    .query(&format!("SELECT * FROM {n} ORDER BY 1, 2"), &[])
                    .unwrap()
                    .1;
                (n, rows)
            })
            .collect()
    };
    {
        let copy = AdminDb::open(Some(&dest)).unwrap();
        assert_eq!(copy.migrations().unwrap(), known_migrations());
        assert_eq!(dump(&copy), dump(&db));
        assert_eq!(scalar(&copy, "SELECT COUNT(*) FROM alert_state", &[]), i(1));
    }

    // A second backup to the same place replaces the first.
    db.execute("DELETE FROM alert_rules", &[]).unwrap();
    db.execute(
        "INSERT INTO admin_kv (key, value, updated_at) VALUES ('later', 'x', 4)",
        &[],
    )
    .unwrap();
    db.backup_to(&dest).unwrap();
    let copy = AdminDb::open(Some(&dest)).unwrap();
    assert_eq!(dump(&copy), dump(&db));
    assert_eq!(scalar(&copy, "SELECT COUNT(*) FROM alert_rules", &[]), i(0));

    // Backing up onto itself is refused.
    expect_err(
        db.backup_to(&path),
        AdminErrorKind::BadInput,
        "database itself",
    );
    // A destination that is not an SQLite file is not clobbered.
    let junk = dir.path().join("junk.bin");
    fs::write(
        &junk,
        "not a database at all, just some text that is long enough ".repeat(50),
    )
    .unwrap();
    let before = fs::read(&junk).unwrap();
    let e = db.backup_to(&junk).expect_err("junk destination");
    assert_eq!(e.kind, AdminErrorKind::Corrupt, "{e}");
    assert_eq!(fs::read(&junk).unwrap(), before);
}

#[test]
fn in_memory_mode() {
    let db = AdminDb::open(None).unwrap();
    assert_eq!(db.table_names().unwrap(), ALL_TABLES);
    assert_eq!(db.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
    assert_eq!(db.migrations().unwrap(), known_migrations());
    assert_eq!(scalar(&db, "PRAGMA foreign_keys", &[]), i(1));

    db.execute(
        "INSERT INTO annotations (start_ms, end_ms, title, text, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        &[i(100), i(200), t("deploy"), t("v1.2.3"), i(1)],
    )
    .unwrap();
    let id = db.last_insert_rowid();
    assert!(id > 0);
    assert_eq!(
        scalar(&db, "SELECT title FROM annotations WHERE id = ?1", &[i(id)]),
        t("deploy")
    );

    // Separate in-memory databases do not share data.
    let other = AdminDb::open(None).unwrap();
    assert_eq!(
        scalar(&other, "SELECT COUNT(*) FROM annotations", &[]),
        i(0)
    );

    // An in-memory database can be backed up to a file.
    let dir = TempDir::new().unwrap();
    let dest = dir.path().join("mem-backup.sqlite3");
    db.backup_to(&dest).unwrap();
    let copy = AdminDb::open(Some(&dest)).unwrap();
    assert_eq!(
        scalar(
            &copy,
            "SELECT text FROM annotations WHERE id = ?1",
            &[i(id)]
        ),
        t("v1.2.3")
    );
    assert_eq!(copy.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
}

#[test]
fn error_display_is_readable() {
    let e = AdminError::new(
        AdminErrorKind::Constraint,
        "UNIQUE constraint failed: admin_kv.key",
    );
    assert_eq!(
        e.to_string(),
        "admin db constraint violation: UNIQUE constraint failed: admin_kv.key"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    assert!(boxed.to_string().contains("admin_kv.key"));
}

#[test]
fn documented_upserts_work() {
    let db = AdminDb::open(None).unwrap();
    let kv = "INSERT INTO admin_kv (key, value, updated_at) VALUES (?1, ?2, ?3)
              ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
    db.execute(kv, &[t("settings.retention_days"), i(30), i(1)])
        .unwrap();
    db.execute(kv, &[t("settings.retention_days"), i(90), i(2)])
        .unwrap();
    let (_, rows) = db
        .query("SELECT key, value, updated_at FROM admin_kv", &[])
        .unwrap();
    assert_eq!(rows, vec![vec![t("settings.retention_days"), i(90), i(2)]]);

    // TYPE, HELP and UNIT lines arrive separately; each upserts one column.
    let set_type = "INSERT INTO metric_metadata (metric_name, type, updated_at) VALUES (?1, ?2, ?3)
                    ON CONFLICT (metric_name) DO UPDATE SET type = excluded.type, updated_at = excluded.updated_at";
    let set_help = "INSERT INTO metric_metadata (metric_name, help, updated_at) VALUES (?1, ?2, ?3)
                    ON CONFLICT (metric_name) DO UPDATE SET help = excluded.help, updated_at = excluded.updated_at";
    db.execute(set_help, &[t("node_load1"), t("1m load average."), i(10)])
        .unwrap();
    db.execute(set_type, &[t("node_load1"), t("gauge"), i(11)])
        .unwrap();
    let (_, rows) = db
        .query(
            "SELECT metric_name, type, help, unit, updated_at FROM metric_metadata",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            t("node_load1"),
            t("gauge"),
            t("1m load average."),
            t(""),
            i(11)
        ]]
    );
}
