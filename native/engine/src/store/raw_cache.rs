//! Series ids by the raw bytes a client sent for them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;

use crate::SeriesId;

/// FxHash-style hasher for the raw-label-bytes cache.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

const RAW_CACHE_SHARDS: usize = 16;

/// Series ids by the raw bytes a client sent for them (metric + labels as given),
/// so a repeated series skips parsing, validation and sorting.
pub(super) struct RawCache {
    shards: Vec<RwLock<FastMap<Box<[u8]>, SeriesId>>>,
}

impl RawCache {
    pub fn new() -> RawCache {
        RawCache { shards: (0..RAW_CACHE_SHARDS).map(|_| RwLock::new(FastMap::default())).collect() }
    }
    fn shard(&self, key: &[u8]) -> &RwLock<FastMap<Box<[u8]>, SeriesId>> {
        let mut h = FastHasher::default();
        h.write(key);
        &self.shards[(h.finish() >> 59) as usize % RAW_CACHE_SHARDS]
    }
    pub fn get(&self, key: &[u8]) -> Option<SeriesId> {
        self.shard(key).read().unwrap_or_else(|p| p.into_inner()).get(key).copied()
    }
    pub fn insert(&self, key: &[u8], id: SeriesId) {
        let mut map = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        if map.len() > 4_000_000 {
            map.clear();
        }
        map.insert(key.into(), id);
    }
    pub fn clear(&self) {
        for s in &self.shards {
            s.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

