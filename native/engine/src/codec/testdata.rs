//! TSBS-devops-like data set, shared by the codec unit tests and by
//! `examples/codec_measure.rs` (which includes this file with `#[path]`, so both use the very
//! same generator and the figures in FORMAT-chunk.md stay reproducible). Depends on `rand`
//! only; nothing from the crate.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One generated series; `kind` is "cpu", "mem", "counter" or "load".
pub struct Series {
    pub kind: &'static str,
    pub ts: Vec<i64>,
    pub vals: Vec<f64>,
}

fn round_to(v: f64, decimals: i32) -> f64 {
    // Produce what a text parser would produce for a value printed with `decimals`.
    format!("{:.*}", decimals as usize, v).parse().unwrap()
}

/// Per host: 10 cpu percent fields (2 decimals, some 1), 5 memory byte gauges (integers),
/// 1 memory percent, 6 disk/net monotonic counters, 3 load averages (2 decimals).
/// 10 s interval; ~10% of scrapes are a few ms late or early.
pub fn devops_dataset(hosts: usize, points: usize, seed: u64) -> Vec<Series> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..hosts {
        let start = 1_700_000_000_000i64 + rng.gen_range(0..10_000);
        let ts: Vec<i64> = (0..points as i64)
            .map(|i| {
                let jitter = if rng.gen_bool(0.1) { rng.gen_range(-5..=5) } else { 0 };
                start + i * 10_000 + jitter
            })
            .collect();
        for f in 0..10 {
            let decimals = if f % 3 == 0 { 1 } else { 2 };
            let mut x: f64 = rng.gen_range(0.0..100.0);
            let vals = (0..points)
                .map(|_| {
                    x = (x + rng.gen_range(-2.0..2.0)).clamp(0.0, 100.0);
                    round_to(x, decimals)
                })
                .collect();
            out.push(Series { kind: "cpu", ts: ts.clone(), vals });
        }
        let total: i64 = 1i64 << rng.gen_range(33..37);
        let mut used = total / 3;
        for _ in 0..5 {
            let vals = (0..points)
                .map(|_| {
                    used = (used + rng.gen_range(-8_000_000i64..8_000_000)).clamp(0, total);
                    used as f64
                })
                .collect();
            out.push(Series { kind: "mem", ts: ts.clone(), vals });
        }
        let vals = (0..points)
            .map(|_| {
                used = (used + rng.gen_range(-8_000_000i64..8_000_000)).clamp(0, total);
                round_to(used as f64 * 100.0 / total as f64, 2)
            })
            .collect();
        out.push(Series { kind: "mem", ts: ts.clone(), vals });
        for c in 0..6 {
            let mut acc: u64 = rng.gen_range(0..1u64 << 40);
            let rate = [100u64, 1_000, 50_000, 1_000_000, 10, 5_000_000][c];
            let vals = (0..points)
                .map(|_| {
                    acc += rng.gen_range(0..rate);
                    acc as f64
                })
                .collect();
            out.push(Series { kind: "counter", ts: ts.clone(), vals });
        }
        for _ in 0..3 {
            let mut l: f64 = rng.gen_range(0.0..8.0);
            let vals = (0..points)
                .map(|_| {
                    l = (l + rng.gen_range(-0.05..0.05)).max(0.0);
                    round_to(l, 2)
                })
                .collect();
            out.push(Series { kind: "load", ts: ts.clone(), vals });
        }
    }
    out
}
