//! # timeless_engine
//!
//! The storage engine behind TimelessMetrics, in plain Rust (no BEAM needed to test it).
//! Split by concern, the way Prometheus's tsdb is:
//!
//! | module     | concern |
//! |------------|---------|
//! | [`error`]  | one error vocabulary (`ErrorKind` -> `{:error, {kind, message}}`) |
//! | [`codec`]  | compression of one series' (timestamp, value) run into a chunk body |
//! | [`chunk`]  | batched chunk files: many series' chunks per file, headers, footer, mmap reads |
//! | [`series`] | series registry (labels <-> id, persisted), inverted label index, matchers |
//! | [`log`]    | framed, checksummed append-only record files (torn tails, corruption reports) |
//! | [`wal`]    | write-ahead log of samples on top of [`log`], fsync policy, segment truncation |
//! | [`buffer`] | sharded in-memory head buffers that writes land in before a flush |
//! | [`query`]  | raw reads, bucketed aggregates, counter-aware rate/increase |
//! | [`store`]  | the store: open/recover/lock, write paths, flush, reads, info, delete |
//! | [`spool`]  | append-only spool of accepted ingest bodies (acknowledged before parsing) |
//! | [`promql`] | the PromQL evaluator: an expression tree over a step grid, Prometheus 2.53 semantics |
//! | [`discovery`] | Prometheus's `/api/v1/series` JSON body written from the index, with a bound of its cost |
//!
//! On-disk formats are described byte by byte in `FORMAT.md` beside this crate.

pub mod error;
pub mod codec;
pub mod chunk;
pub mod series;
pub mod log;
pub mod wal;
pub mod buffer;
pub mod query;
pub mod store;
pub mod ingest;
pub mod spool;
pub mod promql;
pub mod discovery;

pub use error::{Error, ErrorKind, Result};

/// Milliseconds since the unix epoch: the only timestamp unit inside the engine.
pub type Timestamp = i64;
/// Stable identifier of a series (metric name + label set).
pub type SeriesId = u64;

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A xorshift64 generator for tests that want many reproducible inputs without a
/// dependency: each call returns the next state.
#[cfg(test)]
pub(crate) fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
