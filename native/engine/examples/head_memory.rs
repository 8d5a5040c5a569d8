//! Heap bytes per buffered point and append cost of the head, on bench-like data.
//!
//! `cargo run --release -p timeless_engine --example head_memory [HOSTS [STEPS [SHARDS [REPS]]]]`
//!
//! Fills a [`Head`] the way bulk ingest does: HOSTS (default 1000) hosts x 39 series of the
//! bench's devops generator (a port of `bench/support/devops.ex`: cpu 1-decimal random walks,
//! percents and load averages with 2 decimals, memory byte gauges, counters, constants),
//! STEPS (default 260) steps at 10 s sharing one jittered timestamp, one `insert` call per
//! step carrying every series (so all buffers grow together, as during a scrape-shaped
//! import). 1000 x 39 x 260 = 10.1 M points, the bench's ingest size.
//!
//! Prints: live heap bytes per point from a counting global allocator (what the head asked
//! the allocator for, capacity slack included) and its peak, the VmRSS growth, and the time
//! per point of `insert` and of `take_all` (thread CPU time; wall time is noisy on a shared
//! machine), the best of REPS (default 3) fills of a fresh head.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use timeless_engine::buffer::Head;

/// Global allocator that counts live bytes (requested sizes) and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn add(delta: isize) {
    let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add(new as isize - l.size() as isize);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn vm_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// Generator (same distributions as examples/devops_compare.rs) -------------------------------

#[derive(Clone, Copy)]
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

/// The 39 metrics of one host, by kind, in the bench's order.
const HOST: [Kind; 39] = {
    use Kind::*;
    [
        Cpu, Cpu, Cpu, Cpu, Cpu, Cpu, Cpu, Cpu, Cpu, Cpu, // cpu_usage_*
        Constant, Mem, Mem, Mem, Mem, Percent, // mem_total, used, free, cached, buffered, used_percent
        Constant, Disk, Disk, Disk, // disk_total, used, inodes_used, inodes_free
        Counter, Counter, BytesCounter, BytesCounter, BytesCounter, BytesCounter, Counter, Counter,
        RareCounter, RareCounter, RareCounter, RareCounter, Counter, Counter, Counter, // diskio, net, kernel
        Constant, Load, Load, Load, // kernel_boot_time, system_load*
    ]
};

#[path = "support/random.rs"]
mod random;
use random::{round_dec, Rng};

fn init(k: Kind, u: f64) -> f64 {
    match k {
        Kind::Cpu => round_dec(u * 100.0, 1),
        Kind::Constant => 17_179_869_184.0,
        Kind::Percent => round_dec(u * 100.0, 2),
        Kind::Mem => (u * 8_000_000_000.0).trunc(),
        Kind::Disk => (u * 100_000_000.0).trunc(),
        Kind::Load => round_dec(u * 4.0, 2),
        _ => (u * 1_000_000.0).trunc(),
    }
}

fn step(k: Kind, v: f64, u: f64) -> f64 {
    match k {
        Kind::Cpu => round_dec(v + (u - 0.5) * 4.0, 1).clamp(0.0, 100.0),
        Kind::Constant => v,
        Kind::Percent => round_dec(v + (u - 0.5), 2).clamp(0.0, 100.0),
        Kind::Mem => (v + ((u - 0.5) * 50_000_000.0).trunc()).max(0.0),
        Kind::Disk => v + (u * 4096.0).trunc(),
        Kind::Load => round_dec(v + (u - 0.5) * 0.2, 2).clamp(0.0, 64.0),
        Kind::BytesCounter => v + (u * 2_000_000.0).trunc(),
        Kind::RareCounter => v + if u > 0.97 { 1.0 } else { 0.0 },
        Kind::Counter => v + (u * 2_000.0).trunc(),
    }
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).map(|s| s.parse().expect("number")).unwrap_or(default)
}

/// Heap, peak heap and VmRSS growth (bytes), and insert / take_all CPU seconds of one fill.
struct Fill {
    points: usize,
    heap: isize,
    peak: isize,
    rss: i64,
    insert_s: f64,
    take_s: f64,
}

fn fill(hosts: usize, steps: usize, shards: usize) -> Fill {
    let n_series = hosts * HOST.len();
    let mut rng = Rng(2024);
    let kinds: Vec<Kind> = (0..hosts).flat_map(|_| HOST).collect();
    let mut state: Vec<f64> = kinds.iter().map(|&k| init(k, rng.uniform())).collect();
    let ids: Vec<u64> = (0..n_series as u64).collect();
    let mut ts = vec![0i64; n_series];
    let mut vals = vec![0f64; n_series];

    let head = Head::new(shards, 1 << 20);
    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), vm_rss_kib());
    PEAK.store(heap0, Ordering::Relaxed);
    let mut insert_s = 0.0;
    let start = 1_764_000_000_000i64;
    for s in 0..steps {
        let t = start + s as i64 * 10_000 + 1 + (rng.next_u64() % 5) as i64;
        for i in 0..n_series {
            state[i] = step(kinds[i], state[i], rng.uniform());
            ts[i] = t;
            vals[i] = state[i];
        }
        let c = thread_cpu_s();
        head.insert(&ids, &ts, &vals, 1);
        insert_s += thread_cpu_s() - c;
    }
    let points = head.points();
    let heap = LIVE.load(Ordering::Relaxed) - heap0;
    let peak = PEAK.load(Ordering::Relaxed) - heap0;
    let rss = vm_rss_kib() - rss0;

    let c = thread_cpu_s();
    let cut = head.take_all();
    let take_s = thread_cpu_s() - c;
    let cut_points: usize = cut.iter().map(|c| c.1.len()).sum();
    assert_eq!(cut_points, points);
    Fill { points, heap, peak, rss: rss * 1024, insert_s, take_s }
}

fn main() {
    let hosts = arg(1, 1000);
    let steps = arg(2, 260);
    let shards = arg(3, 64);
    let reps = arg(4, 3).max(1);
    let fills: Vec<Fill> = (0..reps).map(|_| fill(hosts, steps, shards)).collect();
    // Memory from the first fill (later ones reuse pages the allocator kept); times: the best.
    let f = &fills[0];
    let insert_s = fills.iter().map(|f| f.insert_s).fold(f64::INFINITY, f64::min);
    let take_s = fills.iter().map(|f| f.take_s).fold(f64::INFINITY, f64::min);
    let p = f.points as f64;
    let mib = |b: f64| b / 1048576.0;
    println!("{hosts} hosts x 39 series x {steps} steps = {} points, {shards} shards", f.points);
    println!("heap live     {:>8.2} B/pt  ({:.1} MiB)", f.heap as f64 / p, mib(f.heap as f64));
    println!("heap peak     {:>8.2} B/pt  ({:.1} MiB)", f.peak as f64 / p, mib(f.peak as f64));
    println!("VmRSS growth  {:>8.2} B/pt  ({:.1} MiB)", f.rss as f64 / p, mib(f.rss as f64));
    println!("insert        {:>8.1} ns/pt  (best of {reps})", insert_s * 1e9 / p);
    println!("take_all      {:>8.1} ns/pt  (best of {reps})", take_s * 1e9 / p);
}
