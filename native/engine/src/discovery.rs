//! Prometheus's `/api/v1/series` answered in the engine: the JSON success body written
//! straight from the index (no term per series built for the VM), and a bound of its
//! cost from metadata, so that the caller can pick the thread to run it on.
//!
//! The bytes are those the Elixir HTTP layer wrote itself (`TimelessMetrics.list_series/4`
//! per `match[]`, `Query.union`, `Params.apply_limit`, jiffy), so the endpoint answers
//! exactly as before:
//!
//! * `{"status":"success","data":[…]}`, then `"warnings":["results truncated due to
//!   limit"]` when the limit cut the list;
//! * the union of the series each selector matches, each label set once, sorted by
//!   their `(name, value)` pairs in name order, compared bytewise (how Erlang sorts
//!   those pair lists, and how Prometheus sorts series);
//! * a series as an object of all its labels, `__name__` included, names in descending
//!   order (how jiffy writes an Elixir map of up to 32 keys); strings escaped as jiffy
//!   escapes them ([`Escaping::Jiffy`]).
//!
//! A series with more than 32 labels was written in the hash order of a large Elixir
//! map, which cannot be reproduced outside the VM; here it keeps the descending order
//! (the same object once decoded).
//!
//! ```
//! use timeless_engine::discovery::{series_body, series_cost};
//! use timeless_engine::series::{MatchOp, Matcher};
//! use timeless_engine::store::{Store, StoreConfig};
//!
//! let (store, _) = Store::open(StoreConfig::default()).unwrap();
//! let id = store.resolve(&store.labels("up", &[("job", "a")]).unwrap()).unwrap();
//! store.write(&[id], &[1_000], &[1.0]).unwrap();
//! let selectors = vec![vec![Matcher::new("__name__", MatchOp::Eq, "up").unwrap()]];
//! assert_eq!(series_cost(&store, &selectors).series, 1);
//! let body = series_body(&store, &selectors, None, None);
//! assert_eq!(body, br#"{"status":"success","data":[{"job":"a","__name__":"up"}]}"#);
//! ```

use crate::promql::json::{json_string, Escaping};
use crate::series::{Labels, Matcher};
use crate::store::Store;
use crate::Timestamp;

/// The warning of a list cut by `limit` (`TimelessMetrics.HTTP.Params.apply_limit/2`'s).
pub const TRUNCATED: &str = "results truncated due to limit";

/// Upper bounds of what [`series_body`] does for some selectors, from the index's
/// metadata alone (see [`Store::select_bound`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesCost {
    /// Series selected, summed over the selectors (before the time range and the
    /// union): each is range-checked, and the union is copied, sorted and encoded.
    pub series: u64,
    /// Index work of the selections: label values looked up or matched, candidate
    /// ids unioned or probed.
    pub work: u64,
}

/// Bounds of the cost of [`series_body`] over `selectors`. Cheap: a few hash lookups
/// per matcher; no regex is run and no postings list read.
pub fn series_cost(store: &Store, selectors: &[Vec<Matcher>]) -> SeriesCost {
    selectors.iter().fold(SeriesCost::default(), |acc, sel| {
        let b = store.select_bound(sel);
        SeriesCost { series: acc.series.saturating_add(b.ids), work: acc.work.saturating_add(b.work) }
    })
}

/// The `/api/v1/series` success body for the union of the series matching each of
/// `selectors` (a list of matchers each; no matcher selects every series), only those
/// with data in `range` (`[from, to]` in ms) when given, at most `limit` of them.
pub fn series_body(store: &Store, selectors: &[Vec<Matcher>], range: Option<(Timestamp, Timestamp)>, limit: Option<usize>) -> Vec<u8> {
    let mut ids = Vec::new();
    for sel in selectors {
        ids.extend(store.select(sel, range));
    }
    if selectors.len() > 1 {
        ids.sort_unstable();
        ids.dedup();
    }
    let mut series: Vec<Labels> = ids.iter().filter_map(|&id| store.series_labels(id)).collect();
    series.sort_unstable();
    series.dedup();
    let kept = limit.map_or(series.len(), |n| n.min(series.len()));

    let mut out = Vec::with_capacity(64 + kept * 96);
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":[");
    for (i, labels) in series[..kept].iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        object(&mut out, labels);
    }
    out.push(b']');
    if kept < series.len() {
        out.extend_from_slice(b",\"warnings\":[");
        json_string(&mut out, TRUNCATED, Escaping::Jiffy);
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// A label set as a JSON object, names in descending order.
fn object(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, (name, value)) in labels.iter().rev().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_string(out, name, Escaping::Jiffy);
        out.push(b':');
        json_string(out, value, Escaping::Jiffy);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests;
