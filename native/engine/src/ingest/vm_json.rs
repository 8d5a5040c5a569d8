//! VictoriaMetrics JSON line format (`/api/v1/import`, what `/api/v1/export` writes).
//!
//! One object per line: `{"metric":{"__name__":"x","job":"y"},"values":[1,2.5],"timestamps":[ms,ms]}`.
//! Values are JSON numbers, `null` (NaN), the bare tokens `NaN`/`Inf`/`+Inf`/`-Inf` that
//! VictoriaMetrics's export writes (not JSON, but what VM 1.79 exports and imports), or
//! strings holding a number or `Inf`/`-Inf`/`Infinity`/`NaN` (any case). Timestamps are integer
//! milliseconds. Other keys are skipped. The raw-cache key is the `metric` object's bytes
//! as sent; label strings are unescaped (`\uXXXX` and surrogate pairs included) only on a
//! miss. A small hand-written reader: no DOM, no allocation per line on the hit path.

use super::*;

pub(crate) fn ingest(sink: &mut Sink, body: &[u8]) -> Result<()> {
    let max = sink.opts.max_line_bytes;
    let mut vals: Vec<f64> = Vec::with_capacity(1024);
    let mut tss: Vec<Timestamp> = Vec::with_capacity(1024);
    for (no, line) in Lines::new(body) {
        if line.len() > max {
            let msg = format!("line is {} bytes, over the limit of {max}", line.len());
            sink.reject(no, RejectReason::LineTooLong, msg, line);
            continue;
        }
        let r = parse_line(sink, line, &mut vals, &mut tss);
        sink.settle(no, line, r)?;
    }
    Ok(())
}

type R<T> = std::result::Result<T, Fail>;

struct Cur<'b> {
    b: &'b [u8],
    i: usize,
}

impl<'b> Cur<'b> {
    #[inline]
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            line_err(RejectReason::Syntax, format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    /// At a `"`: the content range and whether it holds escapes.
    #[inline]
    fn string_raw(&mut self) -> R<(usize, usize, bool)> {
        self.ws();
        if self.peek() != Some(b'"') {
            return line_err(RejectReason::Syntax, format!("expected a string at byte {}", self.i));
        }
        self.i += 1;
        let start = self.i;
        let mut esc = false;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok((start, self.i - 1, esc));
                }
                b'\\' => {
                    esc = true;
                    self.i += 2;
                }
                _ => self.i += 1,
            }
        }
        line_err(RejectReason::Syntax, "unterminated string")
    }

    /// A scalar token (number or literal).
    #[inline]
    fn token(&mut self) -> &'b [u8] {
        let s = self.i;
        while self.i < self.b.len() && !matches!(self.b[self.i], b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n' | b':') {
            self.i += 1;
        }
        &self.b[s..self.i]
    }

    fn skip_value(&mut self, depth: usize) -> R<()> {
        if depth > 64 {
            return line_err(RejectReason::Syntax, "JSON nested too deeply");
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string_raw().map(|_| ()),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.string_raw()?;
                    self.expect(b':')?;
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return line_err(RejectReason::Syntax, format!("expected ',' or '}}' at byte {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return line_err(RejectReason::Syntax, format!("expected ',' or ']' at byte {}", self.i)),
                    }
                }
            }
            Some(_) => {
                let t = self.token();
                if t.is_empty() || !(matches!(t, b"true" | b"false" | b"null") || parse_f64(t).is_some()) {
                    return line_err(RejectReason::Syntax, format!("invalid JSON value at byte {}", self.i - t.len()));
                }
                Ok(())
            }
            None => line_err(RejectReason::Syntax, "unexpected end of line"),
        }
    }

    /// `[` elem, ... `]`, calling `elem` at each element start.
    #[inline]
    fn array(&mut self, what: &str, mut elem: impl FnMut(&mut Self, usize) -> R<()>) -> R<()> {
        self.ws();
        if self.peek() != Some(b'[') {
            return line_err(RejectReason::Syntax, format!("{what} must be an array"));
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let mut k = 0;
        loop {
            self.ws();
            elem(self, k)?;
            k += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return line_err(RejectReason::Syntax, format!("{what}: expected ',' or ']' at byte {}", self.i)),
            }
        }
    }
}

