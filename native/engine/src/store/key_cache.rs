//! Series ids by the bytes a client sent for them, in two exact levels, for the
//! embedded write path:
//!
//! - a *label set* is the client's label pairs as raw bytes (in the order the client
//!   gave them, names and values unparsed); each distinct byte string gets a number,
//!   never reused, so a batch can look its label set up once and reuse the number
//!   for every metric of that set;
//! - a *series* is `(label set number, metric name bytes)`: a short key.
//!
//! Both levels compare keys in full on a hit, so a hash collision can never map a
//! sample to another series. An entry is only added for a series whose labels were
//! parsed and validated from exactly those bytes, so a hit needs no validation.
//!
//! A batch holds one [`KeyCacheReader`] (one shared lock for the whole batch, not
//! one per sample, so concurrent writers do not bounce a lock's cache line). The
//! cache is cleared when series are deleted; an insert that read the cache before a
//! clear (an older *epoch*) is dropped, so a deleted series never comes back into it.

use std::sync::{RwLock, RwLockReadGuard};

use hashbrown::HashTable;

use super::raw_cache::hash_bytes;
use crate::SeriesId;

/// Cached series beyond this many clear the cache (the registry still has them all).
const MAX_SERIES: usize = 4 << 20;

struct SetEntry {
    hash: u64,
    raw: Box<[u8]>,
    no: u64,
}

/// A series entry fills one cache line: metric names up to `INLINE` bytes (almost
/// all of them) are stored in it, so a probe costs one memory access, not two.
#[repr(align(64))]
struct SeriesEntry {
    hash: u64,
    set: u64,
    id: SeriesId,
    metric: MetricBytes,
}

const INLINE: usize = 38;

enum MetricBytes {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl MetricBytes {
    fn new(bytes: &[u8]) -> MetricBytes {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            MetricBytes::Inline(bytes.len() as u8, inline)
        } else {
            MetricBytes::Heap(bytes.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            MetricBytes::Inline(len, bytes) => &bytes[..*len as usize],
            MetricBytes::Heap(bytes) => bytes,
        }
    }
}

#[derive(Default)]
struct Tables {
    sets: HashTable<SetEntry>,
    series: HashTable<SeriesEntry>,
    /// Next label set number (never reset, so a stale number never matches).
    next_set: u64,
    /// Bumped by every clear.
    epoch: u64,
}

fn series_hash(set: u64, metric: &[u8]) -> u64 {
    hash_bytes(metric) ^ set.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

impl Tables {
    fn set_no(&self, h: u64, raw: &[u8]) -> Option<u64> {
        self.sets.find(h, |e| e.hash == h && &*e.raw == raw).map(|e| e.no)
    }

    fn series_id(&self, h: u64, set: u64, metric: &[u8]) -> Option<SeriesId> {
        self.series.find(h, |e| e.hash == h && e.set == set && e.metric.as_slice() == metric).map(|e| e.id)
    }
}

/// The two-level write-path cache (see the module doc).
#[derive(Default)]
pub struct KeyCache {
    tables: RwLock<Tables>,
}

/// Shared access to the cache for the length of one batch.
pub struct KeyCacheReader<'a> {
    tables: RwLockReadGuard<'a, Tables>,
}

impl KeyCacheReader<'_> {
    /// The epoch this reader saw; pass it to [`KeyCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.tables.epoch
    }

    /// The number of a label set by its raw bytes, if it is known.
    pub fn label_set(&self, raw: &[u8]) -> Option<u64> {
        self.tables.set_no(hash_bytes(raw), raw)
    }

    /// The series of a metric in a known label set, if it is known.
    pub fn series(&self, set: u64, metric: &[u8]) -> Option<SeriesId> {
        self.tables.series_id(series_hash(set, metric), set, metric)
    }
}

/// One series to remember: the raw label bytes and metric bytes it was resolved from.
pub struct KeyedSeries<'a> {
    pub labels_raw: &'a [u8],
    pub metric: &'a [u8],
    pub id: SeriesId,
}

impl KeyCache {
    pub fn new() -> KeyCache {
        KeyCache::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reader(&self) -> KeyCacheReader<'_> {
        KeyCacheReader { tables: self.tables.read().unwrap_or_else(|p| p.into_inner()) }
    }

