//! Write path NIFs.
//!
//! A batch is decoded and validated whole before anything is written: a bad
//! entry refuses the batch with `{:error, {:bad_input, "entry N: ..."}}` and
//! nothing of it is stored (no series is created either).
//!
//! Labeled entries find their series through the engine's key cache
//! (`store/key_cache.rs`) by the bytes the client sent: each distinct labels term
//! of a batch is read once into raw bytes (`push_raw_labels`: no term_to_binary,
//! no parsing) and looked up as a label set; each entry then looks up its metric
//! name in that set, a short exact key. Only a miss parses and validates the
//! labels and resolves them in the registry.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use rustler::sys::ErlNifTerm;
use rustler::{Atom, Binary, NifResult, ResourceArc, Term};
use timeless_engine::series::Labels;
use timeless_engine::store::{now_ms, KeyCacheReader, KeyedSeries, Store};
use timeless_engine::SeriesId;

use crate::convert::{
    bad_input, decode_timestamp, decode_value, engine_err, for_each_label, push_raw_labels, push_text, text, for_each_entry,
};
use crate::{atoms, StoreRes};

const NOT_A_LABELS_TERM: &str = "labels must be a map or a list of {name, value}";
const LABELED_SHAPE: &str = "expected {metric, labels, value} or {metric, labels, value, timestamp}";

/// Validated labels from the terms (only on a cache miss).
fn labels_of<'a>(store: &Store, metric: Term<'a>, labels: Term<'a>) -> Result<Labels, String> {
    let metric = text(metric).ok_or("metric name must be a string")?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut bad = None;
    let ok = for_each_label(labels, |k, v| match (text(k), text(v)) {
        (Some(k), Some(v)) => {
            pairs.push((k, v));
            true
        }
        (None, _) => {
            bad = Some("label names must be strings");
            false
        }
        (_, None) => {
            bad = Some("label values must be strings");
            false
        }
    });
    if !ok {
        return Err(bad.unwrap_or(NOT_A_LABELS_TERM).into());
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    store.labels(&metric, &pairs).map_err(|e| e.message)
}

/// The key-cache bytes of one `(metric, labels)` pair: the metric's text and the
/// raw label bytes. `Ok(false)` when the labels hold something other than text
/// (left to `labels_of` to name); `Err` when the terms are of the wrong kind.
fn series_bytes(metric: Term, labels: Term, metric_out: &mut Vec<u8>, labels_out: &mut Vec<u8>) -> Result<bool, &'static str> {
    metric_out.clear();
    if !push_text(metric, metric_out) {
        return Err("metric name must be a string");
    }
    if !(labels.is_map() || labels.is_list()) {
        return Err(NOT_A_LABELS_TERM);
    }
    labels_out.clear();
    Ok(push_raw_labels(labels, labels_out))
}

/// Resolve one `(metric, labels)` pair, creating the series if needed.
fn resolve_terms<'a>(store: &Store, metric: Term<'a>, labels: Term<'a>) -> NifResult<SeriesId> {
    let (mut metric_b, mut labels_b) = (Vec::with_capacity(32), Vec::with_capacity(256));
    let raw_ok = series_bytes(metric, labels, &mut metric_b, &mut labels_b).map_err(bad_input)?;
    let epoch = {
        let keys = store.series_keys();
        if let Some(id) = raw_ok.then(|| cached(&keys, &labels_b, &metric_b)).flatten() {
            return Ok(id);
        }
        keys.epoch()
    };
    let parsed = labels_of(store, metric, labels).map_err(bad_input)?;
    let id = store.resolve(&parsed).map_err(engine_err)?;
    if raw_ok {
        store.remember_series_keys(epoch, [KeyedSeries { labels_raw: &labels_b, metric: &metric_b, id }]);
    }
    Ok(id)
}

fn cached(keys: &KeyCacheReader, labels_raw: &[u8], metric: &[u8]) -> Option<SeriesId> {
    keys.label_set(labels_raw).and_then(|set| keys.series(set, metric))
}

/// `resolve(store, metric, labels) -> id`
#[rustler::nif]
fn resolve<'a>(res: ResourceArc<StoreRes>, metric: Term<'a>, labels: Term<'a>) -> NifResult<u64> {
    resolve_terms(&res.store, metric, labels)
}

/// Hashes a term's word (the identity of a term within one call).
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, w: usize) {
        self.write_u64(w as u64);
    }
}

type ByTerm<V> = HashMap<ErlNifTerm, V, BuildHasherDefault<WordHasher>>;

/// A labels term met in this batch.
struct LocalSet {
    /// Its raw bytes in `LabeledBatch::raw`; None if it holds something other than text.
    raw: Option<Range<usize>>,
    /// Its key-cache label set, if the cache knows it.
    no: Option<u64>,
}

