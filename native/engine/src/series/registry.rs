//! The series registry: label set <-> stable id, with an inverted index for matchers.
//!
//! ## Locking
//!
//! * `shards[k]`: label-set hash -> id, for the hashes whose shard bits are `k`
//!   ([`SHARDS`] shards, each an `RwLock`, cache-line padded). Resolving an existing series
//!   takes one shard's read lock.
//! * `index`: one `RwLock<Index>` holding the strings, the postings and the series records.
//!   Read-locked to verify a hash hit (compare the stored labels) and by queries;
//!   write-locked only to add or delete series.
//!
//! Lock order is always shard -> index (never the reverse, never two shards), so there is
//! no deadlock. A new series is created while holding its shard's write lock: concurrent
//! resolvers of the same label set wait for it, so `on_create` runs exactly once per series
//! and before anyone else can see the id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::hash::IdentityBuild;
use super::index::{Index, SelectBound};
use super::labels::Labels;
use super::matcher::Matcher;
use crate::error::{Error, Result};
use crate::SeriesId;

/// Number of hash shards (a power of two).
pub const SHARDS: usize = 64;
/// The first id handed out by a fresh registry; 0 is never a series id.
pub const FIRST_ID: SeriesId = 1;

#[repr(align(128))]
struct Padded<T>(T);

#[derive(Default)]
struct Shard {
    /// hash -> id of the first series with that hash.
    by_hash: HashMap<u64, SeriesId, IdentityBuild>,
    /// hash -> further ids with the same 64-bit hash (only on collisions, so ~always empty).
    conflicts: HashMap<u64, Vec<SeriesId>, IdentityBuild>,
}

impl Shard {
    #[inline]
    fn find(&self, idx: &Index, labels: &Labels) -> Option<SeriesId> {
        self.find_hashed(labels.hash64(), idx, labels)
    }

    #[inline]
    fn find_hashed(&self, h: u64, idx: &Index, labels: &Labels) -> Option<SeriesId> {
        let &id = self.by_hash.get(&h)?;
        if idx.same(id, labels) {
            return Some(id);
        }
        self.conflicts.get(&h)?.iter().copied().find(|&id| idx.same(id, labels))
    }

    fn add(&mut self, h: u64, id: SeriesId) {
        match self.by_hash.entry(h) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.conflicts.entry(h).or_default().push(id);
            }
        }
    }

    fn remove(&mut self, h: u64, id: SeriesId) {
        if self.by_hash.get(&h) == Some(&id) {
            match self.conflicts.get_mut(&h) {
                Some(list) => {
                    let next = list.pop().expect("conflict lists are never empty");
                    if list.is_empty() {
                        self.conflicts.remove(&h);
                    }
                    self.by_hash.insert(h, next);
                }
                None => {
                    self.by_hash.remove(&h);
                }
            }
        } else if let Some(list) = self.conflicts.get_mut(&h) {
            list.retain(|&x| x != id);
            if list.is_empty() {
                self.conflicts.remove(&h);
            }
        }
    }
}

/// The in-memory series registry. `Send + Sync`; share it behind an `Arc`.
pub struct Registry {
    shards: Box<[Padded<RwLock<Shard>>]>,
    index: RwLock<Index>,
    next: AtomicU64,
}

// Poisoning: a panic inside `on_create` happens before any registry state changes, so the
// data behind a poisoned lock is consistent; keep going instead of cascading panics.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

