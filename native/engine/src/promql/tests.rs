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

/// http_requests{job="api"|"db", instance="0"|"1"} 0+10x10, 0+20x10, ... every minute.
fn requests() -> Store {
    let s = store();
    let mut k = 1.0;
    for job in ["api", "db"] {
        for inst in ["0", "1"] {
            load(&s, "http_requests", &[("job", job), ("instance", inst)], M, &series(0.0, 10.0 * k, 10));
            k += 1.0;
        }
    }
    s
}

fn agg(op: AggOp, e: Expr, by: &[&str]) -> Expr {
    Expr::Aggregate {
        op,
        param: None,
        expr: Box::new(e),
        grouping: Grouping::By(by.iter().map(|s| s.to_string()).collect()),
    }
}

#[test]
fn promql_rate_extrapolation_and_counter_resets() {
    let s = store();
    // 0 10 20 ... with a reset to 0 after 50: increase over the window counts the reset.
    let vals: Vec<Option<f64>> = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 0.0, 10.0, 20.0].iter().map(|v| Some(*v)).collect();
    load(&s, "c", &[], M, &vals);
    let e = Expr::call("increase", vec![Expr::matrix(vec![name("c")], 5 * M)]);
    // Window [3m, 8m] holds 30 40 50 0 10 20: raw increase 40 (+50 for the reset) = 70... 
    // samples span the whole window, so no extrapolation: 20 - 30 + 50 = 40.
    let got = vec_at(&s, &e, 8 * M);
    assert_eq!(got.len(), 1);
    assert!(close(got[0].1, 40.0), "{got:?}");
    assert!(got[0].0.is_empty(), "rate drops the metric name");
    // Extrapolation by half an interval at the start when the series starts inside the window.
    let e = Expr::call("delta", vec![Expr::matrix(vec![name("c")], 5 * M - 30_000)]);
    let got = vec_at(&s, &e, 2 * M);
    // points 0,10,20 at 0..2m; window [-2.5m, 2m]: to_start 0s -> +avg/2 = 30s; factor (120+30)/120.
    assert!(close(got[0].1, 20.0 * 150.0 / 120.0), "{got:?}");
    // rate = increase / range seconds; a single point gives nothing.
    let e = Expr::call("rate", vec![Expr::matrix(vec![name("c")], 60_000)]);
    assert!(vec_at(&s, &e, 30_000).is_empty());
}

#[test]
fn promql_counter_zero_point_limits_extrapolation() {
    let s = store();
    load(&s, "z", &[], M, &[None, None, None, Some(0.5), Some(10.5), Some(20.5)]);
    let e = Expr::call("increase", vec![Expr::matrix(vec![name("z")], 10 * M)]);
    let got = vec_at(&s, &e, 5 * M);
    // sampled 120s; to_start would be avg/2 = 30s, but the zero point is 120 * 0.5/20 = 3s before 3m.
    assert!(close(got[0].1, 20.0 * 123.0 / 120.0), "{got:?}");
    // Without a zero point close by, half an interval is used.
    load(&s, "y", &[], M, &[None, None, None, Some(1.0), Some(2.0), Some(3.0)]);
    let e = Expr::call("increase", vec![Expr::matrix(vec![name("y")], 10 * M)]);
    assert!(close(vec_at(&s, &e, 5 * M)[0].1, 2.0 * 150.0 / 120.0));
}

#[test]
fn promql_offset_and_at_modifiers() {
    let s = requests();
    let mut sel = Selector { matchers: vec![name("http_requests"), eq("job", "api"), eq("instance", "0")], offset: 2 * M, at: None };
    assert_eq!(vec_at(&s, &Expr::Vector(sel.clone()), 5 * M)[0].1, 30.0);
    sel.offset = -2 * M;
    assert_eq!(vec_at(&s, &Expr::Vector(sel.clone()), 5 * M)[0].1, 70.0);
    sel.offset = 0;
    sel.at = Some(3 * M);
    let out = evaluate(&s, &Expr::Vector(sel.clone()), 0, 10 * M, M, &EvalOptions::default()).unwrap();
    match out {
        QueryValue::Vector(v) => assert!(v[0].vals.iter().all(|x| *x == Some(30.0))),
        other => panic!("{other:?}"),
    }
    sel.offset = M;
    assert_eq!(vec_at(&s, &Expr::Vector(sel), 9 * M)[0].1, 20.0, "@ 3m offset 1m reads 2m");
}

