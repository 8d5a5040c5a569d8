//! Write path NIFs.
//!
//! A batch is decoded and validated whole before anything is written: a bad
//! entry refuses the batch with `{:error, {:bad_input, "entry N: ..."}}` and
//! nothing of it is stored (no series is created either).

use rustler::sys::ErlNifTerm;
use rustler::{Atom, Binary, NifResult, ResourceArc, Term};
use timeless_engine::series::Labels;
use timeless_engine::store::{now_ms, Store};
use timeless_engine::SeriesId;

use crate::convert::{bad_input, decode_timestamp, decode_value, engine_err, for_each_label, push_text, text, with_tuple};
use crate::{atoms, StoreRes};

/// First byte of the cache keys built here; 0xFF never starts UTF-8 text nor the
/// ingest parsers' keys (0xF8..0xFB).
const KEY_TAG: u8 = 0xff;

/// The raw-cache key of a `(metric, labels)` pair as the caller sent it: the tag,
/// the metric's text, 0xFF, then the labels term in the external term format. That
/// is one C call for the whole label set, and equal maps encode to equal bytes (a
/// keyword list in another order gets another key, which still resolves to the same
/// series through the slow path).
fn series_key<'a>(metric: Term<'a>, labels: Term<'a>, key: &mut Vec<u8>) -> Result<(), String> {
    key.clear();
    key.push(KEY_TAG);
    if !push_text(metric, key) {
        return Err("metric name must be a string".into());
    }
    key.push(KEY_TAG);
    if !(labels.is_map() || labels.is_list()) {
        return Err("labels must be a map or a list of {name, value}".into());
    }
    key.extend_from_slice(labels.to_binary().as_slice());
    Ok(())
}

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
        return Err(bad.unwrap_or("labels must be a map or a list of {name, value}").into());
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    store.labels(&metric, &pairs).map_err(|e| e.message)
}

fn resolve_terms<'a>(store: &Store, metric: Term<'a>, labels: Term<'a>) -> NifResult<SeriesId> {
    let mut key = Vec::with_capacity(128);
    series_key(metric, labels, &mut key).map_err(bad_input)?;
    store
        .resolve_raw(&key, || labels_of(store, metric, labels).map_err(timeless_engine::Error::bad_input))
        .map_err(engine_err)
}

/// `resolve(store, metric, labels) -> id`
#[rustler::nif]
fn resolve<'a>(res: ResourceArc<StoreRes>, metric: Term<'a>, labels: Term<'a>) -> NifResult<u64> {
    resolve_terms(&res.store, metric, labels)
}

struct Decoded {
    ids: Vec<SeriesId>,
    ts: Vec<i64>,
    vals: Vec<f64>,
    /// (entry index, key, labels) of series not in the cache yet.
    pending: Vec<(usize, Vec<u8>, Labels)>,
    /// (entry index, earlier pending entry of the same series).
    pending_same: Vec<(usize, usize)>,
}

/// Series already seen in this call, by the identity of the metric and labels terms.
/// Within one NIF call terms do not move, and the same raw term is the same
/// immutable value, so batches that reuse one labels map per series (the common
/// case) skip walking the map and hashing its bytes for every point.
#[derive(Default)]
struct TermIdentityCache {
    map: std::collections::HashMap<(ErlNifTerm, ErlNifTerm), usize>,
}

const SEEN_NONE: usize = usize::MAX;

fn decode_labeled(store: &Store, entries: Term, unit_ms: i64) -> NifResult<Decoded> {
    let iter = entries.into_list_iterator().map_err(|_| bad_input("entries must be a list"))?;
    let now = now_ms();
    let mut d = Decoded { ids: Vec::new(), ts: Vec::new(), vals: Vec::new(), pending: Vec::new(), pending_same: Vec::new() };
    let mut key = Vec::with_capacity(128);
    let mut seen = TermIdentityCache::default();
    for (i, entry) in iter.enumerate() {
        let mut identity = (ErlNifTerm::default(), ErlNifTerm::default());
        let mut known = SEEN_NONE;
        let parsed = with_tuple(entry, |e| -> Result<(f64, i64), String> {
            if e.len() != 3 && e.len() != 4 {
                return Err("expected {metric, labels, value} or {metric, labels, value, timestamp}".into());
            }
            identity = (e[0].as_c_arg(), e[1].as_c_arg());
            match seen.map.get(&identity) {
                Some(&first) => known = first,
                None => series_key(e[0], e[1], &mut key)?,
            }
            let v = decode_value(e[2]).ok_or("value is not a number")?;
            let t = if e.len() == 4 { decode_timestamp(e[3], unit_ms)? } else { now };
            Ok((v, t))
        })
        .unwrap_or_else(|| Err("expected {metric, labels, value} or {metric, labels, value, timestamp}".into()));
        let (v, t) = parsed.map_err(|m| bad_input(format!("entry {i}: {m}")))?;
        if known != SEEN_NONE {
            // Same series as entry `known`: copy its id (or its pending slot, resolved later).
            d.ids.push(d.ids[known]);
            if d.ids[known] == SeriesId::MAX {
                d.pending_same.push((i, known));
            }
            d.ts.push(t);
            d.vals.push(v);
            continue;
        }
        seen.map.insert(identity, i);
        let id = match store.cached_id(&key) {
            Some(id) => id,
            None => {
                let (metric, labels) = with_tuple(entry, |e| (e[0], e[1])).expect("checked above");
                let labels = labels_of(store, metric, labels).map_err(|m| bad_input(format!("entry {i}: {m}")))?;
                d.pending.push((i, key.clone(), labels));
                SeriesId::MAX
            }
        };
        d.ids.push(id);
        d.ts.push(t);
        d.vals.push(v);
    }
    Ok(d)
}

