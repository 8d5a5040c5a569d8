//! Bit-level primitives shared by the bit-stream encodings: an LSB-first bit writer and
//! reader, LEB128 varints and zigzag mapping.

use crate::error::{Error, Result};

/// LSB-first bit writer.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32, // bits in acc, always < 64 between calls
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    #[inline]
    pub(super) fn put(&mut self, v: u64, bits: u32) {
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

    pub(super) fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// LSB-first bit reader over a byte slice; reading past the end is an error.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize, // in bits
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    #[inline]
    pub(super) fn get(&mut self, bits: u32) -> Result<u64> {
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

    /// `out.len()` values of `bits` bits each: [`get`](Self::get) in a loop, with the
    /// bounds checked once and each value taken by one unaligned 8-byte load (the hot
    /// loop of bit-packed blocks).
    pub(super) fn get_many(&mut self, bits: u32, out: &mut [u64]) -> Result<()> {
        if bits > 64 || self.pos + bits as usize * out.len() > self.data.len() * 8 {
            return Err(Error::corrupt("codec: bit stream truncated"));
        }
        if bits == 0 {
            out.fill(0);
            return Ok(());
        }
        if bits > 56 {
            // shift (< 8) + bits may pass 64: the two-word path
            for o in out.iter_mut() {
                *o = self.get(bits)?;
            }
            return Ok(());
        }
        let mask = (1u64 << bits) - 1;
        for o in out.iter_mut() {
            let byte = self.pos >> 3;
            let word = if byte + 8 <= self.data.len() {
                u64::from_le_bytes(self.data[byte..byte + 8].try_into().unwrap())
            } else {
                let mut buf = [0u8; 8];
                buf[..self.data.len() - byte].copy_from_slice(&self.data[byte..]);
                u64::from_le_bytes(buf)
            };
            *o = (word >> (self.pos & 7)) & mask;
            self.pos += bits as usize;
        }
        Ok(())
    }

    #[inline]
    pub(super) fn bit(&mut self) -> Result<bool> {
        Ok(self.get(1)? == 1)
    }
}

/// Signed to unsigned so that small magnitudes stay small (0, -1, 1, -2 -> 0, 1, 2, 3).
#[inline(always)]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline(always)]
pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(data: &[u8], pos: &mut usize) -> Result<u64> {
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

pub(super) fn bits_needed(u: u64) -> u32 {
    64 - u.leading_zeros()
}
