//! Values the evaluator passes between nodes, all laid out over a step grid.
//!
//! * [`Grid`]: the evaluation times `start, start + step, ...` (one step for an
//!   instant query).
//! * [`Series`]: one labelled series with an optional value per grid step
//!   (`None` = no sample at that step, which is different from a NaN sample).
//! * [`RangeArg`]: what a range-vector argument (matrix selector or subquery)
//!   gives a function: each series' points once, plus the window end per step.
//! * [`Value`]: scalar, instant vector, range vector or string.

/// A label set sorted by name, names unique, no empty values; may or may not hold `__name__`.
pub type Labels = Vec<(String, String)>;

/// The metric name label.
pub const NAME: &str = "__name__";

/// The evaluation times of one (sub)query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

impl Grid {
    /// The grid `start..=end` by `step`; `step` must be positive.
    pub fn new(start: i64, end: i64, step: i64) -> Grid {
        let len = if end < start { 0 } else { ((end - start) / step) as usize + 1 };
        Grid { start, step, len }
    }

    /// One step at `t`.
    pub fn instant(t: i64) -> Grid {
        Grid { start: t, step: 1, len: 1 }
    }

    /// Time of step `i`.
    #[inline]
    pub fn t(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
}

/// A series of an instant vector over a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
}

impl Series {
    /// True when the series has a value at some step.
    pub fn any(&self) -> bool {
        self.vals.iter().any(Option::is_some)
    }
}

/// Raw points of one series, sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct Points {
    pub labels: Labels,
    pub ts: Vec<i64>,
    pub vals: Vec<f64>,
}

impl Points {
    /// Index range of the points in the closed window `[lo, hi]`.
    #[inline]
    pub fn window(&self, lo: i64, hi: i64) -> (usize, usize) {
        let a = self.ts.partition_point(|&t| t < lo);
        let b = self.ts.partition_point(|&t| t <= hi);
        (a, b.max(a))
    }
}

/// Windows of one series' sorted timestamps for window bounds that never move
/// back (a grid's steps in order): each bound moves forward from where it was,
/// a few points at a time, or by binary search over the rest when it jumps far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sweep {
    a: usize,
    b: usize,
}

impl Sweep {
    /// Index range of the points in the closed window `[lo, hi]`; `lo` and `hi`
    /// must not be below those of the previous call.
    #[inline]
    pub fn window(&mut self, ts: &[i64], lo: i64, hi: i64) -> (usize, usize) {
        self.a = advance(ts, self.a, |t| t < lo);
        self.b = advance(ts, self.b.max(self.a), |t| t <= hi);
        (self.a, self.b)
    }
}

impl Sweep {
    /// The number of points at or before `hi`; `hi` must not be below that of the
    /// previous call (instant lookback needs only the newest point of each window).
    #[inline]
    pub fn upto(&mut self, ts: &[i64], hi: i64) -> usize {
        self.b = advance(ts, self.b, |t| t <= hi);
        self.b
    }
}

/// The first index from `at` on where `before` is false (`ts` partitioned by it).
#[inline]
fn advance(ts: &[i64], mut at: usize, before: impl Fn(i64) -> bool) -> usize {
    for _ in 0..8 {
        if at == ts.len() || !before(ts[at]) {
            return at;
        }
        at += 1;
    }
    at + ts[at..].partition_point(|&t| before(t))
}

/// A range-vector argument: per series its points, and per grid step the end of
/// the window `[ends[i] - range, ends[i]]` (evaluation time minus offset, or the `@` time).
#[derive(Clone, Debug, PartialEq)]
pub struct RangeArg {
    pub series: Vec<Points>,
    pub range: i64,
    pub ends: Vec<i64>,
    /// Labels `absent_over_time` gives its result (from the selector's `=` matchers).
    pub absent_labels: Labels,
}

/// An evaluated expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// One value per grid step.
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
    Range(RangeArg),
    String(String),
}

/// Removes `__name__`.
pub fn drop_name(labels: &mut Labels) {
    labels.retain(|(n, _)| n != NAME);
}

/// Value of a label ("" when absent).
pub fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) => &labels[i].1,
        Err(_) => "",
    }
}

/// Sets a label (an empty value removes it), keeping the set sorted.
pub fn set(labels: &mut Labels, name: &str, value: &str) {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].1 = value.to_string(),
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.to_string(), value.to_string())),
    }
}

/// Prometheus's `labels.String()`: `{a="1", b="2"}`.
pub fn format_labels(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={}", go_quote(v))).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Go's `strconv.Quote` for printable text (escapes quotes, backslashes and control characters).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}
