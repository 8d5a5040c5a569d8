//! Series ids by the raw bytes a client sent for them (metric + labels as given,
//! or an ingest format's raw series text), so a repeated series skips parsing,
//! validation and sorting. The key is hashed once; the hash picks the shard and
//! is the table hash, and keys are compared in full on a hit.

use std::sync::RwLock;

use hashbrown::HashTable;

use crate::SeriesId;

const SHARDS: usize = 16;
/// A shard this full is cleared (the registry still has every series).
const MAX_PER_SHARD: usize = 1 << 20;

struct Entry {
    hash: u64,
    key: Box<[u8]>,
    id: SeriesId,
}

/// FxHash-style multiplicative hash over 8-byte words.
pub(super) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    }
    // Final mix so the high bits (shard choice) depend on every word.
    h ^ (h >> 29)
}

pub(super) struct RawCache {
    shards: Vec<RwLock<HashTable<Entry>>>,
}

impl RawCache {
    pub fn new() -> RawCache {
        RawCache { shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect() }
    }

    fn shard(&self, h: u64) -> &RwLock<HashTable<Entry>> {
        &self.shards[(h >> 60) as usize % SHARDS]
    }

    pub fn get(&self, key: &[u8]) -> Option<SeriesId> {
        let h = hash_bytes(key);
        let table = self.shard(h).read().unwrap_or_else(|p| p.into_inner());
        table.find(h, |e| e.hash == h && &*e.key == key).map(|e| e.id)
    }

    pub fn insert(&self, key: &[u8], id: SeriesId) {
        let h = hash_bytes(key);
        let mut table = self.shard(h).write().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_PER_SHARD {
            table.clear();
        }
        match table.find_mut(h, |e| e.hash == h && &*e.key == key) {
            Some(e) => e.id = id,
            None => {
                table.insert_unique(h, Entry { hash: h, key: key.into(), id }, |e| e.hash);
            }
        }
    }

    pub fn clear(&self) {
        for s in &self.shards {
            s.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_insert_overwrite_clear() {
        let cache = RawCache::new();
        assert_eq!(cache.get(b"cpu\xffhost\xfea\xff"), None);
        cache.insert(b"cpu\xffhost\xfea\xff", 7);
        cache.insert(b"cpu\xffhost\xfeb\xff", 8);
        assert_eq!(cache.get(b"cpu\xffhost\xfea\xff"), Some(7));
        assert_eq!(cache.get(b"cpu\xffhost\xfeb\xff"), Some(8));
        cache.insert(b"cpu\xffhost\xfea\xff", 9);
        assert_eq!(cache.get(b"cpu\xffhost\xfea\xff"), Some(9));
        cache.clear();
        assert_eq!(cache.get(b"cpu\xffhost\xfeb\xff"), None);
    }

    #[test]
    fn many_keys_of_every_length() {
        let cache = RawCache::new();
        for i in 0..5000u64 {
            let key = format!("k{i}{}", "x".repeat((i % 23) as usize));
            cache.insert(key.as_bytes(), i);
        }
        for i in 0..5000u64 {
            let key = format!("k{i}{}", "x".repeat((i % 23) as usize));
            assert_eq!(cache.get(key.as_bytes()), Some(i));
        }
    }
}
