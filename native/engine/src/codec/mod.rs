//! Compression of one series' run of `(timestamp, value)` points into a chunk body.
//!
//! The codec id returned by [`encode`] is stored in the chunk header. It names the
//! timestamp encoding (high nibble) and the value encoding (low nibble), so a reader
//! needs nothing else to decode a body. Byte layouts are in `FORMAT-chunk.md`.
//!
//! | id            | meaning |
//! |---------------|---------|
//! | `0x00`        | empty run (0 points, empty body) |
//! | `0x01`        | raw: `count` i64 LE timestamps then `count` f64 LE bit patterns |
//! | `0xTV`        | columnar: `T` = timestamp encoding, `V` = value encoding (below) |
//!
//! Timestamp encodings `T`: `1` delta-of-delta bit stream, `2` pco i64, `3` shared (the
//! timestamps of an earlier chunk in the same chunk file, resolved by `chunk::ChunkFile::read`).
//! Value encodings `V`: `1` Gorilla XOR bit stream, `2` decimal mantissas in a
//! bit-packed delta stream, `3` decimal mantissas with pco i64, `4` pco f64, `5` decimal
//! mantissas with pco i32 (when every mantissa fits).
//!
//! Everything is lossless and bit exact for every f64 bit pattern (NaN payloads,
//! the Prometheus stale marker, infinities, -0.0) and every i64 timestamp.
//! Decoding malformed input returns `Err(kind Corrupt)`; it never panics.
//!
//! Module layout: this file holds the public API, the codec ids and the choice of encodings;
//! each encoding lives in its own private submodule (`timestamps` delta-of-delta, `gorilla`,
//! `decimal` with `packed` ints, `pcodec` wrappers, `bits` for the bit-level primitives).
//! [`measure`] exposes a few internals for `examples/codec_measure.rs` only.

mod bits;
mod decimal;
mod gorilla;
pub mod measure;
mod packed;
mod pcodec;
mod timestamps;

use crate::error::{Error, Result};
use bits::{get_varint, put_varint};
pub(crate) use bits::{unzigzag, zigzag};
use decimal::{decode_decimal, encode_decimal, min_scale};
use gorilla::{decode_gorilla, encode_gorilla};
use pco::DeltaSpec;
use pcodec::{pco_compress, pco_decompress_into};
use timestamps::{decode_ts_dod, encode_ts_dod};

/// Empty run: no body.
pub const CODEC_EMPTY: u8 = 0x00;
/// Raw little-endian columns; the fallback that always works.
pub const CODEC_RAW: u8 = 0x01;

/// Timestamp encoding: zigzag delta-of-delta in a prefix-coded bit stream.
pub const TS_DOD_BITS: u8 = 1;
/// Timestamp encoding: pco (pcodec) wrapped i64 chunk, automatic delta order.
pub const TS_PCO: u8 = 2;
/// Timestamp encoding: none in this body; the timestamps are those of another chunk in the
/// same chunk file (chunk file format 2). The section is a varint: how many bytes before this
/// chunk's record the record holding the timestamps starts. Written by
/// [`encode_shared_ts`], resolved by `chunk::ChunkFile::read` with [`shared_ts_ref`],
/// [`decode_ts`] and [`decode_values`]; plain [`decode`] refuses it.
pub const TS_SHARED: u8 = 3;

/// Value encoding: Gorilla XOR bit stream of the f64 bit patterns.
pub const VAL_GORILLA: u8 = 1;
/// Value encoding: decimal mantissas (value = m / 10^scale), bit-packed delta blocks.
pub const VAL_DEC_PACKED: u8 = 2;
/// Value encoding: decimal mantissas (value = m / 10^scale), pco i64.
pub const VAL_DEC_PCO: u8 = 3;
/// Value encoding: pco f64 (pco chooses float-mult / float-quant / classic itself).
pub const VAL_PCO_F64: u8 = 4;
/// Value encoding: decimal mantissas (value = m / 10^scale), pco i32. Written instead of
/// [`VAL_DEC_PCO`] when every mantissa fits in an i32: the same numbers in a narrower
/// type, which pco stores with smaller bin bounds and decodes faster.
pub const VAL_DEC_PCO32: u8 = 5;

