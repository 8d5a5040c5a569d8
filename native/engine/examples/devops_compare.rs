//! Bytes per point on the bench's devops data set, per metric kind, ours vs VictoriaMetrics.
//!
//! The generator is a Rust port of `bench/support/devops.ex` (same distributions, same
//! shared-timestamp property: every series of a step gets `start + s*10000 + jitter`, jitter
//! uniform 1..=5 ms drawn once per step); only the random number generator differs.
//!
//! ```text
//! cargo run --release -p timeless_engine --example devops_compare [-- measure [HOSTS [STEPS]]]
//! cargo run --release -p timeless_engine --example devops_compare -- vm-dump DIR [HOSTS [STEPS]]
//! ```
//!
//! `measure` (default 200 hosts x 2160 steps, the bench's size) prints, per kind: the entropy
//! floor of the generator, our timestamp and value bytes per point with the codec that
//! `encode` picks, and whole chunk files written the way the store's merge writes them
//! (series in id order, 4096 series per file). `vm-dump` writes one JSON-lines file per kind
//! (and `all.jsonl`) for VictoriaMetrics's `/api/v1/import`; `bench/vm_per_kind.sh`-style
//! driving is in FORMAT.md ("Measurements").

use std::io::Write;
use std::time::Instant;

use timeless_engine::chunk::ChunkFileWriter;
use timeless_engine::codec::{decode, encode, measure, TS_PCO};

// Generator ----------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Cpu,
    Constant,
    Percent,
    Mem,
    Disk,
    Load,
    BytesCounter,
    RareCounter,
    Counter,
}

const KINDS: [Kind; 9] = [
    Kind::Cpu,
    Kind::Constant,
    Kind::Percent,
    Kind::Mem,
    Kind::Disk,
    Kind::Load,
    Kind::BytesCounter,
    Kind::RareCounter,
    Kind::Counter,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Constant => "constant",
            Kind::Percent => "percent",
            Kind::Mem => "mem",
            Kind::Disk => "disk",
            Kind::Load => "load",
            Kind::BytesCounter => "bytes_counter",
            Kind::RareCounter => "rare_counter",
            Kind::Counter => "counter",
        }
    }

    /// Entropy of one step of the generator in bits (the floor for any lossless coder that
    /// does not know the random number generator), ignoring clamping.
    fn step_bits(self) -> f64 {
        let h2 = |p: f64| -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        match self {
            Kind::Cpu => 40f64.log2(),           // round((u-0.5)*4, 1): 41 outcomes, ends half as likely
            Kind::Constant => 0.0,
            Kind::Percent => 100f64.log2(),      // round(u-0.5, 2)
            Kind::Mem => 50_000_000f64.log2(),   // trunc((u-0.5)*5e7)
            Kind::Disk => 4096f64.log2(),        // trunc(u*4096)
            Kind::Load => 20f64.log2(),          // round((u-0.5)*0.2, 2)
            Kind::BytesCounter => 2_000_000f64.log2(),
            Kind::RareCounter => h2(0.03),
            Kind::Counter => 2000f64.log2(),
        }
    }
}

/// Entropy in bits of the next value of a clamped decimal random walk, given the current
/// mantissa `m`: steps `-r..=r` (in units of the last decimal), the two ends half as likely as
/// the others (rounding of a uniform draw), results clamped to `lo..=hi`.
fn clamped_step_bits(m: i64, r: i64, lo: i64, hi: i64) -> f64 {
    let mut p = std::collections::BTreeMap::new();
    let base = 1.0 / (2 * r) as f64;
    for k in -r..=r {
        let w = if k.abs() == r { base / 2.0 } else { base };
        *p.entry((m + k).clamp(lo, hi)).or_insert(0.0) += w;
    }
    p.values().map(|&q: &f64| -q * q.log2()).sum()
}

