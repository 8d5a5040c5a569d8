//! `promql_eval`: the planned PromQL AST (see `TimelessMetrics.PromQL.AST`) in,
//! the evaluated value out. Only term conversion lives here; evaluation is
//! `timeless_engine::promql::evaluate`.
//!
//! The AST must be planned: `at` is `nil` or `{:ms, t}` and every subquery has a
//! `step_ms` (Elixir resolves `@ start()`/`@ end()` and default steps).
//!
//! Result terms (all times in ms):
//!
//! * `{:scalar, values}` - `values` holds one little-endian f64 per step.
//! * `{:vector, [{labels, values, presence}]}` - `values` as above (8 bytes per
//!   step, zero where absent) and `presence` one bit per step, least significant
//!   bit first (`byte i >>> 3`, `bit i &&& 7`): a NaN sample has its bit set, a step
//!   without a sample has it clear.
//! * `{:matrix, [{labels, points}]}` - `points` as `convert::points_binary`
//!   (16-byte records: i64 time, f64 value).
//! * `{:string, binary}`.
//!
//! `promql_eval_json` evaluates the same way and answers Prometheus's JSON success
//! body instead (`timeless_engine::promql::json`), as a list of binaries (iodata).
//! It runs on a normal scheduler: a query that reads little (`cost::small_query`)
//! is evaluated right there (`run_inline`); any other is handed to the engine's query
//! pool, and its body is the return value when it is done within a short wait, or
//! comes by message (see the function).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustler::env::OwnedEnv;
use rustler::{Atom, Binary, Encoder, Env, NewBinary, NifResult, ResourceArc, Term};
use timeless_engine::promql::json::{encode_response, Notes};
use timeless_engine::promql::cost::{small_query, Budget};
use timeless_engine::store::{run_inline, spawn_in_query_pool, Store};
use timeless_engine::{Error as EngineError, ErrorKind};
use timeless_engine::promql::{evaluate, AggOp, BinOp, Card, EvalOptions, Expr, Grid, Grouping, Matching, QueryValue, Selector};
use timeless_engine::series::{MatchOp, Matcher};

use crate::convert::{bad_input, body_binary, engine_err, points_binary, report_time, tuple_elems};
use crate::StoreRes;

mod atoms {
    rustler::atoms! {
        scalar, vector, matrix, string, number, ms, inf, neg_inf, nan, by, without, pending, internal, timeless_promql,
        // AST node fields and options
        type_ = "type", bool_ = "bool", args, at, card, expr, func, grouping, include, labels, lhs, matchers, matching,
        offset_ms, on, op, param, range, range_ms, rhs, step_ms, sync_wait_us,
        lookback_delta_ms, timeout_ms, max_samples,
    }
}

/// A field of an AST node (a map with atom keys), by its atom (made once, see `atoms`).
fn field<'a>(t: Term<'a>, key: Atom) -> NifResult<Term<'a>> {
    t.map_get(key.to_term(t.get_env())).map_err(|_| {
        let name = key.to_term(t.get_env()).atom_to_string().unwrap_or_default();
        bad_input(format!("AST node has no {name:?} field"))
    })
}

fn atom_name(t: Term) -> NifResult<String> {
    t.atom_to_string().map_err(|_| bad_input("expected an atom in the AST"))
}

fn string(t: Term) -> NifResult<String> {
    let b: Binary = t.decode().map_err(|_| bad_input("expected a binary in the AST"))?;
    Ok(String::from_utf8_lossy(b.as_slice()).into_owned())
}

fn strings(t: Term) -> NifResult<Vec<String>> {
    let list: Vec<Term> = t.decode().map_err(|_| bad_input("expected a list of strings in the AST"))?;
    list.into_iter().map(string).collect()
}

fn int(t: Term) -> NifResult<i64> {
    t.decode::<i64>().map_err(|_| bad_input("expected an integer in the AST"))
}

fn number(t: Term) -> NifResult<f64> {
    if let Ok(f) = t.decode::<f64>() {
        return Ok(f);
    }
    if let Ok(i) = t.decode::<i64>() {
        return Ok(i as f64);
    }
    match atom_name(t)?.as_str() {
        "inf" => Ok(f64::INFINITY),
        "neg_inf" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        other => Err(bad_input(format!("not a number literal: {other}"))),
    }
}

fn at(t: Term) -> NifResult<Option<i64>> {
    if t.is_atom() && atom_name(t)? == "nil" {
        return Ok(None);
    }
    match tuple_elems(t) {
        Some(e) if e.len() == 2 && e[0].is_atom() && atom_name(e[0])? == "ms" => Ok(Some(int(e[1])?)),
        _ => Err(bad_input("@ must be planned to nil or {:ms, t} before evaluation")),
    }
}

