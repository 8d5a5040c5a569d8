//! Flush (head -> frozen run -> chunk files, then WAL truncation), merge, and
//! the periodic maintenance that decides when to do either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::buffer::{CutSeries, Head};
use crate::chunk::{ChunkFile, ChunkFileWriter, ChunkMeta};
use crate::error::{Error, Result};
use crate::{SeriesId, Timestamp};

use super::read::pool;
use super::view::{ChunkRef, Frozen};
use super::{lock, now_ms, read, write, FlushStats, Store};

/// Chunk files of bounded size being written, carried across groups of series
/// so a merge produces few large files.
struct ChunkSink<'s> {
    store: &'s Store,
    writer: ChunkFileWriter,
    files: Vec<(ChunkFile, Vec<ChunkMeta>)>,
    points: u64,
}

impl<'s> ChunkSink<'s> {
    const MAX_FILE_BYTES: usize = 64 << 20;
    /// Bytes of a file in the making kept in memory before they go to its temp file
    /// (a merge of a whole data dir would otherwise hold up to `MAX_FILE_BYTES`).
    const SPILL_BYTES: usize = 4 << 20;

    fn new(store: &'s Store) -> Self {
        ChunkSink { store, writer: ChunkFileWriter::new(), files: Vec::new(), points: 0 }
    }

