//! Ingest: parse request bodies of the common agent formats and write them through a
//! [`Store`], fused (parse -> resolve -> batch write in one pass, no intermediate rows).
//!
//! | format | endpoint | parser |
//! |--------|----------|--------|
//! | [`Format::VmJson`] | `/api/v1/import` | [`vm_json`] |
//! | [`Format::PrometheusText`] | `/api/v1/import/prometheus` | [`prometheus_text`] |
//! | [`Format::Influx`] | `/write`, `/api/v2/write` | [`influx`] |
//! | [`Format::RemoteWrite`] | `/api/v1/write` | [`remote_write`] |
//!
//! ## Hot path
//! Every parser finds the bytes that identify a series as the client sent them (the
//! `name{labels}` text, the measurement+tags and field key, the JSON `metric` object,
//! the protobuf label fields) and looks them up in the store's raw-key cache under a key
//! `format tag ++ extra labels ++ raw bytes` ([`Sink::key`]). A hit costs one hash and one
//! shared lock: no label parsing, unescaping, validation or allocation. Only a miss parses
//! the labels, sanitises names, applies `extra_labels` and the store's limits
//! ([`Sink::resolve_miss`]). Samples are gathered in batches of [`BATCH`] and written with
//! `write_unchecked` (the ids come straight from `resolve_raw`).
//!
//! ## Errors
//! A problem in one line (one timeseries for remote write) rejects that line only: it is
//! recorded in [`IngestReport`] and nothing of it is written. `Err` means the whole body
//! could not be decoded (remote write) or the store failed. What each format accepts is
//! documented in `FORMAT-ingest.md`.

use std::collections::HashMap;
use std::io::Read;

use crate::error::{Error, ErrorKind, Result};
use crate::series::{LabelLimits, Labels, METRIC_NAME};
use crate::store::Store;
use crate::{SeriesId, Timestamp};

pub mod influx;
pub mod prometheus_text;
pub mod remote_write;
pub mod vm_json;

/// Samples per `write_unchecked` call.
pub const BATCH: usize = 16 * 1024;
/// At most this many rejections are kept with their details.
pub const MAX_REJECTIONS: usize = 100;
/// Rejection samples are cut to this many bytes.
pub const SAMPLE_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    VmJson,
    PrometheusText,
    Influx,
    RemoteWrite,
}

impl Format {
    /// First byte of every raw-cache key this module builds. Bytes 0xF8.. never start
    /// a UTF-8 string, so these keys cannot collide with textual keys of other callers.
    fn key_tag(self) -> u8 {
        match self {
            Format::VmJson => 0xF8,
            Format::PrometheusText => 0xF9,
            Format::Influx => 0xFA,
            Format::RemoteWrite => 0xFB,
        }
    }
}

/// Unit of Influx line protocol timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    /// Parse the `precision` query parameter (`ns`, `u`/`us`, `ms`, `s`; also Influx 1.x's `n`).
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "ns" | "n" | "" => Some(Precision::Ns),
            "us" | "u" | "µ" | "µs" => Some(Precision::Us),
            "ms" => Some(Precision::Ms),
            "s" => Some(Precision::S),
            _ => None,
        }
    }

    /// Convert a timestamp in this unit to milliseconds (floor division, so negative
    /// timestamps round towards minus infinity). `None` if it overflows.
    pub fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Precision::Ns => Some(t.div_euclid(1_000_000)),
            Precision::Us => Some(t.div_euclid(1_000)),
            Precision::Ms => Some(t),
            Precision::S => t.checked_mul(1000),
        }
    }
}

#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Added to every series; they override same-named labels of the body.
    pub extra_labels: Vec<(String, String)>,
    /// Timestamp (ms) for lines without one: when the body was received.
    pub default_ts_ms: i64,
    /// Influx only.
    pub precision: Precision,
    /// A longer line is rejected with [`RejectReason::LineTooLong`].
    pub max_line_bytes: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            extra_labels: Vec::new(),
            default_ts_ms: crate::store::now_ms(),
            precision: Precision::Ns,
            max_line_bytes: 4 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Syntax,
    BadLabel,
    BadValue,
    BadTimestamp,
    LengthMismatch,
    LineTooLong,
    InvalidUtf8,
    TooManyLabels,
    LabelTooLong,
    EmptyMetricName,
}

