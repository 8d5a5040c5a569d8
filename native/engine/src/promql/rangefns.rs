//! Functions over range vectors. Each series is handled on its own (in parallel);
//! for each step the kernel sees the points in that step's window.

use rayon::prelude::*;

use super::eval::{collide_strict, Evaluator};
use super::quantile::{quantile, quantile_in_place};
use super::value::{drop_name, Labels, RangeArg, Series, Sweep};
use super::{exec_err, functions::kahan_inc};
use crate::error::Result;
use crate::store::pool;

/// What a kernel knows about the step it computes.
struct Step {
    /// Window `[range_start, range_end]`.
    range_start: i64,
    range_end: i64,
    range: i64,
    /// The step's evaluation time.
    eval_t: i64,
    /// The scalar arguments at this step, in argument order.
    scalars: [f64; 2],
    /// The whole series never decreases (so no window has a counter reset).
    monotonic: bool,
}

type Kernel = fn(&[i64], &[f64], &Step) -> Result<Option<f64>>;

fn kernel(func: &str) -> Option<Kernel> {
    Some(match func {
        "rate" => |t, v, s| Ok(extrapolated(t, v, s, true, true)),
        "increase" => |t, v, s| Ok(extrapolated(t, v, s, true, false)),
        "delta" => |t, v, s| Ok(extrapolated(t, v, s, false, false)),
        "irate" => |t, v, _| Ok(instant_value(t, v, true)),
        "idelta" => |t, v, _| Ok(instant_value(t, v, false)),
        "deriv" => |t, v, _| Ok((t.len() >= 2).then(|| linear_regression(t, v, t[0]).0)),
        "predict_linear" => |t, v, s| {
            Ok((t.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(t, v, s.eval_t);
                slope * s.scalars[0] + intercept
            }))
        },
        "resets" => |_, v, _| Ok(Some(v.windows(2).filter(|w| w[1] < w[0]).count() as f64)),
        "changes" => |_, v, _| {
            Ok(Some(v.windows(2).filter(|w| w[1] != w[0] && !(w[0].is_nan() && w[1].is_nan())).count() as f64))
        },
        "holt_winters" => |_, v, s| holt_winters(v, s.scalars[0], s.scalars[1]),
        "avg_over_time" => |_, v, _| Ok(Some(avg(v))),
        "sum_over_time" => |_, v, _| {
            let (mut sum, mut c) = (0.0, 0.0);
            for &x in v {
                (sum, c) = kahan_inc(x, sum, c);
            }
            Ok(Some(if sum.is_infinite() { sum } else { sum + c }))
        },
        "count_over_time" => |_, v, _| Ok(Some(v.len() as f64)),
        "min_over_time" => |_, v, _| {
            Ok(Some(v.iter().fold(v[0], |m, &x| if x < m || m.is_nan() { x } else { m })))
        },
        "max_over_time" => |_, v, _| {
            Ok(Some(v.iter().fold(v[0], |m, &x| if x > m || m.is_nan() { x } else { m })))
        },
        "last_over_time" => |_, v, _| Ok(v.last().copied()),
        "present_over_time" => |_, _, _| Ok(Some(1.0)),
        "stddev_over_time" => |_, v, _| Ok(Some(stdvar(v).sqrt())),
        "stdvar_over_time" => |_, v, _| Ok(Some(stdvar(v))),
        "quantile_over_time" => |_, v, s| Ok(Some(quantile_of(s.scalars[0], v))),
        "mad_over_time" => |_, v, _| {
            let median = quantile(0.5, v.to_vec());
            Ok(Some(quantile(0.5, v.iter().map(|x| (x - median).abs()).collect())))
        },
        _ => return None,
    })
}

