//! Kernel tests against a memory store. Times are in ms; `load` writes one series
//! with a point every `step` ms starting at 0 (None = no point, like `_`).

use super::expr::*;
use super::value::Labels;
use super::*;
use crate::series::{MatchOp, Matcher};
use crate::store::{Store, StoreConfig};
use crate::STALE_NAN_BITS;

const M: i64 = 60_000;

fn store() -> Store {
    Store::open(StoreConfig::default()).unwrap().0
}

fn load(s: &Store, metric: &str, labels: &[(&str, &str)], step: i64, vals: &[Option<f64>]) {
    let l = s.labels(metric, labels).unwrap();
    let id = s.resolve(&l).unwrap();
    let (mut ids, mut ts, mut vs) = (vec![], vec![], vec![]);
    for (i, v) in vals.iter().enumerate() {
        if let Some(v) = v {
            ids.push(id);
            ts.push(i as i64 * step);
            vs.push(*v);
        }
    }
    s.write(&ids, &ts, &vs).unwrap();
}

/// `a+bxN` as in the test files.
fn series(a: f64, b: f64, n: usize) -> Vec<Option<f64>> {
    let mut out = vec![Some(a)];
    let mut v = a;
    for _ in 0..n {
        v += b;
        out.push(Some(v));
    }
    out
}

fn eq(name: &str, v: &str) -> Matcher {
    Matcher::new(name, MatchOp::Eq, v).unwrap()
}

fn name(n: &str) -> Matcher {
    eq("__name__", n)
}

fn sel(n: &str) -> Expr {
    Expr::selector(vec![name(n)])
}

fn at(s: &Store, e: &Expr, t: i64) -> Result<QueryValue> {
    evaluate(s, e, t, t, 1, &EvalOptions::default())
}

/// Instant vector at `t` as sorted (labels, value).
fn vec_at(s: &Store, e: &Expr, t: i64) -> Vec<(Labels, f64)> {
    match at(s, e, t).unwrap() {
        QueryValue::Vector(v) => {
            let mut out: Vec<(Labels, f64)> = v.into_iter().map(|s| (s.labels, s.vals[0].unwrap())).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    l.sort();
    l
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || ((a - b).abs() / (a.abs() + b.abs())) < 1e-9
}

fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary { op, lhs: Box::new(l), rhs: Box::new(r), return_bool: false, matching: None }
}

#[test]
fn promql_scalar_literal_and_arithmetic() {
    let s = store();
    let e = bin(BinOp::Add, Expr::Number(1.0), bin(BinOp::Mul, Expr::Number(2.0), Expr::Number(3.0)));
    assert_eq!(at(&s, &e, 0).unwrap(), QueryValue::Scalar(vec![7.0]));
    let e = bin(BinOp::Mod, Expr::Number(5.0), Expr::Number(0.0));
    match at(&s, &e, 0).unwrap() {
        QueryValue::Scalar(v) => assert!(v[0].is_nan()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn promql_lookback_is_closed_and_stale_marker_ends_series() {
    let s = store();
    load(&s, "m", &[], 10_000, &[Some(1.0)]);
    assert_eq!(vec_at(&s, &sel("m"), 300_000), vec![(lbl(&[("__name__", "m")]), 1.0)]);
    assert!(vec_at(&s, &sel("m"), 300_001).is_empty());
    load(&s, "st", &[], 10_000, &[Some(1.0), Some(f64::from_bits(STALE_NAN_BITS)), None, Some(3.0)]);
    assert_eq!(vec_at(&s, &sel("st"), 5_000), vec![(lbl(&[("__name__", "st")]), 1.0)]);
    assert!(vec_at(&s, &sel("st"), 15_000).is_empty(), "stale marker hides the older sample");
    assert_eq!(vec_at(&s, &sel("st"), 30_000)[0].1, 3.0);
}
