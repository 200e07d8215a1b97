//! Extractors whose refusals are the server's own errors: a JSON body (required or optional)
//! or a query string that cannot be read is a 422 with what was wrong (a body over the limit a
//! 413), in the `{"detail": ...}` body every error has.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
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
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(ApiError::unprocessable(rejection.body_text())),
        }
    }
}
