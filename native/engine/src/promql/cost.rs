//! Is a query small enough to evaluate on the calling thread?
//!
//! Handing a query to the query pool costs a thread wake-up and a wait for the answer
//! (tens of microseconds, and more when the cores are busy), which is most of the time
//! of a query over a handful of series. [`small_query`] bounds the work a query does
//! from metadata alone — the series its selectors match, the points stored in the
//! windows they read (whole overlapping chunks, as a read decodes them), and the output
//! steps — so that the caller can run the ones under a budget where it is, without
//! the hand-off.
//!
//! ```
//! use timeless_engine::promql::{cost, Expr};
//! use timeless_engine::series::{MatchOp, Matcher};
//! use timeless_engine::store::{Store, StoreConfig};
//!
//! let (store, _) = Store::open(StoreConfig::default()).unwrap();
//! let labels = store.labels("up", &[("job", "a")]).unwrap();
//! let id = store.resolve(&labels).unwrap();
//! store.write(&[id], &[1_000], &[1.0]).unwrap();
//! let e = Expr::selector(vec![Matcher::new("__name__", MatchOp::Eq, "up").unwrap()]);
//! assert!(cost::small_query(&store, &e, 0, 60_000, 15_000, 300_000, &cost::Budget::default()));
//! ```

use crate::store::Store;

use super::expr::{Expr, Selector};

/// What a query may cost to run on the calling thread.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Series matched by all selectors together.
    pub max_series: usize,
    /// Points read (upper bound) plus output steps times series plus index steps
    /// (`Store::select_bound`'s work).
    pub max_work: u64,
}

impl Default for Budget {
    /// About half a millisecond of evaluation and encoding on one core (a day of one
    /// series at 10 s, 8,640 points, is ~10k of work).
    fn default() -> Self {
        Budget { max_series: 64, max_work: 25_000 }
    }
}

/// True when every selector of `expr` is bounded and the whole query fits `budget`.
/// Subqueries are never small here (their cost depends on the inner expression at
/// every sub-step). `start`..`end` by `step` is the query's grid (instant: start = end).
pub fn small_query(store: &Store, expr: &Expr, start: i64, end: i64, step: i64, lookback: i64, budget: &Budget) -> bool {
    let steps = if step > 0 { ((end - start) / step + 1).max(1) as u64 } else { 1 };
    let mut left = Left { series: budget.max_series, work: budget.max_work };
    fits(store, expr, start, end, steps, lookback, &mut left)
}

struct Left {
    series: usize,
    work: u64,
}

fn fits(store: &Store, e: &Expr, start: i64, end: i64, steps: u64, lookback: i64, left: &mut Left) -> bool {
    match e {
        Expr::Number(_) | Expr::String(_) => true,
        Expr::Vector(sel) => selector_fits(store, sel, lookback, start, end, steps, left),
        Expr::Matrix { sel, range } => selector_fits(store, sel, *range, start, end, steps, left),
        Expr::Subquery { .. } => false,
        Expr::Call { args, .. } => args.iter().all(|a| fits(store, a, start, end, steps, lookback, left)),
        Expr::Aggregate { param, expr, .. } => {
            param.as_deref().is_none_or(|p| fits(store, p, start, end, steps, lookback, left))
                && fits(store, expr, start, end, steps, lookback, left)
        }
        Expr::Binary { lhs, rhs, .. } => {
            fits(store, lhs, start, end, steps, lookback, left) && fits(store, rhs, start, end, steps, lookback, left)
        }
        Expr::Neg(inner) => fits(store, inner, start, end, steps, lookback, left),
    }
}

