//! Selectors: each selected series' raw points are read once for the whole grid,
//! then every step is answered from them.
//!
//! * Instant selector at time `e` (step time minus offset, or the `@` time minus
//!   offset): the newest sample in the closed window `[e - lookback, e]`, unless
//!   that sample is a staleness marker (then the series is absent at that step).
//! * Range selector: the samples in the closed window `[e - range, e]` (Prometheus
//!   2.x; 3.x made it left-open), staleness markers dropped.

use rayon::prelude::*;

use super::eval::{collide_strict, Evaluator};
use super::rangefns::RangeFn;
use super::expr::Selector;
use super::value::{Grid, Labels, Points, RangeArg, Series, Sweep};
use crate::error::Result;
use crate::series::MatchOp;
use crate::chunk::TsMemo;
use crate::store::pool;
use crate::STALE_NAN_BITS;

/// Window end per grid step.
pub fn ends(sel: &Selector, g: &Grid) -> Vec<i64> {
    (0..g.len).map(|i| sel.at.unwrap_or_else(|| g.t(i)) - sel.offset).collect()
}

fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Every series matching the selector with its points in `[from, to]`, each handed to
/// `f` as soon as it is read (in parallel; the raw points of all series are never held
/// at once unless `f` keeps them). Results keep the series order.
fn fetch_each<T: Send>(
    ev: &Evaluator,
    sel: &Selector,
    from: i64,
    to: i64,
    f: impl Fn(Points) -> Result<Option<T>> + Sync,
) -> Result<Vec<T>> {
    let ids = ev.store.select(&sel.matchers, Some((from, to)));
    let memo = TsMemo::default();
    let out: Result<Vec<Option<T>>> = pool().install(|| {
        ids.par_iter()
            .map(|&id| {
                ev.check_deadline()?;
                let (ts, vals) = ev.store.read_shared(id, from, to, Some(&memo));
                ev.account(ts.len())?;
                let Some(labels) = ev.store.with_series_pairs(id, |pairs| {
                    pairs.map(|(n, v)| (n.to_string(), v.to_string())).collect::<Labels>()
                }) else {
                    return Ok(None);
                };
                f(Points { labels, ts, vals })
            })
            .collect()
    });
    Ok(out?.into_iter().flatten().collect())
}

/// The instant vector of a selector over the grid. With `timestamps`, each value is
/// the sample's own timestamp in seconds (for `timestamp()`).
pub fn instant(ev: &Evaluator, sel: &Selector, g: &Grid, timestamps: bool) -> Result<Vec<Series>> {
    let ends = ends(sel, g);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else { return Ok(vec![]) };
    let lookback = ev.opts.lookback_ms;
    let ordered = ends.windows(2).all(|w| w[0] <= w[1]);
    fetch_each(ev, sel, lo - lookback, hi, |p| {
        let mut sweep = Sweep::default();
        let vals = ends
            .iter()
            .map(|&e| {
                // n: the number of points at or before e
                let n = if ordered { sweep.upto(&p.ts, e) } else { p.ts.partition_point(|&t| t <= e) };
                if n == 0 || p.ts[n - 1] < e - lookback || is_stale(p.vals[n - 1]) {
                    return None;
                }
                Some(if timestamps { p.ts[n - 1] as f64 / 1000.0 } else { p.vals[n - 1] })
            })
            .collect();
        Ok(Some(Series { labels: p.labels, vals }).filter(Series::any))
    })
}

/// The range argument of `sel[range]` over the grid.
pub fn range(ev: &Evaluator, sel: &Selector, range: i64, g: &Grid) -> Result<RangeArg> {
    let ends = ends(sel, g);
    let absent_labels = absent_labels(sel);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
        return Ok(RangeArg { series: vec![], range, ends, absent_labels });
    };
    let series = fetch_each(ev, sel, lo - range, hi, |p| Ok(without_stale(p)))?;
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
    let ends = ends(sel, g);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else { return Ok(vec![]) };
    let f = RangeFn::new(func, range, &ends, scalars, evals)?;
    let out = fetch_each(ev, sel, lo - range, hi, |p| match without_stale(p) {
        Some(p) => f.series(&p).map(Some),
        None => Ok(None),
    })?;
    collide_strict(out)
}

/// The points without staleness markers (range selectors skip them); `None` if none are left.
fn without_stale(mut p: Points) -> Option<Points> {
    if p.vals.iter().any(|&v| is_stale(v)) {
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
