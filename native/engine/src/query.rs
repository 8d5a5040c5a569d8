//! Read-side computations that do not touch storage: merging the sources of one
//! series (chunks, frozen buffers, the head) and bucketed aggregates.
//!
//! ## Bucketed aggregates
//! Buckets are aligned to multiples of `step` since the unix epoch (as
//! VictoriaMetrics and Grafana align them); a bucket is labelled by its start and
//! holds points with `start <= ts < start + step`. Only buckets with points are
//! returned, and only those whose start lies in `[floor(from), to]`.
//!
//! `rate` and `increase` are counter-aware: the increase of a bucket is the sum of
//! the differences between each point in the bucket and the point before it (which
//! may lie in the previous bucket), where a drop counts as a counter reset and adds
//! the new value, as Prometheus's `increase` does without extrapolation. `rate` is
//! that increase divided by the step in seconds. A bucket whose first point has no
//! predecessor contributes nothing for that point.
//!
//! Prometheus staleness markers (NaN with bits [`STALE_NAN_BITS`]) are not values:
//! aggregates skip them.

use crate::error::{Error, Result};
use crate::{Timestamp, STALE_NAN_BITS};

/// A bucket aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    First,
    Last,
    Rate,
    Increase,
}

impl Aggregate {
    pub fn parse(name: &str) -> Result<Aggregate> {
        Ok(match name {
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "sum" => Aggregate::Sum,
            "count" => Aggregate::Count,
            "first" => Aggregate::First,
            "last" => Aggregate::Last,
            "rate" => Aggregate::Rate,
            "increase" => Aggregate::Increase,
            other => {
                return Err(Error::bad_input(format!(
                    "unknown aggregate {other:?}: expected one of avg, min, max, sum, count, first, last, rate, increase"
                )))
            }
        })
    }

