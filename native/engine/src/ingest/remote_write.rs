//! Prometheus remote write 1.0 (`/api/v1/write`): a snappy-compressed protobuf
//! `WriteRequest` (the caller decompresses with `decompress("snappy", ..)` first).
//!
//! ```text
//! WriteRequest   { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//! TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2; /* exemplars = 3, histograms = 4: ignored */ }
//! Label          { string name = 1; string value = 2; }
//! Sample         { double value = 1; int64 timestamp = 2; }
//! MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4; string unit = 5; }
//! ```
//! Decoded by hand: unknown fields are skipped by wire type. The body is checked whole
//! before anything is written, so a malformed body is `Err(BadInput)` (with the byte
//! offset) and writes nothing. The raw-cache key is the encoded label fields of a
//! timeseries as sent. Values are kept bit for bit (staleness markers included).

use super::*;

type PbResult<T> = Result<T>;

/// Protobuf reader over `b`; `base` is the offset of `b[0]` in the whole body (for errors).
struct Pb<'b> {
    b: &'b [u8],
    i: usize,
    base: usize,
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

impl<'b> Pb<'b> {
    fn new(b: &'b [u8], base: usize) -> Self {
        Pb { b, i: 0, base }
    }

    #[cold]
    fn err(&self, at: usize, what: &str) -> Error {
        Error::bad_input(format!("remote write: {what} at byte {}", self.base + at))
    }

    fn done(&self) -> bool {
        self.i >= self.b.len()
    }

    #[inline(always)]
    fn varint(&mut self) -> PbResult<u64> {
        if let Some(&b) = self.b.get(self.i) {
            if b < 0x80 {
                self.i += 1;
                return Ok(b as u64);
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> PbResult<u64> {
        let start = self.i;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.b.get(self.i) else {
                return Err(self.err(start, "truncated varint"));
            };
            self.i += 1;
            if shift == 63 && byte > 1 {
                return Err(self.err(start, "varint overflows 64 bits"));
            }
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(start, "varint longer than 10 bytes"))
    }

    /// Field number and wire type of the next field.
    #[inline(always)]
    fn key(&mut self) -> PbResult<(u64, u8)> {
        let at = self.i;
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(self.err(at, "field number 0"));
        }
        Ok((field, (k & 7) as u8))
    }

    /// A length-delimited payload and its offset in the body.
    #[inline(always)]
    fn bytes(&mut self) -> PbResult<(&'b [u8], usize)> {
        let at = self.i;
        let len = self.varint()?;
        if len > (self.b.len() - self.i) as u64 {
            return Err(self.err(at, &format!("length {len} runs past the end of the message")));
        }
        let s = self.i;
        self.i += len as usize;
        Ok((&self.b[s..self.i], self.base + s))
    }

    #[inline]
    fn fixed64(&mut self) -> PbResult<u64> {
        if self.b.len() - self.i < 8 {
            return Err(self.err(self.i, "truncated fixed64"));
        }
        let v = u64::from_le_bytes(self.b[self.i..self.i + 8].try_into().unwrap());
        self.i += 8;
        Ok(v)
    }

    fn skip(&mut self, wire: u8) -> PbResult<()> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            I64 => self.fixed64().map(|_| ()),
            LEN => self.bytes().map(|_| ()),
            I32 => {
                if self.b.len() - self.i < 4 {
                    return Err(self.err(self.i, "truncated fixed32"));
                }
                self.i += 4;
                Ok(())
            }
            w => Err(self.err(self.i, &format!("unsupported wire type {w}"))),
        }
    }

    /// Fail unless `wire` is what the known field `name` needs.
    #[inline(always)]
    fn want(&self, wire: u8, want: u8, name: &str) -> PbResult<()> {
        if wire != want {
            return Err(self.err(self.i, &format!("field {name} has wire type {wire}, want {want}")));
        }
        Ok(())
    }
}

