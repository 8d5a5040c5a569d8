//! Prometheus's JSON response for an evaluated query, written straight from the
//! evaluator's [`QueryValue`] (the HTTP path; the embedded Elixir API builds terms).
//!
//! The bytes are those of `TimelessMetrics.HTTP.PromQL.encode/1` (which follows
//! Prometheus 2.53's `web/api/v1` and `util/jsonutil`):
//!
//! * envelope `{"status":"success","data":{"resultType":"…","result":…}}`, then
//!   `"warnings"`/`"infos"` arrays when there are some;
//! * vector samples `{"metric":{…},"value":[1700000000.500,"1"]}`, matrix series
//!   `{"metric":{…},"values":[[…],…]}`; labels sorted by name, empty values left out;
//! * sample timestamps as `jsonutil.MarshalTimestamp` (seconds, a millisecond part
//!   always with three digits), sample values as `jsonutil.MarshalFloat` (Go's
//!   `'f'` form, `'e'` form below 1e-6 and from 1e21 up, `NaN`, `+Inf`, `-Inf`);
//! * scalars and strings `[1700000000.5,"1"]` (time and value in Go's `'f'` form);
//! * strings escaped as Go's `encoding/json` does (`<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`).
//!
//! A range query's answer is always a matrix: a scalar becomes one series without
//! labels, a vector series keeps only the steps where it has a value.
//!
//! The output is a list of chunks whose concatenation is the body; series are
//! encoded in parallel, so the chunks can go out as iodata without being joined.

use rayon::prelude::*;

use super::value::{Grid, Labels, Points, Series};
use super::QueryValue;
use crate::store::pool;

/// Series per parallel encoding task.
const SERIES_PER_CHUNK: usize = 16;

/// A typical encoded sample: `[1700000000,"123.456789"],`.
const POINT_BYTES: usize = 32;

/// What the response says besides the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Notes {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// The success body of `value`, evaluated over `grid`, as chunks to concatenate.
/// `range` selects the shape of a range query (always a matrix).
pub fn encode_response(value: &QueryValue, grid: &Grid, range: bool, notes: &Notes) -> Vec<Vec<u8>> {
    let result_type = match (range, value) {
        (true, _) | (false, QueryValue::Matrix(_)) => "matrix",
        (false, QueryValue::Scalar(_)) => "scalar",
        (false, QueryValue::Vector(_)) => "vector",
        (false, QueryValue::String(_)) => "string",
    };
    let mut head = Vec::with_capacity(128);
    head.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"resultType\":\"");
    head.extend_from_slice(result_type.as_bytes());
    head.extend_from_slice(b"\",\"result\":");

    let mut chunks = vec![head];
    match (range, value) {
        (_, QueryValue::String(s)) => {
            let out = chunks.last_mut().expect("head");
            out.push(b'[');
            go_float(out, grid.start as f64 / 1000.0);
            out.push(b',');
            go_string(out, s);
            out.push(b']');
        }
        (false, QueryValue::Scalar(vals)) => {
            let out = chunks.last_mut().expect("head");
            out.push(b'[');
            go_float(out, grid.start as f64 / 1000.0);
            out.extend_from_slice(b",\"");
            go_float(out, vals.first().copied().unwrap_or(f64::NAN));
            out.extend_from_slice(b"\"]");
        }
        (true, QueryValue::Scalar(vals)) => {
            let stamps = Stamps::of(grid);
            let out = chunks.last_mut().expect("head");
            out.extend_from_slice(b"[{\"metric\":{},\"values\":[");
            for (i, &v) in vals.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                stamps.point(out, i, v);
            }
            out.extend_from_slice(b"]}]");
        }
        (false, QueryValue::Vector(series)) => {
            let present: Vec<&Series> = series.iter().filter(|s| matches!(s.vals.first(), Some(Some(_)))).collect();
            list(&mut chunks, &present, 192, |out, s| {
                out.extend_from_slice(b"{\"metric\":");
                labels(out, &s.labels);
                out.extend_from_slice(b",\"value\":");
                point(out, grid.start, s.vals[0].unwrap_or(f64::NAN));
                out.push(b'}');
            });
        }
        (true, QueryValue::Vector(series)) => {
            let stamps = Stamps::of(grid);
            let present: Vec<&Series> = series.iter().filter(|s| s.any()).collect();
            list(&mut chunks, &present, 192 + grid.len * POINT_BYTES, |out, s| {
                out.extend_from_slice(b"{\"metric\":");
                labels(out, &s.labels);
                out.extend_from_slice(b",\"values\":[");
                let mut first = true;
                for (i, v) in s.vals.iter().enumerate() {
                    if let Some(v) = v {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        stamps.point(out, i, *v);
                    }
                }
                out.extend_from_slice(b"]}");
            });
        }
        (_, QueryValue::Matrix(rows)) => {
            let rows: Vec<&Points> = rows.iter().collect();
            let longest = rows.iter().map(|p| p.ts.len()).max().unwrap_or(0);
            list(&mut chunks, &rows, 192 + longest * POINT_BYTES, |out, p| {
                out.extend_from_slice(b"{\"metric\":");
                labels(out, &p.labels);
                out.extend_from_slice(b",\"values\":[");
                for (i, (&t, &v)) in p.ts.iter().zip(&p.vals).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    point(out, t, v);
                }
                out.extend_from_slice(b"]}");
            });
        }
    }

    let mut tail = Vec::with_capacity(16);
    tail.push(b'}');
    string_list(&mut tail, "warnings", &notes.warnings);
    string_list(&mut tail, "infos", &notes.infos);
    tail.push(b'}');
    chunks.push(tail);
    chunks
}

