//! Round-trip and robustness tests of the public `encode`/`decode` over every encoding
//! combination; per-encoding details are tested beside their code.

use super::testdata::devops_dataset;
use super::*;
use crate::STALE_NAN_BITS;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn roundtrip_with(ts: &[i64], vals: &[f64], codec: u8, body: &[u8]) {
    let mut t = vec![7i64]; // pre-existing content must be kept (append semantics)
    let mut v = vec![7.5f64];
    decode(codec, body, ts.len(), &mut t, &mut v)
        .unwrap_or_else(|e| panic!("decode codec {codec:#04x}: {e}"));
    assert_eq!(t.len(), ts.len() + 1);
    assert_eq!(v.len(), vals.len() + 1);
    assert_eq!(t[0], 7);
    assert_eq!(v[0].to_bits(), 7.5f64.to_bits());
    assert_eq!(&t[1..], ts, "timestamps differ, codec {codec:#04x}");
    for (i, (a, b)) in v[1..].iter().zip(vals).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "value {i} differs ({a} vs {b}), codec {codec:#04x}");
    }
    check_values_at(vals, codec, body);
}

/// `decode_values_at` gives the wanted values (all of them, or whether each is a
/// staleness marker) and leaves the other slots alone.
fn check_values_at(vals: &[f64], codec: u8, body: &[u8]) {
    let n = vals.len();
    for every in [1usize, 3, 7] {
        let wanted: Vec<u32> = (0..n as u32).filter(|i| *i as usize % every == every / 2 || *i as usize + 1 == n).collect();
        for need in [true, false] {
            let mut out = vec![f64::from_bits(STALE_NAN_BITS); n];
            decode_values_at(codec, body, n, &wanted, need, &mut out)
                .unwrap_or_else(|e| panic!("decode_values_at codec {codec:#04x}: {e}"));
            for i in 0..n {
                let stale = |v: f64| v.to_bits() == STALE_NAN_BITS;
                if wanted.binary_search(&(i as u32)).is_err() {
                    assert!(stale(out[i]), "slot {i} not wanted but written, codec {codec:#04x}");
                } else if need {
                    assert_eq!(out[i].to_bits(), vals[i].to_bits(), "value {i}, codec {codec:#04x}");
                } else {
                    assert_eq!(stale(out[i]), stale(vals[i]), "staleness of {i}, codec {codec:#04x}");
                }
            }
        }
    }
}

/// Round trip through `encode` and through every explicit encoding combination.
fn roundtrip_all(ts: &[i64], vals: &[f64]) {
    let (codec, body) = encode(ts, vals);
    roundtrip_with(ts, vals, codec, &body);
    for ts_enc in [TS_DOD_BITS, TS_PCO] {
        for val_enc in [VAL_GORILLA, VAL_DEC_PACKED, VAL_DEC_PCO, VAL_PCO_F64, VAL_DEC_PCO32] {
            let (codec, body) = encode_with(ts, vals, ts_enc, val_enc);
            if !ts.is_empty() && codec != CODEC_RAW {
                // a decimal pco section is written with the narrowest mantissa type: 3 and 5
                // are one choice
                let choice = |v: u8| if v == VAL_DEC_PCO32 { VAL_DEC_PCO } else { v };
                assert_eq!(codec >> 4, ts_enc);
                assert_eq!(choice(codec & 0x0f), choice(val_enc), "{}", codec_name(codec));
            }
            roundtrip_with(ts, vals, codec, &body);
        }
    }
}

fn regular_ts(n: usize, start: i64, step: i64) -> Vec<i64> {
    (0..n as i64).map(|i| start + i * step).collect()
}

fn specials() -> Vec<f64> {
    vec![
        f64::NAN,
        -f64::NAN,
        f64::from_bits(STALE_NAN_BITS),
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::from_bits(0xfff0_0000_0000_0001), // negative signalling NaN
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1), // smallest subnormal
        -f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1e300,
        -1e-300,
        0.1 + 0.2,
        9007199254740993.0,
        1.5e20,
        123.45,
    ]
}

