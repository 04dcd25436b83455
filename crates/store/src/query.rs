//! Read-only SQL for auditors: what a query returns, and the limits it runs under.

use std::time::Duration;

/// Longest query text accepted.
pub const QUERY_TEXT_BYTES_MAX: usize = 64 * 1024;

/// Bounds on one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Rows returned at most; the output says when more were left out.
    pub rows_max: usize,
    /// The query is interrupted (and refused) once it has run this long; `None`: no limit.
    pub time_max: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows than `rows_max` matched; only the first `rows_max` are here.
    pub truncated: bool,
}
