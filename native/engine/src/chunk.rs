//! Batched chunk files: many series' chunks in one immutable file.
//!
//! ```text
//! [file header 24 B][chunk record]...[chunk record][index][trailer 32 B]
//! ```
//! Every chunk record carries its own header (series id, min/max ts, count, codec, body
//! length, crc32), so a file can be rescanned front to back; the index at the end repeats
//! the same metadata so [`ChunkFile::open`] reads only the index, never a chunk body.
//! Integers in record headers and the index are LEB128 varints (zigzag for timestamps) to
//! keep the fixed per-chunk cost small. Byte layouts: `FORMAT-chunk.md`.
//!
//! Files are written once (temp file, fsync, rename, fsync dir) and never modified, which
//! is what makes memory-mapping them safe.

use crate::codec::{unzigzag, zigzag};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec;
use crate::error::{Error, Result};
use crate::SeriesId;

/// First 8 bytes of every chunk file.
pub const FILE_MAGIC: &[u8; 8] = b"TMCHUNKS";
/// Last 8 bytes of every chunk file.
pub const TRAILER_MAGIC: &[u8; 8] = b"TMCKIDX1";
/// Format version written in the file header. Version 2 added chunks whose timestamps are
/// stored in an earlier chunk of the same file (codec `T =` [`codec::TS_SHARED`]); the
/// layout is otherwise unchanged, and version 1 files are still read.
pub const FORMAT_VERSION: u16 = 2;
/// Oldest format version still read.
pub const MIN_FORMAT_VERSION: u16 = 1;
/// How many recent distinct timestamp columns the writer remembers to share with later chunks.
const SHARED_TS_CANDIDATES: usize = 8;
/// File header: magic(8) version(u16) flags(u16) reserved(u32) file_id(u64).
pub const HEADER_LEN: usize = 24;
/// Trailer: index_offset(u64) chunk_count(u64) index_crc32(u32) reserved(u32) magic(8).
/// index_crc32 covers the index bytes and every trailer byte except itself.
pub const TRAILER_LEN: usize = 32;
/// First byte of every chunk record.
pub const RECORD_MARKER: u8 = 0xC5;
/// File name suffix.
pub const FILE_SUFFIX: &str = ".chunks";

/// Where one chunk lives and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub series_id: SeriesId,
    pub min_ts: i64,
    pub max_ts: i64,
    pub count: u32,
    pub codec: u8,
    /// Offset of the chunk record (its header) in the file.
    pub offset: u64,
    /// Length of the encoded body (after the record header).
    pub len: u32,
    /// crc32 (IEEE) of the record header fields before the crc, then the body.
    pub crc32: u32,
}

/// Collects many series' chunks into one file (a million series must not become a million files).
pub struct ChunkFileWriter {
    buf: Vec<u8>,
    metas: Vec<ChunkMeta>,
    /// (record offset, timestamps) of recent chunks that store their own timestamps; a later
    /// chunk with identical timestamps references the record instead of storing them again
    /// (series scraped together share timestamps).
    recent_ts: Vec<(u64, Vec<i64>)>,
    /// Format version to write; always [`FORMAT_VERSION`] except in tests that need a
    /// version 1 file (no shared timestamps, absolute index timestamps).
    version: u16,
    /// Once [`ChunkFileWriter::spill`] was called: the temp file holding the first
    /// `spilled` bytes of the file (`buf` holds the bytes after them), so a big merge
    /// does not keep its whole output in memory.
    spill: Option<(File, PathBuf)>,
    spilled: u64,
}

