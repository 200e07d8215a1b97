//! Extractors whose refusals are the server's own errors: a JSON body (required or optional)
//! or a query string that cannot be read is a 422 with what was wrong (a body over the limit a
//! 413), in the `{"detail": ...}` body every error has. URL-encoded text (query strings and
//! forms, the inbox's too) is decoded here, strictly.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use percent_encoding::percent_decode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(unreadable_body(rejection.status(), rejection.body_text())),
        }
    }
}

/// The error for a body that could not be read: 413 for one over the server's limit whatever it
/// holds, else 422.
pub(crate) fn unreadable_body(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE { ApiError::new(status, text) } else { ApiError::unprocessable(text) }
}

/// A JSON body of type `T` that may be left out: an empty body is `None`. A body is read as
/// JSON whatever its content type, so that a client sending none with a bare `POST` is served.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| unreadable_body(rejection.status(), rejection.body_text()))?;
        if body.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        serde_json::from_slice(&body)
            .map(|value| OptionalJsonBody(Some(value)))
            .map_err(|err| ApiError::unprocessable(format!("the body cannot be read: {err}")))
    }
}

/// A query string of type `T`.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check_query(parts).map_err(ApiError::unprocessable)?;
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(ApiError::unprocessable(rejection.body_text())),
        }
    }
}

/// Path parameters of type `T`. One that cannot be read (not UTF-8 once decoded) is refused in
/// the body every error has, rather than axum's plain text.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Refuses a query string with a name or value that is not UTF-8 once decoded. axum reads it
/// lossily: `%FF` and `%FE` would both read as U+FFFD, one filter or session standing for
/// another.
pub(crate) fn check_query(parts: &Parts) -> Result<(), String> {
    parts.uri.query().map_or(Ok(()), |query| decode_urlencoded(query.as_bytes()).map(drop))
}

/// Whether `headers` say the body is of the media type `essence` (such as
/// `application/json`), whatever its parameters and the case of its letters.
pub(crate) fn is_content_type(headers: &HeaderMap, essence: &str) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    value.split(';').next().is_some_and(|named| named.trim().eq_ignore_ascii_case(essence))
}

/// The fields of a URL-encoded form body, in order: 415 for a body of another type, 413 past
/// the body limit, 422 where a name or value is not UTF-8 once decoded.
pub(crate) async fn form_fields<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Vec<(String, String)>, (StatusCode, String)> {
    if !is_content_type(request.headers(), "application/x-www-form-urlencoded") {
        let expected = "the form must be sent as application/x-www-form-urlencoded";
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, expected.to_owned()));
    }
    let body = Bytes::from_request(request, state).await.map_err(|rejection| {
        let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        (status, rejection.body_text())
    })?;
    decode_urlencoded(&body).map_err(|reason| (StatusCode::UNPROCESSABLE_ENTITY, reason))
}

/// The name and value pairs of `application/x-www-form-urlencoded` text, refusing a name or
/// value that is not UTF-8 once decoded rather than replacing what it cannot read.
fn decode_urlencoded(encoded: &[u8]) -> Result<Vec<(String, String)>, String> {
    let decode = |part: &[u8]| -> Option<String> {
        let spaced: Vec<u8> = part.iter().map(|byte| if *byte == b'+' { b' ' } else { *byte }).collect();
        percent_decode(&spaced).decode_utf8().ok().map(Cow::into_owned)
    };
    encoded
        .split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode(name).ok_or("a field's name is not valid UTF-8")?;
            let value = decode(value).ok_or_else(|| format!("`{name}` is not valid UTF-8"))?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_text_is_decoded_strictly() {
        let pairs = decode_urlencoded(b"message=refund+order%20A-1&empty=&bare&caf%C3%A9=%E2%82%AC").unwrap();
        let expected = [("message", "refund order A-1"), ("empty", ""), ("bare", ""), ("café", "€")];
        assert_eq!(pairs, expected.map(|(name, value)| (name.to_owned(), value.to_owned())));
        assert_eq!(decode_urlencoded(b"session_id=%FF").unwrap_err(), "`session_id` is not valid UTF-8");
        assert_eq!(decode_urlencoded(b"note=ok&%C0=1").unwrap_err(), "a field's name is not valid UTF-8");
        assert_eq!(decode_urlencoded(b"").unwrap(), []);
    }

    #[test]
    fn content_types_are_matched_by_their_essence() {
        let mut headers = HeaderMap::new();
        assert!(!is_content_type(&headers, "application/json"));
        for sent in ["application/json", "Application/JSON", "application/json; charset=utf-8"] {
            headers.insert(header::CONTENT_TYPE, sent.parse().unwrap());
            assert!(is_content_type(&headers, "application/json"), "{sent}");
        }
        headers.insert(header::CONTENT_TYPE, "application/jsonx".parse().unwrap());
        assert!(!is_content_type(&headers, "application/json"));
    }
}
