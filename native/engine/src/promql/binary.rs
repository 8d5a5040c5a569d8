//! Binary operators: scalar/scalar, vector/scalar, vector/vector with matching
//! (`on`, `ignoring`, `group_left`, `group_right`, `bool`) and the set operators.

use hashbrown::HashMap;
use rayon::prelude::*;

use super::eval::{collide, Evaluator};
use super::expr::{BinOp, Card, Matching};
use super::value::{drop_name, format_labels, get, set, Grid, Labels, Series, Value, NAME};
use super::exec_err;
use crate::error::{Error, Result};
use crate::store::pool;

/// `lhs op rhs` on two floats: the value, and whether a comparison keeps it.
pub fn elem(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Mod => (l % r, true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

fn drops_name(op: BinOp) -> bool {
    matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow | BinOp::Atan2)
}

pub fn binary(
    ev: &Evaluator,
    op: BinOp,
    l: Value,
    r: Value,
    return_bool: bool,
    matching: Option<&Matching>,
    g: &Grid,
) -> Result<Value> {
    ev.check_deadline()?;
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Ok(Value::Scalar(
            a.iter()
                .zip(&b)
                .map(|(&x, &y)| {
                    let (v, keep) = elem(op, x, y);
                    if op.is_comparison() {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(op, v, &s, false, return_bool)?)),
        (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(op, v, &s, true, return_bool)?)),
        (Value::Vector(a), Value::Vector(b)) => {
            let default = Matching { card: if op.is_set() { Card::ManyToMany } else { Card::OneToOne }, ..Matching::default() };
            let m = matching.unwrap_or(&default);
            let out = match op {
                BinOp::And | BinOp::Unless => filter_set(a, &b, m, g, op == BinOp::And),
                BinOp::Or => or(a, b, m, g),
                _ => vector_vector(op, a, b, m, return_bool, g)?,
            };
            Ok(Value::Vector(collide(out)?))
        }
        _ => Err(Error::bad_input("binary operators need scalars or instant vectors")),
    }
}

fn vector_scalar(op: BinOp, mut v: Vec<Series>, s: &[f64], swap: bool, return_bool: bool) -> Result<Vec<Series>> {
    // Series by series, in parallel (each is independent of the others).
    pool().install(|| v.par_iter_mut().with_min_len(16).for_each(|series| {
        if drops_name(op) || return_bool {
            drop_name(&mut series.labels);
        }
        for (i, slot) in series.vals.iter_mut().enumerate() {
            let Some(x) = *slot else { continue };
            let (l, r) = if swap { (s[i], x) } else { (x, s[i]) };
            let (mut val, mut keep) = elem(op, l, r);
            if op.is_comparison() {
                val = x;
            }
            if return_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            *slot = keep.then_some(val);
        }
    }));
    collide(v)
}

/// The labels two series are matched on.
fn signature(labels: &Labels, m: &Matching) -> Labels {
    if m.on {
        labels.iter().filter(|(n, _)| m.labels.iter().any(|x| x == n)).cloned().collect()
    } else {
        labels.iter().filter(|(n, _)| n != NAME && !m.labels.iter().any(|x| x == n)).cloned().collect()
    }
}

/// Per signature, whether some series with it is present at each step.
fn presence(series: &[Series], m: &Matching, steps: usize) -> HashMap<Labels, Vec<bool>> {
    let mut out: HashMap<Labels, Vec<bool>> = HashMap::new();
    for s in series {
        let p = out.entry(signature(&s.labels, m)).or_insert_with(|| vec![false; steps]);
        for (slot, v) in p.iter_mut().zip(&s.vals) {
            *slot |= v.is_some();
        }
    }
    out
}

/// `and` (keep where the other side has the signature) and `unless` (keep where it has not).
fn filter_set(mut lhs: Vec<Series>, rhs: &[Series], m: &Matching, g: &Grid, and: bool) -> Vec<Series> {
    let present = presence(rhs, m, g.len);
    for s in &mut lhs {
        let p = present.get(&signature(&s.labels, m));
        for (i, v) in s.vals.iter_mut().enumerate() {
            let has = p.is_some_and(|p| p[i]);
            if has != and {
                *v = None;
            }
        }
    }
    lhs
}

fn or(mut lhs: Vec<Series>, mut rhs: Vec<Series>, m: &Matching, g: &Grid) -> Vec<Series> {
    let present = presence(&lhs, m, g.len);
    for s in &mut rhs {
        if let Some(p) = present.get(&signature(&s.labels, m)) {
            for (i, v) in s.vals.iter_mut().enumerate() {
                if p[i] {
                    *v = None;
                }
            }
        }
    }
    lhs.extend(rhs);
    lhs
}

/// Prometheus's `resultMetric`.
fn result_labels(many: &Labels, one: &Labels, op: BinOp, m: &Matching, return_bool: bool) -> Labels {
    let mut out = many.clone();
    if drops_name(op) || return_bool {
        drop_name(&mut out);
    }
    if m.card == Card::OneToOne {
        if m.on {
            out.retain(|(n, _)| m.labels.iter().any(|x| x == n));
        } else {
            out.retain(|(n, _)| !m.labels.iter().any(|x| x == n));
        }
    }
    for name in &m.include {
        set(&mut out, name, get(one, name));
    }
    out
}

fn vector_vector(op: BinOp, l: Vec<Series>, r: Vec<Series>, m: &Matching, return_bool: bool, g: &Grid) -> Result<Vec<Series>> {
    let swapped = m.card == Card::OneToMany;
    let (many, one) = if swapped { (r, l) } else { (l, r) };
    let mut one_groups: HashMap<Labels, Vec<usize>> = HashMap::new();
    let mut order: Vec<Labels> = Vec::new();
    for (i, s) in one.iter().enumerate() {
        let sig = signature(&s.labels, m);
        let members = one_groups.entry(sig.clone()).or_default();
        if members.is_empty() {
            order.push(sig);
        }
        members.push(i);
    }
    for sig in &order {
        let members = &one_groups[sig];
        if members.len() < 2 {
            continue;
        }
        for i in 0..g.len {
            let present: Vec<usize> = members.iter().copied().filter(|&x| one[x].vals[i].is_some()).collect();
            if present.len() > 1 {
                let side = if swapped { "left" } else { "right" };
                return Err(exec_err(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    format_labels(sig),
                    format_labels(&one[present[1]].labels),
                    format_labels(&one[present[0]].labels)
                )));
            }
        }
    }
    // Per match group and step: how many outputs (one-to-one) / which output labels (grouped).
    let mut matched: HashMap<Labels, Vec<u32>> = HashMap::new();
    let mut grouped: HashMap<(Labels, Labels), Vec<bool>> = HashMap::new();
    let mut out = Vec::new();
    for ms in &many {
        let sig = signature(&ms.labels, m);
        let Some(members) = one_groups.get(&sig) else { continue };
        for &oi in members {
            let os = &one[oi];
            let labels = result_labels(&ms.labels, &os.labels, op, m, return_bool);
            let mut vals = vec![None; g.len];
            // Per step: outputs of this match group so far (one-to-one), or whether this
            // output label set was produced already (grouped); looked up once per pair.
            let (mut count, mut seen) = (None, None);
            if m.card == Card::OneToOne {
                count = Some(matched.entry(sig.clone()).or_insert_with(|| vec![0; g.len]));
            } else {
                seen = Some(grouped.entry((sig.clone(), labels.clone())).or_insert_with(|| vec![false; g.len]));
            }
            for i in 0..g.len {
                let (Some(a), Some(b)) = (ms.vals[i], os.vals[i]) else { continue };
                let (fl, fr) = if swapped { (b, a) } else { (a, b) };
                let (mut val, mut keep) = elem(op, fl, fr);
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if !keep {
                    continue;
                }
                if let Some(n) = count.as_deref_mut() {
                    n[i] += 1;
                    if n[i] > 1 {
                        return Err(exec_err(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                } else if let Some(seen) = seen.as_deref_mut() {
                    if seen[i] {
                        return Err(exec_err("multiple matches for labels: grouping labels must ensure unique matches"));
                    }
                    seen[i] = true;
                }
                vals[i] = Some(val);
            }
            out.push(Series { labels, vals });
        }
    }
    Ok(out)
}
