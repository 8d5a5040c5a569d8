//! Validated, canonical label sets.
//!
//! A [`Labels`] is immutable and shared (`Arc` inside): one allocation holds all names and
//! values back to back, a second holds the end offsets, and the identity hash is computed
//! once at construction, so hashing a `Labels` (e.g. as a map key, or on the registry's
//! resolve path) never re-reads the strings.

use std::fmt;
use std::sync::Arc;

use super::hash::hash_label_pairs;
use crate::error::{Error, Result};

/// The reserved label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Size limits applied by [`Labels::new`] / [`Labels::from_pairs`].
///
/// Defaults: 64 labels besides `__name__`, 4096 bytes per name or value.
/// VictoriaMetrics defaults to 30 labels per series and 4 KiB per value
/// (`-maxLabelsPerTimeseries`, `-maxLabelValueLen`); we keep its value-length limit but
/// allow more labels, because real Kubernetes series routinely carry 20-30 labels and
/// rejecting a series loses data while a generous label count only costs a little memory.
/// Prometheus itself has no default limit. Configure tighter limits in the store if needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelLimits {
    /// Maximum number of labels, not counting `__name__` (labels with empty values, which
    /// are dropped, are not counted either).
    pub max_labels: usize,
    /// Maximum length in bytes of any label name or value, including the metric name.
    pub max_label_len: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits { max_labels: 64, max_label_len: 4096 }
    }
}

/// A label set, sorted by name, names unique, including the metric name as `__name__`.
/// Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Labels {
    inner: Arc<Inner>,
}

struct Inner {
    /// Identity hash over the sorted pairs (see `hash::hash_label_pairs`).
    hash: u64,
    /// Names and values back to back: name0 value0 name1 value1 ...
    text: Box<str>,
    /// `ends[2i]` = end of name i, `ends[2i+1]` = end of value i (byte offsets into `text`).
    ends: Box<[u32]>,
    /// Index of the `__name__` pair.
    metric_idx: u32,
}

impl PartialEq for Inner {
    fn eq(&self, other: &Inner) -> bool {
        self.hash == other.hash && self.ends == other.ends && self.text == other.text
    }
}
impl Eq for Inner {}

impl std::hash::Hash for Inner {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub(crate) fn valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn bad_name(name: &str) -> Error {
    Error::bad_input(format!(
        "invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
    ))
}

impl Labels {
    /// Validates and sorts. See the crate docs of the registry for the rules:
    /// names match `[a-zA-Z_][a-zA-Z0-9_]*`, no duplicates, empty values dropped,
    /// metric name non-empty, limits from `limits`. Errors are `BadInput` naming the label.
    pub fn new(metric: &str, labels: &[(&str, &str)], limits: &LabelLimits) -> Result<Labels> {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
        pairs.push((METRIC_NAME, metric));
        for &(n, v) in labels {
            if n == METRIC_NAME {
                return Err(Error::bad_input(format!(
                    "duplicate label name {METRIC_NAME:?}: the metric name is given separately"
                )));
            }
            pairs.push((n, v));
        }
        Self::build(pairs, limits)
    }

    /// Same as [`Labels::new`], where the pairs already include `__name__`.
    pub fn from_pairs(pairs: &[(&str, &str)], limits: &LabelLimits) -> Result<Labels> {
        Self::build(pairs.to_vec(), limits)
    }

