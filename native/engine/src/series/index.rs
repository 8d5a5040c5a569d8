//! The inverted index and the compact series table, behind the registry's index lock.
//!
//! Memory layout (the point of this module is to keep per-series cost small):
//!
//! * **Symbols**: every distinct label name or value string is stored once (`Arc<str>`),
//!   reference-counted by the label pairs that use it, and freed when the last goes.
//! * **Pairs**: every distinct (name, value) pair gets a `u32` pair id owning the postings of
//!   the series that carry it. A pair lives exactly as long as its postings are non-empty.
//! * **Series records**: a series is stored as its pair ids (`Box<[u32]>`, in label-name
//!   order), i.e. 4 bytes per label instead of two strings. Records live in pages of 1024
//!   slots indexed by id, so the id -> record map costs 16 bytes per id slot and no per-entry
//!   hashing; a page is freed when its last series is deleted.
//! * **Names**: name symbol -> (value symbol -> pair id), used for `=`/`=~` lookups, regex
//!   matching over one label's values, and label names/values listings.

use std::collections::HashMap;
use std::sync::Arc;

use super::hash::{hash_label_pairs, FastBuild};
use super::labels::Labels;
use super::matcher::Matcher;
use super::postings::Postings;
use crate::SeriesId;

const PAGE_BITS: u32 = 10;
const PAGE_SLOTS: usize = 1 << PAGE_BITS;
const FREE: u32 = u32::MAX;

struct SymSlot {
    s: Option<Arc<str>>,
    /// Number of live pairs using this symbol as name or value.
    refs: u32,
}

struct PairSlot {
    /// Name symbol, or FREE for a slot on the free list.
    name: u32,
    value: u32,
    postings: Postings,
}

struct Page {
    live: u32,
    slots: Box<[Option<Box<[u32]>>]>,
}

#[derive(Default)]
pub(crate) struct Index {
    syms: Vec<SymSlot>,
    sym_ids: HashMap<Arc<str>, u32, FastBuild>,
    sym_free: Vec<u32>,
    pairs: Vec<PairSlot>,
    pair_free: Vec<u32>,
    names: HashMap<u32, HashMap<u32, u32, FastBuild>, FastBuild>,
    pages: HashMap<u64, Page, FastBuild>,
    all: Postings,
}

impl Index {
    pub(crate) fn new() -> Index {
        Index::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len() as usize
    }

    #[inline]
    fn sym(&self, id: u32) -> &str {
        self.syms[id as usize].s.as_deref().expect("live symbol")
    }

    #[inline]
    fn record(&self, id: SeriesId) -> Option<&[u32]> {
        let page = self.pages.get(&(id >> PAGE_BITS))?;
        page.slots[(id as usize) & (PAGE_SLOTS - 1)].as_deref()
    }

    pub(crate) fn contains(&self, id: SeriesId) -> bool {
        self.record(id).is_some()
    }

    /// Whether series `id` is live and has exactly `labels`.
    #[inline]
    pub(crate) fn same(&self, id: SeriesId, labels: &Labels) -> bool {
        let Some(rec) = self.record(id) else { return false };
        rec.len() == labels.len()
            && rec.iter().zip(labels.iter()).all(|(&p, (n, v))| {
                let pair = &self.pairs[p as usize];
                self.sym(pair.value) == v && self.sym(pair.name) == n
            })
    }

    fn pair_strs(&self, p: u32) -> (&str, &str) {
        let pair = &self.pairs[p as usize];
        (self.sym(pair.name), self.sym(pair.value))
    }

