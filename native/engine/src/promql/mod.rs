//! The PromQL evaluator (Prometheus 2.53 semantics, float samples).
//!
//! The Elixir layer parses and plans a query; the NIF turns the planned AST into an
//! [`Expr`] and calls [`evaluate`] once. Evaluation is series-major over a step
//! [`Grid`]: every selector reads each of its series' raw points once for the whole
//! query and derives every step from them; operators then work on whole
//! series (one optional value per step).
//!
//! | module        | concern |
//! |---------------|---------|
//! | [`expr`]      | the expression tree |
//! | [`value`]     | grid, series, range arguments, label helpers |
//! | `eval`        | dispatch over the tree, subqueries, label-set collisions, limits |
//! | `selector`    | instant lookback (staleness), range windows, `offset`, `@` |
//! | `rangefns`    | functions over range vectors (`rate`, `*_over_time`, ...) |
//! | `functions`   | functions over instant vectors and scalars |
//! | `labelfns`    | `label_replace`, `label_join` |
//! | `dates`       | `year()`, `hour()`, ... |
//! | `aggregate`   | `sum`, `topk`, `count_values`, ... |
//! | [`json`]      | Prometheus's JSON response, straight from a [`QueryValue`] |
//! | `binary`      | arithmetic, comparison and set operators, vector matching |
//! | `quantile`    | `quantile`, `histogram_quantile` over classic buckets |
//!
//! ```
//! use timeless_engine::promql::{evaluate, EvalOptions, Expr, QueryValue};
//! use timeless_engine::store::{Store, StoreConfig};
//! let (store, _) = Store::open(StoreConfig::default()).unwrap();
//! let out = evaluate(&store, &Expr::Number(2.0), 0, 0, 1, &EvalOptions::default()).unwrap();
//! assert_eq!(out, QueryValue::Scalar(vec![2.0]));
//! ```

pub mod cost;
pub mod expr;
pub mod json;
pub mod value;

mod aggregate;
mod binary;
mod dates;
mod eval;
mod functions;
mod labelfns;
mod quantile;
mod rangefns;
mod selector;

#[cfg(test)]
mod tests;

use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

pub use expr::{AggOp, BinOp, Card, Expr, Grouping, Matching, Selector};
pub use value::{Grid, Labels, Points, Series};

/// Limits and settings of one evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_ms: i64,
    /// Evaluation fails with `ErrorKind::Timeout` once this instant has passed.
    pub deadline: Option<Instant>,
    /// Most samples a query may hold (points read plus points produced).
    pub max_samples: usize,
    /// True for a range query: the output is sorted by label set, as Prometheus sorts matrices.
    pub range_query: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { lookback_ms: 300_000, deadline: None, max_samples: 50_000_000, range_query: false }
    }
}

/// The result of a query over its grid.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    /// One value per step.
    Scalar(Vec<f64>),
    /// Series with a value per step where present; series never present are left out.
    Vector(Vec<Series>),
    /// Raw points of a range vector at the single step of an instant query.
    Matrix(Vec<Points>),
    String(String),
}

/// Evaluates `expr` at `start, start + step, ..., end` (`start == end` for an instant query).
pub fn evaluate(store: &Store, expr: &Expr, start: i64, end: i64, step: i64, opts: &EvalOptions) -> Result<QueryValue> {
    if step <= 0 {
        return Err(Error::bad_input(format!("step must be positive, got {step} ms")));
    }
    if end < start {
        return Err(Error::bad_input("end timestamp must not be before start time"));
    }
    eval::Evaluator::new(store, opts).run(expr, Grid::new(start, end, step))
}

/// An execution error (Prometheus `errorType: execution`).
pub(crate) fn exec_err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::LimitExceeded, message)
}

pub(crate) const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";
pub(crate) const TIMED_OUT: &str = "query timed out in expression evaluation";
pub(crate) const SAME_LABELSET: &str = "vector cannot contain metrics with the same labelset";
