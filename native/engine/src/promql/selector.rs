//! Selectors: each selected series' raw points are read once for the whole grid,
//! then every step is answered from them.
//!
//! * Instant selector at time `e` (step time minus offset, or the `@` time minus
//!   offset): the newest sample in the closed window `[e - lookback, e]`, unless
//!   that sample is a staleness marker (then the series is absent at that step).
//! * Range selector: the samples in the closed window `[e - range, e]` (Prometheus
//!   2.x; 3.x made it left-open), staleness markers dropped.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;
use rayon::prelude::*;

use super::eval::{collide_strict, Evaluator};
use super::rangefns::RangeFn;
use super::expr::Selector;
use super::value::{Grid, Labels, Points, RangeArg, Series, Sweep};
use crate::error::Result;
use crate::series::MatchOp;
use crate::chunk::{AllValues, TsMemo, Wanted};
use crate::store::pool;
use crate::STALE_NAN_BITS;

/// Window end per grid step.
pub fn ends(sel: &Selector, g: &Grid) -> Vec<i64> {
    (0..g.len).map(|i| sel.at.unwrap_or_else(|| g.t(i)) - sel.offset).collect()
}

fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// `vals.iter().any(|&v| is_stale(v))` in blocks the compiler vectorizes (the
/// short-circuiting form tests one value at a time); every range function's input is
/// scanned this way.
fn any_stale(vals: &[f64]) -> bool {
    vals.chunks(64).any(|block| block.iter().fold(false, |found, &v| found | is_stale(v)))
}

/// One series' points as read: labels, timestamps (an `Arc` shared by every series
/// whose chunks share their timestamp columns) and values (a per-thread buffer).
pub(crate) struct Raw<'b> {
    pub labels: Labels,
    pub ts: Arc<[i64]>,
    pub vals: &'b [f64],
}

impl Raw<'_> {
    fn points(self) -> Points {
        Points { labels: self.labels, ts: self.ts.to_vec(), vals: self.vals.to_vec() }
    }
}

/// Every series matching the selector with its points in `[from, to]`, each handed to
/// `f` as soon as it is read (in parallel; the raw points of all series are never held
/// at once unless `f` keeps them). Results keep the series order.
fn fetch_each<T: Send>(
    ev: &Evaluator,
    sel: &Selector,
    from: i64,
    to: i64,
    f: impl Fn(Raw) -> Result<Option<T>> + Sync,
) -> Result<Vec<T>> {
    fetch_each_at(ev, sel, from, to, true, |_| AllValues, |raw, _| f(raw), None)
}

/// [`fetch_each`] for a caller that needs some of each series' values only: `pick`
/// derives from the timestamps which (see `Store::read_columns_at`), and `f` gets
/// what `pick` gave with the series. With a `sink`, the results go to it a block of
/// series at a time, in order (and none are returned), so they are never all held.
#[allow(clippy::too_many_arguments)]
fn fetch_each_at<T: Send, P: Wanted>(
    ev: &Evaluator,
    sel: &Selector,
    from: i64,
    to: i64,
    need_values: bool,
    pick: impl Fn(&Arc<[i64]>) -> P + Sync,
    f: impl Fn(Raw, P) -> Result<Option<T>> + Sync,
    sink: Option<Sink<T>>,
) -> Result<Vec<T>> {
    thread_local! {
        static VALS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    }
    let ids = ev.store.select(&sel.matchers, Some((from, to)));
    let memo = TsMemo::default();
    let read = |ids: &[u64]| -> Result<Vec<T>> {
        let out: Result<Vec<Option<T>>> = ids
            .par_iter()
            .map(|&id| {
                ev.check_deadline()?;
                // The buffer is taken out of its cell while `f` runs, so `f` may read
                // other series on this thread (nested parallelism) without a double borrow.
                let mut vals = VALS.with(|c| std::mem::take(&mut *c.borrow_mut()));
                let (ts, picked) = ev.store.read_columns_at(id, from, to, &memo, &mut vals, need_values, &pick);
                let res = (|| {
                    ev.account(ts.len())?;
                    let Some(labels) = ev.store.with_series_pairs(id, |pairs| {
                        pairs.map(|(n, v)| (n.to_string(), v.to_string())).collect::<Labels>()
                    }) else {
                        return Ok(None);
                    };
                    f(Raw { labels, ts, vals: &vals }, picked)
                })();
                if vals.capacity() <= 1 << 20 {
                    VALS.with(|c| *c.borrow_mut() = vals);
                }
                res
            })
            .collect();
        Ok(out?.into_iter().flatten().collect())
    };
    let Some(sink) = sink else { return pool().install(|| read(&ids)) };
    // A block is handed to the sink while the next one is read (both on the pool).
    pool().install(|| {
        let mut pending: Option<Vec<T>> = None;
        for block in ids.chunks(SINK_BLOCK) {
            let (sunk, next) = rayon::join(|| pending.take().map_or(Ok(()), &mut *sink), || read(block));
            sunk?;
            pending = Some(next?);
        }
        pending.map_or(Ok(()), sink)
    })?;
    Ok(vec![])
}

