use super::*;
use crate::series::{Labels, MatchOp};
use crate::store::StoreConfig;

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(name, op, value).unwrap()
}

fn eq(name: &str, value: &str) -> Matcher {
    m(name, MatchOp::Eq, value)
}

/// A memory store with one point at `t` (ms) per series.
fn store(series: &[(&str, &[(&str, &str)], i64)]) -> Store {
    let (store, _) = Store::open(StoreConfig::default()).unwrap();
    for &(metric, labels, t) in series {
        let id = store.resolve(&store.labels(metric, labels).unwrap()).unwrap();
        store.write(&[id], &[t], &[1.0]).unwrap();
    }
    store
}

fn body(store: &Store, selectors: &[Vec<Matcher>], range: Option<(i64, i64)>, limit: Option<usize>) -> String {
    String::from_utf8(series_body(store, selectors, range, limit)).unwrap()
}

#[test]
fn series_body_is_the_envelope_with_labels_in_descending_name_order() {
    let s = store(&[("up", &[("job", "api"), ("instance", "a:1"), ("Zone", "z"), ("a1", "x")], 1_000)]);
    assert_eq!(
        body(&s, &[vec![eq("__name__", "up")]], None, None),
        r#"{"status":"success","data":[{"job":"api","instance":"a:1","a1":"x","__name__":"up","Zone":"z"}]}"#
    );
    assert_eq!(body(&s, &[vec![eq("__name__", "down")]], None, None), r#"{"status":"success","data":[]}"#);
    assert_eq!(body(&s, &[], None, None), r#"{"status":"success","data":[]}"#);
}

#[test]
fn series_body_escapes_as_jiffy() {
    let s = store(&[("m\"x", &[("v", "a\\b\"c\n\t\u{1}\u{1f}<>&/é€😀\u{2028}\u{7f}")], 1_000)]);
    assert_eq!(
        body(&s, &[vec![eq("v", "a\\b\"c\n\t\u{1}\u{1f}<>&/é€😀\u{2028}\u{7f}")]], None, None),
        "{\"status\":\"success\",\"data\":[{\"v\":\"a\\\\b\\\"c\\n\\t\\u0001\\u001F<>&/é€😀\u{2028}\u{7f}\",\"__name__\":\"m\\\"x\"}]}"
    );
}

#[test]
fn series_are_sorted_by_label_pairs_as_erlang_sorts_them() {
    // pairs compared in name order: ("A", _) before ("__name__", _); a label set that is
    // a prefix of another comes first; bytes compare unsigned ("é" after "z")
    let s = store(&[
        ("b", &[], 1),
        ("a", &[("x", "1")], 1),
        ("a", &[], 1),
        ("z", &[("A", "q")], 1),
        ("a", &[("x", "é")], 1),
        ("a", &[("x", "z")], 1),
        ("a", &[("x", "10")], 1),
    ]);
    let all = body(&s, &[vec![m("__name__", MatchOp::Re, ".+")]], None, None);
    assert_eq!(
        all,
        concat!(
            r#"{"status":"success","data":["#,
            r#"{"__name__":"z","A":"q"},{"__name__":"a"},{"x":"1","__name__":"a"},{"x":"10","__name__":"a"},"#,
            r#"{"x":"z","__name__":"a"},{"x":"é","__name__":"a"},{"__name__":"b"}]}"#
        )
    );
}

#[test]
fn selectors_are_united_each_series_once() {
    let s = store(&[
        ("up", &[("job", "api")], 1),
        ("up", &[("job", "db")], 1),
        ("down", &[("job", "api")], 1),
    ]);
    let one = |sels: &[Vec<Matcher>]| body(&s, sels, None, None);
    let want = r#"{"status":"success","data":[{"job":"api","__name__":"down"},{"job":"api","__name__":"up"},{"job":"db","__name__":"up"}]}"#;
    // overlapping selectors, in either order, and one selector given twice
    assert_eq!(one(&[vec![eq("job", "api")], vec![eq("__name__", "up")]]), want);
    assert_eq!(one(&[vec![eq("__name__", "up")], vec![eq("job", "api")]]), want);
    assert_eq!(one(&[vec![eq("__name__", "up")], vec![eq("job", "api")], vec![eq("__name__", "up")]]), want);
    // a selector matching nothing adds nothing
    assert_eq!(one(&[vec![eq("job", "api")], vec![eq("job", "none")], vec![eq("job", "db")]]), want);
}

#[test]
fn the_range_keeps_series_with_data_in_it() {
    let s = store(&[("old", &[("job", "a")], 1_000), ("new", &[("job", "a")], 100_000)]);
    let sel = [vec![eq("job", "a")]];
    let names = |range| body(&s, &sel, range, None);
    assert_eq!(names(Some((0, 2_000))), r#"{"status":"success","data":[{"job":"a","__name__":"old"}]}"#);
    assert_eq!(names(Some((50_000, i64::MAX))), r#"{"status":"success","data":[{"job":"a","__name__":"new"}]}"#);
    assert_eq!(names(Some((i64::MIN, 1_000))), r#"{"status":"success","data":[{"job":"a","__name__":"old"}]}"#);
    assert_eq!(names(Some((2_000, 3_000))), r#"{"status":"success","data":[]}"#);
    assert_eq!(names(None), names(Some((0, 100_000))));
    // flushed data counts as well as buffered data
    s.flush().unwrap();
    assert_eq!(names(Some((50_000, 200_000))), r#"{"status":"success","data":[{"job":"a","__name__":"new"}]}"#);
}

#[test]
fn a_limit_keeps_the_first_series_and_warns_when_it_cuts() {
    let s = store(&[("m", &[("i", "1")], 1), ("m", &[("i", "2")], 1), ("m", &[("i", "3")], 1)]);
    let sel = [vec![eq("__name__", "m")]];
    let warn = r#","warnings":["results truncated due to limit"]}"#;
    assert_eq!(body(&s, &sel, None, Some(2)), format!(r#"{{"status":"success","data":[{{"i":"1","__name__":"m"}},{{"i":"2","__name__":"m"}}]{warn}"#));
    assert_eq!(body(&s, &sel, None, Some(0)), format!(r#"{{"status":"success","data":[]{warn}"#));
    assert_eq!(body(&s, &sel, None, Some(3)), body(&s, &sel, None, None));
    assert_eq!(body(&s, &sel, None, Some(usize::MAX)), body(&s, &sel, None, None));
    assert!(!body(&s, &sel, None, Some(3)).contains("warnings"));
    // the limit applies to the union, after sorting
    let two = [vec![eq("i", "3")], vec![eq("i", "1")]];
    assert_eq!(body(&s, &two, None, Some(1)), format!(r#"{{"status":"success","data":[{{"i":"1","__name__":"m"}}]{warn}"#));
}

#[test]
fn deleted_series_are_not_listed() {
    let s = store(&[("m", &[("i", "1")], 1), ("m", &[("i", "2")], 1)]);
    s.delete(&[eq("i", "1")]).unwrap();
    assert_eq!(body(&s, &[vec![eq("__name__", "m")]], None, None), r#"{"status":"success","data":[{"i":"2","__name__":"m"}]}"#);
}

#[test]
fn the_cost_bounds_the_series_from_postings_sizes() {
    let mut series: Vec<(String, String)> = Vec::new();
    for j in 0..10 {
        for i in 0..20 {
            series.push((format!("j{j}"), format!("i{i}")));
        }
    }
    let (s, _) = Store::open(StoreConfig::default()).unwrap();
    for (j, i) in &series {
        s.resolve(&s.labels("up", &[("job", j), ("instance", i)]).unwrap()).unwrap();
    }
    let cost = |sels: &[Vec<Matcher>]| series_cost(&s, sels);
    // the smallest equality postings bound the selection
    assert_eq!(cost(&[vec![eq("__name__", "up"), eq("job", "j1")]]).series, 20);
    assert_eq!(cost(&[vec![eq("job", "j1"), eq("instance", "i1")]]).series, 10);
    assert_eq!(cost(&[vec![m("job", MatchOp::Re, "j1|j2")]]).series, 40);
    // selectors add up; a missing label or value bounds to nothing
    assert_eq!(cost(&[vec![eq("job", "j1")], vec![eq("job", "j2")]]).series, 40);
    assert_eq!(cost(&[vec![eq("nope", "x")]]), SeriesCost { series: 0, work: 0 });
    assert_eq!(cost(&[vec![eq("job", "none")]]).series, 0);
    // a real regex or only negative matchers: every series (the regex scans the values)
    let re = cost(&[vec![m("job", MatchOp::Re, "j.*")]]);
    assert_eq!(re.series, 200);
    assert!(re.work >= 210);
    assert_eq!(cost(&[vec![m("job", MatchOp::Ne, "j1")]]).series, 200);
    assert_eq!(cost(&[]), SeriesCost::default());
    // small for the typical request, a few steps per series
    let typical = cost(&[vec![eq("__name__", "up"), eq("job", "j1")]]);
    assert!(typical.work <= 2 + 2 * 20, "{typical:?}");
}

#[test]
fn the_cost_is_an_upper_bound() {
    let mut rnd = crate::xorshift(0x5eed_1234);
    let (s, _) = Store::open(StoreConfig::default()).unwrap();
    for _ in 0..300 {
        let (a, b, c) = (rnd() % 7, rnd() % 13, rnd() % 3);
        let metric = format!("m{}", rnd() % 4);
        let mut labels = vec![("a", format!("{a}")), ("b", format!("{b}"))];
        if c > 0 {
            labels.push(("c", format!("{c}")));
        }
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
        s.resolve(&s.labels(&metric, &pairs).unwrap()).unwrap();
    }
    let ops = [MatchOp::Eq, MatchOp::Ne, MatchOp::Re, MatchOp::Nre];
    let names = ["__name__", "a", "b", "c", "d"];
    let values = ["m1", "1", "2", "", "1|2|3", "1.*", ".+", "m.*", "x"];
    for _ in 0..2_000 {
        let n = 1 + rnd() % 3;
        let sel: Vec<Matcher> = (0..n)
            .map(|_| {
                let (name, op, value) = (names[(rnd() % 5) as usize], ops[(rnd() % 4) as usize], values[(rnd() % 9) as usize]);
                m(name, op, value)
            })
            .collect();
        let bound = s.select_bound(&sel);
        let got = s.select(&sel, None).len() as u64;
        assert!(bound.ids >= got, "{sel:?}: bound {bound:?}, selected {got}");
    }
}

#[test]
fn values_holding_nul_bytes_still_sort_by_pairs() {
    // as keys, ("x", "a\0b\0c") and [("x", "a"), ("b", "c")] would tie: pairs decide
    let s = store(&[
        ("m", &[("x", "a\0b\0c")], 1),
        ("m", &[("x", "a"), ("y", "c")], 1),
        ("m", &[("x", "a\0")], 1),
        ("m", &[("x", "a")], 1),
        ("m", &[("x", "\0")], 1),
    ]);
    assert_eq!(
        body(&s, &[vec![eq("__name__", "m")]], None, None),
        concat!(
            r#"{"status":"success","data":[{"x":"\u0000","__name__":"m"},{"x":"a","__name__":"m"},"#,
            r#"{"y":"c","x":"a","__name__":"m"},{"x":"a\u0000","__name__":"m"},{"x":"a\u0000b\u0000c","__name__":"m"}]}"#
        )
    );
}

#[test]
fn key_order_is_label_order() {
    let mut rnd = crate::xorshift(0xfeed_beef);
    let (s, _) = Store::open(StoreConfig::default()).unwrap();
    let names = ["A", "_", "__name__x", "a", "ab", "b"];
    let values = ["a", "ab", "a b", "b", "é", "~", "0"];
    for _ in 0..400 {
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for &n in &names {
            if rnd() % 3 == 0 {
                labels.push((n, values[(rnd() % 7) as usize]));
            }
        }
        let metric = values[(rnd() % 7) as usize];
        let _ = s.resolve(&s.labels(metric, &labels).unwrap());
    }
    let ids = s.select(&[], None);
    let mut want: Vec<Labels> = ids.iter().filter_map(|&id| s.series_labels(id)).collect();
    want.sort();
    let want: Vec<Vec<(&[u8], &[u8])>> = want.iter().map(|l| l.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect()).collect();
    let mut listed = Listed::of(&s, &ids);
    for nul in [false, true] {
        listed.nul = nul; // the pair-by-pair comparison must agree
        let got: Vec<Vec<(&[u8], &[u8])>> = listed.sorted().into_iter().map(|i| listed.pair_slices(i).collect()).collect();
        assert_eq!(got, want, "nul: {nul}");
    }
}