impl Default for ChunkFileWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkFileWriter {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.resize(HEADER_LEN, 0); // written by `write`/`into_memory` once the file id is known
        ChunkFileWriter { buf, metas: Vec::new(), recent_ts: Vec::new(), version: FORMAT_VERSION, spill: None, spilled: 0 }
    }

    /// Encode and append one chunk (same precondition as codec::encode, len >= 1).
    /// An empty run adds nothing.
    pub fn add(&mut self, series_id: SeriesId, ts: &[i64], vals: &[f64]) {
        assert_eq!(ts.len(), vals.len(), "ChunkFileWriter::add: ts and vals lengths differ");
        if ts.is_empty() {
            return;
        }
        let count = u32::try_from(ts.len()).expect("ChunkFileWriter::add: more than u32::MAX points");
        let offset = self.spilled + self.buf.len() as u64;
        let shared = self
            .recent_ts
            .iter()
            .rev()
            .find(|(_, t)| t.as_slice() == ts)
            .and_then(|(owner, _)| codec::encode_shared_ts(offset - owner, vals));
        let (codec_id, body) = match shared {
            Some(enc) => enc,
            None => {
                let (codec_id, body) = codec::encode(ts, vals);
                if codec_id > codec::CODEC_RAW && self.version >= 2 {
                    if self.recent_ts.len() == SHARED_TS_CANDIDATES {
                        self.recent_ts.remove(0);
                    }
                    self.recent_ts.push((offset, ts.to_vec()));
                }
                (codec_id, body)
            }
        };
        let len = u32::try_from(body.len()).expect("ChunkFileWriter::add: chunk body over 4 GiB");
        let (min_ts, max_ts) = (ts[0], ts[ts.len() - 1]);
        let hdr_start = self.buf.len();
        write_record_header(&mut self.buf, series_id, min_ts, max_ts, count, codec_id, len);
        let mut h = crc32fast::Hasher::new();
        h.update(&self.buf[hdr_start..]);
        h.update(&body);
        let crc32 = h.finalize();
        self.buf.extend_from_slice(&crc32.to_le_bytes());
        self.buf.extend_from_slice(&body);
        self.metas.push(ChunkMeta { series_id, min_ts, max_ts, count, codec: codec_id, offset, len, crc32 });
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// Bytes of the file so far (header and chunk records, spilled or buffered; the index
    /// is added on write).
    pub fn bytes(&self) -> usize {
        self.spilled as usize + self.buf.len()
    }

    /// Bytes held in memory (not yet spilled).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Move the bytes buffered so far to a temp file in `dir` (created on the first call;
    /// `<dir>/<tmp_name>`, which must end in `.tmp` so recovery removes it if the process
    /// dies before [`ChunkFileWriter::write`] renames it). Memory then holds only what was
    /// added since. Only for writers that end in `write`, not `into_memory`.
    pub fn spill(&mut self, dir: &Path, tmp_name: &str) -> Result<()> {
        debug_assert!(tmp_name.ends_with(".tmp"));
        if self.spill.is_none() {
            let path = dir.join(tmp_name);
            let f = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
            self.spill = Some((f, path));
        }
        let (f, path) = self.spill.as_mut().expect("spill file");
        f.write_all(&self.buf).map_err(|e| Error::io(path.display(), e))?;
        self.spilled += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Write `<dir>/<file_id as 16 lowercase hex digits>.chunks` durably: write a temp file, fsync, rename, fsync the dir.
    pub fn write(mut self, dir: &Path, file_id: u64) -> Result<(ChunkFile, Vec<ChunkMeta>)> {
        let name = ChunkFile::file_name(file_id);
        let path = dir.join(&name);
        let version = self.version;
        let (header, tail, index_offset) = self.finish_parts(file_id);
        let expected_len = index_offset as usize + tail.len();
        let tmp = match self.spill.take() {
            Some((mut f, tmp)) => {
                use std::os::unix::fs::FileExt;
                f.write_all(&self.buf).and_then(|_| f.write_all(&tail)).map_err(|e| Error::io(tmp.display(), e))?;
                f.write_all_at(&header, 0).map_err(|e| Error::io(tmp.display(), e))?;
                f.sync_all().map_err(|e| Error::io(tmp.display(), e))?;
                tmp
            }
            None => {
                let tmp = dir.join(format!("{name}.tmp"));
                self.buf[..HEADER_LEN].copy_from_slice(&header);
                let mut f = File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
                f.write_all(&self.buf).and_then(|_| f.write_all(&tail)).map_err(|e| Error::io(tmp.display(), e))?;
                f.sync_all().map_err(|e| Error::io(tmp.display(), e))?;
                tmp
            }
        };
        let metas = std::mem::take(&mut self.metas);
        drop(self);
        fs::rename(&tmp, &path).map_err(|e| Error::io(format!("rename {} -> {}", tmp.display(), path.display()), e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("fsync dir {}", dir.display()), e))?;
        let data = map_file(&path)?;
        if data.len() != expected_len {
            return Err(Error::corrupt(format!(
                "chunk file {}: {} bytes after writing {expected_len}",
                path.display(),
                data.len()
            )));
        }
        Ok((ChunkFile { id: file_id, path: Some(path), data: Data::Mapped(data), index_offset, version }, metas))
    }

    /// Same bytes, kept in memory (memory mode: no files at all).
    pub fn into_memory(mut self, file_id: u64) -> Result<(ChunkFile, Vec<ChunkMeta>)> {
        assert!(self.spill.is_none(), "ChunkFileWriter::into_memory after spill");
        let version = self.version;
        let (header, tail, index_offset) = self.finish_parts(file_id);
        let mut bytes = std::mem::take(&mut self.buf);
        bytes[..HEADER_LEN].copy_from_slice(&header);
        bytes.extend_from_slice(&tail);
        Ok((ChunkFile { id: file_id, path: None, data: Data::Owned(bytes), index_offset, version }, std::mem::take(&mut self.metas)))
    }

    /// The file header (with the file id), and the index + trailer that follow the chunk
    /// records (which end at the returned index offset).
    fn finish_parts(&self, file_id: u64) -> ([u8; HEADER_LEN], Vec<u8>, u64) {
        let (metas, version) = (&self.metas, self.version);
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(FILE_MAGIC);
        header[8..10].copy_from_slice(&version.to_le_bytes());
        header[10..12].copy_from_slice(&0u16.to_le_bytes());
        header[12..16].copy_from_slice(&0u32.to_le_bytes());
        header[16..24].copy_from_slice(&file_id.to_le_bytes());
        let index_offset = self.spilled + self.buf.len() as u64;
        let mut buf = Vec::with_capacity(metas.len() * 16 + TRAILER_LEN);
        let mut prev_offset = 0u64;
        let mut prev_min_ts = 0i64;
        for m in metas {
            put_varint(&mut buf, m.series_id);
            put_varint(&mut buf, m.offset - prev_offset);
            // format 2: min_ts relative to the previous entry's (chunks of one flush or merge
            // cover the same time range, so this is usually one byte instead of six)
            let base = if version >= 2 { prev_min_ts } else { 0 };
            put_varint(&mut buf, zigzag(m.min_ts.wrapping_sub(base)));
            prev_min_ts = m.min_ts;
            put_varint(&mut buf, (m.max_ts as u64).wrapping_sub(m.min_ts as u64));
            put_varint(&mut buf, m.count as u64);
            buf.push(m.codec);
            put_varint(&mut buf, m.len as u64);
            buf.extend_from_slice(&m.crc32.to_le_bytes());
            prev_offset = m.offset;
        }
        let mut t = [0u8; TRAILER_LEN];
        t[0..8].copy_from_slice(&index_offset.to_le_bytes());
        t[8..16].copy_from_slice(&(metas.len() as u64).to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&buf);
        t[24..32].copy_from_slice(TRAILER_MAGIC);
        h.update(&t[0..16]);
        h.update(&t[20..32]);
        t[16..20].copy_from_slice(&h.finalize().to_le_bytes());
        buf.extend_from_slice(&t);
        (header, buf, index_offset)
    }
}

impl Drop for ChunkFileWriter {
    /// A spilled writer dropped without `write` (an error on the way) removes its temp file.
    fn drop(&mut self) {
        if let Some((_, path)) = self.spill.take() {
            let _ = fs::remove_file(path);
        }
    }
}

fn write_record_header(
    out: &mut Vec<u8>,
    series_id: SeriesId,
    min_ts: i64,
    max_ts: i64,
    count: u32,
    codec_id: u8,
    len: u32,
) {
    out.push(RECORD_MARKER);
    put_varint(out, series_id);
    put_varint(out, zigzag(min_ts));
    put_varint(out, (max_ts as u64).wrapping_sub(min_ts as u64));
    put_varint(out, count as u64);
    out.push(codec_id);
    put_varint(out, len as u64);
}

enum Data {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A timestamp column with the (count, min_ts, max_ts) of the chunk that stores it.
type ShapedColumn = ((u32, i64, i64), std::sync::Arc<[i64]>);
/// A timestamp column with its key in a [`TsMemo`] (file id, offset of the chunk that stores it).
pub type KeyedColumn = ((u64, u64), std::sync::Arc<[i64]>);

/// Timestamp columns shared between chunks, decoded once per reader (one query): keyed
/// by (file id, offset of the chunk that stores them), with that chunk's (count, min_ts,
/// max_ts) so a chunk that does not fit is still reported as corrupt.
#[derive(Default)]
pub struct TsMemo {
    #[allow(clippy::type_complexity)]
    columns: std::sync::Mutex<hashbrown::HashMap<(u64, u64), ((u32, i64, i64), std::sync::Arc<[i64]>)>>,
    /// Whole series' timestamps by their chunks' column keys and the read range (see [`TsMemo::joined`]).
    #[allow(clippy::type_complexity)]
    joined: std::sync::Mutex<hashbrown::HashMap<(Vec<(u64, u64)>, i64, i64), std::sync::Arc<[i64]>>>,
}

impl TsMemo {
    fn get(&self, key: (u64, u64)) -> Option<((u32, i64, i64), std::sync::Arc<[i64]>)> {
        self.columns.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }

    fn put(&self, key: (u64, u64), shape: (u32, i64, i64), ts: &[i64]) {
        self.columns.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert_with(|| (shape, ts.into()));
    }

    /// The column under `key`, or `make()`'s put there (the first one put wins when
    /// two readers race, so every reader ends up with the same `Arc`).
    fn get_or_put(
        &self,
        key: (u64, u64),
        make: impl FnOnce() -> std::result::Result<ShapedColumn, String>,
    ) -> std::result::Result<ShapedColumn, String> {
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let made = make()?;
        Ok(self.columns.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(made).clone())
    }

    /// The timestamps of a series made of the chunks whose columns are `keys` (in
    /// order), trimmed to `[from, to]`: `make()` the first time, the same `Arc` after.
    pub fn joined(
        &self,
        keys: &[(u64, u64)],
        from: i64,
        to: i64,
        make: impl FnOnce() -> std::sync::Arc<[i64]>,
    ) -> std::sync::Arc<[i64]> {
        let key = (keys.to_vec(), from, to);
        if let Some(hit) = self.joined.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return hit.clone();
        }
        let made = make();
        self.joined.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(made).clone()
    }
}

/// What `Store::read_columns_at` needs from its `pick`: the sorted indexes (into the
/// timestamps in range) of the values wanted, or `None` for all of them.
pub trait Wanted {
    fn wanted(&self) -> Option<&[u32]>;
}

/// Every value is wanted.
pub struct AllValues;

impl Wanted for AllValues {
    fn wanted(&self) -> Option<&[u32]> {
        None
    }
}

impl<T: Wanted> Wanted for std::sync::Arc<T> {
    fn wanted(&self) -> Option<&[u32]> {
        (**self).wanted()
    }
}

/// A readable chunk file: memory-mapped (or owned bytes in memory mode). Send + Sync.
pub struct ChunkFile {
    id: u64,
    path: Option<PathBuf>,
    data: Data,
    /// End of the chunk records (start of the index).
    index_offset: u64,
    /// Format version from the file header.
    version: u16,
}

fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let len = f.metadata().map_err(|e| Error::io(path.display(), e))?.len();
    if len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(Error::corrupt(format!(
            "chunk file {}: {len} bytes is shorter than header and footer",
            path.display()
        )));
    }
    // Safety: chunk files are immutable after the rename that publishes them; nothing in
    // the engine writes to or truncates a published file while it is mapped.
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(format!("mmap {}", path.display()), e))
}

