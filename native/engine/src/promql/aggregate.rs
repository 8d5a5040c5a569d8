//! Aggregation operators. Series are grouped once (labels do not change across
//! steps); each group is then folded step by step in input order, as Prometheus does.

use std::collections::HashMap;

use super::eval::Evaluator;
use super::expr::{AggOp, Grouping};
use super::functions::kahan_inc;
use super::quantile::quantile;
use super::value::{format_float, go_quote, set, Grid, Labels, Series, Value, NAME};
use super::exec_err;
use crate::error::{Error, Result};

/// The labels a series contributes to its group.
fn group_labels(labels: &Labels, grouping: &Grouping) -> Labels {
    match grouping {
        Grouping::By(names) => labels.iter().filter(|(n, _)| names.iter().any(|x| x == n)).cloned().collect(),
        Grouping::Without(names) => {
            labels.iter().filter(|(n, _)| n != NAME && !names.iter().any(|x| x == n)).cloned().collect()
        }
    }
}

/// Groups in order of first appearance: (labels, member indexes).
fn groups(series: &[Series], grouping: &Grouping) -> Vec<(Labels, Vec<usize>)> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<(Labels, Vec<usize>)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let key = group_labels(&s.labels, grouping);
        match index.get(&key) {
            Some(&gi) => out[gi].1.push(i),
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, vec![i]));
            }
        }
    }
    out
}

fn scalar_param(param: Option<Value>, op: AggOp) -> Result<Vec<f64>> {
    match param {
        Some(Value::Scalar(v)) => Ok(v),
        _ => Err(Error::bad_input(format!("{op:?} needs a scalar parameter"))),
    }
}

pub fn aggregate(
    ev: &Evaluator,
    op: AggOp,
    param: Option<Value>,
    input: Vec<Series>,
    grouping: &Grouping,
    g: &Grid,
) -> Result<Vec<Series>> {
    ev.check_deadline()?;
    match op {
        AggOp::Topk | AggOp::Bottomk => {
            let k = scalar_param(param, op)?;
            top_k(k, input, grouping, g, op == AggOp::Topk)
        }
        AggOp::CountValues => match param {
            Some(Value::String(label)) => count_values(&label, input, grouping, g),
            _ => Err(Error::bad_input("count_values needs a string parameter")),
        },
        _ => {
            let q = if op == AggOp::Quantile { scalar_param(param, op)? } else { vec![] };
            let mut out = Vec::new();
            let mut buf = Vec::new();
            for (labels, members) in groups(&input, grouping) {
                let vals = (0..g.len)
                    .map(|i| {
                        buf.clear();
                        buf.extend(members.iter().filter_map(|&m| input[m].vals[i]));
                        if buf.is_empty() {
                            None
                        } else {
                            Some(fold(op, &buf, q.get(i).copied().unwrap_or(f64::NAN)))
                        }
                    })
                    .collect();
                out.push(Series { labels, vals });
            }
            Ok(out)
        }
    }
}

/// One group at one step (values in input order, at least one).
fn fold(op: AggOp, vals: &[f64], q: f64) -> f64 {
    let first = vals[0];
    match op {
        AggOp::Sum => {
            let (mut sum, mut c) = (first, 0.0);
            for &v in &vals[1..] {
                (sum, c) = kahan_inc(v, sum, c);
            }
            sum + c
        }
        AggOp::Avg => {
            let (mut mean, mut count) = (first, 1.0);
            for &f in &vals[1..] {
                count += 1.0;
                if mean.is_infinite() {
                    if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                        continue;
                    }
                    if !f.is_infinite() && !f.is_nan() {
                        continue;
                    }
                }
                mean += f / count - mean / count;
            }
            mean
        }
        AggOp::Count => vals.len() as f64,
        AggOp::Group => 1.0,
        AggOp::Max => vals[1..].iter().fold(first, |m, &f| if m < f || m.is_nan() { f } else { m }),
        AggOp::Min => vals[1..].iter().fold(first, |m, &f| if m > f || m.is_nan() { f } else { m }),
        AggOp::Stddev | AggOp::Stdvar => {
            let (mut count, mut mean, mut acc) = (1.0, first, 0.0);
            for &f in &vals[1..] {
                count += 1.0;
                let delta = f - mean;
                mean += delta / count;
                acc += delta * (f - mean);
            }
            let var = acc / count;
            if op == AggOp::Stddev {
                var.sqrt()
            } else {
                var
            }
        }
        AggOp::Quantile => quantile(q, vals.to_vec()),
        AggOp::Topk | AggOp::Bottomk | AggOp::CountValues => f64::NAN,
    }
}

fn top_k(k: Vec<f64>, input: Vec<Series>, grouping: &Grouping, g: &Grid, top: bool) -> Result<Vec<Series>> {
    let groups = groups(&input, grouping);
    // selected[i] = for step i, the chosen (series index) per group in output order.
    let mut chosen: Vec<Vec<usize>> = Vec::with_capacity(g.len);
    let mut buf: Vec<(f64, usize)> = Vec::new();
    for i in 0..g.len {
        let kf = k[i];
        if !(kf <= i64::MAX as f64 && kf >= i64::MIN as f64) {
            return Err(exec_err(format!("Scalar value {} overflows int64", format_float(kf))));
        }
        let ki = kf as i64;
        let mut step = Vec::new();
        if ki >= 1 {
            for (_, members) in &groups {
                buf.clear();
                buf.extend(members.iter().filter_map(|&m| input[m].vals[i].map(|v| (v, m))));
                buf.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if top => b.0.partial_cmp(&a.0).unwrap(),
                    _ => a.0.partial_cmp(&b.0).unwrap(),
                });
                step.extend(buf.iter().take(ki.min(buf.len() as i64) as usize).map(|x| x.1));
            }
        }
        chosen.push(step);
    }
    if g.len == 1 {
        return Ok(chosen[0]
            .iter()
            .map(|&m| Series { labels: input[m].labels.clone(), vals: input[m].vals.clone() })
            .collect());
    }
    let mut keep: Vec<Vec<Option<f64>>> = input.iter().map(|_| vec![None; g.len]).collect();
    for (i, step) in chosen.iter().enumerate() {
        for &m in step {
            keep[m][i] = input[m].vals[i];
        }
    }
    Ok(input.into_iter().zip(keep).map(|(s, vals)| Series { labels: s.labels, vals }).collect())
}

fn valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn count_values(label: &str, input: Vec<Series>, grouping: &Grouping, g: &Grid) -> Result<Vec<Series>> {
    if !valid_label_name(label) {
        return Err(exec_err(format!("invalid label name {}", go_quote(label))));
    }
    let grouping = match grouping {
        Grouping::By(names) => {
            let mut names = names.clone();
            names.push(label.to_string());
            Grouping::By(names)
        }
        other => other.clone(),
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    for i in 0..g.len {
        for s in &input {
            let Some(v) = s.vals[i] else { continue };
            let mut labels = s.labels.clone();
            set(&mut labels, label, &format_float(v));
            let key = group_labels(&labels, &grouping);
            let idx = *index.entry(key.clone()).or_insert_with(|| {
                out.push(Series { labels: key, vals: vec![None; g.len] });
                out.len() - 1
            });
            let slot = &mut out[idx].vals[i];
            *slot = Some(slot.unwrap_or(0.0) + 1.0);
        }
    }
    Ok(out)
}