    /// Remember series resolved by a batch that read the cache at `epoch` (dropped
    /// if the cache was cleared since). The label bytes must be exactly those the
    /// series' labels were parsed and validated from.
    pub fn insert<'a>(&self, epoch: u64, series: impl IntoIterator<Item = KeyedSeries<'a>>) {
        let mut t = self.write();
        if t.epoch != epoch {
            return;
        }
        for s in series {
            if t.series.len() >= MAX_SERIES {
                clear_tables(&mut t);
                return;
            }
            let hs = hash_bytes(s.labels_raw);
            let set = match t.set_no(hs, s.labels_raw) {
                Some(no) => no,
                None => {
                    let no = t.next_set;
                    t.next_set += 1;
                    t.sets.insert_unique(hs, SetEntry { hash: hs, raw: s.labels_raw.into(), no }, |e| e.hash);
                    no
                }
            };
            let h = series_hash(set, s.metric);
            match t.series.find_mut(h, |e| e.hash == h && e.set == set && e.metric.as_slice() == s.metric) {
                Some(e) => e.id = s.id,
                None => {
                    t.series.insert_unique(h, SeriesEntry { hash: h, set, metric: MetricBytes::new(s.metric), id: s.id }, |e| e.hash);
                }
            }
        }
    }

    /// Forget everything (series were deleted).
    pub fn clear(&self) {
        clear_tables(&mut self.write());
    }

    /// Cached series count.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.reader().tables.series.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn clear_tables(t: &mut Tables) {
    t.sets = HashTable::new();
    t.series = HashTable::new();
    t.epoch += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed<'a>(labels_raw: &'a [u8], metric: &'a [u8], id: SeriesId) -> KeyedSeries<'a> {
        KeyedSeries { labels_raw, metric, id }
    }

    #[test]
    fn two_levels_exact() {
        let cache = KeyCache::new();
        let epoch = cache.reader().epoch();
        cache.insert(epoch, [keyed(b"host=a", b"cpu", 1), keyed(b"host=a", b"mem", 2), keyed(b"host=b", b"cpu", 3)]);
        let r = cache.reader();
        let a = r.label_set(b"host=a").unwrap();
        let b = r.label_set(b"host=b").unwrap();
        assert_ne!(a, b);
        assert_eq!(r.label_set(b"host=c"), None);
        assert_eq!(r.series(a, b"cpu"), Some(1));
        assert_eq!(r.series(a, b"mem"), Some(2));
        assert_eq!(r.series(b, b"cpu"), Some(3));
        assert_eq!(r.series(b, b"mem"), None);
        assert_eq!(r.series(a, b"cp"), None);
        assert_eq!(r.series(a, b"cpuu"), None);
    }

    #[test]
    fn many_sets_and_metrics_never_mix() {
        let cache = KeyCache::new();
        let epoch = cache.reader().epoch();
        let raw: Vec<Vec<u8>> = (0..300u32).map(|s| format!("h{s}{}", "x".repeat((s % 17) as usize)).into_bytes()).collect();
        // Short names (stored in the entry) and long ones (stored apart).
        let metrics: Vec<Vec<u8>> = (0..40u32).map(|m| format!("m{m}{}", "_".repeat(m as usize)).into_bytes()).collect();
        cache.insert(
            epoch,
            raw.iter().enumerate().flat_map(|(s, r)| {
                metrics.iter().enumerate().map(move |(m, name)| keyed(r, name, (s * 1000 + m) as u64))
            }),
        );
        assert_eq!(cache.len(), 300 * 40);
        let r = cache.reader();
        for (s, rb) in raw.iter().enumerate() {
            let no = r.label_set(rb).unwrap();
            for (m, name) in metrics.iter().enumerate() {
                assert_eq!(r.series(no, name), Some((s * 1000 + m) as u64));
            }
        }
    }

    #[test]
    fn clear_drops_everything_and_stale_inserts() {
        let cache = KeyCache::new();
        let old = cache.reader().epoch();
        cache.insert(old, [keyed(b"l", b"cpu", 1)]);
        let old_set = cache.reader().label_set(b"l").unwrap();
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.reader().label_set(b"l"), None);
        // A batch that read the cache before the clear cannot put its ids back.
        cache.insert(old, [keyed(b"l", b"cpu", 1)]);
        assert!(cache.is_empty());
        let now = cache.reader().epoch();
        assert_ne!(now, old);
        cache.insert(now, [keyed(b"l", b"cpu", 5)]);
        let r = cache.reader();
        let set = r.label_set(b"l").unwrap();
        assert_ne!(set, old_set, "label set numbers are never reused");
        assert_eq!(r.series(old_set, b"cpu"), None);
        assert_eq!(r.series(set, b"cpu"), Some(5));
    }

    #[test]
    fn a_series_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<SeriesEntry>(), 64);
    }

    #[test]
    fn insert_overwrites() {
        let cache = KeyCache::new();
        let e = cache.reader().epoch();
        cache.insert(e, [keyed(b"l", b"cpu", 1)]);
        cache.insert(e, [keyed(b"l", b"cpu", 2)]);
        {
            let r = cache.reader();
            assert_eq!(r.series(r.label_set(b"l").unwrap(), b"cpu"), Some(2));
        }
        assert_eq!(cache.len(), 1);
    }
}
