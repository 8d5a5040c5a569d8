//! One error vocabulary for the whole engine.
//!
//! Every fallible engine call returns [`Result<T>`]. The NIF layer turns an [`Error`]
//! into `{:error, {kind, message}}` where `kind` is [`ErrorKind::as_str`] as an atom,
//! and the HTTP layer maps kinds to statuses in one place.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller sent something malformed: bad label name, non-finite timestamp, bad regex... (HTTP 400)
    BadInput,
    /// A request or value is over a configured size limit. (HTTP 413)
    TooLarge,
    /// Well-formed but refused by a limit: too many series/samples touched by a query. (HTTP 422)
    LimitExceeded,
    /// The engine is temporarily saturated; retry later. (HTTP 429)
    Overloaded,
    /// A query ran past its deadline. (HTTP 503, Prometheus `timeout`)
    Timeout,
    /// The store is closed or shutting down. (HTTP 503)
    Unavailable,
    /// Another store holds the data directory lock.
    Locked,
    /// A referenced series or object does not exist. (HTTP 404)
    NotFound,
    /// On-disk data failed a checksum or structural check.
    Corrupt,
    /// An operating-system I/O error.
    Io,
    /// A bug: an invariant did not hold.
    Internal,
}

impl ErrorKind {
    /// The atom-friendly name used across the NIF boundary.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Locked => "locked",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An engine error: a kind plus a human-readable message naming the offending
/// input (line, field, file and offset, option...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// Wrap an I/O error with context (usually the path involved).
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Error {}
