//! The ingest spool: an append-only, segmented log of accepted request bodies, so that an
//! HTTP `204` survives a `kill -9` of the VM (byte layout in `FORMAT-ingest.md`, "Spool").
//!
//! * [`Spool::append`] writes one body record (sequence number, format, parse options, the
//!   body bytes) with one `write(2)` under a mutex and returns the body's sequence number:
//!   once it returns, the bytes are in the OS. With [`SpoolConfig::sync`] the file is also
//!   `fdatasync`ed (outside the mutex) before `append` returns.
//! * [`Spool::done`] marks bodies processed by appending one *completion record* listing
//!   their sequence numbers (as ranges) to the active segment.
//! * Segments (`<number>.spool`, number zero-padded to 20 digits) rotate by size and age.
//!   A closed segment is deleted once every body in it is done **and** every older segment
//!   is deleted: completion records live in later segments than the bodies they complete,
//!   so deleting in order never loses the record that a still-present body is done.
//! * [`Spool::open`] reads every segment: bodies without a completion record are returned
//!   for replay (read lazily with [`Spool::read`]); a torn tail is cut and a damaged record
//!   skipped, both reported as [`ReplayIssue`]s with file and offset, never a panic.
//!
//! Sequence numbers grow across restarts while any segment exists (the next one is the
//! largest seen plus one); with no record left anywhere they start again at 1.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::ingest::{Format, Precision};
use crate::log::{self, IssueKind, LogWriter, ReplayIssue, HEADER_LEN};

/// Kind byte of a body record.
const KIND_BODY: u8 = 1;
/// Kind byte of a completion record.
const KIND_DONE: u8 = 2;
/// File name extension of segments.
const EXT: &str = "spool";
/// Body record bytes before the extra labels: kind, seq, format, precision, default ts, label count.
const BODY_FIXED: usize = 1 + 8 + 1 + 1 + 8 + 2;

#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// A segment is closed once it holds this many bytes.
    pub max_segment_bytes: u64,
    /// ... or once it is this old and holds at least one body.
    pub max_segment_age: Duration,
    /// `fdatasync` each append before it returns (the store's `fsync: :always`).
    pub sync: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { max_segment_bytes: 16 << 20, max_segment_age: Duration::from_secs(2), sync: false }
    }
}

/// What is needed to parse a body later: its format and the request's options.
#[derive(Clone, Debug, PartialEq)]
pub struct BodyHeader {
    pub format: Format,
    pub precision: Precision,
    /// Timestamp (ms) for lines without one: when the body was received.
    pub default_ts_ms: i64,
    pub extra_labels: Vec<(String, String)>,
}

/// A body found on open that is not done: replay it, read it with [`Spool::read`].
#[derive(Clone, Debug, PartialEq)]
pub struct PendingBody {
    pub seq: u64,
    pub header: BodyHeader,
    /// Bytes of the body.
    pub len: u64,
}

/// What [`Spool::open`] found.
#[derive(Debug)]
pub struct Recovered {
    pub spool: Spool,
    /// In sequence order.
    pub pending: Vec<PendingBody>,
    /// Torn tails cut and damaged records skipped.
    pub issues: Vec<ReplayIssue>,
}

/// Sizes for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolInfo {
    /// Bytes of all segment files.
    pub bytes: u64,
    pub segments: u64,
    /// Bodies appended (or replayed) and not done.
    pub pending: u64,
}

#[derive(Debug)]
struct Segment {
    no: u64,
    path: PathBuf,
    /// Bodies in it not done yet.
    pending: u64,
    bytes: u64,
}

/// Where a replayed body's bytes are.
#[derive(Debug, Clone)]
struct Location {
    path: PathBuf,
    /// Offset of the body's record (its log header) in the file.
    record: u64,
    len: u64,
}

struct Inner {
    writer: LogWriter,
    /// The active segment; its `bytes` are `writer.len()`.
    active: Segment,
    active_bodies: u64,
    active_opened: Instant,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    next_seq: u64,
    /// Pending seq -> number of the segment holding it.
    pending: HashMap<u64, u64>,
    /// Pending bodies found on open: where to read them.
    replay: HashMap<u64, Location>,
    /// The active segment's file, for `fdatasync` outside the lock.
    sync_file: Arc<File>,
    /// Set by [`Spool::close`]: appends and completions are refused.
    shut: bool,
}