#[inline]
fn shard_of(h: u64) -> usize {
    // Middle bits: hashbrown uses the low bits (bucket) and the top 7 (control byte).
    ((h >> 40) as usize) & (SHARDS - 1)
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Padded(RwLock::new(Shard::default()))).collect(),
            index: RwLock::new(Index::new()),
            next: AtomicU64::new(FIRST_ID),
        }
    }

    #[inline]
    fn shard(&self, h: u64) -> &RwLock<Shard> {
        &self.shards[shard_of(h)].0
    }

    /// Get the id of an existing series, or create it. A new id is allocated (ids are never
    /// reused, even after delete), then `on_create(id, &labels)` is called before the series
    /// becomes visible to any other caller. If `on_create` fails nothing is created and its
    /// error is returned (the allocated id is skipped, not reused).
    ///
    /// `on_create` runs under the series' shard write lock: it must not call back into this
    /// registry (deadlock), and should be quick (it delays resolves of ~1/64 of all series).
    pub fn resolve_with(
        &self,
        labels: &Labels,
        on_create: impl FnOnce(SeriesId, &Labels) -> Result<()>,
    ) -> Result<SeriesId> {
        let lock = self.shard(labels.hash64());
        {
            let shard = read(lock);
            if let Some(id) = shard.find(&read(&self.index), labels) {
                return Ok(id);
            }
        }
        let mut shard = write(lock);
        if let Some(id) = shard.find(&read(&self.index), labels) {
            return Ok(id);
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        on_create(id, labels)?;
        if !write(&self.index).insert(id, labels) {
            return Err(Error::internal(format!(
                "series id {id} allocated for {labels} is already registered (insert_known raced with resolve_with?)"
            )));
        }
        shard.add(labels.hash64(), id);
        Ok(id)
    }

    /// Lookup only.
    pub fn lookup(&self, labels: &Labels) -> Option<SeriesId> {
        let shard = read(self.shard(labels.hash64()));
        let idx = read(&self.index);
        shard.find(&idx, labels)
    }

    /// Recovery: insert a known series with its id, and keep `next_id` above it.
    /// Idempotent for the same (id, labels). `Err(Corrupt)` when the id is 0 or `u64::MAX`, when the id is
    /// live with other labels, or when the labels are live under another id (replay deletions before re-creations).
    pub fn insert_known(&self, id: SeriesId, labels: Labels) -> Result<()> {
        if id < FIRST_ID || id == u64::MAX {
            return Err(Error::corrupt(format!("series {labels}: invalid series id {id}")));
        }
        let h = labels.hash64();
        let mut shard = write(self.shard(h));
        let mut idx = write(&self.index);
        if let Some(existing) = shard.find(&idx, &labels) {
            if existing == id {
                return Ok(());
            }
            return Err(Error::corrupt(format!(
                "series {labels} recovered as id {id} but already registered as id {existing}"
            )));
        }
        if let Some(other) = idx.labels(id) {
            return Err(Error::corrupt(format!(
                "series id {id} recovered for {labels} but already registered for {other}"
            )));
        }
        self.next.fetch_max(id + 1, Ordering::SeqCst);
        idx.insert(id, &labels);
        shard.add(h, id);
        Ok(())
    }

    /// Recovery: make every future id at least `at_least` (never lowers it). Use it with the
    /// ids of series that were deleted before a restart (or a persisted high-water mark):
    /// `insert_known` only sees live series, so without this an id of a deleted series
    /// above every live one could be handed out again.
    pub fn bump_next_id(&self, at_least: SeriesId) {
        self.next.fetch_max(at_least, Ordering::SeqCst);
    }

    pub fn get(&self, id: SeriesId) -> Option<Labels> {
        read(&self.index).labels(id)
    }

    /// `f` over the (name, value) pairs of a live series, sorted by name, under the
    /// index's read lock: for callers that copy the labels into their own form and
    /// would throw a [`Labels`] away.
    pub fn with_pairs<T>(&self, id: SeriesId, f: impl FnOnce(&mut dyn Iterator<Item = (&str, &str)>) -> T) -> Option<T> {
        let idx = read(&self.index);
        let mut pairs = idx.pairs(id)?;
        Some(f(&mut pairs))
    }

    /// Whether a series is live (no label set is built).
    pub fn contains(&self, id: SeriesId) -> bool {
        read(&self.index).contains(id)
    }

    /// `keep(i)` for each position of `ids` whose series is live, under one lock.
    pub fn live_mask(&self, ids: &[SeriesId]) -> Vec<bool> {
        let idx = read(&self.index);
        ids.iter().map(|&id| idx.contains(id)).collect()
    }

    /// Ids (ascending) of all live series matching all matchers, computed from postings.
    /// Positive matchers (which reject the empty value) are intersected smallest first
    /// (`=` and literal-alternation `=~` are direct postings lookups; other regexes test the
    /// values of their one label name); matchers that accept the empty value subtract the
    /// postings of the values they reject. No matchers = all series.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        read(&self.index).select(matchers)
    }

    /// Upper bounds of the ids `select(matchers)` returns and of the work it does,
    /// from the index's metadata alone (cheap: no regex is run, no postings read).
    pub fn select_bound(&self, matchers: &[Matcher]) -> SelectBound {
        read(&self.index).select_bound(matchers)
    }

    /// Removes series (ids are never reused). Returns how many of `ids` were live.
    pub fn delete(&self, ids: &[SeriesId]) -> usize {
        let mut work: Vec<(usize, SeriesId, u64)> = {
            let idx = read(&self.index);
            ids.iter().filter_map(|&id| idx.hash_of(id).map(|h| (shard_of(h), id, h))).collect()
        };
        work.sort_unstable();
        work.dedup_by_key(|w| w.1);
        let mut removed = 0;
        for group in work.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = write(&self.shards[group[0].0].0);
            let mut idx = write(&self.index);
            for &(_, id, h) in group {
                if idx.remove(id) {
                    shard.remove(h, id);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Number of live series.
    pub fn len(&self) -> usize {
        read(&self.index).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id the next new series will get (every id ever used is below it).
    pub fn next_id(&self) -> SeriesId {
        self.next.load(Ordering::SeqCst)
    }

    /// Sorted distinct label names (including `__name__`), of all series (from the index)
    /// or of the given live series.
    pub fn label_names(&self, among: Option<&[SeriesId]>) -> Vec<String> {
        read(&self.index).label_names(among)
    }

    /// Sorted distinct values of label `name`.
    pub fn label_values(&self, name: &str, among: Option<&[SeriesId]>) -> Vec<String> {
        read(&self.index).label_values(name, among)
    }

    /// Sorted distinct metric names.
    pub fn metric_names(&self, among: Option<&[SeriesId]>) -> Vec<String> {
        self.label_values(super::labels::METRIC_NAME, among)
    }

    /// Rough heap bytes held by the index (strings, postings, records; not the hash shards,
    /// not allocator overhead). For diagnostics only.
    pub fn approx_index_bytes(&self) -> usize {
        read(&self.index).approx_heap_bytes()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let idx = read(&self.index);
        idx.check_invariants();
        let mut n = 0;
        for (k, s) in self.shards.iter().enumerate() {
            let s = read(&s.0);
            for (&h, &id) in &s.by_hash {
                assert_eq!(shard_of(h), k);
                assert_eq!(idx.hash_of(id), Some(h));
                n += 1;
            }
            for (h, list) in &s.conflicts {
                assert!(!list.is_empty() && s.by_hash.contains_key(h));
                n += list.len();
            }
        }
        assert_eq!(n, idx.len());
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