    fn add(&mut self, id: SeriesId, ts: &[Timestamp], vals: &[f64]) -> Result<()> {
        let n = self.store.cfg.max_chunk_points;
        for (t, v) in ts.chunks(n).zip(vals.chunks(n)) {
            self.writer.add(id, t, v);
            self.points += t.len() as u64;
        }
        if self.writer.bytes() >= Self::MAX_FILE_BYTES {
            let full = std::mem::replace(&mut self.writer, ChunkFileWriter::new());
            self.files.push(self.store.finish_file(full)?);
        } else if self.writer.buffered() >= Self::SPILL_BYTES {
            if let Some(dir) = &self.store.cfg.data_dir {
                static SPILLS: AtomicU64 = AtomicU64::new(0);
                let chunks = dir.join("chunks");
                let name = format!("spill-{}-{}.tmp", std::process::id(), SPILLS.fetch_add(1, Ordering::Relaxed));
                self.writer.spill(&chunks, &name)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<(ChunkFile, Vec<ChunkMeta>)>, FlushStats)> {
        if !self.writer.is_empty() {
            self.files.push(self.store.finish_file(self.writer)?);
        }
        let stats = FlushStats {
            series: 0,
            points: self.points,
            files: self.files.len() as u64,
            bytes: self.files.iter().map(|(f, _)| f.size_bytes()).sum(),
        };
        Ok((self.files, stats))
    }
}

/// Points per group of a whole-head flush (see `flush_all`): 256k points decode to ~4 MB
/// at a time (1M-point groups put ~14 MiB more on the RSS peak of a forced flush after
/// bulk ingest, bench/rss_probe.exs).
const FLUSH_GROUP_POINTS: usize = 1 << 18;

/// Points per group of a merge: decoded together (in parallel), then written, so a merge
/// holds ~4 MB of decoded points at a time whatever the size of the data dir.
const MERGE_GROUP_POINTS: usize = 1 << 18;

impl Store {

    /// Flush the whole head into chunk files and drop the WAL segments it covered.
    pub fn flush(&self) -> Result<FlushStats> {
        self.check_open()?;
        self.flush_inner(None)
    }

    pub(super) fn flush_inner(&self, only: Option<&[SeriesId]>) -> Result<FlushStats> {
        let _one = lock(&self.flush_lock);
        match only {
            None => self.flush_all(),
            Some(ids) => self.flush_cut(|head| head.take_series(ids)),
        }
    }

    /// The whole head, in groups of shards of about [`FLUSH_GROUP_POINTS`] points, so
    /// that only one group's points are decoded at a time (a head of 10M points would
    /// otherwise be 160 MB of plain vectors at the flush's peak). The WAL is rotated
    /// first, with writers held off: every sample of the older segments is in the head
    /// then and is cut by one of the groups, and those segments are dropped once every
    /// group is in chunk files. Samples written after the rotation may be cut too; they
    /// are also in the new segment, and replaying them again after a crash rewrites the
    /// same values.
    fn flush_all(&self) -> Result<FlushStats> {
        let segment = {
            let _gate = write(&self.gate);
            match &self.wal {
                Some(wal) => Some(wal.rotate()?),
                None => None,
            }
        };
        let shards = self.head.shard_count();
        let mut total = FlushStats::default();
        let mut start = 0;
        while start < shards {
            let mut end = start;
            let mut points = 0;
            while end < shards {
                let more = self.head.shard_points(end);
                if end > start && points + more > FLUSH_GROUP_POINTS {
                    break;
                }
                points += more;
                end += 1;
            }
            let stats = self.flush_cut(|head| head.take_shards(start..end))?;
            total.series += stats.series;
            total.points += stats.points;
            total.files += stats.files;
            total.bytes += stats.bytes;
            start = end;
        }
        if let (Some(wal), Some(segment)) = (&self.wal, segment) {
            wal.remove_segments_before(segment)?;
        }
        Ok(total)
    }

    /// Cuts series out of the head (while holding the view, so a reader sees each point
    /// in the head or in the frozen run), writes them as chunks and swaps the frozen run
    /// for the chunks. On a write error the points go back into the head.
    fn flush_cut(&self, cut: impl FnOnce(&Head) -> Vec<CutSeries>) -> Result<FlushStats> {
        let seq = self.next_frozen_seq.fetch_add(1, Ordering::Relaxed);
        let frozen = {
            let mut view = write(&self.view);
            let cut = cut(&self.head);
            if cut.is_empty() {
                return Ok(FlushStats::default());
            }
            let frozen = Arc::new(Frozen { seq, series: cut.into_iter().map(|(id, ts, vals)| (id, (ts, vals))).collect() });
            view.frozen.push(frozen.clone());
            frozen
        };
        let mut ids: Vec<SeriesId> = frozen.series.keys().copied().collect();
        ids.sort_unstable();
        let result = self.write_chunks(ids.iter().map(|id| {
            let (ts, vals) = &frozen.series[id];
            (*id, ts.as_slice(), vals.as_slice())
        }));
        let mut view = write(&self.view);
        view.frozen.retain(|f| f.seq != seq);
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
                stats.series = ids.len() as u64;
                Ok(stats)
            }
            Err(e) => {
                // Put the points back into the head so nothing is lost; the WAL
                // segments were not removed, so they stay durable too.
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
        let mut sink = ChunkSink::new(self);
        for (id, ts, vals) in runs {
            sink.add(id, ts, vals)?;
        }
        sink.finish()
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
        // Decode and re-encode series in groups of about MERGE_GROUP_POINTS points so
        // memory stays bounded; after each group, the old files' pages read so far are
        // given back (they would otherwise all be resident by the end).
        let mut sink = ChunkSink::new(self);
        let mut stats = FlushStats::default();
        let mut rest = &refs[..];
        while !rest.is_empty() {
            let mut n = 0;
            let mut points = 0;
            while n < rest.len() && (n == 0 || points < MERGE_GROUP_POINTS) {
                points += rest[n].1.iter().map(|r| r.meta.count as usize).sum::<usize>();
                n += 1;
            }
            let (group, tail) = rest.split_at(n);
            rest = tail;
            let merged: Vec<(SeriesId, Vec<Timestamp>, Vec<f64>)> = pool().install(|| {
                group
                    .par_iter()
                    .filter(|(id, _)| self.registry.contains(*id))
                    .map(|(id, refs)| {
                        let chunks = refs
                            .iter()
                            .filter_map(|r| files_by_id.get(&r.file_id).map(|f| (*r, f.clone())))
                            .collect();
                        let (ts, vals) = self.decode_chunks(chunks, i64::MIN, i64::MAX);
                        (*id, ts, vals)
                    })
                    .collect()
            });
            // Only the files this group read have pages of it resident (shared timestamp
            // columns are in the same file as the chunks that use them).
            let read_files: std::collections::HashSet<u64> =
                group.iter().flat_map(|(_, refs)| refs.iter().map(|r| r.file_id)).collect();
            for f in old_files.iter().filter(|f| read_files.contains(&f.id())) {
                f.release_pages();
            }
            for (id, ts, vals) in &merged {
                sink.add(*id, ts, vals)?;
            }
            stats.series += merged.len() as u64;
        }
        let (new_files, written) = sink.finish()?;
        stats.points = written.points;
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

}
