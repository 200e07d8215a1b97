//! The `/approvals` routes: the reference's list, count, read, status, resolve and delete with
//! its wire contract (and its faults fixed), and kern's votes, cancel and trail.

use axum::Json;
use axum::extract::State;
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kern_core::Error;
use kern_core::approval::{
    Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalType, Decision, ListOrder, PageCursor, PauseType,
    Principal, SourceType,
};
use kern_core::keys::Scope;
use kern_core::limits;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, OptionalJsonBody, PathParams, QueryParams};
use crate::idempotency::{self, Reply};
use crate::routes::paging::page_limit;
use crate::state::AppState;
use crate::wire::approval::{
    ApprovalList, ApprovalResponse, CancelBody, CountParams, CountResponse, ListParams, PageMeta, ResolveBody,
    StatusResponse, TrailEventResponse, VoteBody, VoteResponse, VotesResponse, etag,
};

/// The reference's page size.
const DEFAULT_LIMIT: u32 = 100;

/// Lists rows, newest first.
#[utoipa::path(get, path = "/approvals", operation_id = "list_approvals", tag = "approvals", params(ListParams),
    responses((status = 200, body = ApprovalList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<ApprovalList>> {
    caller.require(Scope::ApprovalsRead)?;
    let query = list_query(&params, caller.own_user())?;
    let page =
        if matches_nothing(&params) { ApprovalPage::default() } else { state.store.list_approvals(&query).await? };
    let limit = query.effective_limit();
    let meta = PageMeta {
        // A cursor's page starts where the cursor points: `page` is not read then.
        page: if query.after.is_some() { 1 } else { query.page.unwrap_or(1) },
        limit,
        total_pages: page.total.div_ceil(u64::from(limit)),
        total_count: page.total,
        search_time_ms: 0.0,
        next_cursor: page.next_cursor.as_ref().map(ToString::to_string),
        unreadable: page.unreadable.iter().map(|row| row.id.clone()).collect(),
    };
    Ok(Json(ApprovalList { data: page.items.iter().map(ApprovalResponse::from).collect(), meta }))
}

/// True when a listing's filter names what no kern row has: a workflow or a schedule (kern has
/// neither), or a source or pause type kern does not know, which the reference matches as
/// free text (so `source_type=workflow` is an empty page, not an error).
fn matches_nothing(params: &ListParams) -> bool {
    params.workflow_id.is_some()
        || params.schedule_id.is_some()
        || params.source_type.as_deref().is_some_and(|text| text.parse::<SourceType>().is_err())
        || params.pause_type.as_deref().is_some_and(|text| text.parse::<PauseType>().is_err())
}

/// The store query of a listing's parameters (a source or pause type kern does not know is
/// left to [`matches_nothing`]); a caller confined to its own rows lists them whatever
/// `user_id` it asks for, as in the reference.
fn list_query(params: &ListParams, own_user: Option<&str>) -> ApiResult<ApprovalQuery> {
    // Text that is no number is refused as one out of range is.
    let limit = page_limit(params.limit.as_deref().map(|text| text.parse().unwrap_or(0)), DEFAULT_LIMIT)?;
    let page = match &params.page {
        None => 1,
        Some(text) => text
            .parse()
            .ok()
            .filter(|page| *page >= 1)
            .ok_or_else(|| ApiError::unprocessable("`page` must be an integer of at least 1"))?,
    };
    let mut query = ApprovalQuery { limit: Some(limit), page: Some(page), ..ApprovalQuery::default() };
    query.status = parse_enum::<ApprovalStatus>("status", &params.status)?;
    query.approval_type = parse_enum::<ApprovalType>("approval_type", &params.approval_type)?;
    query.pause_type = params.pause_type.as_deref().and_then(|text| text.parse().ok());
    query.source_type = params.source_type.as_deref().and_then(|text| text.parse().ok());
    query.agent_id.clone_from(&params.agent_id);
    query.team_id.clone_from(&params.team_id);
    query.user_id = own_user.map(str::to_owned).or_else(|| params.user_id.clone());
    query.run_id.clone_from(&params.run_id);
    query.session_id.clone_from(&params.session_id);
    query.tool_name.clone_from(&params.tool_name);
    query.created_after = parse_time("created_after", &params.created_after)?;
    query.created_before = parse_time("created_before", &params.created_before)?;
    query.expires_before = parse_time("expiring_before", &params.expiring_before)?;
    query.order = parse_enum::<ListOrder>("order", &params.order)?.unwrap_or_default();
    query.after = params
        .cursor
        .as_deref()
        .map(|text| text.parse::<PageCursor>().map_err(|err| ApiError::unprocessable(err.to_string())))
        .transpose()?;
    Ok(query)
}

fn parse_enum<T: std::str::FromStr<Err = kern_core::ParseEnumError>>(
    name: &str,
    text: &Option<String>,
) -> ApiResult<Option<T>> {
    text.as_deref()
        .map(|text| {
            text.parse().map_err(|err: kern_core::ParseEnumError| ApiError::unprocessable(format!("`{name}`: {err}")))
        })
        .transpose()
}

/// A time given as RFC 3339 or as epoch seconds, within the years a lookup may name.
fn parse_time(name: &str, text: &Option<String>) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(text) = text.as_deref() else { return Ok(None) };
    let parsed = match text.parse::<i64>() {
        Ok(seconds) => DateTime::from_timestamp(seconds, 0),
        Err(_) => DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc)),
    };
    parsed.filter(limits::is_time).map(Some).ok_or_else(|| {
        let (first, last) = (limits::TIME_YEARS.start(), limits::TIME_YEARS.end());
        ApiError::unprocessable(format!(
            "`{name}` must be an RFC 3339 time or epoch seconds in the years {first} to {last}, not `{text}`"
        ))
    })
}