    /// Whether the aggregate needs the point before the first bucket.
    pub fn needs_previous_point(self) -> bool {
        matches!(self, Aggregate::Rate | Aggregate::Increase)
    }
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Merge sorted, deduplicated runs of one series, given oldest source first.
/// Where several sources hold the same timestamp, the newest source wins.
pub fn merge_sources(mut sources: Vec<(Vec<Timestamp>, Vec<f64>)>) -> (Vec<Timestamp>, Vec<f64>) {
    sources.retain(|(t, _)| !t.is_empty());
    match sources.len() {
        0 => return (Vec::new(), Vec::new()),
        1 => return sources.pop().unwrap(),
        _ => {}
    }
    // Fast path: runs that follow each other in time, in source order.
    if sources.windows(2).all(|w| w[0].0.last() < w[1].0.first()) {
        let total = sources.iter().map(|s| s.0.len()).sum();
        let mut ts = Vec::with_capacity(total);
        let mut vals = Vec::with_capacity(total);
        for (t, v) in sources {
            ts.extend_from_slice(&t);
            vals.extend_from_slice(&v);
        }
        return (ts, vals);
    }
    let total: usize = sources.iter().map(|s| s.0.len()).sum();
    let mut all: Vec<(Timestamp, u32, f64)> = Vec::with_capacity(total);
    for (rank, (t, v)) in sources.iter().enumerate() {
        all.extend(t.iter().zip(v).map(|(&t, &v)| (t, rank as u32, v)));
    }
    all.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut ts = Vec::with_capacity(total);
    let mut vals = Vec::with_capacity(total);
    for (t, _, v) in all {
        if ts.last() == Some(&t) {
            *vals.last_mut().unwrap() = v;
        } else {
            ts.push(t);
            vals.push(v);
        }
    }
    (ts, vals)
}

/// Kahan-Babuska compensated sum.
#[derive(Default, Clone, Copy)]
struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.c += (self.sum - t) + v;
        } else {
            self.c += (v - t) + self.sum;
        }
        self.sum = t;
    }
    fn value(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

fn floor_to_step(ts: Timestamp, step: i64) -> Timestamp {
    ts.div_euclid(step) * step
}

/// Aggregate sorted points into epoch-aligned buckets of `step` ms.
/// Returns (bucket starts, values). `ts`/`vals` may include points before `from`
/// (used as predecessors by rate/increase).
pub fn bucketize(
    ts: &[Timestamp],
    vals: &[f64],
    from: Timestamp,
    to: Timestamp,
    step: i64,
    agg: Aggregate,
) -> Result<(Vec<Timestamp>, Vec<f64>)> {
    if step <= 0 {
        return Err(Error::bad_input(format!("step must be positive, got {step} ms")));
    }
    let first_bucket = floor_to_step(from, step);
    let mut out_t = Vec::new();
    let mut out_v = Vec::new();
    let mut i = 0;
    // Last non-stale point before the current position, for counters.
    let mut prev: Option<f64> = None;
    while i < ts.len() {
        let bucket = floor_to_step(ts[i], step);
        let mut j = i;
        while j < ts.len() && floor_to_step(ts[j], step) == bucket {
            j += 1;
        }
        let in_range = bucket >= first_bucket && bucket <= to;
        let mut sum = KahanSum::default();
        let mut count = 0u64;
        let mut min = f64::NAN;
        let mut max = f64::NAN;
        let mut first = None;
        let mut last = None;
        let mut increase = KahanSum::default();
        let mut had_pair = false;
        for k in i..j {
            let v = vals[k];
            if is_stale(v) {
                continue;
            }
            count += 1;
            sum.add(v);
            // As Prometheus's min/max_over_time: a NaN is replaced by any number.
            if min.is_nan() || v < min {
                min = v;
            }
            if max.is_nan() || v > max {
                max = v;
            }
            if first.is_none() {
                first = Some(v);
            }
            last = Some(v);
            if let Some(p) = prev {
                had_pair = true;
                increase.add(if v >= p { v - p } else { v });
            }
            prev = Some(v);
        }
        if in_range && count > 0 {
            let value = match agg {
                Aggregate::Avg => Some(sum.value() / count as f64),
                Aggregate::Sum => Some(sum.value()),
                Aggregate::Count => Some(count as f64),
                Aggregate::Min => Some(min),
                Aggregate::Max => Some(max),
                Aggregate::First => first,
                Aggregate::Last => last,
                Aggregate::Increase => had_pair.then(|| increase.value()),
                Aggregate::Rate => had_pair.then(|| increase.value() / (step as f64 / 1000.0)),
            };
            if let Some(v) = value {
                out_t.push(bucket);
                out_v.push(v);
            }
        }
        i = j;
    }
    Ok((out_t, out_v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_newest_source_wins_and_sorts() {
        let old = (vec![1, 2, 3], vec![1.0, 2.0, 3.0]);
        let new = (vec![2, 4], vec![20.0, 40.0]);
        let (t, v) = merge_sources(vec![old, new]);
        assert_eq!(t, vec![1, 2, 3, 4]);
        assert_eq!(v, vec![1.0, 20.0, 3.0, 40.0]);
        let (t, v) = merge_sources(vec![(vec![1], vec![1.0]), (vec![5], vec![5.0]), (vec![], vec![])]);
        assert_eq!((t, v), (vec![1, 5], vec![1.0, 5.0]));
    }

    #[test]
    fn gauge_aggregates_per_bucket() {
        let ts = vec![0, 5_000, 10_000, 15_000, 20_000];
        let vals = vec![1.0, 3.0, 10.0, 20.0, 7.0];
        let b = |agg| bucketize(&ts, &vals, 0, 20_000, 10_000, agg).unwrap();
        assert_eq!(b(Aggregate::Avg), (vec![0, 10_000, 20_000], vec![2.0, 15.0, 7.0]));
        assert_eq!(b(Aggregate::Sum).1, vec![4.0, 30.0, 7.0]);
        assert_eq!(b(Aggregate::Min).1, vec![1.0, 10.0, 7.0]);
        assert_eq!(b(Aggregate::Max).1, vec![3.0, 20.0, 7.0]);
        assert_eq!(b(Aggregate::Count).1, vec![2.0, 2.0, 1.0]);
        assert_eq!(b(Aggregate::First).1, vec![1.0, 10.0, 7.0]);
        assert_eq!(b(Aggregate::Last).1, vec![3.0, 20.0, 7.0]);
    }

    #[test]
    fn counter_increase_handles_resets_and_previous_bucket() {
        // 0..30s, counter resets at 20s.
        let ts = vec![0, 10_000, 20_000, 30_000];
        let vals = vec![100.0, 110.0, 5.0, 15.0];
        let (t, v) = bucketize(&ts, &vals, 0, 30_000, 20_000, Aggregate::Increase).unwrap();
        assert_eq!(t, vec![0, 20_000]);
        // bucket 0: 110-100; bucket 20s: reset adds 5, then 10.
        assert_eq!(v, vec![10.0, 15.0]);
        let (_, r) = bucketize(&ts, &vals, 0, 30_000, 20_000, Aggregate::Rate).unwrap();
        assert_eq!(r, vec![0.5, 0.75]);
    }

    #[test]
    fn points_before_from_only_feed_counters_and_stale_is_skipped() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let ts = vec![-10_000, 0, 5_000, 10_000];
        let vals = vec![1.0, 2.0, stale, 4.0];
        let (t, v) = bucketize(&ts, &vals, 0, 10_000, 10_000, Aggregate::Increase).unwrap();
        assert_eq!((t, v), (vec![0, 10_000], vec![1.0, 2.0]));
        let (_, c) = bucketize(&ts, &vals, 0, 10_000, 10_000, Aggregate::Count).unwrap();
        assert_eq!(c, vec![1.0, 1.0]);
        assert!(bucketize(&ts, &vals, 0, 1, 0, Aggregate::Avg).is_err());
        assert!(Aggregate::parse("median").is_err());
    }

    #[test]
    fn kahan_sum_is_compensated() {
        let ts: Vec<i64> = (0..4).collect();
        let vals = vec![1e16, 1.0, 1.0, -1e16];
        let (_, v) = bucketize(&ts, &vals, 0, 10, 1000, Aggregate::Sum).unwrap();
        assert_eq!(v, vec![2.0]);
    }
}