/// A range function ready to run over one series at a time.
pub struct RangeFn<'a> {
    kernel: Kernel,
    keep_name: bool,
    counter_fn: bool,
    /// Window ends ascend with the steps (no `@`): windows are found by a forward sweep.
    ordered: bool,
    /// `rate`, `increase`, `delta`: (counter, rate) of [`extrapolated`].
    extrap: Option<(bool, bool)>,
    /// `max_over_time` (true) / `min_over_time` (false): with ordered windows, one
    /// pass over the points for all steps (see [`sliding_extreme`]).
    extreme: Option<bool>,
    range: i64,
    ends: &'a [i64],
    scalars: &'a [Vec<f64>],
    evals: &'a [i64],
}

impl<'a> RangeFn<'a> {
    /// `func` over windows `[ends[i] - range, ends[i]]`; `scalars` are the other
    /// arguments per step, `evals` the step times. Fails for an unknown function and
    /// for `absent_over_time` (which looks at all series together: [`call`]).
    pub fn new(func: &str, range: i64, ends: &'a [i64], scalars: &'a [Vec<f64>], evals: &'a [i64]) -> Result<Self> {
        let Some(kernel) = kernel(func) else {
            return Err(exec_err(format!("function {func} is not supported yet")));
        };
        Ok(RangeFn {
            kernel,
            keep_name: func == "last_over_time",
            counter_fn: matches!(func, "rate" | "increase"),
            extrap: match func {
                "rate" => Some((true, true)),
                "increase" => Some((true, false)),
                "delta" => Some((false, false)),
                _ => None,
            },
            ordered: ends.windows(2).all(|w| w[0] <= w[1]),
            extreme: match func {
                "max_over_time" => Some(true),
                "min_over_time" => Some(false),
                _ => None,
            },
            range,
            ends,
            scalars,
            evals,
        })
    }

    /// The window `[a, b)` of each step in sorted timestamps `ts`, and what
    /// `rate`/`increase`/`delta` derive from the timestamps alone (see [`Extent`]).
    pub fn windows(&self, ts: &[i64]) -> Windows {
        let spans = self.spans(ts);
        let extents = self.extrap.map(|(_, rate)| {
            spans
                .iter()
                .zip(self.ends)
                .map(|(&(a, b), &end)| {
                    let (a, b) = (a as usize, b as usize);
                    if b - a < 2 {
                        return Extent::default();
                    }
                    Extent::new(ts[a], ts[b - 1], b - a, end - self.range, end, self.range, rate)
                })
                .collect()
        });
        Windows { spans, extents }
    }

    fn spans(&self, ts: &[i64]) -> Vec<(u32, u32)> {
        let mut sweep = Sweep::default();
        self.ends
            .iter()
            .map(|&end| {
                let (a, b) = if self.ordered {
                    sweep.window(ts, end - self.range, end)
                } else {
                    let a = ts.partition_point(|&t| t < end - self.range);
                    (a, ts.partition_point(|&t| t <= end).max(a))
                };
                (a as u32, b as u32)
            })
            .collect()
    }

