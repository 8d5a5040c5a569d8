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

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rayon::prelude::*;

use crate::buffer::{CutSeries, Head};
use crate::chunk::{ChunkFile, ChunkFileWriter, ChunkMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::log::{read_records, LogWriter};
use crate::query::{self, Aggregate};
use crate::series::{LabelLimits, Labels, Matcher, Registry};
use crate::wal::{self, FsyncPolicy, Wal};
use crate::{SeriesId, Timestamp};

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

#[derive(Clone, Copy, Debug)]
struct ChunkRef {
    file_id: u64,
    meta: ChunkMeta,
}

/// A cut of the head on its way to chunk files; readers still see it.
struct Frozen {
    seq: u64,
    series: HashMap<SeriesId, (Vec<Timestamp>, Vec<f64>)>,
}

#[derive(Default)]
struct View {
    files: HashMap<u64, Arc<ChunkFile>>,
    /// Indexed by series id.
    chunks: Vec<Vec<ChunkRef>>,
    frozen: Vec<Arc<Frozen>>,
}

impl View {
    fn add_chunk(&mut self, file_id: u64, meta: ChunkMeta) {
        let id = meta.series_id as usize;
        if self.chunks.len() <= id {
            self.chunks.resize_with(id + 1, Vec::new);
        }
        self.chunks[id].push(ChunkRef { file_id, meta });
    }
}

/// FxHash-style hasher for the raw-label-bytes cache.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

const RAW_CACHE_SHARDS: usize = 16;

/// Series ids by the raw bytes a client sent for them (metric + labels as given),
/// so a repeated series skips parsing, validation and sorting.
struct RawCache {
    shards: Vec<RwLock<FastMap<Box<[u8]>, SeriesId>>>,
}

impl RawCache {
    fn new() -> RawCache {
        RawCache { shards: (0..RAW_CACHE_SHARDS).map(|_| RwLock::new(FastMap::default())).collect() }
    }
    fn shard(&self, key: &[u8]) -> &RwLock<FastMap<Box<[u8]>, SeriesId>> {
        let mut h = FastHasher::default();
        h.write(key);
        &self.shards[(h.finish() >> 59) as usize % RAW_CACHE_SHARDS]
    }
    fn get(&self, key: &[u8]) -> Option<SeriesId> {
        self.shard(key).read().unwrap_or_else(|p| p.into_inner()).get(key).copied()
    }
    fn insert(&self, key: &[u8], id: SeriesId) {
        let mut map = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        if map.len() > 4_000_000 {
            map.clear();
        }
        map.insert(key.into(), id);
    }
    fn clear(&self) {
        for s in &self.shards {
            s.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

const SERIES_CREATE: u8 = 1;
const SERIES_DELETE: u8 = 2;

fn pool() -> &'static rayon::ThreadPool {
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
}

impl Store {
    /// Open (or create) a store, recovering everything acknowledged before.
    /// Returns the store and the warnings recovery produced (torn WAL tail cut,
    /// corrupt records or chunk files skipped...).
    pub fn open(cfg: StoreConfig) -> Result<(Store, Vec<String>)> {
        let mut warnings = Vec::new();
        let registry = Registry::new();
        let mut view = View::default();
        let head = Head::new(cfg.shards, cfg.max_points_per_series);
        let (lock_file, wal, series_log, next_file_id) = match &cfg.data_dir {
            None => (None, None, None, 1),
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
                let lock_file = lock_dir(dir)?;
                let series_path = dir.join("series.log");
                replay_series_log(&series_path, &registry, &mut warnings)?;
                let next_file_id = load_chunk_files(&dir.join("chunks"), &registry, &mut view, &mut warnings)?;
                let wal_dir = dir.join("wal");
                let report = wal::replay(&wal_dir, |ids, ts, vals| {
                    replay_samples(&registry, &head, ids, ts, vals);
                })?;
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
            cfg,
        };
        Ok((store, warnings))
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

    /// Ids of live series matching all matchers; with `range`, only series with
    /// data in `[from, to]`.
    pub fn select(&self, matchers: &[Matcher], range: Option<(Timestamp, Timestamp)>) -> Vec<SeriesId> {
        let ids = self.registry.select(matchers);
        match range {
            None => ids,
            Some((from, to)) => ids.into_iter().filter(|&id| self.has_data_in(id, from, to)).collect(),
        }
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
        let next = self.registry.next_id();
        for (i, &id) in ids.iter().enumerate() {
            if id == 0 || id >= next {
                return Err(Error::bad_input(format!("entry {i}: unknown series id {id}")));
            }
        }
        self.write_unchecked(ids, ts, vals)
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

    // ---------------------------------------------------------------- flush

    /// Flush the whole head into chunk files and drop the WAL segments it covered.
    pub fn flush(&self) -> Result<FlushStats> {
        self.check_open()?;
        self.flush_inner(None)
    }

    fn flush_inner(&self, only: Option<&[SeriesId]>) -> Result<FlushStats> {
        let _one = lock(&self.flush_lock);
        let seq = self.next_frozen_seq.fetch_add(1, Ordering::Relaxed);
        let (segment, frozen) = {
            let _gate = only.is_none().then(|| write(&self.gate));
            let segment = match (&self.wal, only) {
                (Some(wal), None) => Some(wal.rotate()?),
                _ => None,
            };
            let mut view = write(&self.view);
            let cut: Vec<CutSeries> = match only {
                None => self.head.take_all(),
                Some(ids) => self.head.take_series(ids),
            };
            let frozen = Arc::new(Frozen {
                seq,
                series: cut.into_iter().map(|(id, ts, vals)| (id, (ts, vals))).collect(),
            });
            view.frozen.push(frozen.clone());
            (segment, frozen)
        };
        let mut ids: Vec<SeriesId> = frozen.series.keys().copied().collect();
        ids.sort_unstable();
        let result = self.write_chunks(ids.iter().map(|id| {
            let (ts, vals) = &frozen.series[id];
            (*id, ts.as_slice(), vals.as_slice())
        }));
        let mut view = write(&self.view);
        match result {
            Ok((files, mut stats)) => {
                for (file, metas) in files {
                    let file_id = file.id();
                    for meta in metas {
                        if self.registry.contains(meta.series_id) {
                            view.add_chunk(file_id, meta);
                        }
                    }
                    view.files.insert(file_id, Arc::new(file));
                }
                view.frozen.retain(|f| f.seq != seq);
                drop(view);
                if let (Some(wal), Some(segment)) = (&self.wal, segment) {
                    wal.remove_segments_before(segment)?;
                }
                stats.series = ids.len() as u64;
                Ok(stats)
            }
            Err(e) => {
                // Put the points back into the head so nothing is lost; the WAL
                // segments were not removed, so they stay durable too.
                view.frozen.retain(|f| f.seq != seq);
                for id in &ids {
                    let (ts, vals) = &frozen.series[id];
                    self.head.insert(&vec![*id; ts.len()], ts, vals, now_ms());
                }
                Err(e)
            }
        }
    }

    /// Encode runs into chunk files of bounded size.
    fn write_chunks<'a>(
        &self,
        runs: impl Iterator<Item = (SeriesId, &'a [Timestamp], &'a [f64])>,
    ) -> Result<(Vec<(ChunkFile, Vec<ChunkMeta>)>, FlushStats)> {
        const MAX_FILE_BYTES: usize = 64 << 20;
        let mut files = Vec::new();
        let mut stats = FlushStats::default();
        let mut writer = ChunkFileWriter::new();
        for (id, ts, vals) in runs {
            for (t, v) in ts.chunks(self.cfg.max_chunk_points).zip(vals.chunks(self.cfg.max_chunk_points)) {
                writer.add(id, t, v);
                stats.points += t.len() as u64;
            }
            if writer.bytes() >= MAX_FILE_BYTES {
                files.push(self.finish_file(std::mem::replace(&mut writer, ChunkFileWriter::new()))?);
            }
        }
        if !writer.is_empty() {
            files.push(self.finish_file(writer)?);
        }
        stats.files = files.len() as u64;
        stats.bytes = files.iter().map(|(f, _)| f.size_bytes()).sum();
        Ok((files, stats))
    }

    fn finish_file(&self, writer: ChunkFileWriter) -> Result<(ChunkFile, Vec<ChunkMeta>)> {
        let file_id = self.next_file_id.fetch_add(1, Ordering::Relaxed);
        match &self.cfg.data_dir {
            None => writer.into_memory(file_id),
            Some(dir) => {
                let chunks = dir.join("chunks");
                std::fs::create_dir_all(&chunks).map_err(|e| Error::io(chunks.display(), e))?;
                writer.write(&chunks, file_id)
            }
        }
    }

    /// Rewrite all chunk files into as few as possible, one run of chunks per
    /// series with duplicates resolved and deleted series dropped (VictoriaMetrics's
    /// force_merge). The head is not touched.
    pub fn merge(&self) -> Result<FlushStats> {
        self.check_open()?;
        let _one = lock(&self.flush_lock);
        let (old_files, refs): (Vec<Arc<ChunkFile>>, Vec<(SeriesId, Vec<ChunkRef>)>) = {
            let view = read(&self.view);
            let refs = view
                .chunks
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.is_empty())
                .map(|(id, r)| (id as SeriesId, r.clone()))
                .collect();
            (view.files.values().cloned().collect(), refs)
        };
        if old_files.len() <= 1 && refs.iter().all(|(_, r)| r.len() <= 1) {
            return Ok(FlushStats::default());
        }
        let files_by_id: HashMap<u64, Arc<ChunkFile>> = old_files.iter().map(|f| (f.id(), f.clone())).collect();
        // Decode and re-encode series in groups so memory stays bounded.
        let mut new_files = Vec::new();
        let mut stats = FlushStats::default();
        for group in refs.chunks(4096) {
            let merged: Vec<(SeriesId, Vec<Timestamp>, Vec<f64>)> = pool().install(|| {
                group
                    .par_iter()
                    .filter(|(id, _)| self.registry.contains(*id))
                    .map(|(id, refs)| {
                        let (ts, vals) = self.decode_chunks(&files_by_id, refs, i64::MIN, i64::MAX);
                        (*id, ts, vals)
                    })
                    .collect()
            });
            let (files, s) = self.write_chunks(merged.iter().map(|(id, t, v)| (*id, t.as_slice(), v.as_slice())))?;
            stats.series += merged.len() as u64;
            stats.points += s.points;
            new_files.extend(files);
        }
        let old_ids: std::collections::HashSet<u64> = old_files.iter().map(|f| f.id()).collect();
        {
            let mut view = write(&self.view);
            for refs in view.chunks.iter_mut() {
                refs.retain(|r| !old_ids.contains(&r.file_id));
            }
            view.files.retain(|id, _| !old_ids.contains(id));
            for (file, metas) in new_files {
                let file_id = file.id();
                stats.files += 1;
                stats.bytes += file.size_bytes();
                for meta in metas {
                    if self.registry.contains(meta.series_id) {
                        view.add_chunk(file_id, meta);
                    }
                }
                view.files.insert(file_id, Arc::new(file));
            }
        }
        for f in old_files {
            if let Some(path) = f.path() {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(stats)
    }

    /// Periodic work: flush the head when it is too old or too big, flush series
    /// over their threshold, merge when chunk files pile up, sync nothing else
    /// (the WAL syncs itself). Returns what was flushed, if anything.
    pub fn maintain(&self, now: i64) -> Result<Option<FlushStats>> {
        self.check_open()?;
        let too_old = self.head.oldest_write_ms().is_some_and(|t| now - t >= self.cfg.flush_age_ms);
        let too_big = self.head.points() >= self.cfg.max_buffered_points;
        let stats = if too_old || too_big {
            Some(self.flush_inner(None)?)
        } else {
            let full = self.head.full_series();
            if full.is_empty() {
                None
            } else {
                Some(self.flush_inner(Some(&full))?)
            }
        };
        let files = read(&self.view).files.len();
        if files > self.cfg.max_chunk_files {
            self.merge()?;
        }
        Ok(stats)
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

    // ---------------------------------------------------------------- reads

    fn decode_chunks(
        &self,
        files: &HashMap<u64, Arc<ChunkFile>>,
        refs: &[ChunkRef],
        from: Timestamp,
        to: Timestamp,
    ) -> (Vec<Timestamp>, Vec<f64>) {
        let mut refs: Vec<&ChunkRef> =
            refs.iter().filter(|r| r.meta.min_ts <= to && r.meta.max_ts >= from).collect();
        refs.sort_by_key(|r| (r.file_id, r.meta.min_ts));
        let mut sources = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(file) = files.get(&r.file_id) else { continue };
            let mut ts = Vec::with_capacity(r.meta.count as usize);
            let mut vals = Vec::with_capacity(r.meta.count as usize);
            match file.read(&r.meta, &mut ts, &mut vals) {
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
        // Head first, then the view: see the module docs.
        let head = self.head.read(id, from, to);
        let (files, refs, frozen) = {
            let view = read(&self.view);
            let refs = view.chunks.get(id as usize).cloned().unwrap_or_default();
            let files: HashMap<u64, Arc<ChunkFile>> = refs
                .iter()
                .filter_map(|r| view.files.get(&r.file_id).map(|f| (r.file_id, f.clone())))
                .collect();
            let mut frozen: Vec<Arc<Frozen>> =
                view.frozen.iter().filter(|f| f.series.contains_key(&id)).cloned().collect();
            frozen.sort_by_key(|f| f.seq);
            (files, refs, frozen)
        };
        let mut sources = vec![self.decode_chunks(&files, &refs, from, to)];
        for f in frozen {
            let (ts, vals) = &f.series[&id];
            let (mut t, mut v) = (ts.clone(), vals.clone());
            trim(&mut t, &mut v, from, to);
            sources.push((t, v));
        }
        sources.push(head);
        query::merge_sources(sources)
    }

    /// `read` for many series at once, in parallel.
    pub fn read_many(&self, ids: &[SeriesId], from: Timestamp, to: Timestamp) -> Vec<(SeriesId, Vec<Timestamp>, Vec<f64>)> {
        pool().install(|| {
            ids.par_iter()
                .map(|&id| {
                    let (t, v) = self.read(id, from, to);
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
        let (files, refs, frozen) = {
            let view = read(&self.view);
            let refs = view.chunks.get(id as usize).cloned().unwrap_or_default();
            let files: HashMap<u64, Arc<ChunkFile>> = refs
                .iter()
                .filter_map(|r| view.files.get(&r.file_id).map(|f| (r.file_id, f.clone())))
                .collect();
            let frozen: Option<(Timestamp, f64)> = view
                .frozen
                .iter()
                .filter_map(|f| f.series.get(&id).and_then(|(t, v)| t.last().map(|&t| (t, *v.last().unwrap()))))
                .max_by_key(|p| p.0);
            (files, refs, frozen)
        };
        let newest_chunk_ts = refs.iter().map(|r| r.meta.max_ts).max();
        let chunk = newest_chunk_ts.and_then(|max_ts| {
            let (t, v) = self.decode_chunks(&files, &refs, max_ts, max_ts);
            t.last().map(|&t| (t, *v.last().unwrap()))
        });
        // Newest source wins a tie: head over frozen over chunks.
        [chunk, frozen, head].into_iter().flatten().fold(None, |best: Option<(Timestamp, f64)>, p| match best {
            Some(b) if b.0 > p.0 => Some(b),
            _ => Some(p),
        })
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

fn lock_dir(dir: &Path) -> Result<File> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(path.display(), e))?;
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::new(
                ErrorKind::Locked,
                format!("{} is in use by another store", dir.display()),
            ));
        }
        return Err(Error::io(path.display(), err));
    }
    Ok(file)
}

fn replay_series_log(path: &Path, registry: &Registry, warnings: &mut Vec<String>) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let issues = read_records(path, |offset, payload| {
        let bad = || Error::corrupt(format!("{} at offset {offset}: bad series record", path.display()));
        if payload.len() < 9 {
            return Err(bad());
        }
        let id = u64::from_le_bytes(payload[1..9].try_into().unwrap());
        match payload[0] {
            SERIES_CREATE => {
                let labels = Labels::decode(&payload[9..]).map_err(|_| bad())?;
                registry.insert_known(id, labels)?;
            }
            SERIES_DELETE => {
                registry.delete(&[id]);
                registry.bump_next_id(id.saturating_add(1));
            }
            _ => return Err(bad()),
        }
        Ok(())
    })?;
    for issue in issues {
        warnings.push(format!(
            "series log {:?} in {} at offset {}: {}",
            issue.kind,
            issue.path.display(),
            issue.offset,
            issue.message
        ));
    }
    Ok(())
}

/// Open every chunk file's footer; returns the next free file id.
fn load_chunk_files(dir: &Path, registry: &Registry, view: &mut View, warnings: &mut Vec<String>) -> Result<u64> {
    let mut next_id = 1;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(next_id),
        Err(e) => return Err(Error::io(dir.display(), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match ChunkFile::parse_file_name(&name) {
            Some(id) => found.push((id, entry.path())),
            None if name.ends_with(".tmp") => {
                // A flush that died before its rename: the WAL still has the data.
                let _ = std::fs::remove_file(entry.path());
            }
            None => {}
        }
    }
    found.sort();
    for (id, path) in found {
        next_id = next_id.max(id + 1);
        match ChunkFile::open(&path, id) {
            Ok((file, metas)) => {
                for meta in metas {
                    if registry.contains(meta.series_id) {
                        view.add_chunk(id, meta);
                    }
                }
                view.files.insert(id, Arc::new(file));
            }
            Err(e) => warnings.push(format!("skipped chunk file {}: {}", path.display(), e.message)),
        }
    }
    Ok(next_id)
}

fn replay_samples(registry: &Registry, head: &Head, ids: &[SeriesId], ts: &[Timestamp], vals: &[f64]) {
    let now = now_ms();
    let live = registry.live_mask(ids);
    if live.iter().all(|&l| l) {
        head.insert(ids, ts, vals, now);
        return;
    }
    // Samples of deleted series are dropped.
    let keep: Vec<usize> = (0..ids.len()).filter(|&i| live[i]).collect();
    let ids: Vec<SeriesId> = keep.iter().map(|&i| ids[i]).collect();
    let ts: Vec<Timestamp> = keep.iter().map(|&i| ts[i]).collect();
    let vals: Vec<f64> = keep.iter().map(|&i| vals[i]).collect();
    head.insert(&ids, &ts, &vals, now);
}

#[allow(dead_code)]
fn assert_store_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}
