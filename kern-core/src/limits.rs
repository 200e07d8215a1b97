//! What kern will store: the limits every store holds to, checked before anything is written or
//! run, so that nothing is stored that cannot be read back or looked up.
//!
//! Keys (ids, users, sessions, resolvers, tool names) are short text without NUL characters:
//! Postgres cannot hold a NUL in text at all, and an index entry has a size limit. JSON values
//! (arguments, results, resolution data) nest at most [`MAX_JSON_DEPTH`] levels: a run's stored
//! state holds them a few levels down, and JSON readers refuse to go deeper than 128. Times
//! given to look rows up by fall within [`TIME_YEARS`], which every database holds.

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The deepest a JSON value given to kern may nest (a scalar is depth 1, `[1]` depth 2).
pub const MAX_JSON_DEPTH: usize = 64;

/// The years of the times a lookup may name: those RFC 3339 writes with four digits. Every
/// database holds them (Postgres refuses times before 4713 BC), and kern writes none outside.
pub const TIME_YEARS: RangeInclusive<i32> = 1..=9999;

/// True when `at` falls within [`TIME_YEARS`]: a lookup at any other time is refused as given,
/// rather than sent to a database that cannot hold it.
pub fn is_time(at: &DateTime<Utc>) -> bool {
    TIME_YEARS.contains(&at.year())
}

/// Refuses a key that is too long or holds a NUL character.
pub fn check_key(field: &'static str, value: &str) -> Result<()> {
    if value.len() > MAX_KEY_LEN {
        let reason = format!("{} bytes, more than the {MAX_KEY_LEN} allowed", value.len());
        return Err(Error::InvalidInput { field, reason });
    }
    check_text(field, value)
}

/// Refuses a name given anew (a session or user a run is started for, a principal, an agent):
/// a key ([`check_key`]) that holds no control character either, which would move a terminal's
/// cursor as an admin reads it (a session id a caller picks, say) and show them another call
/// than the one they decide. Keys stored already are only held to [`check_key`], so that runs
/// written by earlier builds still save.
pub fn check_name(field: &'static str, value: &str) -> Result<()> {
    check_key(field, value)?;
    if let Some(control) = value.chars().find(|c| c.is_control()) {
        let reason = format!("it holds a control character (U+{:04X})", u32::from(control));
        return Err(Error::InvalidInput { field, reason });
    }
    Ok(())
}

/// True when `value` passes [`check_name`].
pub fn is_name(value: &str) -> bool {
    check_name("name", value).is_ok()
}

/// Refuses free text (a note) holding a NUL character, which Postgres cannot hold in text.
pub fn check_text(field: &'static str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidInput { field, reason: "it holds a NUL character".into() });
    }
    Ok(())
}

/// True when `value` could be a stored key: a lookup by any other finds nothing, and need not
/// ask the database.
pub fn is_key(value: &str) -> bool {
    check_key("key", value).is_ok()
}

/// Refuses a JSON value nested deeper than [`MAX_JSON_DEPTH`].
pub fn check_json(field: &'static str, value: &Value) -> Result<()> {
    check_depth(field, json_depth(value))
}

/// Refuses a JSON object, held as its fields, nested deeper than [`MAX_JSON_DEPTH`]: what
/// [`check_json`] says of the object as a value, without building one.
pub fn check_json_object(field: &'static str, object: &Map<String, Value>) -> Result<()> {
    check_depth(field, 1 + object.values().map(json_depth).max().unwrap_or(0))
}

/// Refuses a value `depth` levels deep, as it will be stored, deeper than [`MAX_JSON_DEPTH`].
pub fn check_depth(field: &'static str, depth: usize) -> Result<()> {
    if depth > MAX_JSON_DEPTH {
        let reason = format!("it nests {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed");
        return Err(Error::InvalidInput { field, reason });
    }
    Ok(())
}

/// How deep `value` nests, counted without recursion, so that a hostile value cannot exhaust
/// the stack here either.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|field| (field, depth + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_counts_levels() {
        assert_eq!(json_depth(&json!(1)), 1);
        assert_eq!(json_depth(&json!([1])), 2);
        assert_eq!(json_depth(&json!({"a": [{"b": null}]})), 4);
    }

    #[test]
    fn names_given_anew_hold_no_control_character_where_stored_keys_may() {
        assert!(check_name("principal", "ada lovelace ✓").is_ok());
        for control in ["tab\there", "esc\u{1b}[2K", "csi\u{9b}", "del\u{7f}"] {
            let err = check_name("principal", control).unwrap_err();
            assert!(err.to_string().contains("control character"), "{control:?}: {err}");
            assert!(check_key("principal", control).is_ok(), "a key stored already still saves: {control:?}");
        }
        assert!(is_name("alice") && !is_name("a\nb"));
    }

    #[test]
    fn keys_are_short_and_free_of_nul() {
        assert!(check_key("user_id", "alice").is_ok());
        assert!(check_key("user_id", &"x".repeat(MAX_KEY_LEN)).is_ok());
        let err = check_key("user_id", &"x".repeat(MAX_KEY_LEN + 1)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "user_id", .. }), "{err:?}");
        assert!(!is_key("a\0b"));
    }

    #[test]
    fn deep_values_are_refused_by_name() {
        let mut deep = json!(1);
        for _ in 0..MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        let err = check_json("tool_args", &deep).unwrap_err();
        assert_eq!(err.to_string(), "tool_args refused: it nests 65 levels deep, more than the 64 allowed");
    }

    #[test]
    fn an_object_is_as_deep_as_its_value() {
        let mut deep = json!(1);
        for _ in 0..MAX_JSON_DEPTH - 2 {
            deep = json!([deep]);
        }
        let object = Map::from_iter([("a".to_owned(), deep.clone())]);
        assert_eq!(json_depth(&Value::Object(object.clone())), MAX_JSON_DEPTH);
        assert!(check_json_object("metadata", &object).is_ok());
        let deeper = Map::from_iter([("a".to_owned(), json!([deep]))]);
        let err = check_json_object("metadata", &deeper).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "metadata", .. }), "{err:?}");
        assert!(check_json_object("metadata", &Map::new()).is_ok());
    }
}
