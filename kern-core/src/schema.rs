//! JSON Schema: generating a tool's argument schema and checking values against it.
//!
//! Checking is what lets the engine send a call that cannot run back to the model before anyone
//! is asked to approve it, and lets `update_approval` refuse a resolution payload that does not
//! fit a tool, without knowing the tool's Rust types. It is the `jsonschema` crate's full
//! validator (draft 7, the dialect [`schema_for`] writes, unless a schema names its own
//! `$schema`; string formats asserted; no remote or file references), with one rule of kern's:
//! numbers are judged the way the tool's serde deserializer will judge them, so a value that
//! passes here does not fail the call after an admin approved it. See [`Validator`].

use std::net::IpAddr;

use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{Draft, JsonType, Keyword, ValidationError};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

/// The JSON Schema of `T`, with subschemas inlined, as models expect for tool parameters.
pub fn schema_for<T: JsonSchema>() -> Value {
    let schema =
        SchemaSettings::draft07().with(|s| s.inline_subschemas = true).into_generator().into_root_schema_for::<T>();
    let mut value = serde_json::to_value(schema).unwrap_or_else(|_| Value::Object(Map::new()));
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
        // Providers expect `properties` on every object schema, even an empty one.
        if map.get("type") == Some(&Value::String("object".into())) {
            map.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        }
    }
    value
}

/// Splits an object schema in two: the properties not in `fields`, and those in `fields`.
///
/// Each half keeps its own `required` list and any other top-level keywords.
pub fn split_properties(schema: &Value, fields: &[String]) -> (Value, Value) {
    let keep = |name: &str, wanted: bool| fields.iter().any(|f| f == name) == wanted;
    let half = |wanted: bool| {
        let mut out = schema.as_object().cloned().unwrap_or_default();
        if let Some(Value::Object(props)) = out.get_mut("properties") {
            props.retain(|name, _| keep(name, wanted));
        }
        if let Some(Value::Array(required)) = out.get_mut("required") {
            required.retain(|name| name.as_str().is_some_and(|n| keep(n, wanted)));
        }
        Value::Object(out)
    };
    (half(false), half(true))
}

/// Why a value could not be checked against a schema, or did not fit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema is not valid JSON Schema.
    #[error("the schema is not valid JSON Schema: {reason}")]
    InvalidSchema {
        /// What is wrong with it, and where when it is not the root.
        reason: String,
    },
    /// The value does not fit the schema.
    #[error("{path}: {reason}")]
    Mismatch {
        /// Where in the value: `$` for the root, `.name` for a property, `[i]` for an item.
        path: String,
        /// Why it does not fit.
        reason: String,
    },
}

/// Checks `value` against `schema`; on failure, says where and why (`$.path: reason`).
///
/// Compiles the schema on every call; [`Validator`] compiles it once. A schema that is not
/// valid JSON Schema is an error too.
pub fn validate(schema: &Value, value: &Value) -> Result<(), SchemaError> {
    Validator::new(schema)?.validate(value)
}

/// A schema compiled once, to check any number of values against.
///
/// Beyond standard JSON Schema:
/// - `"type": "integer"` takes only what serde takes for a Rust integer: a number written
///   without a fraction or exponent that fits in 64 bits. `1.0` and `1e3` are refused (serde
///   refuses a float for an integer type), with or without a `format`.
/// - An integer `format` beside that `type`, as `schemars` writes it for a Rust integer type
///   (`int8` to `int128`, `uint8` to `uint128`, and `int`/`uint` for `isize`/`usize`), bounds
///   the value to that type's range, so `2^32` is refused for a `u32` here and not when the
///   call runs. `float` and `double` need no check: serde takes any number for `f32` and `f64`.
/// - The `uuid` and `ip` string formats (`schemars` writes `ip` for `IpAddr`) accept what
///   `Uuid` and `IpAddr` parse. Formats no one knows are annotations, as the specification
///   allows.
#[derive(Debug, Clone)]
pub struct Validator(jsonschema::Validator);

