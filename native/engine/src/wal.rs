//! Write-ahead log of samples, built on [`crate::log`].
//!
//! The WAL is a directory of numbered segment files, `<16 lowercase hex digits>.wal`. Each is a
//! [`crate::log`] record file; each record holds one batch of samples (layout in `FORMAT-wal.md`):
//!
//! ```text
//! type u8 = 1 | n uvarint | n series ids (zigzag varint of the delta from the previous id, first from 0)
//!             | n timestamps (zigzag varint of the delta from the previous timestamp, first from 0)
//!             | n values (raw f64 bits, 8 bytes little-endian each)
//! ```
//!
//! Lifecycle: at start-up [`replay`] the directory, then [`Wal::open`] it (which starts a new segment
//! after the highest existing one). A flush does `let s = wal.rotate()?;`, persists what was in memory,
//! then `wal.remove_segments_before(s)`.

use crate::codec::{unzigzag, zigzag};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::log::{read_records, seal_frame, IssueKind, LogWriter, ReplayIssue, HEADER_LEN};
use crate::SeriesId;

/// Record type byte of a sample batch.
pub const RECORD_SAMPLES_V1: u8 = 1;
/// File-name extension of WAL segments.
pub const SEGMENT_EXT: &str = "wal";
/// Smallest encoded size of one sample (1-byte id + 1-byte timestamp + 8-byte value).
const MIN_SAMPLE_BYTES: usize = 10;
/// Largest encoded size of one sample (10-byte id + 10-byte timestamp + 8-byte value).
const MAX_SAMPLE_BYTES: usize = 28;
/// Per-thread encode buffers above this size are freed after use instead of kept.
const KEEP_BUFFER_BYTES: usize = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Sample record codec
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn put_uvarint(out: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[pos] = v as u8 | 0x80;
        v >>= 7;
        pos += 1;
    }
    out[pos] = v as u8;
    pos + 1
}

/// Decode a uvarint from `p[pos..end]`; rejects truncated and over-long (> 64-bit) encodings.
#[inline(always)]
fn get_uvarint(p: &[u8], pos: usize, end: usize) -> Option<(u64, usize)> {
    let b = *p.get(pos).filter(|_| pos < end)?;
    if b < 0x80 {
        return Some((b as u64, pos + 1));
    }
    let mut v = (b & 0x7f) as u64;
    let mut shift = 7;
    let mut i = pos + 1;
    loop {
        if i >= end {
            return None;
        }
        let b = p[i];
        i += 1;
        if shift == 63 {
            // 10th byte: only the top bit of the u64 is left.
            if b > 1 {
                return None;
            }
            return Some((v | (b as u64) << 63, i));
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some((v, i));
        }
        shift += 7;
    }
}

/// Upper bound of the encoded size of a record of `n` samples.
pub fn max_encoded_len(n: usize) -> usize {
    1 + 10 + n * MAX_SAMPLE_BYTES
}

/// Encode a sample record into `out`, which must be at least [`max_encoded_len`] long.
/// Returns the number of bytes written.
pub fn encode_samples(out: &mut [u8], ids: &[SeriesId], ts: &[i64], vals: &[f64]) -> Result<usize> {
    let n = ids.len();
    if ts.len() != n || vals.len() != n {
        return Err(Error::bad_input(format!(
            "sample batch has {} series ids, {} timestamps and {} values",
            n,
            ts.len(),
            vals.len()
        )));
    }
    if out.len() < max_encoded_len(n) {
        return Err(Error::internal(format!(
            "encode buffer of {} bytes is smaller than the {} bytes {n} samples may need",
            out.len(),
            max_encoded_len(n)
        )));
    }
    out[0] = RECORD_SAMPLES_V1;
    let mut pos = put_uvarint(out, 1, n as u64);
    let mut prev = 0u64;
    for &id in ids {
        pos = put_uvarint(out, pos, zigzag(id.wrapping_sub(prev) as i64));
        prev = id;
    }
    let mut prev = 0i64;
    for &t in ts {
        pos = put_uvarint(out, pos, zigzag(t.wrapping_sub(prev)));
        prev = t;
    }
    let vbytes = &mut out[pos..pos + n * 8];
    for (dst, v) in vbytes.chunks_exact_mut(8).zip(vals) {
        dst.copy_from_slice(&v.to_bits().to_le_bytes());
    }
    Ok(pos + n * 8)
}