fn selector(t: Term) -> NifResult<Selector> {
    let list: Vec<Term> = field(t, atoms::matchers())?.decode().map_err(|_| bad_input("matchers must be a list"))?;
    let mut matchers = Vec::with_capacity(list.len());
    for m in list {
        let e = tuple_elems(m).filter(|e| e.len() == 3).ok_or_else(|| bad_input("a matcher is {label, op, value}"))?;
        let op = match atom_name(e[1])?.as_str() {
            "eq" => MatchOp::Eq,
            "ne" => MatchOp::Ne,
            "re" => MatchOp::Re,
            "nre" => MatchOp::Nre,
            other => return Err(bad_input(format!("unknown matcher op {other}"))),
        };
        matchers.push(Matcher::new(&string(e[0])?, op, &string(e[2])?).map_err(engine_err)?);
    }
    Ok(Selector { matchers, offset: int(field(t, atoms::offset_ms())?)?, at: at(field(t, atoms::at())?)? })
}

fn boxed(t: Term) -> NifResult<Box<Expr>> {
    Ok(Box::new(expr(t)?))
}

/// The planned AST as an engine expression.
fn expr(t: Term) -> NifResult<Expr> {
    if let Some(e) = tuple_elems(t) {
        if e.len() == 2 && e[0].is_atom() {
            return match atom_name(e[0])?.as_str() {
                "number" => Ok(Expr::Number(number(e[1])?)),
                "string" => Ok(Expr::String(string(e[1])?)),
                other => Err(bad_input(format!("unknown literal {other}"))),
            };
        }
        return Err(bad_input("unknown tuple in the AST"));
    }
    let kind = atom_name(field(t, atoms::type_())?)?;
    Ok(match kind.as_str() {
        "vector_selector" => Expr::Vector(selector(t)?),
        "matrix_selector" => Expr::Matrix { sel: selector(field(t, atoms::vector())?)?, range: int(field(t, atoms::range_ms())?)? },
        "subquery" => Expr::Subquery {
            expr: boxed(field(t, atoms::expr())?)?,
            range: int(field(t, atoms::range_ms())?)?,
            step: int(field(t, atoms::step_ms())?)?,
            offset: int(field(t, atoms::offset_ms())?)?,
            at: at(field(t, atoms::at())?)?,
        },
        "paren" => expr(field(t, atoms::expr())?)?,
        "unary" => match atom_name(field(t, atoms::op())?)?.as_str() {
            "neg" => Expr::Neg(boxed(field(t, atoms::expr())?)?),
            _ => expr(field(t, atoms::expr())?)?,
        },
        "call" => {
            let args: Vec<Term> = field(t, atoms::args())?.decode().map_err(|_| bad_input("args must be a list"))?;
            Expr::Call { func: string(field(t, atoms::func())?)?, args: args.into_iter().map(expr).collect::<NifResult<_>>()? }
        }
        "aggregate" => {
            let op = atom_name(field(t, atoms::op())?)?;
            let op = AggOp::parse(&op).ok_or_else(|| bad_input(format!("unknown aggregation {op}")))?;
            let param = field(t, atoms::param())?;
            let param = if param.is_atom() && atom_name(param)? == "nil" { None } else { Some(boxed(param)?) };
            let labels = strings(field(t, atoms::labels())?)?;
            let grouping = match field(t, atoms::grouping())? {
                g if g.is_atom() && atom_name(g)? == "without" => Grouping::Without(labels),
                _ => Grouping::By(labels),
            };
            Expr::Aggregate { op, param, expr: boxed(field(t, atoms::expr())?)?, grouping }
        }
        "binary" => {
            let op = atom_name(field(t, atoms::op())?)?;
            let op = BinOp::parse(&op).ok_or_else(|| bad_input(format!("unknown binary operator {op}")))?;
            let m = field(t, atoms::matching())?;
            let matching = if m.is_atom() {
                None
            } else {
                let card = match atom_name(field(m, atoms::card())?)?.as_str() {
                    "one_to_one" => Card::OneToOne,
                    "many_to_one" => Card::ManyToOne,
                    "one_to_many" => Card::OneToMany,
                    _ => Card::ManyToMany,
                };
                Some(Matching {
                    card,
                    on: field(m, atoms::on())?.decode::<bool>().unwrap_or(false),
                    labels: strings(field(m, atoms::labels())?)?,
                    include: strings(field(m, atoms::include())?)?,
                })
            };
            Expr::Binary {
                op,
                lhs: boxed(field(t, atoms::lhs())?)?,
                rhs: boxed(field(t, atoms::rhs())?)?,
                return_bool: field(t, atoms::bool_())?.decode::<bool>().unwrap_or(false),
                matching,
            }
        }
        other => return Err(bad_input(format!("unknown AST node type {other}"))),
    })
}

