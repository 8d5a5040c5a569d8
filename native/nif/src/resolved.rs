//! `write_resolved` with a list of `{id, value}` / `{id, value, ts}` tuples.
//!
//! The list is decoded into columns (the common entry shape read directly from the
//! terms, anything else through `enif_*` calls) and written on the caller's normal
//! scheduler, without the hand-off to a dirty scheduler and back (which cost more
//! than the decoding, and much more on a busy machine; a cold cache on the dirty
//! scheduler's core was not measurable). Decoding and writing go in slices; after each the
//! call reports its time with `enif_consume_timeslice` and yields through
//! `enif_schedule_nif` when the timeslice is used up. See
//! bench/results/tuple-write-notes-2026-11-26.md for the measurements behind this.

use std::sync::Mutex;
use std::time::Instant;

use rustler::codegen_runtime::handle_nif_result;
use rustler::sys::{
    enif_consume_timeslice, enif_get_double, enif_get_int64, enif_get_list_cell, enif_get_tuple, enif_get_uint64,
    enif_schedule_nif, ErlNifEnv, ErlNifTerm, ERL_NIF_DIRTY_JOB_IO_BOUND, ERL_NIF_NORMAL_JOB,
};
use rustler::{Atom, Encoder, Env, Error as NifError, NifResult, ResourceArc, Term};
use timeless_engine::store::now_ms;
use timeless_engine::wal::FsyncPolicy;
use timeless_engine::SeriesId;

use crate::convert::{bad_input, decode_timestamp, decode_value, engine_err};
use crate::{atoms, StoreRes};

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
static POOL: Mutex<Vec<Columns>> = Mutex::new(Vec::new());
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

/// Entries read per round: the list cells first, then their tuples.
const ROUND: usize = 32;

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
/// first entry of `list` within the whole batch (for error messages). The common
/// shape is read directly (see `raw`) if `fast_layout_ok`; anything else, and every
/// entry on a VM whose layout differs, goes through `entry_enif`.
pub fn decode_slice(
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
    let fast = fast_layout_ok(env);
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
                k += 1;
            }
        } else {
            // SAFETY: terms of this env; enif_get_list_cell only reads them.
            while k < want && unsafe { enif_get_list_cell(e, rest, &mut heads[k], &mut tail) } == 1 {
                rest = tail;
                k += 1;
            }
        }
        // 2. Decode.
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

// ---------------------------------------------------------------- the NIF

/// Entries decoded per step, and points written per engine call, between two reports
/// to the scheduler (each a few tens to a few hundred microseconds).
const DECODE_SLICE: usize = 4096;
const WRITE_SLICE: usize = 2048;

/// A batch between two steps of `write_resolved` (it yielded).
pub struct PendingRes {
    state: Mutex<Option<Pending>>,
}

#[rustler::resource_impl]
impl rustler::Resource for PendingRes {}

struct Pending {
    cols: Columns,
    unit_ms: i64,
    now: i64,
    /// Every entry is decoded and the ids checked.
    decoded: bool,
    /// Points written so far.
    written: usize,
}

enum Next {
    Done,
    /// The timeslice is used up: continue later on a normal scheduler.
    Yield(ErlNifTerm),
    /// Write the rest on a dirty I/O scheduler (the WAL syncs on every append).
    DirtyIo,
}

/// Time spent since the last report, told to the scheduler; true if the timeslice is used up.
struct Clock(Instant);

impl Clock {
    fn used_up(&mut self, env: Env) -> bool {
        let now = Instant::now();
        let pct = ((now - self.0).as_micros() / 10).clamp(1, 100) as i32;
        self.0 = now;
        // SAFETY: a process-bound env of a NIF call.
        unsafe { enif_consume_timeslice(env.as_c_arg(), pct) == 1 }
    }
}

/// Decode what is left of the batch, check it, and write it, slice by slice.
fn advance(env: Env, store: &StoreRes, p: &mut Pending, mut rest: ErlNifTerm) -> NifResult<Next> {
    let mut clock = Clock(Instant::now());
    while !p.decoded {
        let first = p.cols.ids.len();
        match decode_slice(env, rest, first, DECODE_SLICE, p.unit_ms, p.now, &mut p.cols)? {
            SliceEnd::Done => {
                p.decoded = true;
                store.store.check_ids(&p.cols.ids).map_err(engine_err)?;
                if matches!(store.store.config().fsync, FsyncPolicy::Always) {
                    return Ok(Next::DirtyIo);
                }
            }
            SliceEnd::More(r) => rest = r,
        }
        if clock.used_up(env) {
            return Ok(Next::Yield(rest));
        }
    }
    let n = p.cols.ids.len();
    while p.written < n {
        let (a, b) = (p.written, (p.written + WRITE_SLICE).min(n));
        store.store.write_unchecked(&p.cols.ids[a..b], &p.cols.ts[a..b], &p.cols.vals[a..b]).map_err(engine_err)?;
        p.written = b;
        if b < n && clock.used_up(env) {
            return Ok(Next::Yield(rest));
        }
    }
    Ok(Next::Done)
}

