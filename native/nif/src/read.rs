//! Read path NIFs. Points come back as compact binaries (see
//! `convert::points_binary`), never as one term per point built here.

use rustler::{Encoder, Env, NifResult, ResourceArc, Term};
use timeless_engine::query::Aggregate;
use timeless_engine::SeriesId;

use crate::convert::{decode_matchers, decode_range, engine_err, labels_term, points_binary, text, value_term};
use crate::StoreRes;

/// `select(store, matchers, from | nil, to | nil) -> [id]`
#[rustler::nif(schedule = "DirtyCpu")]
fn select<'a>(res: ResourceArc<StoreRes>, matchers: Term<'a>, from: Term<'a>, to: Term<'a>) -> NifResult<Vec<u64>> {
    let matchers = decode_matchers(matchers)?;
    Ok(res.store.select(&matchers, decode_range(from, to)))
}

/// `read_series(store, id, from_ms, to_ms, unit_ms) -> points binary`
#[rustler::nif(schedule = "DirtyCpu")]
fn read_series<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, id: u64, from: i64, to: i64, unit_ms: i64) -> Term<'a> {
    let (ts, vals) = res.store.read(id, from, to);
    points_binary(env, &ts, &vals, unit_ms).encode(env)
}

fn series_results<'a>(env: Env<'a>, res: &StoreRes, rows: Vec<(SeriesId, Vec<i64>, Vec<f64>)>, unit_ms: i64) -> Term<'a> {
    let out: Vec<Term<'a>> = rows
        .into_iter()
        .filter_map(|(id, ts, vals)| {
            let labels = res.store.series_labels(id)?;
            Some((labels_term(env, &labels), points_binary(env, &ts, &vals, unit_ms)).encode(env))
        })
        .collect();
    out.encode(env)
}

/// `read_many(store, matchers, from_ms, to_ms, unit_ms) -> [{labels, points}]`
#[rustler::nif(schedule = "DirtyCpu")]
fn read_many<'a>(
    env: Env<'a>,
    res: ResourceArc<StoreRes>,
    matchers: Term<'a>,
    from: i64,
    to: i64,
    unit_ms: i64,
) -> NifResult<Term<'a>> {
    let matchers = decode_matchers(matchers)?;
    let ids = res.store.select(&matchers, Some((from, to)));
    let rows = res.store.read_many(&ids, from, to);
    Ok(series_results(env, &res, rows, unit_ms))
}

/// `aggregate(store, matchers, from_ms, to_ms, step_ms, aggregate, unit_ms) -> [{labels, buckets}]`
#[rustler::nif(schedule = "DirtyCpu")]
fn aggregate<'a>(
    env: Env<'a>,
    res: ResourceArc<StoreRes>,
    matchers: Term<'a>,
    from: i64,
    to: i64,
    step: i64,
    agg: Term<'a>,
    unit_ms: i64,
) -> NifResult<Term<'a>> {
    let matchers = decode_matchers(matchers)?;
    let name = text(agg).unwrap_or_default();
    let agg = Aggregate::parse(&name).map_err(engine_err)?;
    let ids = res.store.select(&matchers, None);
    let rows = res.store.aggregate_many(&ids, from, to, step, agg).map_err(engine_err)?;
    let rows = rows.into_iter().filter(|r| !r.1.is_empty()).collect();
    Ok(series_results(env, &res, rows, unit_ms))
}

/// `latest(store, matchers, unit_ms) -> [{labels, ts, value}]`
#[rustler::nif(schedule = "DirtyCpu")]
fn latest<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, matchers: Term<'a>, unit_ms: i64) -> NifResult<Term<'a>> {
    let matchers = decode_matchers(matchers)?;
    let ids = res.store.select(&matchers, None);
    let out: Vec<Term<'a>> = ids
        .into_iter()
        .filter_map(|id| {
            let (t, v) = res.store.latest(id)?;
            let labels = res.store.series_labels(id)?;
            Some((labels_term(env, &labels), t.div_euclid(unit_ms), value_term(env, v)).encode(env))
        })
        .collect();
    Ok(out.encode(env))
}

/// Series selected by matchers (all series for `[]`), optionally with data in a range.
fn among(res: &StoreRes, matchers: Term, from: Term, to: Term) -> NifResult<Option<Vec<SeriesId>>> {
    let matchers = decode_matchers(matchers)?;
    let range = decode_range(from, to);
    if matchers.is_empty() && range.is_none() {
        return Ok(None);
    }
    Ok(Some(res.store.select(&matchers, range)))
}

/// `series(store, matchers, from | nil, to | nil) -> [labels]`
#[rustler::nif(schedule = "DirtyCpu")]
fn series<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, matchers: Term<'a>, from: Term<'a>, to: Term<'a>) -> NifResult<Term<'a>> {
    let matchers = decode_matchers(matchers)?;
    let ids = res.store.select(&matchers, decode_range(from, to));
    let out: Vec<Term<'a>> =
        ids.into_iter().filter_map(|id| res.store.series_labels(id).map(|l| labels_term(env, &l))).collect();
    Ok(out.encode(env))
}

/// `metric_names(store, matchers, from | nil, to | nil) -> [name]`
#[rustler::nif(schedule = "DirtyCpu")]
fn metric_names<'a>(res: ResourceArc<StoreRes>, matchers: Term<'a>, from: Term<'a>, to: Term<'a>) -> NifResult<Vec<String>> {
    let ids = among(&res, matchers, from, to)?;
    Ok(res.store.metric_names(ids.as_deref()))
}

/// `label_names(store, matchers, from | nil, to | nil) -> [name]`
#[rustler::nif(schedule = "DirtyCpu")]
fn label_names<'a>(res: ResourceArc<StoreRes>, matchers: Term<'a>, from: Term<'a>, to: Term<'a>) -> NifResult<Vec<String>> {
    let ids = among(&res, matchers, from, to)?;
    Ok(res.store.label_names(ids.as_deref()))
}

/// `label_values(store, name, matchers, from | nil, to | nil) -> [value]`
#[rustler::nif(schedule = "DirtyCpu")]
fn label_values<'a>(
    res: ResourceArc<StoreRes>,
    name: String,
    matchers: Term<'a>,
    from: Term<'a>,
    to: Term<'a>,
) -> NifResult<Vec<String>> {
    let ids = among(&res, matchers, from, to)?;
    Ok(res.store.label_values(&name, ids.as_deref()))
}
