//! Framed, checksummed, append-only record files.
//!
//! A log file is a plain sequence of records, each a 16-byte header followed by the payload
//! (layout in `FORMAT-wal.md`):
//!
//! ```text
//! magic [D5 54 4C 52] | payload len u32 LE | payload crc32 u32 LE | header crc32 u32 LE | payload
//! ```
//!
//! The header has its own checksum, so a trusted header gives a trusted length, and the magic lets a
//! reader resynchronise after damage by scanning for the next header whose checksums both hold.
//!
//! Writers append one whole record per `write(2)` call ([`LogWriter::append`]), so a killed process
//! leaves either the whole record or nothing; a power loss may leave a partial or zero-filled tail,
//! which [`read_records`] cuts off and reports as [`IssueKind::TornTail`].

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// First four bytes of every record header.
pub const MAGIC: [u8; 4] = [0xD5, b'T', b'L', b'R'];
/// Bytes in a record header.
pub const HEADER_LEN: usize = 16;
/// Largest payload a record may carry (1 GiB); longer lengths in a header mark it as damaged.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Bytes read from the file at a time while replaying (grown for larger records).
const READ_WINDOW: usize = 8 << 20;

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Fill `frame[..HEADER_LEN]` with the header for the payload `frame[HEADER_LEN..]`.
///
/// Lets a caller encode its payload straight into a buffer that leaves room for the header, so the
/// whole record goes to [`LogWriter::append_sealed`] without another copy.
pub fn seal_frame(frame: &mut [u8]) -> Result<()> {
    if frame.len() < HEADER_LEN {
        return Err(Error::internal(format!(
            "log frame of {} bytes has no room for the {HEADER_LEN}-byte header",
            frame.len()
        )));
    }
    let (header, payload) = frame.split_at_mut(HEADER_LEN);
    if payload.len() > MAX_PAYLOAD {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "log record payload of {} bytes is over the {MAX_PAYLOAD}-byte limit",
                payload.len()
            ),
        ));
    }
    header[0..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let hcrc = crc32fast::hash(&header[0..12]);
    header[12..16].copy_from_slice(&hcrc.to_le_bytes());
    Ok(())
}

/// Validate a record header: magic, header checksum and length limit. Returns (payload len, payload crc).
fn parse_header(h: &[u8]) -> Option<(usize, u32)> {
    if h.len() < HEADER_LEN || h[0..4] != MAGIC {
        return None;
    }
    if crc32fast::hash(&h[0..12]) != le_u32(&h[12..16]) {
        return None;
    }
    let len = le_u32(&h[4..8]) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    Some((len, le_u32(&h[8..12])))
}

fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let d = File::open(dir).map_err(|e| Error::io(dir.display(), e))?;
    d.sync_all()
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

/// Appends records to one log file.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    len: u64,
    scratch: Vec<u8>,
    /// Set when a failed append could not be rolled back: the file's tail is unknown, refuse to append.
    broken: bool,
}

