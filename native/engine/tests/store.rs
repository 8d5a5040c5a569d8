//! Store-level tests through the public API: persistence and recovery of the
//! registry, WAL and chunks, damage handling, and a model-based test that runs
//! random operations against the engine and a plain in-memory map.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timeless_engine::series::{MatchOp, Matcher};
use timeless_engine::store::{Store, StoreConfig};
use timeless_engine::wal::FsyncPolicy;
use timeless_engine::{ErrorKind, STALE_NAN_BITS};

fn config(dir: Option<&Path>) -> StoreConfig {
    StoreConfig {
        data_dir: dir.map(|d| d.to_path_buf()),
        fsync: FsyncPolicy::Never,
        max_points_per_series: 64,
        max_chunk_points: 50,
        ..StoreConfig::default()
    }
}

fn open(dir: Option<&Path>) -> (Store, Vec<String>) {
    Store::open(config(dir)).expect("open")
}

fn series(store: &Store, metric: &str, host: &str) -> u64 {
    let labels = store.labels(metric, &[("host", host)]).unwrap();
    store.resolve(&labels).unwrap()
}

fn all(store: &Store, id: u64) -> Vec<(i64, u64)> {
    let (ts, vals) = store.read(id, i64::MIN, i64::MAX);
    ts.into_iter().zip(vals.into_iter().map(f64::to_bits)).collect()
}

#[test]
fn registry_chunks_and_wal_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(Some(dir.path()));
    let a = series(&store, "cpu", "a");
    let b = series(&store, "cpu", "b");
    store.write(&[a, a, b], &[1, 2, 1], &[1.0, 2.0, 3.0]).unwrap();
    store.flush().unwrap();
    store.write(&[a, b], &[3, 2], &[f64::from_bits(STALE_NAN_BITS), f64::NAN]).unwrap();
    store.close().unwrap();
    drop(store);

    let (store, warnings) = open(Some(dir.path()));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(series(&store, "cpu", "a"), a);
    assert_eq!(series(&store, "cpu", "b"), b);
    assert_eq!(all(&store, a), vec![(1, 1f64.to_bits()), (2, 2f64.to_bits()), (3, STALE_NAN_BITS)]);
    assert_eq!(all(&store, b)[0], (1, 3f64.to_bits()));
    assert!(f64::from_bits(all(&store, b)[1].1).is_nan());
    let c = series(&store, "cpu", "c");
    assert!(c > b, "ids are never reused");
}

/// A head larger than one flush group (2^20 points) is flushed group by group: every
/// point ends up in chunks exactly once, the WAL it covered is dropped, and a restart
/// (no replay needed) finds the same points.
#[test]
fn a_large_head_is_flushed_in_groups_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { max_points_per_series: 1 << 20, max_chunk_points: 1024, ..config(Some(dir.path())) };
    let (store, _) = Store::open(cfg.clone()).unwrap();
    let hosts: Vec<String> = (0..3000).map(|h| format!("h{h}")).collect();
    let ids: Vec<u64> = hosts.iter().map(|h| series(&store, "load", h)).collect();
    let steps = 600i64;
    for t in 0..steps {
        let vals: Vec<f64> = ids.iter().map(|&id| (id as i64 * 1000 + t) as f64).collect();
        store.write(&ids, &vec![t * 1000; ids.len()], &vals).unwrap();
    }
    let total = ids.len() as u64 * steps as u64;
    assert!(total > 1 << 20);
    let wal_before = store.info().bytes_wal;
    let stats = store.flush().unwrap();
    assert_eq!(stats.points, total);
    assert_eq!(stats.series, ids.len() as u64);
    let info = store.info();
    assert_eq!((info.points_stored, info.points_buffered), (total, 0));
    assert!(info.bytes_wal < wal_before / 100, "WAL {} of {wal_before} bytes left", info.bytes_wal);
    let expect = |id: u64| -> Vec<(i64, u64)> {
        (0..steps).map(|t| (t * 1000, ((id as i64 * 1000 + t) as f64).to_bits())).collect()
    };
    for &id in ids.iter().step_by(97) {
        assert_eq!(all(&store, id), expect(id));
    }
    store.close().unwrap();
    drop(store);

    let (store, warnings) = Store::open(cfg).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(store.info().points_stored, total);
    for &id in ids.iter().step_by(89) {
        assert_eq!(all(&store, id), expect(id));
    }
}

