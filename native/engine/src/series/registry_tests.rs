use super::*;
use crate::error::ErrorKind;
use crate::series::{LabelLimits, MatchOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

fn labels(metric: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::new(metric, pairs, &LabelLimits::default()).unwrap()
}

fn resolve(r: &Registry, l: &Labels) -> SeriesId {
    r.resolve_with(l, |_, _| Ok(())).unwrap()
}

fn mt(name: &str, op: MatchOp, v: &str) -> Matcher {
    Matcher::new(name, op, v).unwrap()
}

#[test]
fn series_registry_resolve_is_order_insensitive_and_stable() {
    let r = Registry::new();
    let calls = AtomicUsize::new(0);
    let a = Labels::new("cpu", &[("host", "h1"), ("dc", "x")], &LabelLimits::default()).unwrap();
    let b = Labels::from_pairs(&[("dc", "x"), ("__name__", "cpu"), ("host", "h1")], &LabelLimits::default()).unwrap();
    let on_create = |id: SeriesId, l: &Labels| {
        calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(l.get("host"), Some("h1"));
        assert!(id >= FIRST_ID);
        Ok(())
    };
    let id = r.resolve_with(&a, on_create).unwrap();
    assert_eq!(r.resolve_with(&b, |_, _| panic!("must not create again")).unwrap(), id);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.lookup(&b), Some(id));
    assert_eq!(r.get(id), Some(a.clone()));
    assert_eq!(r.get(id + 1), None);
    let other = labels("cpu", &[("host", "h2"), ("dc", "x")]);
    assert_eq!(r.lookup(&other), None);
    let id2 = resolve(&r, &other);
    assert!(id2 > id);
    assert_eq!(r.len(), 2);
    assert_eq!(r.next_id(), id2 + 1);
    r.check_invariants();
}

#[test]
fn series_registry_on_create_failure_leaves_nothing() {
    let r = Registry::new();
    let l = labels("mem", &[("host", "a"), ("unique_label", "only_here")]);
    let err = r
        .resolve_with(&l, |_, _| Err(Error::new(ErrorKind::Io, "disk full")))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert_eq!(err.message, "disk full");
    assert_eq!(r.lookup(&l), None);
    assert_eq!(r.len(), 0);
    assert!(r.select(&[]).is_empty());
    assert!(r.select(&[mt("host", MatchOp::Eq, "a")]).is_empty());
    assert!(r.label_names(None).is_empty());
    assert!(r.label_values("unique_label", None).is_empty());
    assert!(r.metric_names(None).is_empty());
    r.check_invariants();
    // A panicking callback doesn't leave anything behind (or poison the registry) either.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.resolve_with(&l, |_, _| panic!("callback bug")).ok();
    }));
    assert!(res.is_err());
    assert_eq!(r.lookup(&l), None);
    // The failed attempts used ids; they are skipped, not reused.
    let skipped = r.next_id();
    let id = r.resolve_with(&l, |_, _| Ok(())).unwrap();
    assert_eq!(id, skipped);
    assert!(id >= FIRST_ID + 2);
    assert_eq!(r.label_values("unique_label", None), vec!["only_here"]);
    r.check_invariants();
}

#[test]
fn series_registry_ids_never_reused_after_delete() {
    let r = Registry::new();
    let a = labels("up", &[("job", "a")]);
    let b = labels("up", &[("job", "b")]);
    let ida = resolve(&r, &a);
    let idb = resolve(&r, &b);
    assert_eq!(r.delete(&[ida, ida, 999]), 1);
    assert_eq!(r.delete(&[ida]), 0);
    assert_eq!(r.get(ida), None);
    assert_eq!(r.lookup(&a), None);
    assert_eq!(r.len(), 1);
    let ida2 = resolve(&r, &a);
    assert!(ida2 > idb && ida2 != ida);
    assert_eq!(r.select(&[mt("job", MatchOp::Eq, "a")]), vec![ida2]);
    assert_eq!(r.select(&[]), vec![idb, ida2]);
    r.check_invariants();
}