impl Validator {
    /// Compiles `schema`; one that is not valid JSON Schema is an error saying what is wrong.
    pub fn new(schema: &Value) -> Result<Self, SchemaError> {
        let mut options = jsonschema::options()
            .should_validate_formats(true)
            .with_format("uuid", |text: &str| Uuid::parse_str(text).is_ok())
            .with_format("ip", |text: &str| text.parse::<IpAddr>().is_ok())
            .with_keyword("type", TypeKeyword::compile);
        if schema.get("$schema").is_none() {
            options = options.with_draft(Draft::Draft7);
        }
        let validator = options.build(schema).map_err(|error| {
            let reason = match error.instance_path() {
                at if at.is_empty() => error.to_string(),
                at => format!("at {at}: {error}"),
            };
            SchemaError::InvalidSchema { reason }
        })?;
        Ok(Validator(validator))
    }

    /// Checks `value`; on failure, says where and why (`$.path: reason`).
    pub fn validate(&self, value: &Value) -> Result<(), SchemaError> {
        self.0.validate(value).map_err(|error| SchemaError::Mismatch {
            path: json_path(error.instance_path()),
            reason: error.to_string(),
        })
    }
}

/// `$` for the root, then `.name` for a property and `[i]` for an array item.
fn json_path(location: &Location) -> String {
    location.segments().fold(String::from("$"), |mut path, segment| {
        match segment {
            LocationSegment::Property(name) => {
                path.push('.');
                path.push_str(&name);
            }
            LocationSegment::Index(index) => path.push_str(&format!("[{index}]")),
        }
        path
    })
}

/// The `type` keyword, standard but for integers, which are judged as serde judges them.
struct TypeKeyword {
    /// The allowed types, in the schema's order (error messages list them so).
    types: Vec<JsonType>,
    /// The Rust integer type the sibling `format` names, if any.
    integer: Option<IntegerFormat>,
}

impl TypeKeyword {
    fn compile<'a>(
        schema: &'a Map<String, Value>,
        value: &'a Value,
        _: Location,
    ) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
        let names = match value {
            Value::Array(names) => names.iter().collect(),
            name => vec![name],
        };
        let types = names
            .into_iter()
            .map(|name| name.as_str()?.parse::<JsonType>().ok())
            .collect::<Option<Vec<_>>>()
            .filter(|types| !types.is_empty())
            .ok_or_else(|| ValidationError::schema(format!("`type` must name JSON types, not {value}")))?;
        let integer = schema.get("format").and_then(Value::as_str).and_then(IntegerFormat::named);
        Ok(Box::new(TypeKeyword { types, integer }))
    }

    fn check(&self, instance: &Value) -> Result<(), String> {
        let found = JsonType::from(instance);
        if self.types.contains(&found) {
            return Ok(());
        }
        let expected = || self.types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" or ");
        match instance {
            Value::Number(number) if self.types.contains(&JsonType::Integer) => match (integer(number), self.integer) {
                (None, _) => Err(format!("expected {}, found {number}: {INTEGER_SYNTAX}", expected())),
                (Some(n), Some(format)) if !format.holds(n) => {
                    Err(format!("{number} is out of range for {} ({} to {})", format.name, format.min, format.max))
                }
                (Some(_), _) => Ok(()),
            },
            _ => Err(format!("expected {}, found {found}", expected())),
        }
    }
}

impl<'i> Keyword<'i> for TypeKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        self.check(instance).map_err(ValidationError::custom)
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.check(instance).is_ok()
    }
}

/// What an integer must look like for serde to take it as one.
const INTEGER_SYNTAX: &str = "an integer is written without a fraction or exponent and fits in 64 bits";

/// The value of a number written as an integer (serde_json holds one that fits `i64` or `u64`
/// as such; anything else, `1.0`, `1e3` or `2^64`, is a float).
fn integer(number: &Number) -> Option<i128> {
    number.as_i64().map(i128::from).or_else(|| number.as_u64().map(i128::from))
}

/// A Rust integer type as `schemars` names it in `format`, with the values it holds.
#[derive(Debug, Clone, Copy)]
struct IntegerFormat {
    name: &'static str,
    min: i128,
    max: u128,
}

