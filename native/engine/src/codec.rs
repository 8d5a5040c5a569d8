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
//! Timestamp encodings `T`: `1` delta-of-delta bit stream, `2` pco i64.
//! Value encodings `V`: `1` Gorilla XOR bit stream, `2` decimal mantissas in a
//! bit-packed delta stream, `3` decimal mantissas with pco i64, `4` pco f64.
//!
//! Everything is lossless and bit exact for every f64 bit pattern (NaN payloads,
//! the Prometheus stale marker, infinities, -0.0) and every i64 timestamp.
//! Decoding malformed input returns `Err(kind Corrupt)`; it never panics.

use crate::error::{Error, Result};
use pco::wrapped::{FileCompressor, FileDecompressor};
use pco::{ChunkConfig, DeltaSpec};

/// Empty run: no body.
pub const CODEC_EMPTY: u8 = 0x00;
/// Raw little-endian columns; the fallback that always works.
pub const CODEC_RAW: u8 = 0x01;

/// Timestamp encoding: zigzag delta-of-delta in a prefix-coded bit stream.
pub const TS_DOD_BITS: u8 = 1;
/// Timestamp encoding: pco (pcodec) wrapped i64 chunk, automatic delta order.
pub const TS_PCO: u8 = 2;

/// Value encoding: Gorilla XOR bit stream of the f64 bit patterns.
pub const VAL_GORILLA: u8 = 1;
/// Value encoding: decimal mantissas (value = m / 10^scale), bit-packed delta blocks.
pub const VAL_DEC_PACKED: u8 = 2;
/// Value encoding: decimal mantissas (value = m / 10^scale), pco i64.
pub const VAL_DEC_PCO: u8 = 3;
/// Value encoding: pco f64 (pco chooses float-mult / float-quant / classic itself).
pub const VAL_PCO_F64: u8 = 4;

/// Runs shorter than this use the bit-stream encodings (no pco headers).
/// Chosen from the measurements in FORMAT-chunk.md.
pub const PCO_MIN_POINTS: usize = 512;

/// pco compression level used for chunk bodies (0..=12). See FORMAT-chunk.md.
pub const PCO_LEVEL: usize = 4;

/// Largest decimal scale tried (value = mantissa / 10^scale).
const MAX_SCALE: usize = 18;
/// Mantissas must stay below 2^53 so `m as f64` is exact.
const MANTISSA_LIMIT: f64 = 9_007_199_254_740_992.0;
/// Values per bit-packed block in [`VAL_DEC_PACKED`].
const PACK_BLOCK: usize = 64;

const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

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