/// The exact entropy floor of one step given the previous value (clamping included).
fn step_bits_given(k: Kind, prev: f64) -> f64 {
    match k {
        Kind::Cpu => clamped_step_bits((prev * 10.0).round() as i64, 20, 0, 1000),
        Kind::Percent => clamped_step_bits((prev * 100.0).round() as i64, 50, 0, 10_000),
        Kind::Load => clamped_step_bits((prev * 100.0).round() as i64, 10, 0, 6400),
        _ => k.step_bits(),
    }
}

const CPU: [&str; 10] = ["user", "system", "idle", "nice", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"];
const COUNTERS: [&str; 15] = [
    "diskio_reads", "diskio_writes", "diskio_read_bytes", "diskio_write_bytes", "net_bytes_sent",
    "net_bytes_recv", "net_packets_sent", "net_packets_recv", "net_err_in", "net_err_out",
    "net_drop_in", "net_drop_out", "kernel_context_switches", "kernel_interrupts",
    "kernel_processes_forked",
];

fn metrics() -> Vec<String> {
    let mut m: Vec<String> = CPU.iter().map(|c| format!("cpu_usage_{c}")).collect();
    for s in ["mem_total", "mem_used", "mem_free", "mem_cached", "mem_buffered", "mem_used_percent"] {
        m.push(s.into());
    }
    for s in ["disk_total", "disk_used", "disk_inodes_used", "disk_inodes_free"] {
        m.push(s.into());
    }
    m.extend(COUNTERS.iter().map(|s| s.to_string()));
    for s in ["kernel_boot_time", "system_load1", "system_load5", "system_load15"] {
        m.push(s.into());
    }
    assert_eq!(m.len(), 39);
    m
}

fn kind(metric: &str) -> Kind {
    if metric.starts_with("cpu_") {
        Kind::Cpu
    } else if ["mem_total", "disk_total", "kernel_boot_time"].contains(&metric) {
        Kind::Constant
    } else if metric == "mem_used_percent" {
        Kind::Percent
    } else if metric.starts_with("mem_") {
        Kind::Mem
    } else if metric.starts_with("disk_") {
        Kind::Disk
    } else if metric.starts_with("system_load") {
        Kind::Load
    } else if metric.contains("bytes") {
        Kind::BytesCounter
    } else if metric.contains("err") || metric.contains("drop") {
        Kind::RareCounter
    } else {
        Kind::Counter
    }
}

#[path = "support/random.rs"]
mod random;
use random::{round_dec, Rng};

fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v < lo { lo } else if v > hi { hi } else { v }
}

fn init_state(metric: &str, k: Kind, rng: &mut Rng) -> f64 {
    let u = rng.uniform();
    match (metric, k) {
        (_, Kind::Cpu) => round_dec(u * 100.0, 1),
        ("mem_total", _) => 17_179_869_184.0,
        ("disk_total", _) => 500_000_000_000.0,
        ("kernel_boot_time", _) => 1_700_000_000.0,
        (_, Kind::Percent) => round_dec(u * 100.0, 2),
        (_, Kind::Mem) => (u * 8_000_000_000.0).trunc(),
        (_, Kind::Disk) => (u * 100_000_000.0).trunc(),
        (_, Kind::Load) => round_dec(u * 4.0, 2),
        _ => (u * 1_000_000.0).trunc(),
    }
}

fn step(k: Kind, v: f64, rng: &mut Rng) -> f64 {
    let u = rng.uniform();
    match k {
        Kind::Cpu => clamp(round_dec(v + (u - 0.5) * 4.0, 1), 0.0, 100.0),
        Kind::Constant => v,
        Kind::Percent => clamp(round_dec(v + (u - 0.5), 2), 0.0, 100.0),
        Kind::Mem => (v + ((u - 0.5) * 50_000_000.0).trunc()).max(0.0),
        Kind::Disk => v + (u * 4096.0).trunc(),
        Kind::Load => clamp(round_dec(v + (u - 0.5) * 0.2, 2), 0.0, 64.0),
        Kind::BytesCounter => v + (u * 2_000_000.0).trunc(),
        Kind::RareCounter => v + if u > 0.97 { 1.0 } else { 0.0 },
        Kind::Counter => v + (u * 2_000.0).trunc(),
    }
}