/// `[item,item,…]` after the last chunk, items encoded in parallel groups.
/// `size` guesses an item's length, so that a group's buffer rarely grows.
fn list<T: Sync>(chunks: &mut Vec<Vec<u8>>, items: &[T], size: usize, encode: impl Fn(&mut Vec<u8>, &T) + Sync) {
    chunks.last_mut().expect("head").push(b'[');
    let groups: Vec<Vec<u8>> = pool().install(|| {
        items
            .par_chunks(SERIES_PER_CHUNK)
            .enumerate()
            .map(|(g, group)| {
                let mut out = Vec::with_capacity(group.len() * size);
                for (i, item) in group.iter().enumerate() {
                    if g > 0 || i > 0 {
                        out.push(b',');
                    }
                    encode(&mut out, item);
                }
                out
            })
            .collect()
    });
    chunks.extend(groups);
    chunks.push(b"]".to_vec());
}

fn string_list(out: &mut Vec<u8>, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        go_string(out, s);
    }
    out.push(b']');
}

/// A label set as a JSON object: sorted by name, empty values left out.
fn labels(out: &mut Vec<u8>, labels: &Labels) {
    let mut pairs: Vec<(&str, &str)> =
        labels.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| (n.as_str(), v.as_str())).collect();
    if !pairs.windows(2).all(|w| w[0] <= w[1]) {
        pairs.sort_unstable();
    }
    out.push(b'{');
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        go_string(out, n);
        out.push(b':');
        go_string(out, v);
    }
    out.push(b'}');
}

/// The `[<timestamp>,"` opening of a sample at each grid step, written once per
/// query instead of once per series.
struct Stamps {
    text: Vec<u8>,
    /// `text[ends[i - 1]..ends[i]]` opens step `i` (`ends[-1]` = 0).
    ends: Vec<usize>,
}

impl Stamps {
    fn of(grid: &Grid) -> Stamps {
        let mut text = Vec::with_capacity(grid.len * 18);
        let mut ends = Vec::with_capacity(grid.len);
        for i in 0..grid.len {
            text.push(b'[');
            sample_timestamp(&mut text, grid.t(i));
            text.extend_from_slice(b",\"");
            ends.push(text.len());
        }
        Stamps { text, ends }
    }

    /// `[<timestamp>,"<value>"]` of the sample at step `i`.
    #[inline]
    fn point(&self, out: &mut Vec<u8>, i: usize, v: f64) {
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        out.extend_from_slice(&self.text[from..self.ends[i]]);
        sample_value(out, v);
        out.extend_from_slice(b"\"]");
    }
}

/// `[<timestamp>,"<value>"]` of a sample.
#[inline]
fn point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    sample_timestamp(out, t);
    out.extend_from_slice(b",\"");
    sample_value(out, v);
    out.extend_from_slice(b"\"]");
}

/// `jsonutil.MarshalTimestamp`: seconds, and `.mmm` when there is a millisecond part.
pub fn sample_timestamp(out: &mut Vec<u8>, t: i64) {
    let abs = t.unsigned_abs();
    if t < 0 {
        out.push(b'-');
    }
    uint(out, abs / 1000);
    let ms = abs % 1000;
    if ms != 0 {
        out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8]);
    }
}