    /// The function's value at every step for one series (points `ts`, `vals`, no
    /// staleness markers); `windows`, when given, are [`windows`](Self::windows) of `ts`.
    pub fn series(&self, labels: &Labels, ts: &[i64], vals: &[f64], windows: Option<&Windows>) -> Result<Series> {
        let mut labels = labels.clone();
        if !self.keep_name {
            drop_name(&mut labels);
        }
        if let (Some(is_max), true) = (self.extreme, self.ordered) {
            return Ok(Series { labels, vals: sliding_extreme(ts, vals, self.ends, self.range, is_max) });
        }
        let mut out = Vec::with_capacity(self.ends.len());
        let mut sweep = Sweep::default();
        let monotonic = self.counter_fn && never_decreases(vals);
        if let (Some(w), Some((counter, _))) = (windows, self.extrap) {
            if let Some(extents) = &w.extents {
                for (&(a, b), x) in w.spans.iter().zip(extents) {
                    let (a, b) = (a as usize, b as usize);
                    out.push(if b - a < 2 { None } else { Some(x.apply(&vals[a..b], counter, monotonic)) });
                }
                return Ok(Series { labels, vals: out });
            }
        }
        for (i, &end) in self.ends.iter().enumerate() {
            let (a, b) = match windows {
                Some(w) => (w.spans[i].0 as usize, w.spans[i].1 as usize),
                None if self.ordered => sweep.window(ts, end - self.range, end),
                None => {
                    let a = ts.partition_point(|&t| t < end - self.range);
                    (a, ts.partition_point(|&t| t <= end).max(a))
                }
            };
            if a == b {
                out.push(None);
                continue;
            }
            let step = Step {
                range_start: end - self.range,
                range_end: end,
                range: self.range,
                eval_t: self.evals[i],
                scalars: [
                    self.scalars.first().map_or(f64::NAN, |s| s[i]),
                    self.scalars.get(1).map_or(f64::NAN, |s| s[i]),
                ],
                monotonic,
            };
            out.push((self.kernel)(&ts[a..b], &vals[a..b], &step)?);
        }
        Ok(Series { labels, vals: out })
    }
}

/// Per-step windows of one timestamp column (see [`RangeFn::windows`]).
pub struct Windows {
    spans: Vec<(u32, u32)>,
    extents: Option<Vec<Extent>>,
}

/// What [`extrapolated`] computes from a window's timestamps alone, the same for every
/// series with those timestamps: the durations to the window's edges (after the
/// average-gap threshold), the sampled interval, and the factor the result is scaled by
/// unless the counter's zero point moves the start.
#[derive(Clone, Copy, Default)]
pub struct Extent {
    to_start: f64,
    to_end: f64,
    sampled: f64,
    /// 1 / range in seconds is not used: Prometheus divides, and so do we.
    range_s: f64,
    rate: bool,
    factor: f64,
}

impl Extent {
    #[allow(clippy::too_many_arguments)]
    fn new(first_t: i64, last_t: i64, n: usize, range_start: i64, range_end: i64, range: i64, rate: bool) -> Extent {
        // The same operations in the same order as `extrapolated`.
        let mut to_start = (first_t - range_start) as f64 / 1000.0;
        let mut to_end = (range_end - last_t) as f64 / 1000.0;
        let sampled = (last_t - first_t) as f64 / 1000.0;
        let avg_gap = sampled / (n - 1) as f64;
        let threshold = avg_gap * 1.1;
        if to_start >= threshold {
            to_start = avg_gap / 2.0;
        }
        if to_end >= threshold {
            to_end = avg_gap / 2.0;
        }
        let range_s = range as f64 / 1000.0;
        let mut x = Extent { to_start, to_end, sampled, range_s, rate, factor: 0.0 };
        x.factor = x.factor_with(to_start);
        x
    }

    #[inline]
    fn factor_with(&self, to_start: f64) -> f64 {
        let mut factor = (self.sampled + to_start + self.to_end) / self.sampled;
        if self.rate {
            factor /= self.range_s;
        }
        factor
    }

    /// [`extrapolated`] of a window's values (at least 2) with these timestamps.
    #[inline]
    fn apply(&self, vals: &[f64], counter: bool, monotonic: bool) -> f64 {
        let n = vals.len();
        let mut result = vals[n - 1] - vals[0];
        if counter && !monotonic {
            for w in vals.windows(2) {
                if w[1] < w[0] {
                    result += w[0];
                }
            }
        }
        let v0 = vals[0];
        if counter && result > 0.0 && v0 >= 0.0 {
            // Whether the zero point comes before the start: when v0 * sampled is at
            // least twice to_start * result, `sampled * (v0 / result)` (rounded twice)
            // cannot be below to_start, and the division is not needed.
            let lhs = v0 * self.sampled;
            let clearly_not = lhs.is_finite() && lhs >= 2.0 * self.to_start * result;
            if !clearly_not {
                let to_zero = self.sampled * (v0 / result);
                if to_zero < self.to_start {
                    return result * self.factor_with(to_zero);
                }
            }
        }
        result * self.factor
    }
}