impl ChunkFile {
    /// Open and return every chunk's metadata read from the file's footer/index ONLY (no chunk body is decoded:
    /// restart must be fast with ~1M chunks). A file whose footer is missing/corrupt -> Err(Corrupt) naming the file.
    pub fn open(path: &Path, file_id: u64) -> Result<(ChunkFile, Vec<ChunkMeta>)> {
        let data = map_file(path)?;
        let (metas, index_offset, version) = parse_footer(&data, file_id)
            .map_err(|msg| Error::corrupt(format!("chunk file {}: {msg}", path.display())))?;
        Ok((
            ChunkFile { id: file_id, path: Some(path.to_path_buf()), data: Data::Mapped(data), index_offset, version },
            metas,
        ))
    }

    /// Open a chunk file image held in memory (for example one produced by `into_memory`
    /// and copied), validating it exactly like [`ChunkFile::open`].
    pub fn from_bytes(bytes: Vec<u8>, file_id: u64) -> Result<(ChunkFile, Vec<ChunkMeta>)> {
        let (metas, index_offset, version) = parse_footer(&bytes, file_id).map_err(|msg| {
            Error::corrupt(format!("chunk file <memory>/{}: {msg}", Self::file_name(file_id)))
        })?;
        Ok((ChunkFile { id: file_id, path: None, data: Data::Owned(bytes), index_offset, version }, metas))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn size_bytes(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Let the kernel take back this mapping's resident pages (they stay in the page
    /// cache; the next read faults them in again). A merge calls it on the files it has
    /// read so far, so reading a whole data dir does not add the whole dir to the RSS.
    /// A file kept in memory (memory mode) is left alone.
    pub fn release_pages(&self) {
        if let Data::Mapped(m) = &self.data {
            // Safety: the mapping is read-only and private, of a file nobody modifies (see
            // `map_file`), so dropping its pages loses nothing: a later access reads the
            // same bytes from the file again.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The whole file image.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        }
    }

    /// `<id>.chunks` for a file id.
    pub fn file_name(file_id: u64) -> String {
        format!("{file_id:016x}{FILE_SUFFIX}")
    }

    fn display_name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => format!("<memory>/{}", Self::file_name(self.id)),
        }
    }

    /// Format version of the file (1 or 2).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Decode one chunk, verifying its crc32 -> Err(Corrupt) naming file and offset on mismatch.
    /// A chunk whose timestamps are stored in an earlier chunk (format 2, codec
    /// `T =` [`codec::TS_SHARED`]) reads them from that chunk, whose crc is verified too.
    pub fn read(&self, meta: &ChunkMeta, ts_out: &mut Vec<i64>, vals_out: &mut Vec<f64>) -> Result<()> {
        self.read_shared(meta, ts_out, vals_out, None)
    }

    /// [`read`](Self::read), with the timestamp columns other chunks share decoded once
    /// per `memo` (a query reading a thousand series scraped together decodes their
    /// common timestamps once instead of a thousand times).
    pub fn read_shared(
        &self,
        meta: &ChunkMeta,
        ts_out: &mut Vec<i64>,
        vals_out: &mut Vec<f64>,
        memo: Option<&TsMemo>,
    ) -> Result<()> {
        let err = |msg: String| self.chunk_err(meta, msg);
        let body = self.checked_record(meta)?;
        let count = meta.count as usize;
        let back = match codec::shared_ts_ref(meta.codec, body) {
            Ok(None) => {
                return codec::decode(meta.codec, body, count, ts_out, vals_out).map_err(|e| err(e.message))
            }
            Ok(Some(back)) => back,
            Err(e) => return Err(err(e.message)),
        };
        if self.version < 2 {
            return Err(err(format!("shared timestamps in a format {} file", self.version)));
        }
        let owner_offset = meta.offset.checked_sub(back).ok_or_else(|| err("shared timestamps before the file start".into()))?;
        let shape = (meta.count, meta.min_ts, meta.max_ts);
        let key = (self.id, owner_offset);
        let ts_start = ts_out.len();
        match memo.and_then(|m| m.get(key)) {
            Some((owner_shape, ts)) => {
                if owner_shape != shape {
                    return Err(err(format!("shared timestamps at offset {owner_offset} do not fit: {owner_shape:?}")));
                }
                ts_out.extend_from_slice(&ts);
            }
            None => {
                let (owner, owner_body) = self
                    .record(owner_offset)
                    .map_err(|m| err(format!("shared timestamps at offset {owner_offset}: {m}")))?;
                if owner.codec >> 4 == codec::TS_SHARED || (owner.count, owner.min_ts, owner.max_ts) != shape {
                    return Err(err(format!("shared timestamps at offset {owner_offset} do not fit: {owner:?}")));
                }
                codec::decode_ts(owner.codec, owner_body, count, ts_out)
                    .map_err(|e| err(format!("shared timestamps at offset {owner_offset}: {}", e.message)))?;
                if let Some(m) = memo {
                    m.put(key, shape, &ts_out[ts_start..]);
                }
            }
        }
        if let Err(e) = codec::decode_values(meta.codec, body, count, vals_out) {
            ts_out.truncate(ts_start);
            return Err(err(e.message));
        }
        Ok(())
    }

    /// Decode one chunk's values onto `vals_out` and return its timestamps as a column
    /// shared through `memo`, with the column's key (file id, offset of the chunk that
    /// stores it): every chunk of a file that shares a timestamp column gets the same
    /// `Arc` (no copy per series), and so does the chunk that stores it. Same checks as
    /// [`read`](Self::read); on error `vals_out` is left as it was.
    pub fn read_columns(
        &self,
        meta: &ChunkMeta,
        vals_out: &mut Vec<f64>,
        memo: &TsMemo,
    ) -> Result<KeyedColumn> {
        let (key, ts, body) = self.ts_column(meta, memo)?;
        codec::decode_values(meta.codec, body, meta.count as usize, vals_out).map_err(|e| self.chunk_err(meta, e.message))?;
        Ok((key, ts))
    }

    /// The values of a chunk whose body `ts_column` returned, at the sorted indexes
    /// `wanted` only (see `codec::decode_values_at`), into `out` (one slot per point).
    pub fn values_at(&self, meta: &ChunkMeta, body: &[u8], wanted: &[u32], need_values: bool, out: &mut [f64]) -> Result<()> {
        codec::decode_values_at(meta.codec, body, meta.count as usize, wanted, need_values, out)
            .map_err(|e| self.chunk_err(meta, e.message))
    }

    fn chunk_err(&self, meta: &ChunkMeta, msg: String) -> Error {
        Error::corrupt(format!("chunk file {} offset {}: {msg}", self.display_name(), meta.offset))
    }

    /// The body of the chunk `meta` describes, once its record header (crc verified) is
    /// found to match `meta`.
    fn checked_record(&self, meta: &ChunkMeta) -> Result<&[u8]> {
        let (on_disk, body) = self.record(meta.offset).map_err(|msg| self.chunk_err(meta, msg))?;
        if on_disk != *meta {
            return Err(self.chunk_err(meta, format!("chunk header {on_disk:?} does not match index entry {meta:?}")));
        }
        Ok(body)
    }

    /// The timestamps of a chunk as a column shared through `memo` (see
    /// [`read_columns`](Self::read_columns)), its key, and the chunk's body (crc verified).
    #[allow(clippy::type_complexity)]
    pub fn ts_column(&self, meta: &ChunkMeta, memo: &TsMemo) -> Result<((u64, u64), std::sync::Arc<[i64]>, &[u8])> {
        let err = |msg: String| self.chunk_err(meta, msg);
        let body = self.checked_record(meta)?;
        let count = meta.count as usize;
        let shape = (meta.count, meta.min_ts, meta.max_ts);
        let owner_offset = match codec::shared_ts_ref(meta.codec, body) {
            Ok(None) => meta.offset,
            Ok(Some(back)) => {
                if self.version < 2 {
                    return Err(err(format!("shared timestamps in a format {} file", self.version)));
                }
                meta.offset.checked_sub(back).ok_or_else(|| err("shared timestamps before the file start".into()))?
            }
            Err(e) => return Err(err(e.message)),
        };
        let key = (self.id, owner_offset);
        let (owner_shape, ts) = memo
            .get_or_put(key, || {
                let (owner, owner_body) = if owner_offset == meta.offset {
                    (*meta, body)
                } else {
                    self.record(owner_offset).map_err(|m| format!("shared timestamps at offset {owner_offset}: {m}"))?
                };
                if owner.codec >> 4 == codec::TS_SHARED && owner.codec > codec::CODEC_RAW {
                    return Err(format!("shared timestamps at offset {owner_offset} do not fit: {owner:?}"));
                }
                let mut ts = Vec::with_capacity(owner.count as usize);
                codec::decode_ts(owner.codec, owner_body, owner.count as usize, &mut ts)
                    .map_err(|e| format!("shared timestamps at offset {owner_offset}: {}", e.message))?;
                Ok(((owner.count, owner.min_ts, owner.max_ts), ts.into()))
            })
            .map_err(err)?;
        if owner_shape != shape || ts.len() != count {
            return Err(err(format!("shared timestamps at offset {owner_offset} do not fit: {owner_shape:?}")));
        }
        Ok((key, ts, body))
    }

    /// The record at `offset`: its header fields (with offset and crc) and body, crc verified.
    fn record(&self, offset: u64) -> std::result::Result<(ChunkMeta, &[u8]), String> {
        let records = &self.bytes()[..self.index_offset as usize];
        let start = usize::try_from(offset)
            .ok()
            .filter(|&o| o >= HEADER_LEN && o < records.len())
            .ok_or_else(|| "offset outside the chunk area".to_string())?;
        let rec = &records[start..];
        let mut pos = 0usize;
        let hdr = parse_record_header(rec, &mut pos).ok_or_else(|| "truncated chunk header".to_string())?;
        let crc_end = pos + 4;
        let body_end = crc_end
            .checked_add(hdr.len as usize)
            .filter(|&e| e <= rec.len())
            .ok_or_else(|| "chunk body runs past the chunk area".to_string())?;
        let stored_crc = u32::from_le_bytes(rec[pos..crc_end].try_into().unwrap());
        let mut h = crc32fast::Hasher::new();
        h.update(&rec[..pos]);
        h.update(&rec[crc_end..body_end]);
        let actual = h.finalize();
        if actual != stored_crc {
            return Err(format!("crc mismatch (header {stored_crc:#010x}, computed {actual:#010x})"));
        }
        Ok((ChunkMeta { offset, crc32: stored_crc, ..hdr }, &rec[crc_end..body_end]))
    }

    /// Parse a file name like "00000000000000ab.chunks" -> Some(0xab).
    pub fn parse_file_name(name: &str) -> Option<u64> {
        let hex = name.strip_suffix(FILE_SUFFIX)?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    }
}

/// Record header fields (offset and crc32 left 0).
fn parse_record_header(rec: &[u8], pos: &mut usize) -> Option<ChunkMeta> {
    if *rec.first()? != RECORD_MARKER {
        return None;
    }
    *pos = 1;
    let series_id = get_varint(rec, pos)?;
    let min_ts = unzigzag(get_varint(rec, pos)?);
    let max_ts = (min_ts as u64).wrapping_add(get_varint(rec, pos)?) as i64;
    let count = u32::try_from(get_varint(rec, pos)?).ok()?;
    let codec = *rec.get(*pos)?;
    *pos += 1;
    let len = u32::try_from(get_varint(rec, pos)?).ok()?;
    if *pos + 4 > rec.len() {
        return None;
    }
    Some(ChunkMeta { series_id, min_ts, max_ts, count, codec, offset: 0, len, crc32: 0 })
}

/// Validate header and trailer, check the index crc, decode the index.
fn parse_footer(data: &[u8], file_id: u64) -> std::result::Result<(Vec<ChunkMeta>, u64, u16), String> {
    let size = data.len();
    if size < HEADER_LEN + TRAILER_LEN {
        return Err(format!("{size} bytes is shorter than header and footer"));
    }
    if &data[0..8] != FILE_MAGIC {
        return Err("bad file magic".into());
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!("unsupported format version {version}"));
    }
    let stored_id = u64::from_le_bytes(data[16..24].try_into().unwrap());
    if stored_id != file_id {
        return Err(format!("header names file id {stored_id:016x}, expected {file_id:016x}"));
    }
    let t = &data[size - TRAILER_LEN..];
    if &t[24..32] != TRAILER_MAGIC {
        return Err("footer missing (bad trailer magic; file truncated?)".into());
    }
    let index_offset = u64::from_le_bytes(t[0..8].try_into().unwrap());
    let chunk_count = u64::from_le_bytes(t[8..16].try_into().unwrap());
    let index_crc = u32::from_le_bytes(t[16..20].try_into().unwrap());
    let index_end = size - TRAILER_LEN;
    if index_offset < HEADER_LEN as u64 || index_offset > index_end as u64 {
        return Err(format!("index offset {index_offset} out of range"));
    }
    let index = &data[index_offset as usize..index_end];
    let mut h = crc32fast::Hasher::new();
    h.update(index);
    h.update(&t[0..16]);
    h.update(&t[20..32]);
    if h.finalize() != index_crc {
        return Err("footer index crc mismatch".into());
    }
    // each entry takes at least 11 bytes; this bounds the allocation below
    if chunk_count > (index.len() / 11) as u64 {
        return Err(format!("index claims {chunk_count} chunks in {} bytes", index.len()));
    }
    let mut metas = Vec::with_capacity(chunk_count as usize);
    let mut pos = 0usize;
    let mut offset = 0u64;
    let mut prev_min_ts = 0i64;
    let bad = |i: u64| format!("index entry {i} malformed");
    for i in 0..chunk_count {
        let series_id = get_varint(index, &mut pos).ok_or_else(|| bad(i))?;
        offset = offset.checked_add(get_varint(index, &mut pos).ok_or_else(|| bad(i))?).ok_or_else(|| bad(i))?;
        let mut min_ts = unzigzag(get_varint(index, &mut pos).ok_or_else(|| bad(i))?);
        if version >= 2 {
            min_ts = min_ts.wrapping_add(prev_min_ts);
            prev_min_ts = min_ts;
        }
        let span = get_varint(index, &mut pos).ok_or_else(|| bad(i))?;
        let max_ts = (min_ts as u64).wrapping_add(span) as i64;
        let count = get_varint(index, &mut pos).and_then(|c| u32::try_from(c).ok()).ok_or_else(|| bad(i))?;
        let codec = *index.get(pos).ok_or_else(|| bad(i))?;
        pos += 1;
        let len = get_varint(index, &mut pos).and_then(|c| u32::try_from(c).ok()).ok_or_else(|| bad(i))?;
        let crc = index.get(pos..pos + 4).ok_or_else(|| bad(i))?;
        pos += 4;
        let crc32 = u32::from_le_bytes(crc.try_into().unwrap());
        if offset < HEADER_LEN as u64 || offset + len as u64 >= index_offset || count == 0 || max_ts < min_ts {
            return Err(format!("index entry {i} (offset {offset}) inconsistent"));
        }
        metas.push(ChunkMeta { series_id, min_ts, max_ts, count, codec, offset, len, crc32 });
    }
    if pos != index.len() {
        return Err(format!("{} trailing bytes after the index", index.len() - pos));
    }
    Ok((metas, index_offset, version))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *data.get(*pos)?;
        *pos += 1;
        if i == 9 && b > 1 {
            return None;
        }
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::STALE_NAN_BITS;