impl IntegerFormat {
    /// Every integer format `schemars` writes (`int`/`uint` are `isize`/`usize`).
    const ALL: [IntegerFormat; 12] = [
        IntegerFormat::new("int8", i8::MIN as i128, i8::MAX as u128),
        IntegerFormat::new("int16", i16::MIN as i128, i16::MAX as u128),
        IntegerFormat::new("int32", i32::MIN as i128, i32::MAX as u128),
        IntegerFormat::new("int64", i64::MIN as i128, i64::MAX as u128),
        IntegerFormat::new("int128", i128::MIN, i128::MAX as u128),
        IntegerFormat::new("int", isize::MIN as i128, isize::MAX as u128),
        IntegerFormat::new("uint8", 0, u8::MAX as u128),
        IntegerFormat::new("uint16", 0, u16::MAX as u128),
        IntegerFormat::new("uint32", 0, u32::MAX as u128),
        IntegerFormat::new("uint64", 0, u64::MAX as u128),
        IntegerFormat::new("uint128", 0, u128::MAX),
        IntegerFormat::new("uint", 0, usize::MAX as u128),
    ];

    const fn new(name: &'static str, min: i128, max: u128) -> Self {
        IntegerFormat { name, min, max }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.name == name)
    }

    fn holds(self, n: i128) -> bool {
        match u128::try_from(n) {
            Ok(n) => n <= self.max,
            Err(_) => n >= self.min,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroI64, NonZeroU32};

    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    fn args_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "count": {"type": "integer", "format": "uint32", "minimum": 0},
                "reason": {"type": ["string", "null"]}
            },
            "required": ["user_id", "count"],
            "additionalProperties": false
        })
    }

    /// A number as a model or an admin writes it, parsed as every caller parses it.
    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// [`super::validate`], its error as the text it shows.
    fn validate(schema: &Value, value: &Value) -> Result<(), String> {
        super::validate(schema, value).map_err(|error| error.to_string())
    }

    #[test]
    fn errors_say_which_kind_they_are() {
        let mismatch = super::validate(&args_schema(), &json!({"user_id": 42, "count": 3})).unwrap_err();
        let expected = "expected string, found number";
        assert_eq!(mismatch, SchemaError::Mismatch { path: "$.user_id".into(), reason: expected.into() });
        let invalid = super::validate(&json!({"type": "strnig"}), &json!(1)).unwrap_err();
        assert!(
            matches!(invalid, SchemaError::InvalidSchema { ref reason } if reason.starts_with("at /type: ")),
            "{invalid:?}"
        );
    }

    /// Checks `{"v": value}` against an object whose one property `v` has `field` as its schema.
    fn check_field(field: Value, value: Value) -> Result<(), String> {
        let schema = json!({"type": "object", "properties": {"v": field}});
        validate(&schema, &json!({ "v": value }))
    }

    #[test]
    fn accepts_fitting_values() {
        assert_eq!(validate(&args_schema(), &json!({"user_id": "42", "count": 3})), Ok(()));
        assert_eq!(validate(&args_schema(), &json!({"user_id": "42", "count": 3, "reason": null})), Ok(()));
    }

    #[test]
    fn names_the_offending_field() {
        let err = validate(&args_schema(), &json!({"user_id": 42, "count": 3})).unwrap_err();
        assert_eq!(err, "$.user_id: expected string, found number");
        let err = validate(&args_schema(), &json!({"user_id": "42", "count": 3, "reason": 1})).unwrap_err();
        assert_eq!(err, "$.reason: expected string or null, found number");
        let err = validate(&args_schema(), &json!({"user_id": "42"})).unwrap_err();
        assert_eq!(err, "$: \"count\" is a required property");
        let err = validate(&args_schema(), &json!({"user_id": "42", "count": -1})).unwrap_err();
        assert_eq!(err, "$.count: -1 is less than the minimum of 0");
        let err = validate(&args_schema(), &json!({"user_id": "42", "count": 1, "x": 1})).unwrap_err();
        assert_eq!(err, "$: Additional properties are not allowed ('x' was unexpected)");
        let err =
            validate(&json!({"items": {"properties": {"n": {"type": "integer"}}}}), &json!([{"n": 1}, {"n": "2"}]))
                .unwrap_err();
        assert_eq!(err, "$[1].n: expected integer, found string");
    }

    #[test]
    fn splits_user_input_fields_off() {
        let (model, person) = split_properties(&args_schema(), &["reason".into(), "count".into()]);
        assert_eq!(model["properties"], json!({"user_id": {"type": "string"}}));
        assert_eq!(model["required"], json!(["user_id"]));
        assert_eq!(person["required"], json!(["count"]));
        assert!(person["properties"].get("reason").is_some());
    }

    #[test]
    fn follows_local_references_and_any_of() {
        let schema = json!({
            "type": "object",
            "properties": {"inner": {"anyOf": [{"$ref": "#/definitions/Inner"}, {"type": "null"}]}},
            "definitions": {"Inner": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}
        });
        assert_eq!(validate(&schema, &json!({"inner": {"n": 1}})), Ok(()));
        assert_eq!(validate(&schema, &json!({"inner": null})), Ok(()));
        assert!(validate(&schema, &json!({"inner": {"n": "x"}})).is_err());
    }

    #[test]
    fn every_keyword_is_enforced_and_the_error_names_the_value() {
        let cases = [
            (
                json!({"oneOf": [{"type": "integer"}, {"minimum": 0}]}),
                json!(-1),
                json!(1),
                "$.v: 1 is valid under more than one of the schemas listed in the 'oneOf' keyword",
            ),
            (
                json!({"type": "string", "pattern": "^[0-9]+$"}),
                json!("42"),
                json!("4x2"),
                r#"$.v: "4x2" does not match "^[0-9]+$""#,
            ),
            (
                json!({"type": "string", "minLength": 2}),
                json!("ab"),
                json!("a"),
                r#"$.v: "a" is shorter than 2 characters"#,
            ),
            (
                json!({"type": "string", "maxLength": 3}),
                json!("abc"),
                json!("abcd"),
                r#"$.v: "abcd" is longer than 3 characters"#,
            ),
            (json!({"type": "array", "minItems": 1}), json!([1]), json!([]), "$.v: [] has less than 1 item"),
            (
                json!({"type": "array", "maxItems": 2}),
                json!([1, 2]),
                json!([1, 2, 3]),
                "$.v: [1,2,3] has more than 2 items",
            ),
            (
                json!({"type": "number", "exclusiveMinimum": 0}),
                json!(0.5),
                json!(0),
                "$.v: 0 is less than or equal to the minimum of 0",
            ),
            (json!({"type": "integer", "multipleOf": 5}), json!(10), json!(7), "$.v: 7 is not a multiple of 5"),
            (
                json!({"type": "array", "uniqueItems": true}),
                json!([1, 2]),
                json!([1, 1]),
                "$.v: [1,1] has non-unique elements",
            ),
            (
                json!({"type": "string", "format": "date-time"}),
                json!("2024-05-01T10:00:00Z"),
                json!("yesterday"),
                r#"$.v: "yesterday" is not a "date-time""#,
            ),
            (
                json!({"type": "integer", "format": "uint32"}),
                json!(7),
                json!(4_294_967_296_u64),
                "$.v: 4294967296 is out of range for uint32 (0 to 4294967295)",
            ),
        ];
        for (field, good, bad, message) in cases {
            assert_eq!(check_field(field.clone(), good.clone()), Ok(()), "{field} takes {good}");
            assert_eq!(check_field(field, bad).unwrap_err(), message);
        }
    }

    #[test]
    fn string_formats_accept_what_the_types_parse() {
        let fits = |format: &str, text: &str| check_field(json!({"type": "string", "format": format}), json!(text));
        assert_eq!(fits("uuid", "67e55044-10b1-426f-9247-bb680e5fe0c8"), Ok(()));
        assert_eq!(fits("uuid", "67e5504410b1426f9247bb680e5fe0c8"), Ok(()), "Uuid parses the simple form too");
        assert_eq!(fits("uuid", "67e55044").unwrap_err(), r#"$.v: "67e55044" is not a "uuid""#);
        assert_eq!(fits("ip", "10.0.0.1"), Ok(()));
        assert_eq!(fits("ip", "::1"), Ok(()));
        assert_eq!(fits("ip", "10.0.0").unwrap_err(), r#"$.v: "10.0.0" is not a "ip""#);
        assert!(fits("ipv4", "10.0.0.256").is_err());
        assert!(fits("email", "no-at-sign").is_err());
        assert!(fits("date", "2024-02-30").is_err());
        assert_eq!(fits("partial-date-time", "anything"), Ok(()), "an unknown format is an annotation");
    }

    #[test]
    fn integer_formats_hold_their_types_bounds() {
        let cases: [(&str, [String; 2], [String; 2]); 12] = [
            ("int8", bounds(i8::MIN, i8::MAX), beyond(i8::MIN, i8::MAX)),
            ("int16", bounds(i16::MIN, i16::MAX), beyond(i16::MIN, i16::MAX)),
            ("int32", bounds(i32::MIN, i32::MAX), beyond(i32::MIN, i32::MAX)),
            ("int64", bounds(i64::MIN, i64::MAX), beyond(i64::MIN, i64::MAX)),
            ("int", bounds(isize::MIN, isize::MAX), beyond(isize::MIN, isize::MAX)),
            ("uint8", bounds(u8::MIN, u8::MAX), beyond(u8::MIN, u8::MAX)),
            ("uint16", bounds(u16::MIN, u16::MAX), beyond(u16::MIN, u16::MAX)),
            ("uint32", bounds(u32::MIN, u32::MAX), beyond(u32::MIN, u32::MAX)),
            ("uint64", bounds(u64::MIN, u64::MAX), beyond(u64::MIN, u64::MAX)),
            ("uint", bounds(usize::MIN, usize::MAX), beyond(usize::MIN, usize::MAX)),
            // A JSON number held as an integer is at most 64 bits wide; past that it is a float.
            ("int128", bounds(i64::MIN, u64::MAX), ["1.5".into(), "18446744073709551616".into()]),
            ("uint128", bounds(u64::MIN, u64::MAX), ["-1".into(), "18446744073709551616".into()]),
        ];
        for (format, inside, outside) in cases {
            let field = json!({"type": "integer", "format": format});
            for text in inside {
                assert_eq!(check_field(field.clone(), parsed(&text)), Ok(()), "{format} takes {text}");
            }
            for text in outside {
                let err = check_field(field.clone(), parsed(&text)).unwrap_err();
                assert!(err.starts_with("$.v: "), "{format} refuses {text}: {err}");
                assert!(err.contains("out of range for") || err.contains("expected integer"), "{err}");
            }
        }
        let err = check_field(json!({"type": "integer", "format": "int8"}), json!(128)).unwrap_err();
        assert_eq!(err, "$.v: 128 is out of range for int8 (-128 to 127)");
        let err =
            check_field(json!({"type": "integer", "format": "int64"}), parsed("9223372036854775808")).unwrap_err();
        assert_eq!(
            err,
            "$.v: 9223372036854775808 is out of range for int64 (-9223372036854775808 to 9223372036854775807)"
        );
    }

    fn bounds(min: impl ToString, max: impl ToString) -> [String; 2] {
        [min.to_string(), max.to_string()]
    }

    fn beyond<T: TryInto<i128, Error: std::fmt::Debug>>(min: T, max: T) -> [String; 2] {
        let (min, max) = (min.try_into().unwrap(), max.try_into().unwrap());
        [(min - 1).to_string(), (max + 1).to_string()]
    }

    #[test]
    fn integers_written_as_floats_are_refused_with_or_without_a_format() {
        for field in [
            json!({"type": "integer"}),
            json!({"type": "integer", "format": "int64"}),
            json!({"type": ["integer", "null"], "format": "uint32"}),
        ] {
            for text in ["1.0", "-0.0", "1e3", "1E2", "1e20", "0.5"] {
                let err = check_field(field.clone(), parsed(text)).unwrap_err();
                assert!(err.starts_with("$.v: expected integer"), "{field} refuses {text}: {err}");
                assert!(
                    err.ends_with("an integer is written without a fraction or exponent and fits in 64 bits"),
                    "{err}"
                );
            }
        }
        let err = check_field(json!({"type": "integer"}), parsed("1.0")).unwrap_err();
        assert_eq!(
            err,
            "$.v: expected integer, found 1.0: an integer is written without a fraction or exponent and fits in 64 bits"
        );
        for format in ["float", "double"] {
            for text in ["1.0", "1e20", "7"] {
                assert_eq!(check_field(json!({"type": "number", "format": format}), parsed(text)), Ok(()));
            }
        }
    }

    #[test]
    fn a_plain_integer_is_any_integer_that_fits_64_bits() {
        let plain = json!({"type": "integer"});
        for text in ["-9223372036854775808", "0", "18446744073709551615"] {
            assert_eq!(check_field(plain.clone(), parsed(text)), Ok(()), "{text}");
        }
        assert!(check_field(plain, parsed("18446744073709551616")).is_err());
    }

    /// The checker and serde agree on every number, for the schema `schemars` writes for each type.
    #[test]
    fn numbers_are_judged_as_serde_judges_them() {
        fn agree<T: JsonSchema + DeserializeOwned>(name: &str) {
            let schema = schema_for::<T>();
            let validator = Validator::new(&schema).unwrap();
            let mut texts: Vec<String> =
                ["0", "1", "-1", "1.0", "-0.0", "0.5", "1e3", "1e20", "-1e20", "1e300", "\"1\"", "null", "true"]
                    .map(String::from)
                    .to_vec();
            for bound in
                [i8::MIN.into(), i8::MAX.into(), u8::MAX.into(), i16::MIN.into(), i16::MAX.into(), u16::MAX.into()]
                    .into_iter()
                    .chain([
                        i32::MIN.into(),
                        i32::MAX.into(),
                        u32::MAX.into(),
                        i64::MIN.into(),
                        i64::MAX.into(),
                        u64::MAX.into(),
                    ])
            {
                let bound: i128 = bound;
                texts.extend([bound - 1, bound, bound + 1].map(|n| n.to_string()));
            }
            for text in texts {
                let value = parsed(&text);
                let checked = validator.validate(&value);
                let deserialized = serde_json::from_value::<T>(value).map(drop).map_err(|e| e.to_string());
                assert_eq!(
                    checked.is_ok(),
                    deserialized.is_ok(),
                    "{name} {text}: {checked:?} but serde {deserialized:?}"
                );
            }
        }
        agree::<i8>("i8");
        agree::<i16>("i16");
        agree::<i32>("i32");
        agree::<i64>("i64");
        agree::<i128>("i128");
        agree::<isize>("isize");
        agree::<u8>("u8");
        agree::<u16>("u16");
        agree::<u32>("u32");
        agree::<u64>("u64");
        agree::<u128>("u128");
        agree::<usize>("usize");
        agree::<f32>("f32");
        agree::<f64>("f64");
        agree::<Option<u32>>("Option<u32>");
        agree::<NonZeroU32>("NonZeroU32");
        agree::<NonZeroI64>("NonZeroI64");
    }

    #[test]
    fn an_invalid_schema_is_an_error_not_a_panic() {
        for (schema, message) in [
            (json!({"type": "strnig"}), "at /type: "),
            (json!({"properties": {"n": {"type": 5}}}), "at /properties/n/type: "),
            (json!({"pattern": "("}), "at /pattern: "),
            (json!({"minLength": -1}), "at /minLength: "),
            (json!({"$ref": "#/definitions/Missing"}), "Pointer '/definitions/Missing' does not exist"),
            (json!(5), "5 is not of types"),
        ] {
            let err = validate(&schema, &json!(1)).unwrap_err();
            assert!(err.starts_with("the schema is not valid JSON Schema: "), "{schema}: {err}");
            assert!(err.contains(message), "{schema}: {err}");
        }
    }

    #[test]
    fn references_outside_the_schema_are_never_fetched() {
        for reference in ["https://example.com/schema.json", "file:///etc/hostname"] {
            let err = validate(&json!({"$ref": reference}), &json!(1)).unwrap_err();
            assert!(err.starts_with("the schema is not valid JSON Schema: "), "{err}");
            assert!(err.contains(reference), "{err}");
        }
    }

    #[test]
    fn a_schema_naming_its_dialect_is_read_in_it() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array",
            "prefixItems": [{"type": "integer"}],
        });
        assert_eq!(validate(&schema, &json!([1])), Ok(()));
        assert_eq!(
            validate(&schema, &json!([1.5])).unwrap_err(),
            "$[0]: expected integer, found 1.5: an integer is written without a fraction or exponent and fits in 64 bits"
        );
    }

    #[test]
    fn a_compiled_validator_checks_many_values() {
        let validator = Validator::new(&args_schema()).unwrap();
        assert_eq!(validator.validate(&json!({"user_id": "1", "count": 1})), Ok(()));
        assert_eq!(
            validator.validate(&json!({"user_id": 1, "count": 1})).unwrap_err().to_string(),
            "$.user_id: expected string, found number"
        );
        assert_eq!(validator.validate(&json!({"user_id": "2", "count": 2})), Ok(()));
    }
}
