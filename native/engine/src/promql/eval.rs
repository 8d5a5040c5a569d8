//! Dispatch over the expression tree, subqueries, label-set collisions and limits.

use hashbrown::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::expr::{AggOp, Expr, Grouping, Selector};
use super::value::{drop_name, Grid, Points, RangeArg, Series, Value};
use super::{aggregate, binary, exec_err, functions, rangefns, selector};
use super::{EvalOptions, QueryValue, SAME_LABELSET, TIMED_OUT, TOO_MANY_SAMPLES};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

/// One evaluation: the store, the options, and the running sample count.
pub struct Evaluator<'a> {
    pub store: &'a Store,
    pub opts: &'a EvalOptions,
    samples: AtomicUsize,
}

impl<'a> Evaluator<'a> {
    pub fn new(store: &'a Store, opts: &'a EvalOptions) -> Self {
        Evaluator { store, opts, samples: AtomicUsize::new(0) }
    }

    /// Evaluates the whole query and shapes the top-level value.
    pub fn run(&self, expr: &Expr, g: Grid) -> Result<QueryValue> {
        Ok(match self.eval(expr, &g)? {
            Value::Scalar(v) => QueryValue::Scalar(v),
            Value::String(s) => QueryValue::String(s),
            Value::Vector(mut series) => {
                series.retain(Series::any);
                if self.opts.range_query {
                    series.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                QueryValue::Vector(series)
            }
            Value::Range(arg) => {
                if g.len != 1 {
                    return Err(Error::bad_input(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
                    ));
                }
                let (lo, hi) = (arg.ends[0] - arg.range, arg.ends[0]);
                let mut out: Vec<Points> = arg
                    .series
                    .into_iter()
                    .filter_map(|p| {
                        let (a, b) = p.window(lo, hi);
                        (a < b).then(|| Points { labels: p.labels, ts: p.ts[a..b].to_vec(), vals: p.vals[a..b].to_vec() })
                    })
                    .collect();
                if self.opts.range_query {
                    out.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                QueryValue::Matrix(out)
            }
        })
    }

    /// Fails once the deadline has passed.
    pub fn check_deadline(&self) -> Result<()> {
        match self.opts.deadline {
            Some(d) if Instant::now() > d => Err(Error::new(ErrorKind::Timeout, TIMED_OUT)),
            _ => Ok(()),
        }
    }

    /// Counts `n` more samples held by the query against `max_samples`.
    pub fn account(&self, n: usize) -> Result<()> {
        let total = self.samples.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.opts.max_samples {
            return Err(exec_err(TOO_MANY_SAMPLES));
        }
        Ok(())
    }

    pub fn eval(&self, expr: &Expr, g: &Grid) -> Result<Value> {
        self.check_deadline()?;
        match expr {
            Expr::Number(v) => Ok(Value::Scalar(vec![*v; g.len])),
            Expr::String(s) => Ok(Value::String(s.clone())),
            Expr::Vector(sel) => Ok(Value::Vector(selector::instant(self, sel, g, false)?)),
            Expr::Matrix { sel, range } => Ok(Value::Range(selector::range(self, sel, *range, g)?)),
            Expr::Subquery { expr, range, step, offset, at } => {
                Ok(Value::Range(self.subquery(expr, *range, *step, *offset, *at, g)?))
            }
            Expr::Neg(inner) => match self.eval(inner, g)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(mut series) => {
                    for s in &mut series {
                        drop_name(&mut s.labels);
                        for v in s.vals.iter_mut().flatten() {
                            *v = -*v;
                        }
                    }
                    Ok(Value::Vector(collide_strict(series)?))
                }
                _ => Err(Error::bad_input("unary minus needs a scalar or an instant vector")),
            },
            Expr::Call { func, args } => self.call(func, args, g),
            Expr::Aggregate { op, param, expr, grouping } => {
                let param = match param {
                    Some(p) => Some(self.eval(p, g)?),
                    None => None,
                };
                if param.is_none() && aggregate::Folder::handles(*op) {
                    if let Some(out) = self.fold_selector(*op, expr, grouping, g)? {
                        return Ok(Value::Vector(out));
                    }
                }
                let input = self.vector(expr, g)?;
                Ok(Value::Vector(aggregate::aggregate(self, *op, param, input, grouping, g)?))
            }
            Expr::Binary { op, lhs, rhs, return_bool, matching } => {
                let l = self.eval(lhs, g)?;
                let r = self.eval(rhs, g)?;
                binary::binary(self, *op, l, r, *return_bool, matching.as_ref(), g)
            }
        }
    }

    /// `op by (grouping) (expr)` folded as the selector in `expr` reads its series, a
    /// block at a time (the per-step vectors of all series are never held at once), when
    /// `expr` is an instant selector or a range function of a matrix selector; `None`
    /// for any other `expr`.
    fn fold_selector(&self, op: AggOp, expr: &Expr, grouping: &Grouping, g: &Grid) -> Result<Option<Vec<Series>>> {
        let mut folder = aggregate::Folder::new(op, grouping, g);
        let mut sink = |block: Vec<Series>| -> Result<()> {
            self.check_deadline()?;
            folder.add(block);
            Ok(())
        };
        match expr {
            // count and group need only whether each series is present at each step.
            Expr::Vector(sel) => {
                let need_values = !matches!(op, AggOp::Count | AggOp::Group);
                selector::instant_blocks(self, sel, g, false, need_values, Some(&mut sink))?;
            }
            Expr::Call { func, args } if args.len() == 1 && func != "absent_over_time" => {
                let Expr::Matrix { sel, range } = &args[0] else { return Ok(None) };
                let evals = eval_times(&args[0], g);
                selector::range_call_blocks(self, sel, *range, g, func, &[], &evals, Some(&mut sink))?;
            }
            _ => return Ok(None),
        }
        Ok(Some(folder.finish()))
    }

    /// Evaluates an expression that must give an instant vector.
    pub fn vector(&self, expr: &Expr, g: &Grid) -> Result<Vec<Series>> {
        match self.eval(expr, g)? {
            Value::Vector(v) => Ok(v),
            _ => Err(Error::bad_input("expected an instant vector")),
        }
    }

    /// Evaluates an expression that must give a scalar.
    pub fn scalar(&self, expr: &Expr, g: &Grid) -> Result<Vec<f64>> {
        match self.eval(expr, g)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(Error::bad_input("expected a scalar")),
        }
    }