/// Counts pending rows.
#[utoipa::path(get, path = "/approvals/count", tag = "approvals", params(CountParams),
    responses((status = 200, body = CountResponse), (status = 401, body = ErrorBody)))]
pub async fn count(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<CountParams>,
) -> ApiResult<Json<CountResponse>> {
    caller.require(Scope::ApprovalsRead)?;
    let user = caller.own_user().map(str::to_owned).or(params.user_id);
    let count = state.store.count_pending_approvals(user.as_deref()).await?;
    Ok(Json(CountResponse { count }))
}

/// The row `id` as the caller may see it: another user's row is not found, under isolation.
pub(crate) async fn visible_row(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Approval> {
    match state.store.get_approval(id).await? {
        Some(row) if caller.sees(&row) => Ok(row),
        _ => Err(ApiError::approval_not_found()),
    }
}

/// Reads a row, with its ETag.
#[utoipa::path(get, path = "/approvals/{approval_id}", operation_id = "get_approval", tag = "approvals",
    params(("approval_id" = String, Path)),
    responses((status = 200, body = ApprovalResponse, headers(("ETag" = String))), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    caller.require(Scope::ApprovalsRead)?;
    let row = visible_row(&state, &caller, &id).await?;
    Ok(with_etag(&row, Json(ApprovalResponse::from(&row))))
}

fn with_etag(row: &Approval, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(row)) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// Where a row stands.
#[utoipa::path(get, path = "/approvals/{approval_id}/status", tag = "approvals",
    params(("approval_id" = String, Path)),
    responses((status = 200, body = StatusResponse), (status = 404, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<StatusResponse>> {
    caller.require(Scope::ApprovalsRead)?;
    Ok(Json(StatusResponse::from(&visible_row(&state, &caller, &id).await?)))
}

/// Approves or rejects a row as the caller, under its policy. Answers 200 with the row once
/// decided, 202 with the row still pending when the caller's approval counts towards a quorum
/// not yet reached. `If-Match` refuses a row changed since it was read (412);
/// `Idempotency-Key` answers a repeated request as the first.
#[utoipa::path(post, path = "/approvals/{approval_id}/resolve", tag = "approvals",
    params(("approval_id" = String, Path), ("If-Match" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ResolveBody,
    responses((status = 200, body = ApprovalResponse, headers(("ETag" = String))),
        (status = 202, body = ApprovalResponse, headers(("ETag" = String))),
        (status = 400, body = ErrorBody, description = "A path parameter is not UTF-8 once decoded, or `If-Match` or `Idempotency-Key` is not text"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ResolveBody>,
) -> ApiResult<Response> {
    caller.require(Scope::ApprovalsWrite)?;
    caller.require_unconfined()?;
    let approve = match body.status.as_str() {
        "approved" => true,
        "rejected" => false,
        other => {
            return Err(ApiError::unprocessable(format!("`status` must be `approved` or `rejected`, not `{other}`")));
        }
    };
    let decider = caller.decider(body.resolved_by);
    let Some(key) = header_text(&headers, "idempotency-key")? else {
        return decide_resolve(&state, &caller, &decider, &id, &headers, approve, body.resolution_data)
            .await
            .map(IntoResponse::into_response);
    };
    if key.is_empty() || key.len() > idempotency::MAX_KEY_LEN {
        return Err(ApiError::unprocessable(format!(
            "`Idempotency-Key` must be 1 to {} bytes",
            idempotency::MAX_KEY_LEN
        )));
    }
    if !limits::is_key(&id) {
        return Err(ApiError::approval_not_found());
    }
    // The condition is part of the request: the same key with another `If-Match` is another
    // request, refused as any other.
    let if_match = if_match(&headers)?;
    let request = idempotency::request_digest(
        &json!({"status": body.status, "resolution_data": body.resolution_data, "if_match": if_match}),
    );
    let slot = state.replies.slot(format!("{}\n{id}\n{key}", decider.id));
    let mut kept = slot.lock().await;
    if let Some(reply) = kept.as_ref() {
        if reply.request != request {
            return Err(ApiError::unprocessable(
                "this `Idempotency-Key` was first used with another request: send a new key",
            ));
        }
        let mut response = (reply.status, Json(reply.body.clone())).into_response();
        if let Some(value) = reply.etag.as_deref().and_then(|etag| HeaderValue::from_str(etag).ok()) {
            response.headers_mut().insert(ETAG, value);
        }
        return Ok(response);
    }
    let outcome = decide_resolve(&state, &caller, &decider, &id, &headers, approve, body.resolution_data).await;
    // Answers that a retry could change (an unavailable database) are not kept.
    let answer = match &outcome {
        Ok(decided) => Some((decided.status, decided.body()?, Some(etag(&decided.row)))),
        Err(err) if !err.status.is_server_error() => Some((err.status, json!(err.body()), None)),
        Err(_) => None,
    }
    .map(|(status, body, etag)| Reply { request, status, body, etag });
    if answer.is_some() {
        *kept = answer;
    }
    outcome.map(IntoResponse::into_response)
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> ApiResult<Option<&'h str>> {
    headers
        .get(name)
        .map(|value| value.to_str().map_err(|_| ApiError::bad_request(format!("the `{name}` header must be text"))))
        .transpose()
}

/// The entity tags of the `If-Match` headers, which may be several and each a list: `None`
/// when there is none. An empty one is an empty list, which no row matches: a client whose
/// tag came out empty is refused rather than let through unchecked.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<Vec<&str>>> {
    let mut tags = Vec::new();
    for value in headers.get_all(IF_MATCH) {
        let value = value.to_str().map_err(|_| ApiError::bad_request("the `If-Match` header must be text"))?;
        tags.extend(value.split(',').map(str::trim).filter(|tag| !tag.is_empty()));
    }
    Ok(headers.contains_key(IF_MATCH).then_some(tags))
}

async fn decide_resolve(
    state: &AppState,
    caller: &Caller,
    decider: &Principal,
    id: &str,
    headers: &HeaderMap,
    approve: bool,
    data: Option<Value>,
) -> ApiResult<Decided> {
    let row = visible_row(state, caller, id).await?;
    if let Some(expected) = if_match(headers)?
        && !expected.iter().any(|tag| *tag == "*" || *tag == etag(&row))
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("the row has changed since it was read: its ETag is now {}", etag(&row)),
        ));
    }
    let fields: Vec<&str> = row.input_fields().collect();
    let decision = resolution_decision(approve, data, row.pause_type, &fields)?;
    decide(state, decider, &row, decision).await
}

/// The decision a resolve body stands for on a row of type `pause` whose call waits for the
/// values `input_fields`: the reference's `resolution_data` (a `note`, user-input `values` or
/// those values at its top level, an external `result`) and kern's edited `args`. A key it does
/// not take is refused rather than dropped: a misspelt `args` would approve the call unedited,
/// and a rejection's `reason` would be lost. Values given at the top level rather than under
/// `values` (an object) are read first: a key that names one of the call's values is that
/// value, even when kern also reads the name (a field called `note` is not the admin's note).
fn resolution_decision(
    approve: bool,
    data: Option<Value>,
    pause: PauseType,
    input_fields: &[&str],
) -> ApiResult<Decision> {
    let mut data = match data {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(_) => return Err(ApiError::unprocessable("`resolution_data` must be a JSON object")),
    };
    let user_input = approve && pause == PauseType::UserInput;
    let wrapped = matches!(data.get("values"), Some(Value::Object(_)));
    let mut flat = Map::new();
    if user_input && !wrapped {
        for &field in input_fields {
            if let Some((name, value)) = data.remove_entry(field) {
                flat.insert(name, value);
            }
        }
    }
    let note = match data.remove("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(note)) => Some(note),
        Some(_) => return Err(ApiError::unprocessable("`resolution_data.note` must be a string")),
    };
    if !approve {
        refuse_unknown(&data, "a rejection takes only `note`")?;
        return Ok(Decision::Reject { note: note.filter(|note| !note.is_empty()) });
    }
    let result = data.remove("result");
    let args = data.remove("args");
    let values = match data.remove("values") {
        Some(Value::Object(values)) => Some(values),
        Some(_) => return Err(ApiError::unprocessable("`resolution_data.values` must be a JSON object")),
        None if user_input && !(flat.is_empty() && data.is_empty()) => {
            flat.append(&mut data);
            Some(flat)
        }
        None => None,
    };
    refuse_unknown(
        &data,
        "an approval takes `note`, `values` (or a user-input call's values as they are), `result` and `args`",
    )?;
    Ok(Decision::Approve { note, values, result, args })
}

/// Refuses the keys of `resolution_data` left once those a decision takes are read, saying
/// which it takes (`takes`).
fn refuse_unknown(left: &Map<String, Value>, takes: &str) -> ApiResult<()> {
    if left.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = left.keys().map(String::as_str).collect();
    Err(ApiError::unprocessable(format!(
        "`resolution_data` has keys kern does not take ({}): {takes}",
        keys.join(", ")
    )))
}

/// Decides `row` as the caller and answers with the row as it then stands: the one path of
/// every decision over HTTP, the API's and the inbox's.
pub(crate) async fn decide(
    state: &AppState,
    decider: &Principal,
    row: &Approval,
    decision: Decision,
) -> ApiResult<Decided> {
    let decided = state.store.decide(&row.id, decider, decision).await?;
    state.metrics.decided(&decided);
    let status = if decided.status == ApprovalStatus::Pending { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok(Decided { status, row: decided })
}

/// A row as a decision left it: 200 once decided, 202 while a quorum is short.
pub struct Decided {
    status: StatusCode,
    row: Approval,
}

impl Decided {
    /// The row as the decision left it.
    pub(crate) fn row(&self) -> &Approval {
        &self.row
    }

    /// The JSON the answer carries, kept for a repeated `Idempotency-Key`.
    fn body(&self) -> ApiResult<Value> {
        serde_json::to_value(ApprovalResponse::from(&self.row))
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"))
    }
}

impl IntoResponse for Decided {
    fn into_response(self) -> Response {
        with_etag(&self.row, (self.status, Json(ApprovalResponse::from(&self.row))))
    }
}

/// Withdraws a pending row: it becomes `cancelled` (the trail is append-only, so nothing is
/// removed). It is withdrawn as the caller, under the row's policy, as a cancel is: the trail
/// names who withdrew it, and a caller the policy does not name is refused (403). A decided row
/// cannot be withdrawn (409).
#[utoipa::path(delete, path = "/approvals/{approval_id}", tag = "approvals",
    params(("approval_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::ApprovalsDelete)?;
    caller.require_unconfined()?;
    let row = visible_row(&state, &caller, &id).await?;
    match state.store.decide(&row.id, &caller.principal, Decision::Cancel { note: None }).await {
        Ok(withdrawn) => {
            state.metrics.decided(&withdrawn);
            Ok(StatusCode::NO_CONTENT)
        }
        Err(Error::ApprovalConflict { actual, .. }) => Err(ApiError::conflict(format!(
            "Approval is already '{actual}' and cannot be deleted: its trail is append-only"
        ))
        .typed("approval_conflict")),
        Err(err) => Err(err.into()),
    }
}

/// The votes cast on a row.
#[utoipa::path(get, path = "/approvals/{approval_id}/votes", tag = "approvals",
    params(("approval_id" = String, Path)),
    responses((status = 200, body = VotesResponse), (status = 404, body = ErrorBody)))]
pub async fn votes(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<VotesResponse>> {
    caller.require(Scope::ApprovalsRead)?;
    let row = visible_row(&state, &caller, &id).await?;
    let votes = state.store.votes(&id).await?;
    Ok(Json(VotesResponse {
        approval: ApprovalResponse::from(&row),
        votes: votes.iter().map(VoteResponse::from).collect(),
    }))
}

/// Casts the caller's vote (`approve` or `reject`) under the row's policy: 200 once the row is
/// decided, 202 while a quorum is still short, 403 for a principal the policy does not
/// allow, 409 for a second vote.
#[utoipa::path(post, path = "/approvals/{approval_id}/votes", tag = "approvals",
    params(("approval_id" = String, Path)), request_body = VoteBody,
    responses((status = 200, body = ApprovalResponse, headers(("ETag" = String))),
        (status = 202, body = ApprovalResponse, headers(("ETag" = String))),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn vote(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<VoteBody>,
) -> ApiResult<Decided> {
    caller.require(Scope::ApprovalsWrite)?;
    caller.require_unconfined()?;
    let decision = match body.decision.as_deref() {
        Some("approve") => {
            Decision::Approve { note: body.note, values: body.values, result: body.result, args: body.args }
        }
        Some("reject") if body.values.is_some() || body.result.is_some() || body.args.is_some() => {
            return Err(ApiError::unprocessable("a rejection carries a `note` only, not `values`, `result` or `args`"));
        }
        Some("reject") => Decision::Reject { note: body.note },
        _ => return Err(ApiError::unprocessable("`decision` must be `approve` or `reject`")),
    };
    let row = visible_row(&state, &caller, &id).await?;
    decide(&state, &caller.principal, &row, decision).await
}

/// Cancels a pending row as the caller, under its policy. When its run is continued, the call
/// does not run: the model is told its approval was cancelled, and the run goes on.
#[utoipa::path(post, path = "/approvals/{approval_id}/cancel", operation_id = "cancel_approval", tag = "approvals",
    params(("approval_id" = String, Path)), request_body(content = Option<CancelBody>),
    responses((status = 200, body = ApprovalResponse, headers(("ETag" = String))), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    OptionalJsonBody(body): OptionalJsonBody<CancelBody>,
) -> ApiResult<Decided> {
    caller.require(Scope::ApprovalsWrite)?;
    caller.require_unconfined()?;
    let note = body.and_then(|body| body.note);
    let row = visible_row(&state, &caller, &id).await?;
    decide(&state, &caller.principal, &row, Decision::Cancel { note }).await
}

/// The trail of a row: its events in chain order, with their hashes.
#[utoipa::path(get, path = "/approvals/{approval_id}/trail", tag = "approvals",
    params(("approval_id" = String, Path)),
    responses((status = 200, body = Vec<TrailEventResponse>), (status = 404, body = ErrorBody)))]
pub async fn trail(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Vec<TrailEventResponse>>> {
    caller.require(Scope::ApprovalsRead)?;
    visible_row(&state, &caller, &id).await?;
    let events = state.store.trail(&id).await?;
    Ok(Json(events.iter().map(TrailEventResponse::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_refused_with_the_parameter_it_cannot_read() {
        let bad = |params: ListParams| list_query(&params, None).unwrap_err().detail;
        assert!(bad(ListParams { limit: Some("0".into()), ..ListParams::default() }).contains("`limit`"));
        assert!(bad(ListParams { status: Some("done".into()), ..ListParams::default() }).contains("`status`"));
        assert!(
            bad(ListParams { created_after: Some("yesterday".into()), ..ListParams::default() })
                .contains("created_after")
        );
        assert!(bad(ListParams { cursor: Some("x".into()), ..ListParams::default() }).contains("page cursor"));
    }

    #[test]
    fn a_confined_caller_lists_its_own_rows_whatever_it_asks() {
        let params = ListParams { user_id: Some("bob".into()), ..ListParams::default() };
        assert_eq!(list_query(&params, Some("alice")).unwrap().user_id.as_deref(), Some("alice"));
        assert_eq!(list_query(&params, None).unwrap().user_id.as_deref(), Some("bob"));
    }

    #[test]
    fn resolution_data_becomes_a_decision() {
        let input =
            resolution_decision(true, Some(json!({"reason": "audit", "note": "ok"})), PauseType::UserInput, &[]);
        let Ok(Decision::Approve { note, values, .. }) = input else { panic!("an approval") };
        assert_eq!((note.as_deref(), values), (Some("ok"), json!({"reason": "audit"}).as_object().cloned()));
        let external = resolution_decision(true, Some(json!({"result": 7})), PauseType::ExternalExecution, &[]);
        assert!(matches!(external, Ok(Decision::Approve { result: Some(_), .. })));
        assert!(matches!(
            resolution_decision(false, None, PauseType::Confirmation, &[]),
            Ok(Decision::Reject { note: None })
        ));
        assert!(resolution_decision(true, Some(json!([1])), PauseType::Confirmation, &[]).is_err());
        // Keys a decision does not take are refused, not dropped.
        let misspelt = resolution_decision(true, Some(json!({"arg": {"amount": 1}})), PauseType::Confirmation, &[]);
        let detail = misspelt.unwrap_err().detail;
        assert!(detail.contains("(arg)") && detail.contains("`args`"), "{detail}");
        let reason = resolution_decision(false, Some(json!({"reason": "fraud"})), PauseType::Confirmation, &[]);
        assert!(reason.unwrap_err().detail.contains("only `note`"));
        let both = resolution_decision(true, Some(json!({"values": {}, "city": "Oslo"})), PauseType::UserInput, &[]);
        assert!(both.unwrap_err().detail.contains("(city)"));
        // A value the call waits for is that value, whatever its name.
        let named =
            resolution_decision(true, Some(json!({"note": "hi", "amount": 5})), PauseType::UserInput, &["note"]);
        let Ok(Decision::Approve { note, values, .. }) = named else { panic!("an approval") };
        assert_eq!((note, values), (None, json!({"note": "hi", "amount": 5}).as_object().cloned()));
    }
}
