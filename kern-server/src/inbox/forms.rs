//! The inbox's forms: the fields generated from a tool's JSON Schema (user input, edited
//! arguments), the [`Decision`] a submitted decision form stands for, and the filters of a
//! page's query string. Values are typed by
//! the schema where they can be; one that does not fit is passed on as typed, so that the
//! store's validation refuses it with its own words, exactly as it refuses the API's.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use kern_core::approval::{Approval, Decision, PauseType};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::page::PageError;
use super::views::FieldView;
use crate::extract::{PathParams, check_query, form_fields};

/// The fields of a submitted form, in order.
#[derive(Default)]
pub struct FormFields(pub Vec<(String, String)>);

/// The sign-in form's `key` and every form's `csrf` token stay out of debug output, which may
/// reach a log.
impl std::fmt::Debug for FormFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.iter().map(|(name, value)| match name.as_str() {
            "key" | "csrf" => (name.as_str(), "<redacted>"),
            _ => (name.as_str(), value.as_str()),
        });
        f.debug_tuple("FormFields").field(&shown.collect::<Vec<_>>()).finish()
    }
}

impl FormFields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str())
    }

    /// The value of `name`, trimmed, when it is not empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned)
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = PageError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        form_fields(request)
            .await
            .map(FormFields)
            .map_err(|err| PageError::new(err.status, format!("The form could not be read: {}", err.detail)))
    }
}

/// A page's query string of type `T`: one that cannot be read (a filter named twice, say) is
/// the error page with 422, as the API answers it.
#[derive(Debug)]
pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check_query(parts).map_err(|reason| {
            PageError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("The address could not be read: {reason}"))
        })?;
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(PageQuery(value)),
            Err(rejection) => Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The address could not be read: {}", rejection.body_text()),
            )),
        }
    }
}

/// A page's path parameters of type `T`: one that cannot be read (not UTF-8 once decoded) is the
/// error page with 400, as the API answers it.
#[derive(Debug)]
pub struct PagePath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PagePath<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match PathParams::<T>::from_request_parts(parts, state).await {
            Ok(PathParams(value)) => Ok(PagePath(value)),
            Err(err) => Err(PageError::new(err.status, err.detail)),
        }
    }
}

/// The form prefix of user-input values.
const INPUT: &str = "input.";
/// The form prefix of edited arguments.
const ARG: &str = "arg.";

/// The properties of an object schema, with whether each is required.
fn properties(schema: &Value) -> Vec<(&String, &Value, bool)> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.iter().map(|(name, prop)| (name, prop, required.contains(&name.as_str()))).collect())
        .unwrap_or_default()
}

/// The JSON type a property holds (`integer`, `string`, ...): the first of its types other
/// than `null`, or empty when the schema does not say.
pub fn type_of(prop: &Value) -> &str {
    match prop.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|kind| *kind != "null").unwrap_or(""),
        _ => "",
    }
}

/// The fields of a form for the properties of `schema`, named `prefix` + property and filled
/// with `current` values.
fn fields(schema: &Value, prefix: &str, current: Option<&Map<String, Value>>) -> Vec<FieldView> {
    properties(schema)
        .into_iter()
        .map(|(name, prop, required)| {
            let value = current.and_then(|values| values.get(name)).or_else(|| prop.get("default"));
            let value = value.map(plain).unwrap_or_default();
            // An optional choice lists `null` among its values (`Option<Enum>`): the form's
            // "(not set)" stands for it.
            let mut options: Vec<String> = prop
                .get("enum")
                .and_then(Value::as_array)
                .map(|values| values.iter().filter(|value| !value.is_null()).map(plain).collect())
                .unwrap_or_default();
            // A value the list lacks is offered as it is, so that it is what the form sends back.
            if !options.is_empty() && !value.is_empty() && !options.contains(&value) {
                options.insert(0, value.clone());
            }
            let kind = match type_of(prop) {
                _ if !options.is_empty() => "select",
                "boolean" => "checkbox",
                "integer" | "number" => "number",
                // A line input would drop its line breaks.
                "string" if value.contains('\n') => "multiline",
                "string" => "text",
                _ => "json",
            };
            FieldView {
                name: format!("{prefix}{name}"),
                label: prop.get("title").and_then(Value::as_str).unwrap_or(name).to_owned(),
                kind,
                value,
                options,
                description: prop.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
                required,
            }
        })
        .collect()
}

/// The fields of a user-input form for `schema`.
pub fn input_fields(schema: &Value) -> Vec<FieldView> {
    fields(schema, INPUT, None)
}

/// The fields of an edit-then-approve form for the arguments schema `parameters`, filled with
/// the model's arguments.
pub fn edit_fields(parameters: &Value, args: &Value) -> Vec<FieldView> {
    fields(parameters, ARG, args.as_object())
}

/// A value as a person reads and types it: a string bare, anything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The value typed into a field of type `kind`: a number or a boolean when it reads as one,
/// JSON for a structured type, the text itself otherwise. `None` for an empty optional field.
fn typed(kind: &str, text: &str) -> Option<Value> {
    let trimmed = text.trim();
    match kind {
        // Browsers send a text area's line breaks as CRLF.
        "string" => Some(Value::String(text.replace("\r\n", "\n"))),
        _ if trimmed.is_empty() => None,
        "integer" => Some(trimmed.parse::<i64>().map_or_else(|_| Value::String(text.to_owned()), Value::from)),
        "number" => Some(
            trimmed
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(text.to_owned()), Value::Number),
        ),
        "boolean" => Some(Value::Bool(matches!(trimmed, "true" | "on" | "1"))),
        _ => Some(serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(text.to_owned()))),
    }
}