    fn build(mut pairs: Vec<(&str, &str)>, limits: &LabelLimits) -> Result<Labels> {
        for &(n, v) in &pairs {
            if n.len() > limits.max_label_len {
                return Err(Error::bad_input(format!(
                    "label name {:?}... is {} bytes, over the limit of {} bytes",
                    prefix(n),
                    n.len(),
                    limits.max_label_len
                )));
            }
            if !valid_label_name(n) {
                return Err(bad_name(n));
            }
            if v.len() > limits.max_label_len {
                return Err(Error::bad_input(format!(
                    "value of label {n:?} is {} bytes, over the limit of {} bytes",
                    v.len(),
                    limits.max_label_len
                )));
            }
        }
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for w in pairs.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(Error::bad_input(format!("duplicate label name {:?}", w[0].0)));
            }
        }
        match pairs.binary_search_by(|p| p.0.cmp(METRIC_NAME)) {
            Ok(i) if pairs[i].1.is_empty() => {
                return Err(Error::bad_input("metric name (__name__) is empty"))
            }
            Ok(_) => {}
            Err(_) => return Err(Error::bad_input("missing metric name (__name__)")),
        }
        pairs.retain(|p| !p.1.is_empty());
        if pairs.len() - 1 > limits.max_labels {
            return Err(Error::bad_input(format!(
                "too many labels: {} besides __name__, over the limit of {} (metric {:?})",
                pairs.len() - 1,
                limits.max_labels,
                pairs.iter().find(|p| p.0 == METRIC_NAME).map(|p| p.1).unwrap_or("")
            )));
        }
        Ok(Self::from_sorted_unchecked(pairs.iter().copied(), pairs.len()))
    }

    /// Builds from pairs already known to be valid, sorted, unique and non-empty
    /// (registry records, decoded bytes after checking).
    pub(crate) fn from_sorted_unchecked<'a>(
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
        n: usize,
    ) -> Labels {
        let total: usize = pairs.clone().map(|(a, b)| a.len() + b.len()).sum();
        let mut text = String::with_capacity(total);
        let mut ends = Vec::with_capacity(2 * n);
        let mut metric_idx = 0u32;
        for (i, (name, value)) in pairs.clone().enumerate() {
            if name == METRIC_NAME {
                metric_idx = i as u32;
            }
            text.push_str(name);
            ends.push(text.len() as u32);
            text.push_str(value);
            ends.push(text.len() as u32);
        }
        let hash = hash_label_pairs(pairs);
        Labels {
            inner: Arc::new(Inner {
                hash,
                text: text.into_boxed_str(),
                ends: ends.into_boxed_slice(),
                metric_idx,
            }),
        }
    }

    #[inline]
    fn pair(&self, i: usize) -> (&str, &str) {
        let e = &self.inner.ends;
        let start = if i == 0 { 0 } else { e[2 * i - 1] as usize };
        let mid = e[2 * i] as usize;
        let end = e[2 * i + 1] as usize;
        (&self.inner.text[start..mid], &self.inner.text[mid..end])
    }

    /// The metric name (value of `__name__`).
    pub fn metric(&self) -> &str {
        self.pair(self.inner.metric_idx as usize).1
    }

    /// Value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (n, v) = self.pair(mid);
            match n.cmp(name) {
                std::cmp::Ordering::Equal => return Some(v),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// Pairs sorted by name, including `__name__`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        (0..self.len()).map(move |i| self.pair(i))
    }

    /// Number of labels, including `__name__`.
    pub fn len(&self) -> usize {
        self.inner.ends.len() / 2
    }

    /// Always false: a label set has at least `__name__`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached identity hash (process-local, never persist it).
    #[inline]
    pub(crate) fn hash64(&self) -> u64 {
        self.inner.hash
    }

    /// Appends the binary form (see `FORMAT-series.md`) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.reserve(1 + 2 * self.len() * 2 + self.inner.text.len() + 2);
        buf.push(FORMAT_VERSION);
        put_uvarint(buf, self.len() as u64);
        for (n, v) in self.iter() {
            put_uvarint(buf, n.len() as u64);
            buf.extend_from_slice(n.as_bytes());
            put_uvarint(buf, v.len() as u64);
            buf.extend_from_slice(v.as_bytes());
        }
    }

    /// Parses the binary form. Every structural rule is checked (version, lengths,
    /// UTF-8, name syntax, strict name order, non-empty values, `__name__` present,
    /// no trailing bytes); any violation is `Err(Corrupt)`. Size limits are not applied:
    /// they are checked when a series is first created, and may change afterwards.
    pub fn decode(bytes: &[u8]) -> Result<Labels> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.byte()?;
        if version != FORMAT_VERSION {
            return Err(Error::corrupt(format!("labels: unknown format version {version}")));
        }
        let count = r.uvarint()?;
        // Each pair takes at least 4 bytes (two lengths, two non-empty strings).
        if count == 0 || count > (bytes.len() - r.pos) as u64 / 4 {
            return Err(Error::corrupt(format!(
                "labels: pair count {count} impossible for {} remaining bytes",
                bytes.len() - r.pos
            )));
        }
        let count = count as usize;
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(count);
        let mut has_metric = false;
        for i in 0..count {
            let name = r.string()?;
            let value = r.string()?;
            if !valid_label_name(name) {
                return Err(Error::corrupt(format!("labels: pair {i}: invalid label name {name:?}")));
            }
            if value.is_empty() {
                return Err(Error::corrupt(format!("labels: pair {i}: label {name:?} has an empty value")));
            }
            if let Some(prev) = pairs.last() {
                if prev.0 >= name {
                    return Err(Error::corrupt(format!(
                        "labels: pair {i}: name {name:?} not strictly after {:?}",
                        prev.0
                    )));
                }
            }
            has_metric |= name == METRIC_NAME;
            pairs.push((name, value));
        }
        if r.pos != bytes.len() {
            return Err(Error::corrupt(format!(
                "labels: {} trailing bytes after {count} pairs",
                bytes.len() - r.pos
            )));
        }
        if !has_metric {
            return Err(Error::corrupt("labels: missing __name__"));
        }
        Ok(Self::from_sorted_unchecked(pairs.iter().copied(), pairs.len()))
    }
}

