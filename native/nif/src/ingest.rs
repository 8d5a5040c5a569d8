//! Ingest NIFs: decompress a request body, and parse + resolve + write one body
//! (`ingest`) or several (`ingest_many`) in the four wire formats (all on dirty schedulers).

use rustler::{Atom, Binary, Encoder, Env, NewBinary, NifResult, ResourceArc, Term};
use timeless_engine::ingest::{self, Format, IngestOptions, IngestReport, Precision};
use timeless_engine::store::now_ms;

use crate::convert::{bad_input, engine_err, text, tuple_elems};
use crate::{atoms, StoreRes};

pub(crate) fn format_of(term: Term) -> NifResult<Format> {
    if let Ok(a) = term.decode::<Atom>() {
        for (atom, format) in [
            (keys::prometheus_text(), Format::PrometheusText),
            (keys::influx(), Format::Influx),
            (keys::vm_json(), Format::VmJson),
            (keys::remote_write(), Format::RemoteWrite),
        ] {
            if a == atom {
                return Ok(format);
            }
        }
    }
    let name = text(term).unwrap_or_default();
    Ok(match name.as_str() {
        "vm_json" => Format::VmJson,
        "prometheus_text" => Format::PrometheusText,
        "influx" => Format::Influx,
        "remote_write" => Format::RemoteWrite,
        other => return Err(bad_input(format!("unknown ingest format {other:?}"))),
    })
}

/// The atoms of the options and report maps, made once when the library loads (an
/// `Atom::from_str` per key and call takes the VM's atom table lock every time).
mod keys {
    rustler::atoms! {
        extra_labels,
        default_ts_ms,
        precision,
        max_line_bytes,
        samples,
        series_created,
        rejected,
        rejected_by_reason,
        metadata,
        vm_json,
        prometheus_text,
        influx,
        remote_write,
        ns,
        us,
        ms,
        s,
    }
}

pub(crate) fn options(map: Term) -> NifResult<IngestOptions> {
    let get = |key: Atom| map.map_get(key).ok();
    let mut opts = IngestOptions::default();
    if let Some(labels) = get(keys::extra_labels()) {
        let iter = labels.into_list_iterator().map_err(|_| bad_input("extra_labels must be a list"))?;
        for pair in iter {
            let p = tuple_elems(pair).filter(|p| p.len() == 2).ok_or_else(|| bad_input("extra_labels: expected {name, value}"))?;
            let (k, v) = (text(p[0]), text(p[1]));
            match (k, v) {
                (Some(k), Some(v)) => opts.extra_labels.push((k, v)),
                _ => return Err(bad_input("extra_labels: names and values must be strings")),
            }
        }
    }
    opts.default_ts_ms = match get(keys::default_ts_ms()) {
        Some(t) if t.decode::<Atom>().ok() != Some(atoms::nil()) => {
            t.decode::<i64>().map_err(|_| bad_input("default_ts_ms must be an integer"))?
        }
        _ => now_ms(),
    };
    if let Some(p) = get(keys::precision()) {
        let atom = p.decode::<Atom>().ok();
        if let Some(precision) = [(keys::ms(), Precision::Ms), (keys::s(), Precision::S), (keys::ns(), Precision::Ns), (keys::us(), Precision::Us)]
            .into_iter()
            .find_map(|(a, precision)| (atom == Some(a)).then_some(precision))
        {
            opts.precision = precision;
        } else if atom != Some(atoms::nil()) {
            let name = text(p).unwrap_or_default();
            opts.precision = Precision::parse(&name).ok_or_else(|| bad_input(format!("precision {name:?} is not one of ns, us, ms, s")))?;
        }
    }
    if let Some(m) = get(keys::max_line_bytes()) {
        if let Ok(n) = m.decode::<usize>() {
            opts.max_line_bytes = n;
        }
    }
    Ok(opts)
}

pub(crate) fn atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    Atom::from_str(env, name).expect("atom").encode(env)
}

pub(crate) fn map<'a>(env: Env<'a>, pairs: &[(&str, Term<'a>)]) -> NifResult<Term<'a>> {
    let keys: Vec<Term> = pairs.iter().map(|(k, _)| atom(env, k)).collect();
    let values: Vec<Term> = pairs.iter().map(|(_, v)| *v).collect();
    Term::map_from_term_arrays(env, &keys, &values)
}

fn opt_text<'a>(env: Env<'a>, s: &Option<String>) -> Term<'a> {
    match s {
        Some(s) => s.encode(env),
        None => atoms::nil().encode(env),
    }
}

