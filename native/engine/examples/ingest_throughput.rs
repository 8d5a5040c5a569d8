//! Ingest throughput per format: parse + resolve + write into a memory store.
//!
//! `cargo run --release -p timeless_engine --example ingest_throughput [SERIES] [ROUNDS] [FORMAT]`
//!
//! For each format, generates ROUNDS (default 20) bodies of SERIES (default 10,000) series,
//! one sample per series per body, the way agents send them (a node_exporter scrape, a
//! telegraf flush, a remote write request; VM JSON gets all rounds of a series on one line
//! as `/api/v1/export` writes them). The first body creates the series ("cold"); the rest
//! hit the raw-key cache ("warm"). Prints samples/s on the calling thread's CPU time (wall
//! time is noisy on a shared machine) and the body bytes/s.

use std::time::Instant;

use timeless_engine::ingest::{ingest, Format, IngestOptions, Precision};
use timeless_engine::store::{Store, StoreConfig};

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

const T0: i64 = 1_700_000_000_000;
const MODES: [&str; 8] = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"];

/// node_exporter-like scrape: per host, CPU x mode counters plus assorted gauges.
fn prom_body(series: usize, round: usize) -> Vec<u8> {
    let mut s = String::with_capacity(series * 110);
    s.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total counter\n");
    let ts = T0 + round as i64 * 15_000;
    for i in 0..series {
        let host = i / 100;
        let k = i % 100;
        let v = (i * 7919 + round * 31) as f64 / 100.0;
        if k < 64 {
            s.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{}\",instance=\"host-{host}:9100\",job=\"node\",mode=\"{}\"}} {v} {ts}\n",
                k / 8,
                MODES[k % 8]
            ));
        } else {
            s.push_str(&format!(
                "node_filesystem_avail_bytes{{device=\"/dev/sda{}\",fstype=\"ext4\",instance=\"host-{host}:9100\",job=\"node\",mountpoint=\"/mnt/d{k}\"}} {} {ts}\n",
                k % 4,
                v * 1e6
            ));
        }
    }
    s.into_bytes()
}

/// telegraf-like: `cpu` lines with 10 fields, one line per host x cpu.
fn influx_body(series: usize, round: usize) -> Vec<u8> {
    let lines = series / 10;
    let mut s = String::with_capacity(lines * 260);
    let ts = (T0 + round as i64 * 10_000) * 1_000_000;
    for i in 0..lines {
        let v = (i * 7919 + round * 31) as f64 / 1000.0;
        s.push_str(&format!(
            "cpu,cpu=cpu{},host=host-{},region=eu-west-1,dc=dc{} usage_user={v},usage_system={},usage_idle={},usage_iowait=0.25,usage_irq=0,usage_softirq=0.01,usage_steal=0,usage_nice=0,usage_guest=0,uptime={}i {ts}\n",
            i % 16,
            i / 16,
            i % 3,
            v / 2.0,
            100.0 - v,
            round * 10
        ));
    }
    s.into_bytes()
}

/// `/api/v1/export`-like: one line per series holding `rounds` points.
fn vmjson_body(series: usize, rounds: usize, shift: i64) -> Vec<u8> {
    let mut s = String::with_capacity(series * (150 + rounds * 24));
    for i in 0..series {
        let vals: Vec<String> = (0..rounds).map(|r| format!("{}", (i * 7919 + r * 31) as f64 / 100.0)).collect();
        let tss: Vec<String> = (0..rounds).map(|r| (T0 + shift + r as i64 * 15_000).to_string()).collect();
        s.push_str(&format!(
            "{{\"metric\":{{\"__name__\":\"node_cpu_seconds_total\",\"cpu\":\"{}\",\"instance\":\"host-{}:9100\",\"job\":\"node\",\"mode\":\"{}\"}},\"values\":[{}],\"timestamps\":[{}]}}\n",
            i % 64 / 8,
            i / 64,
            MODES[i % 8],
            vals.join(","),
            tss.join(",")
        ));
    }
    s.into_bytes()
}

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    pb_varint(out, field << 3 | 2);
    pb_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A Prometheus remote write request (decompressed): one sample per series.