    fn assert_send_sync<T: Send + Sync>() {}

    fn series(k: u64, n: usize) -> (Vec<i64>, Vec<f64>) {
        let ts: Vec<i64> = (0..n as i64).map(|i| 1_700_000_000_000 + i * 10_000 + (i * k as i64) % 3).collect();
        let vals: Vec<f64> = (0..n)
            .map(|i| match (k + i as u64) % 5 {
                0 => ((i * 17 + k as usize) % 10_000) as f64 / 100.0,
                1 => (k * 1_000_000 + i as u64 * 4096) as f64,
                2 => f64::from_bits(STALE_NAN_BITS),
                3 => -0.0,
                _ => (i as f64).sqrt(),
            })
            .collect();
        (ts, vals)
    }

    #[test]
    fn spilled_writer_writes_the_same_file() {
        // the same chunks added to a writer that spills to its temp file now and then
        // (incl. twice in a row and right before `write`) give a byte-identical file
        let dir = tempfile::tempdir().unwrap();
        let (plain, expect) = build(300);
        let plain_bytes = plain.bytes();
        let (plain_file, plain_metas) = plain.write(dir.path(), 1).unwrap();
        let mut w = ChunkFileWriter::new();
        for (k, (id, ts, vals)) in expect.iter().enumerate() {
            w.add(*id, ts, vals);
            if k % 37 == 0 || k == 100 || k == expect.len() - 1 {
                w.spill(dir.path(), "s-1.tmp").unwrap();
                assert_eq!(w.buffered(), 0);
            }
            if k == 100 {
                w.spill(dir.path(), "s-1.tmp").unwrap();
            }
        }
        assert_eq!(w.bytes(), plain_bytes);
        let (file, metas) = w.write(dir.path(), 2).unwrap();
        assert!(!dir.path().join("s-1.tmp").exists());
        assert_eq!(metas, plain_metas);
        assert_eq!(&file.bytes()[..16], &plain_file.bytes()[..16]);
        assert_eq!(&file.bytes()[16..24], &2u64.to_le_bytes());
        assert_eq!(&file.bytes()[24..], &plain_file.bytes()[24..]);
        check_all(&file, &metas, &expect);
        let (reopened, metas2) = ChunkFile::open(&dir.path().join("0000000000000002.chunks"), 2).unwrap();
        assert_eq!(metas2, metas);
        check_all(&reopened, &metas2, &expect);
        // pages given back are read again from the file
        reopened.release_pages();
        check_all(&reopened, &metas2, &expect);

        // a spilled writer dropped without `write` leaves no temp file behind
        let (mut w, _) = build(20);
        w.spill(dir.path(), "s-2.tmp").unwrap();
        assert!(dir.path().join("s-2.tmp").exists());
        drop(w);
        assert!(!dir.path().join("s-2.tmp").exists());
    }

