//! The ordered list of schema migrations.
//!
//! Rules for editing this file:
//! * never change or reorder a migration that has shipped: databases in the
//!   field recorded it by (version, name) and `AdminDb::open` refuses a
//!   database whose recorded history does not match this list;
//! * add new migrations at the end with the next version number;
//! * keep `SCHEMA.md` in step.
//!
//! Conventions used by every table: times are integers in milliseconds since
//! the Unix epoch (UTC); JSON columns hold text checked with `json_valid`;
//! booleans are integers 0/1; all tables are `STRICT`.

/// One schema migration: applied once, in its own transaction, and recorded
/// in `schema_migrations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// All migrations this build knows, ordered by version (1, 2, 3, ...).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "admin_kv_and_metric_metadata",
        sql: r#"
CREATE TABLE admin_kv (
    key         TEXT    NOT NULL PRIMARY KEY CHECK (key <> ''),
    value       ANY,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE metric_metadata (
    metric_name TEXT    NOT NULL PRIMARY KEY CHECK (metric_name <> ''),
    type        TEXT    NOT NULL DEFAULT 'unknown'
                CHECK (type IN ('counter', 'gauge', 'histogram', 'gaugehistogram',
                                'summary', 'info', 'stateset', 'unknown')),
    help        TEXT    NOT NULL DEFAULT '',
    unit        TEXT    NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL
) STRICT;
"#,
    },
    Migration {
        version: 2,
        name: "annotations",
        sql: r#"
CREATE TABLE annotations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    title       TEXT    NOT NULL DEFAULT '',
    text        TEXT    NOT NULL DEFAULT '',
    tags        TEXT    NOT NULL DEFAULT '[]'
                CHECK (json_valid(tags) AND json_type(tags) = 'array'),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK (end_ms >= start_ms)
) STRICT;

CREATE INDEX annotations_start_idx ON annotations (start_ms);
CREATE INDEX annotations_end_idx   ON annotations (end_ms);
"#,
    },
    Migration {
        version: 3,
        name: "alerting",
        sql: r#"
CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL CHECK (name <> ''),
    expr        TEXT    NOT NULL CHECK (expr <> ''),
    for_ms      INTEGER NOT NULL DEFAULT 0 CHECK (for_ms >= 0),
    labels      TEXT    NOT NULL DEFAULT '{}'
                CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    annotations TEXT    NOT NULL DEFAULT '{}'
                CHECK (json_valid(annotations) AND json_type(annotations) = 'object'),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX alert_rules_name_idx ON alert_rules (name);

CREATE TABLE alert_state (
    rule_id     INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    fingerprint TEXT    NOT NULL CHECK (fingerprint <> ''),
    labels      TEXT    NOT NULL DEFAULT '{}'
                CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    active_at   INTEGER NOT NULL,
    fired_at    INTEGER,
    resolved_at INTEGER,
    last_value  REAL,
    PRIMARY KEY (rule_id, fingerprint),
    CHECK (state <> 'firing'   OR fired_at    IS NOT NULL),
    CHECK (state <> 'resolved' OR resolved_at IS NOT NULL)
) STRICT, WITHOUT ROWID;

CREATE INDEX alert_state_state_idx ON alert_state (state);
"#,
    },
    Migration {
        version: 4,
        name: "scrape_targets",
        sql: r#"
CREATE TABLE scrape_targets (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    job                     TEXT    NOT NULL CHECK (job <> ''),
    url                     TEXT    NOT NULL CHECK (url <> ''),
    interval_ms             INTEGER NOT NULL DEFAULT 15000 CHECK (interval_ms > 0),
    timeout_ms              INTEGER NOT NULL DEFAULT 10000
                            CHECK (timeout_ms > 0 AND timeout_ms <= interval_ms),
    labels                  TEXT    NOT NULL DEFAULT '{}'
                            CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    enabled                 INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_scrape_at          INTEGER,
    last_scrape_duration_ms INTEGER CHECK (last_scrape_duration_ms >= 0),
    health                  TEXT    NOT NULL DEFAULT 'unknown'
                            CHECK (health IN ('unknown', 'up', 'down')),
    last_error              TEXT    NOT NULL DEFAULT '',
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    UNIQUE (job, url)
) STRICT;
"#,
    },
    Migration {
        version: 5,
        name: "rollups",
        sql: r#"
CREATE TABLE rollups (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    source             TEXT    NOT NULL CHECK (source <> ''),
    aggregate          TEXT    NOT NULL CHECK (aggregate <> ''),
    resolution_ms      INTEGER NOT NULL CHECK (resolution_ms > 0),
    retention_ms       INTEGER NOT NULL DEFAULT 0 CHECK (retention_ms >= 0),
    enabled            INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_run_at        INTEGER,
    processed_until_ms INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (source, aggregate, resolution_ms)
) STRICT;
"#,
    },
];

/// The schema version a fresh database reaches with this build.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;
