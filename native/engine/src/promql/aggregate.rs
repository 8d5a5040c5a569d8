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
    fold_into(op, input, members, &mut acc, parallel);
    acc.into_iter().map(|a| a.result(op)).collect()
}

/// Folds `members` of `input`, in order, into the per-step accumulators `acc`.
fn fold_into(op: AggOp, input: &[Series], members: &[usize], acc: &mut [Acc], parallel: bool) {
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
    if parallel && acc.len() > STEPS_PER_TASK {
        pool().install(|| acc.par_chunks_mut(STEPS_PER_TASK).enumerate().for_each(fold_block));
    } else {
        acc.chunks_mut(STEPS_PER_TASK).enumerate().for_each(fold_block);
    }
}

/// An aggregation (`sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar`)
/// fed its input a block of series at a time, in input order, so the input is never held
/// whole: each block is folded into the groups' per-step accumulators as it comes. Gives
/// exactly what [`aggregate`] gives for the same input (same groups in the same order,
/// every step folded in input order).
pub struct Folder<'a> {
    op: AggOp,
    grouping: &'a Grouping,
    steps: usize,
    index: HashMap<Labels, usize>,
    groups: Vec<(Labels, Vec<Acc>)>,
}

impl<'a> Folder<'a> {
    /// Whether `op` (without a parameter) can be folded a block at a time.
    pub fn handles(op: AggOp) -> bool {
        matches!(
            op,
            AggOp::Sum | AggOp::Avg | AggOp::Count | AggOp::Group | AggOp::Min | AggOp::Max | AggOp::Stddev | AggOp::Stdvar
        )
    }

    pub fn new(op: AggOp, grouping: &'a Grouping, g: &Grid) -> Self {
        Folder { op, grouping, steps: g.len, index: HashMap::new(), groups: Vec::new() }
    }

    /// Folds the next series of the input.
    pub fn add(&mut self, block: Vec<Series>) {
        let mut touched: Vec<(usize, Vec<usize>)> = Vec::new(); // (group, members in block)
        let mut slot: HashMap<usize, usize> = HashMap::new(); // group -> index in touched
        for (i, s) in block.iter().enumerate() {
            let key = group_labels(&s.labels, self.grouping);
            let gi = match self.index.get(&key) {
                Some(&gi) => gi,
                None => {
                    let gi = self.groups.len();
                    self.index.insert(key.clone(), gi);
                    self.groups.push((key, vec![Acc::default(); self.steps]));
                    gi
                }
            };
            let t = *slot.entry(gi).or_insert_with(|| {
                touched.push((gi, Vec::new()));
                touched.len() - 1
            });
            touched[t].1.push(i);
        }
        let op = self.op;
        if touched.len() >= 2 * pool().current_num_threads() {
            // Each touched group's accumulators are taken out, folded on some thread, and put back.
            let mut work: Vec<(usize, Vec<Acc>, Vec<usize>)> =
                touched.into_iter().map(|(gi, m)| (gi, std::mem::take(&mut self.groups[gi].1), m)).collect();
            pool().install(|| work.par_iter_mut().for_each(|(_, acc, members)| fold_into(op, &block, members, acc, false)));
            for (gi, acc, _) in work {
                self.groups[gi].1 = acc;
            }
        } else {
            for (gi, members) in touched {
                fold_into(op, &block, &members, &mut self.groups[gi].1, true);
            }
        }
    }