/// Decode a sample record into the three vectors (cleared first).
/// Any malformation is an [`crate::ErrorKind::Corrupt`] error; never panics.
pub fn decode_samples(
    p: &[u8],
    ids: &mut Vec<SeriesId>,
    ts: &mut Vec<i64>,
    vals: &mut Vec<f64>,
) -> Result<()> {
    ids.clear();
    ts.clear();
    vals.clear();
    match p.first() {
        Some(&RECORD_SAMPLES_V1) => {}
        Some(t) => return Err(Error::corrupt(format!("unknown WAL record type {t}"))),
        None => return Err(Error::corrupt("empty WAL record")),
    }
    let (n, mut pos) =
        get_uvarint(p, 1, p.len()).ok_or_else(|| Error::corrupt("bad sample count"))?;
    let rest = (p.len() - pos) as u64;
    if n > rest / MIN_SAMPLE_BYTES as u64 {
        return Err(Error::corrupt(format!(
            "sample count {n} does not fit in {rest} bytes"
        )));
    }
    let n = n as usize;
    let vstart = p.len() - n * 8;
    ids.reserve(n);
    ts.reserve(n);
    vals.reserve(n);
    let mut prev = 0u64;
    for _ in 0..n {
        let (d, np) = get_uvarint(p, pos, vstart).ok_or_else(|| Error::corrupt("bad series id"))?;
        prev = prev.wrapping_add(unzigzag(d) as u64);
        ids.push(prev);
        pos = np;
    }
    let mut prev = 0i64;
    for _ in 0..n {
        let (d, np) = get_uvarint(p, pos, vstart).ok_or_else(|| Error::corrupt("bad timestamp"))?;
        prev = prev.wrapping_add(unzigzag(d));
        ts.push(prev);
        pos = np;
    }
    if pos != vstart {
        return Err(Error::corrupt(format!(
            "{} unexpected bytes before the values",
            vstart - pos
        )));
    }
    vals.extend(p[vstart..].chunks_exact(8).map(|b| {
        f64::from_bits(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Segments
// ---------------------------------------------------------------------------------------------

/// Path of segment `n` in `dir`: `<dir>/<n as 16 lowercase hex digits>.wal`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.{SEGMENT_EXT}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 16
        || !stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// Segments in `dir`, ascending by number. A missing directory has none.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir.display(), e)),
    };
    let mut segs = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir.display(), e))?;
        if let Some(n) = ent.file_name().to_str().and_then(parse_segment_name) {
            segs.push((n, ent.path()));
        }
    }
    segs.sort_unstable_by_key(|s| s.0);
    Ok(segs)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

// ---------------------------------------------------------------------------------------------
// Wal
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fdatasync before every append returns.
    Always,
    /// A background thread fdatasyncs the current segment at this interval when it was written to.
    Interval(Duration),
    /// Never fsync (the OS writes back when it likes). Appends still survive a crash of the process.
    Never,
}

struct State {
    writer: LogWriter,
    seg: u64,
    /// Written since the last fsync of the current segment.
    dirty: bool,
    /// Sizes of the segments on disk numbered below `seg`.
    older: BTreeMap<u64, u64>,
    /// A background fsync failure, handed to the next `sync()` caller.
    bg_error: Option<Error>,
}

struct Shared {
    dir: PathBuf,
    policy: FsyncPolicy,
    state: Mutex<State>,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    bg_syncs: AtomicU64,
    bg_alive: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// fdatasync the current segment through a second handle, so appends are not blocked meanwhile.
    fn sync_current(&self, only_if_dirty: bool) -> Result<bool> {
        let (file, seg) = {
            let mut st = self.lock();
            if only_if_dirty && !st.dirty {
                return Ok(false);
            }
            st.dirty = false;
            (st.writer.try_clone_file()?, st.seg)
        };
        if let Err(e) = file.sync_data() {
            let mut st = self.lock();
            if st.seg == seg {
                st.dirty = true;
            }
            return Err(Error::io(
                format!("fsync {}", segment_path(&self.dir, seg).display()),
                e,
            ));
        }
        Ok(true)
    }
}