/// Where [`fetch_each_at`] hands its results a block at a time.
pub type Sink<'s, T> = &'s mut (dyn FnMut(Vec<T>) -> Result<()> + Send);

/// Series per block handed to a sink: enough for both threads to have work, few enough
/// that a block's per-step vectors are reused memory rather than fresh pages.
const SINK_BLOCK: usize = 64;

/// Something derived from a timestamp column (the sample each step picks, the window
/// of each step), computed once per distinct column: series sharing their timestamps
/// (the same `Arc`) share it.
struct PerColumn<T> {
    #[allow(clippy::type_complexity)]
    map: Mutex<HashMap<usize, (Arc<[i64]>, Arc<T>)>>,
}

impl<T> PerColumn<T> {
    fn new() -> Self {
        PerColumn { map: Mutex::new(HashMap::new()) }
    }

    fn get(&self, ts: &Arc<[i64]>, make: impl FnOnce(&[i64]) -> T) -> Arc<T> {
        let key = ts.as_ptr() as usize;
        let lock = || self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((col, v)) = lock().get(&key) {
            if Arc::ptr_eq(col, ts) {
                return v.clone();
            }
        }
        let made = Arc::new(make(ts));
        // The entry keeps its column alive, so the address cannot be reused by another.
        lock().insert(key, (ts.clone(), made.clone()));
        made
    }
}

/// No sample for the step.
const NONE: u32 = u32::MAX;

/// Per step the sample an instant selector picks, and the samples picked, sorted.
struct Picks {
    per_step: Vec<u32>,
    wanted: Vec<u32>,
}

impl Wanted for Picks {
    fn wanted(&self) -> Option<&[u32]> {
        Some(&self.wanted)
    }
}

impl Picks {
    fn new(ts: &[i64], ends: &[i64], lookback: i64, ordered: bool) -> Picks {
        let per_step = lookback_index(ts, ends, lookback, ordered);
        let mut wanted: Vec<u32> = per_step.iter().copied().filter(|&j| j != NONE).collect();
        if !ordered {
            wanted.sort_unstable();
        }
        wanted.dedup();
        Picks { per_step, wanted }
    }
}

/// For each window end, the index of the newest sample in `[e - lookback, e]` (or [`NONE`]).
fn lookback_index(ts: &[i64], ends: &[i64], lookback: i64, ordered: bool) -> Vec<u32> {
    let mut sweep = Sweep::default();
    ends.iter()
        .map(|&e| {
            // n: the number of points at or before e
            let n = if ordered { sweep.upto(ts, e) } else { ts.partition_point(|&t| t <= e) };
            if n == 0 || ts[n - 1] < e - lookback {
                NONE
            } else {
                (n - 1) as u32
            }
        })
        .collect()
}

/// The instant vector of a selector over the grid. With `timestamps`, each value is
/// the sample's own timestamp in seconds (for `timestamp()`).
pub fn instant(ev: &Evaluator, sel: &Selector, g: &Grid, timestamps: bool) -> Result<Vec<Series>> {
    instant_with(ev, sel, g, timestamps, !timestamps)
}

/// [`instant`]; without `need_values` the values are left unspecified (only whether a
/// series is present at a step is right, as `count` and `group` need), which spares
/// decoding them where the encoding allows.
pub fn instant_with(ev: &Evaluator, sel: &Selector, g: &Grid, timestamps: bool, need_values: bool) -> Result<Vec<Series>> {
    instant_blocks(ev, sel, g, timestamps, need_values, None)
}

/// [`instant_with`], handing the series to `sink` (if given) a block at a time.
pub fn instant_blocks(
    ev: &Evaluator,
    sel: &Selector,
    g: &Grid,
    timestamps: bool,
    need_values: bool,
    sink: Option<Sink<Series>>,
) -> Result<Vec<Series>> {
    let ends = ends(sel, g);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else { return Ok(vec![]) };
    let lookback = ev.opts.lookback_ms;
    let ordered = ends.windows(2).all(|w| w[0] <= w[1]);
    let picks = PerColumn::new();
    let pick = |ts: &Arc<[i64]>| picks.get(ts, |ts| Picks::new(ts, &ends, lookback, ordered));
    fetch_each_at(ev, sel, lo - lookback, hi, need_values, pick, |p, pick| {
        let vals = pick
            .per_step
            .iter()
            .map(|&j| {
                if j == NONE {
                    return None;
                }
                let j = j as usize;
                let v = p.vals[j];
                if is_stale(v) {
                    return None;
                }
                Some(if timestamps { p.ts[j] as f64 / 1000.0 } else { v })
            })
            .collect();
        Ok(Some(Series { labels: p.labels, vals }).filter(Series::any))
    }, sink)
}

