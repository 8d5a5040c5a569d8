//! Codec size and speed measurements (not a test: prints the tables behind FORMAT-chunk.md,
//! section "Measurements").
//!
//! `cargo run --release -p timeless_engine --example codec_measure`         body sizes per
//! encoding vs a VictoriaMetrics imitation, chunk file overhead, encode/decode speed;
//! `cargo run --release -p timeless_engine --example codec_measure -- pco`  pco levels, delta
//! and mode settings on timestamps and decimal mantissas.
//!
//! Data: the TSBS-devops-like generator shared with the codec unit tests
//! (`src/codec/testdata.rs`), seed 2024.

use std::time::Instant;

use pco::{ChunkConfig, DeltaSpec, ModeSpec};
use timeless_engine::chunk::ChunkFileWriter;
use timeless_engine::codec::{
    decode, encode, measure, TS_DOD_BITS, TS_PCO, VAL_DEC_PACKED, VAL_DEC_PCO, VAL_GORILLA,
    VAL_PCO_F64,
};

#[path = "../src/codec/testdata.rs"]
mod testdata;
use testdata::devops_dataset;

fn main() {
    match std::env::args().nth(1).as_deref() {
        None => measure_encodings(),
        Some("pco") => measure_pco_configs(),
        Some(other) => {
            eprintln!("usage: codec_measure [pco]   (unknown argument {other:?})");
            std::process::exit(2);
        }
    }
}

// VictoriaMetrics imitation ------------------------------------------------------------------

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zz_varints(vals: &[i64], order: usize) -> Vec<u8> {
    // VictoriaMetrics-style: first values raw, then zigzag varint deltas of `order`
    let mut out = Vec::new();
    let mut prev = vals.to_vec();
    for _ in 0..order {
        let d: Vec<i64> = prev.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        put_varint(&mut out, zigzag(prev[0]));
        prev = d;
    }
    for x in prev {
        put_varint(&mut out, zigzag(x));
    }
    out
}

/// Approximation of VictoriaMetrics' block encoding: values as decimal mantissas with a
/// common exponent, delta (gauges) or delta-of-delta (counters/timestamps) zigzag varints,
/// zstd. Only the body is counted (VM's block header and index are not).
fn vm_like(ts: &[i64], vals: &[f64]) -> usize {
    let z = |b: &[u8]| zstd::bulk::compress(b, 3).unwrap().len().min(b.len());
    let tsb = z(&zz_varints(ts, 2));
    let dec = measure::decimal_column(vals);
    let vb = (1..=2).map(|o| z(&zz_varints(&dec.mantissas, o))).min().unwrap();
    tsb + vb + dec.exceptions * 9 + 2
}

// Measurements -------------------------------------------------------------------------------