#[test]
fn series_registry_delete_updates_index_and_listings() {
    let r = Registry::new();
    let mut ids = Vec::new();
    for env in ["prod", "dev"] {
        for h in 0..10 {
            let host = format!("h{h}");
            let metric = if h % 2 == 0 { "cpu" } else { "disk" };
            let mut pairs = vec![("env", env), ("host", host.as_str())];
            if env == "dev" && h == 3 {
                pairs.push(("debug", "on"));
            }
            ids.push(resolve(&r, &labels(metric, &pairs)));
        }
    }
    assert_eq!(r.label_names(None), vec!["__name__", "debug", "env", "host"]);
    assert_eq!(r.label_values("env", None), vec!["dev", "prod"]);
    assert_eq!(r.metric_names(None), vec!["cpu", "disk"]);
    let prod = r.select(&[mt("env", MatchOp::Eq, "prod")]);
    assert_eq!(prod.len(), 10);
    assert_eq!(r.delete(&prod), 10);
    assert!(r.select(&[mt("env", MatchOp::Eq, "prod")]).is_empty());
    assert_eq!(r.label_values("env", None), vec!["dev"]);
    assert_eq!(r.select(&[mt("env", MatchOp::Ne, "prod")]).len(), 10);
    assert_eq!(r.select(&[]).len(), 10);
    // Delete the only series with "debug": the label name disappears.
    let dbg = r.select(&[mt("debug", MatchOp::Eq, "on")]);
    assert_eq!(dbg.len(), 1);
    assert_eq!(r.label_names(Some(&dbg)), vec!["__name__", "debug", "env", "host"]);
    assert_eq!(r.delete(&dbg), 1);
    assert_eq!(r.label_names(None), vec!["__name__", "env", "host"]);
    assert!(r.label_values("debug", None).is_empty());
    // Delete all disks: metric name gone.
    let disks = r.select(&[mt("__name__", MatchOp::Eq, "disk")]);
    r.delete(&disks);
    assert_eq!(r.metric_names(None), vec!["cpu"]);
    assert_eq!(r.len(), 5);
    r.check_invariants();
    r.delete(&ids);
    assert_eq!(r.len(), 0);
    assert!(r.label_names(None).is_empty());
    r.check_invariants();
}

#[test]
fn series_registry_listings_among() {
    let r = Registry::new();
    let a = resolve(&r, &labels("cpu", &[("host", "a"), ("dc", "1")]));
    let b = resolve(&r, &labels("mem", &[("host", "b")]));
    let c = resolve(&r, &labels("mem", &[("host", "c"), ("rack", "9")]));
    assert_eq!(r.label_names(Some(&[b])), vec!["__name__", "host"]);
    assert_eq!(r.label_names(Some(&[a, c])), vec!["__name__", "dc", "host", "rack"]);
    assert_eq!(r.label_values("host", Some(&[a, c])), vec!["a", "c"]);
    assert_eq!(r.label_values("dc", Some(&[b, c])), Vec::<String>::new());
    assert_eq!(r.label_values("nope", Some(&[a])), Vec::<String>::new());
    assert_eq!(r.metric_names(Some(&[b, c])), vec!["mem"]);
    assert_eq!(r.metric_names(Some(&[])), Vec::<String>::new());
    // Dead ids in `among` are ignored.
    r.delete(&[a]);
    assert_eq!(r.label_values("host", Some(&[a, b])), vec!["b"]);
    assert_eq!(r.label_values("host", None), vec!["b", "c"]);
}

