//! Prometheus text exposition format 0.0.4 (`/api/v1/import/prometheus`).
//!
//! `name{label="value",...} value [timestamp_ms]` per line, `# HELP` / `# TYPE` / `# UNIT`
//! comments recorded as [`Metadata`], other comments ignored. The raw-cache key is the
//! series text as sent (`name{...}`, from the first non-blank byte to the closing brace),
//! so a repeated series costs a brace scan and a cache lookup; labels are parsed only on a
//! miss. Rules and choices: `FORMAT-ingest.md`.

use super::*;

pub(crate) fn ingest(sink: &mut Sink, body: &[u8]) -> Result<()> {
    let max = sink.opts.max_line_bytes;
    for (no, line) in Lines::new(body) {
        if line.len() > max {
            let msg = format!("line is {} bytes, over the limit of {max}", line.len());
            sink.reject(no, RejectReason::LineTooLong, msg, line);
            continue;
        }
        let r = parse_line(sink, line);
        sink.settle(no, line, r)?;
    }
    Ok(())
}

#[inline]
fn parse_line(sink: &mut Sink, b: &[u8]) -> std::result::Result<(), Fail> {
    let n = b.len();
    let start = skip_spaces(b, 0);
    if start == n {
        return Ok(());
    }
    if b[start] == b'#' {
        return comment(sink, &b[start + 1..]);
    }
    let i = find3(b, start, b'{', b' ', b'\t');
    let name_end = i;
    let j = skip_spaces(b, i);
    let series_end = if j < n && b[j] == b'{' { labels_end(b, j + 1)? } else { name_end };

    let mut i = skip_spaces(b, series_end);
    let vs = i;
    while i < n && !is_space(b[i]) {
        i += 1;
    }
    if vs == i {
        return line_err(RejectReason::Syntax, "missing value");
    }
    let Some(value) = parse_f64(&b[vs..i]) else {
        return line_err(RejectReason::BadValue, format!("cannot parse value {:?}", String::from_utf8_lossy(&b[vs..i])));
    };
    i = skip_spaces(b, i);
    let ts = if i < n {
        let t0 = i;
        while i < n && !is_space(b[i]) {
            i += 1;
        }
        let Some(t) = parse_i64(&b[t0..i]) else {
            return line_err(
                RejectReason::BadTimestamp,
                format!("cannot parse timestamp {:?}: want integer milliseconds", String::from_utf8_lossy(&b[t0..i])),
            );
        };
        if skip_spaces(b, i) < n {
            return line_err(RejectReason::Syntax, "unexpected text after the timestamp");
        }
        t
    } else {
        sink.opts.default_ts_ms
    };

    let series = &b[start..series_end];
    sink.key_reset();
    sink.key.extend_from_slice(series);
    let id = sink.resolve(|| parse_series(series, name_end - start))?;
    sink.push(id, ts, value)?;
    Ok(())
}

/// Index just past the `}` closing a label list that starts at `i` (after the `{`).
#[inline]
fn labels_end(b: &[u8], mut i: usize) -> std::result::Result<usize, Fail> {
    let n = b.len();
    loop {
        i = find2(b, i, b'"', b'}');
        if i >= n {
            return line_err(RejectReason::Syntax, "missing '}' at the end of the label list");
        }
        if b[i] == b'}' {
            return Ok(i + 1);
        }
        i += 1;
        loop {
            i = find2(b, i, b'"', b'\\');
            if i >= n {
                return line_err(RejectReason::Syntax, "unterminated quoted string in the label list");
            }
            if b[i] == b'"' {
                break;
            }
            i += 2;
        }
        i += 1;
    }
}