/// Check the structure of the whole request (pass 1).
fn validate(body: &[u8]) -> PbResult<()> {
    let mut p = Pb::new(body, 0);
    while !p.done() {
        match p.key()? {
            (1, w) => {
                p.want(w, LEN, "WriteRequest.timeseries")?;
                let (ts, off) = p.bytes()?;
                validate_timeseries(ts, off)?;
            }
            (3, w) => {
                p.want(w, LEN, "WriteRequest.metadata")?;
                let (m, off) = p.bytes()?;
                let mut q = Pb::new(m, off);
                while !q.done() {
                    match q.key()? {
                        (1, w) => {
                            q.want(w, VARINT, "MetricMetadata.type")?;
                            q.varint()?;
                        }
                        (2 | 4 | 5, w) => {
                            q.want(w, LEN, "MetricMetadata string")?;
                            q.bytes()?;
                        }
                        (_, w) => q.skip(w)?,
                    }
                }
            }
            (_, w) => p.skip(w)?,
        }
    }
    Ok(())
}

fn validate_timeseries(ts: &[u8], off: usize) -> PbResult<()> {
    let mut p = Pb::new(ts, off);
    while !p.done() {
        match p.key()? {
            (1, w) => {
                p.want(w, LEN, "TimeSeries.labels")?;
                let (l, off) = p.bytes()?;
                let mut q = Pb::new(l, off);
                while !q.done() {
                    match q.key()? {
                        (1 | 2, w) => {
                            q.want(w, LEN, "Label string")?;
                            q.bytes()?;
                        }
                        (_, w) => q.skip(w)?,
                    }
                }
            }
            (2, w) => {
                p.want(w, LEN, "TimeSeries.samples")?;
                let (s, off) = p.bytes()?;
                let mut q = Pb::new(s, off);
                while !q.done() {
                    match q.key()? {
                        (1, w) => {
                            q.want(w, I64, "Sample.value")?;
                            q.fixed64()?;
                        }
                        (2, w) => {
                            q.want(w, VARINT, "Sample.timestamp")?;
                            q.varint()?;
                        }
                        (_, w) => q.skip(w)?,
                    }
                }
            }
            (_, w) => p.skip(w)?,
        }
    }
    Ok(())
}

pub(crate) fn ingest(sink: &mut Sink, body: &[u8]) -> Result<()> {
    validate(body)?;
    let mut p = Pb::new(body, 0);
    let mut index = 0usize;
    while !p.done() {
        match p.key()? {
            (1, _) => {
                index += 1;
                let (ts, _) = p.bytes()?;
                let r = timeseries(sink, ts);
                if let Err(Fail::Line(..)) = &r {
                    let sample = describe(ts);
                    sink.settle(index, sample.as_bytes(), r)?;
                } else {
                    sink.settle(index, b"", r)?;
                }
            }
            (3, _) => {
                let (m, _) = p.bytes()?;
                metadata(sink, m)?;
            }
            (_, w) => p.skip(w)?,
        }
    }
    Ok(())
}

fn timeseries(sink: &mut Sink, ts: &[u8]) -> std::result::Result<(), Fail> {
    // Key: the encoded label fields, in order.
    sink.key_reset();
    let mut p = Pb::new(ts, 0);
    let mut samples = 0usize;
    // Label fields are normally contiguous: copy runs, not fields.
    let mut run: Option<(usize, usize)> = None;
    while !p.done() {
        let start = p.i;
        match p.key()? {
            (1, _) => {
                p.bytes()?;
                run = match run {
                    Some((s, e)) if e == start => Some((s, p.i)),
                    Some((s, e)) => {
                        sink.key.extend_from_slice(&ts[s..e]);
                        Some((start, p.i))
                    }
                    None => Some((start, p.i)),
                };
            }
            (2, _) => {
                p.bytes()?;
                samples += 1;
            }
            (_, w) => p.skip(w)?,
        }
    }
    if let Some((s, e)) = run {
        sink.key.extend_from_slice(&ts[s..e]);
    }
    if samples == 0 {
        return Ok(());
    }
    let id = sink.resolve(|| label_pairs(ts))?;
    let mut p = Pb::new(ts, 0);
    while !p.done() {
        match p.key()? {
            (2, _) => {
                let (s, off) = p.bytes()?;
                let mut q = Pb::new(s, off);
                let (mut value, mut t) = (0u64, 0i64);
                while !q.done() {
                    match q.key()? {
                        (1, _) => value = q.fixed64()?,
                        (2, _) => t = q.varint()? as i64,
                        (_, w) => q.skip(w)?,
                    }
                }
                sink.push(id, t, f64::from_bits(value))?;
            }
            (_, w) => p.skip(w)?,
        }
    }
    Ok(())
}