impl LogWriter {
    /// Open for append (create if missing). Appends after the current end.
    ///
    /// A newly created file also has its directory entry fsync'd.
    pub fn open(path: &Path) -> Result<LogWriter> {
        let (file, created) = match OpenOptions::new().append(true).create_new(true).open(path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == IoErrorKind::AlreadyExists => {
                let f = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::io(path.display(), e))?;
                (f, false)
            }
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        if created {
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        }
        let len = file
            .metadata()
            .map_err(|e| Error::io(path.display(), e))?
            .len();
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
            len,
            scratch: Vec::new(),
            broken: false,
        })
    }

    /// Append one framed record with one `write(2)` call; the bytes are in the OS when this returns.
    /// Returns the record's offset.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        frame.resize(HEADER_LEN, 0);
        frame.extend_from_slice(payload);
        let r = seal_frame(&mut frame).and_then(|()| self.write_frame(&frame));
        // Keep a modest scratch buffer around; give huge ones back.
        if frame.capacity() <= 1 << 20 {
            self.scratch = frame;
        }
        r
    }

    /// Append a record already framed by [`seal_frame`] (header + payload). Returns its offset.
    pub fn append_sealed(&mut self, frame: &[u8]) -> Result<u64> {
        match parse_header(frame) {
            Some((len, _)) if len == frame.len() - HEADER_LEN => self.write_frame(frame),
            _ => Err(Error::internal(format!(
                "append_sealed on {}: frame of {} bytes does not carry a valid header for itself",
                self.path.display(),
                frame.len()
            ))),
        }
    }

    fn write_frame(&mut self, frame: &[u8]) -> Result<u64> {
        if self.broken {
            return Err(Error::io(
                self.path.display(),
                std::io::Error::other(
                    "an earlier failed append could not be rolled back; reopen the log",
                ),
            ));
        }
        let off = self.len;
        let mut written = 0usize;
        while written < frame.len() {
            // Normally a single write(2); the loop only continues after a short write or EINTR.
            match (&self.file).write(&frame[written..]) {
                Ok(0) => {
                    return Err(self.rollback(
                        off,
                        written,
                        std::io::Error::from(IoErrorKind::WriteZero),
                    ));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => return Err(self.rollback(off, written, e)),
            }
        }
        self.len += frame.len() as u64;
        Ok(off)
    }

    /// After a failed write, cut off whatever part of the record reached the file.
    fn rollback(&mut self, off: u64, written: usize, e: std::io::Error) -> Error {
        if written > 0 && self.file.set_len(off).is_err() {
            self.broken = true;
        }
        Error::io(
            format!("append to {} at offset {off}", self.path.display()),
            e,
        )
    }

    /// fdatasync the file.
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("fsync {}", self.path.display()), e))
    }

    /// Bytes in the file (as far as this writer knows).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same open file, e.g. to fsync it without holding the writer.
    pub fn try_clone_file(&self) -> Result<File> {
        self.file
            .try_clone()
            .map_err(|e| Error::io(self.path.display(), e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueKind {
    /// The file ended in an incomplete or unreadable record with nothing good after it; it was cut off.
    TornTail,
    /// A damaged record with good records after it; it was skipped.
    Corrupt,
}

/// Something found wrong while reading a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayIssue {
    pub path: PathBuf,
    pub offset: u64,
    pub kind: IssueKind,
    pub message: String,
}

/// What is at a given offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// A whole record with good checksums and this payload length.
    Good(usize),
    /// Fewer bytes left than a header.
    Short,
    /// No valid header here.
    BadHeader,
    /// A valid header whose payload would run past the end of the file.
    Incomplete(usize),
    /// A valid header whose payload fails its checksum.
    BadCrc(usize),
}

/// Reads a file through a window of buffered bytes, with positional reads.
struct Reader<'a> {
    file: &'a File,
    file_len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Reader<'a> {
    /// The bytes [off, off + len); the caller guarantees they are inside the file.
    fn get(&mut self, path: &Path, off: u64, len: usize) -> Result<&[u8]> {
        let have = off >= self.start && off + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (len.max(READ_WINDOW) as u64).min(self.file_len - off) as usize;
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, off)
                .map_err(|e| Error::io(format!("read {} at offset {off}", path.display()), e))?;
            self.start = off;
        }
        let s = (off - self.start) as usize;
        Ok(&self.buf[s..s + len])
    }

    fn probe(&mut self, path: &Path, off: u64) -> Result<Probe> {
        let rem = self.file_len - off;
        if rem < HEADER_LEN as u64 {
            return Ok(Probe::Short);
        }
        let Some((len, crc)) = parse_header(self.get(path, off, HEADER_LEN)?) else {
            return Ok(Probe::BadHeader);
        };
        if (HEADER_LEN + len) as u64 > rem {
            return Ok(Probe::Incomplete(len));
        }
        let payload = self.get(path, off + HEADER_LEN as u64, len)?;
        if crc32fast::hash(payload) != crc {
            return Ok(Probe::BadCrc(len));
        }
        Ok(Probe::Good(len))
    }

    /// Offset of the first good record starting at or after `from`.
    fn find_good(&mut self, path: &Path, from: u64) -> Result<Option<u64>> {
        let mut pos = from;
        while pos + HEADER_LEN as u64 <= self.file_len {
            let n = (READ_WINDOW as u64).min(self.file_len - pos) as usize;
            let hit = {
                let w = self.get(path, pos, n)?;
                w.windows(MAGIC.len()).position(|m| m == MAGIC)
            };
            match hit {
                Some(i) => {
                    let cand = pos + i as u64;
                    if let Probe::Good(_) = self.probe(path, cand)? {
                        return Ok(Some(cand));
                    }
                    pos = cand + 1;
                }
                // The magic may straddle the window's end: step back over its first bytes.
                None => pos += (n - (MAGIC.len() - 1)) as u64,
            }
        }
        Ok(None)
    }
}