/// `vals.windows(2).all(|w| w[1] >= w[0])` (false at a NaN), in blocks the compiler
/// vectorizes (the short-circuiting form compares one pair at a time).
fn never_decreases(vals: &[f64]) -> bool {
    if vals.len() < 2 {
        return true;
    }
    let (a, b) = (&vals[..vals.len() - 1], &vals[1..]);
    a.chunks(64).zip(b.chunks(64)).all(|(x, y)| x.iter().zip(y).fold(true, |ok, (p, q)| ok & (q >= p)))
}

/// `max_over_time` / `min_over_time` at every window `[end - range, end]` for ends in
/// ascending order, in one pass over the points: a deque of candidate indexes whose
/// values strictly decrease (max) from the front, so each point enters and leaves once
/// however much the windows overlap. Same answer as the per-window fold: NaN points
/// are skipped unless a window has nothing else, and of equal extremes the earliest
/// wins (which matters for 0.0 and -0.0).
fn sliding_extreme(ts: &[i64], vals: &[f64], ends: &[i64], range: i64, is_max: bool) -> Vec<Option<f64>> {
    let better = |x: f64, y: f64| if is_max { x > y } else { x < y };
    let mut deque = std::collections::VecDeque::new();
    let (mut a, mut b) = (0usize, 0usize);
    let mut out = Vec::with_capacity(ends.len());
    for &end in ends {
        while b < ts.len() && ts[b] <= end {
            let x = vals[b];
            if !x.is_nan() {
                while deque.back().is_some_and(|&j: &usize| better(x, vals[j])) {
                    deque.pop_back();
                }
                deque.push_back(b);
            }
            b += 1;
        }
        // every point before the window's start is at or before its end: a <= b
        while a < b && ts[a] < end - range {
            a += 1;
        }
        while deque.front().is_some_and(|&j| j < a) {
            deque.pop_front();
        }
        // all NaN: the fold ends on the window's last NaN
        out.push((a < b).then(|| deque.front().map_or(vals[b - 1], |&j| vals[j])));
    }
    out
}

/// Evaluates `func` over a range argument; `scalars` are the other arguments per step.
pub fn call(ev: &Evaluator, func: &str, arg: &RangeArg, scalars: &[Vec<f64>], evals: &[i64]) -> Result<Vec<Series>> {
    if func == "absent_over_time" {
        return Ok(absent_over_time(arg));
    }
    let f = RangeFn::new(func, arg.range, &arg.ends, scalars, evals)?;
    let out: Result<Vec<Series>> = pool().install(|| {
        arg.series
            .par_iter()
            .map(|p| {
                ev.check_deadline()?;
                f.series(&p.labels, &p.ts, &p.vals, None)
            })
            .collect()
    });
    collide_strict(out?)
}

fn absent_over_time(arg: &RangeArg) -> Vec<Series> {
    let vals: Vec<Option<f64>> = arg
        .ends
        .iter()
        .map(|&end| {
            let any = arg.series.iter().any(|p| {
                let (a, b) = p.window(end - arg.range, end);
                a < b
            });
            (!any).then_some(1.0)
        })
        .collect();
    vec![Series { labels: arg.absent_labels.clone(), vals }]
}