#[test]
fn codec_empty_and_single() {
    roundtrip_all(&[], &[]);
    assert_eq!(encode(&[], &[]), (CODEC_EMPTY, Vec::new()));
    roundtrip_all(&[0], &[0.0]);
    roundtrip_all(&[i64::MIN], &[f64::from_bits(STALE_NAN_BITS)]);
    roundtrip_all(&[i64::MAX], &[-0.0]);
    roundtrip_all(&[1_700_000_000_000], &[42.5]);
    for s in specials() {
        roundtrip_all(&[-5], &[s]);
    }
}

#[test]
fn codec_special_floats() {
    let sp = specials();
    let ts = regular_ts(sp.len(), 1_000, 10_000);
    roundtrip_all(&ts, &sp);
    // specials embedded in realistic decimal data (exceptions path), short and long runs
    for n in [10usize, 120, 700, 3000] {
        let ts = regular_ts(n, 1_700_000_000_000, 10_000);
        let mut vals: Vec<f64> = (0..n).map(|i| ((i * 37) % 10_000) as f64 / 100.0).collect();
        for (j, s) in sp.iter().enumerate() {
            vals[(j * 7919) % n] = *s;
        }
        vals[n - 1] = f64::from_bits(STALE_NAN_BITS);
        roundtrip_all(&ts, &vals);
        // all NaN payloads / all stale
        let stale = vec![f64::from_bits(STALE_NAN_BITS); n];
        roundtrip_all(&ts, &stale);
        let neg_zero = vec![-0.0; n];
        roundtrip_all(&ts, &neg_zero);
    }
}

#[test]
fn codec_extreme_timestamps() {
    let cases: Vec<Vec<i64>> = vec![
        vec![i64::MIN, i64::MAX],
        vec![i64::MIN, i64::MIN + 1, 0, i64::MAX - 1, i64::MAX],
        vec![i64::MIN, -1, 0, 1, i64::MAX],
        (0..1000).map(|i| i64::MIN + i * 3).collect(),
        (0..1000).map(|i| i64::MAX - 5000 + i * 5).collect(),
        (0..600).map(|i| -1_000_000 + i * 1_000).collect(),
        vec![-3, -2, -1],
    ];
    for ts in cases {
        let vals: Vec<f64> = (0..ts.len()).map(|i| i as f64 * 0.5).collect();
        roundtrip_all(&ts, &vals);
    }
    // huge, random gaps
    let mut rng = StdRng::seed_from_u64(11);
    for n in [2usize, 3, 64, 513, 2000] {
        let mut ts: Vec<i64> = (0..n).map(|_| rng.gen()).collect();
        ts.sort_unstable();
        ts.dedup();
        let vals: Vec<f64> = ts.iter().map(|_| rng.gen()).collect();
        roundtrip_all(&ts, &vals);
    }
}

#[test]
fn codec_random_and_integer_values() {
    let mut rng = StdRng::seed_from_u64(42);
    for &n in &[2usize, 3, 63, 64, 65, 120, 511, 512, 720, 2049] {
        let ts = regular_ts(n, 1_700_000_000_000, 10_000);
        // uniformly random bit patterns (includes NaNs with payloads)
        let bits: Vec<f64> = (0..n).map(|_| f64::from_bits(rng.gen())).collect();
        roundtrip_all(&ts, &bits);
        // random full-precision floats
        let f: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() * 1000.0 - 500.0).collect();
        roundtrip_all(&ts, &f);
        // integer-valued floats, large and small, incl. beyond 2^53
        let ints: Vec<f64> = (0..n).map(|i| (rng.gen::<i64>() >> (i % 60)) as f64).collect();
        roundtrip_all(&ts, &ints);
        let counters: Vec<f64> =
            (0..n).scan(1e12, |a, _| { *a += rng.gen_range(0..100_000) as f64; Some(*a) }).collect();
        roundtrip_all(&ts, &counters);
        // huge exponents
        let huge: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 0 { 1e300 * rng.gen::<f64>() } else { -1e-300 * (i as f64) })
            .collect();
        roundtrip_all(&ts, &huge);
        // decimals with mixed precision
        let dec: Vec<f64> = (0..n)
            .map(|i| rng.gen_range(-100_000i64..100_000) as f64 / [1.0, 10.0, 100.0, 1000.0][i % 4])
            .collect();
        roundtrip_all(&ts, &dec);
        // constant
        roundtrip_all(&ts, &vec![3.25; n]);
        // jittered timestamps
        let jts: Vec<i64> =
            (0..n as i64).map(|i| 1_700_000_000_000 + i * 10_000 + rng.gen_range(-4..=4)).collect();
        roundtrip_all(&jts, &dec);
    }
}