#[test]
fn promql_range_window_is_closed_on_both_ends() {
    let s = requests();
    let e = Expr::call("count_over_time", vec![Expr::matrix(vec![name("http_requests"), eq("job", "api"), eq("instance", "0")], 2 * M)]);
    assert_eq!(vec_at(&s, &e, 5 * M)[0].1, 3.0);
}

#[test]
fn promql_aggregations_group_and_fold() {
    let s = requests();
    let got = vec_at(&s, &agg(AggOp::Sum, sel("http_requests"), &["job"]), 5 * M);
    assert_eq!(got, vec![(lbl(&[("job", "api")]), 50.0 + 100.0), (lbl(&[("job", "db")]), 150.0 + 200.0)]);
    let got = vec_at(&s, &agg(AggOp::Avg, sel("http_requests"), &[]), 5 * M);
    assert_eq!(got, vec![(vec![], 125.0)]);
    let got = vec_at(&s, &agg(AggOp::Count, sel("http_requests"), &["instance"]), 5 * M);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![2.0, 2.0]);
    let without = Expr::Aggregate {
        op: AggOp::Max,
        param: None,
        expr: Box::new(sel("http_requests")),
        grouping: Grouping::Without(vec!["instance".into()]),
    };
    assert_eq!(vec_at(&s, &without, 5 * M), vec![(lbl(&[("job", "api")]), 100.0), (lbl(&[("job", "db")]), 200.0)]);
    let got = vec_at(&s, &agg(AggOp::Stddev, sel("http_requests"), &[]), 5 * M);
    assert!(close(got[0].1, (3125.0f64).sqrt()), "{got:?}");
}

#[test]
fn promql_sum_is_compensated() {
    let s = store();
    for (i, v) in [1e100, 1.0, -1e100, 1.0].iter().enumerate() {
        load(&s, "k", &[("i", &i.to_string())], M, &[Some(*v)]);
    }
    assert_eq!(vec_at(&s, &agg(AggOp::Sum, sel("k"), &[]), 0)[0].1, 2.0);
}

#[test]
fn promql_topk_orders_instant_results_and_ignores_nan_first() {
    let s = store();
    for (i, v) in [3.0, f64::NAN, 7.0, 5.0].iter().enumerate() {
        load(&s, "t", &[("i", &i.to_string())], M, &[Some(*v)]);
    }
    let e = Expr::Aggregate { op: AggOp::Topk, param: Some(Box::new(Expr::Number(2.0))), expr: Box::new(sel("t")), grouping: Grouping::By(vec![]) };
    match at(&s, &e, 0).unwrap() {
        QueryValue::Vector(v) => {
            let vals: Vec<f64> = v.iter().map(|s| s.vals[0].unwrap()).collect();
            assert_eq!(vals, vec![7.0, 5.0]);
            assert_eq!(super::value::get(&v[0].labels, "__name__"), "t", "topk keeps labels");
        }
        other => panic!("{other:?}"),
    }
    let e = Expr::Aggregate { op: AggOp::Bottomk, param: Some(Box::new(Expr::Number(10.0))), expr: Box::new(sel("t")), grouping: Grouping::By(vec![]) };
    match at(&s, &e, 0).unwrap() {
        QueryValue::Vector(v) => {
            let vals: Vec<f64> = v.iter().map(|s| s.vals[0].unwrap()).collect();
            assert_eq!(&vals[..3], &[3.0, 5.0, 7.0]);
            assert!(vals[3].is_nan());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn promql_count_values_and_quantile() {
    let s = store();
    for (i, v) in [1.0, 2.0, 2.0, 4.0].iter().enumerate() {
        load(&s, "q", &[("i", &i.to_string())], M, &[Some(*v)]);
    }
    let e = Expr::Aggregate {
        op: AggOp::CountValues,
        param: Some(Box::new(Expr::String("value".into()))),
        expr: Box::new(sel("q")),
        grouping: Grouping::By(vec![]),
    };
    assert_eq!(
        vec_at(&s, &e, 0),
        vec![(lbl(&[("value", "1")]), 1.0), (lbl(&[("value", "2")]), 2.0), (lbl(&[("value", "4")]), 1.0)]
    );
    let e = Expr::Aggregate { op: AggOp::Quantile, param: Some(Box::new(Expr::Number(0.5))), expr: Box::new(sel("q")), grouping: Grouping::By(vec![]) };
    assert_eq!(vec_at(&s, &e, 0)[0].1, 2.0);
}

#[test]
fn promql_vector_matching_one_to_one_and_group_left() {
    let s = requests();
    load(&s, "info", &[("job", "api"), ("owner", "ann")], M, &series(1.0, 0.0, 10));
    // Same label sets on both sides: one-to-one, name dropped.
    let e = bin(BinOp::Div, sel("http_requests"), sel("http_requests"));
    let got = vec_at(&s, &e, 5 * M);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|(l, v)| *v == 1.0 && super::value::get(l, "__name__").is_empty()));
    // group_left pulls `owner` from the one side.
    let e = Expr::Binary {
        op: BinOp::Mul,
        lhs: Box::new(sel("http_requests")),
        rhs: Box::new(sel("info")),
        return_bool: false,
        matching: Some(Matching { card: Card::ManyToOne, on: true, labels: vec!["job".into()], include: vec!["owner".into()] }),
    };
    let got = vec_at(&s, &e, 5 * M);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(l, _)| super::value::get(l, "owner") == "ann"));
}

