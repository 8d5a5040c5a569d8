//! Value encodings [`VAL_DEC_PACKED`](super::VAL_DEC_PACKED),
//! [`VAL_DEC_PCO`](super::VAL_DEC_PCO) and [`VAL_DEC_PCO32`](super::VAL_DEC_PCO32): values as
//! decimal mantissas (value = m / 10^scale) with one scale per chunk; values that are not
//! decimals at that scale are stored raw as exceptions.
//!
//! Value section: scale (1 byte), exception count (varint), per exception the index gap
//! (varint) and the 8 raw LE bytes, then the mantissas: packed ints ([`super::packed`]), a
//! pco i64 file, or a pco i32 file when every mantissa fits ([`super::pcodec`]).

use super::bits::{get_varint, put_varint};
use super::packed::{decode_packed_ints, encode_packed_ints};
use super::pcodec::{pco_compress, pco_decompress_scratch};
use super::{VAL_DEC_PACKED, VAL_DEC_PCO, VAL_DEC_PCO32};
use crate::error::{Error, Result};
use pco::DeltaSpec;

/// Largest decimal scale tried (value = mantissa / 10^scale).
const MAX_SCALE: usize = 18;
/// Mantissas must stay below 2^53 so `m as f64` is exact.
const MANTISSA_LIMIT: f64 = 9_007_199_254_740_992.0;
const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// `Some(m)` when `(m as f64) / 10^scale` reproduces `v` bit for bit.
#[inline]
fn mantissa_at(v: f64, scale: usize) -> Option<i64> {
    let m = (v * POW10[scale]).round();
    if m.is_nan() || m.abs() >= MANTISSA_LIMIT {
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

/// Integers of magnitude below this convert by [`small_to_f64`].
const SMALL_LIMIT: u64 = 1 << 51;

/// `m as f64` for `|m| < 2^51` by integer addition into the mantissa of 2^52 + 2^51
/// (where the unit in the last place is 1) and one float subtraction: unlike the
/// `i64 -> f64` instruction, this vectorizes on every x86-64.
#[inline(always)]
fn small_to_f64(m: i64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 2^52 + 2^51
    f64::from_bits(m.wrapping_add(MAGIC.to_bits() as i64) as u64) - MAGIC
}

/// Append `from_mantissa(m, scale)` for every mantissa, in a loop the compiler
/// vectorizes when every mantissa is below 2^51 (always, for real measurements).
fn mantissas_to_f64(ms: &[i64], scale: u8, out: &mut Vec<f64>) {
    let start = out.len();
    out.reserve(ms.len());
    let spare = &mut out.spare_capacity_mut()[..ms.len()];
    let small = ms.iter().fold(0u64, |acc, &m| acc | m.unsigned_abs()) < SMALL_LIMIT;
    let p = POW10[scale as usize];
    match (small, scale) {
        (true, 0) => spare.iter_mut().zip(ms).for_each(|(o, &m)| {
            o.write(small_to_f64(m));
        }),
        (true, _) => spare.iter_mut().zip(ms).for_each(|(o, &m)| {
            o.write(small_to_f64(m) / p);
        }),
        (false, _) => spare.iter_mut().zip(ms).for_each(|(o, &m)| {
            o.write(from_mantissa(m, scale));
        }),
    }
    // Safety: the first ms.len() slots of the spare capacity were written above.
    unsafe { out.set_len(start + ms.len()) };
}

/// [`mantissas_to_f64`] of i32 mantissas: `m as f64` is exact and vectorizes on every
/// x86-64 for i32, so no range check is needed; the same values bit for bit as
/// `from_mantissa(m as i64, scale)`.
fn narrow_mantissas_to_f64(ms: &[i32], scale: u8, out: &mut Vec<f64>) {
    let start = out.len();
    out.reserve(ms.len());
    let spare = &mut out.spare_capacity_mut()[..ms.len()];
    let p = POW10[scale as usize];
    if scale == 0 {
        spare.iter_mut().zip(ms).for_each(|(o, &m)| {
            o.write(m as f64);
        });
    } else {
        spare.iter_mut().zip(ms).for_each(|(o, &m)| {
            o.write(m as f64 / p);
        });
    }
    // Safety: the first ms.len() slots of the spare capacity were written above.
    unsafe { out.set_len(start + ms.len()) };
}

/// Smallest scale at which `v` is an exact decimal.
pub(super) fn min_scale(v: f64) -> Option<usize> {
    (0..=MAX_SCALE).find(|&k| mantissa_at(v, k).is_some())
}

/// Pick the chunk's common scale: each extra digit costs ~log2(10) bits on every value,
/// each value that does not fit costs ~9 bytes as an exception.
pub(super) fn choose_scale(vals: &[f64]) -> u8 {
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
    for (k, &h) in hist[..=MAX_SCALE].iter().enumerate() {
        above -= h;
        let cost = n * 3.33 * k as f64 + above as f64 * 72.0;
        if cost < best.0 {
            best = (cost, k as u8);
        }
    }
    best.1
}

pub(super) struct Decimal {
    pub(super) scale: u8,
    pub(super) mantissas: Vec<i64>,
    /// (index, raw bits) of values that are not decimals at `scale`.
    pub(super) exceptions: Vec<(usize, u64)>,
}

pub(super) fn to_decimal(vals: &[f64], scale: u8) -> Decimal {
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

/// Append the value section for `vals` and return its encoding: `VAL_DEC_PACKED` when
/// asked for, else (`VAL_DEC_PCO` or `VAL_DEC_PCO32` asked) `VAL_DEC_PCO32` when every
/// mantissa fits in an i32 and `VAL_DEC_PCO` otherwise. `None` if pco fails (the caller
/// falls back to raw).
pub(super) fn encode_decimal(vals: &[f64], val_enc: u8, out: &mut Vec<u8>) -> Option<u8> {
    let dec = to_decimal(vals, choose_scale(vals));
    out.push(dec.scale);
    put_varint(out, dec.exceptions.len() as u64);
    let mut prev = 0usize;
    for &(idx, bits) in &dec.exceptions {
        put_varint(out, (idx - prev) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        prev = idx;
    }
    if val_enc == VAL_DEC_PACKED {
        encode_packed_ints(&dec.mantissas, out);
        return Some(VAL_DEC_PACKED);
    }
    let narrow: Option<Vec<i32>> = dec.mantissas.iter().map(|&m| i32::try_from(m).ok()).collect();
    match narrow {
        Some(narrow) => {
            out.extend_from_slice(&pco_compress(&narrow, DeltaSpec::TryConsecutive(1))?);
            Some(VAL_DEC_PCO32)
        }
        None => {
            out.extend_from_slice(&pco_compress(&dec.mantissas, DeltaSpec::TryConsecutive(1))?);
            Some(VAL_DEC_PCO)
        }
    }
}

/// The scale, the exceptions and the mantissa bytes of a value section written by
/// [`encode_decimal`].
#[allow(clippy::type_complexity)]
fn parse_decimal(val_data: &[u8], count: usize) -> Result<(u8, Vec<(usize, u64)>, &[u8])> {
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
    Ok((scale, exceptions, &val_data[pos..]))
}

/// A chunk's decoded mantissas, in the type they were stored in.
enum Mantissas<'a> {
    Wide(&'a [i64]),
    Narrow(&'a [i32]),
}

impl Mantissas<'_> {
    fn len(&self) -> usize {
        match self {
            Mantissas::Wide(m) => m.len(),
            Mantissas::Narrow(m) => m.len(),
        }
    }
}

/// `from_mantissa` of the mantissas at the `wanted` indexes, into `out` at the same indexes.
fn convert_wanted<N: Copy + Into<i64>>(ms: &[N], wanted: &[u32], scale: u8, out: &mut [f64]) {
    for &w in wanted {
        out[w as usize] = from_mantissa(ms[w as usize].into(), scale);
    }
}

/// A scratch buffer this large or larger (bytes) is dropped after use rather than kept.
const SCRATCH_KEEP_BYTES: usize = 512 * 1024;

/// Runs `fill` then `f` on a per-thread scratch buffer, given back afterwards unless it
/// grew past [`SCRATCH_KEEP_BYTES`].
fn with_scratch<N, T>(
    cell: &std::cell::RefCell<Vec<N>>,
    fill: impl FnOnce(&mut Vec<N>) -> Result<()>,
    f: impl FnOnce(&[N]) -> T,
) -> Result<T> {
    let mut m = cell.borrow_mut();
    fill(&mut m)?;
    let out = f(&m);
    if m.capacity() * std::mem::size_of::<N>() > SCRATCH_KEEP_BYTES {
        *m = Vec::new();
    }
    Ok(out)
}

thread_local! {
    // The mantissas go through a per-thread scratch buffer: a query decodes thousands of
    // chunks, and a fresh vector each time is an allocation plus page faults.
    static MANTISSAS: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
    static NARROW_MANTISSAS: std::cell::RefCell<Vec<i32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The mantissas of a value section into a per-thread scratch buffer, handed to `f`.
fn with_mantissas<T>(rest: &[u8], val_enc: u8, count: usize, f: impl FnOnce(Mantissas) -> T) -> Result<T> {
    if val_enc == VAL_DEC_PCO32 {
        return NARROW_MANTISSAS.with(|cell| {
            with_scratch(cell, |m| pco_decompress_scratch::<i32>(rest, count, "decimal values", m), |m| f(Mantissas::Narrow(m)))
        });
    }
    MANTISSAS.with(|cell| {
        let fill = |m: &mut Vec<i64>| {
            if val_enc == VAL_DEC_PACKED {
                m.clear();
                decode_packed_ints(rest, count, m)
            } else {
                debug_assert_eq!(val_enc, VAL_DEC_PCO);
                pco_decompress_scratch::<i64>(rest, count, "decimal values", m)
            }
        };
        with_scratch(cell, fill, |m| f(Mantissas::Wide(m)))
    })
}

/// Decode a value section written by [`encode_decimal`], appending `count` values.
pub(super) fn decode_decimal(
    val_data: &[u8],
    val_enc: u8,
    count: usize,
    vals_out: &mut Vec<f64>,
) -> Result<()> {
    let (scale, exceptions, rest) = parse_decimal(val_data, count)?;
    with_mantissas(rest, val_enc, count, |m| {
        let start = vals_out.len();
        match m {
            Mantissas::Wide(m) => mantissas_to_f64(m, scale, vals_out),
            Mantissas::Narrow(m) => narrow_mantissas_to_f64(m, scale, vals_out),
        }
        for &(i, bits) in &exceptions {
            vals_out[start + i] = f64::from_bits(bits);
        }
    })
}

/// [`decode_decimal`] of the sorted indexes `wanted` only, into `out` (see
/// `codec::decode_values_at`): the mantissas are converted only where wanted, and not
/// decoded at all without `need_values` (a value that is not an exception is a decimal,
/// never a staleness marker).
pub(super) fn decode_decimal_at(
    val_data: &[u8],
    val_enc: u8,
    count: usize,
    wanted: &[u32],
    need_values: bool,
    out: &mut [f64],
) -> Result<()> {
    let (scale, exceptions, rest) = parse_decimal(val_data, count)?;
    if need_values {
        with_mantissas(rest, val_enc, count, |m| {
            if m.len() != count {
                return Err(Error::corrupt("codec: decimal values: wrong mantissa count"));
            }
            match m {
                Mantissas::Wide(m) => convert_wanted(m, wanted, scale, out),
                Mantissas::Narrow(m) => convert_wanted(m, wanted, scale, out),
            }
            Ok(())
        })??;
    } else {
        for &w in wanted {
            out[w as usize] = 0.0;
        }
    }
    // Exceptions at the wanted indexes (both sorted).
    let mut w = 0usize;
    for &(i, bits) in &exceptions {
        w += wanted[w..].partition_point(|&x| (x as usize) < i);
        if w == wanted.len() {
            break;
        }
        if wanted[w] as usize == i {
            out[i] = f64::from_bits(bits);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_mantissas_convert_exactly() {
        let mut ms: Vec<i64> = vec![0, 1, -1, 7, -7, 123_456_789, (1 << 51) - 1, -(1 << 51) + 1];
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..10_000 {
            ms.push((next() >> 13) as i64 - (1 << 50));
        }
        let big: Vec<i64> = ms.iter().copied().chain([(1 << 53) - 1, -(1 << 52)]).collect();
        for scale in 0..=MAX_SCALE as u8 {
            for set in [&ms, &big] {
                let mut out = vec![42.0];
                mantissas_to_f64(set, scale, &mut out);
                assert_eq!(out[0], 42.0);
                for (i, &m) in set.iter().enumerate() {
                    assert_eq!(out[i + 1].to_bits(), from_mantissa(m, scale).to_bits(), "m {m} scale {scale}");
                }
            }
        }
    }

    #[test]
    fn codec_choose_scale() {
        assert_eq!(choose_scale(&[1.5, 2.25, 3.0]), 2);
        assert_eq!(choose_scale(&[1.0, 2.0, 1e15]), 0);
    }
}