/// Run `advance` and act on its answer: `:ok`, an error, or the next step scheduled.
fn run<'a>(env: Env<'a>, store: ResourceArc<StoreRes>, mut p: Pending, res: Option<ResourceArc<PendingRes>>, rest: ErlNifTerm) -> NifResult<Term<'a>> {
    let next = advance(env, &store, &mut p, rest);
    let (flags, fun, rest): (i32, Continuation, ErlNifTerm) = match next {
        Ok(Next::Done) => {
            p.cols.give_back();
            return Ok(atoms::ok().encode(env));
        }
        Err(e) => {
            p.cols.give_back();
            return Err(e);
        }
        Ok(Next::Yield(rest)) => (ERL_NIF_NORMAL_JOB as i32, resolved_step, rest),
        Ok(Next::DirtyIo) => (ERL_NIF_DIRTY_JOB_IO_BOUND as i32, resolved_dirty, rest),
    };
    let res = match res {
        Some(res) => {
            *res.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            res
        }
        None => ResourceArc::new(PendingRes { state: Mutex::new(Some(p)) }),
    };
    let args = [store.encode(env).as_c_arg(), res.encode(env).as_c_arg(), rest];
    // SAFETY: schedules `fun` with terms of this env as its arguments.
    let t = unsafe { enif_schedule_nif(env.as_c_arg(), c"write_resolved".as_ptr(), flags, fun, 3, args.as_ptr()) };
    Ok(unsafe { Term::new(env, t) })
}

type Continuation = unsafe extern "C" fn(*mut ErlNifEnv, i32, *const ErlNifTerm) -> ErlNifTerm;

/// The arguments of a continuation: the store, the pending batch (taken out of its
/// resource), and the rest of the list.
fn continuation_args<'a>(env: Env<'a>, args: &[ErlNifTerm]) -> NifResult<(ResourceArc<StoreRes>, ResourceArc<PendingRes>, Pending, ErlNifTerm)> {
    let store: ResourceArc<StoreRes> = unsafe { Term::new(env, args[0]) }.decode()?;
    let res: ResourceArc<PendingRes> = unsafe { Term::new(env, args[1]) }.decode()?;
    let p = res.state.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or(NifError::BadArg)?;
    Ok((store, res, p, args[2]))
}

/// A later step of `write_resolved` on a normal scheduler.
unsafe extern "C" fn resolved_step(env: *mut ErlNifEnv, argc: i32, argv: *const ErlNifTerm) -> ErlNifTerm {
    let marker = ();
    let env = Env::new(&marker, env);
    let args = std::slice::from_raw_parts(argv, argc as usize);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (store, res, p, rest) = continuation_args(env, args)?;
        run(env, store, p, Some(res), rest)
    }));
    handle_nif_result(r, env).apply(env)
}

/// The write of a decoded batch on a dirty I/O scheduler (fsync: :always).
unsafe extern "C" fn resolved_dirty(env: *mut ErlNifEnv, argc: i32, argv: *const ErlNifTerm) -> ErlNifTerm {
    let marker = ();
    let env = Env::new(&marker, env);
    let args = std::slice::from_raw_parts(argv, argc as usize);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> NifResult<Atom> {
        let (store, _res, p, _) = continuation_args(env, args)?;
        let w = p.written;
        let r = store.store.write_unchecked(&p.cols.ids[w..], &p.cols.ts[w..], &p.cols.vals[w..]).map_err(engine_err);
        p.cols.give_back();
        r.map(|_| atoms::ok())
    }));
    handle_nif_result(r, env).apply(env)
}

/// `write_resolved(store, [{id, value} | {id, value, ts}], unit_ms)`
///
/// On a normal scheduler: the list is decoded (and the ids checked) whole before
/// anything is written, then written in slices; the call reports its time to the
/// scheduler and yields (continuing where it stopped) when its timeslice is used up,
/// so a batch of any length keeps within about a millisecond per step. With
/// `fsync: :always` the write goes to a dirty I/O scheduler. A batch that yields
/// between its write slices can be seen part-written by readers meanwhile.
#[rustler::nif]
fn write_resolved<'a>(env: Env<'a>, res: ResourceArc<StoreRes>, entries: Term<'a>, unit_ms: i64) -> NifResult<Term<'a>> {
    if !entries.is_list() {
        return Err(bad_input("entries must be a list"));
    }
    let p = Pending { cols: Columns::take(), unit_ms, now: now_ms(), decoded: false, written: 0 };
    run(env, res, p, None, entries.as_c_arg())
}