fn options(t: Term) -> EvalOptions {
    let mut o = EvalOptions::default();
    let get_i = |k: Atom| field(t, k).ok().and_then(|v| v.decode::<i64>().ok());
    if let Some(v) = get_i(atoms::lookback_delta_ms()) {
        o.lookback_ms = v;
    }
    if let Some(v) = get_i(atoms::timeout_ms()) {
        o.deadline = Some(Instant::now() + Duration::from_millis(v.max(0) as u64));
    }
    if let Some(v) = get_i(atoms::max_samples()) {
        o.max_samples = v.max(0) as usize;
    }
    o.range_query = field(t, atoms::range()).ok().and_then(|v| v.decode::<bool>().ok()).unwrap_or(false);
    o
}

fn f64_binary<'a>(env: Env<'a>, vals: impl ExactSizeIterator<Item = f64>) -> Binary<'a> {
    let mut bin = NewBinary::new(env, vals.len() * 8);
    for (chunk, v) in bin.as_mut_slice().chunks_exact_mut(8).zip(vals) {
        chunk.copy_from_slice(&v.to_bits().to_le_bytes());
    }
    bin.into()
}

fn labels_term<'a>(env: Env<'a>, labels: &[(String, String)]) -> Term<'a> {
    let pairs: Vec<(&str, &str)> = labels.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Term::map_from_pairs(env, &pairs).unwrap_or_else(|_| Term::map_new(env))
}

fn encode<'a>(env: Env<'a>, v: QueryValue) -> Term<'a> {
    match v {
        QueryValue::Scalar(vals) => (atoms::scalar(), f64_binary(env, vals.into_iter())).encode(env),
        QueryValue::String(s) => (atoms::string(), s).encode(env),
        QueryValue::Matrix(points) => {
            let rows: Vec<Term<'a>> = points
                .iter()
                .map(|p| (labels_term(env, &p.labels), points_binary(env, &p.ts, &p.vals, 1)).encode(env))
                .collect();
            (atoms::matrix(), rows).encode(env)
        }
        QueryValue::Vector(series) => {
            let rows: Vec<Term<'a>> = series
                .iter()
                .map(|s| {
                    let vals = f64_binary(env, s.vals.iter().map(|v| v.unwrap_or(0.0)));
                    let mut bits = NewBinary::new(env, s.vals.len().div_ceil(8));
                    let out = bits.as_mut_slice();
                    out.fill(0);
                    for (i, v) in s.vals.iter().enumerate() {
                        if v.is_some() {
                            out[i >> 3] |= 1 << (i & 7);
                        }
                    }
                    let bits: Binary = bits.into();
                    (labels_term(env, &s.labels), vals, bits).encode(env)
                })
                .collect();
            (atoms::vector(), rows).encode(env)
        }
    }
}

/// `promql_eval(store, ast, start_ms, end_ms, step_ms, opts) -> {:scalar | :vector | :matrix | :string, data}`
#[rustler::nif(schedule = "DirtyCpu")]
fn promql_eval<'a>(
    env: Env<'a>,
    res: ResourceArc<StoreRes>,
    ast: Term<'a>,
    start: i64,
    end: i64,
    step: i64,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let e = expr(ast)?;
    let v = evaluate(&res.store, &e, start, end, step, &options(opts)).map_err(engine_err)?;
    Ok(encode(env, v))
}

/// How long `promql_eval_json` waits on its (normal) scheduler for the pool to
/// answer. A small query is answered within it; a longer one is answered by message.
const SYNC_WAIT: Duration = Duration::from_micros(300);

/// How long of that wait is spent yielding the core rather than asleep.
const SPIN: Duration = Duration::from_micros(50);

/// Tags of answers sent by message, unique within the VM.
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

/// Where the pool job leaves its answer for a NIF still waiting.
enum Slot {
    Waiting,
    Done(Result<Vec<Vec<u8>>, timeless_engine::Error>),
    /// The NIF returned `{:pending, tag}`: the job sends its answer by message.
    GaveUp,
}

struct Handoff {
    slot: Mutex<Slot>,
    ready: Condvar,
    /// Set with `Slot::Done`, for the waiter's spin.
    done: AtomicBool,
}

