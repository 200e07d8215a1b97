//! The audit routes: the check of the whole trail, and the trail's events read in order, a
//! page at a time, for an export. Admins only: the trail names every user's rows.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use kern_core::follow::TrailReader;
use kern_core::keys::Scope;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryParams;
use crate::routes::paging::page_limit;
use crate::state::AppState;
use crate::wire::approval::{TrailEventResponse, TrailPage, TrailPageParams, VerifyResponse};

/// Events per page when the request names no `limit`.
const DEFAULT_LIMIT: u32 = 100;

/// Recomputes every row's hash chain: 200 when the trail holds, 409 with the first broken
/// link when it does not.
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

/// The trail's events stored after event `after`, in `seq` order: every row's, every kind.
/// The next page starts after the last `seq` of this one, and an empty page means the reader
/// has caught up.
///
/// A page ends before a gap in the `seq`s that may still fill: on Postgres an event may commit
/// after a later one, and a reader that moved past its `seq` would never see it. When such a
/// gap comes first, the answer waits for it to fill, for at most two seconds; after that the
/// missing `seq` counts as rolled back. A page shorter than `limit` may therefore be followed
/// by more at once.
#[utoipa::path(get, path = "/audit/events", operation_id = "audit_events", tag = "audit", params(TrailPageParams),
    responses((status = 200, body = TrailPage), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<TrailPageParams>,
) -> ApiResult<Json<TrailPage>> {
    caller.require(Scope::Admin)?;
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::unprocessable("`after` must be an event's `seq`: 0 or more"));
    }
    let limit = page_limit(params.limit, DEFAULT_LIMIT)?;
    let events = TrailReader::after(after).read_waiting(state.store.as_ref(), limit).await?;
    // Read second, it is at or past every event of the page.
    let last_seq = state.store.last_event_seq().await?;
    Ok(Json(TrailPage { data: events.iter().map(TrailEventResponse::from).collect(), last_seq }))
}