fn parse_line(sink: &mut Sink, b: &[u8], vals: &mut Vec<f64>, tss: &mut Vec<Timestamp>) -> R<()> {
    let mut c = Cur { b, i: 0 };
    c.ws();
    if c.i == b.len() {
        return Ok(());
    }
    c.expect(b'{')?;
    vals.clear();
    tss.clear();
    let mut metric: Option<(usize, usize)> = None;
    let (mut have_vals, mut have_ts) = (false, false);
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            let (ks, ke, esc) = c.string_raw()?;
            c.expect(b':')?;
            c.ws();
            let unescaped;
            let key: &[u8] = if esc {
                unescaped = unescape_json(utf8(&b[ks..ke], "key")?)?;
                unescaped.as_bytes()
            } else {
                &b[ks..ke]
            };
            match key {
                b"metric" => {
                    if c.peek() != Some(b'{') {
                        return line_err(RejectReason::Syntax, "\"metric\" must be an object");
                    }
                    let s = c.i;
                    c.skip_value(0)?;
                    metric = Some((s, c.i));
                }
                b"values" => {
                    vals.clear();
                    c.array("values", |c, k| {
                        let v = value(c).ok_or_else(|| {
                            Fail::Line(RejectReason::BadValue, format!("cannot parse value at position {k}"))
                        })?;
                        vals.push(v);
                        Ok(())
                    })?;
                    have_vals = true;
                }
                b"timestamps" => {
                    tss.clear();
                    c.array("timestamps", |c, k| {
                        let t = c.token();
                        let t = parse_i64(t).ok_or_else(|| {
                            Fail::Line(
                                RejectReason::BadTimestamp,
                                format!(
                                    "cannot parse timestamp at position {k}: {:?} is not integer milliseconds",
                                    String::from_utf8_lossy(t)
                                ),
                            )
                        })?;
                        tss.push(t);
                        Ok(())
                    })?;
                    have_ts = true;
                }
                _ => c.skip_value(0)?,
            }
            c.ws();
            match c.peek() {
                Some(b',') => c.i += 1,
                Some(b'}') => {
                    c.i += 1;
                    break;
                }
                _ => return line_err(RejectReason::Syntax, format!("expected ',' or '}}' at byte {}", c.i)),
            }
        }
    }
    c.ws();
    if c.i != b.len() {
        return line_err(RejectReason::Syntax, format!("unexpected text after the object at byte {}", c.i));
    }
    let Some((ms, me)) = metric else {
        return line_err(RejectReason::Syntax, "missing \"metric\" object");
    };
    if !have_vals || vals.is_empty() {
        return line_err(RejectReason::Syntax, "missing or empty \"values\" array");
    }
    if !have_ts || tss.is_empty() {
        return line_err(RejectReason::Syntax, "missing or empty \"timestamps\" array");
    }
    if vals.len() != tss.len() {
        return line_err(
            RejectReason::LengthMismatch,
            format!("{} values but {} timestamps", vals.len(), tss.len()),
        );
    }
    let raw = &b[ms..me];
    sink.key_reset();
    sink.key.extend_from_slice(raw);
    let id = sink.resolve(|| metric_pairs(raw))?;
    for (&t, &v) in tss.iter().zip(vals.iter()) {
        sink.push(id, t, v)?;
    }
    Ok(())
}

/// One element of `values`.
#[inline]
fn value(c: &mut Cur) -> Option<f64> {
    match c.peek()? {
        b'"' => {
            let (s, e, esc) = c.string_raw().ok()?;
            if esc {
                return None;
            }
            match &c.b[s..e] {
                b"null" | b"Null" => Some(f64::NAN),
                t => parse_f64(t),
            }
        }
        _ => match c.token() {
            b"null" => Some(f64::NAN),
            // numbers, and the bare `NaN` / `+Inf` / `-Inf` VictoriaMetrics's export writes
            t => parse_f64(t),
        },
    }
}

