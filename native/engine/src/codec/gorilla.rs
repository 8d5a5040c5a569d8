//! Value encoding [`VAL_GORILLA`](super::VAL_GORILLA): Gorilla XOR bit stream of the f64 bit
//! patterns.
//!
//! first value: 64 bits. Then x = bits ^ prev:
//!
//! ```text
//!   0                                    x == 0
//!   10 + meaningful bits                 fits the previous window (leading >= pl, trailing >= pt)
//!   11 + 6 bits leading + 6 bits (len-1) + len meaningful bits
//! ```

use super::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};

pub(super) fn encode_gorilla(vals: &[f64], out: &mut Vec<u8>) {
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

pub(super) fn decode_gorilla(data: &[u8], count: usize, out: &mut Vec<f64>) -> Result<()> {
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