#[test]
fn series_registry_insert_known_recovery() {
    let src = Registry::new();
    let mut known = Vec::new();
    for i in 0..300 {
        let l = labels("m", &[("i", &i.to_string()), ("parity", if i % 2 == 0 { "even" } else { "odd" })]);
        known.push((resolve(&src, &l), l));
    }
    // Some deleted before the "crash": their ids are gone from the log's live set.
    let dead: Vec<SeriesId> = known.iter().step_by(7).map(|k| k.0).collect();
    src.delete(&dead);
    let live: Vec<_> = known.iter().filter(|k| !dead.contains(&k.0)).cloned().collect();

    let r = Registry::new();
    // Recovery in arbitrary order.
    let mut order = live.clone();
    order.reverse();
    for (id, l) in &order {
        r.insert_known(*id, l.clone()).unwrap();
    }
    // Idempotent.
    r.insert_known(order[3].0, order[3].1.clone()).unwrap();
    assert_eq!(r.len(), live.len());
    let max = live.iter().map(|k| k.0).max().unwrap();
    assert_eq!(r.next_id(), max + 1);
    for (id, l) in &live {
        assert_eq!(r.lookup(l), Some(*id));
        assert_eq!(r.get(*id).as_ref(), Some(l));
        assert_eq!(r.resolve_with(l, |_, _| panic!("exists")).unwrap(), *id);
    }
    assert_eq!(r.select(&[mt("parity", MatchOp::Eq, "odd")]), src.select(&[mt("parity", MatchOp::Eq, "odd")]));
    // New series go above everything recovered.
    let fresh = resolve(&r, &labels("m", &[("i", "new")]));
    assert_eq!(fresh, max + 1);
    // Recovering a lower id does not move next_id down.
    assert!(dead.contains(&1));
    r.insert_known(1, labels("low", &[])).unwrap();
    assert_eq!(r.next_id(), fresh + 1);
    // Conflicts are Corrupt.
    let (id0, l0) = &live[0];
    let e = r.insert_known(id0 + 100_000, l0.clone()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(e.message.contains(&id0.to_string()), "{}", e.message);
    let e = r.insert_known(*id0, labels("other", &[])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert_eq!(r.insert_known(0, labels("zero", &[])).unwrap_err().kind, ErrorKind::Corrupt);
    assert_eq!(r.insert_known(u64::MAX, labels("max", &[])).unwrap_err().kind, ErrorKind::Corrupt);
    assert_eq!(r.lookup(&labels("other", &[])), None);
    r.check_invariants();

    // Deleted ids above every live one stay burnt once the store reports them.
    let r2 = Registry::new();
    r2.insert_known(5, labels("a", &[])).unwrap();
    r2.bump_next_id(10); // e.g. series 9 was created and deleted before the restart
    r2.bump_next_id(3); // never lowers
    assert_eq!(r2.next_id(), 10);
    assert_eq!(resolve(&r2, &labels("b", &[])), 10);
}

#[test]
fn series_registry_hash_collisions_are_resolved_by_comparison() {
    // Two different label sets forced under one hash in a shard.
    let mut idx = Index::new();
    let a = labels("a", &[]);
    let b = labels("b", &[]);
    let c = labels("c", &[]);
    idx.insert(10, &a);
    idx.insert(11, &b);
    idx.insert(12, &c);
    let mut s = Shard::default();
    let h = 0xdead_beef;
    s.add(h, 10);
    s.add(h, 11);
    s.add(h, 12);
    assert_eq!(s.find_hashed(h, &idx, &a), Some(10));
    assert_eq!(s.find_hashed(h, &idx, &b), Some(11));
    assert_eq!(s.find_hashed(h, &idx, &c), Some(12));
    assert_eq!(s.find_hashed(h, &idx, &labels("d", &[])), None);
    s.remove(h, 10); // the primary: a conflict is promoted
    assert_eq!(s.find_hashed(h, &idx, &a), None);
    assert_eq!(s.find_hashed(h, &idx, &b), Some(11));
    assert_eq!(s.find_hashed(h, &idx, &c), Some(12));
    s.remove(h, 11);
    assert_eq!(s.find_hashed(h, &idx, &c), Some(12));
    assert!(s.conflicts.is_empty());
    s.remove(h, 12);
    assert!(s.by_hash.is_empty());
}

#[test]
fn series_registry_concurrent_resolve_creates_once() {
    let r = Arc::new(Registry::new());
    let sets: Arc<Vec<Labels>> = Arc::new(
        (0..3000)
            .map(|i| labels("req", &[("host", &format!("h{}", i % 97)), ("path", &format!("/p{i}"))]))
            .collect(),
    );
    let created: Arc<Mutex<BTreeMap<Labels, Vec<SeriesId>>>> = Arc::default();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (r, sets, created) = (r.clone(), sets.clone(), created.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(t);
                let mut order: Vec<usize> = (0..sets.len()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.gen_range(0..=i));
                }
                let mut got = vec![0; sets.len()];
                for i in order {
                    got[i] = r
                        .resolve_with(&sets[i], |id, l| {
                            created.lock().unwrap().entry(l.clone()).or_default().push(id);
                            Ok(())
                        })
                        .unwrap();
                }
                got
            })
        })
        .collect();
    let results: Vec<Vec<SeriesId>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for res in &results[1..] {
        assert_eq!(res, &results[0]);
    }
    let created = created.lock().unwrap();
    assert_eq!(created.len(), sets.len());
    for (i, l) in sets.iter().enumerate() {
        assert_eq!(created[l], vec![results[0][i]], "on_create exactly once for {l}");
    }
    let distinct: BTreeSet<_> = results[0].iter().collect();
    assert_eq!(distinct.len(), sets.len());
    assert_eq!(r.len(), sets.len());
    r.check_invariants();
}