/// Decoded labels of a timeseries (cache miss).
fn label_pairs(ts: &[u8]) -> std::result::Result<Pairs, Fail> {
    let mut pairs: Pairs = Vec::with_capacity(16);
    for (name, value) in raw_labels(ts)? {
        let name = utf8(name, "label name")?;
        let value = utf8(value, &format!("value of label {name:?}"))?;
        pairs.push((name.to_string(), value.to_string()));
    }
    Ok(pairs)
}

fn raw_labels(ts: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut p = Pb::new(ts, 0);
    while !p.done() {
        match p.key()? {
            (1, _) => {
                let (l, off) = p.bytes()?;
                let mut q = Pb::new(l, off);
                let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
                while !q.done() {
                    match q.key()? {
                        (1, _) => name = q.bytes()?.0,
                        (2, _) => value = q.bytes()?.0,
                        (_, w) => q.skip(w)?,
                    }
                }
                out.push((name, value));
            }
            (_, w) => p.skip(w)?,
        }
    }
    Ok(out)
}

/// `{name="value", ...}` text of a rejected timeseries for the report.
fn describe(ts: &[u8]) -> String {
    let mut s = String::from("{");
    for (i, (n, v)) in raw_labels(ts).unwrap_or_default().into_iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&String::from_utf8_lossy(n));
        s.push_str("=\"");
        s.push_str(&String::from_utf8_lossy(v));
        s.push('"');
        if s.len() > SAMPLE_BYTES {
            break;
        }
    }
    s.push('}');
    s
}

fn metadata(sink: &mut Sink, m: &[u8]) -> Result<()> {
    let mut q = Pb::new(m, 0);
    let (mut kind, mut name, mut help, mut unit) = (0u64, &b""[..], None, None);
    while !q.done() {
        match q.key()? {
            (1, _) => kind = q.varint()?,
            (2, _) => name = q.bytes()?.0,
            (4, _) => help = Some(q.bytes()?.0),
            (5, _) => unit = Some(q.bytes()?.0),
            (_, w) => q.skip(w)?,
        }
    }
    if name.is_empty() {
        return Ok(());
    }
    let kind = match kind {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "untyped",
    };
    let name = String::from_utf8_lossy(name).into_owned();
    let help = help.map(|h| String::from_utf8_lossy(h).into_owned());
    let unit = unit.filter(|u| !u.is_empty()).map(|u| String::from_utf8_lossy(u).into_owned());
    sink.metadata(&name, |md| {
        md.kind = Some(kind.to_string());
        if help.is_some() {
            md.help = help;
        }
        if unit.is_some() {
            md.unit = unit;
        }
    });
    Ok(())
}

#[cfg(test)]
pub(crate) mod encode {
    //! A tiny protobuf encoder for tests and the throughput example's body generator.

    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn key(out: &mut Vec<u8>, field: u64, wire: u8) {
        varint(out, field << 3 | wire as u64);
    }

    pub fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    pub fn label(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut l = Vec::new();
        bytes(&mut l, 1, name);
        bytes(&mut l, 2, value);
        l
    }

    pub fn sample(value: f64, ts: i64) -> Vec<u8> {
        let mut s = Vec::new();
        key(&mut s, 1, 1);
        s.extend_from_slice(&value.to_bits().to_le_bytes());
        key(&mut s, 2, 0);
        varint(&mut s, ts as u64);
        s
    }