const REASONS: [RejectReason; 10] = [
    RejectReason::Syntax,
    RejectReason::BadLabel,
    RejectReason::BadValue,
    RejectReason::BadTimestamp,
    RejectReason::LengthMismatch,
    RejectReason::LineTooLong,
    RejectReason::InvalidUtf8,
    RejectReason::TooManyLabels,
    RejectReason::LabelTooLong,
    RejectReason::EmptyMetricName,
];

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Syntax => "syntax",
            RejectReason::BadLabel => "bad_label",
            RejectReason::BadValue => "bad_value",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::LengthMismatch => "length_mismatch",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::TooManyLabels => "too_many_labels",
            RejectReason::LabelTooLong => "label_too_long",
            RejectReason::EmptyMetricName => "empty_metric_name",
        }
    }

    fn index(self) -> usize {
        REASONS.iter().position(|&r| r == self).unwrap_or(0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// 1-based line (remote write: 1-based timeseries index).
    pub line: usize,
    pub reason: RejectReason,
    pub message: String,
    /// The line, cut to [`SAMPLE_BYTES`] bytes, lossy UTF-8.
    pub sample: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    pub metric: String,
    /// counter gauge histogram summary untyped (and OpenMetrics' gaugehistogram info stateset).
    pub kind: Option<String>,
    pub help: Option<String>,
    pub unit: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct IngestReport {
    /// Samples written.
    pub samples: u64,
    pub series_created: u64,
    /// The first [`MAX_REJECTIONS`], in order.
    pub rejected: Vec<Rejection>,
    /// Complete counts, only reasons that occurred, in [`RejectReason`] declaration order.
    pub rejected_by_reason: Vec<(RejectReason, u64)>,
    /// From `# TYPE` / `# HELP` / `# UNIT` lines and remote write metadata, one entry per
    /// metric, in order of first appearance.
    pub metadata: Vec<Metadata>,
}

impl IngestReport {
    /// Total number of rejected lines (timeseries for remote write).
    pub fn rejected_total(&self) -> u64 {
        self.rejected_by_reason.iter().map(|r| r.1).sum()
    }
}

/// Decompress a request body by its `Content-Encoding`: `gzip` / `x-gzip` / `deflate`
/// (zlib-wrapped as HTTP specifies, raw deflate also accepted) / `snappy` (block format as
/// remote write uses; the framed stream format is recognised by its header too) /
/// `identity` / `""`. Output over `max_bytes` -> `Err(TooLarge)`, detected while
/// decompressing, so a bomb never allocates much more than `max_bytes`. Corrupt input ->
/// `Err(BadInput)` naming the encoding. Unknown encoding -> `Err(BadInput)`.
pub fn decompress(encoding: &str, body: &[u8], max_bytes: usize) -> Result<Vec<u8>> {
    let enc = encoding.trim().to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => {
            if body.len() > max_bytes {
                return Err(too_large("identity", max_bytes));
            }
            Ok(body.to_vec())
        }
        "gzip" | "x-gzip" => read_limited("gzip", flate2::read::MultiGzDecoder::new(body), body.len(), max_bytes),
        "deflate" => {
            if is_zlib_header(body) {
                read_limited("deflate", flate2::read::ZlibDecoder::new(body), body.len(), max_bytes)
            } else {
                read_limited("deflate", flate2::read::DeflateDecoder::new(body), body.len(), max_bytes)
            }
        }
        "snappy" => {
            const STREAM_HEADER: &[u8] = b"\xff\x06\x00\x00sNaPpY";
            if body.starts_with(STREAM_HEADER) {
                return read_limited("snappy", snap::read::FrameDecoder::new(body), body.len(), max_bytes);
            }
            let len = snap::raw::decompress_len(body)
                .map_err(|e| Error::bad_input(format!("snappy: corrupt input: {e}")))?;
            if len > max_bytes {
                return Err(too_large("snappy", max_bytes));
            }
            let mut out = vec![0u8; len];
            let n = snap::raw::Decoder::new()
                .decompress(body, &mut out)
                .map_err(|e| Error::bad_input(format!("snappy: corrupt input: {e}")))?;
            out.truncate(n);
            Ok(out)
        }
        other => Err(Error::bad_input(format!(
            "unsupported content encoding {other:?} (supported: gzip, deflate, snappy, identity)"
        ))),
    }
}

fn too_large(encoding: &str, max_bytes: usize) -> Error {
    Error::new(ErrorKind::TooLarge, format!("{encoding}: decompressed body is over the limit of {max_bytes} bytes"))
}

/// RFC 1950 header: CM = 8 (deflate), CINFO <= 7, FCHECK makes the first 16 bits a multiple of 31.
fn is_zlib_header(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && b[0] >> 4 <= 7 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Read a decoder to the end, failing as soon as the output passes `max_bytes`. The
/// output buffer grows geometrically but never past `max_bytes + 1`.
fn read_limited(encoding: &str, mut r: impl Read, in_len: usize, max_bytes: usize) -> Result<Vec<u8>> {
    let limit = max_bytes.saturating_add(1);
    let mut out: Vec<u8> = Vec::with_capacity(in_len.saturating_mul(4).max(4096).min(limit));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(too_large(encoding, max_bytes));
            }
            let grow = out.capacity().max(4096).min(limit - out.len());
            out.reserve_exact(grow);
        }
        let len = out.len();
        let room = (out.capacity() - len).min(limit - len);
        out.resize(len + room, 0);
        match r.read(&mut out[len..]) {
            Ok(0) => {
                out.truncate(len);
                return Ok(out);
            }
            Ok(n) => {
                out.truncate(len + n);
                if out.len() > max_bytes {
                    return Err(too_large(encoding, max_bytes));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => out.truncate(len),
            Err(e) => return Err(Error::bad_input(format!("{encoding}: corrupt input: {e}"))),
        }
    }
}

/// Parse `body` in `format` and write every valid sample through `store`. See the module
/// docs; per-format rules are in `FORMAT-ingest.md`.
pub fn ingest(store: &Store, format: Format, body: &[u8], opts: &IngestOptions) -> Result<IngestReport> {
    let mut sink = Sink::new(store, format, opts, body.len())?;
    parse(&mut sink, format, body)?;
    sink.finish()
}

/// One body of [`ingest_many`]: its format, bytes and options.
pub type BodyRef<'a> = (Format, &'a [u8], &'a IngestOptions);

/// Parse and write several bodies in one pass, so that the fixed costs of a body (sink
/// buffers, the store write and its WAL record) are paid once per call, not per body: the
/// samples of all bodies go to the store in shared batches of up to [`BATCH`].
///
/// Each body gets its own report, as [`ingest`] would give. A body that cannot be decoded
/// at all (`BadInput`, `TooLarge`: a remote write protobuf error, an invalid extra label)
/// gets its `Err` and nothing of it is written; the other bodies go on. A store failure
/// (closed store, WAL I/O error) fails the whole call: the bodies before it may be written
/// in part, as a single body may be when its store write fails.
pub fn ingest_many(store: &Store, bodies: &[BodyRef]) -> Result<Vec<Result<IngestReport>>> {
    let Some((format, _, opts)) = bodies.first() else {
        return Ok(Vec::new());
    };
    let bytes = bodies.iter().map(|(_, body, _)| body.len()).sum();
    let mut sink = Sink::new(store, *format, opts, bytes)?;
    let mut out = Vec::with_capacity(bodies.len());
    for (i, (format, body, opts)) in bodies.iter().enumerate() {
        let parsed = if i == 0 { Ok(()) } else { sink.begin(*format, opts) }.and_then(|()| parse(&mut sink, *format, body));
        match parsed {
            Ok(()) => out.push(Ok(sink.end_body())),
            Err(e) if matches!(e.kind, ErrorKind::BadInput | ErrorKind::TooLarge) => {
                sink.drop_body();
                out.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    sink.flush()?;
    Ok(out)
}

fn parse(sink: &mut Sink, format: Format, body: &[u8]) -> Result<()> {
    match format {
        Format::PrometheusText => prometheus_text::ingest(sink, body),
        Format::Influx => influx::ingest(sink, body),
        Format::VmJson => vm_json::ingest(sink, body),
        Format::RemoteWrite => remote_write::ingest(sink, body),
    }
}

// ------------------------------------------------------------------ shared machinery

/// A line-level failure (the line is rejected) or a store failure (the call fails).
#[derive(Debug)]
pub(crate) enum Fail {
    Line(RejectReason, String),
    Store(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Store(e)
    }
}

pub(crate) fn line_err<T>(reason: RejectReason, message: impl Into<String>) -> std::result::Result<T, Fail> {
    Err(Fail::Line(reason, message.into()))
}

/// Owned label pairs built on a cache miss; `__name__` is one of them.
pub(crate) type Pairs = Vec<(String, String)>;

/// Where parsers put what they found: raw-key resolution, sample batches, the report.
pub(crate) struct Sink<'a> {
    store: &'a Store,
    pub(crate) opts: &'a IngestOptions,
    limits: LabelLimits,
    /// The raw-cache key being built: `prefix_len` bytes of format tag and extra labels,
    /// then whatever the parser appends.
    pub(crate) key: Vec<u8>,
    prefix_len: usize,
    ids: Vec<SeriesId>,
    ts: Vec<Timestamp>,
    vals: Vec<f64>,
    /// Where the current body's unwritten samples start in `ids`/`ts`/`vals`.
    body_start: usize,
    report: IngestReport,
    counts: [u64; REASONS.len()],
    meta_index: HashMap<String, usize>,
}

impl<'a> Sink<'a> {
    /// A sink for bodies of `bytes` in all: its sample buffers start at a size for that
    /// many bytes (a sample takes at least 4 bytes of text), up to [`BATCH`]. Full-size
    /// buffers for a one-line body would be three allocations of 128 KiB, which the
    /// allocator maps and unmaps around each call (a TLB shootdown each).
    fn new(store: &'a Store, format: Format, opts: &'a IngestOptions, bytes: usize) -> Result<Sink<'a>> {
        let samples = (bytes / 4 + 1).min(BATCH);
        let mut sink = Sink {
            store,
            opts,
            limits: store.config().label_limits.clone(),
            key: Vec::with_capacity(512),
            prefix_len: 0,
            ids: Vec::with_capacity(samples),
            ts: Vec::with_capacity(samples),
            vals: Vec::with_capacity(samples),
            body_start: 0,
            report: IngestReport::default(),
            counts: [0; REASONS.len()],
            meta_index: HashMap::new(),
        };
        sink.begin(format, opts)?;
        Ok(sink)
    }

    /// Start a body: key prefix (format tag and extra labels), a fresh report. The sample
    /// buffers are kept: they may hold earlier bodies' samples, not written yet.
    fn begin(&mut self, format: Format, opts: &'a IngestOptions) -> Result<()> {
        self.opts = opts;
        self.key.clear();
        self.key.push(format.key_tag());
        self.key.extend_from_slice(&(opts.extra_labels.len() as u32).to_le_bytes());
        for (i, (n, v)) in opts.extra_labels.iter().enumerate() {
            if n != METRIC_NAME && !valid_label_name(n) {
                return Err(Error::bad_input(format!(
                    "extra label {i}: invalid label name {n:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
                )));
            }
            if opts.extra_labels[..i].iter().any(|(m, _)| m == n) {
                return Err(Error::bad_input(format!("extra label {i}: duplicate label name {n:?}")));
            }
            for s in [n, v] {
                self.key.extend_from_slice(&(s.len() as u32).to_le_bytes());
                self.key.extend_from_slice(s.as_bytes());
            }
        }
        self.prefix_len = self.key.len();
        self.body_start = self.ids.len();
        self.report = IngestReport::default();
        self.counts = [0; REASONS.len()];
        self.meta_index.clear();
        Ok(())
    }

    /// The current body's report (its samples are buffered or written).
    fn end_body(&mut self) -> IngestReport {
        let mut report = std::mem::take(&mut self.report);
        report.rejected_by_reason =
            REASONS.iter().zip(self.counts).filter(|(_, n)| *n > 0).map(|(r, n)| (*r, n)).collect();
        self.body_start = self.ids.len();
        report
    }

    /// Forget the current body's samples that are not written yet (it failed as a whole).
    fn drop_body(&mut self) {
        self.ids.truncate(self.body_start);
        self.ts.truncate(self.body_start);
        self.vals.truncate(self.body_start);
        self.report = IngestReport::default();
    }

    /// Start a new key (keeps the format tag and extra labels).
    #[inline]
    pub(crate) fn key_reset(&mut self) {
        self.key.truncate(self.prefix_len);
    }

    /// The series cached for the current key, if any.
    #[inline]
    pub(crate) fn cached(&self) -> Option<SeriesId> {
        self.store.cached_id(&self.key)
    }

    /// Resolve the current key from labels parsed on a miss: sanitise names, apply the
    /// extra labels, validate against the store's limits, create the series if needed
    /// and cache it under the key.
    pub(crate) fn resolve_miss(&mut self, pairs: Pairs) -> std::result::Result<SeriesId, Fail> {
        let labels = finish_labels(pairs, &self.opts.extra_labels, &self.limits)?;
        let existed = self.store.lookup(&labels).is_some();
        let id = self.store.resolve_raw(&self.key, || Ok(labels))?;
        if !existed {
            self.report.series_created += 1;
        }
        Ok(id)
    }

    /// Resolve the current key: cache hit, or `build` the labels and resolve.
    #[inline]
    pub(crate) fn resolve(
        &mut self,
        build: impl FnOnce() -> std::result::Result<Pairs, Fail>,
    ) -> std::result::Result<SeriesId, Fail> {
        match self.cached() {
            Some(id) => Ok(id),
            None => {
                let pairs = build()?;
                self.resolve_miss(pairs)
            }
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, id: SeriesId, ts: Timestamp, val: f64) -> Result<()> {
        self.ids.push(id);
        self.ts.push(ts);
        self.vals.push(val);
        self.report.samples += 1;
        if self.ids.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        self.store.write_unchecked(&self.ids, &self.ts, &self.vals)?;
        self.body_start = 0;
        self.ids.clear();
        self.ts.clear();
        self.vals.clear();
        Ok(())
    }

    pub(crate) fn reject(&mut self, line: usize, reason: RejectReason, message: String, sample: &[u8]) {
        self.counts[reason.index()] += 1;
        if self.report.rejected.len() < MAX_REJECTIONS {
            self.report.rejected.push(Rejection { line, reason, message, sample: sample_text(sample) });
        }
    }

    /// Handle the outcome of one line: a line failure is recorded, a store failure returned.
    #[inline]
    pub(crate) fn settle(&mut self, line: usize, sample: &[u8], r: std::result::Result<(), Fail>) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(Fail::Line(reason, message)) => {
                self.reject(line, reason, message, sample);
                Ok(())
            }
            Err(Fail::Store(e)) => Err(e),
        }
    }

    /// Update the metadata entry of `metric` (created on first use).
    pub(crate) fn metadata(&mut self, metric: &str, f: impl FnOnce(&mut Metadata)) {
        let i = match self.meta_index.get(metric) {
            Some(&i) => i,
            None => {
                self.report.metadata.push(Metadata { metric: metric.to_string(), ..Metadata::default() });
                self.meta_index.insert(metric.to_string(), self.report.metadata.len() - 1);
                self.report.metadata.len() - 1
            }
        };
        f(&mut self.report.metadata[i]);
    }

    fn finish(mut self) -> Result<IngestReport> {
        self.flush()?;
        Ok(self.end_body())
    }
}

/// The rejected line for the report: at most [`SAMPLE_BYTES`] bytes of lossy UTF-8.
pub(crate) fn sample_text(line: &[u8]) -> String {
    let cut = &line[..line.len().min(SAMPLE_BYTES)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if s.len() > SAMPLE_BYTES {
        let mut end = SAMPLE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the store's rule for label names.
pub(crate) fn valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Make a label name valid for the store: every character outside `[a-zA-Z0-9_]` becomes
/// `_`, and a name starting with a digit gets a `_` prefix (VictoriaMetrics's
/// `-usePromCompatibleNaming` / Prometheus's OTLP translation do the same). The empty name
/// cannot be sanitised: `None`.
pub(crate) fn sanitize_label_name(name: String) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    if valid_label_name(&name) {
        return Some(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    if name.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    for c in name.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' });
    }
    Some(out)
}

/// Turn the pairs parsed from a line into validated [`Labels`], classifying failures.
pub(crate) fn finish_labels(
    mut pairs: Pairs,
    extra: &[(String, String)],
    limits: &LabelLimits,
) -> std::result::Result<Labels, Fail> {
    let mut named: Pairs = Vec::with_capacity(pairs.len() + extra.len());
    for (n, v) in pairs.drain(..) {
        if n == METRIC_NAME {
            named.push((n, v));
            continue;
        }
        match sanitize_label_name(n) {
            Some(n) => named.push((n, v)),
            None => return line_err(RejectReason::BadLabel, "empty label name"),
        }
    }
    named.retain(|(n, _)| !extra.iter().any(|(e, _)| e == n));
    named.extend(extra.iter().cloned());
    match named.iter().find(|(n, _)| n == METRIC_NAME) {
        None => return line_err(RejectReason::EmptyMetricName, "missing metric name"),
        Some((_, v)) if v.is_empty() => return line_err(RejectReason::EmptyMetricName, "empty metric name"),
        _ => {}
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for w in named.windows(2) {
        if w[0].0 == w[1].0 {
            return line_err(RejectReason::BadLabel, format!("duplicate label name {:?}", w[0].0));
        }
    }
    for (n, v) in &named {
        if n.len() > limits.max_label_len {
            return line_err(
                RejectReason::LabelTooLong,
                format!("label name {:?}... is {} bytes, over the limit of {}", prefix(n), n.len(), limits.max_label_len),
            );
        }
        if v.len() > limits.max_label_len {
            return line_err(
                RejectReason::LabelTooLong,
                format!("value of label {n:?} is {} bytes, over the limit of {}", v.len(), limits.max_label_len),
            );
        }
    }
    let count = named.iter().filter(|(n, v)| n != METRIC_NAME && !v.is_empty()).count();
    if count > limits.max_labels {
        return line_err(
            RejectReason::TooManyLabels,
            format!("{count} labels besides __name__, over the limit of {}", limits.max_labels),
        );
    }
    let refs: Vec<(&str, &str)> = named.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    Labels::from_pairs(&refs, limits).or_else(|e| line_err(RejectReason::BadLabel, e.message))
}

fn prefix(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bytes as `&str`, or an [`RejectReason::InvalidUtf8`] failure naming `what`.
pub(crate) fn utf8<'b>(b: &'b [u8], what: &str) -> std::result::Result<&'b str, Fail> {
    std::str::from_utf8(b).or_else(|e| line_err(RejectReason::InvalidUtf8, format!("{what}: invalid UTF-8 at byte {}", e.valid_up_to())))
}

/// Index of the first `needle` in `hay` (SWAR, 8 bytes at a time).
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pat = LO.wrapping_mul(needle as u64);
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().unwrap()) ^ pat;
        let z = w.wrapping_sub(LO) & !w & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == needle).map(|p| i + p)
}

#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080
}

