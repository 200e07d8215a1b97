//! The audit routes: the check of the whole trail, and the trail's events read in order, a
//! page at a time, for an export. Admins only: the trail names every user's rows.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use kern_core::keys::Scope;
use kern_core::trail;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryParams;
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
/// The next page starts after the last `seq` of this one. A page ends before a gap in the
/// `seq`s that may still fill (an event committing late, see [`trail::settled`]): a page
/// shorter than `limit`, even an empty one, may be followed by more, and a reader that wants
/// everything up to `last_seq` reads on until it gets there.
#[utoipa::path(get, path = "/audit/events", tag = "audit", params(TrailPageParams),
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
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::unprocessable("`limit` must be an integer from 1 to 1000"));
    }
    let mut events = state.store.events_after(after, limit).await?;
    events.truncate(trail::settled(&events, after, kern_core::now()));
    // Read second, it is at or past every event of the page.
    let last_seq = state.store.last_event_seq().await?;
    Ok(Json(TrailPage { data: events.iter().map(TrailEventResponse::from).collect(), last_seq }))
}