/// The values a form gives for the properties of `schema` under `prefix`; an unchecked
/// checkbox is `false`, and a choice left at "(not set)" no value.
fn form_values(schema: &Value, prefix: &str, form: &FormFields) -> Map<String, Value> {
    let mut values = Map::new();
    for (name, prop, _) in properties(schema) {
        let kind = type_of(prop);
        let value = match form.get(&format!("{prefix}{name}")) {
            Some("") if prop.get("enum").is_some() => None,
            Some(text) => typed(kind, text),
            None if kind == "boolean" => Some(Value::Bool(false)),
            None => None,
        };
        if let Some(value) = value {
            values.insert(name.clone(), value);
        }
    }
    values
}

/// The names `schema` requires.
fn required_of(schema: &Value) -> Vec<String> {
    let names = schema.get("required").and_then(Value::as_array);
    names.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// A field's value that says nothing: an empty text or an unchecked box.
fn is_blank(value: &Value) -> bool {
    matches!(value, Value::Bool(false)) || value.as_str().is_some_and(str::is_empty)
}

/// The decision a submitted form stands for (`action` = approve, reject or cancel), or what is
/// wrong with the form.
pub fn decision(row: &Approval, form: &FormFields) -> Result<Decision, String> {
    let note = form.text("note");
    match form.get("action") {
        Some("reject") => Ok(Decision::Reject { note }),
        Some("cancel") => Ok(Decision::Cancel { note }),
        Some("approve") => {
            let requirement = row.requirement();
            let values = match (row.pause_type, requirement.and_then(|r| r.user_input_schema.as_ref())) {
                (PauseType::UserInput, Some(schema)) => Some(form_values(schema, INPUT, form)),
                _ => None,
            };
            let result = match row.pause_type {
                PauseType::ExternalExecution => {
                    let text = form.text("result").ok_or("The external execution's result is required.")?;
                    Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
                }
                _ => None,
            };
            let edited = form.0.iter().any(|(name, _)| name.starts_with(ARG));
            let schema = row.policy.as_ref().filter(|policy| policy.allow_edit).and_then(|p| p.parameters.as_ref());
            let args = match schema {
                // Edits with nothing to read them by are refused, not dropped.
                None if edited => return Err("This call's arguments cannot be edited.".to_owned()),
                Some(parameters) if edited => {
                    let known: Vec<&String> = properties(parameters).into_iter().map(|(name, ..)| name).collect();
                    let mut unknown = form.0.iter().filter_map(|(name, _)| name.strip_prefix(ARG));
                    if let Some(name) = unknown.find(|name| !known.iter().any(|known| known == name)) {
                        return Err(format!("`{name}` is not an argument of this call."));
                    }
                    let mut args = row.tool_args.as_object().cloned().unwrap_or_default();
                    let required = required_of(parameters);
                    // A field sent back as it was shown is no edit: the argument keeps its value
                    // (`10` stays `10`, not the `10.0` its text reads as). One the model left out
                    // stays out unless the approver gave it a value: an empty optional field or
                    // an unchecked box is no edit.
                    let shown_as_was = |name: &String| {
                        let sent = form.get(&format!("{ARG}{name}")).map(|text| text.replace("\r\n", "\n"));
                        args.get(name).zip(sent).is_some_and(|(was, sent)| plain(was) == sent)
                    };
                    let given: Vec<(String, Value)> = form_values(parameters, ARG, form)
                        .into_iter()
                        .filter(|(name, _)| !shown_as_was(name))
                        .filter(|(name, value)| args.contains_key(name) || required.contains(name) || !is_blank(value))
                        .collect();
                    args.extend(given);
                    let args = Value::Object(args);
                    (args != row.tool_args).then_some(args)
                }
                _ => None,
            };
            Ok(Decision::Approve { note, values, result, args })
        }
        _ => Err("The form names no decision: approve, reject or cancel.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form(fields: &[(&str, &str)]) -> FormFields {
        FormFields(fields.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect())
    }

    #[test]
    fn fields_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "description": "In cents"},
                "reason": {"type": "string"},
                "urgent": {"type": "boolean"},
                "tier": {"enum": ["gold", "silver"]},
                "tags": {"type": ["array", "null"]}
            },
            "required": ["amount"]
        });
        let fields = input_fields(&schema);
        let kinds: Vec<_> = fields.iter().map(|field| (field.name.as_str(), field.kind, field.required)).collect();
        assert_eq!(
            kinds,
            [
                ("input.amount", "number", true),
                ("input.reason", "text", false),
                ("input.tags", "json", false),
                ("input.tier", "select", false),
                ("input.urgent", "checkbox", false)
            ]
        );
        assert_eq!(fields[0].description, "In cents");
    }

    #[test]
    fn typed_values_keep_what_does_not_fit_for_the_validator_to_refuse() {
        let schema =
            json!({"properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}, "s": {"type": "string"}}});
        let got = form_values(&schema, INPUT, &form(&[("input.n", "12"), ("input.s", " x ")]));
        assert_eq!(Value::Object(got), json!({"n": 12, "ok": false, "s": " x "}));
        let bad = form_values(&schema, INPUT, &form(&[("input.n", "lots"), ("input.ok", "on")]));
        assert_eq!(Value::Object(bad), json!({"n": "lots", "ok": true}));
        // An optional choice left at "(not set)" gives no value, not an empty text its enum lacks.
        let choice = json!({"properties": {"tier": {"type": ["string", "null"], "enum": ["gold", "silver", null]}}});
        assert_eq!(Value::Object(form_values(&choice, INPUT, &form(&[("input.tier", "")]))), json!({}));
        let given = form_values(&choice, INPUT, &form(&[("input.tier", "gold")]));
        assert_eq!(Value::Object(given), json!({"tier": "gold"}));
    }
}
