//! Small, fast, non-cryptographic hashing used inside the series registry.
//!
//! * [`hash_label_pairs`] computes the 64-bit identity hash of a label set (cached in
//!   [`Labels`](super::Labels)); it is well mixed, so the registry's hash -> id maps use it
//!   as-is through [`IdentityBuild`].
//! * [`FastBuild`] is a `BuildHasher` for internal maps keyed by integers and interned strings
//!   (SipHash's DoS resistance buys nothing here: keys are our own symbol ids, and string keys
//!   only reach those maps on series creation, after label validation).
//!
//! The hash values are process-local: never persist them.

use std::hash::{BuildHasherDefault, Hasher};

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;

/// 64x64 -> 128 multiply, folded back to 64 bits (the wyhash mixing primitive).
#[inline]
fn folded_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Final avalanche (murmur3 fmix64).
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Streaming state shared by both hashers.
#[derive(Clone, Copy)]
pub(crate) struct Mix {
    h: u64,
}

impl Mix {
    #[inline]
    pub(crate) fn new() -> Mix {
        Mix { h: K0 }
    }

    #[inline]
    pub(crate) fn word(&mut self, w: u64) {
        self.h = folded_mul(self.h ^ w, K1);
    }

    /// Hashes `bytes` followed by its length, so that consecutive strings cannot
    /// be re-split into a colliding sequence ("ab","c" vs "a","bc").
    #[inline]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(tail));
        }
        self.word(bytes.len() as u64 ^ 0x5151_0000_0000_0000);
    }

    #[inline]
    pub(crate) fn finish(self) -> u64 {
        fmix64(self.h)
    }
}

/// The identity hash of a label set given as its (name, value) pairs in sorted order.
pub(crate) fn hash_label_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut m = Mix::new();
    for (n, v) in pairs {
        m.bytes(n.as_bytes());
        m.bytes(v.as_bytes());
    }
    m.finish()
}

/// General-purpose fast hasher for internal maps.
#[derive(Clone, Copy)]
pub(crate) struct FastHasher(Mix);

impl Default for FastHasher {
    fn default() -> Self {
        FastHasher(Mix::new())
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.bytes(bytes);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.word(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.word(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.word(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.word(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

pub(crate) type FastBuild = BuildHasherDefault<FastHasher>;

/// Pass-through hasher for maps keyed by an already well-mixed u64 (label-set hashes).
#[derive(Clone, Copy, Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are expected; stay correct for anything else.
        let mut m = Mix::new();
        m.word(self.0);
        m.bytes(bytes);
        self.0 = m.finish();
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type IdentityBuild = BuildHasherDefault<IdentityHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_hash_split_points_differ() {
        let a = hash_label_pairs([("ab", "c")].into_iter());
        let b = hash_label_pairs([("a", "bc")].into_iter());
        let c = hash_label_pairs([("a", "b"), ("c", "")].into_iter());
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        assert_eq!(a, hash_label_pairs([("ab", "c")].into_iter()));
    }

    #[test]
    fn series_hash_spreads_sequential_values() {
        // Low and high bits both vary for near-identical inputs (hashbrown uses both).
        let mut low = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        for i in 0..4096 {
            let v = format!("host_{i}");
            let h = hash_label_pairs([("hostname", v.as_str())].into_iter());
            low.insert(h & 0xfff);
            high.insert(h >> 57);
        }
        assert!(low.len() > 2000, "low bits poorly spread: {}", low.len());
        assert_eq!(high.len(), 128);
    }
}