#[test]
fn promql_vector_matching_errors() {
    let s = requests();
    let on_job = Matching { card: Card::OneToOne, on: true, labels: vec!["job".into()], include: vec![] };
    let e = Expr::Binary { op: BinOp::Add, lhs: Box::new(sel("http_requests")), rhs: Box::new(sel("http_requests")), return_bool: false, matching: Some(on_job) };
    let err = at(&s, &e, 5 * M).unwrap_err();
    assert_eq!(err.kind, crate::ErrorKind::LimitExceeded);
    assert!(err.message.starts_with("found duplicate series for the match group {job=\"api\"} on the right hand-side"), "{}", err.message);
    assert!(err.message.ends_with("many-to-many matching not allowed: matching labels must be unique on one side"));
    // Dropping the name makes two series collide.
    load(&s, "other", &[("job", "api"), ("instance", "0")], M, &series(1.0, 0.0, 10));
    let e = Expr::Neg(Box::new(Expr::selector(vec![Matcher::new("__name__", MatchOp::Re, "other|http_requests").unwrap()])));
    assert_eq!(at(&s, &e, 5 * M).unwrap_err().message, SAME_LABELSET);
}

#[test]
fn promql_comparisons_filter_or_return_bool() {
    let s = requests();
    let e = bin(BinOp::Gt, sel("http_requests"), Expr::Number(100.0));
    let got = vec_at(&s, &e, 5 * M);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![150.0, 200.0]);
    assert_eq!(super::value::get(&got[0].0, "__name__"), "http_requests", "filters keep the name");
    let e = Expr::Binary { op: BinOp::Gt, lhs: Box::new(sel("http_requests")), rhs: Box::new(Expr::Number(100.0)), return_bool: true, matching: None };
    let got = vec_at(&s, &e, 5 * M);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![0.0, 1.0, 0.0, 1.0]);
    // scalar < vector keeps the vector's value.
    let e = bin(BinOp::Lt, Expr::Number(100.0), sel("http_requests"));
    assert_eq!(vec_at(&s, &e, 5 * M).iter().map(|g| g.1).collect::<Vec<_>>(), vec![150.0, 200.0]);
}

#[test]
fn promql_set_operators() {
    let s = requests();
    let api = Expr::selector(vec![name("http_requests"), eq("job", "api")]);
    let inst0 = Expr::selector(vec![name("http_requests"), eq("instance", "0")]);
    let set = |op| Expr::Binary {
        op,
        lhs: Box::new(api.clone()),
        rhs: Box::new(inst0.clone()),
        return_bool: false,
        matching: Some(Matching { card: Card::ManyToMany, ..Matching::default() }),
    };
    assert_eq!(vec_at(&s, &set(BinOp::And), 5 * M).len(), 1);
    assert_eq!(vec_at(&s, &set(BinOp::Or), 5 * M).len(), 3);
    assert_eq!(vec_at(&s, &set(BinOp::Unless), 5 * M).len(), 1);
}