fn measure_encodings() {
    let data = devops_dataset(20, 8640, 2024);
    let total_points: usize = data.iter().map(|s| s.ts.len()).sum();
    println!("dataset: {} series, {} points", data.len(), total_points);
    type Cand = (&'static str, Box<dyn Fn(&[i64], &[f64]) -> usize>);
    let cands: Vec<Cand> = vec![
        ("auto (encode)", Box::new(|t, v| encode(t, v).1.len())),
        ("dod-bits + gorilla", Box::new(|t, v| measure::encode_with(t, v, TS_DOD_BITS, VAL_GORILLA).1.len())),
        ("dod-bits + dec-packed", Box::new(|t, v| measure::encode_with(t, v, TS_DOD_BITS, VAL_DEC_PACKED).1.len())),
        ("dod-bits + dec-pco", Box::new(|t, v| measure::encode_with(t, v, TS_DOD_BITS, VAL_DEC_PCO).1.len())),
        ("pco + pco-f64", Box::new(|t, v| measure::encode_with(t, v, TS_PCO, VAL_PCO_F64).1.len())),
        ("pco + dec-pco", Box::new(|t, v| measure::encode_with(t, v, TS_PCO, VAL_DEC_PCO).1.len())),
        ("pco + dec-packed", Box::new(|t, v| measure::encode_with(t, v, TS_PCO, VAL_DEC_PACKED).1.len())),
        ("VM-like (dec+delta+zstd)", Box::new(vm_like)),
    ];
    let kinds = ["cpu", "mem", "counter", "load", "all"];
    for &n in &[120usize, 720, 8640] {
        println!("\n### chunk = {n} points: body bytes/point");
        print!("| encoding |");
        for k in kinds { print!(" {k} |"); }
        println!("\n|---|{}", "---|".repeat(kinds.len()));
        for (name, f) in &cands {
            print!("| {name} |");
            for k in kinds {
                let (mut bytes, mut pts) = (0usize, 0usize);
                for s in data.iter().filter(|s| k == "all" || s.kind == k) {
                    for c in 0..s.ts.len() / n {
                        let r = c * n..(c + 1) * n;
                        bytes += f(&s.ts[r.clone()], &s.vals[r]);
                        pts += n;
                    }
                }
                print!(" {:.3} |", bytes as f64 / pts as f64);
            }
            println!();
        }
        // timestamps alone
        let (mut dodb, mut pcob, mut vmb, mut pts) = (0, 0, 0, 0);
        for s in &data {
            for c in 0..s.ts.len() / n {
                let t = &s.ts[c * n..(c + 1) * n];
                dodb += measure::ts_column(t, TS_DOD_BITS).unwrap().len();
                pcob += measure::ts_column(t, TS_PCO).unwrap().len();
                vmb += zstd::bulk::compress(&zz_varints(t, 2), 3).unwrap().len();
                pts += n;
            }
        }
        println!("timestamps only: dod-bits {:.3}, pco {:.3}, varint-dod+zstd {:.3} bytes/point",
            dodb as f64 / pts as f64, pcob as f64 / pts as f64, vmb as f64 / pts as f64);
    }
    // whole chunk file (record headers + index + file header/trailer), via ChunkFileWriter
    for &n in &[120usize, 720, 8640] {
        let t0 = Instant::now();
        let mut w = ChunkFileWriter::new();
        let (mut pts, mut body) = (0usize, 0usize);
        for (i, s) in data.iter().enumerate() {
            for c in 0..s.ts.len() / n {
                let r = c * n..(c + 1) * n;
                w.add(i as u64 * 1_000_003, &s.ts[r.clone()], &s.vals[r]);
                pts += n;
            }
        }
        let (f, metas) = w.into_memory(1).unwrap();
        let el = t0.elapsed().as_secs_f64();
        body += metas.iter().map(|m| m.len as usize).sum::<usize>();
        println!("chunk file n={n}: {:.3} bytes/point total ({:.3} body), {:.1} bytes/chunk overhead, writer {:.1} M points/s",
            f.size_bytes() as f64 / pts as f64, body as f64 / pts as f64,
            (f.size_bytes() as usize - body) as f64 / metas.len() as f64, pts as f64 / el / 1e6);
    }
    // speed of the chosen encode/decode, one core
    for &n in &[120usize, 720, 8640] {
        let t0 = Instant::now();
        let mut encoded = Vec::new();
        for s in &data {
            for c in 0..s.ts.len() / n {
                let r = c * n..(c + 1) * n;
                encoded.push((encode(&s.ts[r.clone()], &s.vals[r]), n));
            }
        }
        let enc = t0.elapsed();
        let t1 = Instant::now();
        let (mut t, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for ((codec, body), n) in &encoded {
            t.clear();
            v.clear();
            decode(*codec, body, *n, &mut t, &mut v).unwrap();
        }
        let dec = t1.elapsed();
        let pts = encoded.len() * n;
        println!("speed n={n}: encode {:.1} M points/s, decode {:.1} M points/s",
            pts as f64 / enc.as_secs_f64() / 1e6, pts as f64 / dec.as_secs_f64() / 1e6);
    }
}

fn measure_pco_configs() {
    let data = devops_dataset(10, 8640, 2024);
    for &n in &[720usize, 8640] {
        let mut ts_chunks = Vec::new();
        let mut m_chunks = Vec::new();
        for s in &data {
            for c in 0..s.ts.len() / n {
                let r = c * n..(c + 1) * n;
                ts_chunks.push(s.ts[r.clone()].to_vec());
                let v = &s.vals[r];
                m_chunks.push(measure::decimal_column(v).mantissas);
            }
        }
        let pts = (ts_chunks.len() * n) as f64;
        for level in [0usize, 2, 4, 8] {
            for (dname, ts_d, v_d) in [
                ("auto", DeltaSpec::Auto, DeltaSpec::Auto),
                ("fixed ts2/v1", DeltaSpec::TryConsecutive(2), DeltaSpec::TryConsecutive(1)),
            ] {
                for (mname, mode) in [("auto", ModeSpec::Auto), ("classic", ModeSpec::Classic)] {
                    let cfg = |d: &DeltaSpec| ChunkConfig::default()
                        .with_compression_level(level)
                        .with_delta_spec(d.clone())
                        .with_mode_spec(mode.clone());
                    let t0 = Instant::now();
                    let mut tb = 0;
                    for t in &ts_chunks { tb += measure::pco_column(t, cfg(&ts_d)).unwrap().len(); }
                    let tt = t0.elapsed().as_secs_f64();
                    let t1 = Instant::now();
                    let mut vb = 0;
                    for m in &m_chunks { vb += measure::pco_column(m, cfg(&v_d)).unwrap().len(); }
                    let vt = t1.elapsed().as_secs_f64();
                    println!("n={n} level={level} delta={dname} mode={mname}: ts {:.3} B/pt {:.1} M/s, mantissas {:.3} B/pt {:.1} M/s",
                        tb as f64 / pts, pts / tt / 1e6, vb as f64 / pts, pts / vt / 1e6);
                }
            }
        }
    }
}
