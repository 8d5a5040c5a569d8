//! One series' unflushed points, compactly encoded.
//!
//! Points that arrive in timestamp order (the common case) are appended to a bit stream
//! ([`super::point_codec`]): a few bits per point instead of 16 bytes plus doubling slack.
//! A point whose timestamp is not above the stream's last one (out of order, or a duplicate)
//! goes to a small plain side list. Every stream point with timestamp `t` was written before
//! any side point with timestamp `t` (a side point's timestamp is at most the stream's last
//! at that moment, and later stream points are above it), so reads resolve duplicates as
//! "side wins, and within the side the last written wins": exactly last write wins.

use super::bitstream::BitStream;
use super::point_codec::{TimestampCoder, ValueCoder};
use super::sort_dedup_last_wins;
use crate::Timestamp;

/// Points of one series waiting to be flushed (80 bytes inline; the encoder state lives
/// here, not behind a pointer, because the shard's buffers are visited in order by a batch
/// and only the stream's tail word is a random memory access).
///
/// Stream layout: the first timestamp as 64 raw bits, then per point its timestamp (except
/// for the first) and its value, see [`super::point_codec`].
#[derive(Default, Debug)]
pub struct SeriesBuffer {
    stream: BitStream,
    /// Encoder states; their last timestamp and value are the stream's last point.
    ts: TimestampCoder,
    vals: ValueCoder,
    /// Points in `stream`.
    count: u32,
    /// Out-of-order and duplicate points, if any were written.
    side: Option<Box<Side>>,
}

/// Points that were not above the stream's last timestamp when written.
#[derive(Debug)]
struct Side {
    /// In arrival order; all at or below the stream's last timestamp.
    points: Vec<(Timestamp, f64)>,
    min: Timestamp,
}

impl SeriesBuffer {
    #[inline]
    pub(super) fn push(&mut self, ts: Timestamp, val: f64) {
        if self.count == 0 {
            self.stream.put(ts as u64, 64);
            self.ts = TimestampCoder::new(ts);
        } else if ts > self.ts.last() {
            self.ts.encode(&mut self.stream, ts);
        } else {
            self.push_side(ts, val);
            return;
        }
        self.vals.encode(&mut self.stream, val);
        self.count = self.count.checked_add(1).expect("over 2^32 points in one head series");
    }

    #[cold]
    fn push_side(&mut self, ts: Timestamp, val: f64) {
        let side = self.side.get_or_insert_with(|| Box::new(Side { points: Vec::new(), min: ts }));
        side.points.push((ts, val));
        side.min = side.min.min(ts);
    }

