//! The store: one data directory (or none, in memory mode) with its series
//! registry, write-ahead log, head buffers and chunk files.
//!
//! ```text
//! <data_dir>/LOCK                 flock(2)ed while a store has the directory open
//! <data_dir>/series.log           series creations and deletions (log.rs framing)
//! <data_dir>/wal/<seg>.wal        samples not yet in chunks (wal.rs)
//! <data_dir>/chunks/<id>.chunks   batched chunk files (chunk.rs)
//! ```
//!
//! ## Write path
//! `write` takes the shared side of the flush gate, appends one WAL record (in the
//! OS before it returns) and inserts into the sharded head. A flush takes the
//! exclusive side of the gate only long enough to rotate the WAL and cut the head,
//! so every sample in a WAL segment older than the rotation is in the cut.
//!
//! ## Flush
//! The cut becomes a *frozen* run that readers still see, is encoded into one or
//! more batched chunk files, then the chunk metadata replaces the frozen run in the
//! view in one step and the old WAL segments are deleted. A partial flush (series
//! over the per-series threshold) does the same for those series only and keeps
//! the WAL: replaying it later duplicates points already in chunks, which reads
//! resolve (same timestamp: newest source wins).
//!
//! ## Reads
//! A reader copies a series' head buffer first and the view (chunks + frozen runs)
//! second; a flush moves data head -> frozen under the view's write lock, so a
//! reader never misses data in flight (it may see it twice, which merging hides).
//! Sources are merged oldest first: chunk files by id, frozen runs, then the head.
//!
//! ## Recovery
//! `open` locks the directory, replays `series.log` into the registry, reads every
//! chunk file's footer (no chunk is decoded), then replays the WAL into the head.
//! A corrupt chunk file is skipped and reported by name; WAL damage is reported with
//! file and offset. Reports come back as warnings for the caller to log.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::buffer::Head;
use crate::error::{Error, ErrorKind, Result};
use crate::log::LogWriter;
use crate::series::{LabelLimits, Labels, Matcher, Registry, SelectBound};
use crate::wal::{self, FsyncPolicy, Wal};
use crate::{SeriesId, Timestamp};

mod flush;
mod key_cache;
mod raw_cache;
mod read;
mod recovery;
mod view;

pub(crate) use read::pool;
pub use read::{run_inline, spawn_in_query_pool};
pub use key_cache::{KeyCacheReader, KeyedSeries};
use key_cache::KeyCache;
use raw_cache::RawCache;
use recovery::{
    lock_dir, open_chunk_files, register_chunk_files, replay_samples, replay_series_log, SERIES_CREATE, SERIES_DELETE,
};
use view::View;

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `None` = memory mode: no files at all.
    pub data_dir: Option<PathBuf>,
    pub fsync: FsyncPolicy,
    pub label_limits: LabelLimits,
    /// A series whose head buffer reaches this many points is flushed on the next tick.
    pub max_points_per_series: usize,
    /// Points per chunk when encoding (flush and merge).
    pub max_chunk_points: usize,
    /// The whole head is flushed when its oldest unflushed write is older than this.
    pub flush_age_ms: i64,
    /// The whole head is flushed when it holds more points than this.
    pub max_buffered_points: usize,
    /// Maintenance merges chunk files when there are more than this many.
    pub max_chunk_files: usize,
    /// Head lock shards.
    pub shards: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: None,
            fsync: FsyncPolicy::Interval(std::time::Duration::from_secs(1)),
            label_limits: LabelLimits::default(),
            max_points_per_series: 8192,
            max_chunk_points: 8192,
            flush_age_ms: 10 * 60 * 1000,
            max_buffered_points: 32 * 1024 * 1024,
            max_chunk_files: 64,
            shards: 64,
        }
    }
}

