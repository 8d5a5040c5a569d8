//! # timeless_nif
//!
//! The rustler boundary of TimelessMetrics. It only converts terms and picks
//! schedulers; all logic lives in `timeless_engine` and `timeless_admin`.
//!
//! | module      | NIFs |
//! |-------------|------|
//! | [`convert`] | term <-> engine value helpers, the error tuple `{:error, {kind, message}}` |
//! | [`write`]   | write path: `resolve`, `write_batch`, `write_columns` |
//! | [`resolved`] | `write_resolved` (tuple lists): direct term reads, normal scheduler, slices and yields |
//! | [`read`]    | read path: `read_series`, `read_many`, `aggregate`, `latest`, listings |
//! | [`discovery`] | `series_json` (normal scheduler when the selection is small, else `:dirty`) and `series_json_dirty`: the `/api/v1/series` JSON body |
//! | [`ingest`]  | ingest path: `decompress`, `ingest` / `ingest_many` (parse + resolve + write bodies) |
//! | [`spool`]   | durable spool of accepted bodies: `spool_open/append/done/read/info` |
//! | [`promql`]  | `promql_eval`, `promql_eval_json`: planned PromQL AST in, evaluated value (or its JSON) out; `promql_eval_json` is on a normal scheduler and hands the work to the query pool (see there) |
//! | [`admin`]   | lifecycle and admin: open/close/flush/merge/maintain/info/delete, admin SQLite |
//!
//! Every NIF that can take longer than about a millisecond is on a dirty scheduler,
//! or (`write_resolved`) reports its time with `enif_consume_timeslice` and yields.
//! A Rust panic becomes an Erlang exception (`:nif_panicked`), never a VM crash.
//!
//! The library's Rust allocations go through mimalloc: queries and ingest allocate
//! many small vectors and strings on several threads at once, where glibc's malloc
//! and free took ~30% of an instant query's CPU (perf, 1,000 series).

mod admin;
mod convert;
mod discovery;
mod ingest;
mod promql;
mod read;
mod resolved;
mod spool;
mod write;

use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use timeless_engine::store::Store;

/// An open store, shared by every process that holds the handle.
pub struct StoreRes {
    pub store: Arc<Store>,
}

#[rustler::resource_impl]
impl rustler::Resource for StoreRes {}

/// An open admin database (SQLite), behind a mutex: SQLite connections are not Sync.
pub struct AdminRes {
    pub db: std::sync::Mutex<Option<timeless_admin::AdminDb>>,
}

#[rustler::resource_impl]
impl rustler::Resource for AdminRes {}

pub mod atoms {
    rustler::atoms! {
        ok,
        error,
        nil,
        nan,
        infinity,
        neg_infinity,
        stale,
        eq,
        ne,
        re,
        nre,
        always,
        never,
        interval,
        blob,
    }
}

extern "C" {
    /// mimalloc's option setter (in the library the `mimalloc` crate links).
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
    fn getenv(name: *const std::os::raw::c_char) -> *mut std::os::raw::c_char;
}

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e` (the version the
/// `mimalloc` crate builds by default).
const MI_OPTION_ARENA_EAGER_COMMIT: std::os::raw::c_int = 4;

/// mimalloc's arenas committed lazily, so that memory it purges goes back to the OS.
/// With eager commit (its default on Linux) bulk ingest peaked ~40-60 MiB higher than
/// with glibc's malloc (bench/rss_probe.exs); lazily, within ~25 MiB of it, while queries
/// keep mimalloc's speed. The option only affects arenas reserved after it is set, so
/// it is set when the library is mapped (an ELF constructor), before its first
/// allocation. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
extern "C" fn lazy_arena_commit() {
    // Safety: getenv with a NUL-terminated name (no allocation, unlike std::env);
    // mi_option_set is a plain option store that mimalloc allows at any time.
    unsafe {
        if getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[used]
#[link_section = ".init_array"]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

rustler::init!("Elixir.TimelessMetrics.Native");
