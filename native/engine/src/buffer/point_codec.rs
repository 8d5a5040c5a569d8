//! Streaming encoding of one head series' in-order points (layout in FORMAT.md, "Head
//! series encoding").
//!
//! Timestamps: the first is kept outside the stream; every later one is a zigzag
//! delta-of-delta in a prefix class. Values: decimal mantissas (`value = m / 10^scale`) coded
//! as the zigzag change of mantissa, with an escape that switches the scale or stores the raw
//! f64 bits (NaN, ±Inf, -0.0, values that are no short decimal). Each coder is a small state
//! machine used the same way by the writer and the reader.

use crate::codec::{unzigzag, zigzag};
use super::bitstream::{BitReader, BitStream};
use crate::Timestamp;

/// Payload widths of the classes shared by both columns: class `c` is written as `c` one bits
/// and a zero, then `SMALL_BITS[c]` bits (class 0 means zero and has no payload).
const SMALL_BITS: [u32; 4] = [0, 7, 14, 28];

/// Write `z` in the smallest class 0..=3; false when it needs more than 28 bits.
#[inline(always)]
fn put_small(s: &mut BitStream, z: u64) -> bool {
    // Prefix and payload in one write: LSB-first, so the prefix goes in the low bits.
    if z == 0 {
        s.put(0, 1);
    } else if z < 1 << 7 {
        s.put(0b01 | z << 2, 2 + 7);
    } else if z < 1 << 14 {
        s.put(0b011 | z << 3, 3 + 14);
    } else if z < 1 << 28 {
        s.put(0b0111 | z << 4, 4 + 28);
    } else {
        return false;
    }
    true
}

/// Delta-of-delta timestamps: class 4 (`1111`) carries the full 64-bit zigzag.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimestampCoder {
    last: Timestamp,
    delta: i64,
}

impl TimestampCoder {
    /// State after the first timestamp, which is not written to the stream.
    pub(super) fn new(first: Timestamp) -> Self {
        TimestampCoder { last: first, delta: 0 }
    }

    #[inline]
    pub(super) fn encode(&mut self, s: &mut BitStream, ts: Timestamp) {
        let delta = ts.wrapping_sub(self.last);
        let z = zigzag(delta.wrapping_sub(self.delta));
        if !put_small(s, z) {
            s.put(0b1111, 4);
            s.put(z, 64);
        }
        self.last = ts;
        self.delta = delta;
    }

    #[inline]
    pub(super) fn decode(&mut self, r: &mut BitReader) -> Timestamp {
        let class = r.ones(4) as usize;
        let z = if class < 4 { r.get(SMALL_BITS[class]) } else { r.get(64) };
        self.delta = self.delta.wrapping_add(unzigzag(z));
        self.last = self.last.wrapping_add(self.delta);
        self.last
    }

    /// The last timestamp encoded or decoded.
    pub(super) fn last(&self) -> Timestamp {
        self.last
    }
}

/// Largest decimal scale tried; 10^18 is exact in f64.
const MAX_SCALE: u32 = 18;
/// Escape code for a raw f64 (scales use 0..=MAX_SCALE).
const RAW: u64 = 31;
/// |mantissa| <= 2^53 (rounding may reach the limit), so `m as f64` is exact and changes of
/// mantissa fit 56 zigzag bits.
const MANTISSA_LIMIT: f64 = 9_007_199_254_740_992.0;
const WIDE_BITS: u32 = 56;
const POW10: [f64; MAX_SCALE as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];
/// After this many raw values in a row, look for a new scale only every 16th value (the search
/// tries up to 19 scales, which would dominate the append cost of a non-decimal series).
const RAW_RUN_BEFORE_BACKOFF: u32 = 3;

/// The value `m / 10^scale`; the encoder checks this reproduces the written bits exactly.
#[inline]
fn decimal(m: i64, scale: u32) -> f64 {
    if scale == 0 {
        m as f64
    } else {
        m as f64 / POW10[scale as usize]
    }
}

/// `Some(m)` when `decimal(m, scale)` is bit for bit `v`.
#[inline]
fn mantissa_at(v: f64, scale: u32) -> Option<i64> {
    let x = v * POW10[scale as usize];
    if !(x.abs() < MANTISSA_LIMIT) {
        return None; // NaN, infinities, too many digits
    }
    // Round half away from zero with a cast (f64::round is a libm call without SSE4.1);
    // any rounding works because the result is verified.
    let m = if x >= 0.0 { (x + 0.5) as i64 } else { (x - 0.5) as i64 };
    (decimal(m, scale).to_bits() == v.to_bits()).then_some(m)
}

/// Values: class 0..=3 = zigzag change of mantissa at the current scale, `11110` + 56 bits =
/// a wider change, `11111` + 5-bit code = escape: code 0..=18 switches to that scale and
/// carries the zigzag mantissa in 56 bits; code 31 carries the raw 64 f64 bits (scale and
/// mantissa unchanged).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ValueCoder {
    scale: u32,
    /// Mantissa of the last decimal value.
    mantissa: i64,
    /// Raw values written in a row (encoder only; does not affect decoding). Non-zero
    /// exactly when the last value written was raw.
    raw_run: u32,
}

