//! Spool NIFs: the durable queue of accepted ingest bodies (`timeless_engine::spool`).
//! Appends of small bodies run on a normal scheduler (one `write(2)` under a mutex, well
//! under a millisecond); large appends, fsynced appends, completion, reads and open run on
//! dirty I/O schedulers.

use std::path::PathBuf;
use std::time::Duration;

use rustler::{Atom, Binary, Encoder, Env, NewBinary, NifResult, ResourceArc, Term};
use timeless_engine::ingest::{Format, IngestOptions, Precision};
use timeless_engine::log::IssueKind;
use timeless_engine::spool::{BodyHeader, Spool, SpoolConfig};

use crate::convert::{bad_input, engine_err};
use crate::ingest::{atom, format_of, map, options};

/// An open spool, shared by the request processes (append) and the workers (done).
pub struct SpoolRes {
    pub spool: Spool,
}

#[rustler::resource_impl]
impl rustler::Resource for SpoolRes {}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::VmJson => "vm_json",
        Format::PrometheusText => "prometheus_text",
        Format::Influx => "influx",
        Format::RemoteWrite => "remote_write",
    }
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Ns => "ns",
        Precision::Us => "us",
        Precision::Ms => "ms",
        Precision::S => "s",
    }
}

fn header_of(format: Term, opts: Term) -> NifResult<BodyHeader> {
    let format = format_of(format)?;
    let IngestOptions { extra_labels, default_ts_ms, precision, .. } = options(opts)?;
    Ok(BodyHeader { format, precision, default_ts_ms, extra_labels })
}

/// `%{extra_labels: [{name, value}], default_ts_ms: integer, precision: atom}`, as
/// `TimelessMetrics.Ingest.Params` builds it.
fn opts_term<'a>(env: Env<'a>, h: &BodyHeader) -> NifResult<Term<'a>> {
    let labels: Vec<(&str, &str)> = h.extra_labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    map(
        env,
        &[
            ("extra_labels", labels.encode(env)),
            ("default_ts_ms", h.default_ts_ms.encode(env)),
            ("precision", atom(env, precision_name(h.precision))),
        ],
    )
}

fn u64_opt(map: Term, key: &str) -> NifResult<Option<u64>> {
    let env = map.get_env();
    match map.map_get(Atom::from_str(env, key)?) {
        Ok(v) => v.decode::<u64>().map(Some).map_err(|_| bad_input(format!("spool option {key} must be a non-negative integer"))),
        Err(_) => Ok(None),
    }
}

/// `spool_open(dir, %{max_segment_bytes, max_segment_age_ms, sync}) ->
///   {spool, [{seq, format, opts, bytes}], [{:torn_tail | :corrupt, path, offset, message}]}`
#[rustler::nif(schedule = "DirtyIo")]
fn spool_open<'a>(env: Env<'a>, dir: String, config: Term<'a>) -> NifResult<Term<'a>> {
    let mut cfg = SpoolConfig::default();
    if let Some(n) = u64_opt(config, "max_segment_bytes")? {
        cfg.max_segment_bytes = n;
    }
    if let Some(ms) = u64_opt(config, "max_segment_age_ms")? {
        cfg.max_segment_age = Duration::from_millis(ms);
    }
    if let Ok(sync) = config.map_get(Atom::from_str(env, "sync")?) {
        cfg.sync = sync.decode::<bool>().map_err(|_| bad_input("spool option sync must be a boolean"))?;
    }
    let rec = Spool::open(&PathBuf::from(dir), cfg).map_err(engine_err)?;
    let pending: Vec<Term> = rec
        .pending
        .iter()
        .map(|p| Ok((p.seq, atom(env, format_name(p.header.format)), opts_term(env, &p.header)?, p.len).encode(env)))
        .collect::<NifResult<_>>()?;
    let issues: Vec<Term> = rec
        .issues
        .iter()
        .map(|i| {
            let kind = match i.kind {
                IssueKind::TornTail => "torn_tail",
                IssueKind::Corrupt => "corrupt",
            };
            (atom(env, kind), i.path.display().to_string(), i.offset, i.message.as_str()).encode(env)
        })
        .collect();
    let res = ResourceArc::new(SpoolRes { spool: rec.spool });
    Ok((res, pending, issues).encode(env))
}

fn append(res: &SpoolRes, format: Term, opts: Term, body: Binary) -> NifResult<u64> {
    let header = header_of(format, opts)?;
    res.spool.append(&header, body.as_slice()).map_err(engine_err)
}

/// `spool_append(spool, format, opts, body) -> seq` for small bodies (normal scheduler).
#[rustler::nif]
fn spool_append<'a>(res: ResourceArc<SpoolRes>, format: Term<'a>, opts: Term<'a>, body: Binary<'a>) -> NifResult<u64> {
    append(&res, format, opts, body)
}

/// `spool_append_dirty(spool, format, opts, body) -> seq` for large or fsynced appends.
#[rustler::nif(schedule = "DirtyIo")]
fn spool_append_dirty<'a>(res: ResourceArc<SpoolRes>, format: Term<'a>, opts: Term<'a>, body: Binary<'a>) -> NifResult<u64> {
    append(&res, format, opts, body)
}

/// `spool_done(spool, [seq]) -> count` (how many were pending). On a normal scheduler:
/// a batch's completions are one small write without fsync (workers mark at most one
/// batch of 64 bodies at a time), and a rotation at most opens a file and unlinks done
/// segments.
#[rustler::nif]
fn spool_done(res: ResourceArc<SpoolRes>, seqs: Vec<u64>) -> NifResult<usize> {
    res.spool.done(&seqs).map_err(engine_err)
}

/// `spool_read(spool, seq) -> {format, opts, body}` for a body returned by `spool_open`.
#[rustler::nif(schedule = "DirtyIo")]
fn spool_read(env: Env, res: ResourceArc<SpoolRes>, seq: u64) -> NifResult<Term> {
    let (header, body) = res.spool.read(seq).map_err(engine_err)?;
    let mut bin = NewBinary::new(env, body.len());
    bin.as_mut_slice().copy_from_slice(&body);
    let bin: Binary = bin.into();
    Ok((atom(env, format_name(header.format)), opts_term(env, &header)?, bin).encode(env))
}

/// `spool_close(spool) -> :ok`: later appends and completions fail with `:unavailable`.
#[rustler::nif]
fn spool_close(res: ResourceArc<SpoolRes>) -> rustler::Atom {
    res.spool.close();
    crate::atoms::ok()
}

/// `spool_info(spool) -> %{bytes, segments, pending}`
#[rustler::nif]
fn spool_info(env: Env, res: ResourceArc<SpoolRes>) -> NifResult<Term> {
    let i = res.spool.info();
    map(env, &[("bytes", i.bytes.encode(env)), ("segments", i.segments.encode(env)), ("pending", i.pending.encode(env))])
}
