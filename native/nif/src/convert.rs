//! Term conversions shared by the NIFs.

use rustler::sys::{
    enif_get_list_cell, enif_get_tuple, enif_map_iterator_create, enif_map_iterator_destroy, enif_map_iterator_get_pair,
    enif_map_iterator_next, ErlNifMapIterator, ErlNifMapIteratorEntry, ErlNifTerm,
};
use std::time::Instant;

use rustler::{Atom, Binary, Encoder, Env, Error as NifError, NewBinary, ResourceArc, Term};
use timeless_engine::series::{MatchOp, Matcher};
use timeless_engine::{Error, ErrorKind, STALE_NAN_BITS};

use crate::atoms;

/// `{:error, {kind, message}}` for an engine error.
pub fn engine_err(e: Error) -> NifError {
    NifError::Term(Box::new(ErrTerm(e.kind, e.message)))
}

pub fn bad_input(message: impl Into<String>) -> NifError {
    engine_err(Error::bad_input(message))
}

struct ErrTerm(ErrorKind, String);

impl Encoder for ErrTerm {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let kind = Atom::from_str(env, self.0.as_str()).expect("atom");
        (kind, self.1.as_str()).encode(env)
    }
}

/// The elements of a tuple, copied (cold paths; hot paths use `with_tuple`).
pub fn tuple_elems<'a>(term: Term<'a>) -> Option<Vec<Term<'a>>> {
    with_tuple(term, |elems| elems.to_vec())
}

/// Call `f` with the elements of a tuple (no allocation), or None if not a tuple.
pub fn with_tuple<'a, R>(term: Term<'a>, f: impl FnOnce(&[Term<'a>]) -> R) -> Option<R> {
    let env = term.get_env();
    let mut arity = 0;
    let mut array: *const ErlNifTerm = std::ptr::null();
    // SAFETY: enif_get_tuple fills `array` with `arity` terms valid for this env.
    let ok = unsafe { enif_get_tuple(env.as_c_arg(), term.as_c_arg(), &mut arity, &mut array) };
    if ok != 1 {
        return None;
    }
    // SAFETY: the pointer and arity come from a successful enif_get_tuple.
    let raw = unsafe { std::slice::from_raw_parts(array, arity as usize) };
    if raw.len() <= 8 {
        let filler = atoms::nil().to_term(env);
        let mut elems = [filler; 8];
        for (slot, &t) in elems.iter_mut().zip(raw) {
            *slot = unsafe { Term::new(env, t) };
        }
        Some(f(&elems[..raw.len()]))
    } else {
        let elems: Vec<Term<'a>> = raw.iter().map(|&t| unsafe { Term::new(env, t) }).collect();
        Some(f(&elems))
    }
}

/// Call `f(index, entry, elements)` for each entry of a batch list, where `elements`
/// are the entry's tuple elements (None if it is not a tuple); stops at the first
/// error. A term that is not a proper list is refused with `improper()` (entries
/// before an improper tail are visited first).
pub fn for_each_entry<'a, E>(
    list: Term<'a>,
    improper: impl FnOnce() -> E,
    mut f: impl FnMut(usize, Term<'a>, Option<&[Term<'a>]>) -> Result<(), E>,
) -> Result<(), E> {
    let env = list.get_env();
    let mut rest = list.as_c_arg();
    let (mut head, mut tail) = (ErlNifTerm::default(), ErlNifTerm::default());
    let mut i = 0;
    // SAFETY: terms of this env; enif_get_list_cell only reads them.
    while unsafe { enif_get_list_cell(env.as_c_arg(), rest, &mut head, &mut tail) } == 1 {
        // SAFETY: an element of a list of this env.
        let entry = unsafe { Term::new(env, head) };
        match with_tuple(entry, |e| f(i, entry, Some(e))) {
            Some(r) => r?,
            None => f(i, entry, None)?,
        }
        rest = tail;
        i += 1;
    }
    // SAFETY: `rest` is a term of this env (the list itself or a cell's tail).
    if unsafe { Term::new(env, rest) }.is_empty_list() {
        Ok(())
    } else {
        Err(improper())
    }
}

/// Append `u32 LE length ++ text` of a binary, atom or integer term; false if it is neither.
pub fn push_sized_text(term: Term, buf: &mut Vec<u8>) -> bool {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    if !push_text(term, buf) {
        buf.truncate(at);
        return false;
    }
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    true
}

/// The label pairs of a labels term (map or `[{name, value}]`) as raw bytes, each
/// name and value as `u32 LE length ++ text`, in the order the term gives them.
/// Equal bytes mean equal texts in equal order, so they parse to the same labels.
/// False if the term is not a map or list of text pairs (`out` is then undefined).
pub fn push_raw_labels(labels: Term, out: &mut Vec<u8>) -> bool {
    for_each_label(labels, |k, v| push_sized_text(k, out) && push_sized_text(v, out))
}