#[test]
fn codec_realistic_series() {
    let data = devops_dataset(3, 1500, 5);
    for s in &data {
        for n in [1usize, 2, 120, 720, 1500] {
            roundtrip_all(&s.ts[..n], &s.vals[..n]);
        }
    }
}

#[test]
fn codec_decimal_choice() {
    // cpu-like 2-decimal values must use a decimal encoding and be small
    let data = devops_dataset(1, 720, 9);
    let cpu = data.iter().find(|s| s.kind == "cpu").unwrap();
    let (codec, body) = encode(&cpu.ts[..120], &cpu.vals[..120]);
    assert_eq!(codec & 0x0f, VAL_DEC_PACKED, "{}", codec_name(codec));
    assert!(body.len() < 120 * 3, "cpu chunk of 120 points took {} bytes", body.len());
    let (codec, _) = encode(&cpu.ts, &cpu.vals);
    assert_eq!(codec, (TS_PCO << 4) | VAL_DEC_PCO32, "{}", codec_name(codec));
    // mantissas beyond i32 (a byte counter) keep pco i64
    let big: Vec<f64> = (0..cpu.ts.len()).map(|i| 3e9 + (i * 4096) as f64).collect();
    let (codec, _) = encode(&cpu.ts, &big);
    assert_eq!(codec, (TS_PCO << 4) | VAL_DEC_PCO, "{}", codec_name(codec));
    // random floats must not use the decimal path
    let mut rng = StdRng::seed_from_u64(1);
    let f: Vec<f64> = (0..120).map(|_| rng.gen::<f64>()).collect();
    let (codec, _) = encode(&cpu.ts[..120], &f);
    assert_eq!(codec & 0x0f, VAL_GORILLA, "{}", codec_name(codec));
}

#[test]
fn codec_corrupt_input_is_error_not_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    let data = devops_dataset(1, 1200, 3);
    let mut bodies: Vec<(u8, Vec<u8>, usize)> = Vec::new();
    for s in &data {
        for n in [1usize, 5, 120, 600] {
            for ts_enc in [TS_DOD_BITS, TS_PCO] {
                for val_enc in [VAL_GORILLA, VAL_DEC_PACKED, VAL_DEC_PCO, VAL_PCO_F64, VAL_DEC_PCO32] {
                    let (c, b) = encode_with(&s.ts[..n], &s.vals[..n], ts_enc, val_enc);
                    bodies.push((c, b, n));
                }
            }
        }
    }
    let mut t = Vec::new();
    let mut v = Vec::new();
    let mut errors = 0usize;
    for (codec, body, n) in &bodies {
        // every truncation of the body must fail cleanly (never panic)
        for cut in 0..body.len() {
            t.clear();
            v.clear();
            if decode(*codec, &body[..cut], *n, &mut t, &mut v).is_err() {
                errors += 1;
                assert!(t.is_empty() && v.is_empty(), "outputs must be rolled back on error");
            }
        }
        // random byte flips: may decode to other numbers, but must not panic
        for _ in 0..40 {
            let mut g = body.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..g.len());
                g[i] ^= 1 << rng.gen_range(0..8);
            }
            t.clear();
            v.clear();
            match decode(*codec, &g, *n, &mut t, &mut v) {
                Ok(()) => assert_eq!((t.len(), v.len()), (*n, *n)),
                Err(e) => assert_eq!(e.kind, crate::ErrorKind::Corrupt),
            }
        }
        // wrong counts and unknown codecs
        assert!(decode(*codec, body, 0, &mut t, &mut v).is_err());
        assert!(decode(0x77, body, *n, &mut t, &mut v).is_err());
        assert!(decode(0x35, body, *n, &mut t, &mut v).is_err());
    }
    assert!(errors > 0);
    assert!(decode(CODEC_RAW, &[0u8; 15], 1, &mut t, &mut v).is_err());
    assert!(decode(CODEC_EMPTY, &[1u8], 0, &mut t, &mut v).is_err());
    assert!(decode(CODEC_EMPTY, &[], 1, &mut t, &mut v).is_err());
}