/// Runs shorter than this use the bit-stream encodings (no pco headers).
/// Chosen from the measurements in FORMAT-chunk.md.
pub const PCO_MIN_POINTS: usize = 512;

/// pco compression level used for chunk bodies (0..=12). See FORMAT-chunk.md.
pub const PCO_LEVEL: usize = 4;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Encode a run of points. Precondition: ts strictly increasing, ts.len() == vals.len(); len may be 0 or 1.
/// Returns the codec id (stored in the chunk header) and the body bytes.
pub fn encode(ts: &[i64], vals: &[f64]) -> (u8, Vec<u8>) {
    assert_eq!(ts.len(), vals.len(), "codec::encode: ts and vals lengths differ");
    let ts_enc = if ts.len() >= PCO_MIN_POINTS { TS_PCO } else { TS_DOD_BITS };
    let val_enc = choose_value_encoding(vals);
    encode_with(ts, vals, ts_enc, val_enc)
}

/// Decode a body produced by `encode`, appending `count` points to the outputs.
/// Malformed input returns Err(kind Corrupt), never panics.
pub fn decode(
    codec: u8,
    data: &[u8],
    count: usize,
    ts_out: &mut Vec<i64>,
    vals_out: &mut Vec<f64>,
) -> Result<()> {
    let ts_start = ts_out.len();
    let vals_start = vals_out.len();
    let res = decode_inner(codec, data, count, ts_out, vals_out);
    if res.is_err() {
        // Leave the outputs as they were on failure.
        ts_out.truncate(ts_start);
        vals_out.truncate(vals_start);
    }
    res
}

/// Encode the values of a run whose timestamps are stored in another chunk of the same file,
/// `back` bytes before this chunk's record (`back >= 1`). The body's timestamp section holds
/// just `back` as a varint; the codec id has `T =` [`TS_SHARED`]. `None` if no columnar value
/// encoding worked (the caller then stores the timestamps itself with [`encode`]).
pub fn encode_shared_ts(back: u64, vals: &[f64]) -> Option<(u8, Vec<u8>)> {
    if vals.is_empty() || back == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(vals.len() * 2 + 16);
    let mut sec = Vec::with_capacity(10);
    put_varint(&mut sec, back);
    put_varint(&mut out, sec.len() as u64);
    out.extend_from_slice(&sec);
    let val_enc = encode_value_section(vals, choose_value_encoding(vals), &mut out)?;
    Some(((TS_SHARED << 4) | val_enc, out))
}

/// For a body whose timestamps live in another chunk ([`TS_SHARED`]): the back reference
/// stored in it (>= 1). `Ok(None)` for every other codec.
pub fn shared_ts_ref(codec: u8, data: &[u8]) -> Result<Option<u64>> {
    if codec <= CODEC_RAW || codec >> 4 != TS_SHARED {
        return Ok(None);
    }
    let (ts_data, _) = split_columnar(data)?;
    let mut pos = 0usize;
    let back = get_varint(ts_data, &mut pos)?;
    if back == 0 || pos != ts_data.len() {
        return Err(Error::corrupt("codec: malformed shared-timestamps reference"));
    }
    Ok(Some(back))
}

/// Decode only the timestamps of a body (any codec except [`TS_SHARED`] ones), appending
/// `count` of them. On error `ts_out` is left as it was.
pub fn decode_ts(codec: u8, data: &[u8], count: usize, ts_out: &mut Vec<i64>) -> Result<()> {
    let start = ts_out.len();
    let res = match codec {
        CODEC_EMPTY | CODEC_RAW => {
            let mut vals = Vec::new();
            decode_inner(codec, data, count, ts_out, &mut vals)
        }
        c => {
            if count == 0 {
                return Err(Error::corrupt(format!("codec: codec {c:#04x} with 0 points")));
            }
            split_columnar(data).and_then(|(ts_data, _)| decode_ts_section(c >> 4, ts_data, count, ts_out))
        }
    };
    if res.is_err() {
        ts_out.truncate(start);
    }
    res
}