/// An open spool directory. All methods take `&self`; share it between threads.
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    inner: Mutex<Inner>,
    /// Serialises rotations (which create a file outside `inner`'s lock).
    rotating: Mutex<()>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).field("info", &self.info()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:020}.{EXT}"))
}

fn format_code(f: Format) -> u8 {
    match f {
        Format::VmJson => 1,
        Format::PrometheusText => 2,
        Format::Influx => 3,
        Format::RemoteWrite => 4,
    }
}

fn format_of(code: u8) -> Option<Format> {
    Some(match code {
        1 => Format::VmJson,
        2 => Format::PrometheusText,
        3 => Format::Influx,
        4 => Format::RemoteWrite,
        _ => return None,
    })
}

fn precision_code(p: Precision) -> u8 {
    match p {
        Precision::Ns => 1,
        Precision::Us => 2,
        Precision::Ms => 3,
        Precision::S => 4,
    }
}

fn precision_of(code: u8) -> Option<Precision> {
    Some(match code {
        1 => Precision::Ns,
        2 => Precision::Us,
        3 => Precision::Ms,
        4 => Precision::S,
        _ => return None,
    })
}

/// A whole log frame (room for the log header, then the body record payload) with the
/// sequence number left 0: it is patched in under the lock.
fn body_frame(header: &BodyHeader, body: &[u8]) -> Result<Vec<u8>> {
    if header.extra_labels.len() > u16::MAX as usize {
        return Err(Error::bad_input(format!("{} extra labels, at most {} fit a spool record", header.extra_labels.len(), u16::MAX)));
    }
    let labels: usize = header.extra_labels.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    let mut f = Vec::with_capacity(HEADER_LEN + BODY_FIXED + labels + body.len());
    f.resize(HEADER_LEN, 0);
    f.push(KIND_BODY);
    f.extend_from_slice(&0u64.to_le_bytes());
    f.push(format_code(header.format));
    f.push(precision_code(header.precision));
    f.extend_from_slice(&header.default_ts_ms.to_le_bytes());
    f.extend_from_slice(&(header.extra_labels.len() as u16).to_le_bytes());
    for (n, v) in &header.extra_labels {
        for s in [n, v] {
            f.extend_from_slice(&(s.len() as u32).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
        }
    }
    f.extend_from_slice(body);
    Ok(f)
}

/// Byte reader over a record payload; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.b.len() - self.at < n {
            return Err(format!("record ends at byte {} of {}, {n} more bytes expected", self.b.len(), self.at + n));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn text(&mut self) -> std::result::Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "extra label is not UTF-8".to_string())
    }
}

/// A decoded record payload.
enum Record {
    /// seq, header, offset of the body bytes within the payload.
    Body(u64, BodyHeader, usize),
    /// (first seq, count) ranges.
    Done(Vec<(u64, u32)>),
}

fn decode(payload: &[u8]) -> std::result::Result<Record, String> {
    let mut c = Cursor { b: payload, at: 0 };
    match c.u8()? {
        KIND_BODY => {
            let seq = c.u64()?;
            let fc = c.u8()?;
            let format = format_of(fc).ok_or_else(|| format!("unknown format code {fc}"))?;
            let pc = c.u8()?;
            let precision = precision_of(pc).ok_or_else(|| format!("unknown precision code {pc}"))?;
            let default_ts_ms = c.u64()? as i64;
            let n = c.u16()?;
            let mut extra_labels = Vec::with_capacity(n as usize);
            for _ in 0..n {
                extra_labels.push((c.text()?, c.text()?));
            }
            Ok(Record::Body(seq, BodyHeader { format, precision, default_ts_ms, extra_labels }, c.at))
        }
        KIND_DONE => {
            let n = c.u32()? as usize;
            if n > payload.len() / 12 {
                return Err(format!("completion record claims {n} ranges in {} bytes", payload.len()));
            }
            let mut ranges = Vec::with_capacity(n);
            for _ in 0..n {
                ranges.push((c.u64()?, c.u32()?));
            }
            Ok(Record::Done(ranges))
        }
        k => Err(format!("unknown record kind {k}")),
    }
}