    /// The (name, value) pairs of series `id`, sorted by name, without building a [`Labels`].
    pub(crate) fn pairs(&self, id: SeriesId) -> Option<impl Iterator<Item = (&str, &str)> + '_> {
        let rec = self.record(id)?;
        Some(rec.iter().map(|&p| self.pair_strs(p)))
    }

    pub(crate) fn labels(&self, id: SeriesId) -> Option<Labels> {
        let rec = self.record(id)?;
        Some(Labels::from_sorted_unchecked(rec.iter().map(|&p| self.pair_strs(p)), rec.len()))
    }

    /// The identity hash of series `id` (same value as `Labels::hash64`).
    pub(crate) fn hash_of(&self, id: SeriesId) -> Option<u64> {
        let rec = self.record(id)?;
        Some(hash_label_pairs(rec.iter().map(|&p| self.pair_strs(p))))
    }

    fn sym_acquire(&mut self, s: &str) -> u32 {
        match self.sym_ids.get(s) {
            Some(&id) => self.sym_ref(id),
            None => self.sym_new(s),
        }
    }

    fn sym_ref(&mut self, id: u32) -> u32 {
        self.syms[id as usize].refs += 1;
        id
    }

    /// A symbol for `s`, known not to exist yet.
    fn sym_new(&mut self, s: &str) -> u32 {
        let arc: Arc<str> = Arc::from(s);
        let slot = SymSlot { s: Some(arc.clone()), refs: 1 };
        let id = match self.sym_free.pop() {
            Some(id) => {
                self.syms[id as usize] = slot;
                id
            }
            None => {
                self.syms.push(slot);
                (self.syms.len() - 1) as u32
            }
        };
        self.sym_ids.insert(arc, id);
        id
    }

    fn sym_release(&mut self, id: u32) {
        let slot = &mut self.syms[id as usize];
        slot.refs -= 1;
        if slot.refs == 0 {
            let s = slot.s.take().expect("live symbol");
            self.sym_ids.remove(&*s);
            self.sym_free.push(id);
        }
    }

    /// The pair id for (name, value), created with its symbols when new.
    fn pair_acquire(&mut self, name: &str, value: &str) -> u32 {
        // Each symbol is looked up once: an existing pair needs both symbols, and a
        // new pair reuses whichever lookups hit (series creation is hash-lookup bound).
        let n = self.sym_ids.get(name).copied();
        let v = self.sym_ids.get(value).copied();
        if let (Some(n), Some(v)) = (n, v) {
            if let Some(&p) = self.names.get(&n).and_then(|values| values.get(&v)) {
                return p;
            }
        }
        let n = match n {
            Some(id) => self.sym_ref(id),
            None => self.sym_new(name),
        };
        let v = match v {
            Some(id) => self.sym_ref(id),
            // `value` may be the very string just added as `name`.
            None => self.sym_acquire(value),
        };
        let slot = PairSlot { name: n, value: v, postings: Postings::new() };
        let p = match self.pair_free.pop() {
            Some(p) => {
                self.pairs[p as usize] = slot;
                p
            }
            None => {
                assert!(self.pairs.len() < FREE as usize, "label pair ids exhausted");
                self.pairs.push(slot);
                (self.pairs.len() - 1) as u32
            }
        };
        self.names.entry(n).or_default().insert(v, p);
        p
    }

    /// Adds series `id`; false (and no change) if `id` is already live.
    pub(crate) fn insert(&mut self, id: SeriesId, labels: &Labels) -> bool {
        if self.contains(id) {
            return false;
        }
        let rec: Box<[u32]> = labels.iter().map(|(n, v)| self.pair_acquire(n, v)).collect();
        for &p in rec.iter() {
            self.pairs[p as usize].postings.insert(id);
        }
        self.all.insert(id);
        let page = self.pages.entry(id >> PAGE_BITS).or_insert_with(|| Page {
            live: 0,
            slots: (0..PAGE_SLOTS).map(|_| None).collect(),
        });
        page.slots[(id as usize) & (PAGE_SLOTS - 1)] = Some(rec);
        page.live += 1;
        true
    }

    /// Removes series `id`; false if it was not live.
    pub(crate) fn remove(&mut self, id: SeriesId) -> bool {
        let key = id >> PAGE_BITS;
        let Some(page) = self.pages.get_mut(&key) else { return false };
        let Some(rec) = page.slots[(id as usize) & (PAGE_SLOTS - 1)].take() else { return false };
        page.live -= 1;
        if page.live == 0 {
            self.pages.remove(&key);
        }
        for &p in rec.iter() {
            let slot = &mut self.pairs[p as usize];
            slot.postings.remove(id);
            if slot.postings.is_empty() {
                let (n, v) = (slot.name, slot.value);
                slot.name = FREE;
                slot.postings = Postings::new();
                let values = self.names.get_mut(&n).expect("name of live pair");
                values.remove(&v);
                if values.is_empty() {
                    self.names.remove(&n);
                }
                self.sym_release(n);
                self.sym_release(v);
                self.pair_free.push(p);
            }
        }
        self.all.remove(id);
        true
    }

    /// Postings of the values `v` of label `m.name` for which `m.matches(Some(v)) == want`.
    /// Sets of one label's values are disjoint (a series has one value per name).
    fn postings_for(&self, m: &Matcher, want: bool) -> Vec<&Postings> {
        let Some(n) = self.sym_ids.get(m.name.as_str()) else { return Vec::new() };
        let Some(values) = self.names.get(n) else { return Vec::new() };
        // Values accepted by the matcher's positive form, when we want exactly those and
        // they are a literal set: look them up instead of scanning all values.
        if want != m.is_negative() {
            if let Some(lits) = m.literal_set() {
                return lits
                    .iter()
                    .filter_map(|l| self.sym_ids.get(l.as_str()))
                    .filter_map(|v| values.get(v))
                    .map(|&p| &self.pairs[p as usize].postings)
                    .collect();
            }
        }
        values
            .iter()
            .filter(|(&v, _)| m.matches(Some(self.sym(v))) == want)
            .map(|(_, &p)| &self.pairs[p as usize].postings)
            .collect()
    }

    /// Ids (ascending) of live series matching all matchers; see `Registry::select`.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        // Matchers that reject the empty value select only series that have the label:
        // their set is the union of the accepted values' postings ("positive").
        // Matchers that accept the empty value select every series except those whose
        // value is rejected: subtract the rejected values' postings ("negative").
        let mut positive: Vec<(u64, Vec<&Postings>)> = Vec::new();
        let mut negative: Vec<(u64, Vec<&Postings>)> = Vec::new();
        for m in matchers {
            if m.matches(None) {
                let set = self.postings_for(m, false);
                if !set.is_empty() {
                    negative.push((total(&set), set));
                }
            } else {
                let set = self.postings_for(m, true);
                if set.is_empty() {
                    return Vec::new();
                }
                positive.push((total(&set), set));
            }
        }
        positive.sort_by_key(|s| s.0);
        let mut cands = match positive.first() {
            Some((_, set)) => union(set),
            None => self.all.to_vec(),
        };
        for (tot, set) in positive.iter().skip(1) {
            filter(&mut cands, *tot, set, true);
            if cands.is_empty() {
                return cands;
            }
        }
        // Largest exclusions first: they shrink the candidates the most.
        negative.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (tot, set) in &negative {
            filter(&mut cands, *tot, set, false);
            if cands.is_empty() {
                break;
            }
        }
        cands
    }

    /// Upper bounds of what `select(matchers)` costs, from metadata alone: no value is
    /// matched against a regex and no postings list is read (see [`SelectBound`]).
    pub(crate) fn select_bound(&self, matchers: &[Matcher]) -> SelectBound {
        let all = self.all.len();
        let mut scanned = 0u64;
        let mut sets = 0u64;
        let mut ids: Option<u64> = None;
        for m in matchers {
            let positive = !m.matches(None);
            let values = self.sym_ids.get(m.name.as_str()).and_then(|n| self.names.get(n));
            let Some(values) = values else {
                if positive {
                    // no series has the label: `select` stops here with nothing
                    return SelectBound { ids: 0, work: scanned };
                }
                continue;
            };
            // As `postings_for`: a literal set is looked up, any other matcher scans the
            // label's values and keeps a postings list per accepted value.
            let (set_len, set_ids) = match m.literal_set().filter(|_| positive != m.is_negative()) {
                Some(lits) => {
                    let found = lits.iter().filter_map(|l| self.sym_ids.get(l.as_str())).filter_map(|v| values.get(v));
                    let tot = found.map(|&p| self.pairs[p as usize].postings.len()).sum();
                    (lits.len() as u64, tot)
                }
                None => (values.len() as u64, all),
            };
            scanned += set_len;
            sets += set_len.max(1);
            if positive {
                ids = Some(ids.map_or(set_ids, |n| n.min(set_ids)));
            }
        }
        let ids = ids.unwrap_or(all);
        // the smallest positive set is unioned, then every set probed once per candidate
        SelectBound { ids, work: scanned.saturating_add(ids.saturating_mul(sets.max(1))) }
    }

    fn live_records<'a>(&'a self, among: &'a [SeriesId]) -> impl Iterator<Item = &'a [u32]> + 'a {
        among.iter().filter_map(move |&id| self.record(id))
    }

    fn sorted_strings(&self, syms: impl Iterator<Item = u32>) -> Vec<String> {
        let mut out: Vec<String> = syms.map(|s| self.sym(s).to_string()).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn label_names(&self, among: Option<&[SeriesId]>) -> Vec<String> {
        match among {
            None => self.sorted_strings(self.names.keys().copied()),
            Some(ids) => {
                let mut seen: std::collections::HashSet<u32, FastBuild> = Default::default();
                for rec in self.live_records(ids) {
                    seen.extend(rec.iter().map(|&p| self.pairs[p as usize].name));
                }
                self.sorted_strings(seen.into_iter())
            }
        }
    }

    pub(crate) fn label_values(&self, name: &str, among: Option<&[SeriesId]>) -> Vec<String> {
        let Some(&n) = self.sym_ids.get(name) else { return Vec::new() };
        let Some(values) = self.names.get(&n) else { return Vec::new() };
        match among {
            None => self.sorted_strings(values.keys().copied()),
            Some(ids) => {
                let mut seen: std::collections::HashSet<u32, FastBuild> = Default::default();
                for rec in self.live_records(ids) {
                    if let Some(p) = rec.iter().find(|&&p| self.pairs[p as usize].name == n) {
                        seen.insert(self.pairs[*p as usize].value);
                    }
                }
                self.sorted_strings(seen.into_iter())
            }
        }
    }

    /// Rough heap usage of the index structures, in bytes (excluding allocator overhead).
    pub(crate) fn approx_heap_bytes(&self) -> usize {
        let sz = std::mem::size_of::<SymSlot>() * self.syms.capacity()
            + self.sym_ids.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1)
            + self.syms.iter().filter_map(|s| s.s.as_ref()).map(|s| s.len() + 16).sum::<usize>()
            + std::mem::size_of::<PairSlot>() * self.pairs.capacity()
            + self.pairs.iter().map(|p| p.postings.heap_bytes()).sum::<usize>()
            + self.names.values().map(|v| v.capacity() * 9).sum::<usize>()
            + self.pages.capacity() * (std::mem::size_of::<(u64, Page)>() + 1)
            + self.pages.len() * PAGE_SLOTS * 16
            + self
                .pages
                .values()
                .flat_map(|p| p.slots.iter().flatten())
                .map(|r| r.len() * 4)
                .sum::<usize>()
            + self.all.heap_bytes();
        sz
    }

    /// Internal consistency check for tests: every structure agrees with the records.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut pair_users: HashMap<u32, u64> = HashMap::new();
        let mut live = 0u64;
        for (key, page) in &self.pages {
            let mut n = 0;
            for (i, slot) in page.slots.iter().enumerate() {
                if let Some(rec) = slot {
                    n += 1;
                    live += 1;
                    let id = (key << PAGE_BITS) | i as u64;
                    assert!(self.all.contains(id));
                    for &p in rec.iter() {
                        assert!(self.pairs[p as usize].postings.contains(id));
                        *pair_users.entry(p).or_default() += 1;
                    }
                }
            }
            assert_eq!(n, page.live);
            assert!(n > 0, "empty page kept");
        }
        assert_eq!(self.all.len(), live);
        let mut sym_users: HashMap<u32, u32> = HashMap::new();
        for (p, slot) in self.pairs.iter().enumerate() {
            if slot.name == FREE {
                assert!(slot.postings.is_empty());
                assert!(self.pair_free.contains(&(p as u32)));
                continue;
            }
            assert_eq!(slot.postings.len(), pair_users.get(&(p as u32)).copied().unwrap_or(0));
            assert!(!slot.postings.is_empty(), "empty pair kept");
            assert_eq!(self.names[&slot.name][&slot.value], p as u32);
            *sym_users.entry(slot.name).or_default() += 1;
            *sym_users.entry(slot.value).or_default() += 1;
        }
        for (s, slot) in self.syms.iter().enumerate() {
            match &slot.s {
                Some(text) => {
                    assert_eq!(slot.refs, sym_users[&(s as u32)]);
                    assert_eq!(self.sym_ids[&**text], s as u32);
                }
                None => assert!(!sym_users.contains_key(&(s as u32))),
            }
        }
        assert_eq!(self.sym_ids.len(), sym_users.len());
    }
}

