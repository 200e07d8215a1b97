//! The `/keys` routes: admins issue, list and revoke the API keys callers sign in with.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kern_core::keys::{ApiKey, Scope};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, PathParams};
use crate::state::AppState;
use crate::wire::key::{CreateKeyBody, IssuedKeyResponse, KeyResponse};

/// Every key, revoked ones included, oldest first. Admins only.
#[utoipa::path(get, path = "/keys", operation_id = "list_keys", tag = "keys",
    responses((status = 200, body = Vec<KeyResponse>), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<KeyResponse>>> {
    caller.require(Scope::Admin)?;
    Ok(Json(state.store.api_keys().await?.iter().map(KeyResponse::from).collect()))
}

/// Issues a key; the answer carries its token, which is never shown again. Admins only.
#[utoipa::path(post, path = "/keys", tag = "keys", request_body = CreateKeyBody,
    responses((status = 201, body = IssuedKeyResponse), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> ApiResult<(StatusCode, Json<IssuedKeyResponse>)> {
    caller.require(Scope::Admin)?;
    // Every decision made with the key is recorded under its principal.
    if body.principal.trim().is_empty() {
        return Err(ApiError::unprocessable("`principal` must name who the key signs in"));
    }
    let scopes = body
        .scopes
        .iter()
        .map(|scope| scope.parse::<Scope>().map_err(|err| ApiError::unprocessable(format!("`scopes`: {err}"))))
        .collect::<ApiResult<Vec<_>>>()?;
    if scopes.is_empty() {
        return Err(ApiError::unprocessable("`scopes` must name at least one scope"));
    }
    let issued = ApiKey::issue(body.principal, body.roles, scopes);
    state.store.save_api_key(&issued.key).await?;
    Ok((StatusCode::CREATED, Json(IssuedKeyResponse { key: KeyResponse::from(&issued.key), token: issued.token })))
}

/// Revokes a key: it signs nobody in from now on. Admins only.
#[utoipa::path(delete, path = "/keys/{key_id}", tag = "keys", params(("key_id" = String, Path)),
    responses((status = 200, body = KeyResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<KeyResponse>> {
    caller.require(Scope::Admin)?;
    let key = state
        .store
        .revoke_api_key(&id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Key not found").typed("key_not_found"))?;
    Ok(Json(KeyResponse::from(&key)))
}