fn prefix(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Lexicographic order of the (name, value) pairs, as Prometheus sorts series.
impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Prometheus text form: `metric{a="1", b="2"}` (values escaped).
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric())?;
        f.write_str("{")?;
        let mut first = true;
        for (n, v) in self.iter().filter(|p| p.0 != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{n}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Labels({self})")
    }
}

const FORMAT_VERSION: u8 = 1;

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| Error::corrupt(format!("labels: truncated at byte {}", self.pos)))?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = (b & 0x7f) as u64;
            if shift == 63 && part > 1 {
                return Err(Error::corrupt(format!("labels: varint overflow at byte {start}")));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    // Canonical encodings only: one byte string per label set.
                    return Err(Error::corrupt(format!("labels: non-minimal varint at byte {start}")));
                }
                return Ok(v);
            }
        }
        Err(Error::corrupt(format!("labels: varint too long at byte {start}")))
    }

    fn string(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let len = self.uvarint()?;
        let remaining = (self.bytes.len() - self.pos) as u64;
        if len > remaining {
            return Err(Error::corrupt(format!(
                "labels: string at byte {at} claims {len} bytes, {remaining} remain"
            )));
        }
        let s = &self.bytes[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        std::str::from_utf8(s)
            .map_err(|_| Error::corrupt(format!("labels: string at byte {at} is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn lim() -> LabelLimits {
        LabelLimits::default()
    }

    fn err(r: Result<Labels>) -> Error {
        match r {
            Ok(l) => panic!("expected an error, got {l}"),
            Err(e) => e,
        }
    }

    #[test]
    fn series_labels_sorted_and_accessors() {
        let l = Labels::new("cpu", &[("zone", "b"), ("Host", "h1"), ("a", "x")], &lim()).unwrap();
        let pairs: Vec<_> = l.iter().collect();
        assert_eq!(pairs, vec![("Host", "h1"), ("__name__", "cpu"), ("a", "x"), ("zone", "b")]);
        assert_eq!(l.metric(), "cpu");
        assert_eq!(l.get("a"), Some("x"));
        assert_eq!(l.get("Host"), Some("h1"));
        assert_eq!(l.get("zone"), Some("b"));
        assert_eq!(l.get("__name__"), Some("cpu"));
        assert_eq!(l.get("nope"), None);
        assert_eq!(l.get(""), None);
        assert_eq!(l.len(), 4);
        assert!(!l.is_empty());
        assert_eq!(l.to_string(), "cpu{Host=\"h1\", a=\"x\", zone=\"b\"}");
    }

    #[test]
    fn series_labels_order_insensitive() {
        let a = Labels::new("m", &[("a", "1"), ("b", "2"), ("c", "3")], &lim()).unwrap();
        let b = Labels::new("m", &[("c", "3"), ("a", "1"), ("b", "2")], &lim()).unwrap();
        let c = Labels::from_pairs(&[("b", "2"), ("__name__", "m"), ("c", "3"), ("a", "1")], &lim()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.hash64(), c.hash64());
        let d = Labels::new("m", &[("a", "1"), ("b", "2"), ("c", "4")], &lim()).unwrap();
        assert_ne!(a, d);
    }

    #[test]
    fn series_labels_empty_values_dropped() {
        let a = Labels::new("m", &[("a", "1"), ("b", "")], &lim()).unwrap();
        let b = Labels::new("m", &[("a", "1")], &lim()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.get("b"), None);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn series_labels_validation_errors() {
        let bad = |r: Result<Labels>, needle: &str| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::BadInput, "{e}");
            assert!(e.message.contains(needle), "{:?} should mention {needle:?}", e.message);
        };
        bad(Labels::new("", &[("a", "1")], &lim()), "metric name");
        bad(Labels::from_pairs(&[("a", "1")], &lim()), "missing metric name");
        bad(Labels::from_pairs(&[("__name__", ""), ("a", "1")], &lim()), "metric name");
        bad(Labels::new("m", &[("1abc", "1")], &lim()), "\"1abc\"");
        bad(Labels::new("m", &[("a-b", "1")], &lim()), "\"a-b\"");
        bad(Labels::new("m", &[("", "1")], &lim()), "invalid label name \"\"");
        bad(Labels::new("m", &[("héllo", "1")], &lim()), "héllo");
        bad(Labels::new("m", &[("a.b", "1")], &lim()), "a.b");
        bad(Labels::new("m", &[("a", "1"), ("b", "2"), ("a", "3")], &lim()), "duplicate label name \"a\"");
        // A duplicate is still a duplicate when one of the values is empty.
        bad(Labels::new("m", &[("a", ""), ("a", "3")], &lim()), "duplicate label name \"a\"");
        bad(Labels::new("m", &[("__name__", "x")], &lim()), "__name__");
        bad(Labels::from_pairs(&[("__name__", "x"), ("__name__", "y")], &lim()), "duplicate label name \"__name__\"");

        let small = LabelLimits { max_labels: 2, max_label_len: 8 };
        assert!(Labels::new("m", &[("a", "1"), ("b", "2")], &small).is_ok());
        // Empty values don't count toward the limit.
        assert!(Labels::new("m", &[("a", "1"), ("b", "2"), ("c", "")], &small).is_ok());
        bad(Labels::new("m", &[("a", "1"), ("b", "2"), ("c", "3")], &small), "too many labels: 3");
        bad(Labels::new("m", &[("a", "123456789")], &small), "value of label \"a\" is 9 bytes");
        bad(Labels::new("m", &[("abcdefghi", "1")], &small), "label name \"abcdefghi\"... is 9 bytes");
        bad(Labels::new("metric_xyz", &[], &small), "value of label \"__name__\"");
        assert!(Labels::new("m", &[("abcdefgh", "12345678")], &small).is_ok());
    }

    #[test]
    fn series_labels_valid_names() {
        for n in ["a", "_", "A_1", "__x__", "abc123", "Z"] {
            assert!(valid_label_name(n), "{n}");
        }
        for n in ["", "1", "a b", "a:b", "ä", "a-", "-a"] {
            assert!(!valid_label_name(n), "{n}");
        }
    }

    #[test]
    fn series_labels_encode_decode_roundtrip() {
        let l = Labels::new(
            "http_requests_total",
            &[("path", "/api/v1/ünïcode \"q\"\n"), ("code", "200"), ("Long", &"x".repeat(300))],
            &lim(),
        )
        .unwrap();
        let mut buf = vec![0xAA]; // encode appends
        l.encode(&mut buf);
        assert_eq!(buf[0], 0xAA);
        let back = Labels::decode(&buf[1..]).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.hash64(), l.hash64());
        assert_eq!(back.metric(), "http_requests_total");

        // Exact bytes for a small set (documented in FORMAT-series.md).
        let s = Labels::new("up", &[("job", "x")], &lim()).unwrap();
        let mut b = Vec::new();
        s.encode(&mut b);
        let mut want = vec![1u8, 2, 8];
        want.extend_from_slice(b"__name__");
        want.push(2);
        want.extend_from_slice(b"up");
        want.push(3);
        want.extend_from_slice(b"job");
        want.push(1);
        want.extend_from_slice(b"x");
        assert_eq!(b, want);
    }

    #[test]
    fn series_labels_decode_rejects_garbage() {
        let l = Labels::new("up", &[("job", "x"), ("instance", "h:9100")], &lim()).unwrap();
        let mut good = Vec::new();
        l.encode(&mut good);
        let corrupt = |b: &[u8]| {
            let e = err(Labels::decode(b));
            assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
        };
        corrupt(&[]);
        corrupt(&[2, 1, 1, b'a', 1, b'b']); // bad version
        corrupt(&[1, 0]); // zero pairs
        for cut in 0..good.len() {
            corrupt(&good[..cut]);
        }
        let mut trailing = good.clone();
        trailing.push(0);
        corrupt(&trailing);
        corrupt(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        corrupt(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        // Non-minimal varint for the pair count (2 written as 0x82 0x00).
        let mut nm = vec![1u8, 0x82, 0x00];
        nm.extend_from_slice(&good[2..]);
        corrupt(&nm);
        // Unsorted pairs.
        let mut b = vec![1u8, 2, 1, b'z', 1, b'1'];
        b.extend_from_slice(&[8]);
        b.extend_from_slice(b"__name__");
        b.extend_from_slice(&[1, b'm']);
        corrupt(&b);
        // Missing __name__.
        corrupt(&[1, 1, 1, b'a', 1, b'b']);
        // Empty value.
        let mut b = vec![1u8, 1, 8];
        b.extend_from_slice(b"__name__");
        b.push(0);
        corrupt(&b);
        // Invalid name / invalid UTF-8.
        let mut b = vec![1u8, 2, 8];
        b.extend_from_slice(b"__name__");
        b.extend_from_slice(&[1, b'm', 1, b'-', 1, b'v']);
        corrupt(&b);
        let mut b = vec![1u8, 1, 8];
        b.extend_from_slice(b"__name__");
        b.extend_from_slice(&[2, 0xc3, 0x28]);
        corrupt(&b);

        // Random bytes and random mutations of a good encoding never panic, and
        // whatever decodes re-encodes to the same bytes.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let mut b = if rng.gen_bool(0.5) {
                let n = rng.gen_range(0..40);
                (0..n).map(|_| rng.gen()).collect::<Vec<u8>>()
            } else {
                let mut b = good.clone();
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
                b
            };
            if rng.gen_bool(0.1) {
                b.truncate(rng.gen_range(0..=b.len()));
            }
            if let Ok(l) = Labels::decode(&b) {
                let mut again = Vec::new();
                l.encode(&mut again);
                assert_eq!(again, b);
            }
        }
    }
}