/// Randomized model test: select() from postings must equal a brute-force scan, across
/// creations, deletions and re-creations.
#[test]
fn series_registry_select_matches_brute_force() {
    let mut rng = StdRng::seed_from_u64(0x5e1ec7);
    let r = Registry::new();
    let metrics = ["cpu", "mem", "disk", "net", "http_requests_total"];
    let regions = ["us-east-1", "us-west-2", "eu-central-1", "ap-south-1"];
    let envs = ["prod", "staging", "dev"];
    let gen = |rng: &mut StdRng| -> Labels {
        let host = format!("host_{}", rng.gen_range(0..400));
        let mut pairs: Vec<(String, String)> = vec![("hostname".into(), host)];
        pairs.push(("region".into(), regions[rng.gen_range(0..regions.len())].into()));
        if rng.gen_bool(0.7) {
            pairs.push(("env".into(), envs[rng.gen_range(0..envs.len())].into()));
        }
        if rng.gen_bool(0.3) {
            pairs.push(("rack".into(), rng.gen_range(0..20).to_string()));
        }
        if rng.gen_bool(0.1) {
            pairs.push(("canary".into(), "".into())); // dropped: absent
        }
        let m = metrics[rng.gen_range(0..metrics.len())];
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        Labels::new(m, &refs, &LabelLimits::default()).unwrap()
    };
    let mut model: BTreeMap<SeriesId, Labels> = BTreeMap::new();
    for _ in 0..5000 {
        let l = gen(&mut rng);
        let id = resolve(&r, &l);
        model.insert(id, l);
    }

    let names = ["hostname", "region", "env", "rack", "__name__", "canary", "missing"];
    let value_for = |rng: &mut StdRng, name: &str| -> String {
        match rng.gen_range(0..10) {
            0 => String::new(),
            1 => "no_such_value".into(),
            _ => match name {
                "hostname" => format!("host_{}", rng.gen_range(0..400)),
                "region" => regions[rng.gen_range(0..regions.len())].into(),
                "env" => envs[rng.gen_range(0..envs.len())].into(),
                "rack" => rng.gen_range(0..20).to_string(),
                "__name__" => metrics[rng.gen_range(0..metrics.len())].into(),
                _ => "x".into(),
            },
        }
    };
    let regexes = [
        ".*", ".+", "host_1.*", "host_(1|2)[0-9]", "us-.*", "prod|", "prod|dev", "|", "", "c.u|mem",
        "[0-9]", "1[0-9]?", "(?i)PROD", ".*-1", "host_3", "staging|nope|", "e.*|.*1",
    ];
    let gen_matcher = |rng: &mut StdRng| -> Matcher {
        let name = names[rng.gen_range(0..names.len())];
        let op = [MatchOp::Eq, MatchOp::Ne, MatchOp::Re, MatchOp::Nre][rng.gen_range(0..4)];
        let value = match op {
            MatchOp::Eq | MatchOp::Ne => value_for(rng, name),
            _ => {
                if rng.gen_bool(0.6) {
                    regexes[rng.gen_range(0..regexes.len())].to_string()
                } else {
                    format!("{}|{}", value_for(rng, name), value_for(rng, name))
                }
            }
        };
        mt(name, op, &value)
    };

    let mut nonempty = 0;
    for round in 0..6 {
        for _ in 0..300 {
            let n = rng.gen_range(0..4);
            let ms: Vec<Matcher> = (0..n).map(|_| gen_matcher(&mut rng)).collect();
            let want: Vec<SeriesId> = model
                .iter()
                .filter(|(_, l)| ms.iter().all(|m| m.matches(l.get(&m.name))))
                .map(|(&id, _)| id)
                .collect();
            let got = r.select(&ms);
            let shown: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
            assert_eq!(got.len(), want.len(), "round {round} matchers {shown:?}");
            assert_eq!(got, want, "round {round} matchers {shown:?}");
            nonempty += (!want.is_empty()) as usize;
        }
        // Listings agree with the model.
        for name in ["hostname", "env", "rack", "__name__"] {
            let want: BTreeSet<String> = model.values().filter_map(|l| l.get(name).map(String::from)).collect();
            assert_eq!(r.label_values(name, None), want.into_iter().collect::<Vec<_>>());
        }
        let sample: Vec<SeriesId> = model.keys().copied().filter(|_| rng.gen_bool(0.05)).collect();
        let want: BTreeSet<String> = sample.iter().flat_map(|id| model[id].iter().map(|(n, _)| n.to_string())).collect();
        assert_eq!(r.label_names(Some(&sample)), want.into_iter().collect::<Vec<_>>());
        let want: BTreeSet<String> = sample.iter().filter_map(|id| model[id].get("env").map(String::from)).collect();
        assert_eq!(r.label_values("env", Some(&sample)), want.into_iter().collect::<Vec<_>>());

        // Churn: delete ~20% (sometimes via a matcher), add new series.
        let victims: Vec<SeriesId> = if round % 2 == 0 {
            model.keys().copied().filter(|_| rng.gen_bool(0.2)).collect()
        } else {
            r.select(&[mt("hostname", MatchOp::Re, &format!("host_{}.*", rng.gen_range(1..10)))])
        };
        assert_eq!(r.delete(&victims), victims.len());
        for v in &victims {
            model.remove(v);
        }
        let before = r.next_id();
        for _ in 0..800 {
            let l = gen(&mut rng);
            let id = resolve(&r, &l);
            if let Some(old) = model.insert(id, l.clone()) {
                assert_eq!(old, l);
            } else {
                assert!(id >= before, "new series got an old id");
            }
        }
        assert_eq!(r.len(), model.len());
        r.check_invariants();
    }
    assert!(nonempty > 500, "too few non-trivial selections: {nonempty}");
}

#[test]
fn series_registry_registry_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Registry>();
    assert_send_sync::<Labels>();
    assert_send_sync::<Matcher>();
}
