//! Pre-resolved tuple batches `[{id, value} | {id, value, ts}]`: decoding into
//! columns with raw `enif_*` calls (the hot loop of `write_resolved`).

use rustler::sys::{
    enif_get_double, enif_get_int64, enif_get_list_cell, enif_get_tuple, enif_get_uint64, ErlNifEnv, ErlNifTerm,
};
use rustler::{Env, Error as NifError, Term};
use timeless_engine::SeriesId;

use crate::convert::{bad_input, decode_timestamp, decode_value};

const RESOLVED_SHAPE: &str = "expected {series_id, value} or {series_id, value, timestamp}";

/// Decoded columns of a pre-resolved batch.
#[derive(Default)]
pub struct Columns {
    pub ids: Vec<SeriesId>,
    pub ts: Vec<i64>,
    pub vals: Vec<f64>,
}

/// Buffers kept for reuse: fresh ones for every batch cost page faults (and an
/// mmap/munmap pair once they pass glibc's mmap threshold) on every call.
static POOL: std::sync::Mutex<Vec<Columns>> = std::sync::Mutex::new(Vec::new());
/// Buffers kept at most, and the largest kept (entries).
const POOL_KEEP: usize = 4;
const POOL_MAX_ENTRIES: usize = 1 << 18;

impl Columns {
    /// Empty columns, reusing a pooled buffer if there is one.
    pub fn take() -> Columns {
        POOL.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default()
    }

    /// Give the buffers back for reuse (dropped if large or the pool is full).
    pub fn give_back(mut self) {
        if self.ids.capacity() > POOL_MAX_ENTRIES {
            return;
        }
        self.ids.clear();
        self.ts.clear();
        self.vals.clear();
        if let Ok(mut p) = POOL.lock() {
            if p.len() < POOL_KEEP {
                p.push(self);
            }
        }
    }
}

/// Entries fetched per round: the list cells are walked first (prefetching each
/// entry's tuple), then the tuples are read (prefetching each value's box), then the
/// values; the loads of a round overlap instead of each waiting on the previous.
const ROUND: usize = 32;

