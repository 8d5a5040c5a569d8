//! Restart recovery of a large store, measured in a fresh process.
//!
//!     cargo run --release -p timeless_engine --example restart -- [series] [points] [flush_every] [merge]
//!
//! Builds a store of `series` series (7 labels each) with `points` points each at
//! 10 s, flushing every `flush_every` points (default 10, so each series has
//! points/flush_every chunks) and merging at the end when `merge` is given; closes
//! it, then re-runs itself to open the directory and prints the time of each
//! recovery step and the process's RSS.

use std::time::Instant;

use timeless_engine::store::{Store, StoreConfig};

fn rss_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_and_report(dir: &str) {
    let t = Instant::now();
    let cfg = StoreConfig { data_dir: Some(dir.into()), ..StoreConfig::default() };
    let (store, warnings) = Store::open(cfg).expect("open");
    let elapsed = t.elapsed();
    let r = store.recovery();
    let info = store.info();
    println!(
        "open {:.2} s (series log {} ms, chunk indexes {} ms, wal {} ms, {} wal samples); {} series, {} chunks in {} files, {} points; RSS {} MiB, peak {} MiB; {} warnings",
        elapsed.as_secs_f64(),
        r.series_log_ms,
        r.chunk_index_ms,
        r.wal_ms,
        r.wal_samples,
        info.series,
        info.chunks,
        info.chunk_files,
        info.points_stored + info.points_buffered,
        rss_kb("VmRSS:") / 1024,
        rss_kb("VmHWM:") / 1024,
        warnings.len()
    );
    store.kill();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("open") {
        return open_and_report(&args[2]);
    }
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (series, points, flush_every) = (arg(1, 1_000_000), arg(2, 100), arg(3, 10));
    let merge = args.get(4).is_some();
    // RESTART_DIR keeps the built store (for profiling the open); default: a temp dir.
    let tmp = tempfile::tempdir().expect("tmp");
    let dir_path: std::path::PathBuf = std::env::var("RESTART_DIR").map(Into::into).unwrap_or_else(|_| tmp.path().into());
    let path = dir_path.to_str().unwrap().to_string();
    let cfg = StoreConfig {
        data_dir: Some(dir_path.clone()),
        fsync: timeless_engine::wal::FsyncPolicy::Never,
        max_buffered_points: usize::MAX,
        ..StoreConfig::default()
    };
    let t = Instant::now();
    let (store, _) = Store::open(cfg).expect("open");
    let ids: Vec<u64> = (0..series)
        .map(|i| {
            let s = i.to_string();
            let host = format!("host-{}", i / 100);
            let labels = store
                .labels(
                    "restart_metric",
                    &[("series", &s), ("host", &host), ("job", "bench"), ("region", "eu-west-1"), ("env", "prod"), ("team", "core")],
                )
                .unwrap();
            store.resolve(&labels).unwrap()
        })
        .collect();
    for p in 0..points {
        let ts = vec![1_700_000_000_000 + p as i64 * 10_000; series];
        let vals: Vec<f64> = (0..series).map(|i| ((i * 7 + p) % 1000) as f64 / 10.0).collect();
        store.write(&ids, &ts, &vals).unwrap();
        if (p + 1) % flush_every == 0 {
            store.flush().unwrap();
        }
    }
    if merge {
        store.merge().unwrap();
    }
    store.close().unwrap();
    drop(store);
    println!("built {series} series x {points} points in {:.1} s (merge: {merge})", t.elapsed().as_secs_f64());
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe).args(["open", &path]).status().unwrap();
    assert!(status.success());
}