/// Figures for `info/1`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info {
    pub series: u64,
    /// Points in chunks (after deduplication at flush time).
    pub points_stored: u64,
    /// Points in the head and in runs being flushed.
    pub points_buffered: u64,
    pub chunk_files: u64,
    pub chunks: u64,
    pub bytes_chunks: u64,
    pub bytes_wal: u64,
    pub bytes_series_log: u64,
    pub oldest_ts: Option<Timestamp>,
    pub newest_ts: Option<Timestamp>,
}

/// What a flush or merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub series: u64,
    pub points: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Wall clock in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// An open store. `Send + Sync`: share it behind an `Arc`.
pub struct Store {
    cfg: StoreConfig,
    registry: Registry,
    raw_cache: RawCache,
    key_cache: KeyCache,
    head: Head,
    /// Writers hold it shared across WAL append + head insert; a flush holds it
    /// exclusively while rotating the WAL and cutting the head.
    gate: RwLock<()>,
    wal: Option<Wal>,
    series_log: Option<Mutex<LogWriter>>,
    view: RwLock<View>,
    /// One flush or merge at a time.
    flush_lock: Mutex<()>,
    next_file_id: AtomicU64,
    next_frozen_seq: AtomicU64,
    lock_file: Mutex<Option<File>>,
    closed: AtomicBool,
    warnings: Mutex<Vec<String>>,
    recovery: Recovery,
}

/// How long each step of the last open took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Replaying series.log into the registry.
    pub series_log_ms: u64,
    /// Reading chunk file indexes (concurrently with the series log) plus registering them.
    pub chunk_index_ms: u64,
    /// Replaying the WAL into the head.
    pub wal_ms: u64,
    pub wal_samples: u64,
}

