//! Append-only bit stream of a head series: LSB-first, kept as 64-bit words plus a partly
//! filled word, growing by a quarter (not doubling) so a buffer wastes little capacity.
//! An empty stream holds no heap memory.

/// Words allocated at the first full word.
const FIRST_WORDS: usize = 4;

/// An append-only LSB-first bit stream (32 bytes inline).
#[derive(Debug, Default)]
pub(super) struct BitStream {
    /// Allocated words (the capacity); the first `full` are complete.
    words: Box<[u64]>,
    /// The word being filled; its low `used` bits are valid, the rest are zero.
    acc: u64,
    full: u32,
    /// Bits used in `acc`, always < 64 between calls.
    used: u32,
}

impl BitStream {
    /// Append the low `bits` bits of `v`; `v` must not have higher bits set (`bits <= 64`).
    #[inline(always)]
    pub(super) fn put(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= 64 && (bits == 64 || v >> bits == 0));
        if bits == 0 {
            return;
        }
        self.acc |= v << self.used;
        let total = self.used + bits;
        if total >= 64 {
            let full = self.acc;
            self.push_word(full);
            self.acc = if self.used == 0 { 0 } else { v >> (64 - self.used) };
            self.used = total - 64;
        } else {
            self.used = total;
        }
    }

    #[inline]
    fn push_word(&mut self, w: u64) {
        let i = self.full as usize;
        if i == self.words.len() {
            self.grow();
        }
        self.words[i] = w;
        self.full += 1;
    }

    /// Grow by a quarter (at least `FIRST_WORDS`): a new exact-size allocation, so the slack
    /// stays below 25% instead of the up to 50% of doubling.
    #[cold]
    fn grow(&mut self) {
        let len = self.words.len();
        let cap = len + (len / 4).max(FIRST_WORDS);
        assert!(cap <= u32::MAX as usize, "head series stream over 32 GiB");
        let mut words = Vec::with_capacity(cap);
        words.extend_from_slice(&self.words);
        words.resize(cap, 0);
        self.words = words.into_boxed_slice();
    }

    /// Bits written.
    pub(super) fn len_bits(&self) -> usize {
        self.full as usize * 64 + self.used as usize
    }

    /// Heap bytes held (capacity, not length).
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// A reader starting at bit `pos` (at most [`Self::len_bits`]).
    pub(super) fn reader_at(&self, pos: usize) -> BitReader<'_> {
        debug_assert!(pos <= self.len_bits());
        BitReader { words: &self.words[..self.full as usize], tail: self.acc, pos }
    }

    /// A reader from the first bit.
    #[cfg(test)]
    pub(super) fn reader(&self) -> BitReader<'_> {
        self.reader_at(0)
    }
}

/// Reads back what a [`BitStream`] holds. The stream is the engine's own memory, so reads
/// are not bounds-checked against the written length (callers read exactly what they wrote).
pub(super) struct BitReader<'a> {
    words: &'a [u64],
    tail: u64,
    pos: usize,
}

impl BitReader<'_> {
    #[inline]
    fn word(&self, i: usize) -> u64 {
        match self.words.get(i) {
            Some(&w) => w,
            None => self.tail,
        }
    }

    /// The next `bits` bits (`bits <= 64`).
    #[inline]
    pub(super) fn get(&mut self, bits: u32) -> u64 {
        let i = self.pos / 64;
        let off = (self.pos % 64) as u32;
        let mut v = self.word(i) >> off;
        if off + bits > 64 {
            v |= self.word(i + 1) << (64 - off);
        }
        self.pos += bits as usize;
        if bits < 64 {
            v & ((1u64 << bits) - 1)
        } else {
            v
        }
    }

    /// Number of consecutive 1 bits read, up to `max` (the terminating 0 is consumed).
    #[inline]
    pub(super) fn ones(&mut self, max: u32) -> u32 {
        let mut n = 0;
        while n < max && self.get(1) == 1 {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_every_width_round_trip_across_word_boundaries() {
        let mut s = BitStream::default();
        let mut fields = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000u32 {
            x = x.rotate_left(17).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ i as u64;
            let bits = (x % 65) as u32;
            let v = if bits == 64 { x } else { x & ((1u64 << bits) - 1) };
            s.put(v, bits);
            fields.push((v, bits));
        }
        let mut r = s.reader();
        for &(v, bits) in &fields {
            assert_eq!(r.get(bits), v, "width {bits}");
        }
    }

    #[test]
    fn grows_by_a_quarter_not_by_doubling() {
        let mut s = BitStream::default();
        for _ in 0..1000 {
            s.put(u64::MAX, 64);
        }
        assert!(s.heap_bytes() <= 1000 * 8 * 5 / 4 + 64, "{}", s.heap_bytes());
        assert_eq!(s.len_bits(), 64_000);
    }
}