/// What [`Index::select_bound`] promises about a `select`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectBound {
    /// At most this many ids are returned.
    pub ids: u64,
    /// At most about this many elementary steps are taken: label values looked up or
    /// matched, candidate ids unioned or probed against a postings list.
    pub work: u64,
}

fn total(set: &[&Postings]) -> u64 {
    set.iter().map(|p| p.len()).sum()
}

fn union(set: &[&Postings]) -> Vec<SeriesId> {
    let mut out = Vec::with_capacity(total(set) as usize);
    for p in set {
        p.extend_into(&mut out);
    }
    if set.len() > 1 {
        out.sort_unstable();
    }
    out
}

/// Keeps the candidates that are (`keep_present`) or are not in the union of `set`.
fn filter(cands: &mut Vec<SeriesId>, tot: u64, set: &[&Postings], keep_present: bool) {
    // Probing costs ~|cands| * |set| lookups; materializing costs ~tot (plus a sort).
    if (cands.len() as u64).saturating_mul(set.len() as u64) <= tot.saturating_mul(2) {
        cands.retain(|&id| set.iter().any(|p| p.contains(id)) == keep_present);
    } else {
        let other = union(set);
        let mut j = 0;
        cands.retain(|&id| {
            while j < other.len() && other[j] < id {
                j += 1;
            }
            (j < other.len() && other[j] == id) == keep_present
        });
    }
}
