//! Encode throughput of WAL sample records (not a test: prints samples/s).
//!
//! `cargo run --release -p timeless_engine --example wal_encode [batch_size] [seconds_per_case]`
//!
//! Cases: encode only; encode + frame checksums; the whole `Wal::append_samples` (policy Never,
//! so write(2) into the page cache of a temporary directory).

use std::hint::black_box;
use std::time::{Duration, Instant};

use timeless_engine::log::{seal_frame, HEADER_LEN};
use timeless_engine::wal::{encode_samples, max_encoded_len, FsyncPolicy, Wal};

fn run(name: &str, n: usize, secs: f64, mut step: impl FnMut() -> usize) {
    // Warm up, then time whole batches until the time is up.
    for _ in 0..3 {
        black_box(step());
    }
    let t0 = Instant::now();
    let mut batches = 0u64;
    let mut bytes = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        bytes += black_box(step()) as u64;
        batches += 1;
    }
    let dt = t0.elapsed().as_secs_f64();
    let samples = batches as f64 * n as f64;
    println!(
        "{name:<36} {:>8.1} M samples/s  {:>7.1} MB/s  {:>5.2} bytes/sample",
        samples / dt / 1e6,
        bytes as f64 / dt / 1e6,
        bytes as f64 / samples
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.5);

    // Two batches: "scrape" = 1000 series of one target (dense ids), n/1000 points 15 s apart, ordered
    // by time then series; "scattered" = random ids below 10M with jittered ms timestamps (3-4 byte
    // varints), the unfavourable case. Values: gauges with noise, some counters.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut datasets = Vec::new();
    for scattered in [false, true] {
        let mut ids = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            let r = rnd();
            if scattered {
                ids.push(r % 10_000_000);
                ts.push(
                    1_700_000_000_000 + (i / 1000) as i64 * 15_000 + (r >> 40) as i64 % 100_000
                        - 50_000,
                );
            } else {
                ids.push(50_000 + (i % 1000) as u64);
                ts.push(1_700_000_000_000 + (i / 1000) as i64 * 15_000);
            }
            vals.push(if i % 3 == 0 {
                (i / 1000) as f64 * 10.0
            } else {
                (r >> 11) as f64 / (1u64 << 53) as f64 * 100.0
            });
        }
        datasets.push((
            if scattered { "scattered" } else { "scrape" },
            ids,
            ts,
            vals,
        ));
    }
    println!("batch of {n} samples, {secs} s per case");

    let mut buf = vec![0u8; HEADER_LEN + max_encoded_len(n)];
    for (name, ids, ts, vals) in &datasets {
        run(&format!("{name}: encode"), n, secs, || {
            encode_samples(&mut buf[HEADER_LEN..], ids, ts, vals).unwrap()
        });
        run(&format!("{name}: encode + frame crc"), n, secs, || {
            let len = encode_samples(&mut buf[HEADER_LEN..], ids, ts, vals).unwrap();
            seal_frame(&mut buf[..HEADER_LEN + len]).unwrap();
            len
        });
    }
    let (_, ids, ts, vals) = &datasets[1];

    let dir = std::env::temp_dir().join(format!("tm-wal-encode-{}", std::process::id()));
    let wal = Wal::open(&dir, FsyncPolicy::Never).expect("open wal");
    let mut rounds = 0u64;
    run("scattered: Wal::append_samples", n, secs, || {
        rounds += 1;
        // Keep the temporary segment small.
        if rounds.is_multiple_of(200) {
            let s = wal.rotate().unwrap();
            wal.remove_segments_before(s).unwrap();
        }
        let before = wal.size_bytes();
        wal.append_samples(ids, ts, vals).unwrap();
        (wal.size_bytes() - before) as usize
    });
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}
