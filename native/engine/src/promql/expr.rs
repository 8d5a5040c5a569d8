//! The expression tree the evaluator runs. The NIF builds it from the Elixir AST
//! (`TimelessMetrics.PromQL.AST`) after planning: `@ start()` / `@ end()` are
//! already times, a subquery without a step already has the default step, and
//! parentheses are gone. All times and durations are milliseconds.

use crate::series::Matcher;

/// An instant-vector selector: matchers plus `offset` and `@`.
#[derive(Clone, Debug)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
    pub offset: i64,
    pub at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

impl AggOp {
    pub fn parse(name: &str) -> Option<AggOp> {
        Some(match name {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "count" => AggOp::Count,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "quantile" => AggOp::Quantile,
            "count_values" => AggOp::CountValues,
            _ => return None,
        })
    }
}

/// `by (...)`, `without (...)`, or no clause (which groups everything together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn parse(name: &str) -> Option<BinOp> {
        Some(match name {
            "add" => BinOp::Add,
            "sub" => BinOp::Sub,
            "mul" => BinOp::Mul,
            "div" => BinOp::Div,
            "mod" => BinOp::Mod,
            "pow" => BinOp::Pow,
            "atan2" => BinOp::Atan2,
            "eq" => BinOp::Eq,
            "ne" => BinOp::Ne,
            "gt" => BinOp::Gt,
            "lt" => BinOp::Lt,
            "ge" => BinOp::Ge,
            "le" => BinOp::Le,
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            _ => return None,
        })
    }

    pub fn is_comparison(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le)
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// Vector matching of a binary operation between two instant vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matching {
    pub card: Card,
    /// `on(...)` when true, `ignoring(...)` (or no clause) when false.
    pub on: bool,
    pub labels: Vec<String>,
    /// The `group_left(...)` / `group_right(...)` labels.
    pub include: Vec<String>,
}

impl Default for Matching {
    fn default() -> Self {
        Matching { card: Card::OneToOne, on: false, labels: vec![], include: vec![] }
    }
}

#[derive(Clone, Debug)]
pub enum Expr {
    Number(f64),
    String(String),
    Vector(Selector),
    Matrix { sel: Selector, range: i64 },
    Subquery { expr: Box<Expr>, range: i64, step: i64, offset: i64, at: Option<i64> },
    Call { func: String, args: Vec<Expr> },
    Aggregate { op: AggOp, param: Option<Box<Expr>>, expr: Box<Expr>, grouping: Grouping },
    Binary { op: BinOp, lhs: Box<Expr>, rhs: Box<Expr>, return_bool: bool, matching: Option<Matching> },
    Neg(Box<Expr>),
}

impl Expr {
    /// A vector selector (test and builder helper).
    pub fn selector(matchers: Vec<Matcher>) -> Expr {
        Expr::Vector(Selector { matchers, offset: 0, at: None })
    }

    /// A matrix selector (test and builder helper).
    pub fn matrix(matchers: Vec<Matcher>, range: i64) -> Expr {
        Expr::Matrix { sel: Selector { matchers, offset: 0, at: None }, range }
    }

    /// A function call (test and builder helper).
    pub fn call(func: &str, args: Vec<Expr>) -> Expr {
        Expr::Call { func: func.to_string(), args }
    }
}