/// A selector reading `window` ms before each step (the lookback, or a range).
fn selector_fits(store: &Store, sel: &Selector, window: i64, start: i64, end: i64, steps: u64, left: &mut Left) -> bool {
    let (start, end) = match sel.at {
        Some(at) => (at, at),
        None => (start, end),
    };
    // Bounded from the index's metadata first (no regex run, no postings read): a
    // selector over thousands of series, or whose matching alone would take long, is
    // refused without building its selection (the evaluation builds it again anyway).
    let bound = store.select_bound(&sel.matchers);
    if bound.ids > left.series as u64 || bound.work > left.work {
        return false;
    }
    left.work -= bound.work;
    let ids = store.select(&sel.matchers, None);
    if ids.len() > left.series {
        return false;
    }
    left.series -= ids.len();
    let output = steps.saturating_mul(ids.len() as u64);
    if output > left.work {
        return false;
    }
    left.work -= output;
    let (from, to) = (start.saturating_sub(sel.offset).saturating_sub(window), end.saturating_sub(sel.offset));
    match store.points_upper_bound(&ids, from, to, left.work) {
        Some(points) => {
            left.work -= points;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{MatchOp, Matcher};
    use crate::store::StoreConfig;

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher::new(name, MatchOp::Eq, value).unwrap()
    }

    /// 10 hosts x one metric, a day at 10 s (8,640 points each), half flushed to chunks.
    fn store() -> Store {
        let (store, _) = Store::open(StoreConfig::default()).unwrap();
        for h in 0..10 {
            let labels = store.labels("cpu", &[("host", &format!("h{h}"))]).unwrap();
            let id = store.resolve(&labels).unwrap();
            let ts: Vec<i64> = (0..8640).map(|k| k * 10_000).collect();
            let vals: Vec<f64> = (0..8640).map(|k| k as f64).collect();
            store.write(&vec![id; 4320], &ts[..4320], &vals[..4320]).unwrap();
            store.flush().unwrap();
            store.write(&vec![id; 4320], &ts[4320..], &vals[4320..]).unwrap();
        }
        store
    }

    #[test]
    fn cost_small_queries_are_few_series_and_points() {
        let s = store();
        let b = Budget::default();
        let day = 86_390_000;
        let one = Expr::selector(vec![eq("__name__", "cpu"), eq("host", "h1")]);
        let all = Expr::selector(vec![eq("__name__", "cpu")]);
        // instant: the head (4,320 points) and no chunk at the end of the day
        assert!(small_query(&s, &one, day, day, 1, 300_000, &b));
        // ten series: 10 x 4,320 buffered points are over the work budget
        assert!(!small_query(&s, &all, day, day, 1, 300_000, &b));
        // early in the day only the chunk (4,320 points) overlaps: ten series of it still too many
        assert!(!small_query(&s, &all, 60_000, 60_000, 1, 300_000, &b));
        // a whole day of one series at step 60 s: 8,640 points + 1,440 steps
        assert!(small_query(&s, &one, 0, day, 60_000, 300_000, &b));
        // same at step 1 s: 86,391 output steps
        assert!(!small_query(&s, &one, 0, day, 1_000, 300_000, &b));
        // a range function over one series, and aggregations and binary operations over it
        let rate = Expr::call("rate", vec![Expr::matrix(vec![eq("__name__", "cpu"), eq("host", "h1")], 300_000)]);
        assert!(small_query(&s, &rate, day, day, 1, 300_000, &b));
        let twice = Expr::Binary {
            op: crate::promql::BinOp::Add,
            lhs: Box::new(one.clone()),
            rhs: Box::new(rate.clone()),
            return_bool: false,
            matching: None,
        };
        assert!(small_query(&s, &twice, day, day, 1, 300_000, &b));
        // both sides count against one budget
        let tight = Budget { max_series: 64, max_work: 6_000 };
        assert!(small_query(&s, &one, day, day, 1, 300_000, &tight));
        assert!(!small_query(&s, &twice, day, day, 1, 300_000, &tight));
        // series budget
        assert!(!small_query(&s, &all, day, day, 1, 300_000, &Budget { max_series: 5, max_work: u64::MAX }));
        // bounded from the index before selecting: one series matches, but a regex is
        // not run for the bound, so the name's 10 series count against max_series 5
        let re = Expr::selector(vec![eq("__name__", "cpu"), Matcher::new("host", MatchOp::Re, "h1.*").unwrap()]);
        assert_eq!(s.select(&[eq("__name__", "cpu"), Matcher::new("host", MatchOp::Re, "h1.*").unwrap()], None).len(), 1);
        assert!(small_query(&s, &re, day, day, 1, 300_000, &b));
        assert!(!small_query(&s, &re, day, day, 1, 300_000, &Budget { max_series: 5, max_work: u64::MAX }));
        // subqueries never
        let sub = Expr::Subquery { expr: Box::new(one.clone()), range: 600_000, step: 60_000, offset: 0, at: None };
        assert!(!small_query(&s, &sub, day, day, 1, 300_000, &b));
        // nothing matched: nothing to read
        let none = Expr::selector(vec![eq("__name__", "nope")]);
        assert!(small_query(&s, &none, 0, day, 60_000, 300_000, &b));
    }
}