/// Prometheus 2.53 `extrapolatedRate`.
fn extrapolated(ts: &[i64], vals: &[f64], s: &Step, counter: bool, rate: bool) -> Option<f64> {
    let n = ts.len();
    if n < 2 {
        return None;
    }
    let mut result = vals[n - 1] - vals[0];
    if counter && !s.monotonic {
        for w in vals.windows(2) {
            if w[1] < w[0] {
                result += w[0];
            }
        }
    }
    let (first_t, last_t) = (ts[0], ts[n - 1]);
    let mut to_start = (first_t - s.range_start) as f64 / 1000.0;
    let mut to_end = (s.range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_gap = sampled / (n - 1) as f64;
    let threshold = avg_gap * 1.1;
    if to_start >= threshold {
        to_start = avg_gap / 2.0;
    }
    if counter && result > 0.0 && vals[0] >= 0.0 {
        let to_zero = sampled * (vals[0] / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_gap / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= s.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` / `idelta`: the last two samples.
fn instant_value(ts: &[i64], vals: &[f64], rate: bool) -> Option<f64> {
    let n = ts.len();
    if n < 2 {
        return None;
    }
    let (last, prev) = (vals[n - 1], vals[n - 2]);
    let mut result = if rate && last < prev { last } else { last - prev };
    let interval = ts[n - 1] - ts[n - 2];
    if interval == 0 {
        return None;
    }
    if rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept (at `intercept_t`). Two passes: the means, then
/// the centred sums (as accurate as Prometheus's compensated one-pass sums, at a third
/// of the cost); a window whose values are all equal gives slope 0 exactly.
fn linear_regression(ts: &[i64], vals: &[f64], intercept_t: i64) -> (f64, f64) {
    let init = vals[0];
    if vals.iter().all(|&v| v == init) {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let n = vals.len() as f64;
    let x = |t: i64| (t - intercept_t) as f64 / 1e3;
    let (mut sx, mut sy) = (0.0, 0.0);
    for (&t, &v) in ts.iter().zip(vals) {
        sx += x(t);
        sy += v;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut cov, mut var) = (0.0, 0.0);
    for (&t, &v) in ts.iter().zip(vals) {
        let dx = x(t) - mx;
        cov += dx * (v - my);
        var += dx * dx;
    }
    let slope = cov / var;
    (slope, my - slope * mx)
}

fn holt_winters(vals: &[f64], sf: f64, tf: f64) -> Result<Option<f64>> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(exec_err(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}")));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(exec_err(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}")));
    }
    if vals.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, vals[0]);
    let mut b = vals[1] - vals[0];
    for (i, &v) in vals.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// The mean of a window. A compensated sum divided by the count, unless the sum
/// overflows; then Prometheus's incremental mean, which does not (Prometheus 3 does the
/// same; both agree with 2.x's always-incremental mean to the last bit or two).
fn avg(vals: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for &f in vals {
        (sum, c) = kahan_inc(f, sum, c);
    }
    if sum.is_finite() {
        return (sum + c) / vals.len() as f64;
    }
    if sum.is_nan() && vals.iter().all(|f| f.is_finite() || f.is_nan()) {
        return f64::NAN;
    }
    let (mut mean, mut c, mut count) = (0.0f64, 0.0, 0.0);
    for &f in vals {
        count += 1.0;
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(f / count - mean / count, mean, c);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + c
    }
}

/// [`quantile`] of a window, through a per-thread scratch buffer (one per step would
/// be an allocation per step and series).
fn quantile_of(q: f64, vals: &[f64]) -> f64 {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        buf.extend_from_slice(vals);
        quantile_in_place(q, &mut buf)
    })
}

fn stdvar(vals: &[f64]) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &f in vals {
        count += 1.0;
        let delta = f - (mean + cm);
        (mean, cm) = kahan_inc(delta / count, mean, cm);
        (aux, ca) = kahan_inc(delta * (f - (mean + cm)), aux, ca);
    }
    (aux + ca) / count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamp-only parts computed once per column give `extrapolated`'s bits, with
    /// zero points near and far, resets, huge, infinite and NaN values.
    #[test]
    fn promql_extent_matches_extrapolated() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        let pick = [0.0, 1.0, 3.0, 1e6, 1e306, 1.7e308, f64::INFINITY, f64::NAN, -5.0, 0.5];
        for round in 0..20_000 {
            let n = 2 + (next() % 8) as usize;
            let range = 1_000 + (next() % 400_000) as i64;
            let range_start = (next() % 10_000) as i64;
            let range_end = range_start + range;
            let mut ts: Vec<i64> = (0..n).map(|_| range_start + (next() % (range as u64 + 1)) as i64).collect();
            ts.sort_unstable();
            ts.dedup();
            if ts.len() < 2 {
                continue;
            }
            let mut v = pick[(next() % pick.len() as u64) as usize];
            let vals: Vec<f64> = (0..ts.len())
                .map(|_| {
                    let r = next() % 10;
                    v = if r == 0 { pick[(next() % pick.len() as u64) as usize] } else { v + (next() % 1000) as f64 / 3.0 };
                    v
                })
                .collect();
            for (counter, rate) in [(true, true), (true, false), (false, false)] {
                let monotonic = counter && never_decreases(&vals);
                let step = Step { range_start, range_end, range, eval_t: range_end, scalars: [f64::NAN; 2], monotonic };
                let want = extrapolated(&ts, &vals, &step, counter, rate).unwrap();
                let e = Extent::new(ts[0], ts[ts.len() - 1], ts.len(), range_start, range_end, range, rate);
                let got = e.apply(&vals, counter, monotonic);
                assert_eq!(got.to_bits(), want.to_bits(), "round {round} {ts:?} {vals:?} {counter} {rate}");
            }
        }
    }

    #[test]
    fn promql_never_decreases_matches_pairwise_check() {
        let mut next = crate::xorshift(0x1234_5678_9abc_def1);
        for n in 0..300usize {
            let vals: Vec<f64> = (0..n)
                .map(|i| {
                    let x = next();
                    match x % 997 {
                        0 => f64::NAN,
                        1 => i as f64 - 1.5,
                        _ => i as f64,
                    }
                })
                .collect();
            assert_eq!(never_decreases(&vals), vals.windows(2).all(|w| w[1] >= w[0]), "n {n}");
        }
    }

    /// The one-pass extreme agrees with the per-window kernels bit for bit, with NaNs,
    /// signed zeros, ties, gaps and windows that hold nothing.
    #[test]
    fn promql_sliding_extreme_matches_the_kernels() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        for round in 0..300 {
            let n = (next() % 60) as usize;
            let mut t = 0i64;
            let ts: Vec<i64> = (0..n)
                .map(|_| {
                    t += 1 + (next() % 4) as i64 * if next() % 7 == 0 { 10 } else { 1 };
                    t
                })
                .collect();
            let pick = [1.0, 2.0, -1.0, 0.0, -0.0, f64::NAN, 3.5, 2.0, f64::from_bits(0x7ff0_0000_0000_0bad)];
            let vals: Vec<f64> = (0..n).map(|_| pick[(next() % pick.len() as u64) as usize]).collect();
            let range = (next() % 12) as i64;
            let mut e = -3i64;
            let ends: Vec<i64> = (0..25)
                .map(|_| {
                    e += (next() % 5) as i64;
                    e
                })
                .collect();
            for (func, is_max) in [("max_over_time", true), ("min_over_time", false)] {
                let k = kernel(func).unwrap();
                let got = sliding_extreme(&ts, &vals, &ends, range, is_max);
                for (i, &end) in ends.iter().enumerate() {
                    let a = ts.partition_point(|&t| t < end - range);
                    let b = ts.partition_point(|&t| t <= end);
                    let step = Step {
                        range_start: end - range,
                        range_end: end,
                        range,
                        eval_t: end,
                        scalars: [f64::NAN; 2],
                        monotonic: false,
                    };
                    let want = if a == b { None } else { k(&ts[a..b], &vals[a..b], &step).unwrap() };
                    assert_eq!(got[i].map(f64::to_bits), want.map(f64::to_bits), "round {round} {func} end {end}");
                }
            }
        }
    }
}
