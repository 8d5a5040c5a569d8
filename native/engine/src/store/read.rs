//! Reads: one series merged from chunks, frozen runs and the head; many series
//! in parallel; bucketed aggregates; the latest point.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::chunk::{ChunkFile, TsMemo};
use crate::error::{Error, Result};
use crate::query::{self, Aggregate};
use crate::{SeriesId, Timestamp};

use super::view::{ChunkRef, Frozen};
use super::{read, Store};

pub(crate) fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("timeless-query-{i}"))
            .build()
            .expect("query thread pool")
    })
}

/// Queues `job` on the engine's query pool (the pool that selectors, range
/// functions and the JSON encoder fan out to) and returns at once. Parallel
/// steps started from a pool thread run on it directly, so a query evaluated and
/// encoded inside one job is handed to the pool once, where from any other thread
/// each parallel step is a hand-off to the pool and a wait for its answer.
///
/// `job` must not unwind: a panic in a spawned job aborts the process (catch it).
pub fn spawn_in_query_pool(job: impl FnOnce() + Send + 'static) {
    pool().spawn(job)
}

impl Store {

    /// Decode chunks (from `View::chunks_of`) and merge them, older files first,
    /// keeping only points in `[from, to]`.
    pub(super) fn decode_chunks(
        &self,
        chunks: Vec<(ChunkRef, Arc<ChunkFile>)>,
        from: Timestamp,
        to: Timestamp,
    ) -> (Vec<Timestamp>, Vec<f64>) {
        self.decode_chunks_shared(chunks, from, to, None)
    }

    fn decode_chunks_shared(
        &self,
        mut chunks: Vec<(ChunkRef, Arc<ChunkFile>)>,
        from: Timestamp,
        to: Timestamp,
        memo: Option<&TsMemo>,
    ) -> (Vec<Timestamp>, Vec<f64>) {
        chunks.sort_by_key(|(r, _)| (r.meta.min_ts, r.file_id));
        // The usual case after a merge: chunks that follow each other in time. They are
        // decoded straight into one pair of vectors, trimmed once.
        if chunks.windows(2).all(|w| w[0].0.meta.max_ts < w[1].0.meta.min_ts) {
            let total: usize = chunks.iter().map(|(r, _)| r.meta.count as usize).sum();
            let (mut ts, mut vals) = (Vec::with_capacity(total), Vec::with_capacity(total));
            for (r, file) in &chunks {
                if let Err(e) = file.read_shared(&r.meta, &mut ts, &mut vals, memo) {
                    self.warn(format!("skipped a chunk of series {}: {}", r.meta.series_id, e.message));
                }
            }
            trim(&mut ts, &mut vals, from, to);
            return (ts, vals);
        }
        chunks.sort_by_key(|(r, _)| (r.file_id, r.meta.min_ts));
        let mut sources = Vec::with_capacity(chunks.len());
        for (r, file) in chunks {
            let mut ts = Vec::with_capacity(r.meta.count as usize);
            let mut vals = Vec::with_capacity(r.meta.count as usize);
            match file.read_shared(&r.meta, &mut ts, &mut vals, memo) {
                Ok(()) => {
                    trim(&mut ts, &mut vals, from, to);
                    sources.push((ts, vals));
                }
                Err(e) => self.warn(format!("skipped a chunk of series {}: {}", r.meta.series_id, e.message)),
            }
        }
        query::merge_sources(sources)
    }

    /// Points of one series in `[from, to]`, sorted, one per timestamp.
    pub fn read(&self, id: SeriesId, from: Timestamp, to: Timestamp) -> (Vec<Timestamp>, Vec<f64>) {
        self.read_shared(id, from, to, None)
    }

    /// [`read`](Self::read) for one of many series read together: timestamp columns
    /// shared between chunks are decoded once per `memo`.
    pub fn read_shared(&self, id: SeriesId, from: Timestamp, to: Timestamp, memo: Option<&TsMemo>) -> (Vec<Timestamp>, Vec<f64>) {
        // Head first, then the view: see the module docs.
        let head = self.head.read(id, from, to);
        let (chunks, frozen) = {
            let view = read(&self.view);
            let mut frozen: Vec<Arc<Frozen>> =
                view.frozen.iter().filter(|f| f.series.contains_key(&id)).cloned().collect();
            frozen.sort_by_key(|f| f.seq);
            (view.chunks_of(id, from, to), frozen)
        };
        let mut sources = vec![self.decode_chunks_shared(chunks, from, to, memo)];
        for f in frozen {
            let (ts, vals) = &f.series[&id];
            let (mut t, mut v) = (ts.clone(), vals.clone());
            trim(&mut t, &mut v, from, to);
            sources.push((t, v));
        }
        sources.push(head);
        query::merge_sources(sources)
    }

    /// [`read_shared`](Self::read_shared) with the timestamps as a shared column: the
    /// values go to `vals` (cleared first, so a caller can reuse one buffer), and series
    /// whose points all come from chunks sharing timestamp columns (the usual case after
    /// a flush or merge of series scraped together) get the very same `Arc` for the same
    /// columns, which a caller can use to derive per-step positions once for all of them.
    pub fn read_columns(
        &self,
        id: SeriesId,
        from: Timestamp,
        to: Timestamp,
        memo: &TsMemo,
        vals: &mut Vec<f64>,
    ) -> Arc<[Timestamp]> {
        vals.clear();
        if let Some(ts) = self.read_columns_fast(id, from, to, memo, vals) {
            return ts;
        }
        vals.clear();
        let (ts, v) = self.read_shared(id, from, to, Some(memo));
        *vals = v;
        ts.into()
    }