/// A series not in the key cache yet, resolved after the whole batch is decoded.
struct Pending {
    set: usize,
    metric: Box<[u8]>,
    labels: Labels,
}

/// The decoding state of one labeled batch.
struct LabeledBatch<'s, 'a> {
    store: &'s Store,
    keys: KeyCacheReader<'s>,
    now: i64,
    unit_ms: i64,
    ids: Vec<SeriesId>,
    ts: Vec<i64>,
    vals: Vec<f64>,
    /// Raw bytes of every labels term met (ranges in `LocalSet::raw`).
    raw: Vec<u8>,
    sets: Vec<LocalSet>,
    /// Labels terms met, by identity: within one NIF call a term does not move and
    /// is immutable, and batches usually share one labels term among the metrics
    /// of a target, so each is read once per batch.
    set_of_term: ByTerm<usize>,
    /// The labels term of the previous entry and its set. A batch copied between
    /// processes (a message) no longer shares one labels term among entries, but
    /// consecutive entries usually carry equal ones: one `=:=` comparison then
    /// replaces reading the term.
    last_labels: Option<(Term<'a>, usize)>,
    metric: Vec<u8>,
    pending: Vec<Pending>,
    pending_of: HashMap<(usize, Box<[u8]>), usize>,
    /// (entry index, pending series) to fill in once resolved.
    fixups: Vec<(usize, usize)>,
}

impl<'s, 'a> LabeledBatch<'s, 'a> {
    fn new(store: &'s Store, unit_ms: i64) -> Self {
        LabeledBatch {
            store,
            keys: store.series_keys(),
            now: now_ms(),
            unit_ms,
            ids: Vec::new(),
            ts: Vec::new(),
            vals: Vec::new(),
            raw: Vec::new(),
            sets: Vec::new(),
            set_of_term: ByTerm::default(),
            last_labels: None,
            metric: Vec::with_capacity(64),
            pending: Vec::new(),
            pending_of: HashMap::new(),
            fixups: Vec::new(),
        }
    }

    /// The local label set of a labels term (read and looked up on first sight).
    fn label_set(&mut self, labels: Term<'a>) -> Result<usize, String> {
        let word = labels.as_c_arg();
        if let Some((last, set)) = self.last_labels {
            if last.as_c_arg() == word {
                return Ok(set);
            }
        }
        let set = match self.set_of_term.get(&word) {
            Some(&set) => set,
            // Equal to the previous labels term (Term's == is enif_is_identical): same
            // label set, since equal terms have equal texts.
            None if self.last_labels.is_some_and(|(last, _)| last == labels) => self.last_labels.unwrap().1,
            None => {
                if !(labels.is_map() || labels.is_list()) {
                    return Err(NOT_A_LABELS_TERM.into());
                }
                let start = self.raw.len();
                let local = if push_raw_labels(labels, &mut self.raw) {
                    let raw = start..self.raw.len();
                    LocalSet { no: self.keys.label_set(&self.raw[raw.clone()]), raw: Some(raw) }
                } else {
                    self.raw.truncate(start);
                    LocalSet { raw: None, no: None }
                };
                self.sets.push(local);
                self.set_of_term.insert(word, self.sets.len() - 1);
                self.sets.len() - 1
            }
        };
        self.last_labels = Some((labels, set));
        Ok(set)
    }

