//! Opening a data directory: the lock, the series log, chunk file indexes and
//! the WAL replay (see FORMAT.md, "Recovery order").

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::buffer::Head;
use crate::chunk::ChunkFile;
use crate::error::{Error, ErrorKind, Result};
use crate::log::read_records;
use crate::series::{Labels, Registry};
use crate::{SeriesId, Timestamp};

use rayon::prelude::*;

use super::now_ms;
use super::read::pool;
use super::view::View;

pub(super) const SERIES_CREATE: u8 = 1;
pub(super) const SERIES_DELETE: u8 = 2;

pub(super) fn lock_dir(dir: &Path) -> Result<File> {
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

/// Records decoded per parallel batch during series-log replay.
const SERIES_BATCH: usize = 16 * 1024;

enum SeriesRecord {
    Create(SeriesId, Labels),
    Delete(SeriesId),
}

fn decode_series_record(path: &Path, offset: u64, payload: &[u8]) -> Result<SeriesRecord> {
    let bad = || Error::corrupt(format!("{} at offset {offset}: bad series record", path.display()));
    if payload.len() < 9 {
        return Err(bad());
    }
    let id = u64::from_le_bytes(payload[1..9].try_into().unwrap());
    match payload[0] {
        SERIES_CREATE => Ok(SeriesRecord::Create(id, Labels::decode(&payload[9..]).map_err(|_| bad())?)),
        SERIES_DELETE => Ok(SeriesRecord::Delete(id)),
        _ => Err(bad()),
    }
}

/// A batch of series-log records: their payloads back to back in one buffer (one
/// allocation per batch rather than one per record), with each record's offset in
/// the log and its end in `bytes`.
#[derive(Default)]
struct SeriesBatch {
    bytes: Vec<u8>,
    records: Vec<(u64, usize)>,
}

impl SeriesBatch {
    fn push(&mut self, offset: u64, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.records.push((offset, self.bytes.len()));
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn payload(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.records[i - 1].1 };
        &self.bytes[start..self.records[i].1]
    }
}

/// Decode a batch of records in parallel, then apply them in log order.
fn apply_series_batch(path: &Path, batch: &mut SeriesBatch, registry: &Registry) -> Result<()> {
    let records: Vec<Result<SeriesRecord>> = pool().install(|| {
        (0..batch.len())
            .into_par_iter()
            .map(|i| decode_series_record(path, batch.records[i].0, batch.payload(i)))
            .collect()
    });
    batch.bytes.clear();
    batch.records.clear();
    for record in records {
        match record? {
            SeriesRecord::Create(id, labels) => registry.insert_known(id, labels)?,
            SeriesRecord::Delete(id) => {
                registry.delete(&[id]);
                registry.bump_next_id(id.saturating_add(1));
            }
        }
    }
    Ok(())
}

pub(super) fn replay_series_log(path: &Path, registry: &Registry, warnings: &mut Vec<String>) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut batch = SeriesBatch::default();
    let issues = read_records(path, |offset, payload| {
        batch.push(offset, payload);
        if batch.len() == SERIES_BATCH {
            apply_series_batch(path, &mut batch, registry)?;
        }
        Ok(())
    })?;
    apply_series_batch(path, &mut batch, registry)?;
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

/// A chunk file found at open: its id, path, and the file with its index (or why not).
pub(super) type OpenedChunkFile = (u64, std::path::PathBuf, Result<(ChunkFile, Vec<crate::chunk::ChunkMeta>)>);

/// Open every chunk file's index, in parallel; no chunk body is decoded. Needs
/// nothing else from recovery, so it runs while the series log is replayed.
pub(super) fn open_chunk_files(dir: &Path) -> Result<Vec<OpenedChunkFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
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
    Ok(pool().install(|| {
        found
            .into_par_iter()
            .map(|(id, path)| {
                let opened = ChunkFile::open(&path, id);
                (id, path, opened)
            })
            .collect()
    }))
}

/// Register the chunks of live series (the registry is recovered by now); returns
/// the next free file id.
pub(super) fn register_chunk_files(
    opened: Vec<OpenedChunkFile>,
    registry: &Registry,
    view: &mut View,
    warnings: &mut Vec<String>,
) -> u64 {
    // Liveness of every chunk's series first, to size each series' chunk list once.
    let live: Vec<Option<Vec<bool>>> = opened
        .iter()
        .map(|(_, _, result)| {
            result.as_ref().ok().map(|(_, metas)| {
                let ids: Vec<SeriesId> = metas.iter().map(|m| m.series_id).collect();
                registry.live_mask(&ids)
            })
        })
        .collect();
    let mut counts: Vec<u32> = Vec::new();
    for ((_, _, result), live) in opened.iter().zip(&live) {
        if let (Ok((_, metas)), Some(live)) = (result, live) {
            for (meta, &l) in metas.iter().zip(live) {
                let sid = meta.series_id as usize;
                if l {
                    if counts.len() <= sid {
                        counts.resize(sid + 1, 0);
                    }
                    counts[sid] += 1;
                }
            }
        }
    }
    view.reserve_chunks(&counts);
    drop(counts);

    let mut next_id = 1;
    for ((id, path, result), live) in opened.into_iter().zip(live) {
        next_id = next_id.max(id + 1);
        match result {
            Ok((file, metas)) => {
                for (meta, l) in metas.into_iter().zip(live.expect("mask of an opened file")) {
                    if l {
                        view.add_chunk(id, meta);
                    }
                }
                view.files.insert(id, Arc::new(file));
            }
            Err(e) => warnings.push(format!("skipped chunk file {}: {}", path.display(), e.message)),
        }
    }
    next_id
}

pub(super) fn replay_samples(registry: &Registry, head: &Head, ids: &[SeriesId], ts: &[Timestamp], vals: &[f64]) {
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