/// A sample value: a number, or one of `:nan`, `:infinity`, `:neg_infinity`, `:stale`.
pub fn decode_value(term: Term) -> Option<f64> {
    if let Ok(v) = term.decode::<f64>() {
        return Some(v);
    }
    if let Ok(v) = term.decode::<i64>() {
        return Some(v as f64);
    }
    if term.is_atom() {
        let a: Atom = term.decode().ok()?;
        if a == atoms::nan() {
            return Some(f64::NAN);
        } else if a == atoms::infinity() {
            return Some(f64::INFINITY);
        } else if a == atoms::neg_infinity() {
            return Some(f64::NEG_INFINITY);
        } else if a == atoms::stale() {
            return Some(f64::from_bits(STALE_NAN_BITS));
        }
        return None;
    }
    // Integers beyond i64 up to u64 still are numbers; larger bignums are refused.
    term.decode::<u64>().ok().map(|v| v as f64)
}

/// A timestamp in `unit_ms` units (1000 = seconds, 1 = milliseconds) -> engine ms.
/// Integers and floats are accepted; anything else, or a value outside the i64
/// millisecond range, is refused.
pub fn decode_timestamp(term: Term, unit_ms: i64) -> Result<i64, &'static str> {
    if let Ok(t) = term.decode::<i64>() {
        return t.checked_mul(unit_ms).ok_or("timestamp out of range");
    }
    if let Ok(t) = term.decode::<f64>() {
        let ms = (t * unit_ms as f64).round();
        if !ms.is_finite() || ms.abs() >= 9.2e18 {
            return Err("timestamp out of range");
        }
        return Ok(ms as i64);
    }
    if term.is_number() {
        return Err("timestamp out of range");
    }
    Err("timestamp is not a finite number")
}

/// Append the text of a binary or atom term to `buf`; false if it is neither.
pub fn push_text(term: Term, buf: &mut Vec<u8>) -> bool {
    if let Ok(b) = Binary::from_term(term) {
        buf.extend_from_slice(b.as_slice());
        return true;
    }
    if term.is_atom() {
        if let Ok(a) = term.decode::<Atom>() {
            if let Ok(s) = a.to_term(term.get_env()).atom_to_string() {
                buf.extend_from_slice(s.as_bytes());
                return true;
            }
        }
    }
    if let Ok(i) = term.decode::<i64>() {
        buf.extend_from_slice(i.to_string().as_bytes());
        return true;
    }
    false
}

/// Text of a binary or atom term.
pub fn text(term: Term) -> Option<String> {
    let mut buf = Vec::new();
    if !push_text(term, &mut buf) {
        return None;
    }
    String::from_utf8(buf).ok()
}

/// Call `f(name, value)` for each pair of a labels map or `[{name, value}]` list.
pub fn for_each_label<'a>(term: Term<'a>, mut f: impl FnMut(Term<'a>, Term<'a>) -> bool) -> bool {
    if term.is_map() {
        // One forward iterator (rustler's MapIterator creates two, for both ends).
        let env = term.get_env();
        let mut iter = std::mem::MaybeUninit::<ErlNifMapIterator>::uninit();
        // SAFETY: a map term of this env; the iterator is destroyed before returning.
        unsafe {
            if enif_map_iterator_create(
                env.as_c_arg(),
                term.as_c_arg(),
                iter.as_mut_ptr(),
                ErlNifMapIteratorEntry::ERL_NIF_MAP_ITERATOR_HEAD,
            ) == 0
            {
                return false;
            }
            let mut iter = iter.assume_init();
            let mut ok = true;
            let (mut k, mut v) = (ErlNifTerm::default(), ErlNifTerm::default());
            while enif_map_iterator_get_pair(env.as_c_arg(), &mut iter, &mut k, &mut v) != 0 {
                if !f(Term::new(env, k), Term::new(env, v)) {
                    ok = false;
                    break;
                }
                enif_map_iterator_next(env.as_c_arg(), &mut iter);
            }
            enif_map_iterator_destroy(env.as_c_arg(), &mut iter);
            return ok;
        }
    }
    if term.is_list() {
        let Ok(iter) = term.into_list_iterator() else { return false };
        for pair in iter {
            let ok = with_tuple(pair, |e| e.len() == 2 && f(e[0], e[1])).unwrap_or(false);
            if !ok {
                return false;
            }
        }
        return true;
    }
    false
}