    /// [`read_columns`](Self::read_columns) when only chunks that follow each other in
    /// time hold points of the series in range (nothing in the head or frozen runs);
    /// `None` otherwise, or on a chunk that fails to decode (the caller then takes the
    /// general path, which reports it).
    fn read_columns_fast(
        &self,
        id: SeriesId,
        from: Timestamp,
        to: Timestamp,
        memo: &TsMemo,
        vals: &mut Vec<f64>,
    ) -> Option<Arc<[Timestamp]>> {
        let (head_ts, _) = self.head.read(id, from, to);
        if !head_ts.is_empty() {
            return None;
        }
        let mut chunks = {
            let view = read(&self.view);
            if view.frozen.iter().any(|f| f.series.contains_key(&id)) {
                return None;
            }
            view.chunks_of(id, from, to)
        };
        chunks.sort_by_key(|(r, _)| (r.meta.min_ts, r.file_id));
        if !chunks.windows(2).all(|w| w[0].0.meta.max_ts < w[1].0.meta.min_ts) {
            return None;
        }
        let total: usize = chunks.iter().map(|(r, _)| r.meta.count as usize).sum();
        vals.reserve(total);
        let mut keys = Vec::with_capacity(chunks.len());
        let mut cols = Vec::with_capacity(chunks.len());
        for (r, file) in &chunks {
            let (key, ts) = file.read_columns(&r.meta, vals, memo).ok()?;
            keys.push(key);
            cols.push(ts);
        }
        let whole = |cols: &[Arc<[Timestamp]>]| -> (usize, usize) {
            let n: usize = cols.iter().map(|c| c.len()).sum();
            let before = cols.iter().map(|c| c.partition_point(|&t| t < from)).sum();
            let upto = cols.iter().map(|c| c.partition_point(|&t| t <= to)).sum::<usize>();
            debug_assert!(before <= upto && upto <= n);
            (before, upto)
        };
        // Chunks in order with ascending timestamps: the points in range are one index range.
        let (lo, hi) = whole(&cols);
        vals.truncate(hi);
        if lo > 0 {
            vals.drain(..lo);
        }
        if cols.len() == 1 && lo == 0 && hi == cols[0].len() {
            return cols.pop();
        }
        Some(memo.joined(&keys, from, to, || {
            let mut ts = Vec::with_capacity(hi - lo);
            for c in &cols {
                ts.extend_from_slice(c);
            }
            ts[lo..hi].into()
        }))
    }

    /// `read` for many series at once, in parallel.
    pub fn read_many(&self, ids: &[SeriesId], from: Timestamp, to: Timestamp) -> Vec<(SeriesId, Vec<Timestamp>, Vec<f64>)> {
        let memo = TsMemo::default();
        pool().install(|| {
            ids.par_iter()
                .map(|&id| {
                    let (t, v) = self.read_shared(id, from, to, Some(&memo));
                    (id, t, v)
                })
                .collect()
        })
    }

    /// Bucketed aggregate of each series (see `query::bucketize`).
    pub fn aggregate_many(
        &self,
        ids: &[SeriesId],
        from: Timestamp,
        to: Timestamp,
        step: i64,
        agg: Aggregate,
    ) -> Result<Vec<(SeriesId, Vec<Timestamp>, Vec<f64>)>> {
        if step <= 0 {
            return Err(Error::bad_input(format!("step must be positive, got {step} ms")));
        }
        let read_from = if agg.needs_previous_point() { from.saturating_sub(step) } else { from };
        pool().install(|| {
            ids.par_iter()
                .map(|&id| {
                    let (t, v) = self.read(id, read_from, to.saturating_add(step - 1));
                    let (bt, bv) = query::bucketize(&t, &v, from, to, step, agg)?;
                    Ok((id, bt, bv))
                })
                .collect()
        })
    }

    /// The newest point of a series, if it has any.
    pub fn latest(&self, id: SeriesId) -> Option<(Timestamp, f64)> {
        let head = self.head.latest(id);
        let (chunks, frozen) = {
            let view = read(&self.view);
            let newest = view.chunks.get(id as usize).and_then(|refs| refs.iter().map(|r| r.meta.max_ts).max());
            let chunks = newest.map(|t| (t, view.chunks_of(id, t, t)));
            let frozen: Option<(Timestamp, f64)> = view
                .frozen
                .iter()
                .filter_map(|f| f.series.get(&id).and_then(|(t, v)| t.last().map(|&t| (t, *v.last().unwrap()))))
                .max_by_key(|p| p.0);
            (chunks, frozen)
        };
        let chunk = chunks.and_then(|(max_ts, chunks)| {
            let (t, v) = self.decode_chunks(chunks, max_ts, max_ts);
            t.last().map(|&t| (t, *v.last().unwrap()))
        });
        // Newest source wins a tie: head over frozen over chunks.
        [chunk, frozen, head].into_iter().flatten().fold(None, |best: Option<(Timestamp, f64)>, p| match best {
            Some(b) if b.0 > p.0 => Some(b),
            _ => Some(p),
        })
    }

}

fn trim(ts: &mut Vec<Timestamp>, vals: &mut Vec<f64>, from: Timestamp, to: Timestamp) {
    let hi = ts.partition_point(|&t| t <= to);
    ts.truncate(hi);
    vals.truncate(hi);
    let lo = ts.partition_point(|&t| t < from);
    if lo > 0 {
        ts.drain(..lo);
        vals.drain(..lo);
    }
}

