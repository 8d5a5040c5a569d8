//! Aggregation operators. Series are grouped once (labels do not change across
//! steps); each group is then folded step by step in input order, as Prometheus does.

use hashbrown::HashMap;

use rayon::prelude::*;

use super::eval::Evaluator;
use super::expr::{AggOp, Grouping};
use super::functions::kahan_inc;
use super::quantile::quantile_in_place;
use super::value::{format_float, go_quote, set, Grid, Labels, Series, Value, NAME};
use super::exec_err;
use crate::error::{Error, Result};
use crate::store::pool;

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
        AggOp::Quantile => {
            let q = scalar_param(param, op)?;
            let mut out = Vec::new();
            let mut buf = Vec::new();
            for (labels, members) in groups(&input, grouping) {
                let vals = (0..g.len)
                    .map(|i| {
                        buf.clear();
                        buf.extend(members.iter().filter_map(|&m| input[m].vals[i]));
                        (!buf.is_empty()).then(|| quantile_in_place(q[i], &mut buf))
                    })
                    .collect();
                out.push(Series { labels, vals });
            }
            Ok(out)
        }
        _ => {
            let groups = groups(&input, grouping);
            // Many groups (max by hostname): in parallel across groups, each folded on
            // one thread. Few groups (sum by region): each group's steps in parallel.
            if groups.len() >= 2 * pool().current_num_threads() {
                Ok(pool().install(|| {
                    groups
                        .into_par_iter()
                        .map(|(labels, members)| Series { labels, vals: fold_group(op, &input, &members, g.len, false) })
                        .collect()
                }))
            } else {
                Ok(groups
                    .into_iter()
                    .map(|(labels, members)| Series { labels, vals: fold_group(op, &input, &members, g.len, true) })
                    .collect())
            }
        }
    }
}

/// Steps per parallel task of [`fold_group`].
const STEPS_PER_TASK: usize = 256;

/// Folds a group's members step by step, series-major: each member's values are walked
/// once, front to back, into one accumulator per step (in member order, so every step
/// sees its values in input order, as Prometheus folds them). Blocks of steps run in
/// parallel when `parallel`.
fn fold_group(op: AggOp, input: &[Series], members: &[usize], steps: usize, parallel: bool) -> Vec<Option<f64>> {
    let mut acc = vec![Acc::default(); steps];
    let fold_block = |(block, accs): (usize, &mut [Acc])| {
        let base = block * STEPS_PER_TASK;
        for &m in members {
            let vals = &input[m].vals[base..base + accs.len()];
            for (a, v) in accs.iter_mut().zip(vals) {
                if let Some(v) = *v {
                    a.add(op, v);
                }
            }
        }
    };
    if parallel {
        pool().install(|| acc.par_chunks_mut(STEPS_PER_TASK).enumerate().for_each(fold_block));
    } else {
        acc.chunks_mut(STEPS_PER_TASK).enumerate().for_each(fold_block);
    }
    acc.into_iter().map(|a| a.result(op)).collect()
}

/// Running state of one group at one step: `n` values seen; `a`, `b`, `c` per operator
/// (sum: Kahan sum and compensation; avg: mean; min/max: the extreme; stddev/stdvar:
/// Welford's mean and sum of squared deviations).
#[derive(Clone, Copy, Default)]
struct Acc {
    n: f64,
    a: f64,
    b: f64,
}

impl Acc {
    #[inline]
    fn add(&mut self, op: AggOp, f: f64) {
        if self.n == 0.0 {
            *self = Acc { n: 1.0, a: f, b: 0.0 };
            return;
        }
        self.n += 1.0;
        match op {
            AggOp::Sum => (self.a, self.b) = kahan_inc(f, self.a, self.b),
            AggOp::Avg => {
                let (mean, count) = (self.a, self.n);
                if mean.is_infinite() {
                    if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                        return;
                    }
                    if !f.is_infinite() && !f.is_nan() {
                        return;
                    }
                }
                self.a = mean + (f / count - mean / count);
            }
            AggOp::Max => {
                if self.a < f || self.a.is_nan() {
                    self.a = f
                }
            }
            AggOp::Min => {
                if self.a > f || self.a.is_nan() {
                    self.a = f
                }
            }
            AggOp::Stddev | AggOp::Stdvar => {
                let delta = f - self.a;
                self.a += delta / self.n;
                self.b += delta * (f - self.a);
            }
            _ => {}
        }
    }

    fn result(self, op: AggOp) -> Option<f64> {
        if self.n == 0.0 {
            return None;
        }
        Some(match op {
            AggOp::Sum => self.a + self.b,
            AggOp::Count => self.n,
            AggOp::Group => 1.0,
            AggOp::Stddev => (self.b / self.n).sqrt(),
            AggOp::Stdvar => self.b / self.n,
            _ => self.a,
        })
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