/// `jsonutil.MarshalFloat`: Go's `'f'` form, but `'e'` form (`1e-07`, `1.5e+21`)
/// for magnitudes below 1e-6 or from 1e21 up.
pub fn sample_value(out: &mut Vec<u8>, v: f64) {
    let a = v.abs();
    if v != 0.0 && v.is_finite() && !(1e-6..1e21).contains(&a) {
        go_exp(out, v);
    } else {
        go_float(out, v);
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest digits that read back
/// as `v`, without exponent; `NaN`, `+Inf`, `-Inf`.
pub fn go_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v == v.trunc() && v.abs() < 1e15 && v != 0.0 {
        // Whole numbers (most counters and gauges) print as integers.
        if v < 0.0 {
            out.push(b'-');
        }
        uint(out, v.abs() as u64);
    } else if let Some(m) = thousandths(v) {
        // Sample values are mostly short decimals (45.3, 0.25): their digits are
        // those of an integer number of thousandths, no shortest-digits search needed.
        if v < 0.0 {
            out.push(b'-');
        }
        let m = m.unsigned_abs();
        uint(out, m / 1000);
        let frac = m % 1000;
        let digits = [b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
        let keep = if frac % 100 == 0 { 2 } else if frac % 10 == 0 { 3 } else { 4 };
        out.extend_from_slice(&digits[..keep]);
    } else {
        let mut zmij = zmij::Buffer::new();
        let text = zmij.format_finite(v).as_bytes();
        // Żmij (like Ryū) writes decimal notation (as Go's 'f') for 1e-5 <= |v| < 1e16; whole
        // numbers there end in ".0", which Go leaves out.
        if !text.contains(&b'e') {
            out.extend_from_slice(text.strip_suffix(b".0").unwrap_or(text));
            return;
        }
        let d = Shortest::of(v);
        if v.is_sign_negative() {
            out.push(b'-');
        }
        let digits = d.digits();
        let n = digits.len() as i32;
        if d.point <= 0 {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + (-d.point) as usize, b'0');
            out.extend_from_slice(digits);
        } else if d.point >= n {
            out.extend_from_slice(digits);
            out.resize(out.len() + (d.point - n) as usize, b'0');
        } else {
            out.extend_from_slice(&digits[..d.point as usize]);
            out.push(b'.');
            out.extend_from_slice(&digits[d.point as usize..]);
        }
    }
}

/// `v` as a whole number of thousandths, when that is exact and `v` is not a whole
/// number: `m / 1000` then reads back as `v`, and no decimal with fewer digits does
/// (below 1e9 two such decimals are further apart than `v`'s neighbours), so the
/// digits of `m` are the shortest ones.
#[inline]
fn thousandths(v: f64) -> Option<i64> {
    if !(v.abs() < 1e9) {
        return None;
    }
    let m = (v * 1000.0).round();
    // |m| < 1e12: exact as an i64 (and an integer remainder instead of libm's fmod)
    let mi = m as i64;
    (m / 1000.0 == v && mi % 1000 != 0).then_some(mi)
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)` of a finite non-zero `v`:
/// `d[.ddd]e±XX`, at least two exponent digits.
fn go_exp(out: &mut Vec<u8>, v: f64) {
    let d = Shortest::of(v);
    if v.is_sign_negative() {
        out.push(b'-');
    }
    let digits = d.digits();
    out.push(digits[0]);
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    let exp = d.point - 1;
    out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
    if exp.unsigned_abs() < 10 {
        out.push(b'0');
    }
    uint(out, exp.unsigned_abs() as u64);
}

/// The shortest decimal digits that read back as a float: `0.d1d2…dn × 10^point`.
///
/// The digits are Żmij's (the `zmij` crate, about twice as fast as Ryū): among equally
/// short candidates the nearest, an exact tie going to the even last digit, as Ryū,
/// Erlang's `float_to_binary(v, [:short])` and Go's `strconv` choose (the tests check
/// them against Ryū).
struct Shortest {
    buf: [u8; 17],
    len: usize,
    point: i32,
}

impl Shortest {
    /// `v` must be finite; its sign is ignored.
    fn of(v: f64) -> Shortest {
        let mut zmij = zmij::Buffer::new();
        // "123.45", "0.001", "1e+21", "1.5e-7": a mantissa, maybe an exponent.
        let text = zmij.format_finite(v.abs()).as_bytes();
        let (mantissa, exp) = match text.iter().position(|&b| b == b'e') {
            Some(e) => (&text[..e], parse_exp(&text[e + 1..])),
            None => (text, 0),
        };
        let mut d = Shortest { buf: [0; 17], len: 0, point: 0 };
        let mut point = mantissa.iter().position(|&b| b == b'.').unwrap_or(mantissa.len()) as i32;
        for &b in mantissa.iter().filter(|&&b| b != b'.') {
            if d.len > 0 || b != b'0' {
                d.buf[d.len] = b;
                d.len += 1;
            } else {
                point -= 1; // a leading zero
            }
        }
        while d.len > 1 && d.buf[d.len - 1] == b'0' {
            d.len -= 1;
        }
        if d.len == 0 {
            return Shortest { buf: [b'0'; 17], len: 1, point: 1 };
        }
        d.point = point + exp;
        d
    }

    fn digits(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn parse_exp(text: &[u8]) -> i32 {
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let n = digits.iter().fold(0i32, |acc, &b| acc * 10 + (b - b'0') as i32);
    if neg {
        -n
    } else {
        n
    }
}

/// Two decimal digits per step (a division by 100 instead of two by 10).
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

fn uint(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[i..]);
}

/// Which characters a JSON string escapes. Both escape `"` and `\`, write `\b`,
/// `\f`, `\n`, `\r`, `\t` for those and `\u00XX` for the other control
/// characters below U+0020, and keep all other text as it is, except:
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// Go's `encoding/json` (what Prometheus's API sends): also `<`, `>`, `&`, U+2028
    /// and U+2029 as `\uXXXX`, hex digits in lower case.
    Go,
    /// jiffy's, the encoder of the Elixir HTTP layer (`TimelessMetrics.HTTP.JSON.encode/1`):
    /// nothing else escaped, hex digits in upper case (`\u001F`).
    Jiffy,
}

