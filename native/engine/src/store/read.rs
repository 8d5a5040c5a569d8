//! Reads: one series merged from chunks, frozen runs and the head; many series
//! in parallel; bucketed aggregates; the latest point.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::chunk::{AllValues, ChunkFile, TsMemo, Wanted};
use crate::error::{Error, Result};
use crate::query::{self, Aggregate};
use crate::{SeriesId, Timestamp};

use super::view::{ChunkRef, Frozen};
use super::{read, Store};

/// The pool that query work fans out to: the engine's query pool, or inside
/// [`run_inline`] a pool made of the calling thread alone.
pub(crate) fn pool() -> &'static rayon::ThreadPool {
    if let Some(own) = INLINE.with(|c| c.get()) {
        return own;
    }
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

thread_local! {
    /// Set while [`run_inline`] runs on this thread: its one-thread pool.
    static INLINE: std::cell::Cell<Option<&'static rayon::ThreadPool>> = const { std::cell::Cell::new(None) };
    /// This thread's one-thread pool, made on its first [`run_inline`] and kept for the
    /// thread's life (the threads that call it are long-lived: the VM's schedulers).
    static OWN_POOL: std::cell::OnceCell<Option<&'static rayon::ThreadPool>> = const { std::cell::OnceCell::new() };
}