/// Index of the first byte of `hay[from..]` equal to `a` or `b` (absolute), or `hay.len()`.
#[inline]
pub(crate) fn find2(hay: &[u8], mut i: usize, a: u8, b: u8) -> usize {
    let (pa, pb) = (0x0101_0101_0101_0101u64 * a as u64, 0x0101_0101_0101_0101u64 * b as u64);
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().unwrap());
        let z = zero_bytes(w ^ pa) | zero_bytes(w ^ pb);
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < hay.len() && hay[i] != a && hay[i] != b {
        i += 1;
    }
    i
}

/// Index of the first byte of `hay[from..]` equal to `a`, `b` or `c` (absolute), or `hay.len()`.
#[inline]
pub(crate) fn find3(hay: &[u8], mut i: usize, a: u8, b: u8, c: u8) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    let (pa, pb, pc) = (LO * a as u64, LO * b as u64, LO * c as u64);
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().unwrap());
        let z = zero_bytes(w ^ pa) | zero_bytes(w ^ pb) | zero_bytes(w ^ pc);
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < hay.len() && hay[i] != a && hay[i] != b && hay[i] != c {
        i += 1;
    }
    i
}

/// Iterate over `body` split at `\n` (a trailing `\r` removed): `(1-based line number, line)`.
pub(crate) struct Lines<'b> {
    body: &'b [u8],
    pos: usize,
    line: usize,
}

