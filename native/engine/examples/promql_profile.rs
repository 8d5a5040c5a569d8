//! PromQL evaluation cost inside the engine, without HTTP or the BEAM: loads a
//! devops-like data set (HOSTS hosts x 10 metrics x STEPS steps of 10 s, flushed and
//! merged into chunk files) and times `evaluate` + `encode_response` for the queries
//! of `bench/promql_bench.exs` (range over the whole data set, step 60 s, and instant
//! at the end). For profiling (`perf record`), not a comparison: the comparison with
//! VictoriaMetrics is `bench/promql_bench.exs`.
//!
//! ```text
//! cargo run --release -p timeless_engine --example promql_profile [-- HOSTS [STEPS [REPS [FILTER [MODE]]]]]
//! ```
//!
//! MODE `range` or `instant` runs only that kind (for profiling one of them); default both.
//!
//! With `PROMQL_PROFILE_DIR=<store dir>` and `PROMQL_PROFILE_RANGE="<start s> <end s>"`
//! it opens that store instead of loading one (for example a copy of the data dir
//! `bench/promql_bench.exs` loads, to split its latency into engine and the rest).

use std::time::Instant;

// The NIF library's allocator, so the profile matches the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;


use timeless_engine::promql::json::{encode_response, Notes};
use timeless_engine::promql::{evaluate, AggOp, BinOp, EvalOptions, Expr, Grid, Grouping, Matching};
use timeless_engine::series::{MatchOp, Matcher};
use timeless_engine::store::{Store, StoreConfig};

const METRICS: [&str; 10] = [
    "cpu_usage_user",
    "cpu_usage_system",
    "cpu_usage_idle",
    "cpu_usage_iowait",
    "mem_used_percent",
    "system_load1",
    "net_bytes_recv",
    "net_bytes_sent",
    "diskio_reads",
    "kernel_context_switches",
];
const REGIONS: [&str; 9] = [
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
];
const START: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 10_000;

struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn load(store: &Store, hosts: usize, steps: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ts: Vec<i64> = (0..steps as i64).map(|s| START + s * STEP_MS + 1 + (s % 5)).collect();
    for h in 0..hosts {
        let host = format!("host_{h}");
        let region = REGIONS[h % REGIONS.len()];
        let dc = format!("{region}{}", (b'a' + (h % 3) as u8) as char);
        let rack = format!("{}", (h * 7) % 100);
        for m in METRICS {
            let labels = store
                .labels(m, &[("hostname", &host), ("region", region), ("datacenter", &dc), ("rack", &rack)])
                .unwrap();
            let id = store.resolve(&labels).unwrap();
            let counter = m.starts_with("net_") || m.starts_with("diskio") || m.starts_with("kernel");
            let mut v = (rng.unit() * 100.0 * 10.0).round() / 10.0;
            let vals: Vec<f64> = (0..steps)
                .map(|_| {
                    let u = rng.unit();
                    v = if counter { v + (u * 2000.0).trunc() } else { ((v + (u - 0.5) * 4.0) * 10.0).round() / 10.0 };
                    v
                })
                .collect();
            store.write(&vec![id; steps], &ts, &vals).unwrap();
        }
    }
    store.flush().unwrap();
    store.merge().unwrap();
}

fn eq(n: &str, v: &str) -> Matcher {
    Matcher::new(n, MatchOp::Eq, v).unwrap()
}
fn name(v: &str) -> Matcher {
    eq("__name__", v)
}
fn sel(ms: Vec<Matcher>) -> Expr {
    Expr::selector(ms)
}
fn rate(m: &str, range: i64) -> Expr {
    Expr::call("rate", vec![Expr::matrix(vec![name(m)], range)])
}
fn agg(op: AggOp, by: &[&str], e: Expr) -> Expr {
    Expr::Aggregate {
        op,
        param: None,
        expr: Box::new(e),
        grouping: Grouping::By(by.iter().map(|s| s.to_string()).collect()),
    }
}