/// Write-ahead log. `Send + Sync`; all methods take `&self`, so writer threads can share it.
pub struct Wal {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

thread_local! {
    static ENCODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Wal {
    /// Opens `dir` (creating it) and starts a new segment numbered after the highest existing one
    /// (1 if there is none); existing segments are left for [`replay`]. With
    /// [`FsyncPolicy::Interval`] a background thread fsyncs the current segment at that interval
    /// when something was written since the last sync; it stops (after a last sync) on drop.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut older = BTreeMap::new();
        for (n, path) in list_segments(dir)? {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(path.display(), e))?
                .len();
            older.insert(n, len);
        }
        let seg = match older.keys().next_back() {
            None => 1,
            Some(&n) => n
                .checked_add(1)
                .ok_or_else(|| Error::internal("WAL segment numbers exhausted"))?,
        };
        let writer = LogWriter::open(&segment_path(dir, seg))?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            policy,
            state: Mutex::new(State {
                writer,
                seg,
                dirty: false,
                older,
                bg_error: None,
            }),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            bg_syncs: AtomicU64::new(0),
            bg_alive: AtomicBool::new(false),
        });
        let syncer = match policy {
            FsyncPolicy::Interval(every) => {
                let every = every.max(Duration::from_millis(1));
                let sh = Arc::clone(&shared);
                sh.bg_alive.store(true, Ordering::SeqCst);
                let h = std::thread::Builder::new()
                    .name("tm-wal-sync".into())
                    .spawn(move || sync_loop(sh, every))
                    .map_err(|e| Error::io("spawn WAL sync thread", e))?;
                Some(h)
            }
            _ => None,
        };
        Ok(Wal { shared, syncer })
    }

    /// Append one record with all the samples. The bytes are in the OS when this returns, and on
    /// disk under [`FsyncPolicy::Always`]. An empty batch writes nothing.
    pub fn append_samples(&self, ids: &[SeriesId], ts: &[i64], vals: &[f64]) -> Result<()> {
        if ids.is_empty() && ts.is_empty() && vals.is_empty() {
            return Ok(());
        }
        // Encode and checksum outside the lock, in a per-thread buffer, so writer threads only
        // serialise on the write(2) itself.
        ENCODE_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            let need = HEADER_LEN + max_encoded_len(ids.len());
            if buf.len() < need {
                buf.resize(need, 0);
            }
            let r = encode_samples(&mut buf[HEADER_LEN..], ids, ts, vals).and_then(|n| {
                let frame = &mut buf[..HEADER_LEN + n];
                seal_frame(frame)?;
                self.write_sealed(frame)
            });
            if buf.len() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
            r
        })
    }

    fn write_sealed(&self, frame: &[u8]) -> Result<()> {
        let mut st = self.shared.lock();
        st.writer.append_sealed(frame)?;
        match self.shared.policy {
            FsyncPolicy::Always => st.writer.sync(),
            FsyncPolicy::Interval(_) => {
                st.dirty = true;
                Ok(())
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Close the current segment (fsync'd unless the policy is `Never`) and start the next; returns
    /// the new segment's number. Everything appended after this call lands in segments >= it.
    pub fn rotate(&self) -> Result<u64> {
        let mut st = self.shared.lock();
        if self.shared.policy != FsyncPolicy::Never {
            st.writer.sync()?;
        }
        let next = st
            .seg
            .checked_add(1)
            .ok_or_else(|| Error::internal("WAL segment numbers exhausted"))?;
        let writer = LogWriter::open(&segment_path(&self.shared.dir, next))?;
        let old = std::mem::replace(&mut st.writer, writer);
        let old_seg = std::mem::replace(&mut st.seg, next);
        st.older.insert(old_seg, old.len());
        st.dirty = false;
        Ok(next)
    }

    /// Delete every segment numbered below `seg` (once a flush made them redundant). `seg` may not be
    /// above the current segment.
    pub fn remove_segments_before(&self, seg: u64) -> Result<()> {
        let current = self.shared.lock().seg;
        if seg > current {
            return Err(Error::bad_input(format!(
                "remove_segments_before({seg}) would delete the current WAL segment {current}"
            )));
        }
        // Delete outside the lock (unlinking a big file can take a while); oldest first, so a crash
        // midway leaves a contiguous run of segments.
        let mut removed = Vec::new();
        let mut result = Ok(());
        for (n, path) in list_segments(&self.shared.dir)? {
            if n >= seg {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(n),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed.push(n),
                Err(e) => {
                    result = Err(Error::io(format!("remove {}", path.display()), e));
                    break;
                }
            }
        }
        {
            let mut st = self.shared.lock();
            for n in &removed {
                st.older.remove(n);
            }
        }
        result?;
        if !removed.is_empty() {
            sync_dir(&self.shared.dir)?;
        }
        Ok(())
    }

    /// fdatasync the current segment now. Also returns (once) an error hit by the background
    /// sync thread since the last call.
    pub fn sync(&self) -> Result<()> {
        if let Some(e) = self.shared.lock().bg_error.take() {
            return Err(e);
        }
        self.shared.sync_current(false).map(|_| ())
    }

    /// Total bytes of all segment files on disk.
    pub fn size_bytes(&self) -> u64 {
        let st = self.shared.lock();
        st.older.values().sum::<u64>() + st.writer.len()
    }

    /// Number of the segment being written.
    pub fn current_segment(&self) -> u64 {
        self.shared.lock().seg
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

fn sync_loop(sh: Arc<Shared>, every: Duration) {
    let mut stop = sh.stop.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let deadline = Instant::now() + every;
        while !*stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stop = sh
                .stop_cv
                .wait_timeout(stop, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let stopping = *stop;
        drop(stop);
        match sh.sync_current(true) {
            Ok(true) => {
                sh.bg_syncs.fetch_add(1, Ordering::SeqCst);
            }
            Ok(false) => {}
            Err(e) => {
                ::log::error!("WAL background fsync failed: {e}");
                sh.lock().bg_error = Some(e);
            }
        }
        if stopping {
            break;
        }
        stop = sh.stop.lock().unwrap_or_else(|p| p.into_inner());
    }
    sh.bg_alive.store(false, Ordering::SeqCst);
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some(h) = self.syncer.take() {
            *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
            self.shared.stop_cv.notify_all();
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct ReplayReport {
    pub segments: u64,
    pub records: u64,
    pub samples: u64,
    pub issues: Vec<ReplayIssue>,
}

/// Replay every segment in `dir` in order (call before [`Wal::open`] on the same dir), calling `f`
/// once per record. Torn tails are cut (see [`read_records`]); a record whose frame is good but whose
/// payload does not decode is reported as [`IssueKind::Corrupt`] and skipped. A missing `dir` gives an
/// empty report. `Err` only for I/O failures.
pub fn replay(dir: &Path, mut f: impl FnMut(&[SeriesId], &[i64], &[f64])) -> Result<ReplayReport> {
    let mut rep = ReplayReport::default();
    let (mut ids, mut ts, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for (_, path) in list_segments(dir)? {
        rep.segments += 1;
        let mut undecodable = Vec::new();
        let mut issues = read_records(&path, |off, payload| {
            match decode_samples(payload, &mut ids, &mut ts, &mut vals) {
                Ok(()) => {
                    rep.records += 1;
                    rep.samples += ids.len() as u64;
                    f(&ids, &ts, &vals);
                }
                Err(e) => undecodable.push(ReplayIssue {
                    path: path.clone(),
                    offset: off,
                    kind: IssueKind::Corrupt,
                    message: format!(
                        "undecodable sample record of {} bytes: {}",
                        payload.len(),
                        e.message
                    ),
                }),
            }
            Ok(())
        })?;
        issues.append(&mut undecodable);
        issues.sort_by_key(|i| i.offset);
        for i in &issues {
            ::log::warn!(
                "WAL replay: {} at offset {}: {}",
                i.path.display(),
                i.offset,
                i.message
            );
        }
        rep.issues.append(&mut issues);
    }
    Ok(rep)
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Wal>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::STALE_NAN_BITS;
    use rand::{Rng, RngCore, SeedableRng};
    use tempfile::TempDir;

    type Batch = (Vec<SeriesId>, Vec<i64>, Vec<f64>);

    fn replay_all(dir: &Path) -> (Vec<Batch>, ReplayReport) {
        let mut out = Vec::new();
        let rep = replay(dir, |i, t, v| {
            out.push((i.to_vec(), t.to_vec(), v.to_vec()))
        })
        .unwrap();
        (out, rep)
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn assert_same(a: &Batch, b: &Batch) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_eq!(bits(&a.2), bits(&b.2));
    }

    fn batch(seed: u64, n: usize) -> Batch {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ids = (0..n).map(|_| rng.gen_range(0..100_000u64)).collect();
        let ts = (0..n)
            .map(|i| 1_700_000_000_000 + i as i64 * 15_000 + rng.gen_range(-5..5))
            .collect();
        let vals = (0..n).map(|_| rng.gen::<f64>() * 1e6).collect();
        (ids, ts, vals)
    }

    fn special_batch() -> Batch {
        let vals = vec![
            f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::from_bits(0xfff0_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1), // smallest subnormal
            f64::MAX,
            f64::MIN,
            1.5,
        ];
        let ts = vec![
            i64::MIN,
            i64::MAX,
            i64::MIN,
            0,
            -1,
            1,
            i64::MAX,
            i64::MAX - 1,
            -1_000,
            1_700_000_000_000,
            i64::MIN + 1,
            42,
            42,
        ];
        let ids = vec![
            0,
            u64::MAX,
            0,
            u64::MAX - 1,
            1,
            1 << 63,
            (1 << 63) - 1,
            7,
            7,
            300,
            2,
            u64::MAX,
            0,
        ];
        (ids, ts, vals)
    }

    #[test]
    fn wal_codec_round_trip_and_bounds() {
        let b = special_batch();
        let mut buf = vec![0u8; max_encoded_len(b.0.len())];
        let n = encode_samples(&mut buf, &b.0, &b.1, &b.2).unwrap();
        assert!(n <= buf.len());
        let mut got: Batch = Default::default();
        decode_samples(&buf[..n], &mut got.0, &mut got.1, &mut got.2).unwrap();
        assert_same(&got, &b);
        // Compactness of a typical scrape: sequential ids, one timestamp.
        let ids: Vec<u64> = (1000..11_000).collect();
        let ts = vec![1_700_000_000_000i64; ids.len()];
        let vals = vec![1.0f64; ids.len()];
        let mut buf = vec![0u8; max_encoded_len(ids.len())];
        let n = encode_samples(&mut buf, &ids, &ts, &vals).unwrap();
        assert!(n < 10_000 * 10 + 20, "{n} bytes");
        // Wrong shapes and short buffers are refused.
        assert_eq!(
            encode_samples(&mut buf, &ids, &ts[1..], &vals)
                .unwrap_err()
                .kind,
            ErrorKind::BadInput
        );
        assert!(encode_samples(&mut buf[..100], &ids, &ts, &vals).is_err());
    }

    #[test]
    fn wal_decode_rejects_malformed_payloads_without_panicking() {
        let b = batch(11, 50);
        let mut buf = vec![0u8; max_encoded_len(50)];
        let n = encode_samples(&mut buf, &b.0, &b.1, &b.2).unwrap();
        let good = &buf[..n];
        let mut out: Batch = Default::default();
        for cut in 0..n {
            let e = decode_samples(&good[..cut], &mut out.0, &mut out.1, &mut out.2).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Corrupt, "cut {cut}");
        }
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(decode_samples(&longer, &mut out.0, &mut out.1, &mut out.2).is_err());
        let mut other_type = good.to_vec();
        other_type[0] = 9;
        assert!(decode_samples(&other_type, &mut out.0, &mut out.1, &mut out.2).is_err());
        // Over-long varint for the count.
        let overlong = [
            1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(decode_samples(&overlong, &mut out.0, &mut out.1, &mut out.2).is_err());
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for _ in 0..5000 {
            let mut p = vec![0u8; rng.gen_range(0..200)];
            rng.fill_bytes(&mut p);
            if !p.is_empty() && rng.gen() {
                p[0] = RECORD_SAMPLES_V1;
            }
            if let Ok(()) = decode_samples(&p, &mut out.0, &mut out.1, &mut out.2) {
                assert!(out.0.len() == out.1.len() && out.1.len() == out.2.len());
            }
        }
    }

    #[test]
    fn wal_append_replay_round_trip_special_values() {
        let dir = TempDir::new().unwrap();
        let wdir = dir.path().join("wal");
        let batches = vec![
            special_batch(),
            batch(1, 1),
            batch(2, 10_000),
            special_batch(),
        ];
        {
            let wal = Wal::open(&wdir, FsyncPolicy::Always).unwrap();
            for b in &batches {
                wal.append_samples(&b.0, &b.1, &b.2).unwrap();
            }
            wal.append_samples(&[], &[], &[]).unwrap(); // writes nothing
            assert_eq!(
                wal.append_samples(&[1, 2], &[1], &[1.0, 2.0])
                    .unwrap_err()
                    .kind,
                ErrorKind::BadInput
            );
            wal.sync().unwrap();
            let on_disk: u64 = list_segments(&wdir)
                .unwrap()
                .iter()
                .map(|s| std::fs::metadata(&s.1).unwrap().len())
                .sum();
            assert_eq!(wal.size_bytes(), on_disk);
        }
        let (got, rep) = replay_all(&wdir);
        assert!(rep.issues.is_empty(), "{:?}", rep.issues);
        assert_eq!(rep.segments, 1);
        assert_eq!(rep.records, batches.len() as u64);
        assert_eq!(
            rep.samples,
            batches.iter().map(|b| b.0.len() as u64).sum::<u64>()
        );
        assert_eq!(got.len(), batches.len());
        for (g, b) in got.iter().zip(&batches) {
            assert_same(g, b);
        }
    }

    #[test]
    fn wal_segments_replay_in_order_across_opens_and_rotations() {
        let dir = TempDir::new().unwrap();
        let mut expect = Vec::new();
        let mut k = 0;
        for open in 0..3u64 {
            let wal = Wal::open(dir.path(), FsyncPolicy::Never).unwrap();
            assert_eq!(wal.current_segment(), 1 + open * 3);
            for r in 0..3 {
                for _ in 0..4 {
                    let b = batch(100 + k, 1 + k as usize * 7);
                    k += 1;
                    wal.append_samples(&b.0, &b.1, &b.2).unwrap();
                    expect.push(b);
                }
                if r < 2 {
                    assert_eq!(wal.rotate().unwrap(), 1 + open * 3 + r + 1);
                }
            }
        }
        let names: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(names, (1..=9).collect::<Vec<_>>());
        assert!(segment_path(dir.path(), 10).ends_with("000000000000000a.wal"));
        let (got, rep) = replay_all(dir.path());
        assert!(rep.issues.is_empty());
        assert_eq!(rep.segments, 9);
        assert_eq!(got.len(), expect.len());
        for (g, e) in got.iter().zip(&expect) {
            assert_same(g, e);
        }
    }

    #[test]
    fn wal_open_numbers_after_highest_segment_and_ignores_other_files() {
        let dir = TempDir::new().unwrap();
        std::fs::write(segment_path(dir.path(), 0x2f), b"").unwrap();
        std::fs::write(dir.path().join("00000000000000ff.wal.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("00000000000000FF.wal"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let wal = Wal::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(wal.current_segment(), 0x30);
        assert!(segment_path(dir.path(), 0x30).exists());
    }

    #[test]
    fn wal_rotate_and_remove_segments_before() {
        let dir = TempDir::new().unwrap();
        let wal = Wal::open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(5))).unwrap();
        let old = batch(1, 500);
        wal.append_samples(&old.0, &old.1, &old.2).unwrap();
        let s = wal.rotate().unwrap();
        assert_eq!(s, 2);
        let new = batch(2, 300);
        wal.append_samples(&new.0, &new.1, &new.2).unwrap();
        let disk = |d: &Path| -> u64 {
            list_segments(d)
                .unwrap()
                .iter()
                .map(|s| std::fs::metadata(&s.1).unwrap().len())
                .sum()
        };
        assert_eq!(wal.size_bytes(), disk(dir.path()));
        assert_eq!(
            wal.remove_segments_before(s + 1).unwrap_err().kind,
            ErrorKind::BadInput
        );
        assert!(segment_path(dir.path(), 1).exists());
        wal.remove_segments_before(s).unwrap();
        assert!(!segment_path(dir.path(), 1).exists());
        assert!(segment_path(dir.path(), 2).exists());
        assert_eq!(wal.size_bytes(), disk(dir.path()));
        wal.remove_segments_before(s).unwrap(); // idempotent
        let s3 = wal.rotate().unwrap();
        wal.append_samples(&old.0, &old.1, &old.2).unwrap();
        drop(wal);
        let (got, rep) = replay_all(dir.path());
        assert!(rep.issues.is_empty());
        assert_eq!(rep.segments, 2);
        assert_eq!(got.len(), 2);
        assert_same(&got[0], &new);
        assert_same(&got[1], &old);
        assert_eq!(s3, 3);
    }

    #[test]
    fn wal_interval_sync_thread_runs_and_stops_on_drop() {
        let dir = TempDir::new().unwrap();
        let wal = Wal::open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(10))).unwrap();
        let sh = Arc::clone(&wal.shared);
        assert!(sh.bg_alive.load(Ordering::SeqCst));
        // Nothing written: no syncs.
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(sh.bg_syncs.load(Ordering::SeqCst), 0);
        let b = batch(3, 100);
        wal.append_samples(&b.0, &b.1, &b.2).unwrap();
        let t0 = Instant::now();
        while sh.bg_syncs.load(Ordering::SeqCst) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "background sync never ran"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!sh.lock().dirty);
        // Synced once, nothing new: stays at one.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sh.bg_syncs.load(Ordering::SeqCst), 1);
        wal.append_samples(&b.0, &b.1, &b.2).unwrap();
        // Drop must stop and join the thread: do it on another thread so a hang fails the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(wal);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("dropping the Wal did not stop its sync thread");
        // Drop joined the thread, which synced the last append on its way out.
        assert!(!sh.bg_alive.load(Ordering::SeqCst));
        assert_eq!(sh.bg_syncs.load(Ordering::SeqCst), 2);
        assert_eq!(Arc::strong_count(&sh), 1);
        // Other policies start no thread.
        let wal = Wal::open(dir.path(), FsyncPolicy::Always).unwrap();
        assert!(wal.syncer.is_none() && !wal.shared.bg_alive.load(Ordering::SeqCst));
    }

    #[test]
    fn wal_concurrent_appends_are_all_replayed() {
        let dir = TempDir::new().unwrap();
        let wal = Arc::new(
            Wal::open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(3))).unwrap(),
        );
        let threads = 4u64;
        let per = 150u64;
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    for i in 0..per {
                        // Batch i of thread t: ids encode (t, i), sizes vary.
                        let n = 1 + ((t * 131 + i * 17) % 400) as usize;
                        let ids = vec![t << 32 | i; n];
                        let ts: Vec<i64> = (0..n as i64).map(|k| k - (i as i64) * 1000).collect();
                        let vals: Vec<f64> = (0..n)
                            .map(|k| (t * 1_000_000 + i * 1000 + k as u64) as f64)
                            .collect();
                        wal.append_samples(&ids, &ts, &vals).unwrap();
                        if t == 0 && i % 50 == 49 {
                            wal.rotate().unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        wal.sync().unwrap();
        drop(wal);
        let (got, rep) = replay_all(dir.path());
        assert!(rep.issues.is_empty());
        assert_eq!(rep.records, threads * per);
        let mut seen = std::collections::HashSet::new();
        let mut last_i = vec![None::<u64>; threads as usize];
        for (ids, ts, vals) in &got {
            let (t, i) = (ids[0] >> 32, ids[0] & 0xffff_ffff);
            let n = 1 + ((t * 131 + i * 17) % 400) as usize;
            assert_eq!(ids.len(), n);
            assert!(ids.iter().all(|&x| x == ids[0]));
            for k in 0..n {
                assert_eq!(ts[k], k as i64 - (i as i64) * 1000);
                assert_eq!(vals[k], (t * 1_000_000 + i * 1000 + k as u64) as f64);
            }
            assert!(seen.insert((t, i)), "duplicate record {t}/{i}");
            // Each thread's records replay in the order it wrote them.
            assert!(last_i[t as usize].is_none_or(|p| p < i));
            last_i[t as usize] = Some(i);
        }
        assert_eq!(seen.len() as u64, threads * per);
    }

    #[test]
    fn wal_undecodable_record_is_reported_and_skipped() {
        let dir = TempDir::new().unwrap();
        let (a, b, c) = (batch(21, 40), batch(22, 50), batch(23, 60));
        {
            let wal = Wal::open(dir.path(), FsyncPolicy::Never).unwrap();
            wal.append_samples(&a.0, &a.1, &a.2).unwrap();
        }
        // A well-framed record whose payload is not a sample record, then a good one after it.
        let seg1 = segment_path(dir.path(), 1);
        let mut w = LogWriter::open(&seg1).unwrap();
        let bad_off = w.append(&[RECORD_SAMPLES_V1, 200, 1, 2, 3]).unwrap();
        let bad_off2 = w.append(&[]).unwrap();
        drop(w);
        {
            let wal = Wal::open(dir.path(), FsyncPolicy::Never).unwrap();
            assert_eq!(wal.current_segment(), 2);
            wal.append_samples(&b.0, &b.1, &b.2).unwrap();
            wal.append_samples(&c.0, &c.1, &c.2).unwrap();
        }
        // And a torn tail on the last segment.
        let seg2 = segment_path(dir.path(), 2);
        let len2 = std::fs::metadata(&seg2).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg2).unwrap();
        f.set_len(len2 - 3).unwrap();
        drop(f);
        let (got, rep) = replay_all(dir.path());
        assert_eq!(rep.segments, 2);
        assert_eq!(rep.records, 2);
        assert_eq!(rep.samples, 90);
        assert_same(&got[0], &a);
        assert_same(&got[1], &b);
        assert_eq!(rep.issues.len(), 3, "{:?}", rep.issues);
        assert_eq!(
            (
                rep.issues[0].path.clone(),
                rep.issues[0].offset,
                rep.issues[0].kind.clone()
            ),
            (seg1.clone(), bad_off, IssueKind::Corrupt)
        );
        assert_eq!(
            (
                rep.issues[1].path.clone(),
                rep.issues[1].offset,
                rep.issues[1].kind.clone()
            ),
            (seg1, bad_off2, IssueKind::Corrupt)
        );
        assert_eq!(
            (rep.issues[2].path.clone(), rep.issues[2].kind.clone()),
            (seg2.clone(), IssueKind::TornTail)
        );
        // The tail was cut: a second replay is clean apart from the undecodable records.
        let (got2, rep2) = replay_all(dir.path());
        assert_eq!(got2.len(), 2);
        assert_eq!(rep2.issues.len(), 2);
        assert!(rep2.issues.iter().all(|i| i.kind == IssueKind::Corrupt));
    }

    #[test]
    fn wal_replay_of_missing_dir_is_empty() {
        let dir = TempDir::new().unwrap();
        let (got, rep) = replay_all(&dir.path().join("nope"));
        assert!(got.is_empty());
        assert_eq!(
            (rep.segments, rep.records, rep.samples, rep.issues.len()),
            (0, 0, 0, 0)
        );
    }
}