/// Runs `f` on the calling thread with every parallel step of the engine inside it
/// (selectors, range functions, aggregations, the JSON encoder) also on this thread:
/// no hand-off to the query pool and no wait for it. For work known to be small (see
/// `promql::cost`): it does not use the other cores. The thread becomes the only
/// worker of a pool of its own (rayon's `use_current_thread`); a thread that is
/// already a worker of a pool (the query pool's own threads) just runs `f`.
pub fn run_inline<R>(f: impl FnOnce() -> R) -> R {
    let own = OWN_POOL.with(|c| match c.get() {
        Some(own) => *own,
        // a worker of some other pool (the query pool's threads): no pool of its own
        None if rayon::current_thread_index().is_some() => None,
        None => *c.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
                .ok()
                .map(|p| &*Box::leak(Box::new(p)))
        }),
    });
    let Some(own) = own else { return f() };
    struct Restore(Option<&'static rayon::ThreadPool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            INLINE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(INLINE.with(|c| c.replace(Some(own))));
    f()
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
        self.read_columns_at(id, from, to, memo, vals, true, |_| AllValues).0
    }

    /// [`read_columns`](Self::read_columns) for a caller that needs the values at some
    /// positions only: `pick` derives something from the timestamps (given before any
    /// value is decoded), whose [`Wanted::wanted`] are the sorted indexes of the values
    /// needed. `vals` gets a slot per point, but only the wanted ones are sure to hold the
    /// value; without `need_values`, only whether it is a staleness marker (see
    /// `codec::decode_values_at`). Decimal chunks then convert (or decode) only those.
    #[allow(clippy::too_many_arguments)]
    pub fn read_columns_at<T: Wanted>(
        &self,
        id: SeriesId,
        from: Timestamp,
        to: Timestamp,
        memo: &TsMemo,
        vals: &mut Vec<f64>,
        need_values: bool,
        pick: impl Fn(&Arc<[Timestamp]>) -> T,
    ) -> (Arc<[Timestamp]>, T) {
        if let Some(out) = self.read_columns_fast(id, from, to, memo, vals, need_values, &pick) {
            return out;
        }
        vals.clear();
        let (ts, v) = self.read_shared(id, from, to, Some(memo));
        *vals = v;
        let ts: Arc<[Timestamp]> = ts.into();
        let picked = pick(&ts);
        (ts, picked)
    }

    /// [`read_columns_at`](Self::read_columns_at) when only chunks that follow each other
    /// in time hold points of the series in range (nothing in the head or frozen runs);
    /// `None` otherwise, or on a chunk that fails to decode (the caller then takes the
    /// general path, which reports it).
    #[allow(clippy::too_many_arguments)]
    fn read_columns_fast<T: Wanted>(
        &self,
        id: SeriesId,
        from: Timestamp,
        to: Timestamp,
        memo: &TsMemo,
        vals: &mut Vec<f64>,
        need_values: bool,
        pick: &impl Fn(&Arc<[Timestamp]>) -> T,
    ) -> Option<(Arc<[Timestamp]>, T)> {
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
        let mut keys = Vec::with_capacity(chunks.len());
        let mut cols = Vec::with_capacity(chunks.len());
        let mut bodies = Vec::with_capacity(chunks.len());
        for (r, file) in &chunks {
            let (key, ts, body) = file.ts_column(&r.meta, memo).ok()?;
            keys.push(key);
            cols.push(ts);
            bodies.push(body);
        }
        // Chunks in order with ascending timestamps: the points in range are one index range.
        let total: usize = cols.iter().map(|c| c.len()).sum();
        let lo: usize = cols.iter().map(|c| c.partition_point(|&t| t < from)).sum();
        let hi: usize = cols.iter().map(|c| c.partition_point(|&t| t <= to)).sum();
        let ts = if cols.len() == 1 && lo == 0 && hi == total {
            cols[0].clone()
        } else {
            memo.joined(&keys, from, to, || {
                let mut ts = Vec::with_capacity(total);
                for c in &cols {
                    ts.extend_from_slice(c);
                }
                ts[lo..hi].into()
            })
        };
        let picked = pick(&ts);
        let wanted = picked.wanted();
        match wanted {
            None => {
                vals.clear();
                vals.reserve(total);
                for ((r, file), body) in chunks.iter().zip(&bodies) {
                    if codec_values(file, &r.meta, body, vals).is_err() {
                        return None;
                    }
                }
            }
            Some(wanted) => {
                // Slots not wanted keep whatever the buffer held (no zeroing per series).
                if vals.len() < total {
                    vals.resize(total, 0.0);
                }
                vals.truncate(total);
                let mut rel: Vec<u32> = Vec::new();
                let mut start = 0usize; // of the chunk, in the untrimmed concatenation
                let mut w = 0usize; // first wanted index not yet handed to a chunk
                for ((r, file), body) in chunks.iter().zip(&bodies) {
                    let n = r.meta.count as usize;
                    rel.clear();
                    while w < wanted.len() && (wanted[w] as usize + lo) < start + n {
                        rel.push((wanted[w] as usize + lo - start) as u32);
                        w += 1;
                    }
                    if !rel.is_empty() && file.values_at(&r.meta, body, &rel, need_values, &mut vals[start..start + n]).is_err() {
                        return None;
                    }
                    start += n;
                }
            }
        }
        vals.truncate(hi);
        if lo > 0 {
            vals.drain(..lo);
        }
        Some((ts, picked))
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

fn codec_values(file: &ChunkFile, meta: &crate::chunk::ChunkMeta, body: &[u8], vals: &mut Vec<f64>) -> Result<()> {
    crate::codec::decode_values(meta.codec, body, meta.count as usize, vals).map(|_| ()).map_err(|e| {
        Error::corrupt(format!("chunk file {} offset {}: {}", file.id(), meta.offset, e.message))
    })
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


#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn threads_used() -> HashSet<std::thread::ThreadId> {
        pool().install(|| (0..1000).into_par_iter().map(|_| std::thread::current().id()).collect())
    }

    #[test]
    fn run_inline_keeps_parallel_steps_on_the_calling_thread() {
        std::thread::spawn(|| {
            let me = std::thread::current().id();
            for _ in 0..3 {
                // inside: one thread, this one (also on later calls, once it has its pool)
                assert_eq!(run_inline(threads_used), HashSet::from([me]));
                // outside: the query pool, not this thread
                assert!(!threads_used().contains(&me));
            }
            // nested calls stay inline, also after the inner one returns
            assert_eq!(run_inline(|| { run_inline(|| ()); threads_used() }), HashSet::from([me]));
            // a panic inside leaves the thread's pool choice reset
            let r = std::panic::catch_unwind(|| run_inline(|| panic!("boom")));
            assert!(r.is_err());
            assert!(!threads_used().contains(&me));
        })
        .join()
        .unwrap();
        // from a query pool thread: runs there
        assert!(pool().install(|| run_inline(|| rayon::current_thread_index().is_some())));
    }
}
