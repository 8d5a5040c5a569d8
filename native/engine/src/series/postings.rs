//! A compressed sorted set of series ids (one per label pair in the inverted index).
//!
//! Roaring-style: ids are split into a 48-bit key (`id >> 16`) and a 16-bit low part.
//! Each key's low parts live in a container that is either a sorted `Vec<u16>` (up to
//! [`ARRAY_MAX`] entries, 2 bytes per id) or an 8 KiB bitmap (dense ranges: ~1 bit per id in
//! range). Since ids are allocated sequentially, a series' id usually falls in the last
//! container, so inserts are appends; out-of-order inserts (recovery) cost at most an 8 KiB
//! memmove, never a move of the whole list.

/// Above this many ids an array container becomes a bitmap (where both take 8 KiB).
const ARRAY_MAX: usize = 4096;
/// Below this many ids a bitmap container goes back to an array (hysteresis).
const BITMAP_MIN: u32 = 2048;
const WORDS: usize = 1024;

#[derive(Default)]
pub(crate) struct Postings {
    conts: Vec<(u64, Container)>,
    len: u64,
}

enum Container {
    Array(Vec<u16>),
    Bitmap(Box<Bitmap>),
}

struct Bitmap {
    words: [u64; WORDS],
    count: u32,
}

impl Bitmap {
    fn from_array(a: &[u16]) -> Box<Bitmap> {
        let mut b = Box::new(Bitmap { words: [0; WORDS], count: a.len() as u32 });
        for &lo in a {
            b.words[(lo >> 6) as usize] |= 1 << (lo & 63);
        }
        b
    }

    fn to_array(&self) -> Vec<u16> {
        let mut out = Vec::with_capacity(self.count as usize);
        push_bits(&self.words, |lo| out.push(lo as u16));
        out
    }
}

#[inline]
fn push_bits(words: &[u64; WORDS], mut f: impl FnMut(u64)) {
    for (wi, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            let tz = w.trailing_zeros() as u64;
            f(((wi as u64) << 6) | tz);
            w &= w - 1;
        }
    }
}

impl Postings {
    pub(crate) fn new() -> Postings {
        Postings::default()
    }

