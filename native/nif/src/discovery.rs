//! `series_json`: Prometheus's `/api/v1/series` success body, written by the engine
//! (`timeless_engine::discovery`). Only term decoding and the choice of scheduler
//! live here.
//!
//! `series_json` runs on the calling (normal) scheduler. A request whose bound of
//! work (`discovery::series_cost`, from postings sizes alone) is within
//! [`INLINE_SERIES`] and [`INLINE_WORK`] is answered right there: for the usual few
//! series that saves the migration to a dirty scheduler and back, most of such a
//! request's time. Any other returns `:dirty` at once, after a few hash lookups, and
//! the caller repeats the call as `series_json_dirty`, the same on a dirty CPU
//! scheduler.

use std::time::Instant;

use rustler::{Encoder, Env, NifResult, ResourceArc, Term};
use timeless_engine::discovery::{series_body, series_cost};
use timeless_engine::series::Matcher;

use crate::convert::{bad_input, body_binary, decode_matchers, decode_range, report_time};
use crate::StoreRes;

mod atoms {
    rustler::atoms! { dirty }
}

/// Most series (summed over the selectors, before the time range) answered on a
/// normal scheduler. Each costs well under a microsecond (its pairs copied, a range
/// check, its share of the sort, its JSON: 4,000 series of 7 labels took ~2.9 ms,
/// 10 took ~6 µs, measured through the NIF on a loaded 2-core machine), so this keeps
/// a call within ~100-250 µs, well under the 1 ms a NIF may hold a normal scheduler,
/// while Grafana's and the bench's requests (a job's or a metric's few series) stay
/// inline.
const INLINE_SERIES: u64 = 256;

/// Most index work (label values looked up or run through a regex, candidate ids
/// probed; see `timeless_engine::series::SelectBound`) answered on a normal scheduler:
/// at ~10-100 ns a step, at most ~200 µs.
const INLINE_WORK: u64 = 2_048;

/// What a request asks for, decoded.
struct Request {
    selectors: Vec<Vec<Matcher>>,
    range: Option<(i64, i64)>,
    limit: Option<usize>,
}

fn decode<'a>(selectors: Term<'a>, from: Term<'a>, to: Term<'a>, limit: Term<'a>) -> NifResult<Request> {
    let list = selectors.into_list_iterator().map_err(|_| bad_input("selectors must be a list of matcher lists"))?;
    let selectors = list.map(decode_matchers).collect::<NifResult<Vec<_>>>()?;
    let limit = if limit == crate::atoms::nil().to_term(limit.get_env()) {
        None
    } else if let Ok(n) = limit.decode::<u64>() {
        Some(usize::try_from(n).unwrap_or(usize::MAX))
    } else if limit.is_integer() && limit > 0.encode(limit.get_env()) {
        None // a positive integer beyond u64: more than any store holds
    } else {
        return Err(bad_input("limit must be a non-negative integer or nil"));
    };
    Ok(Request { selectors, range: decode_range(from, to), limit })
}

fn body<'a>(env: Env<'a>, res: &StoreRes, req: &Request) -> Term<'a> {
    body_binary(env, series_body(&res.store, &req.selectors, req.range, req.limit))
}

/// `series_json(store, selectors, from | nil, to | nil, limit | nil) -> body | :dirty`:
/// the body (a binary) of the union of the series matching each selector (a matcher
/// list), with data in `[from, to]` ms when given, at most `limit`; `:dirty` when the
/// request may be too large to answer on this scheduler (then call `series_json_dirty`).
#[rustler::nif]
fn series_json<'a>(
    env: Env<'a>,
    res: ResourceArc<StoreRes>,
    selectors: Term<'a>,
    from: Term<'a>,
    to: Term<'a>,
    limit: Term<'a>,
) -> NifResult<Term<'a>> {
    let started = Instant::now();
    let req = decode(selectors, from, to, limit)?;
    let cost = series_cost(&res.store, &req.selectors);
    if cost.series > INLINE_SERIES || cost.work > INLINE_WORK {
        return Ok(atoms::dirty().encode(env));
    }
    let body = body(env, &res, &req);
    report_time(env, started);
    Ok(body)
}

/// `series_json_dirty(store, selectors, from | nil, to | nil, limit | nil) -> body`:
/// `series_json` of any size, on a dirty CPU scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn series_json_dirty<'a>(
    env: Env<'a>,
    res: ResourceArc<StoreRes>,
    selectors: Term<'a>,
    from: Term<'a>,
    to: Term<'a>,
    limit: Term<'a>,
) -> NifResult<Term<'a>> {
    let req = decode(selectors, from, to, limit)?;
    Ok(body(env, &res, &req))
}