/// `promql_eval_json(store, ast, start_ms, end_ms, step_ms, opts)`: Prometheus's
/// JSON success body for the query (a matrix when `opts.range`), as a list of
/// binaries, or `{:error, {kind, message}}`, or `{:pending, tag}`.
///
/// Runs on a normal scheduler: it decodes the AST; a query that reads little (a few
/// series and points, `cost::small_query`, at most ~0.5 ms of work) is evaluated and
/// encoded right there. Any other is queued, evaluation and encoding
/// as one job, on the engine's query pool (one thread hand-off per query, no dirty
/// scheduler) and waits up to `SYNC_WAIT` for it. When the job takes longer, the
/// NIF returns `{:pending, tag}` and the job sends
/// `{:timeless_promql, tag, body | {:error, {kind, message}}}` to the calling
/// process when it is done. The scheduler is never held longer than the wait, however
/// large the query or busy the pool; `opts.timeout_ms` still bounds the evaluation.
#[rustler::nif]
fn promql_eval_json<'a>(
    env: Env<'a>,
    res: ResourceArc<StoreRes>,
    ast: Term<'a>,
    start: i64,
    end: i64,
    step: i64,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let started = Instant::now();
    let e = expr(ast)?;
    // `sync_wait_us` (tests only) sends every query to the pool and shortens the wait
    // for it, to exercise answers by message
    let test_wait = field(opts, atoms::sync_wait_us()).ok().and_then(|v| v.decode::<u64>().ok());
    let wait = test_wait.map_or(SYNC_WAIT, |us| Duration::from_micros(us).min(SYNC_WAIT));
    let opts = options(opts);
    // A query that reads little (few series, few points: `cost::small_query`) is answered
    // right here, on this scheduler, with no hand-off to the pool: that hand-off and the
    // wait for it are most of such a query's time.
    if test_wait.is_none() && small_query(&res.store, &e, start, end, step, opts.lookback_ms, &Budget::default()) {
        let body = run_inline(|| json_body(&res.store, &e, start, end, step, &opts));
        report_time(env, started);
        return Ok(reply(env, body));
    }
    let store = Arc::clone(&res.store);
    let pid = env.pid();
    let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
    let handoff = Arc::new(Handoff { slot: Mutex::new(Slot::Waiting), ready: Condvar::new(), done: AtomicBool::new(false) });
    let theirs = Arc::clone(&handoff);

    spawn_in_query_pool(move || {
        let body = json_body(&store, &e, start, end, step, &opts);
        let mut slot = theirs.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*slot, Slot::Waiting) {
            *slot = Slot::Done(body);
            theirs.done.store(true, Ordering::Release);
            theirs.ready.notify_one();
            return;
        }
        drop(slot);
        // a pool thread is not a scheduler thread, so it may send
        let _ = OwnedEnv::new().send_and_clear(&pid, |env| (atoms::timeless_promql(), tag, reply(env, body)).encode(env));
    });

    let deadline = started + wait;
    // A small query is done within tens of microseconds: yielding the core until
    // then (to the pool thread, if it shares it) costs less than sleeping on the
    // condition variable and being woken (measured with wrk on 2 cores: about 1.3x
    // the requests/s on a one-series query). Then the wait proper.
    let spin_until = (started + SPIN).min(deadline);
    while !handoff.done.load(Ordering::Acquire) && Instant::now() < spin_until {
        std::thread::yield_now();
    }
    let mut slot = handoff.slot.lock().unwrap_or_else(PoisonError::into_inner);
    while matches!(*slot, Slot::Waiting) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        slot = handoff.ready.wait_timeout(slot, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
    }
    let answer = match std::mem::replace(&mut *slot, Slot::GaveUp) {
        Slot::Done(body) => reply(env, body),
        _ => (atoms::pending(), tag).encode(env),
    };
    drop(slot);
    report_time(env, started);
    Ok(answer)
}

/// Evaluation and encoding of one query (on whichever thread runs it); a panic in the
/// engine becomes an internal error.
fn json_body(store: &Store, e: &Expr, start: i64, end: i64, step: i64, opts: &EvalOptions) -> Result<Vec<Vec<u8>>, EngineError> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        let v = evaluate(store, e, start, end, step, opts)?;
        Ok(encode_response(&v, &Grid::new(start, end, step), opts.range_query, &Notes::default()))
    }))
    .unwrap_or_else(|_| Err(EngineError::new(ErrorKind::Internal, "the engine panicked; see the VM's stderr")))
}

/// The body as a list of binaries, or `{:error, {kind, message}}`.
fn reply<'a>(env: Env<'a>, body: Result<Vec<Vec<u8>>, timeless_engine::Error>) -> Term<'a> {
    match body {
        Ok(chunks) => chunks.into_iter().map(|c| body_binary(env, c)).collect::<Vec<Term<'a>>>().encode(env),
        Err(e) => {
            let kind = Atom::from_str(env, e.kind.as_str()).unwrap_or_else(|_| atoms::internal());
            (crate::atoms::error(), (kind, e.message)).encode(env)
        }
    }
}