/// Labels of a `metric` object (cache miss): every value must be a string.
fn metric_pairs(raw: &[u8]) -> R<Pairs> {
    utf8(raw, "metric")?;
    let mut c = Cur { b: raw, i: 0 };
    c.expect(b'{')?;
    let mut pairs: Pairs = Vec::with_capacity(8);
    c.ws();
    if c.peek() == Some(b'}') {
        return Ok(pairs);
    }
    loop {
        let (ks, ke, _) = c.string_raw()?;
        let name = unescape_json(std::str::from_utf8(&raw[ks..ke]).unwrap_or(""))?;
        c.expect(b':')?;
        c.ws();
        if c.peek() != Some(b'"') {
            return line_err(RejectReason::BadLabel, format!("value of label {name:?} is not a string"));
        }
        let (vs, ve, _) = c.string_raw()?;
        let value = unescape_json(std::str::from_utf8(&raw[vs..ve]).unwrap_or(""))?;
        pairs.push((name, value));
        c.ws();
        match c.peek() {
            Some(b',') => c.i += 1,
            _ => break,
        }
    }
    Ok(pairs)
}

/// JSON string escapes: `\" \\ \/ \b \f \n \r \t \uXXXX` with surrogate pairs.
fn unescape_json(s: &str) -> R<String> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    let bad = |m: &str| Fail::Line(RejectReason::Syntax, format!("invalid string escape: {m}"));
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let hex4 = |chars: &mut std::str::Chars| -> R<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let d = chars.next().and_then(|c| c.to_digit(16)).ok_or_else(|| bad("\\u needs 4 hex digits"))?;
            v = v * 16 + d;
        }
        Ok(v)
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('/') => out.push('/'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hi = hex4(&mut chars)?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err(bad("high surrogate without a low surrogate"));
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(bad("high surrogate without a low surrogate"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(bad("lone low surrogate"));
                } else {
                    hi
                };
                out.push(char::from_u32(cp).ok_or_else(|| bad("invalid code point"))?);
            }
            Some(o) => return Err(bad(&format!("\\{o}"))),
            None => return Err(bad("trailing backslash")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    fn run(store: &Store, body: &[u8]) -> IngestReport {
        ingest(store, Format::VmJson, body, &opts()).unwrap()
    }

    #[test]
    fn ingest_vmjson_happy_path() {
        let store = store();
        let body = br#"{"metric":{"__name__":"up","job":"node","instance":"h1:9100"},"values":[1,0,1.5],"timestamps":[1000,2000,3000]}
{"metric":{"__name__":"up","job":"node","instance":"h2:9100"},"values":[2],"timestamps":[1000]}

  {"timestamps":[4000],"values":[-2.5e1],"metric":{"instance":"h1:9100","job":"node","__name__":"up"}}
{"metric":{"__name__":"up","job":"node","instance":"h1:9100"},"values":[7],"timestamps":[5000],"unknown":{"a":[1,{"b":null}],"c":true}}
"#;
        let r = run(&store, body);
        assert_eq!(r.rejected, vec![]);
        assert_eq!(r.samples, 6);
        assert_eq!(r.series_created, 2);
        let h1 = id_of(&store, "up", &[("job", "node"), ("instance", "h1:9100")]);
        assert_eq!(read_all(&store, h1), (vec![1000, 2000, 3000, 4000, 5000], vec![1.0, 0.0, 1.5, -25.0, 7.0]));
        let h2 = id_of(&store, "up", &[("job", "node"), ("instance", "h2:9100")]);
        assert_eq!(read_all(&store, h2), (vec![1000], vec![2.0]));
    }

    #[test]
    fn ingest_vmjson_special_values_and_escapes() {
        let store = store();
        let body = r#"{"metric":{"__name__":"sp","q":"say \"hi\"\\ \/ \n \u00e9 \ud83d\ude00 \u4e2d"},"values":[null,"NaN","Inf","-Inf","Infinity","-infinity","+Inf","12.5",1e3],"timestamps":[1,2,3,4,5,6,7,8,9]}"#;
        let r = run(&store, body.as_bytes());
        assert_eq!(r.rejected, vec![]);
        let id = id_of(&store, "sp", &[("q", "say \"hi\"\\ / \n é 😀 中")]);
        let (ts, v) = read_all(&store, id);
        assert_eq!(ts, (1..=9).collect::<Vec<_>>());
        assert!(v[0].is_nan() && v[1].is_nan());
        assert_eq!(&v[2..], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 12.5, 1000.0]);
    }

    #[test]
    fn ingest_vmjson_bare_specials_as_vm_exports_them() {
        let store = store();
        let body = br#"{"metric":{"__name__":"bare"},"values":[1,+Inf,-Inf,NaN,Inf],"timestamps":[1,2,3,4,5]}
{"metric":{"__name__":"bare_bad"},"values":[true],"timestamps":[1]}"#;
        let r = run(&store, body);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].line, 2);
        let (ts, v) = read_all(&store, id_of(&store, "bare", &[]));
        assert_eq!(ts, vec![1, 2, 3, 4, 5]);
        assert_eq!(&v[..3], &[1.0, f64::INFINITY, f64::NEG_INFINITY]);
        assert!(v[3].is_nan());
        assert_eq!(v[4], f64::INFINITY);
    }

    #[test]
    fn ingest_vmjson_rejections() {
        let store = store();
        let lines: Vec<Vec<u8>> = vec![
            br#"{"metric":{"__name__":"ok"},"values":[1],"timestamps":[1]}"#.to_vec(), // 1
            br#"{"metric":{"__name__":"m"},"values":[1,2],"timestamps":[1]}"#.to_vec(), // 2 length
            br#"{"metric":{"__name__":"m"},"values":["abc"],"timestamps":[1]}"#.to_vec(), // 3 value
            br#"{"metric":{"__name__":"m"},"values":[true],"timestamps":[1]}"#.to_vec(), // 4 value
            br#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1.5]}"#.to_vec(), // 5 ts
            br#"{"metric":{"__name__":"m"},"values":[1]}"#.to_vec(), // 6 syntax
            br#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1]"#.to_vec(), // 7 syntax
            br#"{"metric":{"__name__":"m","a":1},"values":[1],"timestamps":[1]}"#.to_vec(), // 8 bad label
            b"{\"metric\":{\"__name__\":\"m\",\"a\":\"\xff\"},\"values\":[1],\"timestamps\":[1]}".to_vec(), // 9 utf8
            br#"{"metric":{"job":"x"},"values":[1],"timestamps":[1]}"#.to_vec(), // 10 empty name
            br#"{"metric":{"__name__":"m","a":"\ud800"},"values":[1],"timestamps":[1]}"#.to_vec(), // 11 syntax
            br#"{"metric":{"__name__":"m","a.b":"1","a_b":"2"},"values":[1],"timestamps":[1]}"#.to_vec(), // 12 dup after sanitising
            br#"not json"#.to_vec(), // 13
            br#"{"metric":{"__name__":"m"},"values":[],"timestamps":[]}"#.to_vec(), // 14 syntax
            br#"{"metric":{"__name__":"ok"},"values":[2],"timestamps":[2]} trailing"#.to_vec(), // 15 syntax
            br#"{"metric":{"__name__":"ok"},"values":[3],"timestamps":[3]}"#.to_vec(), // 16
        ];
        let body = lines.join(&b'\n');
        let r = run(&store, &body);
        use RejectReason::*;
        assert_eq!(
            reasons(&r),
            vec![
                (2, LengthMismatch),
                (3, BadValue),
                (4, BadValue),
                (5, BadTimestamp),
                (6, Syntax),
                (7, Syntax),
                (8, BadLabel),
                (9, InvalidUtf8),
                (10, EmptyMetricName),
                (11, Syntax),
                (12, BadLabel),
                (13, Syntax),
                (14, Syntax),
                (15, Syntax),
            ]
        );
        assert_eq!(r.rejected[0].sample, String::from_utf8(lines[1].clone()).unwrap());
        assert_eq!(r.samples, 2);
        assert_eq!(read_all(&store, id_of(&store, "ok", &[])), (vec![1, 3], vec![1.0, 3.0]));
        assert_eq!(store.series_count(), 1);
    }

    #[test]
    fn ingest_vmjson_extra_labels_and_sanitising() {
        let store = store();
        let mut o = opts();
        o.extra_labels = vec![("job".into(), "imported".into())];
        let body = br#"{"metric":{"__name__":"m","job":"orig","k8s.pod":"p1"},"values":[1],"timestamps":[10]}"#;
        let r = ingest(&store, Format::VmJson, body, &o).unwrap();
        assert_eq!(r.rejected, vec![]);
        let id = id_of(&store, "m", &[("job", "imported"), ("k8s_pod", "p1")]);
        assert_eq!(read_all(&store, id), (vec![10], vec![1.0]));
    }
}
