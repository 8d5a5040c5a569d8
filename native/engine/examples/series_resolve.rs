//! Series registry benchmark with TSBS-devops-like label sets.
//!
//! `cargo run --release -p timeless_engine --example series_resolve [SERIES]`
//!
//! Creates SERIES (default 1,000,000) series: 100 metric names x SERIES/100 hosts, each host
//! carrying 10 labels (hostname, region, datacenter, rack, os, arch, team, service,
//! service_version, service_environment). Prints creation rate, resident memory per series
//! (RSS from /proc/self/status, measured around creation without keeping the labels), then
//! resolve throughput for existing series (single thread and all threads), and select timings.

use std::time::Instant;

use timeless_engine::series::{LabelLimits, Labels, MatchOp, Matcher, Registry};

const METRICS: usize = 100;
const REGIONS: [&str; 9] = [
    "us-east-1", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
    "ap-southeast-2", "ap-northeast-1", "sa-east-1",
];
const OS: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCH: [&str; 2] = ["x64", "x86"];
const TEAMS: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVS: [&str; 3] = ["production", "staging", "test"];

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the calling thread, in seconds (wall time is noisy on a shared machine).
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn metric_names() -> Vec<String> {
    let groups = [
        ("cpu", 10), ("diskio", 7), ("disk", 7), ("kernel", 5), ("mem", 9), ("net", 8),
        ("nginx", 7), ("postgresl", 23), ("redis", 24),
    ];
    let mut out = Vec::new();
    for (g, n) in groups {
        for f in 0..n {
            out.push(format!("{g}_field_{f}"));
        }
    }
    out.truncate(METRICS);
    assert_eq!(out.len(), METRICS);
    out
}

