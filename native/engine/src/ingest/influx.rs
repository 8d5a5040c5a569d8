//! Influx line protocol (`/write`, `/api/v2/write`).
//!
//! `measurement[,tag=value...] field=value[,field=value...] [timestamp]`. Every numeric
//! field becomes a sample of metric `measurement_field` (just `measurement` for a field
//! named `value`), tags become labels. Integers (`3i`), unsigned (`3u`) and booleans
//! (1/0) are numbers; a quoted string field is a number if its content parses as one
//! (VictoriaMetrics does the same: some agents send numbers as strings), otherwise it is
//! skipped without a rejection. The raw-cache key is the series text as sent
//! (measurement and tags, escapes included) plus the raw field key. Rules and choices:
//! `FORMAT-ingest.md`.

use super::*;

struct Field {
    key_start: usize,
    key_end: usize,
    value: f64,
}

pub(crate) fn ingest(sink: &mut Sink, body: &[u8]) -> Result<()> {
    let max = sink.opts.max_line_bytes;
    let mut fields: Vec<Field> = Vec::with_capacity(32);
    let mut ids: Vec<SeriesId> = Vec::with_capacity(32);
    for (no, line) in Lines::new(body) {
        if line.len() > max {
            let msg = format!("line is {} bytes, over the limit of {max}", line.len());
            sink.reject(no, RejectReason::LineTooLong, msg, line);
            continue;
        }
        let r = parse_line(sink, line, &mut fields, &mut ids);
        sink.settle(no, line, r)?;
    }
    Ok(())
}

#[inline]
fn parse_line(
    sink: &mut Sink,
    b: &[u8],
    fields: &mut Vec<Field>,
    ids: &mut Vec<SeriesId>,
) -> std::result::Result<(), Fail> {
    let n = b.len();
    let start = skip_spaces(b, 0);
    if start == n || b[start] == b'#' {
        return Ok(());
    }
    // Measurement and tags: up to the first unescaped space.
    let mut i = start;
    while i < n {
        match b[i] {
            b'\\' => i += 2,
            b' ' => break,
            _ => i += 1,
        }
    }
    if i >= n {
        return line_err(RejectReason::Syntax, "missing fields (no space after the measurement and tags)");
    }
    let series_end = i;
    while i < n && b[i] == b' ' {
        i += 1;
    }

    fields.clear();
    loop {
        let ks = i;
        while i < n {
            match b[i] {
                b'\\' => i += 2,
                b'=' => break,
                b' ' | b',' => return line_err(RejectReason::Syntax, "field without '='"),
                _ => i += 1,
            }
        }
        if i >= n {
            return line_err(
                RejectReason::Syntax,
                if ks >= n { "missing fields" } else { "field without '='" },
            );
        }
        let ke = i;
        if ks == ke {
            return line_err(RejectReason::Syntax, "empty field key");
        }
        i += 1;
        if i < n && b[i] == b'"' {
            i += 1;
            let vs = i;
            loop {
                if i >= n {
                    return line_err(RejectReason::Syntax, "unterminated string field value");
                }
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
            if let Some(v) = parse_f64(&b[vs..i]) {
                fields.push(Field { key_start: ks, key_end: ke, value: v });
            }
            i += 1;
        } else {
            let vs = i;
            while i < n && b[i] != b',' && b[i] != b' ' {
                i += 1;
            }
            let Some(v) = parse_field_value(&b[vs..i]) else {
                return line_err(
                    RejectReason::BadValue,
                    format!(
                        "field {:?}: cannot parse value {:?}",
                        String::from_utf8_lossy(&b[ks..ke]),
                        String::from_utf8_lossy(&b[vs..i])
                    ),
                );
            };
            fields.push(Field { key_start: ks, key_end: ke, value: v });
        }
        if i < n && b[i] == b',' {
            i += 1;
            continue;
        }
        break;
    }

    i = skip_spaces(b, i);
    let ts = if i < n {
        let t0 = i;
        while i < n && !is_space(b[i]) {
            i += 1;
        }
        let raw = &b[t0..i];
        if skip_spaces(b, i) < n {
            return line_err(RejectReason::Syntax, "unexpected text after the timestamp");
        }
        match parse_i64(raw).and_then(|t| sink.opts.precision.to_ms(t)) {
            Some(t) => t,
            None => {
                return line_err(
                    RejectReason::BadTimestamp,
                    format!("cannot parse timestamp {:?}", String::from_utf8_lossy(raw)),
                )
            }
        }
    } else {
        sink.opts.default_ts_ms
    };
    if fields.is_empty() {
        return Ok(()); // only string fields
    }

    let series = &b[start..series_end];
    sink.key_reset();
    sink.key.extend_from_slice(&(series.len() as u32).to_le_bytes());
    sink.key.extend_from_slice(series);
    let base = sink.key.len();
    ids.clear();
    for f in fields.iter() {
        let field = &b[f.key_start..f.key_end];
        sink.key.truncate(base);
        sink.key.extend_from_slice(field);
        ids.push(sink.resolve(|| series_pairs(series, field))?);
    }
    for (id, f) in ids.iter().zip(fields.iter()) {
        sink.push(*id, ts, f.value)?;
    }
    Ok(())
}

/// An unquoted field value: float, `123i`, `123u`, or a boolean.
#[inline]
fn parse_field_value(v: &[u8]) -> Option<f64> {
    match v.last()? {
        b'i' => return parse_i64(&v[..v.len() - 1]).map(|x| x as f64),
        b'u' => return parse_u64(&v[..v.len() - 1]).map(|x| x as f64),
        _ => {}
    }
    match v {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => Some(1.0),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => Some(0.0),
        _ => parse_f64(v),
    }
}

/// Remove line protocol escapes: a backslash before space, comma, equals sign or
/// backslash is dropped; any other backslash is kept (as Influx and VictoriaMetrics do).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && matches!(b[i + 1], b' ' | b',' | b'=' | b'\\') {
            out.push_str(&s[run..i]);
            run = i + 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[run..]);
    out
}

