//! The bodies of the run and continue routes: the reference's form fields (urlencoded or
//! multipart), or the same fields as a JSON object, read into one typed request with precise
//! refusals.

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::{form_fields, is_content_type, multipart, names_no_type, read_body};

/// The reference's fields of a run's start that kern has no meaning for.
const UNSUPPORTED_ON_START: [&str; 12] = [
    "output_schema",
    "session_state",
    "dependencies",
    "metadata",
    "knowledge_filters",
    "images",
    "audio",
    "videos",
    "input_files",
    "files_metadata",
    "factory_input",
    "version",
];

/// The fields of a run or continue request, whichever encoding carried them.
#[derive(Debug, Default)]
pub struct RunFields {
    fields: Map<String, Value>,
}

impl<S: Send + Sync> FromRequest<S> for RunFields {
    type Rejection = ApiError;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if names_no_type(request.headers()) {
            // A body sent without a type is read as the reference's form, which axum reads only
            // when it is named.
            let form = HeaderValue::from_static("application/x-www-form-urlencoded");
            request.headers_mut().insert(CONTENT_TYPE, form);
        }
        let headers = request.headers();
        let fields = if is_content_type(headers, "application/json") {
            let (_, body) = read_body(request).await?;
            serde_json::from_slice::<Map<String, Value>>(&body)
                .map_err(|err| ApiError::unprocessable(format!("the body must be a JSON object: {err}")))?
        } else if is_content_type(headers, "application/x-www-form-urlencoded") {
            let fields = form_fields(request).await.map_err(|err| match err.status {
                StatusCode::UNPROCESSABLE_ENTITY => {
                    ApiError::unprocessable(format!("the form could not be read: {}", err.detail))
                }
                _ => err,
            })?;
            fields.into_iter().map(|(name, value)| (name, Value::String(value))).collect()
        } else if is_content_type(headers, "multipart/form-data") {
            text_parts(multipart(request, state).await?).await?
        } else {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the fields as application/x-www-form-urlencoded, multipart/form-data or application/json",
            ));
        };
        Ok(RunFields { fields })
    }
}

/// The named text parts of a multipart form. A file part is refused: runs take no files.
async fn text_parts(mut form: Multipart) -> Result<Map<String, Value>, ApiError> {
    let unreadable =
        |err: MultipartError| ApiError::unprocessable(format!("the form could not be read: {}", err.body_text()));
    let mut fields = Map::new();
    while let Some(part) = form.next_field().await.map_err(unreadable)? {
        let name = part.name().unwrap_or_default().to_owned();
        if part.file_name().is_some() {
            return Err(ApiError::bad_request(format!(
                "Unsupported file type: part `{name}` is a file; runs take none"
            )));
        }
        // Read as bytes: a part's text would be decoded lossily.
        let bytes = part.bytes().await.map_err(unreadable)?;
        let text = String::from_utf8(bytes.into())
            .map_err(|_| ApiError::unprocessable(format!("the form could not be read: `{name}` is not valid UTF-8")))?;
        fields.insert(name, Value::String(text));
    }
    Ok(fields)
}