#[inline(always)]
fn prefetch_boxed(term: ErlNifTerm) {
    // A boxed term (tuple, float, bignum) is a pointer tagged 0b10 in its low bits;
    // prefetching is only a hint (no fault on any address), so a term of another kind
    // costs nothing but the instruction.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: ErlNifTerm is a transparent machine word.
        let word: usize = std::mem::transmute(term);
        if word & 0b11 == 0b10 {
            _mm_prefetch::<_MM_HINT_T0>((word & !0b11) as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = term;
}

/// How a slice ended.
pub enum SliceEnd {
    /// The whole list is decoded.
    Done,
    /// `max` entries decoded; the rest of the list.
    More(ErlNifTerm),
}

/// One entry through the documented `enif_*` calls: every shape, special value and
/// error (the slow path of `decode_slice`, and all of it when the fast reader is off).
#[inline(never)]
fn entry_enif(env: Env, head: ErlNifTerm, i: usize, unit_ms: i64, now: i64) -> Result<(u64, f64, i64), NifError> {
    let e = env.as_c_arg();
    let (mut arity, mut array): (i32, *const ErlNifTerm) = (0, std::ptr::null());
    // SAFETY: terms of this env; the enif calls only read them, and `array` holds
    // `arity` terms after a successful enif_get_tuple.
    unsafe {
        if enif_get_tuple(e, head, &mut arity, &mut array) != 1 || !(arity == 2 || arity == 3) {
            return Err(bad_input(format!("entry {i}: {RESOLVED_SHAPE}")));
        }
        let el = std::slice::from_raw_parts(array, arity as usize);
        let mut id = 0u64;
        if enif_get_uint64(e, el[0], &mut id) != 1 {
            return Err(bad_input(format!("entry {i}: series id must be a non-negative integer")));
        }
        let mut v = 0f64;
        if enif_get_double(e, el[1], &mut v) != 1 {
            let mut iv = 0i64;
            v = if enif_get_int64(e, el[1], &mut iv) == 1 {
                iv as f64
            } else {
                decode_value(Term::new(env, el[1])).ok_or_else(|| bad_input(format!("entry {i}: value is not a number")))?
            };
        }
        let t = if arity == 3 {
            let mut raw = 0i64;
            if enif_get_int64(e, el[2], &mut raw) == 1 {
                raw.checked_mul(unit_ms).ok_or_else(|| bad_input(format!("entry {i}: timestamp out of range")))?
            } else {
                decode_timestamp(Term::new(env, el[2]), unit_ms).map_err(|m| bad_input(format!("entry {i}: {m}")))?
            }
        } else {
            now
        };
        Ok((id, v, t))
    }
}

/// Direct reads of the common entry shape `{small_int, float | small_int, small_int}`
/// (OTP's 64-bit term layout: list cells tagged 0b01, boxed terms 0b10, small
/// integers 0b1111, a tuple's header `arity << 6`, a float's header 0x58). Only used
/// once `fast_layout_ok` has checked that layout against terms made by `enif_make_*`
/// in this VM; anything else goes through `entry_enif`.
mod raw {
    pub const SMALL_MASK: usize = 0xF;
    pub const SMALL_TAG: usize = 0xF;
    pub const PRIMARY_MASK: usize = 0x3;
    pub const LIST_TAG: usize = 0x1;
    pub const BOXED_TAG: usize = 0x2;
    pub const TUPLE2: usize = 2 << 6;
    pub const TUPLE3: usize = 3 << 6;
    pub const FLOAT_HEADER: usize = (1 << 6) | (0x6 << 2);

    #[inline(always)]
    pub fn word(t: super::ErlNifTerm) -> usize {
        // SAFETY: ErlNifTerm is a transparent machine word.
        unsafe { std::mem::transmute(t) }
    }

    #[inline(always)]
    pub fn small(w: usize) -> Option<i64> {
        (w & SMALL_MASK == SMALL_TAG).then_some((w as i64) >> 4)
    }

    /// The words of a boxed term (header first).
    #[inline(always)]
    pub unsafe fn boxed(w: usize) -> *const usize {
        (w - BOXED_TAG) as *const usize
    }

    /// A float or small integer value.
    #[inline(always)]
    pub unsafe fn number(w: usize) -> Option<f64> {
        if let Some(i) = small(w) {
            return Some(i as f64);
        }
        if w & PRIMARY_MASK == BOXED_TAG {
            let p = boxed(w);
            if *p == FLOAT_HEADER {
                return Some(f64::from_bits(*p.add(1) as u64));
            }
        }
        None
    }
}

/// 0 = not checked yet, 1 = the direct reader agrees with this VM, 2 = it does not.
static FAST_LAYOUT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether `raw` reads this VM's terms right: checked once against terms made with
/// `enif_make_*` (a tuple of each accepted shape in a list cell, and values the
/// direct reader must pass to the slow path).
pub fn fast_layout_ok(env: Env) -> bool {
    use rustler::sys::{enif_make_atom_len, enif_make_double, enif_make_int64, enif_make_list_cell, enif_make_tuple_from_array, enif_make_uint64};
    use std::sync::atomic::Ordering;
    match FAST_LAYOUT.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let e = env.as_c_arg();
    // SAFETY: making terms in this env and reading them back.
    let ok = unsafe {
        let nil = rustler::sys::enif_make_list_from_array(e, std::ptr::null(), 0);
        let f = enif_make_double(e, -2.5);
        let id = enif_make_int64(e, 12345);
        let ts = enif_make_int64(e, -1_700_000_000_123);
        let t3 = enif_make_tuple_from_array(e, [id, f, ts].as_ptr(), 3);
        let t2 = enif_make_tuple_from_array(e, [id, ts].as_ptr(), 2);
        let cell = enif_make_list_cell(e, t3, nil);
        let big = enif_make_uint64(e, u64::MAX);
        let atom = enif_make_atom_len(e, c"nan".as_ptr(), 3);
        let (cw, t3w, t2w) = (raw::word(cell), raw::word(t3), raw::word(t2));
        let cell_ok = cw & raw::PRIMARY_MASK == raw::LIST_TAG && {
            let p = (cw - raw::LIST_TAG) as *const usize;
            *p == t3w && *p.add(1) == raw::word(nil)
        };
        let t3_ok = t3w & raw::PRIMARY_MASK == raw::BOXED_TAG && {
            let p = raw::boxed(t3w);
            *p == raw::TUPLE3
                && raw::small(*p.add(1)) == Some(12345)
                && raw::number(*p.add(2)) == Some(-2.5)
                && raw::small(*p.add(3)) == Some(-1_700_000_000_123)
        };
        let t2_ok = t2w & raw::PRIMARY_MASK == raw::BOXED_TAG && *raw::boxed(t2w) == raw::TUPLE2;
        let others_ok = raw::number(raw::word(big)).is_none()
            && raw::small(raw::word(big)).is_none()
            && raw::number(raw::word(atom)).is_none()
            && raw::word(nil) & raw::PRIMARY_MASK != raw::LIST_TAG
            && raw::word(nil) & raw::PRIMARY_MASK != raw::BOXED_TAG;
        cell_ok && t3_ok && t2_ok && others_ok
    };
    FAST_LAYOUT.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
    ok
}

/// Decode up to `max` entries of `list` into `out`. `first` is the index of the
/// first entry of `list` within the whole batch (for error messages). With `FAST`,
/// the common shape is read directly (see `raw`); `PREFETCH` overlaps the loads of
/// `ROUND` entries.
pub fn decode_slice<const FAST: bool, const PREFETCH: bool>(
    env: Env,
    list: ErlNifTerm,
    first: usize,
    max: usize,
    unit_ms: i64,
    now: i64,
    out: &mut Columns,
) -> Result<SliceEnd, NifError> {
    let e: *mut ErlNifEnv = env.as_c_arg();
    let mut rest = list;
    let mut done = 0usize;
    let mut heads: [ErlNifTerm; ROUND] = [ErlNifTerm::default(); ROUND];
    let mut tail = ErlNifTerm::default();
    let fast = FAST && fast_layout_ok(env);
    loop {
        // 1. Walk up to ROUND cells.
        let want = ROUND.min(max - done);
        let mut k = 0;
        if fast {
            while k < want {
                let w = raw::word(rest);
                if w & raw::PRIMARY_MASK != raw::LIST_TAG {
                    break;
                }
                // SAFETY: a list cell of this env: two words, head then tail.
                unsafe {
                    let p = (w - raw::LIST_TAG) as *const ErlNifTerm;
                    heads[k] = *p;
                    rest = *p.add(1);
                }
                if PREFETCH {
                    prefetch_boxed(heads[k]);
                }
                k += 1;
            }
        } else {
            // SAFETY: terms of this env; enif_get_list_cell only reads them.
            while k < want && unsafe { enif_get_list_cell(e, rest, &mut heads[k], &mut tail) } == 1 {
                if PREFETCH {
                    prefetch_boxed(heads[k]);
                }
                rest = tail;
                k += 1;
            }
        }
        // 2. Prefetch each value's box.
        if PREFETCH && fast {
            for h in &heads[..k] {
                let w = raw::word(*h);
                if w & raw::PRIMARY_MASK == raw::BOXED_TAG {
                    // SAFETY: a boxed term of this env; a tuple of arity >= 2 has word 2.
                    unsafe {
                        let p = raw::boxed(w);
                        let hdr = *p;
                        if hdr == raw::TUPLE3 || hdr == raw::TUPLE2 {
                            prefetch_boxed(*(p.add(2) as *const ErlNifTerm));
                        }
                    }
                }
            }
        }
        // 3. Decode.
        for (j, &h) in heads[..k].iter().enumerate() {
            let mut quick = None;
            if fast {
                let w = raw::word(h);
                if w & raw::PRIMARY_MASK == raw::BOXED_TAG {
                    // SAFETY: as above; the header gives the tuple's arity.
                    unsafe {
                        let p = raw::boxed(w);
                        if *p == raw::TUPLE3 {
                            if let (Some(id), Some(v), Some(t)) = (raw::small(*p.add(1)), raw::number(*p.add(2)), raw::small(*p.add(3))) {
                                if id >= 0 {
                                    if let Some(t) = t.checked_mul(unit_ms) {
                                        quick = Some((id as u64, v, t));
                                    }
                                }
                            }
                        } else if *p == raw::TUPLE2 {
                            if let (Some(id), Some(v)) = (raw::small(*p.add(1)), raw::number(*p.add(2))) {
                                if id >= 0 {
                                    quick = Some((id as u64, v, now));
                                }
                            }
                        }
                    }
                }
            }
            let (id, v, t) = match quick {
                Some(x) => x,
                None => entry_enif(env, h, first + done + j, unit_ms, now)?,
            };
            out.ids.push(id);
            out.vals.push(v);
            out.ts.push(t);
        }
        done += k;
        if k < want {
            // The list ended (or is improper).
            // SAFETY: `rest` is a term of this env.
            return if unsafe { Term::new(env, rest) }.is_empty_list() {
                Ok(SliceEnd::Done)
            } else {
                Err(bad_input("entries must be a list"))
            };
        }
        if done == max {
            return Ok(SliceEnd::More(rest));
        }
    }
}

// ---------------------------------------------------------------- experiments (temporary)

use std::sync::Mutex;
use std::time::Instant;

use rustler::codegen_runtime::handle_nif_result;
use rustler::sys::{enif_consume_timeslice, enif_schedule_nif, ERL_NIF_DIRTY_JOB_CPU_BOUND};
use rustler::{Atom, Encoder, NifResult, ResourceArc};
use timeless_engine::store::now_ms;

use crate::convert::engine_err;
use crate::{atoms, StoreRes};

fn old_decode(entries: Term, unit_ms: i64) -> NifResult<Columns> {
    let (ids, ts, vals) = crate::write::decode_resolved(entries, unit_ms)?;
    Ok(Columns { ids, ts, vals })
}

fn raw_decode(env: Env, entries: Term, unit_ms: i64) -> NifResult<Columns> {
    raw_decode_v::<true, true>(env, entries, unit_ms)
}

fn raw_decode_v<const F: bool, const P: bool>(env: Env, entries: Term, unit_ms: i64) -> NifResult<Columns> {
    let mut c = Columns::take();
    match decode_slice::<F, P>(env, entries.as_c_arg(), 0, usize::MAX, unit_ms, now_ms(), &mut c)? {
        SliceEnd::Done => Ok(c),
        SliceEnd::More(_) => unreachable!(),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn exp_decode_old_dirty(entries: Term, unit_ms: i64) -> NifResult<usize> {
    Ok(old_decode(entries, unit_ms)?.ids.len())
}
#[rustler::nif]
fn exp_decode_old_normal(entries: Term, unit_ms: i64) -> NifResult<usize> {
    Ok(old_decode(entries, unit_ms)?.ids.len())
}
#[rustler::nif(schedule = "DirtyCpu")]
fn exp_decode_raw_dirty<'a>(env: Env<'a>, entries: Term<'a>, unit_ms: i64) -> NifResult<usize> {
    let c = raw_decode(env, entries, unit_ms)?;
    let n = c.ids.len();
    c.give_back();
    Ok(n)
}
#[rustler::nif]
fn exp_decode_raw_normal<'a>(env: Env<'a>, entries: Term<'a>, unit_ms: i64) -> NifResult<usize> {
    let c = raw_decode(env, entries, unit_ms)?;
    let n = c.ids.len();
    c.give_back();
    Ok(n)
}
#[rustler::nif(schedule = "DirtyCpu")]
fn exp_write_raw_dirty<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, entries: Term<'a>, unit_ms: i64) -> NifResult<Atom> {
    let c = raw_decode(env, entries, unit_ms)?;
    let r = res.store.write(&c.ids, &c.ts, &c.vals).map_err(engine_err);
    c.give_back();
    r?;
    Ok(atoms::ok())
}
#[rustler::nif]
fn exp_write_raw_normal<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, entries: Term<'a>, unit_ms: i64) -> NifResult<Atom> {
    let c = raw_decode(env, entries, unit_ms)?;
    let r = res.store.write(&c.ids, &c.ts, &c.vals).map_err(engine_err);
    c.give_back();
    r?;
    Ok(atoms::ok())
}