fn queries() -> Vec<(&'static str, Expr)> {
    let m5 = 300_000;
    vec![
        ("single series", sel(vec![name("cpu_usage_user"), eq("hostname", "host_1")])),
        (
            "rate one",
            Expr::call("rate", vec![Expr::matrix(vec![name("net_bytes_recv"), eq("hostname", "host_1")], m5)]),
        ),
        ("rate all", rate("net_bytes_recv", m5)),
        ("sum by region rate", agg(AggOp::Sum, &["region"], rate("net_bytes_recv", m5))),
        ("avg_over_time", Expr::call("avg_over_time", vec![Expr::matrix(vec![name("cpu_usage_user")], m5)])),
        (
            "max by hostname re",
            agg(AggOp::Max, &["hostname"], sel(vec![Matcher::new("__name__", MatchOp::Re, "cpu_usage_.*").unwrap()])),
        ),
        (
            "topk 5",
            Expr::Aggregate {
                op: AggOp::Topk,
                param: Some(Box::new(Expr::Number(5.0))),
                expr: Box::new(sel(vec![name("cpu_usage_user")])),
                grouping: Grouping::By(vec![]),
            },
        ),
        (
            "quantile_over_time",
            Expr::call("quantile_over_time", vec![Expr::Number(0.9), Expr::matrix(vec![name("cpu_usage_user")], m5)]),
        ),
        ("increase 1h", Expr::call("increase", vec![Expr::matrix(vec![name("net_bytes_recv")], 3_600_000)])),
        ("deriv", Expr::call("deriv", vec![Expr::matrix(vec![name("mem_used_percent")], m5)])),
        (
            "join",
            Expr::Binary {
                op: BinOp::Div,
                lhs: Box::new(rate("net_bytes_sent", m5)),
                rhs: Box::new(rate("net_bytes_recv", m5)),
                return_bool: false,
                matching: Some(Matching { on: true, labels: vec!["hostname".into()], ..Matching::default() }),
            },
        ),
        ("selective", sel(vec![eq("hostname", "host_7")])),
        ("count by region", agg(AggOp::Count, &["region"], sel(vec![name("cpu_usage_user")]))),
        ("sum of rate", agg(AggOp::Sum, &[], rate("diskio_reads", m5))),
        ("avg by region", agg(AggOp::Avg, &["region"], sel(vec![name("system_load1")]))),
        (
            "comparison",
            Expr::Binary {
                op: BinOp::Gt,
                lhs: Box::new(sel(vec![name("cpu_usage_user")])),
                rhs: Box::new(Expr::Number(95.0)),
                return_bool: false,
                matching: None,
            },
        ),
    ]
}

/// CPU seconds of the whole process (all threads) so far.
fn cpu_s() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = text.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hosts: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8640);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let filter = args.get(3).cloned().unwrap_or_default();
    let mode = args.get(4).cloned().unwrap_or_default();
    let given = std::env::var("PROMQL_PROFILE_DIR").ok().map(std::path::PathBuf::from);
    let dir = given.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("promql_profile_{}", std::process::id())));
    let cfg = StoreConfig { data_dir: Some(dir.clone()), max_buffered_points: usize::MAX, ..StoreConfig::default() };
    let (store, _) = Store::open(cfg).unwrap();
    let (start, end) = if given.is_some() {
        let range = std::env::var("PROMQL_PROFILE_RANGE").expect("PROMQL_PROFILE_RANGE=\"<start s> <end s>\"");
        let s: Vec<i64> = range.split_whitespace().map(|x| x.parse::<i64>().expect("seconds") * 1000).collect();
        eprintln!("loaded {}", dir.display());
        (s[0], s[1])
    } else {
        let t0 = Instant::now();
        load(&store, hosts, steps);
        eprintln!("loaded {} points in {:.1} s", hosts * 10 * steps, t0.elapsed().as_secs_f64());
        (START, START + (steps as i64 - 1) * STEP_MS)
    };
    println!("| query | range ms (median) | range CPU ms (mean) | out KiB | instant ms (median) | instant CPU ms (mean) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, q) in queries() {
        if !filter.is_empty() && !label.contains(filter.as_str()) {
            continue;
        }
        let mut row = vec![];
        for (start, range) in [(start, true), (end, false)] {
            let skip = (mode == "instant" && range) || (mode == "range" && !range);
            if skip {
                row.push((0.0, 0, 0.0));
                continue;
            }
            let opts = EvalOptions { range_query: range, ..EvalOptions::default() };
            let step = if range { 60_000 } else { 1 };
            let grid = Grid::new(start, end, step);
            let mut times = vec![];
            let mut bytes = 0;
            let cpu0 = cpu_s();
            for _ in 0..reps {
                let t = Instant::now();
                let v = evaluate(&store, &q, start, end, step, &opts).unwrap();
                let body = encode_response(&v, &grid, range, &Notes::default());
                bytes = body.iter().map(Vec::len).sum::<usize>();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let cpu_ms = (cpu_s() - cpu0) * 1000.0 / reps as f64;
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            row.push((times[times.len() / 2], bytes, cpu_ms));
        }
        println!(
            "| {label} | {:.2} | {:.0} | {} | {:.3} | {:.1} |",
            row[0].0,
            row[0].2,
            row[0].1 / 1024,
            row[1].0,
            row[1].2
        );
    }
    store.close().unwrap();
    if given.is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