/// Sorted, deduplicated sequence numbers as (first, count) ranges.
fn ranges(seqs: &mut [u64]) -> Vec<(u64, u32)> {
    seqs.sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::new();
    for &s in seqs.iter() {
        match out.last_mut() {
            Some((first, count)) if *first + *count as u64 == s && *count < u32::MAX => *count += 1,
            Some((first, count)) if s < *first + *count as u64 => {}
            _ => out.push((s, 1)),
        }
    }
    out
}

fn done_payload(ranges: &[(u64, u32)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + 12 * ranges.len());
    p.push(KIND_DONE);
    p.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (first, count) in ranges {
        p.extend_from_slice(&first.to_le_bytes());
        p.extend_from_slice(&count.to_le_bytes());
    }
    p
}

/// Segment files of `dir`, by number.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))? {
        let path = entry.map_err(|e| Error::io(dir.display(), e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXT) {
            continue;
        }
        if let Some(no) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()) {
            out.push((no, path));
        }
    }
    out.sort();
    Ok(out)
}

fn open_writer(path: &Path) -> Result<(LogWriter, Arc<File>)> {
    let writer = LogWriter::open(path)?;
    let file = Arc::new(writer.try_clone_file()?);
    Ok((writer, file))
}

impl Spool {
    /// Open (creating) the spool in `dir`: read every segment, return the bodies not done
    /// for replay, delete segments whose bodies are all done, start a new active segment.
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<Recovered> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let files = list_segments(dir)?;
        let mut issues = Vec::new();
        let mut bodies: Vec<(u64, BodyHeader, Location, u64)> = Vec::new(); // seq, header, where, segment
        let mut done: HashSet<u64> = HashSet::new();
        let mut max_seq = 0u64;
        for (no, path) in &files {
            let found = log::read_records(path, |off, payload| {
                match decode(payload) {
                    Ok(Record::Body(seq, header, at)) => {
                        max_seq = max_seq.max(seq);
                        let len = (payload.len() - at) as u64;
                        bodies.push((seq, header, Location { path: path.clone(), record: off, len }, *no));
                    }
                    Ok(Record::Done(rs)) => {
                        for (first, count) in rs {
                            let last = first.saturating_add(count as u64);
                            max_seq = max_seq.max(last.saturating_sub(1));
                            // A range can only name bodies that were appended; bound the work anyway.
                            if count as usize <= 1 << 24 {
                                done.extend(first..last);
                            }
                        }
                    }
                    Err(message) => issues.push(ReplayIssue {
                        path: path.clone(),
                        offset: off,
                        kind: IssueKind::Corrupt,
                        message: format!("spool record skipped: {message}"),
                    }),
                }
                Ok(())
            })?;
            issues.extend(found);
        }

        let mut closed: VecDeque<Segment> = VecDeque::new();
        for (no, path) in &files {
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            closed.push_back(Segment { no: *no, path: path.clone(), pending: 0, bytes });
        }
        let mut pending_map = HashMap::new();
        let mut replay = HashMap::new();
        let mut pending = Vec::new();
        bodies.sort_by_key(|b| b.0);
        for (seq, header, loc, no) in bodies {
            if done.contains(&seq) || pending_map.contains_key(&seq) {
                continue;
            }
            if let Some(s) = closed.iter_mut().find(|s| s.no == no) {
                s.pending += 1;
            }
            pending_map.insert(seq, no);
            pending.push(PendingBody { seq, header, len: loc.len });
            replay.insert(seq, loc);
        }