/// Columns decoded on a normal scheduler, handed to the dirty write.
pub struct DecodedRes {
    cols: Mutex<Option<Columns>>,
}

#[rustler::resource_impl]
impl rustler::Resource for DecodedRes {}

unsafe extern "C" fn exp_dirty_write(env: *mut ErlNifEnv, argc: i32, argv: *const ErlNifTerm) -> ErlNifTerm {
    let marker = ();
    let env = Env::new(&marker, env);
    let args = std::slice::from_raw_parts(argv, argc as usize);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> NifResult<Atom> {
        let store: ResourceArc<StoreRes> = Term::new(env, args[0]).decode()?;
        let dec: ResourceArc<DecodedRes> = Term::new(env, args[1]).decode()?;
        let c = dec.cols.lock().unwrap().take().ok_or(NifError::BadArg)?;
        let r = store.store.write(&c.ids, &c.ts, &c.vals).map_err(engine_err);
        c.give_back();
        r?;
        Ok(atoms::ok())
    }));
    handle_nif_result(r, env).apply(env)
}

/// Normal-scheduler decode (whole list, no yielding: experiment), then the write on a
/// dirty scheduler through enif_schedule_nif.
#[rustler::nif]
fn exp_write_split<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, entries: Term<'a>, unit_ms: i64) -> NifResult<Term<'a>> {
    let t0 = Instant::now();
    let c = raw_decode(env, entries, unit_ms)?;
    let pct = (t0.elapsed().as_micros() / 10).clamp(1, 100) as i32;
    unsafe { enif_consume_timeslice(env.as_c_arg(), pct) };
    let dec = ResourceArc::new(DecodedRes { cols: Mutex::new(Some(c)) });
    let args = [res.encode(env).as_c_arg(), dec.encode(env).as_c_arg()];
    let t = unsafe {
        enif_schedule_nif(
            env.as_c_arg(),
            c"write_resolved".as_ptr(),
            ERL_NIF_DIRTY_JOB_CPU_BOUND as i32,
            exp_dirty_write,
            2,
            args.as_ptr(),
        )
    };
    Ok(unsafe { Term::new(env, t) })
}

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn decode_cpu(env: Env, entries: Term, variant: u32) -> NifResult<(u64, usize)> {
    let t0 = cpu_ns();
    let c = match variant {
        0 => old_decode(entries, 1)?,
        1 => raw_decode_v::<false, false>(env, entries, 1)?,
        2 => raw_decode_v::<false, true>(env, entries, 1)?,
        3 => raw_decode_v::<true, false>(env, entries, 1)?,
        _ => raw_decode_v::<true, true>(env, entries, 1)?,
    };
    let t1 = cpu_ns();
    let n = c.ids.len();
    let sum: f64 = c.vals.iter().sum::<f64>() + c.ids.iter().sum::<u64>() as f64 + c.ts.iter().map(|&t| t as f64).sum::<f64>();
    c.give_back();
    Ok((t1 - t0, n + (sum == 0.12345) as usize))
}
#[rustler::nif(schedule = "DirtyCpu")]
fn exp_decode_cpu_dirty<'a>(env: Env<'a>, entries: Term<'a>, variant: u32) -> NifResult<(u64, usize)> {
    decode_cpu(env, entries, variant)
}
#[rustler::nif]
fn exp_decode_cpu_normal<'a>(env: Env<'a>, entries: Term<'a>, variant: u32) -> NifResult<(u64, usize)> {
    decode_cpu(env, entries, variant)
}
