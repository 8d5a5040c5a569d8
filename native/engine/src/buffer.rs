//! The head: sharded in-memory buffers that writes land in before a flush turns
//! them into chunks.
//!
//! Series ids are dense (allocated sequentially), so a shard is a plain `Vec`
//! indexed by `id / shards` and the shard is `id % shards`: no hashing on the
//! write path. A batch is scattered by shard first, so each shard's lock is taken
//! once per batch and writers on different schedulers rarely meet on one lock.
//!
//! A series buffer ([`SeriesBuffer`]) encodes in-order points compactly as they arrive
//! and keeps out-of-order points and duplicate timestamps aside; those are resolved
//! (sorted, last write wins) only when the buffer is read or cut.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::{SeriesId, Timestamp};

mod bitstream;
mod point_codec;
mod series;

pub use series::SeriesBuffer;

/// Sort points by timestamp keeping, for equal timestamps, only the one written last.
pub fn sort_dedup_last_wins(ts: &mut Vec<Timestamp>, vals: &mut Vec<f64>) {
    debug_assert_eq!(ts.len(), vals.len());
    if ts.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    let mut order: Vec<u32> = (0..ts.len() as u32).collect();
    // Stable: equal timestamps keep arrival order, so the last one is the newest.
    order.sort_by_key(|&i| ts[i as usize]);
    let mut out_ts = Vec::with_capacity(ts.len());
    let mut out_vals = Vec::with_capacity(ts.len());
    for &i in &order {
        let (t, v) = (ts[i as usize], vals[i as usize]);
        if out_ts.last() == Some(&t) {
            *out_vals.last_mut().unwrap() = v;
        } else {
            out_ts.push(t);
            out_vals.push(v);
        }
    }
    *ts = out_ts;
    *vals = out_vals;
}

#[derive(Default)]
struct Shard {
    /// Indexed by `id / shard_count`.
    series: Vec<SeriesBuffer>,
    points: usize,
    /// Wall-clock ms of the first write into this shard since its last cut (0 = empty).
    oldest_write_ms: i64,
    /// Series whose buffer reached the per-series threshold since the last cut.
    full: Vec<SeriesId>,
}

/// One series' points cut out of the head: sorted, one point per timestamp.
pub type CutSeries = (SeriesId, Vec<Timestamp>, Vec<f64>);

/// The sharded head.
pub struct Head {
    shards: Box<[Mutex<Shard>]>,
    points: AtomicUsize,
    max_points_per_series: usize,
}

impl Head {
    /// `shards` locks; a series is marked full once it holds `max_points_per_series` points.
    pub fn new(shards: usize, max_points_per_series: usize) -> Head {
        let shards = shards.max(1);
        Head {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            points: AtomicUsize::new(0),
            max_points_per_series: max_points_per_series.max(1),
        }
    }