/// Split at unescaped `sep`.
fn split_unescaped(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
        } else if b[i] == sep {
            parts.push(&s[start..i]);
            i += 1;
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

/// Labels of one field of a line (cache miss).
fn series_pairs(series: &[u8], field: &[u8]) -> std::result::Result<Pairs, Fail> {
    let series = utf8(series, "measurement and tags")?;
    let field = unescape(utf8(field, "field key")?);
    let mut parts = split_unescaped(series, b',').into_iter();
    let measurement = unescape(parts.next().unwrap_or(""));
    if measurement.is_empty() {
        return line_err(RejectReason::EmptyMetricName, "empty measurement");
    }
    let mut pairs: Pairs = Vec::with_capacity(8);
    for tag in parts {
        let kv = split_unescaped(tag, b'=');
        if kv.len() != 2 {
            return line_err(RejectReason::Syntax, format!("tag {tag:?} is not key=value"));
        }
        pairs.push((unescape(kv[0]), unescape(kv[1])));
    }
    let metric = if field == "value" { measurement } else { format!("{measurement}_{field}") };
    pairs.push((METRIC_NAME.to_string(), metric));
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    fn run_with(store: &Store, body: &str, precision: Precision) -> IngestReport {
        let mut o = opts();
        o.precision = precision;
        ingest(store, Format::Influx, body.as_bytes(), &o).unwrap()
    }

    #[test]
    fn ingest_influx_happy_path() {
        let store = store();
        let body = "\
cpu,host=h1,region=eu usage_user=1.5,usage_system=2i,usage_idle=3u,up=true,down=F 1700000000000000000
cpu,host=h2,region=eu usage_user=10.25 1700000000000000000
cpu,host=h1,region=eu usage_user=1.75,usage_system=4i,usage_idle=5u,up=t,down=false 1700000010000000000
# comment
weather value=21.5 1700000000000000000

";
        let r = run_with(&store, body, Precision::Ns);
        assert_eq!(r.rejected, vec![]);
        assert_eq!(r.samples, 12);
        assert_eq!(r.series_created, 7);
        let h1 = [("host", "h1"), ("region", "eu")];
        let get = |m: &str, l: &[(&str, &str)]| read_all(&store, id_of(&store, m, l));
        let t = vec![1_700_000_000_000, 1_700_000_010_000];
        assert_eq!(get("cpu_usage_user", &h1), (t.clone(), vec![1.5, 1.75]));
        assert_eq!(get("cpu_usage_system", &h1), (t.clone(), vec![2.0, 4.0]));
        assert_eq!(get("cpu_usage_idle", &h1), (t.clone(), vec![3.0, 5.0]));
        assert_eq!(get("cpu_up", &h1), (t.clone(), vec![1.0, 1.0]));
        assert_eq!(get("cpu_down", &h1), (t, vec![0.0, 0.0]));
        assert_eq!(get("cpu_usage_user", &[("host", "h2"), ("region", "eu")]), (vec![1_700_000_000_000], vec![10.25]));
        assert_eq!(get("weather", &[]), (vec![1_700_000_000_000], vec![21.5]));
    }

    #[test]
    fn ingest_influx_precisions_and_default_ts() {
        let store = store();
        for (p, ts) in [
            (Precision::Ns, "1700000000123456789"),
            (Precision::Us, "1700000000123456"),
            (Precision::Ms, "1700000000123"),
            (Precision::S, "1700000000"),
        ] {
            let r = run_with(&store, &format!("m,p={p:?} f=1 {ts}\nm,p={p:?} f=2\n"), p);
            assert_eq!(r.rejected, vec![]);
            let want = if p == Precision::S { 1_700_000_000_000 } else { 1_700_000_000_123 };
            let id = id_of(&store, "m_f", &[("p", &format!("{p:?}"))]);
            assert_eq!(read_all(&store, id), (vec![1_000_000, want], vec![2.0, 1.0]));
        }
    }

    #[test]
    fn ingest_influx_escapes_and_strings() {
        let store = store();
        let body = r#"my\ meas\,ure,tag\ one=v\,a\=l\ ue,path=C:\dir field\=x=1,str="a \"quoted\", string with = and space",num_str="42.5",other=2 10
only_strings,host=a msg="hello",msg2="world" 10
"#;
        let r = run_with(&store, body, Precision::Ms);
        assert_eq!(r.rejected, vec![]);
        assert_eq!(r.samples, 3);
        let l = [("tag_one", "v,a=l ue"), ("path", "C:\\dir")];
        let get = |m: &str| read_all(&store, id_of(&store, m, &l));
        assert_eq!(get("my meas,ure_field=x"), (vec![10], vec![1.0]));
        assert_eq!(get("my meas,ure_num_str"), (vec![10], vec![42.5]));
        assert_eq!(get("my meas,ure_other"), (vec![10], vec![2.0]));
        assert_eq!(store.series_count(), 3, "string fields create no series");
    }

    #[test]
    fn ingest_influx_rejections() {
        let store = store();
        let body = "\
ok f=1 1
nofields
cpu f=abc 1
cpu f=1 notatime
cpu f=1 1 extra
cpu,tag f=1 1
cpu,bad\\xff=x f=1 1
,host=a f=1 1
cpu f=\"unterminated 1
cpu =1 1
cpu f=1i5 1
cpu f=99999999999999999999i 1
cpu,=x f=1 1
cpu f=1 9223372036854775807
ok f=2 2
";
        let mut bytes = body.as_bytes().to_vec();
        // Make line 7 carry a raw 0xff byte instead of the escaped placeholder text.
        let pos = bytes.windows(4).position(|w| w == b"\\xff").unwrap();
        bytes.splice(pos..pos + 4, [0xffu8]);
        let mut o = opts();
        o.precision = Precision::S;
        let r = ingest(&store, Format::Influx, &bytes, &o).unwrap();
        use RejectReason::*;
        assert_eq!(
            reasons(&r),
            vec![
                (2, Syntax),
                (3, BadValue),
                (4, BadTimestamp),
                (5, Syntax),
                (6, Syntax),
                (7, InvalidUtf8),
                (8, EmptyMetricName),
                (9, Syntax),
                (10, Syntax),
                (11, BadValue),
                (12, BadValue),
                (13, BadLabel),
                (14, BadTimestamp),
            ]
        );
        assert_eq!(r.rejected[2].sample, "cpu f=1 notatime");
        assert_eq!(r.samples, 2);
        assert_eq!(read_all(&store, id_of(&store, "ok_f", &[])), (vec![1000, 2000], vec![1.0, 2.0]));
        assert_eq!(store.series_count(), 1);
    }

    #[test]
    fn ingest_influx_line_atomic_and_sanitised_names() {
        let store = store();
        let cfg_limit = store.config().label_limits.max_label_len;
        // The second field's metric name is too long: the whole line is rejected.
        let long_field = "f".repeat(cfg_limit);
        let body = format!("m,host.name=a,1st=b ok=1,{long_field}=2 5\nm,host.name=a,1st=b ok=3 6\n");
        let r = run_with(&store, &body, Precision::Ms);
        assert_eq!(reasons(&r), vec![(1, RejectReason::LabelTooLong)]);
        let id = id_of(&store, "m_ok", &[("host_name", "a"), ("_1st", "b")]);
        assert_eq!(read_all(&store, id), (vec![6], vec![3.0]));
        assert_eq!(r.samples, 1);
    }

    #[test]
    fn ingest_influx_extra_labels_override() {
        let store = store();
        let mut o = opts();
        o.precision = Precision::Ms;
        o.extra_labels = vec![("db".into(), "telegraf".into())];
        let r = ingest(&store, Format::Influx, b"disk,db=mine,dev=sda used=5 7\n", &o).unwrap();
        assert_eq!(r.rejected, vec![]);
        let id = id_of(&store, "disk_used", &[("db", "telegraf"), ("dev", "sda")]);
        assert_eq!(read_all(&store, id), (vec![7], vec![5.0]));
    }
}