    pub fn timeseries(labels: &[(&[u8], &[u8])], samples: &[(f64, i64)]) -> Vec<u8> {
        let mut t = Vec::new();
        for (n, v) in labels {
            bytes(&mut t, 1, &label(n, v));
        }
        for &(v, ts) in samples {
            bytes(&mut t, 2, &sample(v, ts));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;
    use super::encode::*;
    use crate::STALE_NAN_BITS;

    fn request(series: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in series {
            bytes(&mut out, 1, s);
        }
        out
    }

    fn run(store: &Store, body: &[u8]) -> Result<IngestReport> {
        ingest(store, Format::RemoteWrite, body, &opts())
    }

    #[test]
    fn ingest_rw_happy_path_with_stale_marker() {
        let store = store();
        let stale = f64::from_bits(STALE_NAN_BITS);
        let body = request(&[
            timeseries(&[(b"__name__", b"up"), (b"job", b"node"), (b"instance", b"a")], &[(1.0, 1000), (0.0, 2000), (stale, 3000)]),
            timeseries(&[(b"__name__", b"up"), (b"job", b"node"), (b"instance", b"b")], &[(1.5, 1000)]),
            timeseries(&[(b"__name__", b"up"), (b"job", b"node"), (b"instance", b"a")], &[(5.0, 4000), (-7.25, -10)]),
        ]);
        let compressed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let body = decompress("snappy", &compressed, 1 << 20).unwrap();
        let r = run(&store, &body).unwrap();
        assert_eq!(r.rejected, vec![]);
        assert_eq!((r.samples, r.series_created), (6, 2));
        let a = id_of(&store, "up", &[("job", "node"), ("instance", "a")]);
        let (ts, vals) = read_all(&store, a);
        assert_eq!(ts, vec![-10, 1000, 2000, 3000, 4000]);
        let bits: Vec<u64> = vals.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, vec![(-7.25f64).to_bits(), 1f64.to_bits(), 0f64.to_bits(), STALE_NAN_BITS, 5f64.to_bits()]);
        let b = id_of(&store, "up", &[("job", "node"), ("instance", "b")]);
        assert_eq!(read_all(&store, b), (vec![1000], vec![1.5]));
    }

    #[test]
    fn ingest_rw_unknown_fields_and_interleaving() {
        let store = store();
        // A timeseries with unknown fields of every wire type, an exemplar (3), labels
        // after samples, and a sample with fields in reverse order plus an unknown field.
        let mut ts = Vec::new();
        bytes(&mut ts, 2, &sample(1.0, 100));
        bytes(&mut ts, 1, &label(b"__name__", b"m"));
        key(&mut ts, 9, 0);
        varint(&mut ts, 12345);
        key(&mut ts, 10, 1);
        ts.extend_from_slice(&[0; 8]);
        key(&mut ts, 11, 5);
        ts.extend_from_slice(&[0; 4]);
        bytes(&mut ts, 3, b"exemplar bytes");
        bytes(&mut ts, 4, b"histogram bytes");
        let mut lab = label(b"a", b"1");
        bytes(&mut lab, 7, b"unknown");
        bytes(&mut ts, 1, &lab);
        let mut s = Vec::new();
        key(&mut s, 2, 0);
        varint(&mut s, 200);
        key(&mut s, 6, 0);
        varint(&mut s, 1);
        key(&mut s, 1, 1);
        s.extend_from_slice(&2.5f64.to_bits().to_le_bytes());
        bytes(&mut ts, 2, &s);
        let mut body = Vec::new();
        bytes(&mut body, 5, b"unknown top-level field");
        bytes(&mut body, 1, &ts);
        key(&mut body, 6, 0);
        varint(&mut body, 1);
        let r = run(&store, &body).unwrap();
        assert_eq!(r.rejected, vec![]);
        let id = id_of(&store, "m", &[("a", "1")]);
        assert_eq!(read_all(&store, id), (vec![100, 200], vec![1.0, 2.5]));
        // Same labels again: a cache hit.
        let r = run(&store, &body).unwrap();
        assert_eq!((r.samples, r.series_created), (2, 0));
    }

    #[test]
    fn ingest_rw_bad_timeseries_rejected_alone() {
        let store = store();
        let long = vec![b'v'; 5000];
        let body = request(&[
            timeseries(&[(b"__name__", b"ok")], &[(1.0, 1)]),
            timeseries(&[(b"job", b"x")], &[(1.0, 1)]),
            timeseries(&[(b"__name__", b"m"), (b"a", b"\xff")], &[(1.0, 1)]),
            timeseries(&[(b"__name__", b"m"), (b"", b"x")], &[(1.0, 1)]),
            timeseries(&[(b"__name__", b"m"), (b"a", &long)], &[(1.0, 1)]),
            timeseries(&[(b"__name__", b"m"), (b"a", b"1"), (b"a", b"2")], &[(1.0, 1)]),
            timeseries(&[(b"__name__", b"m"), (b"dotted.name", b"1")], &[(3.0, 1)]),
            timeseries(&[(b"__name__", b"no_samples")], &[]),
            timeseries(&[(b"__name__", b"ok")], &[(2.0, 2)]),
        ]);
        let r = run(&store, &body).unwrap();
        use RejectReason::*;
        assert_eq!(reasons(&r), vec![(2, EmptyMetricName), (3, InvalidUtf8), (4, BadLabel), (5, LabelTooLong), (6, BadLabel)]);
        assert_eq!(r.rejected[0].sample, "{job=\"x\"}");
        assert_eq!(r.rejected[1].sample, "{__name__=\"m\", a=\"\u{fffd}\"}");
        assert!(r.rejected[3].sample.len() <= SAMPLE_BYTES);
        assert_eq!(r.samples, 3);
        assert_eq!(read_all(&store, id_of(&store, "ok", &[])), (vec![1, 2], vec![1.0, 2.0]));
        assert_eq!(read_all(&store, id_of(&store, "m", &[("dotted_name", "1")])), (vec![1], vec![3.0]));
        assert_eq!(store.series_count(), 2, "no series for rejected or empty timeseries");
    }

    #[test]
    fn ingest_rw_corrupt_body_is_an_error_and_writes_nothing() {
        let store = store();
        let good = request(&[
            timeseries(&[(b"__name__", b"a")], &[(1.0, 1)]),
            timeseries(&[(b"__name__", b"b")], &[(1.0, 1)]),
        ]);
        let first_len = request(&[timeseries(&[(b"__name__", b"a")], &[(1.0, 1)])]).len();
        for cut in (1..good.len()).filter(|&c| c != first_len) {
            let r = run(&store, &good[..cut]);
            let e = r.expect_err(&format!("cut at {cut}"));
            assert_eq!(e.kind, ErrorKind::BadInput);
            assert!(e.message.contains("at byte"), "{e}");
        }
        assert_eq!(store.series_count(), 0);
        // Wrong wire type for a known field, a group wire type, field number 0, overlong varint.
        let mut wrong = Vec::new();
        key(&mut wrong, 1, 0);
        varint(&mut wrong, 5);
        assert!(run(&store, &wrong).unwrap_err().message.contains("wire type"));
        assert!(run(&store, &[0x0b]).unwrap_err().message.contains("wire type 3"));
        assert!(run(&store, &[0x02, 0x00]).unwrap_err().message.contains("field number 0"));
        assert!(run(&store, &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        // A bad sample deep inside: the error names its offset.
        let mut ts = timeseries(&[(b"__name__", b"c")], &[]);
        let mut s = Vec::new();
        key(&mut s, 1, 1);
        s.extend_from_slice(&[1, 2, 3]);
        bytes(&mut ts, 2, &s);
        let mut body = request(&[timeseries(&[(b"__name__", b"ok")], &[(1.0, 1)])]);
        let before = body.len();
        bytes(&mut body, 1, &ts);
        let e = run(&store, &body).unwrap_err();
        assert!(e.message.contains("truncated fixed64"), "{e}");
        let at: usize = e.message.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(at > before && at < body.len(), "{e}");
        assert_eq!(store.series_count(), 0);
        // The empty body is a valid, empty request.
        assert_eq!(run(&store, b"").unwrap().samples, 0);
    }

    #[test]
    fn ingest_rw_metadata_and_extra_labels() {
        let store = store();
        let mut md = Vec::new();
        key(&mut md, 1, 0);
        varint(&mut md, 1);
        bytes(&mut md, 2, b"http_requests_total");
        bytes(&mut md, 4, b"Total requests.");
        bytes(&mut md, 5, b"");
        let mut body = request(&[timeseries(&[(b"__name__", b"x"), (b"tenant", b"sent")], &[(1.0, 5)])]);
        bytes(&mut body, 3, &md);
        let mut o = opts();
        o.extra_labels = vec![("tenant".into(), "forced".into())];
        let r = ingest(&store, Format::RemoteWrite, &body, &o).unwrap();
        assert_eq!(
            r.metadata,
            vec![Metadata {
                metric: "http_requests_total".into(),
                kind: Some("counter".into()),
                help: Some("Total requests.".into()),
                unit: None
            }]
        );
        assert_eq!(read_all(&store, id_of(&store, "x", &[("tenant", "forced")])), (vec![5], vec![1.0]));
    }
}