/// Labels of `series` (`name{...}` or `name`), `name_len` bytes of metric name first.
fn parse_series(series: &[u8], name_len: usize) -> std::result::Result<Pairs, Fail> {
    let s = utf8(series, "series")?;
    let b = s.as_bytes();
    let n = b.len();
    let mut metric = (name_len > 0).then(|| s[..name_len].to_string());
    let mut pairs: Pairs = Vec::with_capacity(8);
    let mut i = skip_spaces(b, name_len);
    if i < n {
        i += 1; // '{'
        loop {
            i = skip_spaces(b, i);
            match b.get(i) {
                Some(b'}') => break,
                None => return line_err(RejectReason::Syntax, "missing '}'"),
                _ => {}
            }
            let quoted = b[i] == b'"';
            let lname = if quoted {
                let (v, next) = read_quoted(s, i);
                i = next;
                v
            } else {
                let st = i;
                while i < n && !matches!(b[i], b'=' | b' ' | b'\t' | b',' | b'}' | b'"') {
                    i += 1;
                }
                s[st..i].to_string()
            };
            i = skip_spaces(b, i);
            if b.get(i) == Some(&b'=') {
                i = skip_spaces(b, i + 1);
                if b.get(i) != Some(&b'"') {
                    return line_err(RejectReason::Syntax, format!("value of label {lname:?} must be a quoted string"));
                }
                let (v, next) = read_quoted(s, i);
                i = next;
                pairs.push((lname, v));
            } else if quoted {
                // Prometheus 3's UTF-8 syntax: {"metric.name", label="v"}.
                if metric.is_some() {
                    return line_err(RejectReason::BadLabel, format!("second metric name {lname:?}"));
                }
                metric = Some(lname);
            } else {
                return line_err(RejectReason::Syntax, format!("expected '=' after label name {lname:?}"));
            }
            i = skip_spaces(b, i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => break,
                _ => return line_err(RejectReason::Syntax, "expected ',' or '}' after a label"),
            }
        }
    }
    if let Some(m) = metric {
        pairs.push((METRIC_NAME.to_string(), m));
    }
    Ok(pairs)
}

/// The quoted string starting at `i` (a `"`), unescaped (`\\`, `\"`, `\n`; any other
/// escape is kept as written, as Prometheus does), and the index after its closing quote.
/// The caller has checked (`labels_end`) that the quote is closed.
fn read_quoted(s: &str, i: usize) -> (String, usize) {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut j = i + 1;
    let mut run = j;
    while j < b.len() {
        match b[j] {
            b'"' => {
                out.push_str(&s[run..j]);
                return (out, j + 1);
            }
            b'\\' if j + 1 < b.len() => {
                out.push_str(&s[run..j]);
                match b[j + 1] {
                    b'\\' => out.push('\\'),
                    b'"' => out.push('"'),
                    b'n' => out.push('\n'),
                    _ => {
                        run = j;
                        j += 1;
                        continue;
                    }
                }
                j += 2;
                run = j;
            }
            _ => j += 1,
        }
    }
    out.push_str(&s[run..]);
    (out, b.len())
}

/// A comment line (after the `#`): HELP / TYPE / UNIT are recorded, the rest ignored.
fn comment(sink: &mut Sink, b: &[u8]) -> std::result::Result<(), Fail> {
    let mut i = skip_spaces(b, 0);
    let kw_start = i;
    while i < b.len() && !is_space(b[i]) {
        i += 1;
    }
    let kw = &b[kw_start..i];
    if !matches!(kw, b"HELP" | b"TYPE" | b"UNIT") {
        return Ok(());
    }
    i = skip_spaces(b, i);
    let name_start = i;
    while i < b.len() && !is_space(b[i]) {
        i += 1;
    }
    if name_start == i {
        return Ok(()); // "# HELP" alone: an ordinary comment
    }
    let name = utf8(&b[name_start..i], "metric name")?;
    let rest = utf8(&b[skip_spaces(b, i)..], "comment")?;
    match kw {
        b"HELP" => {
            let help = unescape_help(rest);
            sink.metadata(name, |m| m.help = Some(help));
        }
        b"TYPE" => {
            let kind = match rest.trim_end() {
                k @ ("counter" | "gauge" | "histogram" | "summary" | "untyped" | "gaugehistogram" | "info"
                | "stateset") => k,
                "unknown" => "untyped",
                other => return line_err(RejectReason::Syntax, format!("unknown metric type {other:?}")),
            };
            sink.metadata(name, |m| m.kind = Some(kind.to_string()));
        }
        _ => {
            let unit = rest.trim_end().to_string();
            sink.metadata(name, |m| m.unit = Some(unit));
        }
    }
    Ok(())
}