/// Label set of series `i` (host-major order, as an agent reports all metrics of a host).
fn series_labels(i: usize, metrics: &[String], limits: &LabelLimits) -> Labels {
    let host = i / METRICS;
    let metric = &metrics[i % METRICS];
    let h = host.wrapping_mul(2654435761);
    let region = REGIONS[h % REGIONS.len()];
    let hostname = format!("host_{host}");
    let dc = format!("{region}{}", ["a", "b", "c"][(h >> 4) % 3]);
    let rack = ((h >> 8) % 100).to_string();
    let service = ((h >> 12) % 20).to_string();
    let version = ((h >> 16) % 2).to_string();
    let pairs = [
        ("hostname", hostname.as_str()),
        ("region", region),
        ("datacenter", dc.as_str()),
        ("rack", rack.as_str()),
        ("os", OS[(h >> 3) % OS.len()]),
        ("arch", ARCH[(h >> 5) % ARCH.len()]),
        ("team", TEAMS[(h >> 6) % TEAMS.len()]),
        ("service", service.as_str()),
        ("service_version", version.as_str()),
        ("service_environment", ENVS[(h >> 7) % ENVS.len()]),
    ];
    Labels::new(metric, &pairs, limits).expect("valid labels")
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let limits = LabelLimits::default();
    let metrics = metric_names();
    let reg = Registry::new();

    let rss0 = rss_kib();
    let t = Instant::now();
    for i in 0..n {
        let l = series_labels(i, &metrics, &limits);
        reg.resolve_with(&l, |_, _| Ok(())).expect("create");
    }
    let create_s = t.elapsed().as_secs_f64();
    let rss1 = rss_kib();
    assert_eq!(reg.len(), n);
    let per_series = (rss1.saturating_sub(rss0) as f64 * 1024.0) / n as f64;
    println!("series:                 {n} ({} hosts x {METRICS} metrics, 11 labels each)", n / METRICS);
    println!("create (build labels + resolve_with): {:.0} series/s", n as f64 / create_s);
    println!(
        "RSS: {:.1} MiB before, {:.1} MiB after -> {:.0} bytes/series",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        per_series
    );
    println!(
        "  of which index (strings, postings, records; approx, no allocator overhead): {:.0} bytes/series",
        reg.approx_index_bytes() as f64 / n as f64
    );

    // Existing-series resolution: labels built beforehand, so only resolve is timed.
    let all: Vec<Labels> = (0..n).map(|i| series_labels(i, &metrics, &limits)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    // Deterministic shuffle (xorshift) so lookups don't walk memory in creation order.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut sum = 0u64;
    for (what, ord) in [("creation order", (0..n).collect::<Vec<_>>()), ("shuffled", order.clone())] {
        let (t, c) = (Instant::now(), thread_cpu_s());
        for &i in &ord {
            sum = sum.wrapping_add(reg.resolve_with(&all[i], |_, _| panic!("exists")).unwrap());
        }
        let (s, cpu) = (t.elapsed().as_secs_f64(), thread_cpu_s() - c);
        println!(
            "resolve existing, 1 thread, {what}: {:.2} M/s wall, {:.0} ns CPU each",
            n as f64 / s / 1e6,
            cpu * 1e9 / n as f64
        );
    }

    let threads = std::thread::available_parallelism().map(|p| p.get()).unwrap_or(2);
    let t = Instant::now();
    std::thread::scope(|sc| {
        for k in 0..threads {
            let (reg, all, order) = (&reg, &all, &order);
            sc.spawn(move || {
                let mut s = 0u64;
                for &i in order.iter().skip(k).step_by(threads) {
                    s = s.wrapping_add(reg.lookup(&all[i]).unwrap());
                }
                s
            });
        }
    });
    let s = t.elapsed().as_secs_f64();
    println!("resolve existing, {threads} threads: {:.2} M resolves/s total", n as f64 / s / 1e6);

    let (t, c) = (Instant::now(), thread_cpu_s());
    let m = n.min(200_000);
    for &i in order.iter().take(m) {
        let l = series_labels(i, &metrics, &limits);
        sum = sum.wrapping_add(reg.resolve_with(&l, |_, _| panic!("exists")).unwrap());
    }
    println!(
        "format + Labels::new + resolve existing, 1 thread, shuffled: {:.2} M/s wall, {:.0} ns CPU each",
        m as f64 / t.elapsed().as_secs_f64() / 1e6,
        (thread_cpu_s() - c) * 1e9 / m as f64
    );

    let queries: Vec<(&str, Vec<Matcher>)> = vec![
        ("{__name__=cpu_field_0, hostname=host_42}", vec![
            Matcher::new("__name__", MatchOp::Eq, "cpu_field_0").unwrap(),
            Matcher::new("hostname", MatchOp::Eq, "host_42").unwrap(),
        ]),
        ("{__name__=cpu_field_0, region=us-east-1}", vec![
            Matcher::new("__name__", MatchOp::Eq, "cpu_field_0").unwrap(),
            Matcher::new("region", MatchOp::Eq, "us-east-1").unwrap(),
        ]),
        ("{__name__=~cpu_.*, hostname=~host_1[0-9]}", vec![
            Matcher::new("__name__", MatchOp::Re, "cpu_.*").unwrap(),
            Matcher::new("hostname", MatchOp::Re, "host_1[0-9]").unwrap(),
        ]),
        ("{region=eu-west-1, service_environment!=production}", vec![
            Matcher::new("region", MatchOp::Eq, "eu-west-1").unwrap(),
            Matcher::new("service_environment", MatchOp::Ne, "production").unwrap(),
        ]),
    ];
    for (name, ms) in &queries {
        let t = Instant::now();
        let ids = reg.select(ms);
        println!("select {name}: {} series in {:.2} ms", ids.len(), t.elapsed().as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    let hosts = reg.label_values("hostname", None);
    println!("label_values(hostname): {} values in {:.2} ms", hosts.len(), t.elapsed().as_secs_f64() * 1e3);
    std::hint::black_box(sum);
}