    fn call(&self, func: &str, args: &[Expr], g: &Grid) -> Result<Value> {
        if let Some(pos) = args.iter().position(|a| matches!(a, Expr::Matrix { .. } | Expr::Subquery { .. })) {
            let mut scalars = Vec::new();
            for (i, a) in args.iter().enumerate() {
                if i != pos {
                    scalars.push(self.scalar(a, g)?);
                }
            }
            let evals = eval_times(&args[pos], g);
            let out = match &args[pos] {
                // A selector's series go through the function one by one as they are read.
                Expr::Matrix { sel, range } if func != "absent_over_time" => {
                    selector::range_call(self, sel, *range, g, func, &scalars, &evals)?
                }
                arg => {
                    let Value::Range(arg) = self.eval(arg, g)? else {
                        return Err(Error::internal("range argument did not evaluate to a range"));
                    };
                    rangefns::call(self, func, &arg, &scalars, &evals)?
                }
            };
            return Ok(Value::Vector(out));
        }
        if func == "timestamp" {
            if let Some(Expr::Vector(sel)) = args.first() {
                let mut series = selector::instant(self, sel, g, true)?;
                series.iter_mut().for_each(|s| drop_name(&mut s.labels));
                return Ok(Value::Vector(collide(series)?));
            }
        }
        functions::call(self, func, args, g)
    }

    fn subquery(&self, expr: &Expr, range: i64, step: i64, offset: i64, at: Option<i64>, g: &Grid) -> Result<RangeArg> {
        let sel = Selector { matchers: vec![], offset, at };
        let ends = selector::ends(&sel, g);
        let absent_labels = vec![];
        let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(RangeArg { series: vec![], range, ends, absent_labels });
        };
        let lo = lo - range;
        let mut first = lo.div_euclid(step) * step;
        if first < lo {
            first += step;
        }
        let inner = Grid::new(first, hi, step);
        if inner.len as u64 > self.opts.max_samples as u64 {
            return Err(exec_err(TOO_MANY_SAMPLES));
        }
        let series: Vec<Series> = match self.eval(expr, &inner)? {
            Value::Vector(v) => v,
            Value::Scalar(v) => vec![Series { labels: vec![], vals: v.into_iter().map(Some).collect() }],
            _ => return Err(Error::bad_input("subquery is only allowed on instant vector")),
        };
        let mut points = Vec::with_capacity(series.len());
        let mut total = 0;
        for s in series {
            let (ts, vals): (Vec<i64>, Vec<f64>) =
                s.vals.iter().enumerate().filter_map(|(i, v)| v.map(|v| (inner.t(i), v))).unzip();
            total += ts.len();
            if !ts.is_empty() {
                points.push(Points { labels: s.labels, ts, vals });
            }
        }
        self.account(total)?;
        Ok(RangeArg { series: points, range, ends, absent_labels })
    }
}

/// The time functions see at each step (`predict_linear`'s "now"): the step time.
fn eval_times(_arg: &Expr, g: &Grid) -> Vec<i64> {
    (0..g.len).map(|i| g.t(i)).collect()
}

/// Merges series with the same labels; two of them present at the same step is
/// Prometheus's "vector cannot contain metrics with the same labelset".
pub fn collide(mut series: Vec<Series>) -> Result<Vec<Series>> {
    series.retain(Series::any);
    // Label sets are compared by reference: repeated label sets are rare, and a copy
    // of every series' labels would cost more than the check.
    let mut dups: Vec<(usize, usize)> = vec![]; // (repeat, first with those labels)
    {
        let mut first: HashMap<&super::value::Labels, usize> = HashMap::with_capacity(series.len());
        for (i, s) in series.iter().enumerate() {
            if let Some(&f) = first.get(&s.labels) {
                dups.push((i, f));
            } else {
                first.insert(&s.labels, i);
            }
        }
    }
    if dups.is_empty() {
        return Ok(series);
    }
    let mut merged = vec![false; series.len()];
    for (i, f) in dups {
        let vals = std::mem::take(&mut series[i].vals);
        for (slot, v) in series[f].vals.iter_mut().zip(vals) {
            if v.is_some() {
                if slot.is_some() {
                    return Err(exec_err(SAME_LABELSET));
                }
                *slot = v;
            }
        }
        merged[i] = true;
    }
    let mut i = 0;
    series.retain(|_| {
        i += 1;
        !merged[i - 1]
    });
    Ok(series)
}

/// Like [`collide`], but any two non-empty series with the same labels are an error
/// (Prometheus checks whole matrices after range functions and unary minus).
pub fn collide_strict(mut series: Vec<Series>) -> Result<Vec<Series>> {
    series.retain(Series::any);
    let mut seen = hashbrown::HashSet::with_capacity(series.len());
    if series.iter().any(|s| !seen.insert(&s.labels)) {
        return Err(exec_err(SAME_LABELSET));
    }
    drop(seen);
    Ok(series)
}