        let next_no = files.last().map(|f| f.0 + 1).unwrap_or(1);
        let path = segment_path(dir, next_no);
        let (writer, sync_file) = open_writer(&path)?;
        let active = Segment { no: next_no, path, pending: 0, bytes: writer.len() };
        let mut inner = Inner {
            writer,
            active,
            active_bodies: 0,
            active_opened: Instant::now(),
            closed,
            next_seq: max_seq + 1,
            pending: pending_map,
            replay,
            sync_file,
            shut: false,
        };
        let deletable = inner.take_deletable();
        remove_files(&deletable);
        let spool = Spool { dir: dir.to_path_buf(), config, inner: Mutex::new(inner), rotating: Mutex::new(()) };
        Ok(Recovered { spool, pending, issues })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one body; returns its sequence number once the bytes are written (and, with
    /// `sync`, fdatasynced).
    pub fn append(&self, header: &BodyHeader, body: &[u8]) -> Result<u64> {
        let mut frame = body_frame(header, body)?;
        let (seq, file, rotate) = {
            let mut inner = lock(&self.inner);
            inner.check_open(&self.dir)?;
            let seq = inner.next_seq;
            frame[HEADER_LEN + 1..HEADER_LEN + 9].copy_from_slice(&seq.to_le_bytes());
            log::seal_frame(&mut frame)?;
            inner.writer.append_sealed(&frame)?;
            inner.next_seq += 1;
            inner.active_bodies += 1;
            inner.active.pending += 1;
            let no = inner.active.no;
            inner.pending.insert(seq, no);
            // Rotation is the workers' job (in `done`); appenders only rotate a segment far
            // over its size, e.g. while no body gets done.
            let rotate = inner.writer.len() >= self.config.max_segment_bytes.saturating_mul(4);
            (seq, self.config.sync.then(|| inner.sync_file.clone()), rotate)
        };
        if let Some(file) = file {
            file.sync_data().map_err(|e| Error::io(format!("fsync {}", self.dir.display()), e))?;
        }
        if rotate {
            self.maybe_rotate()?;
        }
        Ok(seq)
    }

    /// Mark bodies processed. Unknown or already done sequence numbers are ignored. Returns
    /// how many were pending. Rotates the active segment when due and deletes segments that
    /// are wholly done.
    pub fn done(&self, seqs: &[u64]) -> Result<usize> {
        let mut marked: Vec<(u64, u64, Option<Location>)> = Vec::with_capacity(seqs.len());
        {
            let mut inner = lock(&self.inner);
            inner.check_open(&self.dir)?;
            for &seq in seqs {
                if let Some(no) = inner.pending.remove(&seq) {
                    let loc = inner.replay.remove(&seq);
                    if let Some(s) = inner.segment_mut(no) {
                        s.pending -= 1;
                    }
                    marked.push((seq, no, loc));
                }
            }
            if !marked.is_empty() {
                let mut nos: Vec<u64> = marked.iter().map(|m| m.0).collect();
                if let Err(e) = inner.writer.append(&done_payload(&ranges(&mut nos))) {
                    // Not recorded: they stay pending (replayed after a crash, harmlessly twice).
                    for (seq, no, loc) in marked {
                        inner.pending.insert(seq, no);
                        if let Some(s) = inner.segment_mut(no) {
                            s.pending += 1;
                        }
                        if let Some(loc) = loc {
                            inner.replay.insert(seq, loc);
                        }
                    }
                    return Err(e);
                }
            }
        }
        self.maybe_rotate()?;
        Ok(marked.len())
    }

    /// Read a body found on open (see [`Recovered::pending`]): its header and bytes.
    pub fn read(&self, seq: u64) -> Result<(BodyHeader, Vec<u8>)> {
        let loc = lock(&self.inner).replay.get(&seq).cloned();
        let Some(loc) = loc else {
            return Err(Error::new(ErrorKind::NotFound, format!("spool: body {seq} is not a pending replayed body")));
        };
        // Re-read the whole record so its checksum is verified again.
        let rec_off = loc.record;
        let file = File::open(&loc.path).map_err(|e| Error::io(loc.path.display(), e))?;
        let mut head = [0u8; HEADER_LEN];
        file.read_exact_at(&mut head, rec_off)
            .map_err(|e| Error::io(format!("read {} at offset {rec_off}", loc.path.display()), e))?;
        let plen = u32::from_le_bytes(head[4..8].try_into().unwrap()) as u64;
        let corrupt = |what: &str| {
            Error::new(ErrorKind::Corrupt, format!("spool: body {seq} in {} at offset {rec_off}: {what}", loc.path.display()))
        };
        if plen < loc.len || plen > log::MAX_PAYLOAD as u64 {
            return Err(corrupt("record header changed since the spool was opened"));
        }
        let mut payload = vec![0u8; plen as usize];
        file.read_exact_at(&mut payload, rec_off + HEADER_LEN as u64)
            .map_err(|e| Error::io(format!("read {} at offset {rec_off}", loc.path.display()), e))?;
        if crc32fast::hash(&payload) != u32::from_le_bytes(head[8..12].try_into().unwrap()) {
            return Err(corrupt("payload checksum mismatch"));
        }
        match decode(&payload) {
            Ok(Record::Body(s, header, at)) if s == seq => Ok((header, payload.split_off(at))),
            _ => Err(corrupt("not the body record expected")),
        }
    }

    /// Refuse further appends and completions (the store is stopping). What was written
    /// stays for the next open.
    pub fn close(&self) {
        lock(&self.inner).shut = true;
    }

    /// Bytes, segments and pending bodies.
    pub fn info(&self) -> SpoolInfo {
        let inner = lock(&self.inner);
        let closed: u64 = inner.closed.iter().map(|s| s.bytes).sum();
        SpoolInfo {
            bytes: closed + inner.writer.len(),
            segments: inner.closed.len() as u64 + 1,
            pending: inner.pending.len() as u64,
        }
    }

    fn rotation_due(&self, inner: &Inner) -> bool {
        let len = inner.writer.len();
        len >= self.config.max_segment_bytes
            || (inner.active_bodies > 0 && inner.active_opened.elapsed() >= self.config.max_segment_age)
    }

    /// Close the active segment if it is due, start a new one (created outside the main
    /// lock, so appenders are not held up by the file creation), delete wholly done segments.
    fn maybe_rotate(&self) -> Result<()> {
        let deletable = {
            let inner = lock(&self.inner);
            if !self.rotation_due(&inner) && inner.closed.front().is_none_or(|s| s.pending > 0) {
                return Ok(());
            }
            drop(inner);
            let _rot = lock(&self.rotating);
            let inner = lock(&self.inner);
            if self.rotation_due(&inner) {
                let no = inner.active.no + 1;
                drop(inner);
                let path = segment_path(&self.dir, no);
                let (writer, file) = open_writer(&path)?;
                let mut inner = lock(&self.inner);
                let old = std::mem::replace(&mut inner.writer, writer);
                let mut seg = std::mem::replace(&mut inner.active, Segment { no, path, pending: 0, bytes: 0 });
                seg.bytes = old.len();
                inner.closed.push_back(seg);
                inner.sync_file = file;
                inner.active_bodies = 0;
                inner.active_opened = Instant::now();
                inner.take_deletable()
            } else {
                let mut inner = inner;
                inner.take_deletable()
            }
        };
        remove_files(&deletable);
        Ok(())
    }
}

impl Inner {
    fn check_open(&self, dir: &Path) -> Result<()> {
        if self.shut {
            return Err(Error::new(ErrorKind::Unavailable, format!("ingest spool {} is closed", dir.display())));
        }
        Ok(())
    }

    fn segment_mut(&mut self, no: u64) -> Option<&mut Segment> {
        if self.active.no == no {
            return Some(&mut self.active);
        }
        let i = self.closed.partition_point(|s| s.no < no);
        self.closed.get_mut(i).filter(|s| s.no == no)
    }

    /// Pop the oldest closed segments while all their bodies are done.
    fn take_deletable(&mut self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        while self.closed.front().is_some_and(|s| s.pending == 0) {
            out.push(self.closed.pop_front().unwrap().path);
        }
        out
    }
}

fn remove_files(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                ::log::warn!("spool: cannot delete finished segment {}: {e}", p.display());
            }
        }
    }
}

#[cfg(test)]
mod tests;