/// A JSON string as Go's `encoding/json` writes it.
pub fn go_string(out: &mut Vec<u8>, s: &str) {
    json_string(out, s, Escaping::Go)
}

/// A JSON string, quoted and escaped the way `how` says.
pub fn json_string(out: &mut Vec<u8>, s: &str, how: Escaping) {
    json_utf8(out, s.as_bytes(), how)
}

/// [`json_string`] of the bytes of a `str` (or a copy of them); other bytes are
/// written as they are.
pub(crate) fn json_utf8(out: &mut Vec<u8>, bytes: &[u8], how: Escaping) {
    let (hex, special) = match how {
        Escaping::Go => (b"0123456789abcdef", &GO_SPECIAL),
        Escaping::Jiffy => (b"0123456789ABCDEF", &JIFFY_SPECIAL),
    };
    out.push(b'"');
    let mut plain = 0; // start of the run not yet copied
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !special[b as usize] {
            i += 1;
            continue;
        }
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            8 => Some(b"\\b"),
            12 => Some(b"\\f"),
            // (special only for Go) U+2028, U+2029; other characters starting with 0xE2 stay
            0xE2 if i + 2 < bytes.len() && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9) => {
                Some(if bytes[i + 2] == 0xA8 { b"\\u2028" } else { b"\\u2029" })
            }
            0xE2 => {
                i += 1;
                continue;
            }
            _ => None,
        };
        out.extend_from_slice(&bytes[plain..i]);
        match escape {
            Some(esc) => {
                out.extend_from_slice(esc);
                i += if b == 0xE2 { 3 } else { 1 };
            }
            // the other control characters, and Go's `<`, `>`, `&`
            None => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[(b >> 4) as usize], hex[(b & 15) as usize]]);
                i += 1;
            }
        }
        plain = i;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// Bytes that may need escaping in Go's strings: `"`, `\`, control characters, `<`,
/// `>`, `&`, and 0xE2 (the first byte of U+2028 and U+2029).
static GO_SPECIAL: [bool; 256] = special_bytes(true);

/// Bytes escaped in jiffy's strings: `"`, `\`, control characters.
static JIFFY_SPECIAL: [bool; 256] = special_bytes(false);

