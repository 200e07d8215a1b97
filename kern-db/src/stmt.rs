//! Statements as the shared store logic builds them, and rows as it reads them back.
//!
//! The store logic is written once for both databases: it builds a [`Stmt`] of SQL text and
//! driver-neutral [`Param`]s, and decodes rows through [`Columns`]. Each driver maps these to
//! its own types only when it runs the statement (see `driver.rs`).

use std::borrow::Cow;
use std::fmt::{Display, Write};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use kern_core::{Error, Result};
use serde_json::Value;
use serde_json::value::RawValue;

/// One parameter value; `None` binds NULL.
#[derive(Debug, Clone)]
pub(crate) enum Param<'a> {
    Text(Option<Cow<'a, str>>),
    Int(i64),
    /// Always whole microseconds: the precision both databases keep.
    Time(Option<DateTime<Utc>>),
    Json(Option<&'a Value>),
    /// JSON text serialized straight from a typed value, not through a [`Value`] tree.
    RawJson(Option<Box<RawValue>>),
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
        Param::Json(Some(value))
    }
}

impl<'a> From<Option<&'a Value>> for Param<'a> {
    fn from(value: Option<&'a Value>) -> Self {
        Param::Json(value)
    }
}

impl From<Box<RawValue>> for Param<'_> {
    fn from(value: Box<RawValue>) -> Self {
        Param::RawJson(Some(value))
    }
}

impl From<Option<Box<RawValue>>> for Param<'_> {
    fn from(value: Option<Box<RawValue>>) -> Self {
        Param::RawJson(value)
    }
}

/// SQL text with numbered placeholders (`$1`, `$2`, ..; both SQLite and Postgres read them) and
/// the values for them, in order.
#[derive(Debug, Clone)]
pub(crate) struct Stmt<'a> {
    pub(crate) sql: Cow<'a, str>,
    pub(crate) params: Vec<Param<'a>>,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: impl Into<Cow<'a, str>>) -> Self {
        Stmt { sql: sql.into(), params: Vec::new() }
    }

    /// Appends the value of the next placeholder.
    pub(crate) fn bind(mut self, value: impl Into<Param<'a>>) -> Self {
        self.params.push(value.into());
        self
    }
}

/// The texts of `stmts` with their placeholders renumbered so that they follow one another, and
/// all their values in that order: the parts of one text (a script, a chain of CTEs) that runs
/// every statement in one call. A `$` followed by a digit is taken as a placeholder: kern's
/// statements have no such text in their literals.
pub(crate) fn chain(stmts: Vec<Stmt<'_>>) -> (Vec<Cow<'_, str>>, Vec<Param<'_>>) {
    let mut params = Vec::new();
    let texts = stmts
        .into_iter()
        .map(|stmt| {
            // With no values bound before it, a statement keeps its placeholders as they are.
            let text = if params.is_empty() { stmt.sql } else { renumber(&stmt.sql, params.len()).into() };
            params.extend(stmt.params);
            text
        })
        .collect();
    (texts, params)
}

/// `first` and `second` as one statement, whose text `text` writes from theirs once their
/// placeholders follow one another (see [`chain`]).
pub(crate) fn join<'a>(first: Stmt<'a>, second: Stmt<'a>, text: impl FnOnce(&str, &str) -> String) -> Stmt<'a> {
    let (texts, params) = chain(vec![first, second]);
    Stmt { sql: text(&texts[0], &texts[1]).into(), params }
}

/// How many values `stmts` bind in all.
pub(crate) fn bound(stmts: &[Stmt<'_>]) -> usize {
    stmts.iter().map(|stmt| stmt.params.len()).sum()
}

/// `sql` with each placeholder `$n` made `$(n + offset)`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(n) = rest[..digits].parse::<usize>() {
            // Writing to a `String` cannot fail.
            _ = write!(out, "{}", n + offset);
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// A result row, read by column name. Driver errors (a wrong type, a bad timestamp) are
/// [`Error::Corrupt`]: the row is not what kern wrote.
pub(crate) trait Columns {
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    fn opt_json(&self, column: &str) -> Result<Option<Value>>;
    /// A JSON column's text, to parse straight into a typed value.
    fn json_text(&self, column: &str) -> Result<&str>;

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
    fn chained_statements_number_their_placeholders_in_turn() {
        let first = Stmt::new("INSERT INTO t VALUES ($1, $2) -- '$.x' $$").bind("a").bind("b");
        let second = Stmt::new("UPDATE t SET a = $2 WHERE b = $1 AND c = $10").bind("c").bind("d");
        let (texts, params) = chain(vec![first, second]);
        assert_eq!(
            texts,
            ["INSERT INTO t VALUES ($1, $2) -- '$.x' $$", "UPDATE t SET a = $4 WHERE b = $3 AND c = $12"]
        );
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn timestamps_are_bound_at_stored_precision() {
        let between = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert!(matches!(Param::from(between), Param::Time(Some(t)) if t == floor_micros(between)));
    }
}
