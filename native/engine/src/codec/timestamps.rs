//! Timestamp encoding [`TS_DOD_BITS`](super::TS_DOD_BITS): delta-of-delta bit stream.
//!
//! first ts: 64 raw bits; first delta (if n >= 2) and then every delta-of-delta: zigzag,
//! prefix-coded. All arithmetic wraps, so any i64 sequence round-trips.
//!
//! prefix classes for a zigzag value z:
//!
//! ```text
//!   0                  z == 0
//!   10    + 6 bits     z < 2^6
//!   110   + 13 bits    z < 2^13
//!   1110  + 24 bits    z < 2^24
//!   1111  + 64 bits    anything
//! ```

use super::bits::{unzigzag, zigzag, BitReader, BitWriter};
use crate::error::Result;

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

pub(super) fn encode_ts_dod(ts: &[i64]) -> Vec<u8> {
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

pub(super) fn decode_ts_dod(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<()> {
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