fn write_labeled(res: &StoreRes, entries: Term, unit_ms: i64) -> NifResult<Atom> {
    let store = &res.store;
    let mut d = decode_labeled(store, entries, unit_ms)?;
    for (i, key, labels) in d.pending.drain(..) {
        d.ids[i] = store.resolve_raw(&key, || Ok(labels)).map_err(engine_err)?;
    }
    for (i, first) in d.pending_same.drain(..) {
        d.ids[i] = d.ids[first];
    }
    store.write_unchecked(&d.ids, &d.ts, &d.vals).map_err(engine_err)?;
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

fn decode_resolved(entries: Term, unit_ms: i64) -> NifResult<(Vec<SeriesId>, Vec<i64>, Vec<f64>)> {
    let iter = entries.into_list_iterator().map_err(|_| bad_input("entries must be a list"))?;
    let now = now_ms();
    let (mut ids, mut ts, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for (i, entry) in iter.enumerate() {
        let parsed = with_tuple(entry, |e| -> Result<(u64, f64, i64), &'static str> {
            if e.len() != 2 && e.len() != 3 {
                return Err("expected {series_id, value} or {series_id, value, timestamp}");
            }
            let id = e[0].decode::<u64>().map_err(|_| "series id must be a non-negative integer")?;
            let v = decode_value(e[1]).ok_or("value is not a number")?;
            let t = if e.len() == 3 { decode_timestamp(e[2], unit_ms)? } else { now };
            Ok((id, v, t))
        })
        .unwrap_or(Err("expected {series_id, value} or {series_id, value, timestamp}"));
        let (id, v, t) = parsed.map_err(|m| bad_input(format!("entry {i}: {m}")))?;
        ids.push(id);
        vals.push(v);
        ts.push(t);
    }
    Ok((ids, ts, vals))
}

/// `write_resolved(store, [{id, value} | {id, value, ts}], unit_ms)`
#[rustler::nif(schedule = "DirtyCpu")]
fn write_resolved(res: ResourceArc<StoreRes>, entries: Term, unit_ms: i64) -> NifResult<Atom> {
    let (ids, ts, vals) = decode_resolved(entries, unit_ms)?;
    res.store.write(&ids, &ts, &vals).map_err(engine_err)?;
    Ok(atoms::ok())
}

/// Columnar pre-resolved write: three binaries of little-endian u64 ids, i64 ms
/// timestamps and f64 values (the fastest path; no per-point terms at all).
#[rustler::nif(schedule = "DirtyCpu")]
fn write_columns(res: ResourceArc<StoreRes>, ids: Binary, ts: Binary, vals: Binary) -> NifResult<Atom> {
    let n = ids.len() / 8;
    if ids.len() % 8 != 0 || ts.len() != n * 8 || vals.len() != n * 8 {
        return Err(bad_input("ids, timestamps and values must be binaries of 8-byte numbers of equal count"));
    }
    let le = |b: &[u8], i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let ids_v: Vec<u64> = (0..n).map(|i| le(ids.as_slice(), i)).collect();
    let ts_v: Vec<i64> = (0..n).map(|i| le(ts.as_slice(), i) as i64).collect();
    let vals_v: Vec<f64> = (0..n).map(|i| f64::from_bits(le(vals.as_slice(), i))).collect();
    res.store.write(&ids_v, &ts_v, &vals_v).map_err(engine_err)?;
    Ok(atoms::ok())
}

/// `lookup(store, metric, labels) -> id | nil` (never creates a series).
#[rustler::nif]
fn lookup<'a>(res: ResourceArc<StoreRes>, metric: Term<'a>, labels: Term<'a>) -> NifResult<Option<u64>> {
    let mut key = Vec::with_capacity(128);
    series_key(metric, labels, &mut key).map_err(bad_input)?;
    if let Some(id) = res.store.cached_id(&key) {
        return Ok(Some(id));
    }
    let labels = labels_of(&res.store, metric, labels).map_err(bad_input)?;
    Ok(res.store.lookup(&labels))
}
