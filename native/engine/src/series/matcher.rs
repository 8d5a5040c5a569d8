//! Label matchers with Prometheus semantics.
//!
//! * An absent label has the empty value: `{foo=""}`, `{foo!="x"}` and `{foo=~"a|"}` all match
//!   series without `foo`.
//! * Regexes are fully anchored: `=~"fo"` does not match `"foo"`. Like Prometheus, the pattern
//!   is compiled as `^(?s:PATTERN)$`, so `.` also matches a newline.
//! * Patterns that are just alternations of plain literals (`a|b|c`), `.*` and `.+` are
//!   recognised and never run through the regex engine; the registry also uses the literal
//!   alternatives to look postings up directly instead of scanning a label's values.

use regex::Regex;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    kind: Kind,
}

/// What the positive form (`=` / `=~`) of the matcher accepts.
#[derive(Clone, Debug)]
enum Kind {
    /// Exactly these strings (one for `=`; the alternatives of a literal-only regex).
    /// Sorted, deduplicated.
    Literals(Vec<String>),
    /// `.*`: everything, including the empty value.
    Any,
    /// `.+`: every non-empty value.
    NonEmpty,
    Regex(Regex),
}

const REGEX_META: &[u8] = b"\\.+*?()[]{}^$";

impl Matcher {
    /// Builds a matcher. For `Re` / `Nre`, a pattern that does not compile is
    /// `Err(BadInput)` naming the label and the pattern.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher> {
        let kind = match op {
            MatchOp::Eq | MatchOp::Ne => Kind::Literals(vec![value.to_string()]),
            MatchOp::Re | MatchOp::Nre => {
                if value == ".*" {
                    Kind::Any
                } else if value == ".+" {
                    Kind::NonEmpty
                } else if !value.bytes().any(|b| REGEX_META.contains(&b)) {
                    let mut alts: Vec<String> = value.split('|').map(str::to_string).collect();
                    alts.sort_unstable();
                    alts.dedup();
                    Kind::Literals(alts)
                } else {
                    let re = Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                        Error::bad_input(format!(
                            "invalid regex {value:?} in matcher for label {name:?}: {e}"
                        ))
                    })?;
                    Kind::Regex(re)
                }
            }
        };
        Ok(Matcher { name: name.to_string(), op, value: value.to_string(), kind })
    }

    /// Whether a series whose label `name` has `value` (None = absent) is selected.
    pub fn matches(&self, value: Option<&str>) -> bool {
        self.positive(value.unwrap_or("")) != self.is_negative()
    }

    /// True for `!=` and `!~`.
    pub(crate) fn is_negative(&self) -> bool {
        matches!(self.op, MatchOp::Ne | MatchOp::Nre)
    }

    /// Whether the positive form (`=` / `=~`) accepts `v`.
    fn positive(&self, v: &str) -> bool {
        match &self.kind {
            Kind::Literals(l) => {
                if l.len() == 1 {
                    l[0] == v
                } else {
                    l.binary_search_by(|x| x.as_str().cmp(v)).is_ok()
                }
            }
            Kind::Any => true,
            Kind::NonEmpty => !v.is_empty(),
            Kind::Regex(re) => re.is_match(v),
        }
    }

    /// The exact set of values the positive form accepts, when it is a finite literal set.
    pub(crate) fn literal_set(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Literals(l) => Some(l),
            _ => None,
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn m(op: MatchOp, v: &str) -> Matcher {
        Matcher::new("foo", op, v).unwrap()
    }

    #[test]
    fn series_matcher_eq_ne() {
        let eq = m(MatchOp::Eq, "x");
        assert!(eq.matches(Some("x")));
        assert!(!eq.matches(Some("xx")));
        assert!(!eq.matches(Some("")));
        assert!(!eq.matches(None));
        let ne = m(MatchOp::Ne, "x");
        assert!(!ne.matches(Some("x")));
        assert!(ne.matches(Some("y")));
        assert!(ne.matches(None), "!= matches series without the label");
        let eq_empty = m(MatchOp::Eq, "");
        assert!(eq_empty.matches(None), "=\"\" matches series without the label");
        assert!(!eq_empty.matches(Some("a")));
        let ne_empty = m(MatchOp::Ne, "");
        assert!(!ne_empty.matches(None));
        assert!(ne_empty.matches(Some("a")));
        // Values with regex metacharacters are plain text for = and !=.
        let dot = m(MatchOp::Eq, "a.c");
        assert!(dot.matches(Some("a.c")));
        assert!(!dot.matches(Some("abc")));
    }

    #[test]
    fn series_matcher_regex_anchored() {
        let re = m(MatchOp::Re, "fo");
        assert!(re.matches(Some("fo")));
        assert!(!re.matches(Some("foo")));
        assert!(!re.matches(Some("xfo")));
        let re = m(MatchOp::Re, "f.");
        assert!(re.matches(Some("fo")));
        assert!(!re.matches(Some("foo")));
        assert!(!re.matches(Some("afo")));
        // Alternation is anchored as a whole, not just its first/last branch.
        let re = m(MatchOp::Re, "a|b.");
        assert!(re.matches(Some("a")));
        assert!(re.matches(Some("bc")));
        assert!(!re.matches(Some("ab")));
        assert!(!re.matches(Some("xbc")));
        assert!(!re.matches(Some("az")));
        // Dot matches newline, like Prometheus.
        assert!(m(MatchOp::Re, "a.b").matches(Some("a\nb")));
        let nre = m(MatchOp::Nre, "fo");
        assert!(nre.matches(Some("foo")));
        assert!(!nre.matches(Some("fo")));
    }

    #[test]
    fn series_matcher_regex_empty_rules() {
        let re = m(MatchOp::Re, "a|");
        assert!(re.literal_set().is_some());
        assert!(re.matches(None), "=~\"a|\" matches series without the label");
        assert!(re.matches(Some("a")));
        assert!(!re.matches(Some("b")));
        let re = m(MatchOp::Re, "a+|");
        assert!(re.literal_set().is_none());
        assert!(re.matches(None));
        assert!(re.matches(Some("aaa")));
        let re = m(MatchOp::Re, "a+");
        assert!(!re.matches(None));
        let any = m(MatchOp::Re, ".*");
        assert!(any.matches(None) && any.matches(Some("x")));
        let nonempty = m(MatchOp::Re, ".+");
        assert!(!nonempty.matches(None) && nonempty.matches(Some("x")));
        let nre = m(MatchOp::Nre, "a|b");
        assert!(nre.matches(None));
        assert!(!nre.matches(Some("b")));
        assert!(nre.matches(Some("c")));
        let nre_any = m(MatchOp::Nre, ".*");
        assert!(!nre_any.matches(None) && !nre_any.matches(Some("x")));
        let nre_nonempty = m(MatchOp::Nre, ".+");
        assert!(nre_nonempty.matches(None) && !nre_nonempty.matches(Some("x")));
    }

    #[test]
    fn series_matcher_literal_fast_path_agrees_with_regex() {
        // The literal-set shortcut must give the same answers as the regex engine.
        for pat in ["a|b|c", "abc", "", "|", "x||y", "host_1|host_10"] {
            let fast = m(MatchOp::Re, pat);
            assert!(fast.literal_set().is_some(), "{pat}");
            let re = Regex::new(&format!("^(?s:{pat})$")).unwrap();
            for v in ["", "a", "b", "c", "abc", "ab", "x", "y", "host_1", "host_10", "host_100", "|"] {
                assert_eq!(fast.matches(Some(v)), re.is_match(v), "{pat} vs {v}");
            }
        }
    }

    #[test]
    fn series_matcher_bad_regex() {
        let e = Matcher::new("job", MatchOp::Re, "a(b").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
        assert!(e.message.contains("a(b") && e.message.contains("job"), "{}", e.message);
        let e = Matcher::new("job", MatchOp::Nre, "[z-a]").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
        // The same text is fine for = (it is not a regex there).
        assert!(Matcher::new("job", MatchOp::Eq, "a(b").is_ok());
    }
}