    /// The aggregated series, groups in order of first appearance.
    pub fn finish(self) -> Vec<Series> {
        let op = self.op;
        self.groups
            .into_iter()
            .map(|(labels, acc)| Series { labels, vals: acc.into_iter().map(|a| a.result(op)).collect() })
            .collect()
    }
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

/// Largest `k` for which a group's top k are kept in a small sorted buffer while its
/// members are scanned; above it the members are sorted.
const TOPK_INSERT_MAX: usize = 32;

fn top_k(k: Vec<f64>, input: Vec<Series>, grouping: &Grouping, g: &Grid, top: bool) -> Result<Vec<Series>> {
    let groups = groups(&input, grouping);
    // The order of a stable sort: NaN last, then by value (descending for topk), ties in input order.
    let cmp = |a: f64, b: f64| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if top => b.partial_cmp(&a).unwrap(),
        _ => a.partial_cmp(&b).unwrap(),
    };
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
                let kk = ki.min(members.len() as i64) as usize;
                buf.clear();
                if kk <= TOPK_INSERT_MAX {
                    // The first kk of the stable sort, kept sorted as the members go by:
                    // a later member goes after every kept value it does not beat.
                    for &m in members {
                        let Some(v) = input[m].vals[i] else { continue };
                        if buf.len() == kk && cmp(v, buf[kk - 1].0) != std::cmp::Ordering::Less {
                            continue;
                        }
                        let pos = buf.partition_point(|&(x, _)| cmp(x, v) != std::cmp::Ordering::Greater);
                        if buf.len() == kk {
                            buf.pop();
                        }
                        buf.insert(pos, (v, m));
                    }
                } else {
                    buf.extend(members.iter().filter_map(|&m| input[m].vals[i].map(|v| (v, m))));
                    buf.sort_by(|a, b| cmp(a.0, b.0));
                    buf.truncate(kk);
                }
                step.extend(buf.iter().map(|x| x.1));
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
    // Over many steps, as Prometheus assembles its matrix from the steps' results: the
    // series chosen at some step, in input order, with their values at those steps.
    let mut keep: Vec<Option<Vec<Option<f64>>>> = vec![None; input.len()];
    for (i, step) in chosen.iter().enumerate() {
        for &m in step {
            keep[m].get_or_insert_with(|| vec![None; g.len])[i] = input[m].vals[i];
        }
    }
    Ok(input.into_iter().zip(keep).filter_map(|(s, vals)| Some(Series { labels: s.labels, vals: vals? })).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan with a small sorted buffer chooses what the stable sort chooses (NaNs,
    /// ties, signed zeros, missing values, groups smaller than k).
    #[test]
    fn promql_topk_insertion_matches_stable_sort() {
        let mut next = crate::xorshift(0x853c_49e6_748f_ea9b);
        let pick = [1.0, 2.0, 2.0, -1.0, 0.0, -0.0, f64::NAN, 3.5, f64::INFINITY];
        for round in 0..200 {
            let n = (next() % 40) as usize;
            let steps = 1 + (next() % 6) as usize;
            let input: Vec<Series> = (0..n)
                .map(|j| Series {
                    labels: vec![("g".into(), (j % 3).to_string()), ("j".into(), j.to_string())],
                    vals: (0..steps)
                        .map(|_| (next() % 5 != 0).then(|| pick[(next() % pick.len() as u64) as usize]))
                        .collect(),
                })
                .collect();
            let g = Grid::new(0, steps as i64 - 1, 1);
            let k: Vec<f64> = (0..steps).map(|_| (next() % 40) as f64).collect();
            for top in [true, false] {
                let grouping = Grouping::By(vec!["g".into()]);
                let got = top_k(k.clone(), input.clone(), &grouping, &g, top).unwrap();
                // reference: stable sort per step and group
                let mut want: Vec<Vec<Option<u64>>> = vec![vec![None; steps]; n];
                for i in 0..steps {
                    for (_, members) in groups(&input, &grouping) {
                        let mut c: Vec<(f64, usize)> =
                            members.iter().filter_map(|&m| input[m].vals[i].map(|v| (v, m))).collect();
                        c.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if top => b.0.partial_cmp(&a.0).unwrap(),
                            _ => a.0.partial_cmp(&b.0).unwrap(),
                        });
                        for &(v, m) in c.iter().take(k[i] as usize) {
                            want[m][i] = Some(v.to_bits());
                        }
                    }
                }
                let got_bits: Vec<(Labels, Vec<Option<u64>>)> =
                    got.iter().map(|s| (s.labels.clone(), s.vals.iter().map(|v| v.map(f64::to_bits)).collect())).collect();
                let want_bits: Vec<(Labels, Vec<Option<u64>>)> = input
                    .iter()
                    .zip(want)
                    .filter(|(_, w)| steps == 1 || w.iter().any(Option::is_some))
                    .map(|(s, w)| (s.labels.clone(), w))
                    .collect();
                if steps == 1 {
                    // instant: chosen series in chosen order, whole values
                    let mut a: Vec<_> = got_bits.iter().map(|x| x.0.clone()).collect();
                    let mut b: Vec<_> = want_bits.iter().filter(|w| w.1[0].is_some()).map(|x| x.0.clone()).collect();
                    a.sort();
                    b.sort();
                    assert_eq!(a, b, "round {round} top {top}");
                } else {
                    assert_eq!(got_bits, want_bits, "round {round} top {top}");
                }
            }
        }
    }
}