/// Decode `[{name, op, value}]` where op is `:eq | :ne | :re | :nre`.
pub fn decode_matchers(term: Term) -> Result<Vec<Matcher>, NifError> {
    let iter = term.into_list_iterator().map_err(|_| bad_input("matchers must be a list"))?;
    let mut out = Vec::new();
    for m in iter {
        let parts = tuple_elems(m).filter(|p| p.len() == 3).ok_or_else(|| {
            bad_input("a matcher must be {label, op, value} with op :eq, :ne, :re or :nre")
        })?;
        let name = text(parts[0]).ok_or_else(|| bad_input("matcher label name must be a string"))?;
        let value = text(parts[2]).ok_or_else(|| bad_input(format!("matcher value for {name:?} must be a string")))?;
        let op: Atom = parts[1].decode().map_err(|_| bad_input("matcher op must be an atom"))?;
        let op = if op == atoms::eq() {
            MatchOp::Eq
        } else if op == atoms::ne() {
            MatchOp::Ne
        } else if op == atoms::re() {
            MatchOp::Re
        } else if op == atoms::nre() {
            MatchOp::Nre
        } else {
            return Err(bad_input(format!("matcher op for {name:?} must be :eq, :ne, :re or :nre")));
        };
        out.push(Matcher::new(&name, op, &value).map_err(engine_err)?);
    }
    Ok(out)
}

/// An optional `{from, to}` range in ms (nil = none).
pub fn decode_range(from: Term, to: Term) -> Option<(i64, i64)> {
    match (from.decode::<i64>(), to.decode::<i64>()) {
        (Ok(f), Ok(t)) => Some((f, t)),
        (Ok(f), Err(_)) => Some((f, i64::MAX)),
        (Err(_), Ok(t)) => Some((i64::MIN, t)),
        _ => None,
    }
}

/// Points as one binary of 16-byte records: timestamp (i64 LE, in `unit_ms`
/// units, floored) then value (f64 bits LE).
pub fn points_binary<'a>(env: Env<'a>, ts: &[i64], vals: &[f64], unit_ms: i64) -> Binary<'a> {
    let mut bin = NewBinary::new(env, ts.len() * 16);
    let out = bin.as_mut_slice();
    for (i, (&t, &v)) in ts.iter().zip(vals).enumerate() {
        let t = if unit_ms == 1 { t } else { t.div_euclid(unit_ms) };
        out[i * 16..i * 16 + 8].copy_from_slice(&t.to_le_bytes());
        out[i * 16 + 8..i * 16 + 16].copy_from_slice(&v.to_bits().to_le_bytes());
    }
    bin.into()
}

/// A value as a term: a float, or `:nan`, `:infinity`, `:neg_infinity`, `:stale`.
pub fn value_term<'a>(env: Env<'a>, v: f64) -> Term<'a> {
    if v.is_finite() {
        v.encode(env)
    } else if v.to_bits() == STALE_NAN_BITS {
        atoms::stale().encode(env)
    } else if v.is_nan() {
        atoms::nan().encode(env)
    } else if v > 0.0 {
        atoms::infinity().encode(env)
    } else {
        atoms::neg_infinity().encode(env)
    }
}

/// A label set as a map of binaries.
pub fn labels_term<'a>(env: Env<'a>, labels: &timeless_engine::series::Labels) -> Term<'a> {
    let pairs: Vec<(&str, &str)> = labels.iter().collect();
    Term::map_from_pairs(env, &pairs).unwrap_or_else(|_| Term::map_new(env))
}

/// Tell the VM how much of the scheduler's timeslice the call used (1% per 10 µs).
pub fn report_time(env: Env, started: Instant) {
    let percent = (started.elapsed().as_micros() / 10).clamp(1, 100) as i32;
    rustler::schedule::consume_timeslice(env, percent);
}

/// A chunk of a response body owned by the VM as a resource, so that a large body
/// becomes binaries without being copied.
pub struct BodyChunk(Vec<u8>);

#[rustler::resource_impl]
impl rustler::Resource for BodyChunk {}

/// Chunks from this size on are handed over without a copy; smaller ones are copied
/// (a resource costs more than copying a few kilobytes).
const ZERO_COPY_BYTES: usize = 64 * 1024;

/// A response body (or a chunk of one) as a binary term: copied when small, handed
/// to the VM without a copy from `ZERO_COPY_BYTES` on.
pub fn body_binary<'a>(env: Env<'a>, c: Vec<u8>) -> Term<'a> {
    if c.len() >= ZERO_COPY_BYTES {
        return ResourceArc::new(BodyChunk(c)).make_binary(env, |b| &b.0).to_term(env);
    }
    let mut bin = NewBinary::new(env, c.len());
    bin.as_mut_slice().copy_from_slice(&c);
    Binary::from(bin).to_term(env)
}