#[test]
fn promql_subquery_steps_align_to_absolute_time() {
    let s = requests();
    let inner = Expr::selector(vec![name("http_requests"), eq("job", "api"), eq("instance", "0")]);
    let sq = Expr::Subquery { expr: Box::new(inner), range: 5 * M, step: 2 * M, offset: 0, at: None };
    // At 5m30s the window [0m30s, 5m30s] holds steps 2m and 4m.
    let e = Expr::call("count_over_time", vec![sq.clone()]);
    assert_eq!(vec_at(&s, &e, 5 * M + 30_000)[0].1, 2.0);
    let e = Expr::call("sum_over_time", vec![sq]);
    assert_eq!(vec_at(&s, &e, 5 * M + 30_000)[0].1, 20.0 + 40.0);
}

#[test]
fn promql_functions_over_instant_vectors() {
    let s = store();
    load(&s, "f", &[("a", "x-1")], M, &[Some(-2.5)]);
    assert_eq!(vec_at(&s, &Expr::call("abs", vec![sel("f")]), 0)[0].1, 2.5);
    assert_eq!(vec_at(&s, &Expr::call("ceil", vec![sel("f")]), 0)[0].1, -2.0);
    assert_eq!(vec_at(&s, &Expr::call("round", vec![sel("f")]), 0)[0].1, -2.0);
    let clamp = Expr::call("clamp", vec![sel("f"), Expr::Number(-1.0), Expr::Number(1.0)]);
    assert_eq!(vec_at(&s, &clamp, 0)[0].1, -1.0);
    let clamp = Expr::call("clamp", vec![sel("f"), Expr::Number(1.0), Expr::Number(-1.0)]);
    assert!(vec_at(&s, &clamp, 0).is_empty(), "max < min gives nothing");
    let lr = Expr::call(
        "label_replace",
        vec![sel("f"), Expr::String("b".into()), Expr::String("$1".into()), Expr::String("a".into()), Expr::String("x-(.*)".into())],
    );
    assert_eq!(super::value::get(&vec_at(&s, &lr, 0)[0].0, "b"), "1");
    let bad = Expr::call(
        "label_replace",
        vec![sel("f"), Expr::String("b".into()), Expr::String("".into()), Expr::String("a".into()), Expr::String("(.*".into())],
    );
    assert!(at(&s, &bad, 0).unwrap_err().message.starts_with("invalid regular expression in label_replace()"));
    let absent = Expr::call("absent", vec![Expr::selector(vec![name("nope"), eq("job", "j")])]);
    assert_eq!(vec_at(&s, &absent, 0), vec![(lbl(&[("job", "j")]), 1.0)]);
    assert!(vec_at(&s, &Expr::call("absent", vec![sel("f")]), 0).is_empty());
    let ts = Expr::call("timestamp", vec![sel("f")]);
    assert_eq!(vec_at(&s, &ts, 2 * M)[0].1, 0.0, "timestamp() of a selector is the sample's time");
    match at(&s, &Expr::call("scalar", vec![sel("f")]), 0).unwrap() {
        QueryValue::Scalar(v) => assert_eq!(v, vec![-2.5]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn promql_range_functions() {
    let s = store();
    let vals: Vec<Option<f64>> = [1.0, 3.0, 2.0, 2.0, 5.0].iter().map(|v| Some(*v)).collect();
    load(&s, "g", &[], M, &vals);
    let f = |func: &str| vec_at(&s, &Expr::call(func, vec![Expr::matrix(vec![name("g")], 4 * M)]), 4 * M)[0].1;
    assert_eq!(f("resets"), 1.0);
    assert_eq!(f("changes"), 3.0);
    assert_eq!(f("max_over_time"), 5.0);
    assert_eq!(f("min_over_time"), 1.0);
    assert_eq!(f("sum_over_time"), 13.0);
    assert!(close(f("avg_over_time"), 2.6));
    assert_eq!(f("last_over_time"), 5.0);
    assert_eq!(f("idelta"), 3.0);
    assert!(close(f("irate"), 3.0 / 60.0));
    assert!(close(f("stdvar_over_time"), 1.84));
    let q = Expr::call("quantile_over_time", vec![Expr::Number(0.5), Expr::matrix(vec![name("g")], 4 * M)]);
    assert_eq!(vec_at(&s, &q, 4 * M)[0].1, 2.0);
    let pl = Expr::call("predict_linear", vec![Expr::matrix(vec![name("g")], 4 * M), Expr::Number(60.0)]);
    let d = vec_at(&s, &Expr::call("deriv", vec![Expr::matrix(vec![name("g")], 4 * M)]), 4 * M)[0].1;
    assert!(close(d, 0.01166666666666667), "{d}");
    assert!(vec_at(&s, &pl, 4 * M)[0].1 > 4.0);
    let hw = Expr::call("holt_winters", vec![Expr::matrix(vec![name("g")], 4 * M), Expr::Number(1.5), Expr::Number(0.5)]);
    assert!(at(&s, &hw, 4 * M).unwrap_err().message.starts_with("invalid smoothing factor"));
    let aot = Expr::call("absent_over_time", vec![Expr::matrix(vec![name("g")], M)]);
    assert!(vec_at(&s, &aot, 4 * M).is_empty());
    assert_eq!(vec_at(&s, &aot, 10 * M), vec![(vec![], 1.0)]);
}

#[test]
fn promql_histogram_quantile_over_le_buckets() {
    let s = store();
    for (le, v) in [("0.1", 10.0), ("0.5", 50.0), ("1", 90.0), ("+Inf", 100.0)] {
        load(&s, "h_bucket", &[("le", le)], M, &[Some(v)]);
    }
    let e = Expr::call("histogram_quantile", vec![Expr::Number(0.5), sel("h_bucket")]);
    assert_eq!(vec_at(&s, &e, 0), vec![(vec![], 0.5)]);
    let e = Expr::call("histogram_quantile", vec![Expr::Number(0.99), sel("h_bucket")]);
    assert_eq!(vec_at(&s, &e, 0)[0].1, 1.0, "the +Inf bucket answers the bound below it");
}

#[test]
fn promql_limits_and_deadline() {
    let s = requests();
    let opts = EvalOptions { max_samples: 3, ..EvalOptions::default() };
    let err = evaluate(&s, &sel("http_requests"), 0, 0, 1, &opts).unwrap_err();
    assert_eq!(err.message, TOO_MANY_SAMPLES);
    let opts = EvalOptions { deadline: Some(std::time::Instant::now()), ..EvalOptions::default() };
    std::thread::sleep(std::time::Duration::from_millis(2));
    let err = evaluate(&s, &sel("http_requests"), 0, 0, 1, &opts).unwrap_err();
    assert_eq!(err.kind, crate::ErrorKind::Timeout);
    assert!(matches!(evaluate(&s, &sel("x"), 0, 0, 0, &EvalOptions::default()).unwrap_err().kind, crate::ErrorKind::BadInput));
}

#[test]
fn promql_range_query_sorts_and_instant_matrix_returns_points() {
    let s = requests();
    let opts = EvalOptions { range_query: true, ..EvalOptions::default() };
    match evaluate(&s, &sel("http_requests"), 0, 2 * M, M, &opts).unwrap() {
        QueryValue::Vector(v) => {
            let labels: Vec<_> = v.iter().map(|s| s.labels.clone()).collect();
            let mut sorted = labels.clone();
            sorted.sort();
            assert_eq!(labels, sorted);
            assert_eq!(v[0].vals, vec![Some(0.0), Some(10.0), Some(20.0)]);
        }
        other => panic!("{other:?}"),
    }
    let m = Expr::matrix(vec![name("http_requests"), eq("job", "api"), eq("instance", "0")], 2 * M);
    match at(&s, &m, 3 * M).unwrap() {
        QueryValue::Matrix(p) => assert_eq!(p[0].ts, vec![M, 2 * M, 3 * M]),
        other => panic!("{other:?}"),
    }
    assert!(evaluate(&s, &m, 0, M, M, &opts).is_err(), "a range query cannot return a range vector");
}

#[test]
fn sweep_windows_equal_binary_searched_windows() {
    use super::value::{Points, Sweep};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..200 {
        let mut t = rng.gen_range(-50..50);
        let ts: Vec<i64> = (0..rng.gen_range(0..60)).map(|_| { t += rng.gen_range(1..20); t }).collect();
        let p = Points { labels: vec![], vals: vec![0.0; ts.len()], ts };
        let range = rng.gen_range(0..100);
        let mut sweep = Sweep::default();
        let mut end = rng.gen_range(-100..0);
        for _ in 0..80 {
            end += rng.gen_range(0..40);
            assert_eq!(sweep.window(&p.ts, end - range, end), p.window(end - range, end), "{:?} [{}, {end}]", p.ts, end - range);
        }
    }
}

/// The shared-timestamp fast paths (per-step sample picks and windows computed once per
/// timestamp column) give what the per-series definitions give: series flushed together
/// (shared columns), with jitter, gaps, staleness markers, points left in the head, and
/// a grid that starts before and ends after the data.
#[test]
fn promql_shared_timestamp_paths_match_per_series_reference() {
    use super::rangefns::RangeFn;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let s = store();
    let n_series = 40;
    let common: Vec<i64> = (0..400).map(|i| i * 15_000 + rng.gen_range(0..3)).collect();
    for k in 0..n_series {
        let l = s.labels("m", &[("k", &k.to_string())]).unwrap();
        let id = s.resolve(&l).unwrap();
        let kind = k % 5;
        let mut ts = match kind {
            // own jittered timestamps
            3 => (0..400).map(|i| i * 15_000 + rng.gen_range(0..7_000)).collect(),
            _ => common.clone(),
        };
        if kind == 4 {
            // a gap longer than the lookback
            ts.retain(|&t| !(1_000_000..1_900_000).contains(&t));
        }
        let mut v = 0.0;
        let vals: Vec<f64> = ts
            .iter()
            .map(|_| {
                v += rng.gen_range(0..100) as f64 / 10.0;
                if kind == 2 && rng.gen_range(0..20) == 0 {
                    f64::from_bits(STALE_NAN_BITS)
                } else if kind == 1 && rng.gen_range(0..50) == 0 {
                    v / 3.0 // a counter reset
                } else {
                    v
                }
            })
            .collect();
        s.write(&vec![id; ts.len()], &ts, &vals).unwrap();
    }
    s.flush().unwrap();
    // A few series get more points in the head, after and among the flushed ones.
    for k in [0, 7] {
        let l = s.labels("m", &[("k", &k.to_string())]).unwrap();
        let id = s.resolve(&l).unwrap();
        let ts = [5_000_000i64, 6_100_001, 6_200_000];
        s.write(&[id; 3], &ts, &[1.0, 2.0, 3.0]).unwrap();
    }
    // Series flushed with the same timestamps share one column (the fast path is taken).
    {
        let memo = crate::chunk::TsMemo::default();
        let id = |k: usize| s.resolve(&s.labels("m", &[("k", &k.to_string())]).unwrap()).unwrap();
        let mut buf = vec![];
        let a = s.read_columns(id(5), 0, 3_000_000, &memo, &mut buf);
        let b = s.read_columns(id(10), 0, 3_000_000, &memo, &mut buf);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!((&a[..], &buf[..]), (&s.read(id(10), 0, 3_000_000).0[..], &s.read(id(10), 0, 3_000_000).1[..]));
    }
    let (start, end, step) = (-200_000, 6_500_000, 60_000);
    let g = Grid::new(start, end, step);
    let opts = EvalOptions { range_query: true, ..EvalOptions::default() };
    let ids = s.select(&[name("m")], None);
    let is_stale = |v: f64| v.to_bits() == STALE_NAN_BITS;
    let labels_of = |id| s.with_series_pairs(id, |p| p.map(|(n, v)| (n.to_string(), v.to_string())).collect::<Labels>()).unwrap();
    // instant selector
    let QueryValue::Vector(got) = evaluate(&s, &sel("m"), start, end, step, &opts).unwrap() else { panic!() };
    let mut want = vec![];
    for &id in &ids {
        let (ts, vs) = s.read(id, i64::MIN / 2, i64::MAX / 2);
        let vals: Vec<Option<f64>> = (0..g.len)
            .map(|i| {
                let e = g.t(i);
                let n = ts.partition_point(|&t| t <= e);
                (n > 0 && ts[n - 1] >= e - 300_000 && !is_stale(vs[n - 1])).then(|| vs[n - 1])
            })
            .collect();
        if vals.iter().any(Option::is_some) {
            want.push(Series { labels: labels_of(id), vals });
        }
    }
    want.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a.labels, b.labels);
        let bits = |v: &[Option<f64>]| v.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
        assert_eq!(bits(&a.vals), bits(&b.vals), "{:?}", a.labels);
    }
    // count and timestamp() need presence only (values not decoded)
    let e = Expr::Aggregate { op: AggOp::Count, param: None, expr: Box::new(sel("m")), grouping: Grouping::By(vec![]) };
    let QueryValue::Vector(c) = evaluate(&s, &e, start, end, step, &opts).unwrap() else { panic!() };
    let counts: Vec<Option<f64>> = (0..g.len)
        .map(|i| {
            let n = want.iter().filter(|s| s.vals[i].is_some()).count();
            (n > 0).then_some(n as f64)
        })
        .collect();
    assert_eq!(c[0].vals, counts);
    let e = Expr::call("timestamp", vec![sel("m")]);
    let QueryValue::Vector(t) = evaluate(&s, &e, start, end, step, &opts).unwrap() else { panic!() };
    assert_eq!(t.len(), want.len());
    for (a, b) in t.iter().zip(&want) {
        let present = |v: &[Option<f64>]| v.iter().map(Option::is_some).collect::<Vec<_>>();
        assert_eq!(present(&a.vals), present(&b.vals));
    }
    // range functions
    for func in ["rate", "increase", "delta", "avg_over_time", "count_over_time", "max_over_time", "last_over_time"] {
        let range = 300_000;
        let e = Expr::call(func, vec![Expr::matrix(vec![name("m")], range)]);
        let QueryValue::Vector(got) = evaluate(&s, &e, start, end, step, &opts).unwrap() else { panic!() };
        let ends: Vec<i64> = (0..g.len).map(|i| g.t(i)).collect();
        let f = RangeFn::new(func, range, &ends, &[], &ends).unwrap();
        let mut want = vec![];
        for &id in &ids {
            let (ts, vs) = s.read(id, i64::MIN / 2, i64::MAX / 2);
            let (ts, vs): (Vec<i64>, Vec<f64>) = ts.iter().zip(&vs).filter(|(_, v)| !is_stale(**v)).map(|(t, v)| (*t, *v)).unzip();
            let out = f.series(&labels_of(id), &ts, &vs, None).unwrap();
            if out.any() {
                want.push(out);
            }
        }
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(got.len(), want.len(), "{func}");
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.labels, b.labels);
            let bits = |v: &[Option<f64>]| v.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
            assert_eq!(bits(&a.vals), bits(&b.vals), "{func} {:?}", a.labels);
        }
    }
}