/// Human-readable name of a codec id (for admin tools and error messages).
pub fn codec_name(codec: u8) -> String {
    match codec {
        CODEC_EMPTY => "empty".to_string(),
        CODEC_RAW => "raw".to_string(),
        c => {
            let t = match c >> 4 {
                TS_DOD_BITS => "ts-dod",
                TS_PCO => "ts-pco",
                _ => "ts-?",
            };
            let v = match c & 0x0f {
                VAL_GORILLA => "val-gorilla",
                VAL_DEC_PACKED => "val-dec-packed",
                VAL_DEC_PCO => "val-dec-pco",
                VAL_PCO_F64 => "val-pco-f64",
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
        Some(body) if body.len() < ts.len() * 16 => ((ts_enc << 4) | val_enc, body),
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

fn encode_columnar(ts: &[i64], vals: &[f64], ts_enc: u8, val_enc: u8) -> Option<Vec<u8>> {
    let ts_body = match ts_enc {
        TS_DOD_BITS => encode_ts_dod(ts),
        TS_PCO => pco_compress(ts, DeltaSpec::TryConsecutive(2))?,
        _ => return None,
    };
    let mut out = Vec::with_capacity(ts_body.len() + vals.len() * 2 + 16);
    put_varint(&mut out, ts_body.len() as u64);
    out.extend_from_slice(&ts_body);
    match val_enc {
        VAL_GORILLA => encode_gorilla(vals, &mut out),
        VAL_DEC_PACKED | VAL_DEC_PCO => {
            let dec = to_decimal(vals, choose_scale(vals));
            out.push(dec.scale);
            put_varint(&mut out, dec.exceptions.len() as u64);
            let mut prev = 0usize;
            for &(idx, bits) in &dec.exceptions {
                put_varint(&mut out, (idx - prev) as u64);
                out.extend_from_slice(&bits.to_le_bytes());
                prev = idx;
            }
            if val_enc == VAL_DEC_PACKED {
                encode_packed_ints(&dec.mantissas, &mut out);
            } else {
                out.extend_from_slice(&pco_compress(&dec.mantissas, DeltaSpec::TryConsecutive(1))?);
            }
        }
        VAL_PCO_F64 => out.extend_from_slice(&pco_compress(vals, DeltaSpec::Auto)?),
        _ => return None,
    }
    Some(out)
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

/// pco settings per column. Fixing the delta order (instead of `DeltaSpec::Auto`) made
/// encoding 1.5-3x faster at equal or near-equal size (FORMAT-chunk.md); pco still falls
/// back to no delta when the given order is clearly bad.
fn pco_config(delta: DeltaSpec) -> ChunkConfig {
    ChunkConfig::default().with_compression_level(PCO_LEVEL).with_delta_spec(delta)
}

/// One pco "wrapped" file: format header, chunk meta, one page. The count is kept by us.
fn pco_compress<T: pco::data_types::Number>(nums: &[T], delta: DeltaSpec) -> Option<Vec<u8>> {
    pco_compress_cfg(nums, pco_config(delta))
}

fn pco_compress_cfg<T: pco::data_types::Number>(nums: &[T], config: ChunkConfig) -> Option<Vec<u8>> {
    let fc = FileCompressor::default();
    let mut out = Vec::new();
    fc.write_header(&mut out).ok()?;
    let config = config.with_paging_spec(pco::PagingSpec::Exact(vec![nums.len()]));
    let mut cc = fc.chunk_compressor(nums, &config).ok()?;
    cc.write_meta(&mut out).ok()?;
    cc.write_page(0, &mut out).ok()?;
    Some(out)
}

fn pco_decompress<T: pco::data_types::Number>(src: &[u8], n: usize, what: &str) -> Result<Vec<T>> {
    let corrupt = |e: String| Error::corrupt(format!("codec: {what}: pco: {e}"));
    // pco reports malformed input as errors; the unwind guard is a second line of defence
    // so a bug in a dependency cannot take the VM down with it.
    let res = std::panic::catch_unwind(|| -> std::result::Result<Vec<T>, String> {
        let (fd, rest) = FileDecompressor::new(src).map_err(|e| e.to_string())?;
        let (mut cd, rest) = fd.chunk_decompressor::<T, _>(rest).map_err(|e| e.to_string())?;
        let mut pd = cd.page_decompressor(rest, n).map_err(|e| e.to_string())?;
        let mut dst = vec![T::default(); n];
        let progress = pd.read(&mut dst).map_err(|e| e.to_string())?;
        if progress.n_processed != n {
            return Err(format!("decoded {} of {} numbers", progress.n_processed, n));
        }
        Ok(dst)
    });
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(corrupt(e)),
        Err(_) => Err(corrupt("decoder panicked on malformed input".to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Decimal conversion
// ---------------------------------------------------------------------------------------------

/// `Some(m)` when `(m as f64) / 10^scale` reproduces `v` bit for bit.
#[inline]
fn mantissa_at(v: f64, scale: usize) -> Option<i64> {
    let m = (v * POW10[scale]).round();
    if !(m.abs() < MANTISSA_LIMIT) {
        return None; // NaN, infinities, too many digits
    }
    let mi = m as i64;
    if from_mantissa(mi, scale as u8).to_bits() == v.to_bits() {
        Some(mi)
    } else {
        None // e.g. -0.0, or needs more digits
    }
}

#[inline]
fn from_mantissa(m: i64, scale: u8) -> f64 {
    // Exact integer divided by an exact power of ten, correctly rounded: this is the
    // f64 nearest to the decimal m * 10^-scale, which is what a parser produced.
    (m as f64) / POW10[scale as usize]
}

/// Smallest scale at which `v` is an exact decimal.
fn min_scale(v: f64) -> Option<usize> {
    (0..=MAX_SCALE).find(|&k| mantissa_at(v, k).is_some())
}

/// Pick the chunk's common scale: each extra digit costs ~log2(10) bits on every value,
/// each value that does not fit costs ~9 bytes as an exception.
fn choose_scale(vals: &[f64]) -> u8 {
    let mut hist = [0usize; MAX_SCALE + 2]; // last slot: no scale fits
    let mut cur = 0usize;
    for &v in vals {
        // Fast path: most values fit at the scale of the previous ones.
        if mantissa_at(v, cur).is_some() {
            // Its own minimum may be lower; count it at `cur`, which only makes larger
            // scales look no worse than they are.
            hist[cur] += 1;
            continue;
        }
        match min_scale(v) {
            Some(k) => {
                hist[k] += 1;
                if k > cur {
                    cur = k;
                }
            }
            None => hist[MAX_SCALE + 1] += 1,
        }
    }
    let n = vals.len() as f64;
    let mut best = (f64::INFINITY, 0u8);
    let mut above: usize = hist.iter().sum(); // values needing more than `k` (or none)
    for k in 0..=MAX_SCALE {
        above -= hist[k];
        let cost = n * 3.33 * k as f64 + above as f64 * 72.0;
        if cost < best.0 {
            best = (cost, k as u8);
        }
    }
    best.1
}

struct Decimal {
    scale: u8,
    mantissas: Vec<i64>,
    /// (index, raw bits) of values that are not decimals at `scale`.
    exceptions: Vec<(usize, u64)>,
}

fn to_decimal(vals: &[f64], scale: u8) -> Decimal {
    let mut mantissas = Vec::with_capacity(vals.len());
    let mut exceptions = Vec::new();
    let mut prev = 0i64;
    for (i, &v) in vals.iter().enumerate() {
        match mantissa_at(v, scale as usize) {
            Some(m) => {
                mantissas.push(m);
                prev = m;
            }
            None => {
                // Repeat the previous mantissa so deltas around the hole stay small.
                mantissas.push(prev);
                exceptions.push((i, v.to_bits()));
            }
        }
    }
    Decimal { scale, mantissas, exceptions }
}

// ---------------------------------------------------------------------------------------------
// Bit streams
// ---------------------------------------------------------------------------------------------

/// LSB-first bit writer.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32, // bits in acc, always < 64 between calls
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    #[inline]
    fn put(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= 64);
        if bits == 0 {
            return;
        }
        let v = if bits == 64 { v } else { v & ((1u64 << bits) - 1) };
        self.acc |= v << self.n;
        let total = self.n + bits;
        if total >= 64 {
            self.out.extend_from_slice(&self.acc.to_le_bytes());
            self.acc = if self.n == 0 { 0 } else { v >> (64 - self.n) };
            self.n = total - 64;
        } else {
            self.n = total;
        }
    }

    fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// LSB-first bit reader over a byte slice; reading past the end is an error.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize, // in bits
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    #[inline]
    fn get(&mut self, bits: u32) -> Result<u64> {
        if bits == 0 {
            return Ok(0);
        }
        if bits > 64 || self.pos + bits as usize > self.data.len() * 8 {
            return Err(Error::corrupt("codec: bit stream truncated"));
        }
        let byte = self.pos / 8;
        let shift = (self.pos % 8) as u32;
        let mut buf = [0u8; 16];
        let end = (byte + 16).min(self.data.len());
        buf[..end - byte].copy_from_slice(&self.data[byte..end]);
        let word = u128::from_le_bytes(buf) >> shift;
        let v = if bits == 64 { word as u64 } else { (word as u64) & ((1u64 << bits) - 1) };
        self.pos += bits as usize;
        Ok(v)
    }

    #[inline]
    fn bit(&mut self) -> Result<bool> {
        Ok(self.get(1)? == 1)
    }
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *data.get(*pos).ok_or_else(|| Error::corrupt("codec: varint truncated"))?;
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(Error::corrupt("codec: varint overflows 64 bits"));
        }
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::corrupt("codec: varint too long"))
}

fn bits_needed(u: u64) -> u32 {
    64 - u.leading_zeros()
}

// ---------------------------------------------------------------------------------------------
// Timestamps: delta-of-delta bit stream
// ---------------------------------------------------------------------------------------------
//
// first ts: 64 raw bits; first delta (if n >= 2) and then every delta-of-delta: zigzag,
// prefix-coded. All arithmetic wraps, so any i64 sequence round-trips.
//
// prefix classes for a zigzag value z:
//   0                  z == 0
//   10    + 6 bits     z < 2^6
//   110   + 13 bits    z < 2^13
//   1110  + 24 bits    z < 2^24
//   1111  + 64 bits    anything

#[inline]
fn put_class(w: &mut BitWriter, z: u64) {
    if z == 0 {
        w.put(0, 1);
    } else if z < 1 << 6 {
        w.put(0b01, 2);
        w.put(z, 6);
    } else if z < 1 << 13 {
        w.put(0b011, 3);
        w.put(z, 13);
    } else if z < 1 << 24 {
        w.put(0b0111, 4);
        w.put(z, 24);
    } else {
        w.put(0b1111, 4);
        w.put(z, 64);
    }
}

#[inline]
fn get_class(r: &mut BitReader) -> Result<u64> {
    if !r.bit()? {
        return Ok(0);
    }
    if !r.bit()? {
        return r.get(6);
    }
    if !r.bit()? {
        return r.get(13);
    }
    if !r.bit()? {
        return r.get(24);
    }
    r.get(64)
}

fn encode_ts_dod(ts: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + ts.len() / 4);
    let mut w = BitWriter::new(&mut out);
    w.put(ts[0] as u64, 64);
    if ts.len() >= 2 {
        let mut prev_delta = ts[1].wrapping_sub(ts[0]);
        // The first delta is usually the scrape interval: code it as a plain zigzag
        // class; later points code the change of delta.
        put_class(&mut w, zigzag(prev_delta));
        for i in 2..ts.len() {
            let d = ts[i].wrapping_sub(ts[i - 1]);
            put_class(&mut w, zigzag(d.wrapping_sub(prev_delta)));
            prev_delta = d;
        }
    }
    w.finish();
    out
}

fn decode_ts_dod(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<()> {
    let mut r = BitReader::new(data);
    let mut t = r.get(64)? as i64;
    out.push(t);
    if count >= 2 {
        let mut delta = unzigzag(get_class(&mut r)?);
        t = t.wrapping_add(delta);
        out.push(t);
        for _ in 2..count {
            delta = delta.wrapping_add(unzigzag(get_class(&mut r)?));
            t = t.wrapping_add(delta);
            out.push(t);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Values: Gorilla XOR
// ---------------------------------------------------------------------------------------------
//
// first value: 64 bits. Then x = bits ^ prev:
//   0                                    x == 0
//   10 + meaningful bits                 fits the previous window (leading >= pl, trailing >= pt)
//   11 + 6 bits leading + 6 bits (len-1) + len meaningful bits

fn encode_gorilla(vals: &[f64], out: &mut Vec<u8>) {
    let mut w = BitWriter::new(out);
    let mut prev = vals[0].to_bits();
    w.put(prev, 64);
    let (mut pl, mut pt) = (u32::MAX, 0u32); // no window yet
    for v in &vals[1..] {
        let b = v.to_bits();
        let x = b ^ prev;
        prev = b;
        if x == 0 {
            w.put(0, 1);
            continue;
        }
        let lead = x.leading_zeros();
        let trail = x.trailing_zeros();
        if pl != u32::MAX && lead >= pl && trail >= pt {
            w.put(0b01, 2);
            w.put(x >> pt, 64 - pl - pt);
        } else {
            let len = 64 - lead - trail;
            w.put(0b11, 2);
            w.put(lead as u64, 6);
            w.put((len - 1) as u64, 6);
            w.put(x >> trail, len);
            pl = lead;
            pt = trail;
        }
    }
    w.finish();
}

fn decode_gorilla(data: &[u8], count: usize, out: &mut Vec<f64>) -> Result<()> {
    let mut r = BitReader::new(data);
    let mut prev = r.get(64)?;
    out.push(f64::from_bits(prev));
    let (mut pl, mut pt) = (u32::MAX, 0u32);
    for _ in 1..count {
        if r.bit()? {
            if !r.bit()? {
                if pl == u32::MAX {
                    return Err(Error::corrupt("codec: gorilla window reused before set"));
                }
                let x = r.get(64 - pl - pt)? << pt;
                prev ^= x;
            } else {
                let lead = r.get(6)? as u32;
                let len = r.get(6)? as u32 + 1;
                if lead + len > 64 {
                    return Err(Error::corrupt("codec: gorilla window out of range"));
                }
                let trail = 64 - lead - len;
                let x = r.get(len)? << trail;
                prev ^= x;
                pl = lead;
                pt = trail;
            }
        }
        out.push(f64::from_bits(prev));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Integers: order-0/1/2 deltas, zigzag, bit-packed in blocks of 64 with a 7-bit width each
// ---------------------------------------------------------------------------------------------

fn residuals(v: &[i64], order: u8) -> Vec<u64> {
    match order {
        0 => v.iter().map(|&x| zigzag(x)).collect(),
        1 => v.windows(2).map(|w| zigzag(w[1].wrapping_sub(w[0]))).collect(),
        _ => v
            .windows(3)
            .map(|w| zigzag(w[2].wrapping_sub(w[1]).wrapping_sub(w[1].wrapping_sub(w[0]))))
            .collect(),
    }
}

fn packed_bits(res: &[u64]) -> u64 {
    res.chunks(PACK_BLOCK)
        .map(|b| 7 + bits_needed(b.iter().fold(0, |a, &x| a | x)) as u64 * b.len() as u64)
        .sum()
}

fn encode_packed_ints(v: &[i64], out: &mut Vec<u8>) {
    let max_order = (v.len().saturating_sub(1)).min(2) as u8;
    let mut best: Option<(u64, u8, Vec<u64>)> = None;
    for order in 0..=max_order {
        let res = residuals(v, order);
        // the first `order` values cost up to 64 bits each in the header
        let cost = packed_bits(&res) + 64 * order as u64;
        if best.as_ref().map_or(true, |b| cost < b.0) {
            best = Some((cost, order, res));
        }
    }
    let (_, order, res) = best.expect("at least order 0");
    out.push(order);
    if order >= 1 {
        put_varint(out, zigzag(v[0]));
    }
    if order >= 2 {
        put_varint(out, zigzag(v[1].wrapping_sub(v[0])));
    }
    let mut w = BitWriter::new(out);
    for block in res.chunks(PACK_BLOCK) {
        let width = bits_needed(block.iter().fold(0, |a, &x| a | x));
        w.put(width as u64, 7);
        for &x in block {
            w.put(x, width);
        }
    }
    w.finish();
}

fn decode_packed_ints(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<()> {
    let mut pos = 0usize;
    let order = *data.first().ok_or_else(|| Error::corrupt("codec: packed ints: empty"))?;
    pos += 1;
    if order > 2 || order as usize >= count {
        return Err(Error::corrupt(format!("codec: packed ints: bad order {order}")));
    }
    let mut a = 0i64; // previous value
    let mut d = 0i64; // previous delta
    if order >= 1 {
        a = unzigzag(get_varint(data, &mut pos)?);
        out.push(a);
    }
    if order >= 2 {
        d = unzigzag(get_varint(data, &mut pos)?);
        a = a.wrapping_add(d);
        out.push(a);
    }
    let mut r = BitReader::new(&data[pos..]);
    let mut left = count - order as usize;
    while left > 0 {
        let width = r.get(7)? as u32;
        if width > 64 {
            return Err(Error::corrupt("codec: packed ints: width > 64"));
        }
        let n = left.min(PACK_BLOCK);
        for _ in 0..n {
            let x = unzigzag(r.get(width)?);
            match order {
                0 => a = x,
                1 => a = a.wrapping_add(x),
                _ => {
                    d = d.wrapping_add(x);
                    a = a.wrapping_add(d);
                }
            }
            out.push(a);
        }
        left -= n;
    }
    Ok(())
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
    let mut pos = 0usize;
    let ts_len = get_varint(data, &mut pos)?;
    let ts_end = pos
        .checked_add(usize::try_from(ts_len).unwrap_or(usize::MAX))
        .filter(|&e| e <= data.len())
        .ok_or_else(|| Error::corrupt("codec: timestamp section runs past the body"))?;
    let ts_data = &data[pos..ts_end];
    let val_data = &data[ts_end..];

    match ts_enc {
        TS_DOD_BITS => {
            ts_out.reserve(count);
            decode_ts_dod(ts_data, count, ts_out)?
        }
        TS_PCO => ts_out.extend_from_slice(&pco_decompress::<i64>(ts_data, count, "timestamps")?),
        t => return Err(Error::corrupt(format!("codec: unknown timestamp encoding {t}"))),
    }

    match val_enc {
        VAL_GORILLA => {
            vals_out.reserve(count);
            decode_gorilla(val_data, count, vals_out)
        }
        VAL_DEC_PACKED | VAL_DEC_PCO => {
            let mut pos = 0usize;
            let scale = *val_data.first().ok_or_else(|| Error::corrupt("codec: no decimal scale"))?;
            pos += 1;
            if scale as usize > MAX_SCALE {
                return Err(Error::corrupt(format!("codec: decimal scale {scale} out of range")));
            }
            let n_exc = get_varint(val_data, &mut pos)?;
            if n_exc > count as u64 {
                return Err(Error::corrupt("codec: more exceptions than points"));
            }
            let mut exceptions = Vec::with_capacity(n_exc as usize);
            let mut idx = 0u64;
            for i in 0..n_exc {
                let gap = get_varint(val_data, &mut pos)?;
                if i > 0 && gap == 0 {
                    return Err(Error::corrupt("codec: exception indexes not increasing"));
                }
                idx = idx.checked_add(gap).filter(|&x| x < count as u64).ok_or_else(|| {
                    Error::corrupt("codec: exception index out of range")
                })?;
                let raw = val_data
                    .get(pos..pos + 8)
                    .ok_or_else(|| Error::corrupt("codec: exception value truncated"))?;
                pos += 8;
                exceptions.push((idx as usize, u64::from_le_bytes(raw.try_into().unwrap())));
            }
            let rest = &val_data[pos..];
            let mantissas = if val_enc == VAL_DEC_PACKED {
                let mut m = Vec::with_capacity(count);
                decode_packed_ints(rest, count, &mut m)?;
                m
            } else {
                pco_decompress::<i64>(rest, count, "decimal values")?
            };
            let start = vals_out.len();
            vals_out.extend(mantissas.iter().map(|&m| from_mantissa(m, scale)));
            for (i, bits) in exceptions {
                vals_out[start + i] = f64::from_bits(bits);
            }
            Ok(())
        }
        VAL_PCO_F64 => {
            vals_out.extend_from_slice(&pco_decompress::<f64>(val_data, count, "values")?);
            Ok(())
        }
        v => Err(Error::corrupt(format!("codec: unknown value encoding {v}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::STALE_NAN_BITS;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn roundtrip_with(ts: &[i64], vals: &[f64], codec: u8, body: &[u8]) {
        let mut t = vec![7i64]; // pre-existing content must be kept (append semantics)
        let mut v = vec![7.5f64];
        decode(codec, body, ts.len(), &mut t, &mut v)
            .unwrap_or_else(|e| panic!("decode codec {codec:#04x}: {e}"));
        assert_eq!(t.len(), ts.len() + 1);
        assert_eq!(v.len(), vals.len() + 1);
        assert_eq!(t[0], 7);
        assert_eq!(v[0].to_bits(), 7.5f64.to_bits());
        assert_eq!(&t[1..], ts, "timestamps differ, codec {codec:#04x}");
        for (i, (a, b)) in v[1..].iter().zip(vals).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "value {i} differs ({a} vs {b}), codec {codec:#04x}");
        }
    }

    /// Round trip through `encode` and through every explicit encoding combination.
    pub(crate) fn roundtrip_all(ts: &[i64], vals: &[f64]) {
        let (codec, body) = encode(ts, vals);
        roundtrip_with(ts, vals, codec, &body);
        for ts_enc in [TS_DOD_BITS, TS_PCO] {
            for val_enc in [VAL_GORILLA, VAL_DEC_PACKED, VAL_DEC_PCO, VAL_PCO_F64] {
                let (codec, body) = encode_with(ts, vals, ts_enc, val_enc);
                if !ts.is_empty() && codec != CODEC_RAW {
                    assert_eq!(codec, (ts_enc << 4) | val_enc);
                }
                roundtrip_with(ts, vals, codec, &body);
            }
        }
    }

    fn regular_ts(n: usize, start: i64, step: i64) -> Vec<i64> {
        (0..n as i64).map(|i| start + i * step).collect()
    }

    fn specials() -> Vec<f64> {
        vec![
            f64::NAN,
            -f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::from_bits(0xfff0_0000_0000_0001), // negative signalling NaN
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1), // smallest subnormal
            -f64::from_bits(1),
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            1e300,
            -1e-300,
            0.1 + 0.2,
            9007199254740993.0,
            1.5e20,
            123.45,
        ]
    }

    #[test]
    fn codec_empty_and_single() {
        roundtrip_all(&[], &[]);
        assert_eq!(encode(&[], &[]), (CODEC_EMPTY, Vec::new()));
        roundtrip_all(&[0], &[0.0]);
        roundtrip_all(&[i64::MIN], &[f64::from_bits(STALE_NAN_BITS)]);
        roundtrip_all(&[i64::MAX], &[-0.0]);
        roundtrip_all(&[1_700_000_000_000], &[42.5]);
        for s in specials() {
            roundtrip_all(&[-5], &[s]);
        }
    }

    #[test]
    fn codec_special_floats() {
        let sp = specials();
        let ts = regular_ts(sp.len(), 1_000, 10_000);
        roundtrip_all(&ts, &sp);
        // specials embedded in realistic decimal data (exceptions path), short and long runs
        for n in [10usize, 120, 700, 3000] {
            let ts = regular_ts(n, 1_700_000_000_000, 10_000);
            let mut vals: Vec<f64> = (0..n).map(|i| ((i * 37) % 10_000) as f64 / 100.0).collect();
            for (j, s) in sp.iter().enumerate() {
                vals[(j * 7919) % n] = *s;
            }
            vals[n - 1] = f64::from_bits(STALE_NAN_BITS);
            roundtrip_all(&ts, &vals);
            // all NaN payloads / all stale
            let stale = vec![f64::from_bits(STALE_NAN_BITS); n];
            roundtrip_all(&ts, &stale);
            let neg_zero = vec![-0.0; n];
            roundtrip_all(&ts, &neg_zero);
        }
    }

    #[test]
    fn codec_extreme_timestamps() {
        let cases: Vec<Vec<i64>> = vec![
            vec![i64::MIN, i64::MAX],
            vec![i64::MIN, i64::MIN + 1, 0, i64::MAX - 1, i64::MAX],
            vec![i64::MIN, -1, 0, 1, i64::MAX],
            (0..1000).map(|i| i64::MIN + i * 3).collect(),
            (0..1000).map(|i| i64::MAX - 5000 + i * 5).collect(),
            (0..600).map(|i| -1_000_000 + i * 1_000).collect(),
            vec![-3, -2, -1],
        ];
        for ts in cases {
            let vals: Vec<f64> = (0..ts.len()).map(|i| i as f64 * 0.5).collect();
            roundtrip_all(&ts, &vals);
        }
        // huge, random gaps
        let mut rng = StdRng::seed_from_u64(11);
        for n in [2usize, 3, 64, 513, 2000] {
            let mut ts: Vec<i64> = (0..n).map(|_| rng.gen()).collect();
            ts.sort_unstable();
            ts.dedup();
            let vals: Vec<f64> = ts.iter().map(|_| rng.gen()).collect();
            roundtrip_all(&ts, &vals);
        }
    }

    #[test]
    fn codec_random_and_integer_values() {
        let mut rng = StdRng::seed_from_u64(42);
        for &n in &[2usize, 3, 63, 64, 65, 120, 511, 512, 720, 2049] {
            let ts = regular_ts(n, 1_700_000_000_000, 10_000);
            // uniformly random bit patterns (includes NaNs with payloads)
            let bits: Vec<f64> = (0..n).map(|_| f64::from_bits(rng.gen())).collect();
            roundtrip_all(&ts, &bits);
            // random full-precision floats
            let f: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() * 1000.0 - 500.0).collect();
            roundtrip_all(&ts, &f);
            // integer-valued floats, large and small, incl. beyond 2^53
            let ints: Vec<f64> = (0..n).map(|i| (rng.gen::<i64>() >> (i % 60)) as f64).collect();
            roundtrip_all(&ts, &ints);
            let counters: Vec<f64> =
                (0..n).scan(1e12, |a, _| { *a += rng.gen_range(0..100_000) as f64; Some(*a) }).collect();
            roundtrip_all(&ts, &counters);
            // huge exponents
            let huge: Vec<f64> = (0..n)
                .map(|i| if i % 2 == 0 { 1e300 * rng.gen::<f64>() } else { -1e-300 * (i as f64) })
                .collect();
            roundtrip_all(&ts, &huge);
            // decimals with mixed precision
            let dec: Vec<f64> = (0..n)
                .map(|i| rng.gen_range(-100_000i64..100_000) as f64 / [1.0, 10.0, 100.0, 1000.0][i % 4])
                .collect();
            roundtrip_all(&ts, &dec);
            // constant
            roundtrip_all(&ts, &vec![3.25; n]);
            // jittered timestamps
            let jts: Vec<i64> =
                (0..n as i64).map(|i| 1_700_000_000_000 + i * 10_000 + rng.gen_range(-4..=4)).collect();
            roundtrip_all(&jts, &dec);
        }
    }

    #[test]
    fn codec_realistic_series() {
        let data = devops_dataset(3, 1500, 5);
        for s in &data {
            for n in [1usize, 2, 120, 720, 1500] {
                roundtrip_all(&s.ts[..n], &s.vals[..n]);
            }
        }
    }

    #[test]
    fn codec_decimal_choice() {
        // cpu-like 2-decimal values must use a decimal encoding and be small
        let data = devops_dataset(1, 720, 9);
        let cpu = data.iter().find(|s| s.kind == "cpu").unwrap();
        let (codec, body) = encode(&cpu.ts[..120], &cpu.vals[..120]);
        assert_eq!(codec & 0x0f, VAL_DEC_PACKED, "{}", codec_name(codec));
        assert!(body.len() < 120 * 3, "cpu chunk of 120 points took {} bytes", body.len());
        let (codec, _) = encode(&cpu.ts, &cpu.vals);
        assert_eq!(codec, (TS_PCO << 4) | VAL_DEC_PCO, "{}", codec_name(codec));
        // random floats must not use the decimal path
        let mut rng = StdRng::seed_from_u64(1);
        let f: Vec<f64> = (0..120).map(|_| rng.gen::<f64>()).collect();
        let (codec, _) = encode(&cpu.ts[..120], &f);
        assert_eq!(codec & 0x0f, VAL_GORILLA, "{}", codec_name(codec));
        assert_eq!(choose_scale(&[1.5, 2.25, 3.0]), 2);
        assert_eq!(choose_scale(&[1.0, 2.0, 1e15]), 0);
    }

    #[test]
    fn codec_corrupt_input_is_error_not_panic() {
        let mut rng = StdRng::seed_from_u64(7);
        let data = devops_dataset(1, 1200, 3);
        let mut bodies: Vec<(u8, Vec<u8>, usize)> = Vec::new();
        for s in &data {
            for n in [1usize, 5, 120, 600] {
                for ts_enc in [TS_DOD_BITS, TS_PCO] {
                    for val_enc in [VAL_GORILLA, VAL_DEC_PACKED, VAL_DEC_PCO, VAL_PCO_F64] {
                        let (c, b) = encode_with(&s.ts[..n], &s.vals[..n], ts_enc, val_enc);
                        bodies.push((c, b, n));
                    }
                }
            }
        }
        let mut t = Vec::new();
        let mut v = Vec::new();
        let mut errors = 0usize;
        for (codec, body, n) in &bodies {
            // every truncation of the body must fail cleanly (never panic)
            for cut in 0..body.len() {
                t.clear();
                v.clear();
                if decode(*codec, &body[..cut], *n, &mut t, &mut v).is_err() {
                    errors += 1;
                    assert!(t.is_empty() && v.is_empty(), "outputs must be rolled back on error");
                }
            }
            // random byte flips: may decode to other numbers, but must not panic
            for _ in 0..40 {
                let mut g = body.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..g.len());
                    g[i] ^= 1 << rng.gen_range(0..8);
                }
                t.clear();
                v.clear();
                match decode(*codec, &g, *n, &mut t, &mut v) {
                    Ok(()) => assert_eq!((t.len(), v.len()), (*n, *n)),
                    Err(e) => assert_eq!(e.kind, crate::ErrorKind::Corrupt),
                }
            }
            // wrong counts and unknown codecs
            assert!(decode(*codec, body, 0, &mut t, &mut v).is_err());
            assert!(decode(0x77, body, *n, &mut t, &mut v).is_err());
            assert!(decode(0x35, body, *n, &mut t, &mut v).is_err());
        }
        assert!(errors > 0);
        assert!(decode(CODEC_RAW, &[0u8; 15], 1, &mut t, &mut v).is_err());
        assert!(decode(CODEC_EMPTY, &[1u8], 0, &mut t, &mut v).is_err());
        assert!(decode(CODEC_EMPTY, &[], 1, &mut t, &mut v).is_err());
    }

    // -----------------------------------------------------------------------------------------
    // Measurements (FORMAT-chunk.md). Run in release:
    //   cargo test --release -p timeless_engine codec::tests::measure -- --ignored --nocapture
    // -----------------------------------------------------------------------------------------

    fn zz_varints(vals: &[i64], order: usize) -> Vec<u8> {
        // VictoriaMetrics-style: first values raw, then zigzag varint deltas of `order`
        let mut out = Vec::new();
        let mut prev = vals.to_vec();
        for _ in 0..order {
            let d: Vec<i64> = prev.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
            put_varint(&mut out, zigzag(prev[0]));
            prev = d;
        }
        for x in prev {
            put_varint(&mut out, zigzag(x));
        }
        out
    }

    /// Approximation of VictoriaMetrics' block encoding: values as decimal mantissas with a
    /// common exponent, delta (gauges) or delta-of-delta (counters/timestamps) zigzag varints,
    /// zstd. Only the body is counted (VM's block header and index are not).
    fn vm_like(ts: &[i64], vals: &[f64]) -> usize {
        let z = |b: &[u8]| zstd::bulk::compress(b, 3).unwrap().len().min(b.len());
        let tsb = z(&zz_varints(ts, 2));
        let dec = to_decimal(vals, choose_scale(vals));
        let vb = (1..=2).map(|o| z(&zz_varints(&dec.mantissas, o))).min().unwrap();
        tsb + vb + dec.exceptions.len() * 9 + 2
    }

    #[test]
    #[ignore]
    fn measure() {
        use std::time::Instant;
        let data = devops_dataset(20, 8640, 2024);
        let total_points: usize = data.iter().map(|s| s.ts.len()).sum();
        println!("dataset: {} series, {} points", data.len(), total_points);
        type Cand = (&'static str, Box<dyn Fn(&[i64], &[f64]) -> usize>);
        let cands: Vec<Cand> = vec![
            ("auto (encode)", Box::new(|t, v| encode(t, v).1.len())),
            ("dod-bits + gorilla", Box::new(|t, v| encode_with(t, v, TS_DOD_BITS, VAL_GORILLA).1.len())),
            ("dod-bits + dec-packed", Box::new(|t, v| encode_with(t, v, TS_DOD_BITS, VAL_DEC_PACKED).1.len())),
            ("dod-bits + dec-pco", Box::new(|t, v| encode_with(t, v, TS_DOD_BITS, VAL_DEC_PCO).1.len())),
            ("pco + pco-f64", Box::new(|t, v| encode_with(t, v, TS_PCO, VAL_PCO_F64).1.len())),
            ("pco + dec-pco", Box::new(|t, v| encode_with(t, v, TS_PCO, VAL_DEC_PCO).1.len())),
            ("pco + dec-packed", Box::new(|t, v| encode_with(t, v, TS_PCO, VAL_DEC_PACKED).1.len())),
            ("VM-like (dec+delta+zstd)", Box::new(|t, v| vm_like(t, v))),
        ];
        let kinds = ["cpu", "mem", "counter", "load", "all"];
        for &n in &[120usize, 720, 8640] {
            println!("\n### chunk = {n} points: body bytes/point");
            print!("| encoding |");
            for k in kinds { print!(" {k} |"); }
            println!("\n|---|{}", "---|".repeat(kinds.len()));
            for (name, f) in &cands {
                print!("| {name} |");
                for k in kinds {
                    let (mut bytes, mut pts) = (0usize, 0usize);
                    for s in data.iter().filter(|s| k == "all" || s.kind == k) {
                        for c in 0..s.ts.len() / n {
                            let r = c * n..(c + 1) * n;
                            bytes += f(&s.ts[r.clone()], &s.vals[r]);
                            pts += n;
                        }
                    }
                    print!(" {:.3} |", bytes as f64 / pts as f64);
                }
                println!();
            }
            // timestamps alone
            let (mut dodb, mut pcob, mut vmb, mut pts) = (0, 0, 0, 0);
            for s in &data {
                for c in 0..s.ts.len() / n {
                    let t = &s.ts[c * n..(c + 1) * n];
                    dodb += encode_ts_dod(t).len();
                    pcob += pco_compress(t, DeltaSpec::TryConsecutive(2)).unwrap().len();
                    vmb += zstd::bulk::compress(&zz_varints(t, 2), 3).unwrap().len();
                    pts += n;
                }
            }
            println!("timestamps only: dod-bits {:.3}, pco {:.3}, varint-dod+zstd {:.3} bytes/point",
                dodb as f64 / pts as f64, pcob as f64 / pts as f64, vmb as f64 / pts as f64);
        }
        // whole chunk file (record headers + index + file header/trailer), via ChunkFileWriter
        for &n in &[120usize, 720, 8640] {
            let t0 = Instant::now();
            let mut w = crate::chunk::ChunkFileWriter::new();
            let (mut pts, mut body) = (0usize, 0usize);
            for (i, s) in data.iter().enumerate() {
                for c in 0..s.ts.len() / n {
                    let r = c * n..(c + 1) * n;
                    w.add(i as u64 * 1_000_003, &s.ts[r.clone()], &s.vals[r]);
                    pts += n;
                }
            }
            let (f, metas) = w.into_memory(1).unwrap();
            let el = t0.elapsed().as_secs_f64();
            body += metas.iter().map(|m| m.len as usize).sum::<usize>();
            println!("chunk file n={n}: {:.3} bytes/point total ({:.3} body), {:.1} bytes/chunk overhead, writer {:.1} M points/s",
                f.size_bytes() as f64 / pts as f64, body as f64 / pts as f64,
                (f.size_bytes() as usize - body) as f64 / metas.len() as f64, pts as f64 / el / 1e6);
        }
        // speed of the chosen encode/decode, one core
        for &n in &[120usize, 720, 8640] {
            let t0 = Instant::now();
            let mut encoded = Vec::new();
            for s in &data {
                for c in 0..s.ts.len() / n {
                    let r = c * n..(c + 1) * n;
                    encoded.push((encode(&s.ts[r.clone()], &s.vals[r]), n));
                }
            }
            let enc = t0.elapsed();
            let t1 = Instant::now();
            let (mut t, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for ((codec, body), n) in &encoded {
                t.clear();
                v.clear();
                decode(*codec, body, *n, &mut t, &mut v).unwrap();
            }
            let dec = t1.elapsed();
            let pts = encoded.len() * n;
            println!("speed n={n}: encode {:.1} M points/s, decode {:.1} M points/s",
                pts as f64 / enc.as_secs_f64() / 1e6, pts as f64 / dec.as_secs_f64() / 1e6);
        }
    }

    #[test]
    #[ignore]
    fn measure_pco_configs() {
        use pco::ModeSpec;
        use std::time::Instant;
        let data = devops_dataset(10, 8640, 2024);
        for &n in &[720usize, 8640] {
            let mut ts_chunks = Vec::new();
            let mut m_chunks = Vec::new();
            for s in &data {
                for c in 0..s.ts.len() / n {
                    let r = c * n..(c + 1) * n;
                    ts_chunks.push(s.ts[r.clone()].to_vec());
                    let v = &s.vals[r];
                    m_chunks.push(to_decimal(v, choose_scale(v)).mantissas);
                }
            }
            let pts = (ts_chunks.len() * n) as f64;
            for level in [0usize, 2, 4, 8] {
                for (dname, ts_d, v_d) in [
                    ("auto", DeltaSpec::Auto, DeltaSpec::Auto),
                    ("fixed ts2/v1", DeltaSpec::TryConsecutive(2), DeltaSpec::TryConsecutive(1)),
                ] {
                    for (mname, mode) in [("auto", ModeSpec::Auto), ("classic", ModeSpec::Classic)] {
                        let cfg = |d: &DeltaSpec| ChunkConfig::default()
                            .with_compression_level(level)
                            .with_delta_spec(d.clone())
                            .with_mode_spec(mode.clone());
                        let t0 = Instant::now();
                        let mut tb = 0;
                        for t in &ts_chunks { tb += pco_compress_cfg(t, cfg(&ts_d)).unwrap().len(); }
                        let tt = t0.elapsed().as_secs_f64();
                        let t1 = Instant::now();
                        let mut vb = 0;
                        for m in &m_chunks { vb += pco_compress_cfg(m, cfg(&v_d)).unwrap().len(); }
                        let vt = t1.elapsed().as_secs_f64();
                        println!("n={n} level={level} delta={dname} mode={mname}: ts {:.3} B/pt {:.1} M/s, mantissas {:.3} B/pt {:.1} M/s",
                            tb as f64 / pts, pts / tt / 1e6, vb as f64 / pts, pts / vt / 1e6);
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // TSBS-devops-like data, used by the tests above and by the measurements below
    // -----------------------------------------------------------------------------------------

    pub(crate) struct Series {
        pub kind: &'static str,
        pub ts: Vec<i64>,
        pub vals: Vec<f64>,
    }

    fn round_to(v: f64, decimals: i32) -> f64 {
        // Produce what a text parser would produce for a value printed with `decimals`.
        format!("{:.*}", decimals as usize, v).parse().unwrap()
    }

    /// Per host: 10 cpu percent fields (2 decimals, some 1), 5 memory byte gauges (integers),
    /// 1 memory percent, 6 disk/net monotonic counters, 3 load averages (2 decimals).
    /// 10 s interval; ~10% of scrapes are a few ms late or early.
    pub(crate) fn devops_dataset(hosts: usize, points: usize, seed: u64) -> Vec<Series> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for _ in 0..hosts {
            let start = 1_700_000_000_000i64 + rng.gen_range(0..10_000);
            let ts: Vec<i64> = (0..points as i64)
                .map(|i| {
                    let jitter = if rng.gen_bool(0.1) { rng.gen_range(-5..=5) } else { 0 };
                    start + i * 10_000 + jitter
                })
                .collect();
            for f in 0..10 {
                let decimals = if f % 3 == 0 { 1 } else { 2 };
                let mut x: f64 = rng.gen_range(0.0..100.0);
                let vals = (0..points)
                    .map(|_| {
                        x = (x + rng.gen_range(-2.0..2.0)).clamp(0.0, 100.0);
                        round_to(x, decimals)
                    })
                    .collect();
                out.push(Series { kind: "cpu", ts: ts.clone(), vals });
            }
            let total: i64 = 1i64 << rng.gen_range(33..37);
            let mut used = total / 3;
            for _ in 0..5 {
                let vals = (0..points)
                    .map(|_| {
                        used = (used + rng.gen_range(-8_000_000i64..8_000_000)).clamp(0, total);
                        used as f64
                    })
                    .collect();
                out.push(Series { kind: "mem", ts: ts.clone(), vals });
            }
            let vals = (0..points)
                .map(|_| {
                    used = (used + rng.gen_range(-8_000_000i64..8_000_000)).clamp(0, total);
                    round_to(used as f64 * 100.0 / total as f64, 2)
                })
                .collect();
            out.push(Series { kind: "mem", ts: ts.clone(), vals });
            for c in 0..6 {
                let mut acc: u64 = rng.gen_range(0..1u64 << 40);
                let rate = [100u64, 1_000, 50_000, 1_000_000, 10, 5_000_000][c];
                let vals = (0..points)
                    .map(|_| {
                        acc += rng.gen_range(0..rate);
                        acc as f64
                    })
                    .collect();
                out.push(Series { kind: "counter", ts: ts.clone(), vals });
            }
            for _ in 0..3 {
                let mut l: f64 = rng.gen_range(0.0..8.0);
                let vals = (0..points)
                    .map(|_| {
                        l = (l + rng.gen_range(-0.05..0.05)).max(0.0);
                        round_to(l, 2)
                    })
                    .collect();
                out.push(Series { kind: "load", ts: ts.clone(), vals });
            }
        }
        out
    }
}
