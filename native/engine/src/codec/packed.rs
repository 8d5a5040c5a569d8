//! Integer column for [`VAL_DEC_PACKED`](super::VAL_DEC_PACKED): order-0/1/2 deltas, zigzag,
//! bit-packed in blocks of 64 with a 7-bit width each. The encoder picks the cheapest order.

use super::bits::{bits_needed, get_varint, put_varint, unzigzag, zigzag, BitReader, BitWriter};
use crate::error::{Error, Result};

/// Values per bit-packed block.
const PACK_BLOCK: usize = 64;

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

pub(super) fn encode_packed_ints(v: &[i64], out: &mut Vec<u8>) {
    let max_order = (v.len().saturating_sub(1)).min(2) as u8;
    let mut best: Option<(u64, u8, Vec<u64>)> = None;
    for order in 0..=max_order {
        let res = residuals(v, order);
        // the first `order` values cost up to 64 bits each in the header
        let cost = packed_bits(&res) + 64 * order as u64;
        if best.as_ref().is_none_or(|b| cost < b.0) {
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

pub(super) fn decode_packed_ints(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<()> {
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
    out.reserve(left);
    let mut block = [0u64; PACK_BLOCK];
    while left > 0 {
        let width = r.get(7)? as u32;
        if width > 64 {
            return Err(Error::corrupt("codec: packed ints: width > 64"));
        }
        let n = left.min(PACK_BLOCK);
        let block = &mut block[..n];
        r.get_many(width, block)?;
        match order {
            0 => out.extend(block.iter().map(|&x| unzigzag(x))),
            1 => out.extend(block.iter().map(|&x| {
                a = a.wrapping_add(unzigzag(x));
                a
            })),
            _ => out.extend(block.iter().map(|&x| {
                d = d.wrapping_add(unzigzag(x));
                a = a.wrapping_add(d);
                a
            })),
        }
        left -= n;
    }
    Ok(())
}