/// Decode only the values of a body (any codec, including [`TS_SHARED`] ones), appending
/// `count` of them. On error `vals_out` is left as it was.
pub fn decode_values(codec: u8, data: &[u8], count: usize, vals_out: &mut Vec<f64>) -> Result<()> {
    let start = vals_out.len();
    let res = match codec {
        CODEC_EMPTY | CODEC_RAW => {
            let mut ts = Vec::new();
            decode_inner(codec, data, count, &mut ts, vals_out)
        }
        c => {
            if count == 0 {
                return Err(Error::corrupt(format!("codec: codec {c:#04x} with 0 points")));
            }
            split_columnar(data).and_then(|(_, val_data)| decode_val_section(c & 0x0f, val_data, count, vals_out))
        }
    };
    if res.is_err() {
        vals_out.truncate(start);
    }
    res
}

/// Decode the values of a body (any codec) at the sorted chunk-relative indexes
/// `wanted` into `out` (`count` slots; the slots not wanted are left as they are).
/// With `need_values` false a wanted slot only tells whether the point is a
/// staleness marker: it holds the exact value where the encoding keeps such values
/// apart (decimal exceptions), and otherwise any value that is not a marker; a decimal
/// body's mantissas are then not decoded at all.
pub fn decode_values_at(
    codec: u8,
    data: &[u8],
    count: usize,
    wanted: &[u32],
    need_values: bool,
    out: &mut [f64],
) -> Result<()> {
    if out.len() != count || wanted.last().is_some_and(|&w| w as usize >= count) {
        return Err(Error::corrupt("codec: wanted values out of range"));
    }
    let val_enc = codec & 0x0f;
    if codec > CODEC_RAW && matches!(val_enc, VAL_DEC_PACKED | VAL_DEC_PCO | VAL_DEC_PCO32) {
        if count == 0 {
            return Err(Error::corrupt(format!("codec: codec {codec:#04x} with 0 points")));
        }
        let (_, val_data) = split_columnar(data)?;
        return decimal::decode_decimal_at(val_data, val_enc, count, wanted, need_values, out);
    }
    thread_local! {
        static ALL: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut all = ALL.with(|c| std::mem::take(&mut *c.borrow_mut()));
    all.clear();
    let res = decode_values(codec, data, count, &mut all);
    if res.is_ok() {
        for &w in wanted {
            out[w as usize] = all[w as usize];
        }
    }
    if all.capacity() <= 1 << 16 {
        ALL.with(|c| *c.borrow_mut() = all);
    }
    res
}

/// Human-readable name of a codec id (for admin tools and error messages).
pub fn codec_name(codec: u8) -> String {
    match codec {
        CODEC_EMPTY => "empty".to_string(),
        CODEC_RAW => "raw".to_string(),
        c => {
            let t = match c >> 4 {
                TS_DOD_BITS => "ts-dod",
                TS_PCO => "ts-pco",
                TS_SHARED => "ts-shared",
                _ => "ts-?",
            };
            let v = match c & 0x0f {
                VAL_GORILLA => "val-gorilla",
                VAL_DEC_PACKED => "val-dec-packed",
                VAL_DEC_PCO => "val-dec-pco",
                VAL_PCO_F64 => "val-pco-f64",
                VAL_DEC_PCO32 => "val-dec-pco32",
                _ => "val-?",
            };
            format!("{t}+{v}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encode with an explicit timestamp and value encoding (used by `encode` and the measurements).
/// Falls back to raw if a pco call fails (it should not) or the result is larger than raw.
pub(crate) fn encode_with(ts: &[i64], vals: &[f64], ts_enc: u8, val_enc: u8) -> (u8, Vec<u8>) {
    assert_eq!(ts.len(), vals.len(), "codec::encode: ts and vals lengths differ");
    if ts.is_empty() {
        return (CODEC_EMPTY, Vec::new());
    }
    match encode_columnar(ts, vals, ts_enc, val_enc) {
        Some((val_enc, body)) if body.len() < ts.len() * 16 => ((ts_enc << 4) | val_enc, body),
        _ => (CODEC_RAW, encode_raw(ts, vals)),
    }
}

fn encode_raw(ts: &[i64], vals: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ts.len() * 16);
    for t in ts {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for v in vals {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    out
}

/// The timestamp section of a columnar body (without its length prefix).
fn encode_ts_column(ts: &[i64], ts_enc: u8) -> Option<Vec<u8>> {
    match ts_enc {
        TS_DOD_BITS => Some(encode_ts_dod(ts)),
        TS_PCO => encode_ts_pco(ts),
        _ => None,
    }
}

/// pco timestamps: delta order 2, and when the run has a regular interval also "interval
/// multiple + remainder" (pco IntMult mode with that interval as base, delta order 1 on the
/// multiples), keeping the smaller. For scrapes with a few ms of random jitter the second
/// stores little more than the jitter's entropy (2160 points at 10 s with jitter 1..=5 ms:
/// 0.32 B/point instead of 0.51). The decoder needs nothing new: pco streams name their mode.
fn encode_ts_pco(ts: &[i64]) -> Option<Vec<u8>> {
    let plain = pco_compress(ts, DeltaSpec::TryConsecutive(2));
    let Some(base) = ts_interval(ts) else { return plain };
    let cfg = pcodec::pco_config(DeltaSpec::TryConsecutive(1)).with_mode_spec(pco::ModeSpec::TryIntMult(base));
    match (plain, pcodec::pco_compress_cfg(ts, cfg)) {
        (Some(p), Some(m)) => Some(if m.len() < p.len() { m } else { p }),
        (p, m) => p.or(m),
    }
}

/// The run's nominal interval: the median of up to 255 deltas, rounded to a whole second or
/// a multiple of 10 ms when that is within 1%. `None` when there is none (too few points,
/// deltas below 2).
fn ts_interval(ts: &[i64]) -> Option<u64> {
    let step = (ts.len() / 256).max(1);
    let mut d: Vec<i64> = ts.windows(2).step_by(step).map(|w| w[1].wrapping_sub(w[0])).take(255).collect();
    if d.len() < 8 {
        return None;
    }
    let mid = d.len() / 2;
    let m = *d.select_nth_unstable(mid).1;
    if m < 2 {
        return None;
    }
    for unit in [1000i64, 10] {
        let Some(r) = m.checked_add(unit / 2).map(|x| x / unit * unit) else { continue };
        if r >= 2 && (r - m).unsigned_abs().saturating_mul(100) <= m as u64 {
            return Some(r as u64);
        }
    }
    Some(m as u64)
}

/// The columnar body and the value encoding it holds (see [`encode_value_section`]).
fn encode_columnar(ts: &[i64], vals: &[f64], ts_enc: u8, val_enc: u8) -> Option<(u8, Vec<u8>)> {
    let ts_body = encode_ts_column(ts, ts_enc)?;
    let mut out = Vec::with_capacity(ts_body.len() + vals.len() * 2 + 16);
    put_varint(&mut out, ts_body.len() as u64);
    out.extend_from_slice(&ts_body);
    let val_enc = encode_value_section(vals, val_enc, &mut out)?;
    Some((val_enc, out))
}

/// Appends the value section and returns the encoding written: `val_enc`, except that a
/// decimal pco section ([`VAL_DEC_PCO`] or [`VAL_DEC_PCO32`] asked) is written with the
/// narrowest mantissa type that holds every mantissa.
fn encode_value_section(vals: &[f64], val_enc: u8, out: &mut Vec<u8>) -> Option<u8> {
    match val_enc {
        VAL_GORILLA => encode_gorilla(vals, out),
        VAL_DEC_PACKED | VAL_DEC_PCO | VAL_DEC_PCO32 => return encode_decimal(vals, val_enc, out),
        VAL_PCO_F64 => out.extend_from_slice(&pco_compress(vals, DeltaSpec::Auto)?),
        _ => return None,
    }
    Some(val_enc)
}

/// Decide between decimal-mantissa and float encodings by looking at a sample.
fn choose_value_encoding(vals: &[f64]) -> u8 {
    let n = vals.len();
    let sample = &vals[..n.min(64)];
    let decimal_ok = sample.iter().filter(|&&v| min_scale(v).is_some()).count();
    let decimal = decimal_ok * 4 >= sample.len() * 3; // >= 75% of the sample are short decimals
    match (decimal, n >= PCO_MIN_POINTS) {
        (true, false) => VAL_DEC_PACKED,
        (true, true) => VAL_DEC_PCO,
        (false, false) => VAL_GORILLA,
        (false, true) => VAL_PCO_F64,
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

fn decode_inner(
    codec: u8,
    data: &[u8],
    count: usize,
    ts_out: &mut Vec<i64>,
    vals_out: &mut Vec<f64>,
) -> Result<()> {
    match codec {
        CODEC_EMPTY => {
            if count != 0 || !data.is_empty() {
                return Err(Error::corrupt(format!(
                    "codec: empty codec with count {count} and {} body bytes",
                    data.len()
                )));
            }
            Ok(())
        }
        CODEC_RAW => {
            if count.checked_mul(16) != Some(data.len()) {
                return Err(Error::corrupt(format!(
                    "codec: raw body of {} bytes for {count} points",
                    data.len()
                )));
            }
            let (t, v) = data.split_at(count * 8);
            ts_out.extend(t.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())));
            vals_out.extend(
                v.chunks_exact(8).map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().unwrap()))),
            );
            Ok(())
        }
        c => {
            if count == 0 {
                return Err(Error::corrupt(format!("codec: codec {c:#04x} with 0 points")));
            }
            decode_columnar(c >> 4, c & 0x0f, data, count, ts_out, vals_out)
        }
    }
}

fn decode_columnar(
    ts_enc: u8,
    val_enc: u8,
    data: &[u8],
    count: usize,
    ts_out: &mut Vec<i64>,
    vals_out: &mut Vec<f64>,
) -> Result<()> {
    if ts_enc == TS_SHARED {
        return Err(Error::corrupt(
            "codec: timestamps are stored in another chunk (shared); read through the chunk file",
        ));
    }
    let (ts_data, val_data) = split_columnar(data)?;
    decode_ts_section(ts_enc, ts_data, count, ts_out)?;
    decode_val_section(val_enc, val_data, count, vals_out)
}

/// Split a columnar body into its timestamp section and its value section.
fn split_columnar(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut pos = 0usize;
    let ts_len = get_varint(data, &mut pos)?;
    let ts_end = pos
        .checked_add(usize::try_from(ts_len).unwrap_or(usize::MAX))
        .filter(|&e| e <= data.len())
        .ok_or_else(|| Error::corrupt("codec: timestamp section runs past the body"))?;
    Ok((&data[pos..ts_end], &data[ts_end..]))
}

fn decode_ts_section(ts_enc: u8, ts_data: &[u8], count: usize, ts_out: &mut Vec<i64>) -> Result<()> {
    match ts_enc {
        TS_DOD_BITS => {
            ts_out.reserve(count);
            decode_ts_dod(ts_data, count, ts_out)
        }
        TS_PCO => {
            pco_decompress_into::<i64>(ts_data, count, "timestamps", ts_out)
        }
        TS_SHARED => Err(Error::corrupt("codec: timestamps are stored in another chunk (shared)")),
        t => Err(Error::corrupt(format!("codec: unknown timestamp encoding {t}"))),
    }
}

fn decode_val_section(val_enc: u8, val_data: &[u8], count: usize, vals_out: &mut Vec<f64>) -> Result<()> {
    match val_enc {
        VAL_GORILLA => {
            vals_out.reserve(count);
            decode_gorilla(val_data, count, vals_out)
        }
        VAL_DEC_PACKED | VAL_DEC_PCO | VAL_DEC_PCO32 => decode_decimal(val_data, val_enc, count, vals_out),
        VAL_PCO_F64 => {
            pco_decompress_into::<f64>(val_data, count, "values", vals_out)
        }
        v => Err(Error::corrupt(format!("codec: unknown value encoding {v}"))),
    }
}

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;
