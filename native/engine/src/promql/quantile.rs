//! Quantiles: over a set of values (`quantile`, `quantile_over_time`) and over
//! classic `le` histogram buckets (`histogram_quantile`).

use hashbrown::HashMap;

use super::value::{drop_name, get, Labels, Series};

/// The φ-quantile of `values` with linear interpolation between ranks.
/// NaN for no values or NaN φ; -Inf below 0, +Inf above 1.
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    quantile_in_place(q, &mut values)
}

/// [`quantile`] over a buffer it may reorder.
pub fn quantile_in_place(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Prometheus sorts NaN first; the rest in numeric order (-0 and 0 are equal, so
    // either may come first: they give the same result).
    let mut nans = 0;
    for i in 0..values.len() {
        if values[i].is_nan() {
            values.swap(i, nans);
            nans += 1;
        }
    }
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    let at = |values: &mut [f64], k: usize| -> f64 {
        if k < nans {
            return f64::NAN;
        }
        let rest = &mut values[nans..];
        *rest.select_nth_unstable_by(k - nans, f64::total_cmp).1
    };
    let lo = at(values, lower);
    let hi = if upper == lower {
        lo
    } else if lower >= nans {
        // After selecting `lower`, everything right of it is >= it: the next rank is their minimum.
        values[lower + 1..].iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        at(values, upper)
    };
    lo * (1.0 - weight) + hi * weight
}

/// Prometheus's `bucketQuantile` over `(upper bound, cumulative count)` pairs.
pub fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().map_or(true, |b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    let mut buckets = merged;
    // Precision errors, then monotonicity.
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let delta = (b.1 - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / b.1 <= 1e-12 {
            b.1 = prev;
        } else {
            prev = b.1;
        }
    }
    let mut max = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// `histogram_quantile(q, buckets)` over classic histograms: series are grouped by
/// their labels without `le`; the result drops `le` and `__name__`. Series whose
/// `le` is not a number are ignored.
pub fn histogram_quantile(q: &[f64], series: Vec<Series>, steps: usize) -> Vec<Series> {
    let mut groups: HashMap<Labels, usize> = HashMap::new();
    let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (idx, s) in series.iter().enumerate() {
        let Some(le) = parse_le(get(&s.labels, "le")) else { continue };
        let mut sig = s.labels.clone();
        sig.retain(|(n, _)| n != "le");
        let gi = *groups.entry(sig.clone()).or_insert_with(|| {
            let mut out = sig;
            drop_name(&mut out);
            members.push((out, vec![]));
            members.len() - 1
        });
        members[gi].1.push((le, idx));
    }
    members
        .into_iter()
        .map(|(labels, bs)| {
            let vals = (0..steps)
                .map(|i| {
                    let buckets: Vec<(f64, f64)> =
                        bs.iter().filter_map(|&(le, idx)| series[idx].vals[i].map(|v| (le, v))).collect();
                    (!buckets.is_empty()).then(|| bucket_quantile(q[i], buckets))
                })
                .collect();
            Series { labels, vals }
        })
        .collect()
}

/// Go's `strconv.ParseFloat` for bucket bounds (accepts `+Inf`, `Inf`, `NaN`, any case).
fn parse_le(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Some(if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if s.is_empty() || s.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    s.parse::<f64>().ok()
}