const fn special_bytes(go: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    if go {
        t[b'<' as usize] = true;
        t[b'>' as usize] = true;
        t[b'&' as usize] = true;
        t[0xE2] = true;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = vec![];
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn body(value: &QueryValue, grid: &Grid, range: bool, notes: &Notes) -> String {
        String::from_utf8(encode_response(value, grid, range, notes).concat()).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn go_float_is_shortest_fixed_form() {
        for (v, want) in [
            (1.0, "1"),
            (-2.0, "-2"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1.5e-7, "0.00000015"),
            (1e21, "1000000000000000000000"),
            (123456789012345680.0, "123456789012345680"),
            (1e15, "1000000000000000"),
            (1120867210510310.25, "1120867210510310.2"),
            (1120867210510310.75, "1120867210510310.8"),
            (0.25, "0.25"),
            (2.5e-3, "0.0025"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(s(|o| go_float(o, v)), want, "{v:?}");
        }
    }

    /// The shortest fixed-form digits by Ryū, for checking Żmij and the fast paths.
    fn ryu_fixed(v: f64) -> String {
        let mut b = ryu::Buffer::new();
        let t = b.format_finite(v);
        t.strip_suffix(".0").unwrap_or(t).to_string()
    }

    #[test]
    fn go_float_short_decimals_match_shortest_digits() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        for i in 0..200_000 {
            let r = next();
            // short decimals of every magnitude up to 1e9, and arbitrary doubles
            let v = match i % 3 {
                0 => (r % 2_000_000_000_000) as f64 / 1000.0 - 1e9,
                1 => (r % 100_000) as f64 / [10.0, 100.0, 1000.0][(r % 3) as usize],
                _ => f64::from_bits(r >> 2) * if r & 1 == 0 { 1.0 } else { -1.0 },
            };
            if !v.is_finite() || v == 0.0 || v.abs() < 1e-5 || v.abs() >= 1e15 {
                continue;
            }
            assert_eq!(s(|o| go_float(o, v)), ryu_fixed(v), "{v:?} ({:#x})", v.to_bits());
        }
        for (v, want) in [(45.3, "45.3"), (-0.05, "-0.05"), (999999999.999, "999999999.999"), (0.001, "0.001")] {
            assert_eq!(s(|o| go_float(o, v)), want);
        }
    }

    #[test]
    fn sample_values_use_exponent_form_outside_1e_6_to_1e21() {
        for (v, want) in [
            (1e-7, "1e-07"),
            (-1.5e21, "-1.5e+21"),
            (1e21, "1e+21"),
            (0.000001, "0.000001"),
            (9.99e20, "999000000000000000000"),
            (1.2345e-300, "1.2345e-300"),
            (1e100, "1e+100"),
            (2.5e21, "2.5e+21"),
            (1.5e-10, "1.5e-10"),
            (5e-324, "5e-324"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(s(|o| sample_value(o, v)), want, "{v:?}");
        }
    }

    #[test]
    fn shortest_digits_read_back_and_are_as_short_as_rusts() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for i in 0..200_000 {
            let v = match i % 3 {
                0 => f64::from_bits(rng.gen::<u64>() & !(1 << 63)),
                // dyadic values with few fraction bits: where shortest digits can tie
                1 => rng.gen_range(1u64..1 << 53) as f64 * 2f64.powi(rng.gen_range(-12..12)),
                _ => rng.gen::<f64>() * 10f64.powi(rng.gen_range(-30..30)),
            };
            if !v.is_finite() {
                continue;
            }
            let d = Shortest::of(v);
            let text = format!("0.{}e{}", std::str::from_utf8(d.digits()).unwrap(), d.point);
            assert_eq!(text.parse::<f64>().unwrap(), v, "{v:e} as {text}");
            assert!(d.len == 1 || d.digits()[d.len - 1] != b'0', "{v:e} as {text}");
            let rust = format!("{v:e}");
            assert_eq!(d.len, rust.split('e').next().unwrap().replace('.', "").len(), "{v:e}: as short as Rust's");
        }
    }

    #[test]
    fn uint_writes_decimal_digits() {
        let mut cases = vec![0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12_345, u64::MAX, u64::MAX - 1];
        cases.extend((0..20).map(|k| 10u64.pow(k)).flat_map(|p| [p - 1, p, p + 1]));
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..10_000 {
            let r = next();
            cases.push(r >> (r % 64));
        }
        for n in cases {
            let mut out = Vec::new();
            uint(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn sample_timestamps_have_three_millisecond_digits() {
        for (t, want) in [
            (1_700_000_000_500, "1700000000.500"),
            (1_700_000_000_000, "1700000000"),
            (1_005, "1.005"),
            (-1_005, "-1.005"),
            (-2_000, "-2"),
            (0, "0"),
            (20, "0.020"),
        ] {
            assert_eq!(s(|o| sample_timestamp(o, t)), want, "{t}");
        }
    }

    #[test]
    fn strings_escape_as_go_does() {
        assert_eq!(s(|o| go_string(o, "a<b>&\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}")), r#""a\u003cb\u003e\u0026\"\\\n\r\t\b\f\u0001\u001f""#);
        assert_eq!(s(|o| go_string(o, "x\u{2028}y\u{2029}z\u{2027}é\u{7f}")), "\"x\\u2028y\\u2029z\u{2027}é\u{7f}\"");
        assert_eq!(s(|o| go_string(o, "")), "\"\"");
    }

    #[test]
    fn strings_escape_as_jiffy_does() {
        // what `:jiffy.encode/2` writes (checked against jiffy 1.1.1)
        let j = |x: &str| s(|o| json_string(o, x, Escaping::Jiffy));
        assert_eq!(j("a<b>&/\"\\\n\r\t\u{8}\u{c}"), r#""a<b>&/\"\\\n\r\t\b\f""#);
        assert_eq!(j("\u{0}\u{1}\u{b}\u{1a}\u{1b}\u{1f}"), r#""\u0000\u0001\u000B\u001A\u001B\u001F""#);
        assert_eq!(j("x\u{2028}y\u{2029}é€😀\u{7f}\u{80}\u{9f}"), "\"x\u{2028}y\u{2029}é€😀\u{7f}\u{80}\u{9f}\"");
        assert_eq!(j(""), "\"\"");
    }

    #[test]
    fn instant_vector_keeps_present_samples_with_sorted_labels() {
        let v = QueryValue::Vector(vec![
            Series { labels: labels(&[("job", "a"), ("__name__", "up"), ("empty", "")]), vals: vec![Some(1.0)] },
            Series { labels: labels(&[("job", "b")]), vals: vec![None] },
        ]);
        assert_eq!(
            body(&v, &Grid::instant(1_700_000_000_500), false, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.500,"1"]}]}}"#
        );
    }

    #[test]
    fn range_vector_is_a_matrix_of_present_steps() {
        let v = QueryValue::Vector(vec![
            Series { labels: labels(&[("a", "1")]), vals: vec![Some(0.5), None, Some(f64::NAN)] },
            Series { labels: labels(&[("a", "2")]), vals: vec![None, None, None] },
        ]);
        assert_eq!(
            body(&v, &Grid::new(1000, 3000, 1000), true, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.5"],[3,"NaN"]]}]}}"#
        );
    }

    #[test]
    fn scalars_strings_and_empty_results() {
        let g = Grid::instant(1_700_000_000_500);
        assert_eq!(
            body(&QueryValue::Scalar(vec![f64::INFINITY]), &g, false, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"+Inf"]}}"#
        );
        assert_eq!(
            body(&QueryValue::String("a<b".into()), &g, false, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"string","result":[1700000000.5,"a\u003cb"]}}"#
        );
        assert_eq!(
            body(&QueryValue::Scalar(vec![1e-7, 2.0]), &Grid::new(0, 1500, 1500), true, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1e-07"],[1.500,"2"]]}]}}"#
        );
        assert_eq!(
            body(&QueryValue::Vector(vec![]), &g, false, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
        );
        assert_eq!(
            body(&QueryValue::Matrix(vec![]), &g, true, &Notes::default()),
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
        );
    }

    #[test]
    fn matrix_of_raw_points_and_notes() {
        let m = QueryValue::Matrix(vec![Points { labels: labels(&[("x", "y")]), ts: vec![1, 2000], vals: vec![1.0, -3.25] }]);
        let notes = Notes { warnings: vec!["w<1>".into()], infos: vec!["i".into()] };
        assert_eq!(
            body(&m, &Grid::instant(2000), false, &notes),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"x":"y"},"values":[[0.001,"1"],[2,"-3.25"]]}]},"warnings":["w\u003c1\u003e"],"infos":["i"]}"#
        );
    }

    #[test]
    fn many_series_are_joined_in_order_across_chunks() {
        let series: Vec<Series> = (0..(SERIES_PER_CHUNK * 3 + 1))
            .map(|i| Series { labels: labels(&[("i", &format!("{i:03}"))]), vals: vec![Some(i as f64)] })
            .collect();
        let out = body(&QueryValue::Vector(series), &Grid::instant(0), false, &Notes::default());
        let want: Vec<String> =
            (0..(SERIES_PER_CHUNK * 3 + 1)).map(|i| format!(r#"{{"metric":{{"i":"{i:03}"}},"value":[0,"{i}"]}}"#)).collect();
        assert_eq!(out, format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#, want.join(",")));
    }
}