struct Series {
    host: usize,
    metric: String,
    kind: Kind,
    vals: Vec<f64>,
}

/// All series (host-major, as the bench creates them, so series ids follow this order) and
/// the one timestamp column they share.
fn generate(hosts: usize, steps: usize, seed: u64) -> (Vec<i64>, Vec<Series>) {
    let ms = metrics();
    let mut rng = Rng(seed);
    let mut series: Vec<Series> = Vec::with_capacity(hosts * ms.len());
    let mut state = Vec::with_capacity(hosts * ms.len());
    for h in 0..hosts {
        for m in &ms {
            let k = kind(m);
            state.push(init_state(m, k, &mut rng));
            series.push(Series { host: h, metric: m.clone(), kind: k, vals: Vec::with_capacity(steps) });
        }
    }
    let start = 1_764_000_000_000i64;
    let mut ts = Vec::with_capacity(steps);
    for s in 0..steps {
        let jitter = 1 + (rng.next_u64() % 5) as i64;
        ts.push(start + s as i64 * 10_000 + jitter);
        for (i, sr) in series.iter_mut().enumerate() {
            state[i] = step(sr.kind, state[i], &mut rng);
            sr.vals.push(state[i]);
        }
    }
    (ts, series)
}

// Measurement ----------------------------------------------------------------------------------

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn args_usize(i: usize, default: usize) -> usize {
    std::env::args().nth(i).map(|s| s.parse().expect("number")).unwrap_or(default)
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        None | Some("measure") => {
            let (hosts, steps) = (args_usize(2, 200), args_usize(3, 2160));
            measure_ours(hosts, steps);
        }
        Some("pco") => {
            let (hosts, steps) = (args_usize(2, 40), args_usize(3, 2160));
            measure_pco(hosts, steps);
        }
        Some("vm-dump") => {
            let dir = std::env::args().nth(2).expect("vm-dump DIR");
            let (hosts, steps) = (args_usize(3, 200), args_usize(4, 2160));
            vm_dump(&dir, hosts, steps);
        }
        Some(other) => {
            eprintln!("usage: devops_compare [measure [HOSTS [STEPS]] | vm-dump DIR [HOSTS [STEPS]]] ({other:?})");
            std::process::exit(2);
        }
    }
}

