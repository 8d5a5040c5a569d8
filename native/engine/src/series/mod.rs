//! Series registry: metric name + label set <-> stable [`SeriesId`](crate::SeriesId), with an
//! inverted index (postings per label pair) so matchers select series without scanning them.
//!
//! * [`Labels`] — validated, sorted, immutable label sets with a compact binary form
//!   (`FORMAT-series.md`).
//! * [`Matcher`] — `=`, `!=`, `=~`, `!~` with Prometheus semantics.
//! * [`Registry`] — resolve / lookup / recover / select / delete / label listings.
//!
//! Persistence is the caller's: [`Registry::resolve_with`] calls back with the new id before
//! the series becomes visible, and recovery re-inserts (id, labels) pairs with
//! [`Registry::insert_known`].

mod hash;
mod index;
mod labels;
mod matcher;
mod postings;
mod registry;

pub use index::SelectBound;
pub use labels::{LabelLimits, Labels, METRIC_NAME};
pub use matcher::{MatchOp, Matcher};
pub use registry::{Registry, FIRST_ID, SHARDS};
