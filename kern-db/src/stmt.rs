//! Statements as the shared store logic builds them, and rows as it reads them back.
//!
//! The store logic is written once for both databases: it builds a [`Stmt`] of SQL text and
//! driver-neutral [`Param`]s, and decodes rows through [`Columns`]. Each driver maps these to
//! its own types only when it runs the statement (see `driver.rs`).

use std::borrow::Cow;
use std::fmt::Display;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use kern_core::{Error, Result};
use serde_json::Value;

/// One parameter value; `None` binds NULL.
#[derive(Debug, Clone)]
pub(crate) enum Param<'a> {
    Text(Option<Cow<'a, str>>),
    Int(i64),
    /// Always whole microseconds: the precision both databases keep.
    Time(Option<DateTime<Utc>>),
    Json(Option<Cow<'a, Value>>),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(Some(Cow::Borrowed(value)))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Param::Text(value.map(Cow::Borrowed))
    }
}

impl From<String> for Param<'_> {
    fn from(value: String) -> Self {
        Param::Text(Some(Cow::Owned(value)))
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<DateTime<Utc>> for Param<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Param::Time(Some(floor_micros(value)))
    }
}

impl From<Option<DateTime<Utc>>> for Param<'_> {
    fn from(value: Option<DateTime<Utc>>) -> Self {
        Param::Time(value.map(floor_micros))
    }
}

impl<'a> From<&'a Value> for Param<'a> {
    fn from(value: &'a Value) -> Self {
        Param::Json(Some(Cow::Borrowed(value)))
    }
}

impl<'a> From<Option<&'a Value>> for Param<'a> {
    fn from(value: Option<&'a Value>) -> Self {
        Param::Json(value.map(Cow::Borrowed))
    }
}

impl From<Value> for Param<'_> {
    fn from(value: Value) -> Self {
        Param::Json(Some(Cow::Owned(value)))
    }
}

/// SQL text with numbered placeholders (`$1`, `$2`, ..; both SQLite and Postgres read them) and
/// the values for them, in order.
#[derive(Debug, Clone)]
pub(crate) struct Stmt<'a> {
    pub(crate) sql: &'a str,
    pub(crate) params: Vec<Param<'a>>,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: &'a str) -> Self {
        Stmt { sql, params: Vec::new() }
    }

    /// Appends the value of the next placeholder.
    pub(crate) fn bind(mut self, value: impl Into<Param<'a>>) -> Self {
        self.params.push(value.into());
        self
    }
}

/// A result row, read by column name. Driver errors (a wrong type, a bad timestamp) are
/// [`Error::Corrupt`]: the row is not what kern wrote.
pub(crate) trait Columns {
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    fn opt_json(&self, column: &str) -> Result<Option<Value>>;

    fn text(&self, column: &str) -> Result<String> {
        self.opt_text(column)?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>> {
        self.opt_time(column)?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }

    fn json(&self, column: &str) -> Result<Value> {
        self.opt_json(column)?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }
}

/// Turns a row into a value; a plain function so statements can name it without generics.
pub(crate) type Decoder<T> = fn(&dyn Columns) -> Result<T>;

pub(crate) fn corrupt(column: &str, err: impl Display) -> Error {
    Error::Corrupt(format!("column `{column}`: {err}"))
}

/// The current time at the stored precision, so what a write returns equals what a later read
/// returns.
pub(crate) fn now() -> DateTime<Utc> {
    floor_micros(Utc::now())
}

/// Drops sub-microsecond digits: what both databases do to a stored timestamp.
pub(crate) fn floor_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

/// The smallest whole microsecond at or after `time`. For a stored (whole-microsecond)
/// timestamp `t`, `t < time` iff `t < ceil_micros(time)`, and likewise for `>=`: filters on
/// precise times select exactly the rows the memory store would.
pub(crate) fn ceil_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_micros(time);
    if floor == time { floor } else { floor + TimeDelta::microseconds(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_microseconds() {
        let exact = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        let between = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let next = DateTime::from_timestamp(1_700_000_000, 123_457_000).unwrap();
        assert_eq!(floor_micros(between), exact);
        assert_eq!(ceil_micros(between), next);
        assert_eq!(floor_micros(exact), exact);
        assert_eq!(ceil_micros(exact), exact);
    }

    #[test]
    fn timestamps_are_bound_at_stored_precision() {
        let between = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert!(matches!(Param::from(between), Param::Time(Some(t)) if t == floor_micros(between)));
    }
}