    /// Points written (duplicates counted) since the buffer was last empty.
    pub fn len(&self) -> usize {
        self.count as usize + self.side.as_ref().map_or(0, |s| s.points.len())
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn first_ts(&self) -> Timestamp {
        self.stream.reader_at(0).get(64) as Timestamp
    }

    /// Take the points out, sorted by timestamp, one point per timestamp (the last written).
    pub(super) fn take_sorted(&mut self) -> (Vec<Timestamp>, Vec<f64>) {
        let out = self.read(Timestamp::MIN, Timestamp::MAX);
        *self = SeriesBuffer::default();
        out
    }

    /// Copy of the points in `[from, to]`, sorted and deduplicated.
    pub(super) fn read(&self, from: Timestamp, to: Timestamp) -> (Vec<Timestamp>, Vec<f64>) {
        let (mut ts, mut vals) = (Vec::new(), Vec::new());
        if self.is_empty() || from > to {
            return (ts, vals);
        }
        let (first, last) = (self.first_ts(), self.ts.last());
        if from <= first && to >= last {
            ts.reserve_exact(self.count as usize);
            vals.reserve_exact(self.count as usize);
        }
        if from <= last && to >= first {
            self.decode_range(first, from, to, &mut ts, &mut vals);
        }
        match &self.side {
            Some(side) if from <= last && to >= side.min => {
                let (mut side_ts, mut side_vals): (Vec<Timestamp>, Vec<f64>) =
                    side.points.iter().filter(|&&(t, _)| t >= from && t <= to).copied().unzip();
                sort_dedup_last_wins(&mut side_ts, &mut side_vals);
                merge_side_wins(ts, vals, side_ts, side_vals)
            }
            _ => (ts, vals),
        }
    }

    /// Stream points in `[from, to]`, in order, appended to `ts`/`vals`.
    fn decode_range(
        &self,
        first: Timestamp,
        from: Timestamp,
        to: Timestamp,
        ts: &mut Vec<Timestamp>,
        vals: &mut Vec<f64>,
    ) {
        let mut r = self.stream.reader_at(64);
        let mut tc = TimestampCoder::new(first);
        let mut vc = ValueCoder::default();
        for i in 0..self.count {
            let t = if i == 0 { first } else { tc.decode(&mut r) };
            let v = vc.decode(&mut r);
            if t > to {
                break;
            }
            if t >= from {
                ts.push(t);
                vals.push(v);
            }
        }
    }

    /// The point with the highest timestamp (the last written among equals).
    pub(super) fn latest(&self) -> Option<(Timestamp, f64)> {
        if self.is_empty() {
            return None;
        }
        let last = self.ts.last();
        // Side points never exceed the stream's last; one equal to it was written after it.
        let side = self.side.as_ref().and_then(|s| s.points.iter().rev().find(|p| p.0 == last));
        Some(match side {
            Some(&p) => p,
            None => (last, self.vals.last_written(&self.stream)),
        })
    }

    /// Lowest and highest buffered timestamps.
    pub(super) fn min_max(&self) -> Option<(Timestamp, Timestamp)> {
        if self.is_empty() {
            return None;
        }
        let side_min = self.side.as_ref().map_or(Timestamp::MAX, |s| s.min);
        Some((self.first_ts().min(side_min), self.ts.last()))
    }
}

/// Merge two sorted, duplicate-free point lists; on equal timestamps `b`'s point is kept.
fn merge_side_wins(
    a_ts: Vec<Timestamp>,
    a_vals: Vec<f64>,
    b_ts: Vec<Timestamp>,
    b_vals: Vec<f64>,
) -> (Vec<Timestamp>, Vec<f64>) {
    if b_ts.is_empty() {
        return (a_ts, a_vals);
    }
    let mut ts = Vec::with_capacity(a_ts.len() + b_ts.len());
    let mut vals = Vec::with_capacity(a_ts.len() + b_ts.len());
    let (mut i, mut j) = (0, 0);
    while i < a_ts.len() || j < b_ts.len() {
        let take_b = j < b_ts.len() && (i == a_ts.len() || b_ts[j] <= a_ts[i]);
        if take_b {
            if i < a_ts.len() && a_ts[i] == b_ts[j] {
                i += 1; // overwritten by the later write
            }
            ts.push(b_ts[j]);
            vals.push(b_vals[j]);
            j += 1;
        } else {
            ts.push(a_ts[i]);
            vals.push(a_vals[i]);
            i += 1;
        }
    }
    (ts, vals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The plain model: every write in arrival order; reads sort stably and keep the last.
    #[derive(Default)]
    struct Model(Vec<(Timestamp, f64)>);

    impl Model {
        fn read(&self, from: Timestamp, to: Timestamp) -> (Vec<Timestamp>, Vec<f64>) {
            let (mut ts, mut vals): (Vec<_>, Vec<_>) =
                self.0.iter().filter(|&&(t, _)| t >= from && t <= to).copied().unzip();
            sort_dedup_last_wins(&mut ts, &mut vals);
            (ts, vals)
        }
        fn latest(&self) -> Option<(Timestamp, f64)> {
            let (ts, vals) = self.read(Timestamp::MIN, Timestamp::MAX);
            ts.last().map(|&t| (t, *vals.last().unwrap()))
        }
        fn min_max(&self) -> Option<(Timestamp, Timestamp)> {
            let ts = self.0.iter().map(|p| p.0);
            Some((ts.clone().min()?, ts.max()?))
        }
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn same(a: &(Vec<Timestamp>, Vec<f64>), b: &(Vec<Timestamp>, Vec<f64>)) -> bool {
        a.0 == b.0 && bits(&a.1) == bits(&b.1)
    }

    const SPECIAL: [f64; 8] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        5e-324,
    ];

    fn random_value(rng: &mut StdRng, prev: f64) -> f64 {
        match rng.gen_range(0..100) {
            0..=4 => SPECIAL[rng.gen_range(0..SPECIAL.len())],
            5 => f64::from_bits(0x7ff0_0000_0000_0002), // Prometheus stale marker
            6..=10 => f64::from_bits(rng.gen()),
            11..=40 => ((prev.abs().min(1e6) + rng.gen_range(-2.0..2.0)) * 10.0).round() / 10.0,
            41..=60 => rng.gen_range(0..1u64 << 40) as f64,
            _ => prev,
        }
    }

    fn random_ts(rng: &mut StdRng, prev: Timestamp, disorder: u32) -> Timestamp {
        match rng.gen_range(0..100) {
            r if r < disorder => prev.wrapping_sub(rng.gen_range(0..50_000)),
            r if r < disorder + 2 => prev, // duplicate
            r if r < disorder + 3 => rng.gen_range(Timestamp::MIN..=Timestamp::MAX),
            r if r < disorder + 4 => Timestamp::MAX - rng.gen_range(0..3),
            r if r < disorder + 5 => Timestamp::MIN + rng.gen_range(0..3),
            _ => prev.wrapping_add(10_000 + rng.gen_range(-5..=5)),
        }
    }

    fn check(buf: &SeriesBuffer, model: &Model, rng: &mut StdRng) {
        let all = (Timestamp::MIN, Timestamp::MAX);
        assert!(same(&buf.read(all.0, all.1), &model.read(all.0, all.1)));
        assert_eq!(buf.len(), model.0.len());
        let l = (buf.latest(), model.latest());
        assert_eq!(l.0.map(|p| (p.0, p.1.to_bits())), l.1.map(|p| (p.0, p.1.to_bits())));
        assert_eq!(buf.min_max(), model.min_max());
        for _ in 0..5 {
            let pick = |rng: &mut StdRng| match model.0.get(rng.gen_range(0..model.0.len().max(1))) {
                Some(&(t, _)) if rng.gen_bool(0.8) => t.wrapping_add(rng.gen_range(-1..=1)),
                _ => rng.gen(),
            };
            let (a, b) = (pick(rng), pick(rng));
            let (from, to) = (a.min(b), a.max(b));
            assert!(same(&buf.read(from, to), &model.read(from, to)), "[{from}, {to}]");
        }
    }

    #[test]
    fn random_sequences_match_the_plain_model() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..400 {
            let disorder = [0, 0, 1, 5, 30, 90][round % 6];
            let len = rng.gen_range(1..600);
            let mut buf = SeriesBuffer::default();
            let mut model = Model::default();
            let mut t: Timestamp = rng.gen_range(-1i64 << 50..1 << 50);
            let mut v = 0.0;
            for i in 0..len {
                t = random_ts(&mut rng, t, disorder);
                v = random_value(&mut rng, v);
                buf.push(t, v);
                model.0.push((t, v));
                if i % 97 == 0 {
                    check(&buf, &model, &mut rng);
                }
            }
            check(&buf, &model, &mut rng);
            let want = model.read(Timestamp::MIN, Timestamp::MAX);
            assert!(same(&buf.take_sorted(), &want));
            assert!(buf.is_empty() && buf.len() == 0 && buf.latest().is_none() && buf.min_max().is_none());
        }
    }

    #[test]
    fn duplicates_keep_the_last_write_across_stream_and_side() {
        let mut buf = SeriesBuffer::default();
        for (t, v) in [(10, 1.0), (20, 2.0), (20, 2.5), (30, 3.0), (10, 1.5), (30, 3.5), (30, 3.75), (40, 4.0), (20, 2.75)] {
            buf.push(t, v);
        }
        assert_eq!(buf.len(), 9);
        assert_eq!(buf.latest(), Some((40, 4.0)));
        assert_eq!(buf.read(15, 35), (vec![20, 30], vec![2.75, 3.75]));
        buf.push(40, -0.0);
        assert_eq!(buf.latest().map(|p| p.1.to_bits()), Some((-0.0f64).to_bits()));
        buf.push(5, 0.5);
        assert_eq!(buf.min_max(), Some((5, 40)));
        assert_eq!(buf.read(35, 30), (vec![], vec![]));
        let (ts, vals) = buf.take_sorted();
        assert_eq!(ts, vec![5, 10, 20, 30, 40]);
        assert_eq!(bits(&vals), bits(&[0.5, 1.5, 2.75, 3.75, -0.0]));
    }

    #[test]
    fn extreme_timestamps_and_special_values_round_trip() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let pts = [
            (Timestamp::MIN, stale),
            (Timestamp::MIN + 1, -0.0),
            (-1, f64::NAN),
            (0, f64::NEG_INFINITY),
            (1 << 62, f64::INFINITY),
            (Timestamp::MAX - 1, 0.1),
            (Timestamp::MAX, stale),
        ];
        let mut buf = SeriesBuffer::default();
        for &(t, v) in &pts {
            buf.push(t, v);
        }
        assert_eq!(buf.min_max(), Some((Timestamp::MIN, Timestamp::MAX)));
        assert_eq!(buf.latest().map(|p| (p.0, p.1.to_bits())), Some((Timestamp::MAX, stale.to_bits())));
        let (ts, vals) = buf.take_sorted();
        assert_eq!(ts, pts.iter().map(|p| p.0).collect::<Vec<_>>());
        assert_eq!(bits(&vals), pts.iter().map(|p| p.1.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_buffer_is_small_and_holds_no_heap() {
        assert!(std::mem::size_of::<SeriesBuffer>() <= 80);
        let mut buf = SeriesBuffer::default();
        buf.push(1, 1.0);
        buf.push(0, 0.0);
        buf.take_sorted();
        assert_eq!(buf.stream.heap_bytes(), 0);
        assert!(buf.side.is_none());
    }

    #[test]
    fn in_order_bench_like_points_take_a_few_bytes_each() {
        let mut buf = SeriesBuffer::default();
        let mut v = 42.0f64;
        let mut rng = StdRng::seed_from_u64(1);
        for i in 0..260i64 {
            v = ((v + rng.gen_range(-2.0..2.0)) * 10.0).round() / 10.0;
            buf.push(1_764_000_000_000 + i * 10_000 + rng.gen_range(1..=5), v);
        }
        let heap = buf.stream.heap_bytes();
        assert!(heap <= 260 * 3, "{heap} bytes for 260 cpu-like points");
        assert_eq!(buf.len(), 260);
    }
}
