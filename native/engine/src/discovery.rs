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
//! A series with more than 32 labels (possible only when the store's `max_labels` is
//! raised above its default of 30) was written in the hash order of a large Elixir
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

use crate::promql::json::{json_string, json_utf8, Escaping};
use crate::series::Matcher;
use crate::store::Store;
use crate::{SeriesId, Timestamp};

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
    let listed = Listed::of(store, &ids);
    let order = listed.sorted();
    let kept = limit.map_or(order.len(), |n| n.min(order.len()));

    let mut out = Vec::with_capacity(96 + order[..kept].iter().map(|&i| listed.json_len(i)).sum::<usize>());
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":[");
    for (n, &i) in order[..kept].iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        listed.object(&mut out, i);
    }
    out.push(b']');
    if kept < order.len() {
        out.extend_from_slice(b",\"warnings\":[");
        json_string(&mut out, TRUNCATED, Escaping::Jiffy);
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// The label sets of the listed series, copied into one buffer: per series its pairs
/// in name order, each `name 0x00 value 0x00`. That is also the series' sort key:
/// label names hold no 0x00 byte, so comparing two keys bytewise compares the pair
/// lists (name, then value, pair after pair, a shorter list first when it is a prefix)
/// unless a value holds a 0x00, when pairs are compared one by one instead.
struct Listed {
    text: Vec<u8>,
    /// `[name start, value start, value end]` in `text`, the name ending 1 before the value.
    pairs: Vec<[usize; 3]>,
    /// Per series, its ranges in `pairs` and `text`.
    series: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Whether some value holds a 0x00 byte (keys then do not order the series).
    nul: bool,
}

impl Listed {
    fn of(store: &Store, ids: &[SeriesId]) -> Listed {
        let mut l = Listed {
            text: Vec::with_capacity(ids.len() * 96),
            pairs: Vec::with_capacity(ids.len() * 8),
            series: Vec::with_capacity(ids.len()),
            nul: false,
        };
        for &id in ids {
            let (p0, t0) = (l.pairs.len(), l.text.len());
            let live = store.with_series_pairs(id, |pairs| {
                for (name, value) in pairs {
                    let n = l.text.len();
                    l.text.extend_from_slice(name.as_bytes());
                    l.text.push(0);
                    let v = l.text.len();
                    l.text.extend_from_slice(value.as_bytes());
                    l.pairs.push([n, v, l.text.len()]);
                    l.text.push(0);
                    l.nul |= value.as_bytes().contains(&0);
                }
            });
            if live.is_some() {
                l.series.push((p0..l.pairs.len(), t0..l.text.len()));
            }
        }
        l
    }

    /// Series indexes in label order, each label set once.
    fn sorted(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.series.len()).collect();
        if self.nul {
            order.sort_unstable_by(|&a, &b| self.pair_slices(a).cmp(self.pair_slices(b)));
            order.dedup_by(|a, b| self.pair_slices(*a).eq(self.pair_slices(*b)));
        } else {
            order.sort_unstable_by(|&a, &b| self.key(a).cmp(self.key(b)));
            order.dedup_by(|a, b| self.key(*a) == self.key(*b));
        }
        order
    }

    fn key(&self, i: usize) -> &[u8] {
        &self.text[self.series[i].1.clone()]
    }

    fn pair_slices(&self, i: usize) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs[self.series[i].0.clone()].iter().map(|&[n, v, end]| (&self.text[n..v - 1], &self.text[v..end]))
    }

    /// The length of series `i`'s object when nothing in it needs escaping.
    fn json_len(&self, i: usize) -> usize {
        // key: 2 separators per pair; object: 4 quotes, a colon and a comma per pair, braces
        self.series[i].1.len() + 4 * self.series[i].0.len() + 2
    }

    /// Series `i` as a JSON object, names in descending order.
    fn object(&self, out: &mut Vec<u8>, i: usize) {
        out.push(b'{');
        for (n, (name, value)) in self.pair_slices(i).rev().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            json_utf8(out, name, Escaping::Jiffy);
            out.push(b':');
            json_utf8(out, value, Escaping::Jiffy);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests;