#[test]
fn a_crash_loses_nothing_that_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(Some(dir.path()));
    let a = series(&store, "m", "a");
    for t in 0..200 {
        store.write(&[a], &[t], &[t as f64]).unwrap();
        if t == 100 {
            store.flush().unwrap();
        }
    }
    store.kill();
    let (store, _) = open(Some(dir.path()));
    let got = all(&store, a);
    assert_eq!(got.len(), 200);
    assert_eq!(got[150], (150, 150f64.to_bits()));
}

#[test]
fn second_open_of_a_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = open(Some(dir.path()));
    let err = Store::open(config(Some(dir.path()))).err().expect("must be refused");
    assert_eq!(err.kind, ErrorKind::Locked);
}

#[test]
fn torn_wal_tail_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(Some(dir.path()));
    let a = series(&store, "m", "a");
    for t in 0..10 {
        store.write(&[a], &[t], &[1.0]).unwrap();
    }
    store.kill();
    let wal = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .max()
        .unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let (store, warnings) = open(Some(dir.path()));
    assert_eq!(all(&store, a).len(), 9, "the torn last record is cut, the rest replayed");
    assert!(warnings.iter().any(|w| w.contains("TornTail") && w.contains(".wal")), "{warnings:?}");
}

#[test]
fn corrupt_chunk_file_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(Some(dir.path()));
    let a = series(&store, "m", "a");
    let b = series(&store, "m", "b");
    store.write(&[a], &[1], &[1.0]).unwrap();
    store.flush().unwrap();
    store.write(&[b], &[1], &[2.0]).unwrap();
    store.flush().unwrap();
    store.close().unwrap();
    drop(store);
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("chunks")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();
    let (store, warnings) = open(Some(dir.path()));
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(warnings.iter().any(|w| w.contains(&name)), "{warnings:?}");
    assert_eq!(all(&store, b), vec![(1, 2f64.to_bits())]);
    assert!(all(&store, a).is_empty());
}

#[test]
fn out_of_order_points_merge_across_flushes_and_merge() {
    let (store, _) = open(None);
    let a = series(&store, "m", "a");
    store.write(&[a, a, a], &[30, 10, 20], &[3.0, 1.0, 2.0]).unwrap();
    store.flush().unwrap();
    store.write(&[a, a], &[15, 20], &[1.5, 2.5]).unwrap();
    let expect = vec![(10, 1f64.to_bits()), (15, 1.5f64.to_bits()), (20, 2.5f64.to_bits()), (30, 3f64.to_bits())];
    assert_eq!(all(&store, a), expect);
    store.flush().unwrap();
    assert_eq!(all(&store, a), expect);
    store.merge().unwrap();
    assert_eq!(all(&store, a), expect);
    assert_eq!(store.info().chunk_files, 1);
    assert_eq!(store.latest(a), Some((30, 3.0)));
}

#[test]
fn a_big_merge_in_groups_and_through_a_spilled_file_keeps_every_point() {
    // ~700k points of noise (about 8 B/point encoded): the merge decodes them in several
    // groups and its output file goes through the writer's temp file (over 4 MiB)
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { max_points_per_series: 100_000, max_chunk_points: 1000, ..config(Some(dir.path())) };
    let (store, _) = Store::open(cfg.clone()).unwrap();
    let ids: Vec<u64> = (0..700).map(|h| series(&store, "noise", &format!("h{h}"))).collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut expect: HashMap<u64, Vec<(i64, u64)>> = HashMap::new();
    for round in 0..2i64 {
        for &id in &ids {
            let ts: Vec<i64> = (0..500).map(|k| (round * 500 + k) * 10_000).collect();
            let vals: Vec<f64> = (0..500).map(|_| rng.gen::<f64>() * 1e6).collect();
            store.write(&vec![id; ts.len()], &ts, &vals).unwrap();
            expect.entry(id).or_default().extend(ts.iter().copied().zip(vals.iter().map(|v| v.to_bits())));
        }
        store.flush().unwrap();
    }
    assert!(store.info().chunk_files >= 2);
    let stats = store.merge().unwrap();
    assert_eq!(stats.points, 700 * 1000);
    assert!(stats.bytes > 4 << 20, "{stats:?}");
    assert_eq!(store.info().chunk_files, 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("chunks")).unwrap().map(|e| e.unwrap().file_name()).filter(|n| !n.to_string_lossy().ends_with(".chunks")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for &id in &ids {
        assert_eq!(all(&store, id), expect[&id]);
    }
    store.close().unwrap();
    drop(store);
    let (store, warnings) = Store::open(cfg).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    for &id in ids.iter().step_by(7) {
        assert_eq!(all(&store, id), expect[&id]);
    }
}

#[test]
fn deleted_series_stay_deleted_after_restart_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(Some(dir.path()));
    let a = series(&store, "m", "a");
    let b = series(&store, "m", "b");
    store.write(&[a, b], &[1, 1], &[1.0, 2.0]).unwrap();
    store.flush().unwrap();
    store.write(&[a], &[2], &[1.0]).unwrap();
    let m = Matcher::new("host", MatchOp::Eq, "a").unwrap();
    assert_eq!(store.delete(&[m.clone()]).unwrap(), 1);
    assert!(store.select(&[m.clone()], None).is_empty());
    store.kill();
    let (store, _) = open(Some(dir.path()));
    assert!(store.select(&[m], None).is_empty());
    store.merge().unwrap();
    assert_eq!(store.info().points_stored, 1);
    let a2 = series(&store, "m", "a");
    assert!(a2 > b);
    assert!(all(&store, a2).is_empty());
}

