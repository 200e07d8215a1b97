//! Extractors whose refusals are the server's own errors, in the `{"detail": ...}` body every
//! error has: a JSON body (required or optional) or a query string that cannot be read is a
//! 422 with what was wrong. Bodies are read here, whole and within the server's
//! [`BodyLimits`] (413, 408), and only once the extractors before them let the caller in.
//! URL-encoded text (query strings and forms, the inbox's too) is decoded here, strictly.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt as _;
use percent_encoding::percent_decode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// What a request's body may be, as the server was built: put on every request by the router,
/// read by the extractors here.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The most bytes.
    pub bytes: usize,
    /// The longest it may take to arrive.
    pub timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits { bytes: 1024 * 1024, timeout: Duration::from_secs(30) }
    }
}

/// The request's body, whole, with the rest of the request: 413 past the limit (before any of
/// it is read when its length says so), 408 when it has not all arrived within the timeout, 422
/// when the connection broke as it was sent.
pub(crate) async fn read_body(request: Request) -> Result<(Parts, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let limits = parts.extensions.get::<BodyLimits>().copied().unwrap_or_default();
    let too_large = || {
        let detail = format!("the request body is larger than the limit of {} bytes", limits.bytes);
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
    };
    if body.size_hint().lower() > limits.bytes as u64 {
        return Err(too_large());
    }
    let read = async {
        let mut bytes = Vec::new();
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk =
                chunk.map_err(|err| ApiError::unprocessable(format!("the request body could not be read: {err}")))?;
            if bytes.len() + chunk.len() > limits.bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(read) => read.map(|bytes| (parts, bytes)),
        Err(_) => {
            let detail = format!("the request body did not arrive within {} ms", limits.timeout.as_millis());
            Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, detail))
        }
    }
}

/// A JSON body of type `T`, sent as `application/json` (or a `+json` type), or with no type at all
/// (as the reference reads it: `requests.post(url, data=json.dumps(..))` sends none).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        // 422, not 415: the reference's answer to a body of another type.
        if !reads_as_json(request.headers()) {
            return Err(ApiError::unprocessable("Expected request with `Content-Type: application/json`"));
        }
        let (_, body) = read_body(request).await?;
        json(&body).map(JsonBody)
    }
}

/// Whether a body sent with `headers` is read as JSON: it says it is, or says no type.
fn reads_as_json(headers: &HeaderMap) -> bool {
    names_no_type(headers) || is_json(headers)
}

/// Whether `headers` give a body no type: no `Content-Type`, or an empty one.
pub(crate) fn names_no_type(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_none_or(|value| value.as_bytes().trim_ascii().is_empty())
}

/// Whether `headers` name a JSON body: `application/json`, or a type ending `+json`.
fn is_json(headers: &HeaderMap) -> bool {
    is_content_type(headers, "application/json")
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| essence.trim().to_ascii_lowercase().ends_with("+json"))
}

/// `body` read as JSON of type `T`: 422 with what is wrong when it cannot be.
fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::unprocessable(format!("the body cannot be read: {err}")))
}

/// A JSON body of type `T` that may be left out: an empty body is `None`. A body is read as
/// JSON whatever its content type, so that a client sending none with a bare `POST` is served.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (_, body) = read_body(request).await?;
        if body.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        json(&body).map(|value| OptionalJsonBody(Some(value)))
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

/// The fields of a URL-encoded form body, in order: 415 for a body of another type, 422 where
/// a name or value is not UTF-8 once decoded (and as [`read_body`] refuses a body).
pub(crate) async fn form_fields(request: Request) -> Result<Vec<(String, String)>, ApiError> {
    if !is_content_type(request.headers(), "application/x-www-form-urlencoded") {
        let expected = "the form must be sent as application/x-www-form-urlencoded";
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, expected));
    }
    let (_, body) = read_body(request).await?;
    decode_urlencoded(&body).map_err(ApiError::unprocessable)
}

/// A multipart form, read whole first (see [`read_body`]).
pub(crate) async fn multipart<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<axum::extract::Multipart, ApiError> {
    let (parts, body) = read_body(request).await?;
    axum::extract::Multipart::from_request(Request::from_parts(parts, Body::from(body)), state)
        .await
        .map_err(|err| ApiError::unprocessable(format!("the form could not be read: {}", err.body_text())))
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

    #[test]
    fn a_body_is_read_as_json_when_it_says_so_or_says_no_type() {
        let mut headers = HeaderMap::new();
        assert!(reads_as_json(&headers), "no type, as the reference reads it");
        for (sent, json) in [("", true), ("application/merge-patch+json", true), ("text/plain", false)] {
            headers.insert(header::CONTENT_TYPE, sent.parse().unwrap());
            assert_eq!(reads_as_json(&headers), json, "{sent:?}");
        }
    }
}