impl RunFields {
    /// A text field; `None` when absent or empty.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ApiError::unprocessable(format!("`{name}` must be a string"))),
        }
    }

    /// A boolean field, spelled as the reference accepts it; `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
                "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
                _ => Err(ApiError::unprocessable(format!("`{name}` must be true or false, not `{text}`"))),
            },
            Some(_) => Err(ApiError::unprocessable(format!("`{name}` must be true or false"))),
        }
    }

    /// Whether field `name` says something: present, and neither empty (as text, a list or an
    /// object, or their JSON) nor the reference's spellings of null (`null`, `none`).
    fn given(&self, name: &str) -> bool {
        match self.fields.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::String(text)) => {
                !["", "null", "none", "[]", "{}"].contains(&text.trim().to_ascii_lowercase().as_str())
            }
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Object(fields)) => !fields.is_empty(),
            Some(_) => true,
        }
    }

    /// Refuses, on a run's start, the reference's fields whose meaning kern does not carry out
    /// (400): a run in the `background`, answered before it ends, and what a run of the
    /// reference is passed besides its message (a structured output, state, metadata, media, a
    /// component's version). Taken silently, the caller would get another answer than the one
    /// it asked for.
    pub fn refuse_unsupported_on_start(&self) -> Result<(), ApiError> {
        if self.flag("background", false)? {
            return Err(ApiError::bad_request(
                "`background` runs are not supported: kern answers once the run pauses or ends (stream it to follow \
                 it as it goes)",
            ));
        }
        if let Some(field) = UNSUPPORTED_ON_START.into_iter().find(|field| self.given(field)) {
            return Err(ApiError::bad_request(format!(
                "`{field}` is not supported: a kern run takes its `message`, `stream`, `session_id` and `user_id` only"
            )));
        }
        Ok(())
    }

    /// Refuses, on a continue, the reference's fields whose meaning kern does not carry out
    /// (400): a continue from elsewhere than the run's end, an extra message, a fork or a
    /// regeneration. (`background`, as in the reference without a queue, runs inline.)
    pub fn refuse_unsupported_on_continue(&self) -> Result<(), ApiError> {
        if let Some(from) = self.text("continue_from")?.filter(|from| from != "end") {
            return Err(ApiError::bad_request(format!(
                "Invalid continue_from `{from}`: kern continues a run from its `end` only"
            )));
        }
        for field in ["input", "additional_instructions"] {
            if self.text(field)?.is_some() {
                return Err(ApiError::bad_request(format!(
                    "`{field}` is not supported on a continue: kern resumes a run with the answers to its calls only"
                )));
            }
        }
        for field in ["fork", "regenerate", "replace_original"] {
            if self.flag(field, false)? {
                return Err(ApiError::bad_request(format!("`{field}` is not supported on a continue")));
            }
        }
        Ok(())
    }

    /// A list of JSON objects, given as a JSON-encoded string (the reference's form) or as an
    /// array; empty when absent, empty or `[]`.
    pub fn objects(&self, name: &str) -> Result<Vec<Value>, ApiError> {
        let value = match self.fields.get(name) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::String(text)) if text.trim().is_empty() => return Ok(Vec::new()),
            Some(Value::String(text)) => serde_json::from_str(text)
                .map_err(|_| ApiError::bad_request(format!("Invalid JSON in {name} field")))?,
            Some(value) => value.clone(),
        };
        match value {
            Value::Array(items) if items.iter().all(Value::is_object) => Ok(items),
            _ => Err(ApiError::bad_request(format!("Invalid structure for {name}: expected an array of objects"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> RunFields {
        RunFields { fields: value.as_object().unwrap().clone() }
    }

    #[test]
    fn booleans_are_read_as_the_reference_spells_them() {
        let form = fields(json!({"stream": "False", "background": true, "bad": "maybe"}));
        assert!(!form.flag("stream", true).unwrap());
        assert!(form.flag("background", false).unwrap());
        assert!(form.flag("missing", true).unwrap());
        assert_eq!(form.flag("bad", false).unwrap_err().status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn fields_whose_meaning_kern_does_not_carry_out_are_refused() {
        assert!(fields(json!({"background": "false"})).refuse_unsupported_on_start().is_ok());
        let background = fields(json!({"background": "true"})).refuse_unsupported_on_start().unwrap_err();
        assert_eq!(background.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(background.detail.contains("`background`"), "{}", background.detail);
        let said_nothing =
            json!({"metadata": "{}", "output_schema": "null", "session_state": null, "images": [], "version": "None"});
        assert!(fields(said_nothing).refuse_unsupported_on_start().is_ok(), "empty or null is not given");
        for refused in [
            json!({"output_schema": "{\"type\":\"object\"}"}),
            json!({"images": [{"url": "x"}]}),
            json!({"version": "2"}),
        ] {
            let err = fields(refused.clone()).refuse_unsupported_on_start().unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{refused}");
        }
        let inline = json!({"background": "true", "continue_from": "end", "input": "", "fork": "false"});
        assert!(fields(inline).refuse_unsupported_on_continue().is_ok(), "as the reference without a queue");
        for refused in [
            json!({"continue_from": "last_user"}),
            json!({"continue_from": "3"}),
            json!({"input": "and also this"}),
            json!({"additional_instructions": "be brief"}),
            json!({"regenerate": "true"}),
        ] {
            let err = fields(refused.clone()).refuse_unsupported_on_continue().unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{refused}");
        }
    }

    #[test]
    fn a_list_may_be_json_text_or_an_array() {
        let form = fields(json!({"tools": "[{\"tool_call_id\":\"c\"}]", "requirements": [{"id": "r"}], "empty": "[]"}));
        assert_eq!(form.objects("tools").unwrap().len(), 1);
        assert_eq!(form.objects("requirements").unwrap().len(), 1);
        assert!(form.objects("empty").unwrap().is_empty());
        assert_eq!(fields(json!({"tools": "[1"})).objects("tools").unwrap_err().detail, "Invalid JSON in tools field");
        let not_objects = fields(json!({"tools": "[1, 2]"})).objects("tools").unwrap_err();
        assert!(!not_objects.detail.contains("int"), "no interpreter text: {}", not_objects.detail);
    }
}