impl ValueCoder {
    #[inline]
    pub(super) fn encode(&mut self, s: &mut BitStream, v: f64) {
        if let Some(m) = mantissa_at(v, self.scale) {
            let z = zigzag(m.wrapping_sub(self.mantissa));
            if !put_small(s, z) {
                s.put(0b01111, 5);
                s.put(z, WIDE_BITS);
            }
            self.mantissa = m;
            self.raw_run = 0;
        } else {
            self.encode_escape(s, v);
        }
    }

    #[cold]
    fn encode_escape(&mut self, s: &mut BitStream, v: f64) {
        s.put(0b11111, 5);
        let search = self.raw_run < RAW_RUN_BEFORE_BACKOFF || self.raw_run % 16 == 0;
        let found = if search {
            (0..=MAX_SCALE).find_map(|k| mantissa_at(v, k).map(|m| (k, m)))
        } else {
            None
        };
        match found {
            Some((k, m)) => {
                s.put(k as u64, 5);
                s.put(zigzag(m), WIDE_BITS);
                self.scale = k;
                self.mantissa = m;
                self.raw_run = 0;
            }
            None => {
                s.put(RAW, 5);
                s.put(v.to_bits(), 64);
                self.raw_run = self.raw_run.saturating_add(1);
            }
        }
    }

    /// The last value this encoder wrote to `s`: the current decimal, or the raw bits that
    /// end the stream.
    pub(super) fn last_written(&self, s: &BitStream) -> f64 {
        if self.raw_run > 0 {
            f64::from_bits(s.reader_at(s.len_bits() - 64).get(64))
        } else {
            decimal(self.mantissa, self.scale)
        }
    }

    #[inline]
    pub(super) fn decode(&mut self, r: &mut BitReader) -> f64 {
        let class = r.ones(5) as usize;
        if class < 4 {
            self.mantissa = self.mantissa.wrapping_add(unzigzag(r.get(SMALL_BITS[class])));
        } else if class == 4 {
            self.mantissa = self.mantissa.wrapping_add(unzigzag(r.get(WIDE_BITS)));
        } else {
            let code = r.get(5);
            if code == RAW {
                return f64::from_bits(r.get(64));
            }
            self.scale = code as u32;
            self.mantissa = unzigzag(r.get(WIDE_BITS));
        }
        decimal(self.mantissa, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(vals: &[f64]) -> usize {
        let mut s = BitStream::default();
        let mut enc = ValueCoder::default();
        for &v in vals {
            enc.encode(&mut s, v);
            assert_eq!(enc.last_written(&s).to_bits(), v.to_bits(), "last {v:?}");
        }
        let mut r = s.reader();
        let mut dec = ValueCoder::default();
        for &v in vals {
            assert_eq!(dec.decode(&mut r).to_bits(), v.to_bits(), "{v:?}");
        }
        s.heap_bytes()
    }

    #[test]
    fn decimals_special_floats_and_raw_values_round_trip_bit_exactly() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut vals = vec![
            0.0, -0.0, 0.1, 0.3, 0.1 + 0.2, f64::NAN, stale, f64::INFINITY, f64::NEG_INFINITY,
            -0.0, 1e-300, f64::MIN_POSITIVE, f64::MAX, f64::MIN, 9_007_199_254_740_993.0,
            -9_007_199_254_740_992.0, 9_007_199_254_740_991.0, -1.5, 123456.789, 1e18, 1e-18,
            5e-324, -f64::NAN, 42.0, 42.0, 42.5,
        ];
        // Long runs of non-decimals exercise the search back-off.
        vals.extend((1..100).map(|i| 1.0 / (i as f64 * 3.0)));
        vals.extend((0..50).map(|i| i as f64 * 0.25));
        round_trip(&vals);
    }

    #[test]
    fn small_decimal_steps_cost_few_bits() {
        let vals: Vec<f64> = (0..1000).map(|i| ((i % 37) as f64 * 10.0 + 0.5).round() / 10.0 + 40.0).collect();
        let bytes = round_trip(&vals);
        assert!(bytes < 1000 * 2, "{bytes} bytes for 1000 small steps");
    }

    #[test]
    fn timestamps_with_any_jumps_round_trip() {
        let ts = [
            i64::MIN, i64::MIN + 1, -5, 0, 10_000, 20_003, 30_000, 40_000, 1 << 40,
            (1 << 40) + 1, i64::MAX - 1, i64::MAX,
        ];
        let mut s = BitStream::default();
        let mut enc = TimestampCoder::new(ts[0]);
        for &t in &ts[1..] {
            enc.encode(&mut s, t);
        }
        let mut r = s.reader();
        let mut dec = TimestampCoder::new(ts[0]);
        for &t in &ts[1..] {
            assert_eq!(dec.decode(&mut r), t);
        }
    }
}