    fn entry(&mut self, i: usize, e: &[Term<'a>]) -> Result<(), String> {
        if e.len() != 3 && e.len() != 4 {
            return Err(LABELED_SHAPE.into());
        }
        self.metric.clear();
        if !push_text(e[0], &mut self.metric) {
            return Err("metric name must be a string".into());
        }
        let set = self.label_set(e[1])?;
        let v = decode_value(e[2]).ok_or("value is not a number")?;
        let t = if e.len() == 4 { decode_timestamp(e[3], self.unit_ms)? } else { self.now };
        let id = match self.sets[set].no.and_then(|no| self.keys.series(no, &self.metric)) {
            Some(id) => id,
            None => {
                let key = (set, Box::<[u8]>::from(&self.metric[..]));
                let p = match self.pending_of.get(&key) {
                    Some(&p) => p,
                    None => {
                        let labels = labels_of(self.store, e[0], e[1])?;
                        self.pending.push(Pending { set, metric: key.1.clone(), labels });
                        self.pending_of.insert(key, self.pending.len() - 1);
                        self.pending.len() - 1
                    }
                };
                self.fixups.push((i, p));
                SeriesId::MAX
            }
        };
        self.ids.push(id);
        self.ts.push(t);
        self.vals.push(v);
        Ok(())
    }

    /// Create the series met for the first time, remember them in the key cache,
    /// and write the batch.
    fn commit(self) -> NifResult<()> {
        let LabeledBatch { store, keys, mut ids, ts, vals, raw, sets, pending, fixups, .. } = self;
        // Release the cache before taking any other store lock (a delete holds the
        // write gate while it clears the cache).
        let epoch = keys.epoch();
        drop(keys);
        let mut resolved = Vec::with_capacity(pending.len());
        for p in &pending {
            resolved.push(store.resolve(&p.labels).map_err(engine_err)?);
        }
        for &(i, p) in &fixups {
            ids[i] = resolved[p];
        }
        if !pending.is_empty() {
            store.remember_series_keys(
                epoch,
                pending.iter().zip(&resolved).filter_map(|(p, &id)| {
                    let range = sets[p.set].raw.clone()?;
                    Some(KeyedSeries { labels_raw: &raw[range], metric: &p.metric, id })
                }),
            );
        }
        store.write_unchecked(&ids, &ts, &vals).map_err(engine_err)
    }
}

fn write_labeled(res: &StoreRes, entries: Term, unit_ms: i64) -> NifResult<Atom> {
    let store = &res.store;
    if !entries.is_list() {
        return Err(bad_input("entries must be a list"));
    }
    let mut batch = LabeledBatch::new(store, unit_ms);
    for_each_entry(entries, || bad_input("entries must be a list"), |i, _, elems| {
        let r = match elems {
            Some(e) => batch.entry(i, e),
            None => Err(LABELED_SHAPE.into()),
        };
        r.map_err(|m| bad_input(format!("entry {i}: {m}")))
    })?;
    batch.commit()?;
    Ok(atoms::ok())
}

/// `write_batch(store, [{metric, labels, value} | {metric, labels, value, ts}], unit_ms)`
#[rustler::nif(schedule = "DirtyCpu")]
fn write_batch(res: ResourceArc<StoreRes>, entries: Term, unit_ms: i64) -> NifResult<Atom> {
    write_labeled(&res, entries, unit_ms)
}

/// The same on a normal scheduler, for a handful of points (`write/4,5`).
#[rustler::nif]
fn write_small(res: ResourceArc<StoreRes>, entries: Term, unit_ms: i64) -> NifResult<Atom> {
    write_labeled(&res, entries, unit_ms)
}

/// Columnar pre-resolved write: three binaries of little-endian u64 ids, i64
/// timestamps (in units of `unit_ms` milliseconds) and f64 values (the fastest path;
/// no per-point terms at all).
#[rustler::nif(schedule = "DirtyCpu")]
fn write_columns(res: ResourceArc<StoreRes>, ids: Binary, ts: Binary, vals: Binary, unit_ms: i64) -> NifResult<Atom> {
    let n = ids.len() / 8;
    if ids.len() % 8 != 0 || ts.len() != n * 8 || vals.len() != n * 8 {
        return Err(bad_input("ids, timestamps and values must be binaries of 8-byte numbers of equal count"));
    }
    let le = |b: &[u8], i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let ids_v: Vec<u64> = (0..n).map(|i| le(ids.as_slice(), i)).collect();
    let mut ts_v: Vec<i64> = Vec::with_capacity(n);
    for i in 0..n {
        let t = le(ts.as_slice(), i) as i64;
        match t.checked_mul(unit_ms) {
            Some(ms) => ts_v.push(ms),
            None => return Err(bad_input(format!("entry {}: timestamp {t} is out of range", i + 1))),
        }
    }
    let vals_v: Vec<f64> = (0..n).map(|i| f64::from_bits(le(vals.as_slice(), i))).collect();
    res.store.write(&ids_v, &ts_v, &vals_v).map_err(engine_err)?;
    Ok(atoms::ok())
}

/// `lookup(store, metric, labels) -> id | nil` (never creates a series).
#[rustler::nif]
fn lookup<'a>(res: ResourceArc<StoreRes>, metric: Term<'a>, labels: Term<'a>) -> NifResult<Option<u64>> {
    let store = &res.store;
    let (mut metric_b, mut labels_b) = (Vec::with_capacity(32), Vec::with_capacity(256));
    let raw_ok = series_bytes(metric, labels, &mut metric_b, &mut labels_b).map_err(bad_input)?;
    let epoch = {
        let keys = store.series_keys();
        if let Some(id) = raw_ok.then(|| cached(&keys, &labels_b, &metric_b)).flatten() {
            return Ok(Some(id));
        }
        keys.epoch()
    };
    let parsed = labels_of(store, metric, labels).map_err(bad_input)?;
    let found = store.lookup(&parsed);
    if let (Some(id), true) = (found, raw_ok) {
        store.remember_series_keys(epoch, [KeyedSeries { labels_raw: &labels_b, metric: &metric_b, id }]);
    }
    Ok(found)
}