/// The range argument of `sel[range]` over the grid.
pub fn range(ev: &Evaluator, sel: &Selector, range: i64, g: &Grid) -> Result<RangeArg> {
    let ends = ends(sel, g);
    let absent_labels = absent_labels(sel);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
        return Ok(RangeArg { series: vec![], range, ends, absent_labels });
    };
    let series = fetch_each(ev, sel, lo - range, hi, |p| Ok(without_stale(p.points())))?;
    Ok(RangeArg { series, range, ends, absent_labels })
}

/// `func(sel[range])` over the grid, each series' function values computed as soon as
/// its points are read (the raw points of all series are never held at once).
pub fn range_call(
    ev: &Evaluator,
    sel: &Selector,
    range: i64,
    g: &Grid,
    func: &str,
    scalars: &[Vec<f64>],
    evals: &[i64],
) -> Result<Vec<Series>> {
    range_call_blocks(ev, sel, range, g, func, scalars, evals, None)
}

/// [`range_call`], handing the series to `sink` (if given) a block at a time; two
/// series with the same labels are the same error either way.
#[allow(clippy::too_many_arguments)]
pub fn range_call_blocks(
    ev: &Evaluator,
    sel: &Selector,
    range: i64,
    g: &Grid,
    func: &str,
    scalars: &[Vec<f64>],
    evals: &[i64],
    sink: Option<Sink<Series>>,
) -> Result<Vec<Series>> {
    let ends = ends(sel, g);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else { return Ok(vec![]) };
    let f = RangeFn::new(func, range, &ends, scalars, evals)?;
    let windows = PerColumn::new();
    let each = |p: Raw, _: AllValues| {
        if any_stale(p.vals) {
            return match without_stale(p.points()) {
                Some(p) => f.series(&p.labels, &p.ts, &p.vals, None).map(Some),
                None => Ok(None),
            };
        }
        if p.ts.is_empty() {
            return Ok(None);
        }
        let w = windows.get(&p.ts, |ts| f.windows(ts));
        f.series(&p.labels, &p.ts, p.vals, Some(&w)).map(Some)
    };
    let Some(sink) = sink else {
        let out = fetch_each_at(ev, sel, lo - range, hi, true, |_| AllValues, each, None)?;
        return collide_strict(out);
    };
    let mut seen: hashbrown::HashSet<Labels> = hashbrown::HashSet::new();
    let mut checked = |mut block: Vec<Series>| -> Result<()> {
        block.retain(Series::any);
        for s in &block {
            if !seen.insert(s.labels.clone()) {
                return Err(super::exec_err(super::SAME_LABELSET));
            }
        }
        sink(block)
    };
    fetch_each_at(ev, sel, lo - range, hi, true, |_| AllValues, each, Some(&mut checked))
}

/// The points without staleness markers (range selectors skip them); `None` if none are left.
fn without_stale(mut p: Points) -> Option<Points> {
    if any_stale(&p.vals) {
        let (ts, vals): (Vec<i64>, Vec<f64>) =
            p.ts.iter().zip(&p.vals).filter(|(_, v)| !is_stale(**v)).map(|(t, v)| (*t, *v)).unzip();
        p.ts = ts;
        p.vals = vals;
    }
    Some(p).filter(|p| !p.ts.is_empty())
}

/// Labels `absent()` / `absent_over_time()` give their result: the `=` matchers,
/// except `__name__`, and except a label matched more than once or by another operator.
pub fn absent_labels(sel: &Selector) -> Labels {
    let mut out: Labels = vec![];
    let mut seen: Vec<&str> = vec![];
    for m in &sel.matchers {
        if m.name == super::value::NAME {
            continue;
        }
        if m.op == MatchOp::Eq && !seen.contains(&m.name.as_str()) {
            super::value::set(&mut out, &m.name, &m.value);
            seen.push(&m.name);
        } else {
            out.retain(|(n, _)| n != &m.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_stale_finds_a_marker_anywhere_and_only_markers() {
        let marker = f64::from_bits(STALE_NAN_BITS);
        for n in [0usize, 1, 63, 64, 65, 200] {
            let plain: Vec<f64> = (0..n).map(|i| if i % 7 == 3 { f64::NAN } else { i as f64 }).collect();
            assert!(!any_stale(&plain), "n {n}: an ordinary NaN is not a marker");
            for at in 0..n {
                let mut v = plain.clone();
                v[at] = marker;
                assert!(any_stale(&v), "n {n}, marker at {at}");
            }
        }
    }
}