impl<'b> Lines<'b> {
    pub(crate) fn new(body: &'b [u8]) -> Self {
        Lines { body, pos: 0, line: 0 }
    }
}

impl<'b> Iterator for Lines<'b> {
    type Item = (usize, &'b [u8]);
    #[inline]
    fn next(&mut self) -> Option<(usize, &'b [u8])> {
        if self.pos >= self.body.len() {
            return None;
        }
        let rest = &self.body[self.pos..];
        let end = find_byte(rest, b'\n').unwrap_or(rest.len());
        let mut line = &rest[..end];
        self.pos += end + 1;
        self.line += 1;
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        Some((self.line, line))
    }
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    1e20, 1e21, 1e22,
];

/// Parse a float the way Go's `strconv.ParseFloat` / Rust's `str::parse` do (decimal,
/// exponent, optional sign, `Inf`/`Infinity`/`NaN` in any case). The common forms (up to
/// 19 significant digits, small exponents) take an exact fast path; the rest go to the
/// standard library's correctly rounded parser.
#[inline]
pub(crate) fn parse_f64(s: &[u8]) -> Option<f64> {
    let n = s.len();
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        Some(_) => false,
        None => return None,
    };
    let mut mant: u64 = 0;
    let int_start = i;
    while i < n && s[i].is_ascii_digit() {
        mant = mant.wrapping_mul(10).wrapping_add((s[i] - b'0') as u64);
        i += 1;
    }
    let mut digits = i - int_start;
    let mut frac = 0usize;
    if i < n && s[i] == b'.' {
        i += 1;
        let f = i;
        while i < n && s[i].is_ascii_digit() {
            mant = mant.wrapping_mul(10).wrapping_add((s[i] - b'0') as u64);
            i += 1;
        }
        frac = i - f;
        digits += frac;
    }
    if digits == 0 {
        return parse_f64_slow(s);
    }
    let mut exp: i64 = 0;
    if i < n && (s[i] | 0x20) == b'e' {
        i += 1;
        let eneg = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let e0 = i;
        while i < n && s[i].is_ascii_digit() {
            if exp < 100_000 {
                exp = exp * 10 + (s[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == e0 {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != n || digits > 19 {
        return parse_f64_slow(s);
    }
    let e10 = exp - frac as i64;
    let v = if mant == 0 {
        0.0
    } else if mant <= (1u64 << 53) && (-22..=22).contains(&e10) {
        let m = mant as f64;
        if e10 >= 0 {
            m * POW10[e10 as usize]
        } else {
            m / POW10[(-e10) as usize]
        }
    } else {
        return parse_f64_slow(s);
    };
    Some(if neg { -v } else { v })
}

#[cold]
fn parse_f64_slow(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.parse::<f64>().ok()
}

/// Parse a decimal `i64` with optional sign, no other characters. Up to 18 digits (every
/// millisecond or nanosecond timestamp) take a branch-light path, 8 digits at a time.
#[inline]
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return None,
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        let mut v: u64 = 0;
        let mut i = 0;
        while i + 8 <= digits.len() {
            v = v * 100_000_000 + parse8(u64::from_le_bytes(digits[i..i + 8].try_into().unwrap()))?;
            i += 8;
        }
        for &c in &digits[i..] {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + d as u64;
        }
        let v = v as i64;
        return Some(if neg { -v } else { v });
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg { v.checked_mul(10)?.checked_sub(d)? } else { v.checked_mul(10)?.checked_add(d)? };
    }
    Some(v)
}

/// Eight ASCII digits (little-endian in `w`) to their value, `None` if any is not a digit.
#[inline]
fn parse8(w: u64) -> Option<u64> {
    let v = w.wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' borrows (high bit set); a byte above '9' overflows when 0x46 is added.
    if (v | w.wrapping_add(0x4646_4646_4646_4646)) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v.wrapping_mul(10000) + (v >> 32)) & 0xFFFF_FFFF)
}

/// Parse a decimal `u64`, digits only.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

#[inline]
pub(crate) fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

#[inline]
pub(crate) fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use crate::store::StoreConfig;

    pub fn store() -> Store {
        Store::open(StoreConfig::default()).unwrap().0
    }

    pub fn opts() -> IngestOptions {
        IngestOptions { default_ts_ms: 1_000_000, ..IngestOptions::default() }
    }

    /// The id of the series with exactly these labels (metric first).
    pub fn id_of(store: &Store, metric: &str, labels: &[(&str, &str)]) -> SeriesId {
        let l = store.labels(metric, labels).unwrap();
        store.lookup(&l).unwrap_or_else(|| panic!("no series {l}"))
    }

    pub fn read_all(store: &Store, id: SeriesId) -> (Vec<Timestamp>, Vec<f64>) {
        store.read(id, i64::MIN, i64::MAX)
    }

    pub fn reasons(r: &IngestReport) -> Vec<(usize, RejectReason)> {
        r.rejected.iter().map(|x| (x.line, x.reason)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use std::io::Write;

    #[test]
    fn ingest_parse_f64_matches_std() {
        let cases = [
            "0", "-0", "1", "+1", "1.5", "-2.25", "1e3", "1E-3", "123456789012345678", "0.1", "3.14159265358979",
            "1e22", "1e23", "9007199254740993", "12345678901234567890", "1.7976931348623157e308", "5e-324", "1e-400",
            "1e400", ".5", "5.", "0.000001", "100.000", "Inf", "+Inf", "-inf", "infinity", "NaN", "nan",
            "4.35", "2.5e-5", "1234.5678e2", "00012",
        ];
        for c in cases {
            let want: f64 = c.parse().unwrap();
            let got = parse_f64(c.as_bytes()).unwrap_or_else(|| panic!("{c}"));
            if want.is_nan() {
                assert!(got.is_nan(), "{c}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{c}");
            }
        }
        for bad in ["", "-", "+", "e5", "1e", "1e+", "abc", "1.2.3", "1 ", "0x10", "--1", "1,5"] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad}");
        }
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..20_000 {
            let s = match rng.gen_range(0..3) {
                0 => format!("{}", rng.gen::<f64>() * 10f64.powi(rng.gen_range(-30..30))),
                1 => format!("{}", rng.gen_range(-1_000_000_000i64..1_000_000_000)),
                _ => format!("{}.{:03}e{}", rng.gen_range(0..100000), rng.gen_range(0..1000), rng.gen_range(-25..25)),
            };
            let want: f64 = s.parse().unwrap();
            assert_eq!(parse_f64(s.as_bytes()).map(f64::to_bits), Some(want.to_bits()), "{s}");
        }
    }

    #[test]
    fn ingest_parse_ints_and_find_byte() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"+12"), Some(12));
        for bad in [&b""[..], b"-", b"1.0", b"1e3", b" 1", b"12a"] {
            assert_eq!(parse_i64(bad), None);
        }
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        let hay: Vec<u8> = (0..100u8).collect();
        for n in 0..100u8 {
            assert_eq!(find_byte(&hay, n), Some(n as usize));
        }
        assert_eq!(find_byte(&hay, 200), None);
        assert_eq!(find_byte(b"", b'x'), None);
        assert_eq!(find_byte(b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\n", b'\n'), Some(9));
        for len in 0..40usize {
            for pos in 0..=len {
                let mut h = vec![b'x'; len];
                if pos < len {
                    h[pos] = b'}';
                }
                assert_eq!(find2(&h, 0, b'"', b'}'), pos);
                assert_eq!(find3(&h, 0, b' ', b'{', b'}'), pos);
                assert_eq!(find2(&h, pos.min(len), b'}', b'}'), pos);
            }
        }
        // Bytes next to the needles (0x7c, 0x7e, 0x01, 0xff) never match.
        let h = b"\x7c\x7e\x01\xff\x00\x7c\x7e\x01\xff\x7c}";
        assert_eq!(find3(h, 0, b'}', b'"', b' '), 10);
        // parse_i64 around the 8-digit SWAR path and the 18/19-digit switch.
        for s in ["12345678", "1700000000000", "999999999999999999", "-999999999999999999", "1000000000000000000",
            "00000000", "99999999", "123456789012345678"] {
            assert_eq!(parse_i64(s.as_bytes()), s.parse::<i64>().ok(), "{s}");
        }
        for bad in ["1234567a", "1234/678", "12345678:", "1700000000000x", "12 45678"] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn ingest_sanitize_and_sample() {
        assert_eq!(sanitize_label_name("ok_name".into()).unwrap(), "ok_name");
        assert_eq!(sanitize_label_name("a.b-c".into()).unwrap(), "a_b_c");
        assert_eq!(sanitize_label_name("1abc".into()).unwrap(), "_1abc");
        assert_eq!(sanitize_label_name("héllo".into()).unwrap(), "h_llo");
        assert_eq!(sanitize_label_name(String::new()), None);
        let long = "é".repeat(300);
        let s = sample_text(long.as_bytes());
        assert!(s.len() <= SAMPLE_BYTES && s.chars().all(|c| c == 'é'), "{s}");
        assert_eq!(s.len(), 256);
        let mut bad = b"ab\xffcd".to_vec();
        bad.extend(std::iter::repeat(b'x').take(600));
        let s = sample_text(&bad);
        assert!(s.starts_with("ab\u{fffd}cd") && s.len() <= SAMPLE_BYTES);
    }

    #[test]
    fn ingest_precision_conversion() {
        assert_eq!(Precision::Ns.to_ms(1_700_000_000_123_456_789), Some(1_700_000_000_123));
        assert_eq!(Precision::Us.to_ms(1_700_000_000_123_456), Some(1_700_000_000_123));
        assert_eq!(Precision::Ms.to_ms(1_700_000_000_123), Some(1_700_000_000_123));
        assert_eq!(Precision::S.to_ms(1_700_000_000), Some(1_700_000_000_000));
        assert_eq!(Precision::Ns.to_ms(-1), Some(-1));
        assert_eq!(Precision::S.to_ms(i64::MAX), None);
        assert_eq!(Precision::parse("u"), Some(Precision::Us));
        assert_eq!(Precision::parse("h"), None);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn ingest_decompress_round_trips() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| format!("m{{i=\"{}\"}} {i}\n", i % 97).into_bytes()).collect();
        assert_eq!(decompress("gzip", &gzip(&data), data.len()).unwrap(), data);
        assert_eq!(decompress("X-Gzip", &gzip(&data), data.len()).unwrap(), data);
        // Two gzip members back to back (allowed by RFC 1952).
        let mut two = gzip(b"abc");
        two.extend(gzip(b"def"));
        assert_eq!(decompress("gzip", &two, 100).unwrap(), b"abcdef");

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        assert_eq!(decompress("deflate", &z.finish().unwrap(), data.len()).unwrap(), data);
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(&data).unwrap();
        assert_eq!(decompress("deflate", &d.finish().unwrap(), data.len()).unwrap(), data);

        let sn = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress("snappy", &sn, data.len()).unwrap(), data);
        let mut fw = snap::write::FrameEncoder::new(Vec::new());
        fw.write_all(&data).unwrap();
        assert_eq!(decompress("snappy", &fw.into_inner().unwrap(), data.len()).unwrap(), data);

        assert_eq!(decompress("identity", b"xyz", 3).unwrap(), b"xyz");
        assert_eq!(decompress("", b"", 0).unwrap(), b"");
        assert_eq!(decompress("", b"xyz", 2).unwrap_err().kind, ErrorKind::TooLarge);
        // Exactly at the limit is fine, one byte over is not.
        assert_eq!(decompress("gzip", &gzip(&data), data.len() - 1).unwrap_err().kind, ErrorKind::TooLarge);
        assert_eq!(decompress("snappy", &sn, data.len() - 1).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn ingest_decompress_corrupt_and_unknown() {
        let g = gzip(b"hello world hello world");
        for (enc, body) in [
            ("gzip", &b"not gzip at all"[..]),
            ("gzip", &g[..g.len() / 2]),
            ("deflate", &b"\x78\x9c\xff\xff\xff\xff"[..]),
            ("snappy", &b"\xff\xff\xff\xff\xff\xff"[..]),
            ("snappy", &b"\x10\x00abc"[..]),
        ] {
            let e = decompress(enc, body, 1 << 20).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadInput, "{enc}: {e}");
            assert!(e.message.starts_with(enc), "{e}");
        }
        let e = decompress("br", b"x", 10).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
        assert!(e.message.contains("\"br\""));
    }

    #[test]
    fn ingest_decompress_bombs_stop_early() {
        // 1 GiB of zeros, gzip-compressed in a streaming way (about 1 MiB of input).
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 2 << 20);
        let t = std::time::Instant::now();
        let err = decompress("gzip", &bomb, 1 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());

        // Snappy's header claims the size: refused before allocating anything.
        let big = snap::raw::Encoder::new().compress_vec(&vec![0u8; 4 << 20]).unwrap();
        assert_eq!(decompress("snappy", &big, 1 << 20).unwrap_err().kind, ErrorKind::TooLarge);
        let mut fw = snap::write::FrameEncoder::new(Vec::new());
        fw.write_all(&vec![0u8; 4 << 20]).unwrap();
        assert_eq!(decompress("snappy", &fw.into_inner().unwrap(), 1 << 20).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn ingest_end_to_end_all_formats_share_series() {
        let store = store();
        let mut o = opts();
        o.extra_labels = vec![("tenant".into(), "t1".into())];
        let prom = b"# TYPE up gauge\nup{job=\"a\"} 1 1000\nup{job=\"a\"} 0 2000\n";
        let r = ingest(&store, Format::PrometheusText, prom, &o).unwrap();
        assert_eq!((r.samples, r.series_created, r.rejected_total()), (2, 1, 0));
        let json = br#"{"metric":{"__name__":"up","job":"a"},"values":[5],"timestamps":[3000]}"#;
        let r = ingest(&store, Format::VmJson, json, &o).unwrap();
        assert_eq!((r.samples, r.series_created), (1, 0));
        o.precision = Precision::S;
        let r = ingest(&store, Format::Influx, b"up,job=a value=7 4\n", &o).unwrap();
        assert_eq!((r.samples, r.series_created), (1, 0));
        let id = id_of(&store, "up", &[("job", "a"), ("tenant", "t1")]);
        assert_eq!(read_all(&store, id), (vec![1000, 2000, 3000, 4000], vec![1.0, 0.0, 5.0, 7.0]));
        assert_eq!(store.series_count(), 1);

        // A repeated body is all cache hits: no series created, same samples again.
        let r = ingest(&store, Format::PrometheusText, prom, &o).unwrap();
        assert_eq!((r.samples, r.series_created), (2, 0));

        // Same raw text with other extra labels is another series (the key includes them).
        o.extra_labels = vec![("tenant".into(), "t2".into())];
        let r = ingest(&store, Format::PrometheusText, prom, &o).unwrap();
        assert_eq!((r.samples, r.series_created), (2, 1));

        // Invalid extra label names refuse the call.
        o.extra_labels = vec![("bad-name".into(), "x".into())];
        assert_eq!(ingest(&store, Format::PrometheusText, prom, &o).unwrap_err().kind, ErrorKind::BadInput);
    }

    #[test]
    fn ingest_batches_larger_than_one_write() {
        let store = store();
        let mut body = String::new();
        for i in 0..(BATCH * 2 + 10) {
            body.push_str(&format!("m{{s=\"{}\"}} {i} {}\n", i % 10, 1000 + i));
        }
        let r = ingest(&store, Format::PrometheusText, body.as_bytes(), &opts()).unwrap();
        assert_eq!(r.samples, (BATCH * 2 + 10) as u64);
        assert_eq!(r.series_created, 10);
        let id = id_of(&store, "m", &[("s", "3")]);
        let (ts, vals) = read_all(&store, id);
        assert_eq!(ts.len(), (0..BATCH * 2 + 10).filter(|i| i % 10 == 3).count());
        assert_eq!((ts[0], vals[0]), (1003, 3.0));
    }

    #[test]
    fn ingest_rejections_capped_but_counted() {
        let store = store();
        let mut body = String::new();
        for _ in 0..150 {
            body.push_str("m{a=\"1\"} notanumber\n");
        }
        body.push_str("m 1 5\n");
        let r = ingest(&store, Format::PrometheusText, body.as_bytes(), &opts()).unwrap();
        assert_eq!(r.rejected.len(), MAX_REJECTIONS);
        assert_eq!(r.rejected_by_reason, vec![(RejectReason::BadValue, 150)]);
        assert_eq!(r.rejected[99].line, 100);
        assert_eq!(r.samples, 1);
    }

    #[test]
    fn ingest_label_limits_classified() {
        let cfg = crate::store::StoreConfig {
            label_limits: LabelLimits { max_labels: 2, max_label_len: 10 },
            ..crate::store::StoreConfig::default()
        };
        let store = Store::open(cfg).unwrap().0;
        let body = b"m{a=\"1\",b=\"2\",c=\"3\"} 1\nm{a=\"12345678901\"} 1\nmetric_name_too_long 1\nm{a=\"1\",b=\"2\",c=\"\"} 1\nm{a=\"1\",a=\"2\"} 1\n{a=\"1\"} 1\n";
        let r = ingest(&store, Format::PrometheusText, body, &opts()).unwrap();
        assert_eq!(
            reasons(&r),
            vec![
                (1, RejectReason::TooManyLabels),
                (2, RejectReason::LabelTooLong),
                (3, RejectReason::LabelTooLong),
                (5, RejectReason::BadLabel),
                (6, RejectReason::EmptyMetricName)
            ]
        );
        assert_eq!(r.samples, 1);
    }

    #[test]
    fn ingest_many_gives_each_body_its_own_report_and_writes_them_all() {
        let store = store();
        let plain = opts();
        let influx = IngestOptions {
            extra_labels: vec![("dc".into(), "eu".into())],
            precision: Precision::S,
            ..opts()
        };
        let bad_extra = IngestOptions { extra_labels: vec![("1bad".into(), "x".into())], ..opts() };
        let bodies: Vec<BodyRef> = vec![
            (Format::PrometheusText, b"# TYPE up gauge\nup{job=\"a\"} 1 5000\nup{job=\"a\"} x 6000\n", &plain),
            (Format::RemoteWrite, b"\xff\xff\xff", &plain),
            (Format::Influx, b"cpu,host=h v=2 7\ncpu,host=h v=3 8\n", &influx),
            (Format::PrometheusText, b"never 1 1000\n", &bad_extra),
            (Format::PrometheusText, b"up{job=\"a\"} 4 9000\n", &plain),
        ];
        let out = ingest_many(&store, &bodies).unwrap();
        assert_eq!(out.len(), 5);

        let r0 = out[0].as_ref().unwrap();
        assert_eq!((r0.samples, r0.series_created), (1, 1));
        assert_eq!(reasons(r0), vec![(3, RejectReason::BadValue)]);
        assert_eq!(r0.rejected_by_reason, vec![(RejectReason::BadValue, 1)]);
        assert_eq!(r0.metadata[0].kind.as_deref(), Some("gauge"));

        let e1 = out[1].as_ref().unwrap_err();
        assert_eq!(e1.kind, ErrorKind::BadInput);

        let r2 = out[2].as_ref().unwrap();
        assert_eq!((r2.samples, r2.series_created, r2.rejected.len()), (2, 1, 0));
        assert!(r2.metadata.is_empty());

        assert!(out[3].as_ref().unwrap_err().message.contains("extra label 0"));

        let r4 = out[4].as_ref().unwrap();
        assert_eq!((r4.samples, r4.series_created, r4.rejected_by_reason.len()), (1, 0, 0));

        let up = id_of(&store, "up", &[("job", "a")]);
        assert_eq!(read_all(&store, up), (vec![5000, 9000], vec![1.0, 4.0]));
        let cpu = id_of(&store, "cpu_v", &[("dc", "eu"), ("host", "h")]);
        assert_eq!(read_all(&store, cpu), (vec![7000, 8000], vec![2.0, 3.0]));
        assert!(store.lookup(&store.labels("never", &[]).unwrap()).is_none());
        assert!(ingest_many(&store, &[]).unwrap().is_empty());
    }

    #[test]
    fn ingest_many_matches_one_body_at_a_time_across_batch_boundaries() {
        // enough bodies that the shared buffer is written several times in the middle of one
        let bodies: Vec<String> = (0..40)
            .map(|b| (0..1000).map(|i| format!("m{{b=\"{}\",i=\"{i}\"}} {i} {}\n", b % 7, 1000 + b)).collect())
            .collect();
        let o = opts();
        let one = store();
        let want: Vec<u64> = bodies.iter().map(|b| ingest(&one, Format::PrometheusText, b.as_bytes(), &o).unwrap().samples).collect();
        let many = store();
        let refs: Vec<BodyRef> = bodies.iter().map(|b| (Format::PrometheusText, b.as_bytes(), &o)).collect();
        let got: Vec<u64> = ingest_many(&many, &refs).unwrap().into_iter().map(|r| r.unwrap().samples).collect();
        assert_eq!(got, want);
        for b in 0..7 {
            for i in [0, 999] {
                let (bs, is) = (b.to_string(), i.to_string());
                let labels = [("b", bs.as_str()), ("i", is.as_str())];
                assert_eq!(read_all(&many, id_of(&many, "m", &labels)), read_all(&one, id_of(&one, "m", &labels)));
            }
        }
    }
}