    fn locate(&self, id: SeriesId) -> (usize, usize) {
        let n = self.shards.len() as u64;
        ((id % n) as usize, (id / n) as usize)
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding a shard lock cannot leave a buffer half-updated in a
        // way that breaks invariants (pushes are to two Vecs of equal length at worst
        // differing by one on allocation failure, which aborts anyway), so recover.
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add points; `ids`, `ts` and `vals` have equal lengths.
    pub fn insert(&self, ids: &[SeriesId], ts: &[Timestamp], vals: &[f64], now_ms: i64) {
        debug_assert!(ids.len() == ts.len() && ts.len() == vals.len());
        let n = self.shards.len();
        if ids.len() <= 4 || n == 1 {
            for i in 0..ids.len() {
                let (s, local) = self.locate(ids[i]);
                let mut shard = self.lock(s);
                self.push(&mut shard, ids[i], local, ts[i], vals[i], now_ms);
                shard.points += 1;
            }
        } else {
            // Counting sort of the batch by shard, then one lock per shard.
            let mut counts = vec![0usize; n + 1];
            for &id in ids {
                counts[(id % n as u64) as usize + 1] += 1;
            }
            for s in 0..n {
                counts[s + 1] += counts[s];
            }
            let starts = counts.clone();
            let mut order = vec![0u32; ids.len()];
            for (i, &id) in ids.iter().enumerate() {
                let s = (id % n as u64) as usize;
                order[counts[s]] = i as u32;
                counts[s] += 1;
            }
            for s in 0..n {
                let run = &order[starts[s]..starts[s + 1]];
                if run.is_empty() {
                    continue;
                }
                let mut shard = self.lock(s);
                for &i in run {
                    let i = i as usize;
                    let local = (ids[i] / n as u64) as usize;
                    self.push(&mut shard, ids[i], local, ts[i], vals[i], now_ms);
                }
                shard.points += run.len();
            }
        }
        self.points.fetch_add(ids.len(), Ordering::Relaxed);
    }

    fn push(&self, shard: &mut Shard, id: SeriesId, local: usize, ts: Timestamp, val: f64, now_ms: i64) {
        if shard.series.len() <= local {
            shard.series.resize_with(local + 1, SeriesBuffer::default);
        }
        if shard.oldest_write_ms == 0 {
            shard.oldest_write_ms = now_ms.max(1);
        }
        let buf = &mut shard.series[local];
        buf.push(ts, val);
        if buf.len() == self.max_points_per_series {
            shard.full.push(id);
        }
    }

    /// Total buffered points (including duplicates not yet resolved).
    pub fn points(&self) -> usize {
        self.points.load(Ordering::Relaxed)
    }

    /// Wall-clock ms of the oldest write not yet cut, if any.
    pub fn oldest_write_ms(&self) -> Option<i64> {
        (0..self.shards.len())
            .filter_map(|s| {
                let shard = self.lock(s);
                (shard.points > 0).then_some(shard.oldest_write_ms)
            })
            .min()
    }

    /// Series that reached the per-series threshold (and may have been cut since).
    pub fn full_series(&self) -> Vec<SeriesId> {
        let mut out = Vec::new();
        for s in 0..self.shards.len() {
            out.extend(self.lock(s).full.drain(..));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Cut every buffer out of the head.
    pub fn take_all(&self) -> Vec<CutSeries> {
        self.take_shards(0..self.shards.len())
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Points buffered in shard `s`.
    pub fn shard_points(&self, s: usize) -> usize {
        self.lock(s).points
    }

    /// Cut every buffer of the shards in `range` out of the head, sorted by series id.
    pub fn take_shards(&self, range: std::ops::Range<usize>) -> Vec<CutSeries> {
        let n = self.shards.len() as u64;
        let mut out = Vec::new();
        for s in range {
            let mut shard = self.lock(s);
            for (local, buf) in shard.series.iter_mut().enumerate() {
                if !buf.is_empty() {
                    let (ts, vals) = buf.take_sorted();
                    out.push((local as u64 * n + s as u64, ts, vals));
                }
            }
            self.points.fetch_sub(shard.points, Ordering::Relaxed);
            shard.points = 0;
            shard.oldest_write_ms = 0;
            shard.full.clear();
        }
        out.sort_unstable_by_key(|c| c.0);
        out
    }

    /// Cut the given series out of the head (ids not buffered are skipped).
    pub fn take_series(&self, ids: &[SeriesId]) -> Vec<CutSeries> {
        let mut out = Vec::new();
        for &id in ids {
            let (s, local) = self.locate(id);
            let mut shard = self.lock(s);
            if let Some(buf) = shard.series.get_mut(local) {
                if !buf.is_empty() {
                    let n = buf.len();
                    let (ts, vals) = buf.take_sorted();
                    shard.points -= n;
                    self.points.fetch_sub(n, Ordering::Relaxed);
                    out.push((id, ts, vals));
                }
            }
        }
        out
    }

    /// Drop the buffers of deleted series.
    pub fn remove(&self, ids: &[SeriesId]) {
        for &id in ids {
            let (s, local) = self.locate(id);
            let mut shard = self.lock(s);
            if let Some(buf) = shard.series.get_mut(local) {
                let n = buf.len();
                *buf = SeriesBuffer::default();
                shard.points -= n;
                self.points.fetch_sub(n, Ordering::Relaxed);
            }
        }
    }

    /// Buffered points of one series in `[from, to]`, sorted, last write wins.
    pub fn read(&self, id: SeriesId, from: Timestamp, to: Timestamp) -> (Vec<Timestamp>, Vec<f64>) {
        let (s, local) = self.locate(id);
        let shard = self.lock(s);
        match shard.series.get(local) {
            Some(buf) if !buf.is_empty() => buf.read(from, to),
            _ => (Vec::new(), Vec::new()),
        }
    }

    pub fn latest(&self, id: SeriesId) -> Option<(Timestamp, f64)> {
        let (s, local) = self.locate(id);
        self.lock(s).series.get(local).and_then(|b| b.latest())
    }

    /// Buffered points of one series (all of them, whatever their timestamps).
    pub fn len_of(&self, id: SeriesId) -> usize {
        let (s, local) = self.locate(id);
        self.lock(s).series.get(local).map_or(0, |b| b.len())
    }

    pub fn min_max(&self, id: SeriesId) -> Option<(Timestamp, Timestamp)> {
        let (s, local) = self.locate(id);
        self.lock(s).series.get(local).and_then(|b| b.min_max())
    }

    /// Oldest and newest buffered timestamps over all series.
    pub fn time_range(&self) -> Option<(Timestamp, Timestamp)> {
        let mut range: Option<(Timestamp, Timestamp)> = None;
        for s in 0..self.shards.len() {
            let shard = self.lock(s);
            for buf in &shard.series {
                if let Some((lo, hi)) = buf.min_max() {
                    range = Some(match range {
                        None => (lo, hi),
                        Some((a, b)) => (a.min(lo), b.max(hi)),
                    });
                }
            }
        }
        range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_writes_read_back_in_range() {
        let head = Head::new(4, 1000);
        let ids: Vec<u64> = (0..10).map(|i| i % 3).collect();
        let ts: Vec<i64> = (0..10).map(|i| i * 10).collect();
        let vals: Vec<f64> = (0..10).map(|i| i as f64).collect();
        head.insert(&ids, &ts, &vals, 1);
        assert_eq!(head.points(), 10);
        let (t, v) = head.read(0, 0, 1000);
        assert_eq!(t, vec![0, 30, 60, 90]);
        assert_eq!(v, vec![0.0, 3.0, 6.0, 9.0]);
        let (t, _) = head.read(0, 30, 60);
        assert_eq!(t, vec![30, 60]);
        assert_eq!(head.latest(1), Some((70, 7.0)));
        assert_eq!(head.min_max(2), Some((20, 80)));
    }

    #[test]
    fn out_of_order_and_duplicates_last_write_wins() {
        let head = Head::new(2, 1000);
        head.insert(&[5, 5, 5, 5, 5], &[30, 10, 20, 10, 30], &[3.0, 1.0, 2.0, 1.5, 3.5], 1);
        let (t, v) = head.read(5, i64::MIN, i64::MAX);
        assert_eq!(t, vec![10, 20, 30]);
        assert_eq!(v, vec![1.5, 2.0, 3.5]);
        assert_eq!(head.latest(5), Some((30, 3.5)));
        let cut = head.take_all();
        assert_eq!(cut, vec![(5, vec![10, 20, 30], vec![1.5, 2.0, 3.5])]);
        assert_eq!(head.points(), 0);
        assert_eq!(head.read(5, i64::MIN, i64::MAX).0.len(), 0);
    }

    #[test]
    fn full_series_and_partial_cut() {
        let head = Head::new(3, 4);
        for i in 0..6 {
            head.insert(&[1, 2], &[i, i], &[0.0, 0.0], 1);
        }
        head.insert(&[3], &[0], &[0.0], 1);
        assert_eq!(head.full_series(), vec![1, 2]);
        let cut = head.take_series(&[1, 9]);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].1.len(), 6);
        assert_eq!(head.points(), 7);
        head.remove(&[2]);
        assert_eq!(head.points(), 1);
        assert!(head.oldest_write_ms().is_some());
        head.take_all();
        assert_eq!(head.oldest_write_ms(), None);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let head = std::sync::Arc::new(Head::new(8, 1 << 20));
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let head = head.clone();
                std::thread::spawn(move || {
                    for round in 0..200i64 {
                        let ids: Vec<u64> = (0..50).collect();
                        let ts = vec![round * 4 + w; 50];
                        let vals = vec![w as f64; 50];
                        head.insert(&ids, &ts, &vals, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(head.points(), 4 * 200 * 50);
        for id in 0..50 {
            assert_eq!(head.read(id, i64::MIN, i64::MAX).0.len(), 800);
        }
    }
}