    #[inline]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn find(&self, key: u64) -> std::result::Result<usize, usize> {
        match self.conts.last() {
            Some((k, _)) if *k == key => Ok(self.conts.len() - 1),
            Some((k, _)) if *k < key => Err(self.conts.len()),
            _ => self.conts.binary_search_by_key(&key, |c| c.0),
        }
    }

    /// Adds `id`; returns false if it was already present.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        let (key, lo) = (id >> 16, (id & 0xffff) as u16);
        let ci = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.conts.insert(i, (key, Container::Array(vec![lo])));
                self.len += 1;
                return true;
            }
        };
        let c = &mut self.conts[ci].1;
        match c {
            Container::Array(a) => {
                let pos = match a.last() {
                    Some(&last) if last < lo => a.len(),
                    _ => match a.binary_search(&lo) {
                        Ok(_) => return false,
                        Err(p) => p,
                    },
                };
                a.insert(pos, lo);
                if a.len() > ARRAY_MAX {
                    *c = Container::Bitmap(Bitmap::from_array(a));
                }
            }
            Container::Bitmap(b) => {
                let (w, bit) = ((lo >> 6) as usize, 1u64 << (lo & 63));
                if b.words[w] & bit != 0 {
                    return false;
                }
                b.words[w] |= bit;
                b.count += 1;
            }
        }
        self.len += 1;
        true
    }

    /// Removes `id`; returns false if it was absent.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let (key, lo) = (id >> 16, (id & 0xffff) as u16);
        let Ok(ci) = self.find(key) else { return false };
        let c = &mut self.conts[ci].1;
        let now_empty = match c {
            Container::Array(a) => {
                let Ok(p) = a.binary_search(&lo) else { return false };
                a.remove(p);
                if a.len() * 4 < a.capacity() {
                    a.shrink_to(a.len() * 2);
                }
                a.is_empty()
            }
            Container::Bitmap(b) => {
                let (w, bit) = ((lo >> 6) as usize, 1u64 << (lo & 63));
                if b.words[w] & bit == 0 {
                    return false;
                }
                b.words[w] &= !bit;
                b.count -= 1;
                if b.count < BITMAP_MIN {
                    *c = Container::Array(b.to_array());
                }
                false
            }
        };
        if now_empty {
            self.conts.remove(ci);
            if self.conts.len() * 4 < self.conts.capacity() {
                self.conts.shrink_to(self.conts.len() * 2);
            }
        }
        self.len -= 1;
        true
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        let (key, lo) = (id >> 16, (id & 0xffff) as u16);
        let Ok(ci) = self.find(key) else { return false };
        match &self.conts[ci].1 {
            Container::Array(a) => a.binary_search(&lo).is_ok(),
            Container::Bitmap(b) => b.words[(lo >> 6) as usize] & (1 << (lo & 63)) != 0,
        }
    }

    /// Appends all ids, ascending, to `out`.
    pub(crate) fn extend_into(&self, out: &mut Vec<u64>) {
        out.reserve(self.len as usize);
        for (key, c) in &self.conts {
            let base = key << 16;
            match c {
                Container::Array(a) => out.extend(a.iter().map(|&lo| base | lo as u64)),
                Container::Bitmap(b) => push_bits(&b.words, |lo| out.push(base | lo)),
            }
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<u64> {
        let mut v = Vec::new();
        self.extend_into(&mut v);
        v
    }

    /// Approximate heap bytes used (for stats and tests).
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut n = self.conts.capacity() * std::mem::size_of::<(u64, Container)>();
        for (_, c) in &self.conts {
            n += match c {
                Container::Array(a) => a.capacity() * 2,
                Container::Bitmap(_) => std::mem::size_of::<Bitmap>(),
            };
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    fn check(p: &Postings, model: &BTreeSet<u64>) {
        assert_eq!(p.len(), model.len() as u64);
        assert_eq!(p.to_vec(), model.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn series_postings_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut p = Postings::new();
        let mut model = BTreeSet::new();
        // Phases: dense sequential (forces bitmaps), random sparse, heavy removal
        // (forces bitmap -> array), random mixed.
        for id in 0..200_000u64 {
            if rng.gen_bool(0.7) {
                assert_eq!(p.insert(id), model.insert(id));
            }
        }
        check(&p, &model);
        assert!(p.heap_bytes() < 200_000, "dense postings should be bitmaps: {}", p.heap_bytes());
        for _ in 0..50_000 {
            let id = rng.gen_range(0..1u64 << 40);
            assert_eq!(p.insert(id), model.insert(id));
        }
        check(&p, &model);
        for id in 0..200_000u64 {
            if rng.gen_bool(0.9) {
                assert_eq!(p.remove(id), model.remove(&id));
            }
        }
        check(&p, &model);
        for _ in 0..100_000 {
            let id = if rng.gen_bool(0.5) { rng.gen_range(0..300_000) } else { rng.gen_range(0..1u64 << 40) };
            match rng.gen_range(0..3) {
                0 => assert_eq!(p.insert(id), model.insert(id)),
                1 => assert_eq!(p.remove(id), model.remove(&id)),
                _ => assert_eq!(p.contains(id), model.contains(&id)),
            }
        }
        check(&p, &model);
        for &id in model.iter().take(1000) {
            assert!(p.contains(id));
        }
        let all: Vec<u64> = model.iter().copied().collect();
        for id in all {
            assert!(p.remove(id));
        }
        assert!(p.is_empty());
        assert_eq!(p.to_vec(), Vec::<u64>::new());
        assert!(!p.remove(5));
        assert!(!p.contains(5));
        assert!(p.insert(u64::MAX));
        assert!(p.contains(u64::MAX));
        assert_eq!(p.to_vec(), vec![u64::MAX]);
    }
}
