//! `label_replace`, `label_join` and the experimental `sort_by_label[_desc]`.

use regex::Regex;

use super::exec_err;
use super::value::{get, set, Series};
use crate::error::Result;

fn valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `label_replace(v, dst, replacement, src, regex)`.
pub fn label_replace(mut series: Vec<Series>, dst: &str, repl: &str, src: &str, re: &str) -> Result<Vec<Series>> {
    let regex = Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| exec_err(format!("invalid regular expression in label_replace(): {re}: {e}")))?;
    if !valid_label_name(dst) {
        return Err(exec_err(format!("invalid destination label name in label_replace(): {dst}")));
    }
    for s in &mut series {
        let value = get(&s.labels, src).to_string();
        if let Some(caps) = regex.captures(&value) {
            let mut res = String::new();
            caps.expand(repl, &mut res);
            set(&mut s.labels, dst, &res);
        }
    }
    Ok(series)
}

/// `label_join(v, dst, separator, src...)`.
pub fn label_join(mut series: Vec<Series>, dst: &str, sep: &str, srcs: &[String]) -> Result<Vec<Series>> {
    for src in srcs {
        if !valid_label_name(src) {
            return Err(exec_err(format!("invalid source label name in label_join(): {src}")));
        }
    }
    if !valid_label_name(dst) {
        return Err(exec_err(format!("invalid destination label name in label_join(): {dst}")));
    }
    for s in &mut series {
        let joined = srcs.iter().map(|n| get(&s.labels, n)).collect::<Vec<_>>().join(sep);
        set(&mut s.labels, dst, &joined);
    }
    Ok(series)
}

/// Natural-order sort by the given labels (instant queries only; order is meaningless in a matrix).
/// Ties keep the order of the full label sets (descending for `desc`), as Prometheus does.
pub fn sort_by_label(series: &mut [Series], names: &[String], desc: bool) {
    series.sort_by(|a, b| if desc { b.labels.cmp(&a.labels) } else { a.labels.cmp(&b.labels) });
    series.sort_by(|a, b| {
        for n in names {
            let ord = natural_cmp(get(&a.labels, n), get(&b.labels, n));
            if ord != std::cmp::Ordering::Equal {
                return if desc { ord.reverse() } else { ord };
            }
        }
        std::cmp::Ordering::Equal
    });
}

/// Compares strings with runs of digits compared as numbers ("9" < "10").
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (x, y) = (std::str::from_utf8(&a[si..i]).unwrap(), std::str::from_utf8(&b[sj..j]).unwrap());
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            let ord = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}
