//! JSON Schema: generating a tool's argument schema and checking values against it.
//!
//! The checker covers what `schemars` emits for argument structs (types, properties,
//! required, additionalProperties, items, enum, const, anyOf/oneOf/allOf, numeric bounds,
//! local `$ref`s). It is what lets `update_approval` refuse a resolution payload that does not
//! fit a tool without knowing the tool's Rust types.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

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

/// Checks `value` against `schema`; on failure, says where and why (`$.path: reason`).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    Checker { root: schema }.check(schema, value, "$")
}

struct Checker<'s> {
    root: &'s Value,
}

impl<'s> Checker<'s> {
    fn check(&self, schema: &'s Value, value: &Value, path: &str) -> Result<(), String> {
        let schema = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(format!("{path}: no value is allowed here")),
            Value::Object(map) => map,
            _ => return Ok(()),
        };
        if let Some(Value::String(reference)) = schema.get("$ref") {
            let target =
                self.resolve(reference).ok_or_else(|| format!("{path}: unresolvable schema reference {reference}"))?;
            self.check(target, value, path)?;
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
                return Err(format!("{path}: expected {}, found {}", allowed.join(" or "), type_name(value)));
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.contains(value) {
                return Err(format!("{path}: {value} is not one of {}", Value::Array(options.clone())));
            }
        }
        if let Some(constant) = schema.get("const") {
            if constant != value {
                return Err(format!("{path}: expected {constant}, found {value}"));
            }
        }
        self.check_number(schema, value, path)?;
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for sub in all {
                self.check(sub, value, path)?;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = schema.get(key) {
                let errors: Vec<String> = options.iter().filter_map(|sub| self.check(sub, value, path).err()).collect();
                if errors.len() == options.len() && !options.is_empty() {
                    return Err(errors.join("; "));
                }
            }
        }
        if let Value::Object(object) = value {
            self.check_object(schema, object, path)?;
        }
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        schema: &'s Map<String, Value>,
        object: &Map<String, Value>,
        path: &str,
    ) -> Result<(), String> {
        let empty = Map::new();
        let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    return Err(format!("{path}: missing required field `{name}`"));
                }
            }
        }
        for (name, field) in object {
            let field_path = format!("{path}.{name}");
            match (properties.get(name), schema.get("additionalProperties")) {
                (Some(sub), _) => self.check(sub, field, &field_path)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{path}: unknown field `{name}`")),
                (None, Some(extra @ Value::Object(_))) => self.check(extra, field, &field_path)?,
                (None, _) => {}
            }
        }
        Ok(())
    }

    fn check_number(&self, schema: &Map<String, Value>, value: &Value, path: &str) -> Result<(), String> {
        let Some(n) = value.as_f64() else { return Ok(()) };
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return Err(format!("{path}: {value} is less than the minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return Err(format!("{path}: {value} is greater than the maximum {max}"));
            }
        }
        Ok(())
    }

    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn accepts_fitting_values() {
        assert_eq!(validate(&args_schema(), &json!({"user_id": "42", "count": 3})), Ok(()));
        assert_eq!(validate(&args_schema(), &json!({"user_id": "42", "count": 3, "reason": null})), Ok(()));
    }

    #[test]
    fn names_the_offending_field() {
        let err = validate(&args_schema(), &json!({"user_id": 42, "count": 3})).unwrap_err();
        assert_eq!(err, "$.user_id: expected string, found number");
        let err = validate(&args_schema(), &json!({"user_id": "42"})).unwrap_err();
        assert_eq!(err, "$: missing required field `count`");
        let err = validate(&args_schema(), &json!({"user_id": "42", "count": -1})).unwrap_err();
        assert_eq!(err, "$.count: -1 is less than the minimum 0");
        let err = validate(&args_schema(), &json!({"user_id": "42", "count": 1, "x": 1})).unwrap_err();
        assert_eq!(err, "$: unknown field `x`");
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
}
