//! Functions over instant vectors and scalars (everything without a range argument).

use super::eval::{collide, Evaluator};
use super::expr::Expr;
use super::value::{drop_name, Grid, Series, Value};
use super::{dates, exec_err, labelfns, quantile, selector};
use crate::error::{Error, Result};

/// Neumaier's compensated summation step, as Prometheus's `kahanSumInc`.
#[inline]
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Go's `math.Max` (NaN wins, +Inf wins).
pub fn go_max(a: f64, b: f64) -> f64 {
    if a.is_infinite() && a > 0.0 || b.is_infinite() && b > 0.0 {
        return f64::INFINITY;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { b } else { a };
    }
    if a > b { a } else { b }
}

/// Go's `math.Min` (NaN wins, -Inf wins).
pub fn go_min(a: f64, b: f64) -> f64 {
    if a.is_infinite() && a < 0.0 || b.is_infinite() && b < 0.0 {
        return f64::NEG_INFINITY;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { a } else { b };
    }
    if a < b { a } else { b }
}

fn math_fn(func: &str) -> Option<fn(f64) -> f64> {
    Some(match func {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Applies `f(value, step)` to every present value, dropping `__name__`.
fn map_values(series: Vec<Series>, f: impl Fn(f64, usize) -> f64) -> Result<Value> {
    let mut out = series;
    for s in &mut out {
        drop_name(&mut s.labels);
        for (i, v) in s.vals.iter_mut().enumerate() {
            if let Some(x) = v {
                *x = f(*x, i);
            }
        }
    }
    Ok(Value::Vector(collide(out)?))
}

/// Evaluates a call without a range argument.
pub fn call(ev: &Evaluator, func: &str, args: &[Expr], g: &Grid) -> Result<Value> {
    if let Some(f) = math_fn(func) {
        return map_values(ev.vector(&args[0], g)?, |v, _| f(v));
    }
    if let Some(f) = dates::function(func) {
        if args.is_empty() {
            let vals = (0..g.len).map(|i| Some(f((g.t(i) / 1000) as f64))).collect();
            return Ok(Value::Vector(vec![Series { labels: vec![], vals }]));
        }
        return map_values(ev.vector(&args[0], g)?, |v, _| f(v));
    }
    match func {
        "time" => Ok(Value::Scalar((0..g.len).map(|i| g.t(i) as f64 / 1000.0).collect())),
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; g.len])),
        "vector" => {
            let s = ev.scalar(&args[0], g)?;
            Ok(Value::Vector(vec![Series { labels: vec![], vals: s.into_iter().map(Some).collect() }]))
        }
        "scalar" => {
            let series = ev.vector(&args[0], g)?;
            let vals = (0..g.len)
                .map(|i| {
                    let mut present = series.iter().filter_map(|s| s.vals[i]);
                    match (present.next(), present.next()) {
                        (Some(v), None) => v,
                        _ => f64::NAN,
                    }
                })
                .collect();
            Ok(Value::Scalar(vals))
        }
        "timestamp" => map_values(ev.vector(&args[0], g)?, |_, i| g.t(i) as f64 / 1000.0),
        "round" => {
            let series = ev.vector(&args[0], g)?;
            let to = match args.get(1) {
                Some(a) => ev.scalar(a, g)?,
                None => vec![1.0; g.len],
            };
            map_values(series, |v, i| {
                let inv = 1.0 / to[i];
                (v * inv + 0.5).floor() / inv
            })
        }
        "clamp" => {
            let series = ev.vector(&args[0], g)?;
            let (lo, hi) = (ev.scalar(&args[1], g)?, ev.scalar(&args[2], g)?);
            let mut out = series;
            for s in &mut out {
                for (i, v) in s.vals.iter_mut().enumerate() {
                    if hi[i] < lo[i] {
                        *v = None;
                    }
                }
            }
            map_values(out, |v, i| go_max(lo[i], go_min(hi[i], v)))
        }
        "clamp_min" => {
            let series = ev.vector(&args[0], g)?;
            let lo = ev.scalar(&args[1], g)?;
            map_values(series, |v, i| go_max(lo[i], v))
        }
        "clamp_max" => {
            let series = ev.vector(&args[0], g)?;
            let hi = ev.scalar(&args[1], g)?;
            map_values(series, |v, i| go_min(hi[i], v))
        }
        "sort" | "sort_desc" => {
            let mut series = ev.vector(&args[0], g)?;
            if g.len == 1 {
                let desc = func == "sort_desc";
                series.retain(Series::any);
                series.sort_by(|a, b| {
                    let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap(),
                        _ => x.partial_cmp(&y).unwrap(),
                    }
                });
            }
            Ok(Value::Vector(series))
        }
        "absent" => {
            let series = ev.vector(&args[0], g)?;
            let labels = match &args[0] {
                Expr::Vector(sel) => selector::absent_labels(sel),
                _ => vec![],
            };
            let vals = (0..g.len).map(|i| (!series.iter().any(|s| s.vals[i].is_some())).then_some(1.0)).collect();
            Ok(Value::Vector(vec![Series { labels, vals }]))
        }
        "label_replace" => {
            let series = ev.vector(&args[0], g)?;
            let s = |i: usize| string_arg(ev, &args[i], g);
            Ok(Value::Vector(collide(labelfns::label_replace(series, &s(1)?, &s(2)?, &s(3)?, &s(4)?)?)?))
        }
        "label_join" => {
            let series = ev.vector(&args[0], g)?;
            let dst = string_arg(ev, &args[1], g)?;
            let sep = string_arg(ev, &args[2], g)?;
            let srcs = args[3..].iter().map(|a| string_arg(ev, a, g)).collect::<Result<Vec<_>>>()?;
            Ok(Value::Vector(collide(labelfns::label_join(series, &dst, &sep, &srcs)?)?))
        }
        "histogram_quantile" => {
            let q = ev.scalar(&args[0], g)?;
            let series = ev.vector(&args[1], g)?;
            Ok(Value::Vector(collide(quantile::histogram_quantile(&q, series, g.len))?))
        }
        f if f.starts_with("histogram_") => {
            Err(exec_err(format!("function {f} is not supported yet: native histograms are not stored")))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut series = ev.vector(&args[0], g)?;
            let names = args[1..].iter().map(|a| string_arg(ev, a, g)).collect::<Result<Vec<_>>>()?;
            labelfns::sort_by_label(&mut series, &names, func == "sort_by_label_desc");
            Ok(Value::Vector(series))
        }
        other => Err(exec_err(format!("function {other} is not supported yet"))),
    }
}

fn string_arg(ev: &Evaluator, e: &Expr, g: &Grid) -> Result<String> {
    match ev.eval(e, g)? {
        Value::String(s) => Ok(s),
        _ => Err(Error::bad_input("expected a string argument")),
    }
}