/// HELP text escapes: `\\` and `\n`.
fn unescape_help(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    fn run(store: &Store, body: &str) -> IngestReport {
        ingest(store, Format::PrometheusText, body.as_bytes(), &opts()).unwrap()
    }

    #[test]
    fn ingest_prom_happy_path() {
        let store = store();
        let body = "\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000
http_requests_total{method=\"post\",code=\"200\"} 1028.5 1395066364000
http_requests_total{code=\"400\",method=\"post\"} 4 1395066364000

# A normal comment.
metric_without_timestamp_and_labels 12.47
node_load1 0.5 1395066363000
";
        let r = run(&store, body);
        assert_eq!(r.rejected, vec![]);
        assert_eq!(r.samples, 6);
        assert_eq!(r.series_created, 4);
        let a = id_of(&store, "http_requests_total", &[("method", "post"), ("code", "200")]);
        assert_eq!(read_all(&store, a), (vec![1395066363000, 1395066364000], vec![1027.0, 1028.5]));
        let b = id_of(&store, "http_requests_total", &[("method", "post"), ("code", "400")]);
        assert_eq!(read_all(&store, b), (vec![1395066363000, 1395066364000], vec![3.0, 4.0]));
        let c = id_of(&store, "metric_without_timestamp_and_labels", &[]);
        assert_eq!(read_all(&store, c), (vec![1_000_000], vec![12.47]));
        assert_eq!(
            r.metadata,
            vec![Metadata {
                metric: "http_requests_total".into(),
                kind: Some("counter".into()),
                help: Some("The total number of HTTP requests.".into()),
                unit: None
            }]
        );
    }

    #[test]
    fn ingest_prom_edge_cases() {
        let store = store();
        let body = "\
esc{path=\"C:\\\\dir\\\\\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\",other=\"x\\ty\"} 1 10
empty{} 2 10
trailing{a=\"1\",} 3 10
  spaced { a = \"1\" , b=\"2\" }   4   10  
specials{v=\"nan\"} NaN 10
specials{v=\"pinf\"} +Inf 10
specials{v=\"ninf\"} -Inf 10
specials{v=\"inf\"} Inf 10
specials{v=\"lower\"} inf 11
brace{v=\"}{,=\"} 5 10
colon:metric:sum 6 10
dup 1 20
dup 2 20
{__name__=\"from_label\",a=\"b\"} 7 10
{\"utf8.metric\",\"my.label\"=\"v\"} 8 10
neg -1.5e3 -5
sci 1e-3
";
        let r = run(&store, body);
        assert_eq!(r.rejected, vec![]);
        let get = |m: &str, l: &[(&str, &str)]| read_all(&store, id_of(&store, m, l));
        assert_eq!(
            get("esc", &[("path", "C:\\dir\\"), ("q", "say \"hi\""), ("nl", "a\nb"), ("other", "x\\ty")]),
            (vec![10], vec![1.0])
        );
        assert_eq!(get("empty", &[]), (vec![10], vec![2.0]));
        assert_eq!(get("trailing", &[("a", "1")]), (vec![10], vec![3.0]));
        assert_eq!(get("spaced", &[("a", "1"), ("b", "2")]), (vec![10], vec![4.0]));
        assert!(get("specials", &[("v", "nan")]).1[0].is_nan());
        assert_eq!(get("specials", &[("v", "pinf")]).1, vec![f64::INFINITY]);
        assert_eq!(get("specials", &[("v", "ninf")]).1, vec![f64::NEG_INFINITY]);
        assert_eq!(get("specials", &[("v", "inf")]).1, vec![f64::INFINITY]);
        assert_eq!(get("specials", &[("v", "lower")]).1, vec![f64::INFINITY]);
        assert_eq!(get("brace", &[("v", "}{,=")]), (vec![10], vec![5.0]));
        assert_eq!(get("colon:metric:sum", &[]), (vec![10], vec![6.0]));
        // Both duplicates were written; the later value wins on the same timestamp.
        assert_eq!(get("dup", &[]), (vec![20], vec![2.0]));
        assert_eq!(get("from_label", &[("a", "b")]), (vec![10], vec![7.0]));
        assert_eq!(get("utf8.metric", &[("my_label", "v")]), (vec![10], vec![8.0]));
        assert_eq!(get("neg", &[]), (vec![-5], vec![-1500.0]));
        assert_eq!(get("sci", &[]), (vec![1_000_000], vec![0.001]));
        assert_eq!(r.samples, 17);
    }

    #[test]
    fn ingest_prom_rejections_with_lines() {
        let store = store();
        let mut body = String::from("ok 1 1\n");
        body.push_str("nobrace{a=\"1\" 2\n"); // 2 syntax
        body.push_str("novalue{a=\"1\"}\n"); // 3 syntax
        body.push_str("badvalue 1,5\n"); // 4 bad value
        body.push_str("badts 1 12.5\n"); // 5 bad timestamp
        body.push_str("extra 1 2 3\n"); // 6 syntax
        body.push_str("unquoted{a=1} 1\n"); // 7 syntax
        body.push_str("noeq{a} 1\n"); // 8 syntax
        body.push_str("{a=\"1\"} 1\n"); // 9 empty metric name
        body.push_str("bad{a=\"\"} 1\n"); // 10 invalid UTF-8 inserted below
        body.push_str("emptyname{=\"x\"} 1\n"); // 11 bad label
        body.push_str("# TYPE x sometype\n"); // 12 syntax
        body.push_str(&format!("long{{a=\"{}\"}} 1\n", "x".repeat(300))); // 13 line too long
        body.push_str("ok 2 2\n");
        let mut bytes = body.into_bytes();
        // Put an invalid UTF-8 byte into line 10's label value.
        let pos = bytes.windows(7).position(|w| w == b"bad{a=\"").unwrap() + 7;
        bytes.insert(pos, 0xff);
        let mut o = opts();
        o.max_line_bytes = 200;
        let r = ingest(&store, Format::PrometheusText, &bytes, &o).unwrap();
        use RejectReason::*;
        assert_eq!(
            reasons(&r),
            vec![
                (2, Syntax),
                (3, Syntax),
                (4, BadValue),
                (5, BadTimestamp),
                (6, Syntax),
                (7, Syntax),
                (8, Syntax),
                (9, EmptyMetricName),
                (10, InvalidUtf8),
                (11, BadLabel),
                (12, Syntax),
                (13, LineTooLong)
            ]
        );
        assert_eq!(r.rejected[0].sample, "nobrace{a=\"1\" 2");
        assert_eq!(r.rejected[8].sample, "bad{a=\"\u{fffd}\"} 1");
        assert_eq!(r.rejected[11].sample.len(), SAMPLE_BYTES);
        assert!(r.rejected[11].sample.starts_with("long{a=\"xxx"));
        assert_eq!(r.samples, 2);
        assert_eq!(read_all(&store, id_of(&store, "ok", &[])), (vec![1, 2], vec![1.0, 2.0]));
        assert_eq!(store.series_count(), 1, "rejected lines created no series");
        let counts: u64 = r.rejected_by_reason.iter().map(|x| x.1).sum();
        assert_eq!(counts, 12);
        assert!(r.rejected_by_reason.contains(&(Syntax, 6)));
    }

    #[test]
    fn ingest_prom_metadata_and_comments() {
        let store = store();
        let body = "\
# HELP a Help with \\\\ backslash and \\n newline.
# TYPE a gauge
# UNIT a seconds
# TYPE b unknown
#TYPE c summary
# EOF
# random comment TYPE
a 1 1
";
        let r = run(&store, body);
        assert_eq!(r.rejected, vec![]);
        assert_eq!(r.metadata.len(), 3);
        assert_eq!(
            r.metadata[0],
            Metadata {
                metric: "a".into(),
                kind: Some("gauge".into()),
                help: Some("Help with \\ backslash and \n newline.".into()),
                unit: Some("seconds".into())
            }
        );
        assert_eq!(r.metadata[1].kind.as_deref(), Some("untyped"));
        assert_eq!(r.metadata[2].kind.as_deref(), Some("summary"));
        assert_eq!(r.samples, 1);
    }

    #[test]
    fn ingest_prom_extra_labels_override_and_crlf() {
        let store = store();
        let mut o = opts();
        o.extra_labels = vec![("job".into(), "forced".into()), ("dc".into(), "x".into())];
        let r = ingest(&store, Format::PrometheusText, b"m{job=\"sent\",a=\"1\"} 1 5\r\nm{a=\"1\"} 2 6\r\n", &o).unwrap();
        assert_eq!(r.rejected, vec![]);
        assert_eq!(r.series_created, 1);
        let id = id_of(&store, "m", &[("job", "forced"), ("dc", "x"), ("a", "1")]);
        assert_eq!(read_all(&store, id), (vec![5, 6], vec![1.0, 2.0]));
    }
}