impl Store {
    /// Open (or create) a store, recovering everything acknowledged before.
    /// Returns the store and the warnings recovery produced (torn WAL tail cut,
    /// corrupt records or chunk files skipped...).
    pub fn open(cfg: StoreConfig) -> Result<(Store, Vec<String>)> {
        let mut warnings = Vec::new();
        let mut recovery = Recovery::default();
        let registry = Registry::new();
        let mut view = View::default();
        let head = Head::new(cfg.shards, cfg.max_points_per_series);
        let (lock_file, wal, series_log, next_file_id) = match &cfg.data_dir {
            None => (None, None, None, 1),
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
                let lock_file = lock_dir(dir)?;
                let series_path = dir.join("series.log");
                // Chunk file indexes are read on another thread while the series
                // log is replayed; chunks are registered once the registry is whole.
                let t0 = Instant::now();
                let chunks_dir = dir.join("chunks");
                let (replayed, opened) = std::thread::scope(|scope| {
                    let chunks = scope.spawn(|| {
                        let started = Instant::now();
                        open_chunk_files(&chunks_dir).map(|files| (files, started.elapsed()))
                    });
                    let replayed = replay_series_log(&series_path, &registry, &mut warnings);
                    (replayed, chunks.join())
                });
                replayed?;
                let t1 = Instant::now();
                let (opened, chunk_open_time) = opened.map_err(|_| Error::internal("chunk index reader panicked"))??;
                let next_file_id = register_chunk_files(opened, &registry, &mut view, &mut warnings);
                let t2 = Instant::now();
                let wal_dir = dir.join("wal");
                let report = wal::replay(&wal_dir, |ids, ts, vals| {
                    replay_samples(&registry, &head, ids, ts, vals);
                })?;
                recovery = Recovery {
                    series_log_ms: (t1 - t0).as_millis() as u64,
                    chunk_index_ms: (chunk_open_time + (t2 - t1)).as_millis() as u64,
                    wal_ms: t2.elapsed().as_millis() as u64,
                    wal_samples: report.samples,
                };
                for issue in report.issues {
                    warnings.push(format!(
                        "wal {:?} in {} at offset {}: {}",
                        issue.kind,
                        issue.path.display(),
                        issue.offset,
                        issue.message
                    ));
                }
                let wal = Wal::open(&wal_dir, cfg.fsync)?;
                let series_log = LogWriter::open(&series_path)?;
                (Some(lock_file), Some(wal), Some(Mutex::new(series_log)), next_file_id)
            }
        };
        let store = Store {
            registry,
            raw_cache: RawCache::new(),
            key_cache: KeyCache::new(),
            head,
            gate: RwLock::new(()),
            wal,
            series_log,
            view: RwLock::new(view),
            flush_lock: Mutex::new(()),
            next_file_id: AtomicU64::new(next_file_id),
            next_frozen_seq: AtomicU64::new(1),
            lock_file: Mutex::new(lock_file),
            closed: AtomicBool::new(false),
            warnings: Mutex::new(Vec::new()),
            recovery,
            cfg,
        };
        Ok((store, warnings))
    }

    /// What the last open had to recover, and how long each step took.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Unavailable, "the store is closed"));
        }
        Ok(())
    }

    fn warn(&self, message: String) {
        lock(&self.warnings).push(message);
    }

    /// Warnings recorded since the last call (corrupt chunks met by reads...).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.warnings))
    }

    // ---------------------------------------------------------------- series

    /// Validate labels against this store's limits.
    pub fn labels(&self, metric: &str, labels: &[(&str, &str)]) -> Result<Labels> {
        Labels::new(metric, labels, &self.cfg.label_limits)
    }

    /// Get or create the series for a label set.
    pub fn resolve(&self, labels: &Labels) -> Result<SeriesId> {
        self.check_open()?;
        if let Some(id) = self.registry.lookup(labels) {
            return Ok(id);
        }
        self.registry.resolve_with(labels, |id, labels| self.persist_series(id, labels))
    }

    /// Resolve through the raw-bytes cache: `key` is whatever bytes identify the
    /// series as the client sent it; `build` parses and validates on a miss.
    pub fn resolve_raw(&self, key: &[u8], build: impl FnOnce() -> Result<Labels>) -> Result<SeriesId> {
        if let Some(id) = self.raw_cache.get(key) {
            return Ok(id);
        }
        let labels = build()?;
        let id = self.resolve(&labels)?;
        self.raw_cache.insert(key, id);
        Ok(id)
    }

    /// The write-path cache of series by the client's raw label and metric bytes
    /// (see `key_cache.rs`), held for one batch.
    pub fn series_keys(&self) -> KeyCacheReader<'_> {
        self.key_cache.reader()
    }

    /// Remember series resolved by a batch that read [`Store::series_keys`] at
    /// `epoch`. Each `labels_raw` / `metric` must be the exact bytes the series'
    /// labels were parsed and validated from.
    pub fn remember_series_keys<'a>(&self, epoch: u64, series: impl IntoIterator<Item = KeyedSeries<'a>>) {
        self.key_cache.insert(epoch, series)
    }

    /// The id of an existing series (no creation).
    pub fn lookup(&self, labels: &Labels) -> Option<SeriesId> {
        self.registry.lookup(labels)
    }

    /// The id cached for a raw key, if any (no parsing, no creation).
    pub fn cached_id(&self, key: &[u8]) -> Option<SeriesId> {
        self.raw_cache.get(key)
    }

    fn persist_series(&self, id: SeriesId, labels: &Labels) -> Result<()> {
        if let Some(log) = &self.series_log {
            let mut payload = Vec::with_capacity(64);
            payload.push(SERIES_CREATE);
            payload.extend_from_slice(&id.to_le_bytes());
            labels.encode(&mut payload);
            lock(log).append(&payload)?;
        }
        Ok(())
    }

    pub fn series_labels(&self, id: SeriesId) -> Option<Labels> {
        self.registry.get(id)
    }

    /// `f` over a live series' (name, value) pairs, sorted by name (see
    /// [`Registry::with_pairs`](crate::series::Registry::with_pairs)).
    pub fn with_series_pairs<T>(&self, id: SeriesId, f: impl FnOnce(&mut dyn Iterator<Item = (&str, &str)>) -> T) -> Option<T> {
        self.registry.with_pairs(id, f)
    }

    /// Ids of live series matching all matchers; with `range`, only series with
    /// data in `[from, to]`.
    pub fn select(&self, matchers: &[Matcher], range: Option<(Timestamp, Timestamp)>) -> Vec<SeriesId> {
        let ids = self.registry.select(matchers);
        match range {
            None => ids,
            Some((from, to)) => ids.into_iter().filter(|&id| self.has_data_in(id, from, to)).collect(),
        }
    }

    /// Upper bounds of the ids `select(matchers, _)` returns and of the index work it
    /// does, from metadata alone (see [`Registry::select_bound`](crate::series::Registry::select_bound)).
    pub fn select_bound(&self, matchers: &[Matcher]) -> SelectBound {
        self.registry.select_bound(matchers)
    }

    /// An upper bound of the points a read of `ids` over `[from, to]` decodes: whole
    /// chunks overlapping the range, every buffered point, frozen points in the range.
    /// Stops counting (and returns `None`) once the count passes `limit`; no chunk is
    /// decoded, only metadata is read.
    pub fn points_upper_bound(&self, ids: &[SeriesId], from: Timestamp, to: Timestamp, limit: u64) -> Option<u64> {
        let view = read(&self.view);
        let mut n = 0u64;
        for &id in ids {
            n += self.head.len_of(id) as u64;
            if let Some(refs) = view.chunks.get(id as usize) {
                n += refs.iter().filter(|r| r.meta.min_ts <= to && r.meta.max_ts >= from).map(|r| r.meta.count as u64).sum::<u64>();
            }
            for f in &view.frozen {
                if let Some((ts, _)) = f.series.get(&id) {
                    let lo = ts.partition_point(|&t| t < from);
                    let hi = ts.partition_point(|&t| t <= to);
                    n += hi.saturating_sub(lo) as u64;
                }
            }
            if n > limit {
                return None;
            }
        }
        Some(n)
    }

    fn has_data_in(&self, id: SeriesId, from: Timestamp, to: Timestamp) -> bool {
        if let Some((lo, hi)) = self.head.min_max(id) {
            if lo <= to && hi >= from {
                return true;
            }
        }
        let view = read(&self.view);
        if let Some(refs) = view.chunks.get(id as usize) {
            if refs.iter().any(|r| r.meta.min_ts <= to && r.meta.max_ts >= from) {
                return true;
            }
        }
        view.frozen.iter().any(|f| {
            f.series.get(&id).is_some_and(|(ts, _)| {
                let lo = ts.partition_point(|&t| t < from);
                lo < ts.len() && ts[lo] <= to
            })
        })
    }

    pub fn label_names(&self, among: Option<&[SeriesId]>) -> Vec<String> {
        self.registry.label_names(among)
    }
    pub fn label_values(&self, name: &str, among: Option<&[SeriesId]>) -> Vec<String> {
        self.registry.label_values(name, among)
    }
    pub fn metric_names(&self, among: Option<&[SeriesId]>) -> Vec<String> {
        self.registry.metric_names(among)
    }

    /// Delete every series matching the matchers (at least one is required).
    /// Their points disappear from reads at once; chunk space is reclaimed by the
    /// next merge. Returns the number of series deleted.
    pub fn delete(&self, matchers: &[Matcher]) -> Result<usize> {
        self.check_open()?;
        if matchers.is_empty() {
            return Err(Error::bad_input("delete needs at least one matcher"));
        }
        let _gate = write(&self.gate);
        let ids = self.registry.select(matchers);
        if ids.is_empty() {
            return Ok(0);
        }
        if let Some(log) = &self.series_log {
            let mut log = lock(log);
            for &id in &ids {
                let mut payload = Vec::with_capacity(9);
                payload.push(SERIES_DELETE);
                payload.extend_from_slice(&id.to_le_bytes());
                log.append(&payload)?;
            }
            log.sync()?;
        }
        let n = self.registry.delete(&ids);
        self.raw_cache.clear();
        self.key_cache.clear();
        self.head.remove(&ids);
        let mut view = write(&self.view);
        for &id in &ids {
            if let Some(refs) = view.chunks.get_mut(id as usize) {
                refs.clear();
            }
        }
        Ok(n)
    }

    pub fn series_count(&self) -> usize {
        self.registry.len()
    }

    // ---------------------------------------------------------------- writes

    /// Write points to resolved series. The whole batch is checked first: an
    /// unknown or deleted id refuses the batch and nothing is written.
    pub fn write(&self, ids: &[SeriesId], ts: &[Timestamp], vals: &[f64]) -> Result<()> {
        if ids.len() != ts.len() || ts.len() != vals.len() {
            return Err(Error::bad_input("ids, timestamps and values differ in length"));
        }
        self.check_ids(ids)?;
        self.write_unchecked(ids, ts, vals)
    }

    /// Refuse ids this store never handed out (the check of `write`, for callers that
    /// validate a whole batch before writing it in parts with `write_unchecked`).
    pub fn check_ids(&self, ids: &[SeriesId]) -> Result<()> {
        let next = self.registry.next_id();
        for (i, &id) in ids.iter().enumerate() {
            if id == 0 || id >= next {
                return Err(Error::bad_input(format!("entry {i}: unknown series id {id}")));
            }
        }
        Ok(())
    }

    /// Write points whose ids come straight from `resolve` in this call chain.
    pub fn write_unchecked(&self, ids: &[SeriesId], ts: &[Timestamp], vals: &[f64]) -> Result<()> {
        self.check_open()?;
        if ids.is_empty() {
            return Ok(());
        }
        let _gate = read(&self.gate);
        if let Some(wal) = &self.wal {
            wal.append_samples(ids, ts, vals)?;
        }
        self.head.insert(ids, ts, vals, now_ms());
        Ok(())
    }

    /// Flush everything, sync, and release the directory lock. Later calls fail
    /// with `Unavailable`.
    pub fn close(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let flushed = self.flush_inner(None);
        self.closed.store(true, Ordering::Release);
        if let Some(wal) = &self.wal {
            wal.sync()?;
        }
        if let Some(log) = &self.series_log {
            lock(log).sync()?;
        }
        lock(&self.lock_file).take();
        flushed.map(|_| ())
    }

    /// Drop the store as a crash would: nothing is flushed or synced (what was
    /// written is in the OS, as after a `kill -9`), and the directory lock is
    /// released so the directory can be reopened in the same process. For tests.
    pub fn kill(self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.lock_file).take();
    }

    // ---------------------------------------------------------------- info

    pub fn info(&self) -> Info {
        let mut info = Info {
            series: self.registry.len() as u64,
            points_buffered: self.head.points() as u64,
            ..Info::default()
        };
        let mut range = self.head.time_range();
        {
            let view = read(&self.view);
            info.chunk_files = view.files.len() as u64;
            info.bytes_chunks = view.files.values().map(|f| f.size_bytes()).sum();
            for refs in &view.chunks {
                for r in refs {
                    info.chunks += 1;
                    info.points_stored += r.meta.count as u64;
                    range = Some(match range {
                        None => (r.meta.min_ts, r.meta.max_ts),
                        Some((a, b)) => (a.min(r.meta.min_ts), b.max(r.meta.max_ts)),
                    });
                }
            }
            for f in &view.frozen {
                for (ts, _) in f.series.values() {
                    info.points_buffered += ts.len() as u64;
                    if let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) {
                        range = Some(match range {
                            None => (lo, hi),
                            Some((a, b)) => (a.min(lo), b.max(hi)),
                        });
                    }
                }
            }
        }
        info.oldest_ts = range.map(|r| r.0);
        info.newest_ts = range.map(|r| r.1);
        info.bytes_wal = self.wal.as_ref().map_or(0, |w| w.size_bytes());
        info.bytes_series_log = self.series_log.as_ref().map_or(0, |l| lock(l).len());
        info
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Buffered points are in the WAL already; a clean close also flushes them.
        if !self.closed.load(Ordering::Acquire) {
            let _ = self.close();
        }
    }
}

#[allow(dead_code)]
fn assert_store_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