fn report_term<'a>(env: Env<'a>, r: &IngestReport) -> NifResult<Term<'a>> {
    let rejected: Vec<Term> = r
        .rejected
        .iter()
        .map(|x| {
            map(
                env,
                &[
                    ("line", x.line.encode(env)),
                    ("reason", atom(env, x.reason.as_str())),
                    ("message", x.message.encode(env)),
                    ("sample", x.sample.encode(env)),
                ],
            )
        })
        .collect::<NifResult<_>>()?;
    let by_reason: Vec<Term> =
        r.rejected_by_reason.iter().map(|(reason, n)| (atom(env, reason.as_str()), *n).encode(env)).collect();
    let metadata: Vec<Term> = r
        .metadata
        .iter()
        .map(|m| {
            map(
                env,
                &[
                    ("metric", m.metric.encode(env)),
                    ("type", opt_text(env, &m.kind)),
                    ("help", opt_text(env, &m.help)),
                    ("unit", opt_text(env, &m.unit)),
                ],
            )
        })
        .collect::<NifResult<_>>()?;
    let keys = [keys::samples(), keys::series_created(), keys::rejected(), keys::rejected_by_reason(), keys::metadata()];
    let values = [r.samples.encode(env), r.series_created.encode(env), rejected.encode(env), by_reason.encode(env), metadata.encode(env)];
    let keys: Vec<Term> = keys.iter().map(|k| k.encode(env)).collect();
    Term::map_from_term_arrays(env, &keys, &values)
}

/// `ingest(store, format, body, opts) -> report`
#[rustler::nif(schedule = "DirtyCpu")]
fn ingest<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, format: Term<'a>, body: Binary<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let format = format_of(format)?;
    let opts = options(opts)?;
    let report = ingest::ingest(&res.store, format, body.as_slice(), &opts).map_err(engine_err)?;
    report_term(env, &report)
}

/// `ingest_many(store, [{format, body, opts}]) -> [report | {:error, {kind, message}}]`,
/// one result per body in order; a store failure fails the whole call.
#[rustler::nif(schedule = "DirtyCpu")]
fn ingest_many<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, items: Vec<Term<'a>>) -> NifResult<Term<'a>> {
    ingest_items(env, &res, items)
}

/// `ingest_many_small`: the same for a batch of a few kilobytes, on a normal scheduler
/// (parsed in tens of microseconds: a hand-off to a dirty scheduler and back would cost
/// more than the work).
#[rustler::nif]
fn ingest_many_small<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, items: Vec<Term<'a>>) -> NifResult<Term<'a>> {
    ingest_items(env, &res, items)
}

fn ingest_items<'a>(env: Env<'a>, res: &StoreRes, items: Vec<Term<'a>>) -> NifResult<Term<'a>> {
    let mut decoded: Vec<(Format, Binary<'a>, IngestOptions)> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let e = tuple_elems(item)
            .filter(|e| e.len() == 3)
            .ok_or_else(|| bad_input(format!("ingest_many: item {i}: expected {{format, body, opts}}")))?;
        let body = e[1].decode::<Binary>().map_err(|_| bad_input(format!("ingest_many: item {i}: body must be a binary")))?;
        decoded.push((format_of(e[0])?, body, options(e[2])?));
    }
    let refs: Vec<ingest::BodyRef> = decoded.iter().map(|(f, b, o)| (*f, b.as_slice(), o)).collect();
    let results = ingest::ingest_many(&res.store, &refs).map_err(engine_err)?;
    let terms: Vec<Term> = results
        .iter()
        .map(|r| match r {
            Ok(report) => report_term(env, report),
            Err(e) => Ok((atoms::error(), (atom(env, e.kind.as_str()), e.message.as_str())).encode(env)),
        })
        .collect::<NifResult<_>>()?;
    Ok(terms.encode(env))
}

/// `decompress(encoding, body, max_bytes) -> binary`
#[rustler::nif(schedule = "DirtyCpu")]
fn decompress<'a>(env: Env<'a>, encoding: String, body: Binary<'a>, max_bytes: usize) -> NifResult<Term<'a>> {
    let out = ingest::decompress(&encoding, body.as_slice(), max_bytes).map_err(engine_err)?;
    let mut bin = NewBinary::new(env, out.len());
    bin.as_mut_slice().copy_from_slice(&out);
    let bin: Binary = bin.into();
    Ok(bin.encode(env))
}