#[test]
fn codec_shared_timestamps_body() {
    let data = devops_dataset(1, 1200, 8);
    let mut rng = StdRng::seed_from_u64(3);
    let mut cases: Vec<Vec<f64>> = data.iter().map(|s| s.vals.clone()).collect();
    cases.push(specials());
    cases.push((0..700).map(|_| f64::from_bits(rng.gen())).collect());
    cases.push(vec![f64::from_bits(STALE_NAN_BITS)]);
    cases.push(vec![-0.0; 3]);
    for vals in &cases {
        for n in [1usize, 2, 120, vals.len()] {
            let v = &vals[..n.min(vals.len())];
            for back in [1u64, 300, u64::MAX] {
                let (codec, body) = encode_shared_ts(back, v).unwrap();
                assert_eq!(codec >> 4, TS_SHARED, "{}", codec_name(codec));
                assert_eq!(shared_ts_ref(codec, &body).unwrap(), Some(back));
                let mut out = vec![1.0];
                decode_values(codec, &body, v.len(), &mut out).unwrap();
                assert_eq!(out.len(), v.len() + 1);
                for (a, b) in out[1..].iter().zip(v) {
                    assert_eq!(a.to_bits(), b.to_bits());
                }
                // plain decode and decode_ts refuse it: the timestamps are elsewhere
                let (mut t, mut o) = (Vec::new(), Vec::new());
                assert_eq!(decode(codec, &body, v.len(), &mut t, &mut o).unwrap_err().kind, crate::ErrorKind::Corrupt);
                assert!(decode_ts(codec, &body, v.len(), &mut t).is_err());
                assert!(t.is_empty() && o.is_empty());
                // truncations and flips: Err or same-length output, never a panic
                for cut in 0..body.len() {
                    let mut o = vec![2.0];
                    let r1 = shared_ts_ref(codec, &body[..cut]);
                    if decode_values(codec, &body[..cut], v.len(), &mut o).is_err() {
                        assert_eq!(o.len(), 1);
                    }
                    let _ = r1;
                }
                let mut g = body.clone();
                for _ in 0..20 {
                    let i = rng.gen_range(0..g.len());
                    g[i] ^= 1 << rng.gen_range(0..8);
                    let mut o = Vec::new();
                    if decode_values(codec, &g, v.len(), &mut o).is_ok() {
                        assert_eq!(o.len(), v.len());
                    }
                    let _ = shared_ts_ref(codec, &g);
                }
            }
        }
    }
    assert!(encode_shared_ts(0, &[1.0]).is_none());
    assert!(encode_shared_ts(5, &[]).is_none());
    // decode_ts / decode_values split every ordinary body exactly like decode
    for s in &data {
        for n in [1usize, 7, 600] {
            for ts_enc in [TS_DOD_BITS, TS_PCO] {
                for val_enc in [VAL_GORILLA, VAL_DEC_PACKED, VAL_DEC_PCO, VAL_PCO_F64, VAL_DEC_PCO32] {
                    let (c, b) = encode_with(&s.ts[..n], &s.vals[..n], ts_enc, val_enc);
                    assert_eq!(shared_ts_ref(c, &b).unwrap(), None);
                    let (mut t, mut v) = (Vec::new(), Vec::new());
                    decode_ts(c, &b, n, &mut t).unwrap();
                    decode_values(c, &b, n, &mut v).unwrap();
                    assert_eq!(t, &s.ts[..n]);
                    assert!(v.iter().zip(&s.vals[..n]).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            }
        }
    }
}

/// `BitReader::get_many` reads what `get` reads, for every width, block length and
/// position (the last values of a stream take the short-load path).
#[test]
fn codec_bit_reader_get_many_matches_get() {
    use super::bits::{BitReader, BitWriter};
    let mut rng = StdRng::seed_from_u64(7);
    for width in 0..=64u32 {
        for n in [1usize, 5, 63, 64] {
            let vals: Vec<u64> = (0..3 * n)
                .map(|_| if width == 0 { 0 } else { rng.gen::<u64>() >> (64 - width) })
                .collect();
            let lead = rng.gen_range(0..13u32); // a misaligned start
            let mut bytes = vec![];
            let mut w = BitWriter::new(&mut bytes);
            w.put(0x15a5, lead);
            for &v in &vals {
                w.put(v, width);
            }
            w.finish();
            let mut r = BitReader::new(&bytes);
            r.get(lead).unwrap();
            let mut got = vec![0u64; vals.len()];
            for block in got.chunks_mut(n) {
                r.get_many(width, block).unwrap();
            }
            assert_eq!(got, vals, "width {width}, blocks of {n}");
        }
    }
    // past the end: an error, not a panic
    let mut r = BitReader::new(&[0xff, 0x01]);
    assert!(r.get_many(9, &mut [0u64; 2]).is_err());
}

/// Mantissas that fit an i32 are stored as pco i32 (V = 5): the same values bit for bit
/// as the pco i64 form (V = 3, still read), never larger on these data, and i32 bounds
/// (mantissas of exactly i32::MIN / i32::MAX) stay narrow while one past them goes wide.
#[test]
fn codec_narrow_decimal_mantissas_match_wide() {
    let data = devops_dataset(4, 2160, 11);
    let mut narrow_bytes = 0usize;
    let mut wide_bytes = 0usize;
    for s in &data {
        let (codec, body) = encode(&s.ts, &s.vals);
        if codec & 0x0f != VAL_DEC_PCO32 {
            continue;
        }
        // the same section written wide: swap the pco i32 stream for a pco i64 one
        let (_, vsec) = split_columnar(&body).unwrap();
        let (mut v32, mut v64) = (Vec::new(), Vec::new());
        decode_values(codec, &body, s.ts.len(), &mut v32).unwrap();
        let dec = decimal::to_decimal(&s.vals, decimal::choose_scale(&s.vals));
        let mut wide_sec = vsec[..vsec.len() - pcodec_len32(vsec, &dec.mantissas)].to_vec();
        wide_sec.extend_from_slice(&pcodec::pco_compress(&dec.mantissas, pco::DeltaSpec::TryConsecutive(1)).unwrap());
        decimal::decode_decimal(&wide_sec, VAL_DEC_PCO, s.ts.len(), &mut v64).unwrap();
        assert!(v32.iter().zip(&v64).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", s.kind);
        assert!(v32.iter().zip(&s.vals).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", s.kind);
        narrow_bytes += vsec.len();
        wide_bytes += wide_sec.len();
    }
    assert!(narrow_bytes > 0);
    assert!(narrow_bytes <= wide_bytes, "i32 {narrow_bytes} B vs i64 {wide_bytes} B");
    let ts = regular_ts(600, 1_700_000_000_000, 10_000);
    for (m, expect) in [(i32::MAX as f64, VAL_DEC_PCO32), (i32::MIN as f64, VAL_DEC_PCO32), (i32::MAX as f64 + 1.0, VAL_DEC_PCO)] {
        let vals: Vec<f64> = (0..600).map(|i| if i % 2 == 0 { m } else { 0.0 }).collect();
        let (codec, body) = encode(&ts, &vals);
        assert_eq!(codec & 0x0f, expect, "{m}: {}", codec_name(codec));
        roundtrip_with(&ts, &vals, codec, &body);
    }
}

/// The byte length of the pco i32 stream at the end of a V = 5 value section.
fn pcodec_len32(vsec: &[u8], mantissas: &[i64]) -> usize {
    let narrow: Vec<i32> = mantissas.iter().map(|&m| m as i32).collect();
    let stream = pcodec::pco_compress(&narrow, pco::DeltaSpec::TryConsecutive(1)).unwrap();
    assert!(vsec.ends_with(&stream));
    stream.len()
}