/// Random operations against the engine and a model (series -> ts -> value bits).
fn model_run(seed: u64, dir: Option<&Path>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut store, _) = open(dir);
    let mut model: HashMap<String, BTreeMap<i64, u64>> = HashMap::new();
    let hosts: Vec<String> = (0..12).map(|i| format!("h{i}")).collect();
    for step in 0..400 {
        match rng.gen_range(0..100) {
            0..=69 => {
                let n = rng.gen_range(1..40);
                let (mut ids, mut ts, mut vals) = (vec![], vec![], vec![]);
                for _ in 0..n {
                    let host = &hosts[rng.gen_range(0..hosts.len())];
                    let t = rng.gen_range(0..300i64);
                    let v = match rng.gen_range(0..20) {
                        0 => f64::from_bits(STALE_NAN_BITS),
                        1 => f64::INFINITY,
                        _ => (rng.gen_range(0..10_000) as f64) / 100.0,
                    };
                    ids.push(series(&store, "m", host));
                    ts.push(t);
                    vals.push(v);
                    model.entry(host.clone()).or_default().insert(t, v.to_bits());
                }
                store.write(&ids, &ts, &vals).unwrap();
            }
            70..=79 => {
                store.flush().unwrap();
            }
            80..=84 => {
                store.maintain(i64::MAX / 2).unwrap();
            }
            85..=89 => {
                store.merge().unwrap();
            }
            90..=93 => {
                let host = hosts[rng.gen_range(0..hosts.len())].clone();
                let m = Matcher::new("host", MatchOp::Eq, &host).unwrap();
                store.delete(&[m]).unwrap();
                model.remove(&host);
            }
            _ => {
                if let Some(d) = dir {
                    if rng.gen_bool(0.5) {
                        store.close().unwrap();
                        drop(store);
                    } else {
                        store.kill();
                    }
                    let (s, warnings) = open(Some(d));
                    assert!(warnings.is_empty(), "seed {seed} step {step}: {warnings:?}");
                    store = s;
                }
            }
        }
        // Compare a few series every step and everything now and then.
        let check: Vec<&String> = if step % 50 == 0 { hosts.iter().collect() } else { hosts.iter().take(2).collect() };
        for host in check {
            let labels = store.labels("m", &[("host", host)]).unwrap();
            let got = store.lookup(&labels).map(|id| all(&store, id)).unwrap_or_default();
            let want: Vec<(i64, u64)> = model.get(host).map(|m| m.iter().map(|(&t, &v)| (t, v)).collect()).unwrap_or_default();
            assert_eq!(got, want, "seed {seed} step {step} host {host}");
        }
    }
}

#[test]
fn model_memory_mode() {
    for seed in 0..6 {
        model_run(seed, None);
    }
}

#[test]
fn model_on_disk_with_restarts_and_crashes() {
    for seed in 100..104 {
        let dir = tempfile::tempdir().unwrap();
        model_run(seed, Some(dir.path()));
    }
}

#[test]
fn check_ids_refuses_ids_never_handed_out_and_writes_nothing() {
    let (store, _) = open(None);
    let a = series(&store, "cpu", "a");
    store.check_ids(&[a, a]).unwrap();
    let e = store.check_ids(&[a, a + 1]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadInput);
    assert!(e.message.starts_with("entry 1: unknown series id"), "{}", e.message);
    assert!(store.check_ids(&[0]).is_err());
    assert!(store.write(&[a, 0], &[1, 2], &[1.0, 2.0]).is_err());
    assert!(all(&store, a).is_empty());
}
