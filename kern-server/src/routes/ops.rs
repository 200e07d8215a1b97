//! Operations: liveness, readiness (the database answers), Prometheus metrics, and the check
//! of the whole trail.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use kern_core::keys::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::wire::approval::VerifyResponse;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.count_pending_approvals(None).await?;
    Ok(Json(Health { status: "ok" }))
}

/// The Prometheus text exposition. Aggregates only, so it is served without credentials, as
/// scrapers expect.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let pending = state.store.count_pending_approvals(None).await?;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render(pending)))
}

/// Recomputes every row's hash chain: 200 when the trail holds, 409 with the first broken
/// link when it does not. Admins only.
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyResponse), (status = 409, body = VerifyResponse),
        (status = 403, body = ErrorBody)))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require(Scope::Admin)?;
    let report = state.store.verify_trail().await.map_err(ApiError::from)?;
    let status = if report.is_intact() { StatusCode::OK } else { StatusCode::CONFLICT };
    let broken = report
        .broken
        .as_ref()
        .map(|link| format!("approval {} event {}: {}", link.approval_id, link.index, link.reason));
    Ok((status, Json(VerifyResponse { ok: report.is_intact(), rows: report.approvals, events: report.events, broken })))
}