fn describe(p: Probe, rem: u64) -> String {
    match p {
        Probe::Good(_) => "good record".to_string(),
        Probe::Short => format!("{rem} trailing bytes, fewer than a record header"),
        Probe::BadHeader => "bad record header (magic or header checksum)".to_string(),
        Probe::Incomplete(len) => format!(
            "record of {len} payload bytes runs past the end of the file ({} bytes present)",
            rem.saturating_sub(HEADER_LEN as u64)
        ),
        Probe::BadCrc(len) => {
            format!("payload checksum mismatch in a record of {len} payload bytes")
        }
    }
}

/// Read every good record in order, calling `f(offset, payload)`.
///
/// * A torn tail (an incomplete or unreadable end of file with no good record after it, e.g. a killed
///   process or a power loss) is cut off (the file is truncated to the end of the last good record) and
///   reported once as [`IssueKind::TornTail`]. If the file cannot be opened for writing it is reported
///   but left as it is.
/// * A damaged record followed by good ones is reported as [`IssueKind::Corrupt`] with its offset and
///   skipped: the reader resynchronises at the next offset holding a record whose checksums hold.
/// * An `Err` from `f` aborts the read and is returned. Other `Err`s are I/O failures.
///
/// Never panics on any file content.
pub fn read_records(
    path: &Path,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Vec<ReplayIssue>> {
    let (file, writable) = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == IoErrorKind::PermissionDenied => (
            File::open(path).map_err(|e| Error::io(path.display(), e))?,
            false,
        ),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(path.display(), e))?
        .len();
    let mut rd = Reader {
        file: &file,
        file_len,
        start: 0,
        buf: Vec::new(),
    };
    let mut issues = Vec::new();
    let mut off = 0u64;
    while off < file_len {
        let probe = rd.probe(path, off)?;
        if let Probe::Good(len) = probe {
            let payload = rd.get(path, off + HEADER_LEN as u64, len)?;
            f(off, payload)?;
            off += (HEADER_LEN + len) as u64;
            continue;
        }
        let rem = file_len - off;
        // Where do good records resume? A damaged payload under a good header says where its record
        // ends: try there first, then scan.
        let mut next = None;
        if let Probe::BadCrc(len) = probe {
            let end = off + (HEADER_LEN + len) as u64;
            if end < file_len && matches!(rd.probe(path, end)?, Probe::Good(_)) {
                next = Some(end);
            }
        }
        if next.is_none() {
            next = rd.find_good(path, off + 1)?;
        }
        match next {
            Some(next) => {
                issues.push(ReplayIssue {
                    path: path.to_path_buf(),
                    offset: off,
                    kind: IssueKind::Corrupt,
                    message: format!(
                        "{}: skipped {} bytes, resumed at offset {next}",
                        describe(probe, rem),
                        next - off
                    ),
                });
                off = next;
            }
            None => {
                let zeros = matches!(probe, Probe::BadHeader | Probe::Short)
                    && rd
                        .get(path, off, rem.min(HEADER_LEN as u64) as usize)?
                        .iter()
                        .all(|&b| b == 0);
                let what = if zeros {
                    format!("zero-filled tail of {rem} bytes")
                } else {
                    format!(
                        "{} ({rem} bytes to the end of the file)",
                        describe(probe, rem)
                    )
                };
                let message = if writable {
                    file.set_len(off)
                        .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
                    file.sync_all()
                        .map_err(|e| Error::io(format!("fsync {}", path.display()), e))?;
                    format!("torn tail: {what}; file cut to {off} bytes")
                } else {
                    format!("torn tail: {what}; file is read-only, not cut")
                };
                issues.push(ReplayIssue {
                    path: path.to_path_buf(),
                    offset: off,
                    kind: IssueKind::TornTail,
                    message,
                });
                break;
            }
        }
    }
    Ok(issues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use tempfile::TempDir;

    fn write_records(path: &Path, payloads: &[Vec<u8>]) -> Vec<u64> {
        let mut w = LogWriter::open(path).unwrap();
        payloads.iter().map(|p| w.append(p).unwrap()).collect()
    }

    fn read_all(path: &Path) -> (Vec<(u64, Vec<u8>)>, Vec<ReplayIssue>) {
        let mut recs = Vec::new();
        let issues = read_records(path, |off, p| {
            recs.push((off, p.to_vec()));
            Ok(())
        })
        .unwrap();
        (recs, issues)
    }

    fn payloads(seed: u64, n: usize, max_len: usize) -> Vec<Vec<u8>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut p = vec![0u8; rng.gen_range(0..=max_len)];
                rng.fill_bytes(&mut p);
                p
            })
            .collect()
    }

    #[test]
    fn log_round_trip_many_records() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.log");
        let ps = payloads(1, 2000, 3000);
        let offs = write_records(&path, &ps[..1000]);
        // Reopening appends after the end.
        let mut w = LogWriter::open(&path).unwrap();
        let before = w.len();
        assert_eq!(before, std::fs::metadata(&path).unwrap().len());
        let mut offs2 = offs.clone();
        for p in &ps[1000..] {
            offs2.push(w.append(p).unwrap());
        }
        assert_eq!(offs2[1000], before);
        assert_eq!(w.len(), std::fs::metadata(&path).unwrap().len());
        w.sync().unwrap();
        let (recs, issues) = read_all(&path);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(recs.len(), ps.len());
        for (i, (off, p)) in recs.iter().enumerate() {
            assert_eq!(*off, offs2[i]);
            assert_eq!(p, &ps[i]);
        }
    }

    #[test]
    fn log_records_larger_than_the_read_window() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("big.log");
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut ps = vec![
            vec![1u8; 10],
            vec![0u8; READ_WINDOW + 12345],
            vec![7u8; 3],
            vec![0u8; READ_WINDOW - 5],
        ];
        rng.fill_bytes(&mut ps[1]);
        rng.fill_bytes(&mut ps[3]);
        write_records(&path, &ps);
        let (recs, issues) = read_all(&path);
        assert!(issues.is_empty());
        assert_eq!(recs.into_iter().map(|r| r.1).collect::<Vec<_>>(), ps);
    }

    #[test]
    fn log_torn_tail_at_every_cut_length() {
        let dir = TempDir::new().unwrap();
        let full = dir.path().join("full.log");
        let ps = payloads(2, 3, 60);
        let mut ps = ps;
        ps[2] = (0..70u8).collect(); // a known-length last record
        let offs = write_records(&full, &ps);
        let bytes = std::fs::read(&full).unwrap();
        let last = offs[2];
        let end = bytes.len() as u64;
        for cut in last..end {
            let path = dir.path().join(format!("cut{cut}.log"));
            std::fs::write(&path, &bytes[..cut as usize]).unwrap();
            let (recs, issues) = read_all(&path);
            assert_eq!(recs.len(), 2, "cut {cut}");
            if cut == last {
                assert!(
                    issues.is_empty(),
                    "cut at a record boundary is clean: {issues:?}"
                );
            } else {
                assert_eq!(issues.len(), 1, "cut {cut}: {issues:?}");
                assert_eq!(issues[0].kind, IssueKind::TornTail);
                assert_eq!(issues[0].offset, last);
                assert_eq!(issues[0].path, path);
            }
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                last,
                "cut {cut}: file truncated"
            );
            // Reported once.
            let (recs2, issues2) = read_all(&path);
            assert_eq!(recs2, recs);
            assert!(issues2.is_empty());
            // Appending after reopening works and replays cleanly.
            let mut w = LogWriter::open(&path).unwrap();
            assert_eq!(w.append(b"after the tear").unwrap(), last);
            drop(w);
            let (recs3, issues3) = read_all(&path);
            assert!(issues3.is_empty(), "cut {cut}: {issues3:?}");
            assert_eq!(recs3.len(), 3);
            assert_eq!(recs3[2], (last, b"after the tear".to_vec()));
            assert_eq!(recs3[..2], recs[..]);
        }
    }

    #[test]
    fn log_flipped_byte_anywhere_in_middle_record_is_corrupt_and_skipped() {
        let dir = TempDir::new().unwrap();
        let full = dir.path().join("full.log");
        let ps = vec![
            b"first record".to_vec(),
            b"the middle one, damaged".to_vec(),
            b"third".to_vec(),
        ];
        let offs = write_records(&full, &ps);
        let bytes = std::fs::read(&full).unwrap();
        for i in offs[1]..offs[2] {
            let mut b = bytes.clone();
            b[i as usize] ^= 0x5A;
            let path = dir.path().join(format!("flip{i}.log"));
            std::fs::write(&path, &b).unwrap();
            let (recs, issues) = read_all(&path);
            assert_eq!(issues.len(), 1, "byte {i}: {issues:?}");
            assert_eq!(issues[0].kind, IssueKind::Corrupt, "byte {i}");
            assert_eq!(issues[0].offset, offs[1], "byte {i}");
            assert_eq!(issues[0].path, path);
            assert_eq!(
                recs,
                vec![(offs[0], ps[0].clone()), (offs[2], ps[2].clone())],
                "byte {i}"
            );
            // Corruption in the middle is not cut.
            assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
        }
    }

    #[test]
    fn log_garbage_and_zero_tails_are_cut() {
        let dir = TempDir::new().unwrap();
        let ps = payloads(3, 5, 100);
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for (i, tail_len) in [1usize, 7, 15, 16, 17, 100, 4096, 70_000]
            .into_iter()
            .enumerate()
        {
            for kind in 0..3 {
                let path = dir.path().join(format!("t{i}_{kind}.log"));
                write_records(&path, &ps);
                let good_len = std::fs::metadata(&path).unwrap().len();
                let mut tail = vec![0u8; tail_len];
                match kind {
                    0 => {}
                    1 => rng.fill_bytes(&mut tail),
                    _ => {
                        // Garbage that keeps presenting the magic.
                        for (j, b) in tail.iter_mut().enumerate() {
                            *b = MAGIC[j % 4];
                        }
                    }
                }
                let mut bytes = std::fs::read(&path).unwrap();
                bytes.extend_from_slice(&tail);
                std::fs::write(&path, &bytes).unwrap();
                let (recs, issues) = read_all(&path);
                assert_eq!(recs.len(), 5);
                assert_eq!(issues.len(), 1, "{issues:?}");
                assert_eq!(issues[0].kind, IssueKind::TornTail);
                assert_eq!(issues[0].offset, good_len);
                if kind == 0 {
                    assert!(
                        issues[0].message.contains("zero-filled"),
                        "{}",
                        issues[0].message
                    );
                }
                assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
                assert!(read_all(&path).1.is_empty());
            }
        }
    }

    #[test]
    fn log_empty_file_and_missing_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("empty.log");
        let w = LogWriter::open(&path).unwrap();
        assert_eq!(w.len(), 0);
        assert!(w.is_empty());
        assert_eq!(w.path(), path.as_path());
        let (recs, issues) = read_all(&path);
        assert!(recs.is_empty() && issues.is_empty());
        let err = read_records(&dir.path().join("missing.log"), |_, _| Ok(())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Io);
    }

    #[test]
    fn log_empty_payloads_are_records() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("e.log");
        let offs = write_records(&path, &[vec![], vec![1], vec![]]);
        assert_eq!(offs, vec![0, 16, 33]);
        let (recs, issues) = read_all(&path);
        assert!(issues.is_empty());
        assert_eq!(recs, vec![(0, vec![]), (16, vec![1]), (33, vec![])]);
    }

    #[test]
    fn log_callback_error_aborts_without_cutting() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("abort.log");
        write_records(&path, &payloads(5, 4, 50));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let mut seen = 0;
        let err = read_records(&path, |_, _| {
            seen += 1;
            if seen == 2 {
                Err(Error::bad_input("stop here"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err, Error::bad_input("stop here"));
        assert_eq!(seen, 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    }

    #[test]
    fn log_appends_after_an_uncut_torn_record_resynchronise() {
        // A writer reopened without a replay first appends after a torn record: the torn record is then
        // corruption in the middle, and the records after it must still be read.
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("resync.log");
        let offs = write_records(&path, &[b"one".to_vec(), vec![9u8; 200]]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 50]).unwrap();
        let mut w = LogWriter::open(&path).unwrap();
        let o3 = w.append(b"three").unwrap();
        let o4 = w.append(b"four").unwrap();
        drop(w);
        let (recs, issues) = read_all(&path);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            (issues[0].kind.clone(), issues[0].offset),
            (IssueKind::Corrupt, offs[1])
        );
        assert_eq!(
            recs,
            vec![
                (0, b"one".to_vec()),
                (o3, b"three".to_vec()),
                (o4, b"four".to_vec())
            ]
        );
    }

    #[test]
    fn log_append_sealed_checks_its_frame() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("sealed.log");
        let mut w = LogWriter::open(&path).unwrap();
        let mut frame = vec![0u8; HEADER_LEN];
        frame.extend_from_slice(b"payload");
        assert_eq!(
            w.append_sealed(&frame).unwrap_err().kind,
            ErrorKind::Internal
        );
        seal_frame(&mut frame).unwrap();
        assert_eq!(w.append_sealed(&frame).unwrap(), 0);
        frame.push(1); // header no longer matches the length
        assert!(w.append_sealed(&frame).is_err());
        assert!(seal_frame(&mut [0u8; 3]).is_err());
        drop(w);
        let (recs, issues) = read_all(&path);
        assert!(issues.is_empty());
        assert_eq!(recs, vec![(0, b"payload".to_vec())]);
    }

    #[test]
    fn log_never_panics_on_random_damage() {
        let dir = TempDir::new().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let ps = payloads(7, 30, 80);
        let base = dir.path().join("base.log");
        write_records(&base, &ps);
        let good = std::fs::read(&base).unwrap();
        for round in 0..300 {
            let path = dir.path().join(format!("r{round}.log"));
            let bytes = if round % 3 == 0 {
                let mut b = vec![0u8; rng.gen_range(0..600)];
                rng.fill_bytes(&mut b);
                b
            } else {
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..6) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                b.truncate(rng.gen_range(0..=b.len()));
                b
            };
            std::fs::write(&path, &bytes).unwrap();
            let (recs, issues) = read_all(&path);
            let torn = issues
                .iter()
                .filter(|i| i.kind == IssueKind::TornTail)
                .count();
            assert!(torn <= 1);
            // Every record handed out is one that was written (checksums hold).
            if round % 3 != 0 {
                for (_, p) in &recs {
                    assert!(ps.contains(p));
                }
            }
            // A second pass sees the same records and no tail left to cut.
            let (recs2, issues2) = read_all(&path);
            assert_eq!(recs2, recs);
            assert!(issues2.iter().all(|i| i.kind == IssueKind::Corrupt));
        }
    }
}