/// Aggregations folded block by block as a selector reads its series give what the
/// aggregation of the whole input vector gives, bit for bit (the input made opaque to
/// the streaming path by a double negation, which changes no value).
#[test]
fn promql_streamed_aggregation_matches_whole_vector_aggregation() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let s = store();
    for k in 0..300 {
        let l = s.labels("m", &[("g", &(k % 3).to_string()), ("k", &k.to_string())]).unwrap();
        let id = s.resolve(&l).unwrap();
        let mut v = rng.gen_range(0..1000) as f64;
        let (mut ts, mut vals) = (vec![], vec![]);
        for i in 0..200i64 {
            if rng.gen_range(0..10) == 0 {
                continue;
            }
            v += rng.gen_range(0..1000) as f64 / 7.0;
            ts.push(i * 15_000 + (k as i64 % 4));
            vals.push(match rng.gen_range(0..60) {
                0 => f64::from_bits(STALE_NAN_BITS),
                1 => f64::NAN,
                2 => 1e300,
                _ => v,
            });
        }
        s.write(&vec![id; ts.len()], &ts, &vals).unwrap();
        if k % 2 == 0 {
            s.flush().unwrap();
        }
    }
    let opts = EvalOptions { range_query: true, ..EvalOptions::default() };
    let bits = |q: QueryValue| match q {
        QueryValue::Vector(v) => v.into_iter().map(|s| (s.labels, s.vals.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>())).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let neg2 = |e: Expr| Expr::Neg(Box::new(Expr::Neg(Box::new(e))));
    let rate = || Expr::call("rate", vec![Expr::matrix(vec![name("m")], 300_000)]);
    for op in [AggOp::Sum, AggOp::Avg, AggOp::Count, AggOp::Group, AggOp::Min, AggOp::Max, AggOp::Stddev, AggOp::Stdvar] {
        for by in [vec![], vec!["g"], vec!["k"]] {
            for inner in [sel("m"), rate()] {
                let direct = agg(op, inner.clone(), &by);
                let whole = agg(op, neg2(inner.clone()), &by);
                let a = bits(evaluate(&s, &direct, 0, 3_000_000, 30_000, &opts).unwrap());
                let b = bits(evaluate(&s, &whole, 0, 3_000_000, 30_000, &opts).unwrap());
                assert!(!a.is_empty());
                assert_eq!(a, b, "{op:?} by {by:?} {inner:?}");
            }
        }
    }
}