    fn build(n_series: u64) -> (ChunkFileWriter, Vec<(u64, Vec<i64>, Vec<f64>)>) {
        let mut w = ChunkFileWriter::new();
        assert!(w.is_empty());
        let mut expect = Vec::new();
        for k in 0..n_series {
            let n = [1usize, 2, 120, 720, 700][k as usize % 5];
            let (ts, vals) = series(k, n);
            let id = k.wrapping_mul(0x9e37_79b9_7f4a_7c15); // large, unordered ids
            w.add(id, &ts, &vals);
            expect.push((id, ts, vals));
        }
        (w, expect)
    }

    fn check_all(file: &ChunkFile, metas: &[ChunkMeta], expect: &[(u64, Vec<i64>, Vec<f64>)]) {
        assert_eq!(metas.len(), expect.len());
        let (mut t, mut v) = (Vec::new(), Vec::new());
        for (m, (id, ts, vals)) in metas.iter().zip(expect) {
            assert_eq!(m.series_id, *id);
            assert_eq!((m.min_ts, m.max_ts, m.count as usize), (ts[0], *ts.last().unwrap(), ts.len()));
            t.clear();
            v.clear();
            file.read(m, &mut t, &mut v).unwrap();
            assert_eq!(&t, ts);
            assert_eq!(
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                vals.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn chunk_write_open_read_many_series() {
        assert_send_sync::<ChunkFile>();
        let dir = tempfile::tempdir().unwrap();
        let (w, expect) = build(500);
        assert!(!w.is_empty());
        let buffered = w.bytes();
        let (file, metas) = w.write(dir.path(), 0xab).unwrap();
        let path = dir.path().join("00000000000000ab.chunks");
        assert_eq!(file.path(), Some(path.as_path()));
        assert_eq!(file.id(), 0xab);
        assert!(file.size_bytes() as usize > buffered);
        assert_eq!(file.size_bytes(), fs::metadata(&path).unwrap().len());
        assert!(!dir.path().join("00000000000000ab.chunks.tmp").exists());
        check_all(&file, &metas, &expect);

        let (file2, metas2) = ChunkFile::open(&path, 0xab).unwrap();
        assert_eq!(metas2, metas);
        check_all(&file2, &metas2, &expect);
        // the per-chunk fixed cost stays small: header + index entry well under 64 bytes
        let body: u64 = metas.iter().map(|m| m.len as u64).sum();
        let overhead = file.size_bytes() - body - (HEADER_LEN + TRAILER_LEN) as u64;
        assert!(overhead / (metas.len() as u64) < 64, "overhead {overhead} for {} chunks", metas.len());
        // readers on several threads at once
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| check_all(&file2, &metas2, &expect));
            }
        });
    }

    #[test]
    fn chunk_into_memory_matches_file() {
        let dir = tempfile::tempdir().unwrap();
        let (w1, expect) = build(37);
        let (w2, _) = build(37);
        let (mem, mmetas) = w1.into_memory(7).unwrap();
        let (disk, dmetas) = w2.write(dir.path(), 7).unwrap();
        assert_eq!(mem.path(), None);
        assert_eq!(mem.id(), 7);
        assert_eq!(mmetas, dmetas);
        assert_eq!(mem.bytes(), disk.bytes());
        assert_eq!(mem.size_bytes(), disk.size_bytes());
        check_all(&mem, &mmetas, &expect);
        let (again, ametas) = ChunkFile::from_bytes(mem.bytes().to_vec(), 7).unwrap();
        assert_eq!(ametas, mmetas);
        check_all(&again, &ametas, &expect);
    }

    #[test]
    fn chunk_empty_writer_and_extreme_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let (f, m) = ChunkFileWriter::new().write(dir.path(), u64::MAX).unwrap();
        assert!(m.is_empty());
        let (_, m2) = ChunkFile::open(&dir.path().join("ffffffffffffffff.chunks"), u64::MAX).unwrap();
        assert!(m2.is_empty());
        assert_eq!(f.size_bytes(), (HEADER_LEN + TRAILER_LEN) as u64);

        let mut w = ChunkFileWriter::new();
        w.add(1, &[], &[]); // empty runs add nothing
        assert!(w.is_empty());
        w.add(u64::MAX, &[i64::MIN, i64::MAX], &[f64::NAN, f64::NEG_INFINITY]);
        w.add(0, &[-5], &[f64::from_bits(STALE_NAN_BITS)]);
        let (f, metas) = w.write(dir.path(), 1).unwrap();
        let (_, reopened) = ChunkFile::open(f.path().unwrap(), 1).unwrap();
        assert_eq!(reopened, metas);
        assert_eq!((metas[0].min_ts, metas[0].max_ts, metas[0].series_id), (i64::MIN, i64::MAX, u64::MAX));
        let (mut t, mut v) = (Vec::new(), Vec::new());
        f.read(&metas[1], &mut t, &mut v).unwrap();
        assert_eq!((t[0], v[0].to_bits()), (-5, STALE_NAN_BITS));
    }

    #[test]
    fn chunk_crc_mismatch_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = build(10);
        let (file, metas) = w.write(dir.path(), 3).unwrap();
        let path = file.path().unwrap().to_path_buf();
        drop(file);
        // flip one byte in the body of chunk 4 (bodies are not covered by the index crc)
        let m = metas[4];
        let mut bytes = fs::read(&path).unwrap();
        let body_last = (metas[5].offset - 1) as usize;
        bytes[body_last] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (file, metas2) = ChunkFile::open(&path, 3).unwrap();
        assert_eq!(metas2, metas);
        let (mut t, mut v) = (Vec::new(), Vec::new());
        let err = file.read(&m, &mut t, &mut v).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt);
        assert!(err.message.contains("0000000000000003.chunks"), "{}", err.message);
        assert!(err.message.contains(&format!("offset {}", m.offset)), "{}", err.message);
        assert!(err.message.contains("crc mismatch"), "{}", err.message);
        assert!(t.is_empty() && v.is_empty());
        // neighbours still read fine
        file.read(&metas[3], &mut t, &mut v).unwrap();
        file.read(&metas[5], &mut t, &mut v).unwrap();
        // a meta that does not match what is on disk is refused, not decoded blindly
        let mut wrong = metas[3];
        wrong.count += 1;
        assert_eq!(file.read(&wrong, &mut t, &mut v).unwrap_err().kind, ErrorKind::Corrupt);
        let mut wrong = metas[3];
        wrong.offset += 1;
        assert_eq!(file.read(&wrong, &mut t, &mut v).unwrap_err().kind, ErrorKind::Corrupt);
        let mut wrong = metas[3];
        wrong.offset = file.size_bytes();
        assert_eq!(file.read(&wrong, &mut t, &mut v).unwrap_err().kind, ErrorKind::Corrupt);
        // a corrupted record header is caught by the crc too
        let mut bytes = fs::read(&path).unwrap();
        bytes[metas[6].offset as usize + 1] ^= 0x01; // series id varint
        let (mem, _) = ChunkFile::from_bytes(bytes, 3).unwrap();
        let err = mem.read(&metas[6], &mut t, &mut v).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt);
        assert!(err.message.contains("<memory>/0000000000000003.chunks"), "{}", err.message);
    }

    #[test]
    fn chunk_corrupt_or_truncated_footer() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = build(20);
        let (file, metas) = w.write(dir.path(), 9).unwrap();
        let path = file.path().unwrap().to_path_buf();
        let good = file.bytes().to_vec();
        drop(file);
        let index_offset = u64::from_le_bytes(good[good.len() - 32..good.len() - 24].try_into().unwrap()) as usize;
        let check = |bytes: &[u8], what: &str| {
            let p = dir.path().join("0000000000000009.chunks");
            fs::write(&p, bytes).unwrap();
            let err = match ChunkFile::open(&p, 9) {
                Ok(_) => panic!("{what}: open succeeded"),
                Err(e) => e,
            };
            assert_eq!(err.kind, ErrorKind::Corrupt, "{what}: {err}");
            assert!(err.message.contains("0000000000000009.chunks"), "{what}: {}", err.message);
            let mem = ChunkFile::from_bytes(bytes.to_vec(), 9);
            assert_eq!(mem.err().map(|e| e.kind), Some(ErrorKind::Corrupt), "{what} (memory)");
        };
        // truncations anywhere lose the trailer
        for cut in [0, 5, 24, 56, good.len() / 2, index_offset, good.len() - 1, good.len() - 8] {
            check(&good[..cut], &format!("truncated to {cut}"));
        }
        // every single-byte flip in the index or trailer is detected
        for i in index_offset..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x10;
            check(&b, &format!("flip at {i}"));
        }
        // header damage
        for i in [0usize, 8, 16] {
            let mut b = good.clone();
            b[i] ^= 0x01;
            check(&b, &format!("header flip at {i}"));
        }
        // a torn append (garbage after a valid trailer) is not a valid file either
        let mut b = good.clone();
        b.extend_from_slice(&[0u8; 7]);
        check(&b, "trailing garbage");
        // the wrong file id
        fs::write(&path, &good).unwrap();
        assert_eq!(ChunkFile::open(&path, 10).err().unwrap().kind, ErrorKind::Corrupt);
        // and the intact file still opens
        let (_, m) = ChunkFile::open(&path, 9).unwrap();
        assert_eq!(m, metas);
        // missing file is an io error
        assert_eq!(ChunkFile::open(&dir.path().join("nope.chunks"), 9).err().unwrap().kind, ErrorKind::Io);
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Series of one scrape target share timestamps: only the first chunk stores them.
    #[test]
    fn chunk_shared_timestamps_round_trip() {
        let ts_a: Vec<i64> = (0..2160).map(|i| 1_764_000_000_000 + i * 10_000 + (i * 7) % 5 + 1).collect();
        let ts_b: Vec<i64> = ts_a.iter().map(|t| t + 3).collect();
        let mut expect: Vec<(u64, Vec<i64>, Vec<f64>)> = Vec::new();
        let mut w = ChunkFileWriter::new();
        for k in 0..40u64 {
            // A, A, B, A, B, ... short, single-point and special-valued chunks in between
            let ts = match k % 5 {
                0 | 1 | 3 => ts_a.clone(),
                2 => ts_b.clone(),
                _ => ts_a[..1 + (k as usize % 3)].to_vec(),
            };
            let vals: Vec<f64> = (0..ts.len())
                .map(|i| match (i + k as usize) % 97 {
                    0 => f64::from_bits(STALE_NAN_BITS),
                    1 => -0.0,
                    2 => f64::NEG_INFINITY,
                    3 => f64::from_bits(0x7ff8_0000_dead_beef),
                    _ => ((i * 31 + k as usize * 7) % 1000) as f64 / 10.0,
                })
                .collect();
            w.add(k, &ts, &vals);
            expect.push((k, ts, vals));
        }
        let (file, metas) = w.into_memory(5).unwrap();
        assert_eq!(file.version(), FORMAT_VERSION);
        // every full-length chunk but the first of ts_a (k = 0) and of ts_b (k = 2) shares
        for m in &metas {
            let is_shared = m.codec >> 4 == codec::TS_SHARED;
            if m.count == 2160 {
                assert_eq!(is_shared, m.series_id != 0 && m.series_id != 2, "{m:?}");
            }
        }
        assert!(metas.iter().filter(|m| m.count < 10 && m.codec >> 4 == codec::TS_SHARED).count() >= 3);
        check_all(&file, &metas, &expect);
        let (again, m2) = ChunkFile::from_bytes(file.bytes().to_vec(), 5).unwrap();
        assert_eq!(m2, metas);
        check_all(&again, &m2, &expect);
        // the same chunks without sharing are much larger
        let unshared: usize = expect.iter().map(|(_, t, v)| codec::encode(t, v).1.len()).sum();
        let bodies: usize = metas.iter().map(|m| m.len as usize).sum();
        assert!(bodies * 10 < unshared * 8, "shared {bodies} vs unshared {unshared}");
    }

    #[test]
    fn chunk_format_1_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkFileWriter::new();
        w.version = 1;
        let ts: Vec<i64> = (0..700).map(|i| 1_700_000_000_000 + i * 10_000).collect();
        let mut expect = Vec::new();
        for k in 0..6u64 {
            let vals: Vec<f64> = (0..700).map(|i| ((i * 13 + k as usize) % 500) as f64 / 100.0).collect();
            let t: Vec<i64> = ts.iter().map(|x| x + k as i64 * 1000).collect();
            w.add(k, &ts, &vals); // identical timestamps: not shared in format 1
            w.add(k + 100, &t, &vals);
            expect.push((k, ts.clone(), vals.clone()));
            expect.push((k + 100, t, vals));
        }
        let (f, metas) = w.write(dir.path(), 4).unwrap();
        assert_eq!(f.version(), 1);
        assert!(metas.iter().all(|m| m.codec >> 4 != codec::TS_SHARED));
        let (f1, m1) = ChunkFile::open(f.path().unwrap(), 4).unwrap();
        assert_eq!((f1.version(), &m1), (1, &metas));
        check_all(&f1, &m1, &expect);
    }

    #[test]
    fn chunk_shared_timestamps_corruption() {
        // starts at 0 so the index reads the same as format 1 (absolute min_ts) and 2 (deltas)
        let ts: Vec<i64> = (0..600).map(|i| i * 15_000 + i % 3).collect();
        let mut w = ChunkFileWriter::new();
        for k in 0..4u64 {
            let vals: Vec<f64> = (0..600).map(|i| (i as f64 + k as f64) * 0.25).collect();
            w.add(k, &ts, &vals);
        }
        let (file, metas) = w.into_memory(2).unwrap();
        assert_eq!(metas[0].codec >> 4, codec::TS_PCO);
        assert!(metas[1..].iter().all(|m| m.codec >> 4 == codec::TS_SHARED));
        let good = file.bytes().to_vec();
        let (mut t, mut v) = (Vec::new(), Vec::new());
        // damage in the owner's body: its own read and every sharer's read fail cleanly
        let mut b = good.clone();
        b[(metas[1].offset - 2) as usize] ^= 0x08;
        let (f, _) = ChunkFile::from_bytes(b, 2).unwrap();
        for m in &metas {
            let e = f.read(m, &mut t, &mut v).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Corrupt);
            assert!(e.message.contains("crc mismatch"), "{}", e.message);
            assert!(t.is_empty() && v.is_empty());
        }
        // a format 1 file must not contain shared timestamps
        let mut b = good.clone();
        b[8..10].copy_from_slice(&1u16.to_le_bytes());
        let (f, m1) = ChunkFile::from_bytes(b, 2).unwrap();
        assert_eq!(f.version(), 1);
        f.read(&m1[0], &mut t, &mut v).unwrap();
        t.clear();
        v.clear();
        let e = f.read(&m1[2], &mut t, &mut v).unwrap_err();
        assert!(e.message.contains("format 1"), "{}", e.message);
        assert!(t.is_empty() && v.is_empty());
        // unknown future versions are refused on open
        let mut b = good.clone();
        b[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(ChunkFile::from_bytes(b, 2).err().unwrap().kind, ErrorKind::Corrupt);
        // a rewritten reference (crc fixed up) pointing at a sharer, the header, or before
        // the file start is refused, never decoded blindly
        for back in [metas[3].offset - metas[1].offset, metas[3].offset - 10, metas[3].offset + 5, 1] {
            let mut vals = Vec::new();
            codec::decode_values(metas[3].codec, body_of(&good, &metas[3]), 600, &mut vals).unwrap();
            let (c, body) = codec::encode_shared_ts(back, &vals).unwrap();
            let mut w = ChunkFileWriter::new();
            w.buf.truncate(0);
            w.buf.extend_from_slice(&good[..metas[3].offset as usize]);
            w.metas = metas[..3].to_vec();
            let off = w.buf.len() as u64;
            let hdr = w.buf.len();
            write_record_header(&mut w.buf, 3, ts[0], ts[599], 600, c, body.len() as u32);
            let mut h = crc32fast::Hasher::new();
            h.update(&w.buf[hdr..]);
            h.update(&body);
            let crc32 = h.finalize();
            w.buf.extend_from_slice(&crc32.to_le_bytes());
            w.buf.extend_from_slice(&body);
            w.metas.push(ChunkMeta { series_id: 3, min_ts: ts[0], max_ts: ts[599], count: 600, codec: c, offset: off, len: body.len() as u32, crc32 });
            let (f, m) = w.into_memory(2).unwrap();
            f.read(&m[0], &mut t, &mut v).unwrap();
            t.clear();
            v.clear();
            let e = f.read(&m[3], &mut t, &mut v).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Corrupt, "back {back}");
            assert!(t.is_empty() && v.is_empty());
        }
        // the intact file reads bit-exact
        let (f, m) = ChunkFile::from_bytes(good, 2).unwrap();
        for (k, meta) in m.iter().enumerate() {
            t.clear();
            v.clear();
            f.read(meta, &mut t, &mut v).unwrap();
            assert_eq!(t, ts);
            assert_eq!(bits(&v), bits(&(0..600).map(|i| (i as f64 + k as f64) * 0.25).collect::<Vec<_>>()));
        }
    }

    fn body_of<'a>(file: &'a [u8], m: &ChunkMeta) -> &'a [u8] {
        let rec = &file[m.offset as usize..];
        let mut pos = 0;
        parse_record_header(rec, &mut pos).unwrap();
        &rec[pos + 4..pos + 4 + m.len as usize]
    }

    #[test]
    fn chunk_parse_file_name() {
        assert_eq!(ChunkFile::parse_file_name("00000000000000ab.chunks"), Some(0xab));
        assert_eq!(ChunkFile::parse_file_name("ffffffffffffffff.chunks"), Some(u64::MAX));
        assert_eq!(ChunkFile::parse_file_name("0000000000000000.chunks"), Some(0));
        for bad in [
            "00000000000000AB.chunks",
            "0000000000000ab.chunks",
            "000000000000000ab.chunks",
            "00000000000000ab.chunk",
            "00000000000000ab.chunks.tmp",
            "+0000000000000ab.chunks",
            "00000000000000ab",
            ".chunks",
            "",
        ] {
            assert_eq!(ChunkFile::parse_file_name(bad), None, "{bad}");
        }
        for id in [0u64, 1, 0xab, 1 << 40, u64::MAX] {
            assert_eq!(ChunkFile::parse_file_name(&ChunkFile::file_name(id)), Some(id));
        }
    }
}