fn measure_ours(hosts: usize, steps: usize) {
    let (ts, series) = generate(hosts, steps, 42);
    let total_points = series.len() * steps;
    println!("data set: {hosts} hosts x 39 series x {steps} steps = {total_points} points");

    // Per kind: body bytes split into the timestamp section and the value section.
    println!("\n| kind | series | entropy floor B/pt | ts B/pt | values B/pt | body B/pt | codecs |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut tot = (0usize, 0usize, 0.0f64);
    for k in KINDS {
        let sel: Vec<&Series> = series.iter().filter(|s| s.kind == k).collect();
        let (mut tsb, mut body) = (0usize, 0usize);
        let mut codecs = std::collections::BTreeMap::new();
        for s in &sel {
            let (c, b) = encode(&ts, &s.vals);
            *codecs.entry(timeless_engine::codec::codec_name(c)).or_insert(0usize) += 1;
            let t = ts_section_len(&ts);
            tsb += t;
            body += b.len();
        }
        let pts = (sel.len() * steps) as f64;
        tot.0 += tsb;
        tot.1 += body;
        let floor_bits: f64 =
            sel.iter().map(|s| s.vals.windows(2).map(|w| step_bits_given(k, w[0])).sum::<f64>()).sum();
        tot.2 += floor_bits / 8.0;
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:?} |",
            k.name(), sel.len(), floor_bits / 8.0 / pts, tsb as f64 / pts, (body - tsb) as f64 / pts,
            body as f64 / pts, codecs
        );
    }
    let pts = total_points as f64;
    println!(
        "| all | {} | {:.3} | {:.3} | {:.3} | {:.3} | |",
        series.len(), tot.2 / pts, tot.0 as f64 / pts, (tot.1 - tot.0) as f64 / pts, tot.1 as f64 / pts
    );

    // Whole chunk files, written as the store's merge writes them.
    let t0 = Instant::now();
    let mut file_bytes = 0u64;
    let mut body_bytes = 0u64;
    let mut chunks = 0usize;
    let mut files = Vec::new();
    for (g, group) in series.chunks(4096).enumerate() {
        let mut w = ChunkFileWriter::new();
        for (i, s) in group.iter().enumerate() {
            w.add((g * 4096 + i) as u64, &ts, &s.vals);
        }
        let (f, metas) = w.into_memory(g as u64 + 1).unwrap();
        file_bytes += f.size_bytes();
        body_bytes += metas.iter().map(|m| m.len as u64).sum::<u64>();
        chunks += metas.len();
        files.push((f, metas));
    }
    let enc = t0.elapsed().as_secs_f64();
    println!(
        "\nchunk files: {} files, {chunks} chunks, {file_bytes} bytes = {:.3} B/pt (bodies {:.3} B/pt, \
         {:.1} B/chunk overhead); encode {:.1} M points/s (one thread)",
        files.len(), file_bytes as f64 / pts, body_bytes as f64 / pts,
        (file_bytes - body_bytes) as f64 / chunks as f64, pts / enc / 1e6
    );

    // Read everything back (bit-exact check) and time it.
    let t1 = Instant::now();
    let (mut t, mut v) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let mut n = 0usize;
    for (f, metas) in &files {
        for m in metas {
            t.clear();
            v.clear();
            f.read(m, &mut t, &mut v).unwrap();
            n += t.len();
        }
    }
    let dec = t1.elapsed().as_secs_f64();
    println!("read back: {:.1} M points/s (one thread, crc + decode)", n as f64 / dec / 1e6);
    for (f, metas) in &files {
        for m in metas {
            t.clear();
            v.clear();
            f.read(m, &mut t, &mut v).unwrap();
            let s = &series[m.series_id as usize];
            assert_eq!(t, ts);
            assert!(v.iter().zip(&s.vals).all(|(a, b)| a.to_bits() == b.to_bits()), "series {}", m.series_id);
        }
    }
    // Bare codec speed.
    let bodies: Vec<(u8, Vec<u8>)> = series.iter().map(|s| encode(&ts, &s.vals)).collect();
    let t2 = Instant::now();
    for (c, b) in &bodies {
        t.clear();
        v.clear();
        decode(*c, b, steps, &mut t, &mut v).unwrap();
    }
    println!("codec decode: {:.1} M points/s (one thread)", pts / t2.elapsed().as_secs_f64() / 1e6);
    let vm = 23_805_964.0;
    if hosts == 200 && steps == 2160 {
        println!(
            "vs VictoriaMetrics data/ on the bench ({vm} B = {:.3} B/pt): chunk files {:.3}x",
            vm / pts, file_bytes as f64 / vm
        );
    }
}