fn rw_body(series: usize, round: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(series * 160);
    let ts = T0 + round as i64 * 15_000;
    for i in 0..series {
        let mut t = Vec::with_capacity(160);
        let host = format!("host-{}:9100", i / 64);
        let cpu = (i % 64 / 8).to_string();
        for (n, v) in [
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", cpu.as_str()),
            ("instance", host.as_str()),
            ("job", "node"),
            ("mode", MODES[i % 8]),
        ] {
            let mut l = Vec::new();
            pb_bytes(&mut l, 1, n.as_bytes());
            pb_bytes(&mut l, 2, v.as_bytes());
            pb_bytes(&mut t, 1, &l);
        }
        let mut s = Vec::new();
        pb_varint(&mut s, 1 << 3 | 1);
        s.extend_from_slice(&((i * 7919 + round) as f64 / 100.0).to_bits().to_le_bytes());
        pb_varint(&mut s, 2 << 3);
        pb_varint(&mut s, ts as u64);
        pb_bytes(&mut t, 2, &s);
        pb_bytes(&mut out, 1, &t);
    }
    out
}

fn run(name: &str, format: Format, bodies: &[Vec<u8>], opts: &IngestOptions) {
    let store = Store::open(StoreConfig::default()).unwrap().0;
    let (c0, w0) = (thread_cpu_s(), Instant::now());
    let r = ingest(&store, format, &bodies[0], opts).unwrap();
    let cold_cpu = thread_cpu_s() - c0;
    let cold_wall = w0.elapsed().as_secs_f64();
    assert_eq!(r.rejected_total(), 0, "{name}: {:?}", r.rejected.first());
    let cold_samples = r.samples;
    let created = r.series_created;

    let (c0, w0) = (thread_cpu_s(), Instant::now());
    let mut samples = 0u64;
    let mut bytes = 0usize;
    for b in &bodies[1..] {
        let r = ingest(&store, format, b, opts).unwrap();
        assert_eq!(r.rejected_total(), 0, "{name}");
        assert_eq!(r.series_created, 0, "{name}");
        samples += r.samples;
        bytes += b.len();
    }
    let cpu = thread_cpu_s() - c0;
    let wall = w0.elapsed().as_secs_f64();
    println!(
        "{name:<16} cold: {created:>7} series, {:>6.2} M samples/s cpu ({:.2} wall) | warm: {:>9} samples, {:>6.2} M samples/s cpu ({:.2} wall), {:>6.0} MB/s",
        cold_samples as f64 / cold_cpu / 1e6,
        cold_samples as f64 / cold_wall / 1e6,
        samples,
        samples as f64 / cpu / 1e6,
        samples as f64 / wall / 1e6,
        bytes as f64 / cpu / 1e6
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let series: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20).max(2);
    let only = args.next().unwrap_or_default();
    let want = |name: &str| only.is_empty() || name.starts_with(only.as_str());
    println!("{series} series, {rounds} bodies per format (first = cold, rest = warm)");
    let opts = IngestOptions { default_ts_ms: T0, precision: Precision::Ns, ..IngestOptions::default() };

    if want("prometheus_text") {
    let prom: Vec<Vec<u8>> = (0..rounds).map(|r| prom_body(series, r)).collect();
    run("prometheus_text", Format::PrometheusText, &prom, &opts);
    }

    if want("influx") {
    let influx: Vec<Vec<u8>> = (0..rounds).map(|r| influx_body(series, r)).collect();
    run("influx", Format::Influx, &influx, &opts);
    }

    // VM JSON: 10 points per line; the cold body is a first batch of lines, the warm
    // bodies are later exports of the same series.
    if want("vm_json") {
    let json: Vec<Vec<u8>> = (0..rounds.div_ceil(10).max(2)).map(|r| vmjson_body(series, 10, r as i64 * 150_000)).collect();
    run("vm_json", Format::VmJson, &json, &opts);
    }

    if want("remote_write") {
    let rw: Vec<Vec<u8>> = (0..rounds).map(|r| rw_body(series, r)).collect();
    run("remote_write", Format::RemoteWrite, &rw, &opts);
    }
}