/// pco settings on the decimal mantissas of each kind (the value column of `VAL_DEC_PCO`).
fn measure_pco(hosts: usize, steps: usize) {
    use pco::{ChunkConfig, DeltaSpec, ModeSpec};
    let (ts, series) = generate(hosts, steps, 42);
    // timestamps (one series' column: what a chunk that owns its timestamps stores)
    for (name, cfg) in [
        ("ts L4 delta2 (current)", ChunkConfig::default().with_compression_level(4).with_delta_spec(DeltaSpec::TryConsecutive(2))),
        ("ts L4 delta1", ChunkConfig::default().with_compression_level(4).with_delta_spec(DeltaSpec::TryConsecutive(1))),
        ("ts L4 intmult 10000 + delta1", ChunkConfig::default().with_compression_level(4).with_delta_spec(DeltaSpec::TryConsecutive(1)).with_mode_spec(ModeSpec::TryIntMult(10_000))),
        ("ts L4 intmult 10000 + no delta", ChunkConfig::default().with_compression_level(4).with_delta_spec(DeltaSpec::NoOp).with_mode_spec(ModeSpec::TryIntMult(10_000))),
        ("ts L4 auto", ChunkConfig::default().with_compression_level(4).with_delta_spec(DeltaSpec::Auto)),
        ("ts L8 auto", ChunkConfig::default().with_compression_level(8).with_delta_spec(DeltaSpec::Auto)),
    ] {
        for n in [120usize, 720, 2160] {
            let b = measure::pco_column(&ts[..n], cfg.clone()).unwrap().len();
            print!("{name} n={n}: {:.3} B/pt   ", b as f64 / n as f64);
        }
        println!();
    }
    let dod = measure::ts_column(&ts, timeless_engine::codec::TS_DOD_BITS).unwrap().len();
    println!("ts dod-bits n={}: {:.3} B/pt; entropy of the jitter: {:.3} B/pt", ts.len(), dod as f64 / ts.len() as f64, 5f64.log2() / 8.0);
    let cols: Vec<(Kind, Vec<i64>)> =
        series.iter().map(|s| (s.kind, measure::decimal_column(&s.vals).mantissas)).collect();
    let configs: Vec<(String, ChunkConfig)> = [4usize, 6, 8, 12]
        .iter()
        .flat_map(|&l| {
            [("d1", DeltaSpec::TryConsecutive(1)), ("auto", DeltaSpec::Auto)].into_iter().map(move |(dn, d)| {
                (format!("L{l} {dn}"), ChunkConfig::default().with_compression_level(l).with_delta_spec(d).with_mode_spec(ModeSpec::Auto))
            })
        })
        .collect();
    print!("| config |");
    for k in KINDS {
        print!(" {} |", k.name());
    }
    println!(" all | enc M/s | dec M/s |");
    for (name, cfg) in &configs {
        print!("| {name} |");
        let mut tot = 0usize;
        let t0 = Instant::now();
        let mut enc = Vec::new();
        for k in KINDS {
            let mut b = 0usize;
            let mut n = 0usize;
            for (_, c) in cols.iter().filter(|(kk, _)| *kk == k) {
                let e = measure::pco_column(c, cfg.clone()).unwrap();
                b += e.len();
                n += c.len();
                enc.push((e, c.len()));
            }
            tot += b;
            print!(" {:.4} |", b as f64 / n as f64);
        }
        let et = t0.elapsed().as_secs_f64();
        let pts = (cols.len() * steps) as f64;
        let t1 = Instant::now();
        for (e, n) in &enc {
            let d = measure::pco_decode_i64(e, *n);
            assert_eq!(d.len(), *n);
        }
        let dt = t1.elapsed().as_secs_f64();
        println!(" {:.4} | {:.1} | {:.1} |", tot as f64 / pts, pts / et / 1e6, pts / dt / 1e6);
    }
}

/// Bytes the timestamp section takes in a columnar body (length prefix included).
fn ts_section_len(ts: &[i64]) -> usize {
    let n = measure::ts_column(ts, TS_PCO).unwrap().len();
    n + varint_len(n as u64)
}

fn vm_dump(dir: &str, hosts: usize, steps: usize) {
    let (ts, series) = generate(hosts, steps, 42);
    std::fs::create_dir_all(dir).unwrap();
    let ts_json = format!("{:?}", ts).replace(' ', "");
    let mut all = std::io::BufWriter::new(std::fs::File::create(format!("{dir}/all.jsonl")).unwrap());
    for k in KINDS {
        let mut f = std::io::BufWriter::new(std::fs::File::create(format!("{dir}/{}.jsonl", k.name())).unwrap());
        for s in series.iter().filter(|s| s.kind == k) {
            let vals: Vec<String> = s.vals.iter().map(|v| format!("{v}")).collect();
            let line = format!(
                "{{\"metric\":{{\"__name__\":\"{}\",\"hostname\":\"host_{}\"}},\"values\":[{}],\"timestamps\":{}}}\n",
                s.metric, s.host, vals.join(","), ts_json
            );
            f.write_all(line.as_bytes()).unwrap();
            all.write_all(line.as_bytes()).unwrap();
        }
    }
    println!("wrote {} series x {steps} points to {dir}", series.len());
}
