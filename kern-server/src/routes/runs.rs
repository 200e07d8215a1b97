//! The run routes: start and continue agent and team runs with the reference's fields, read
//! and list runs, and cancel or release one. A continue is gated by the stored rows exactly as the library's is: whatever the
//! caller answers, a call with a pending row does not run.
//!
//! With `stream` (true unless `false` is given, as in the reference) the answer is the run's
//! events as they happen, in the reference's framing (see [`crate::wire::events`]): its start,
//! the model's answer in pieces, each tool call and its result, members' runs, and how it
//! stopped. A start or continue refused before the run goes anywhere (a row still pending, a
//! run not paused) is answered with its status code, as without `stream`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt as _, stream};
use kern_core::approval::{ApprovalStatus, PageCursor};
use kern_core::events::{RunEvent, RunStream};
use kern_core::keys::Scope;
use kern_core::run::{RunOptions, RunOutput, RunQuery, RunRecord, RunRequirement, RunStatus};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{OptionalJsonBody, PathParams, QueryParams};
use crate::routes::paging::page_limit;
use crate::state::AppState;
use crate::wire::events::Framer;
use crate::wire::form::RunFields;
use crate::wire::run::{AnswerWire, ReleaseBody, RunList, RunListParams, RunSummary, Runner, run_output};

/// Who a run route runs.
#[derive(Clone, Copy)]
enum Target {
    Agent,
    Team,
}

impl Target {
    fn not_found(self) -> ApiError {
        match self {
            Target::Agent => {
                ApiError::new(axum::http::StatusCode::NOT_FOUND, "Agent not found").typed("agent_not_found")
            }
            Target::Team => ApiError::new(axum::http::StatusCode::NOT_FOUND, "Team not found").typed("team_not_found"),
        }
    }
}

/// Starts an agent run.
#[utoipa::path(post, path = "/agents/{agent_id}/runs", tag = "runs", params(("agent_id" = String, Path)),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn agent_run(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(agent_id): PathParams<String>,
    fields: RunFields,
) -> ApiResult<Response> {
    start(state, caller, Target::Agent, agent_id, fields).await
}

/// Starts a team run.
#[utoipa::path(post, path = "/teams/{team_id}/runs", tag = "runs", params(("team_id" = String, Path)),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn team_run(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(team_id): PathParams<String>,
    fields: RunFields,
) -> ApiResult<Response> {
    start(state, caller, Target::Team, team_id, fields).await
}

/// Continues a paused agent run: `tools` holds the caller's answers (JSON text or an array).
#[utoipa::path(post, path = "/agents/{agent_id}/runs/{run_id}/continue", tag = "runs",
    params(("agent_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn agent_continue(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((agent_id, run_id)): PathParams<(String, String)>,
    fields: RunFields,
) -> ApiResult<Response> {
    resume(state, caller, Target::Agent, agent_id, run_id, fields).await
}

/// Continues a paused team run: `requirements` holds the caller's answers.
#[utoipa::path(post, path = "/teams/{team_id}/runs/{run_id}/continue", tag = "runs",
    params(("team_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn team_continue(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team_id, run_id)): PathParams<(String, String)>,
    fields: RunFields,
) -> ApiResult<Response> {
    resume(state, caller, Target::Team, team_id, run_id, fields).await
}

/// Lists runs, newest first (keyset paging: `next_cursor`); top-level runs only unless
/// `members=true`. Under isolation a caller without `admin` lists its own user's runs.
#[utoipa::path(get, path = "/runs", operation_id = "list_runs", tag = "runs", params(RunListParams),
    responses((status = 200, body = RunList), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<RunListParams>,
) -> ApiResult<Json<RunList>> {
    caller.require(Scope::RunsWrite).or_else(|_| caller.require(Scope::ApprovalsRead))?;
    let status = params
        .status
        .as_deref()
        .map(|text| {
            text.to_lowercase().parse::<RunStatus>().map_err(|err| ApiError::unprocessable(format!("`status`: {err}")))
        })
        .transpose()?;
    let limit = page_limit(params.limit, RunQuery::DEFAULT_LIMIT)?;
    let after = params
        .cursor
        .as_deref()
        .map(|text| text.parse::<PageCursor>().map_err(|err| ApiError::unprocessable(err.to_string())))
        .transpose()?;
    let query = RunQuery {
        status,
        agent_id: params.agent_id,
        team_id: params.team_id,
        user_id: caller.own_user().map(str::to_owned).or(params.user_id),
        session_id: params.session_id,
        members: params.members.unwrap_or(false),
        after,
        limit: Some(limit),
    };
    let page = state.store.list_runs(&query).await?;
    Ok(Json(RunList {
        data: page.items.iter().map(RunSummary::from).collect(),
        next_cursor: page.next_cursor.as_ref().map(ToString::to_string),
    }))
}

/// Reads a run.
#[utoipa::path(get, path = "/runs/{run_id}", operation_id = "get_run", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, description = "The run's output"), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(run_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Scope::RunsWrite).or_else(|_| caller.require(Scope::ApprovalsRead))?;
    let record = visible_run(&state, &caller, &run_id).await?;
    let output = RunOutput::from(record.clone());
    let runner = match (&record.agent_id, &record.team_id) {
        (Some(agent), _) => Runner::Agent(agent, None),
        (None, Some(team)) => Runner::Team(team),
        (None, None) => Runner::Unnamed,
    };
    Ok(Json(run_output(&output, Some(&record), runner)))
}

/// Reads a run of agent `agent_id`: the reference's poll.
#[utoipa::path(get, path = "/agents/{agent_id}/runs/{run_id}", tag = "runs",
    params(("agent_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, description = "The run's output"), (status = 404, body = ErrorBody)))]
pub async fn agent_poll(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((agent_id, run_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    poll(state, caller, Target::Agent, agent_id, run_id).await
}

/// Reads a run of team `team_id`: the reference's poll.
#[utoipa::path(get, path = "/teams/{team_id}/runs/{run_id}", tag = "runs",
    params(("team_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, description = "The run's output"), (status = 404, body = ErrorBody)))]
pub async fn team_poll(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team_id, run_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    poll(state, caller, Target::Team, team_id, run_id).await
}

/// Run `run_id`, when it is one of `target` `id`'s own (a team's, not its members').
async fn poll(state: AppState, caller: Caller, target: Target, id: String, run_id: String) -> ApiResult<Json<Value>> {
    caller.require(Scope::RunsWrite).or_else(|_| caller.require(Scope::ApprovalsRead))?;
    let record = visible_run(&state, &caller, &run_id).await?;
    let owned = match target {
        Target::Agent => record.agent_id.as_deref() == Some(id.as_str()),
        Target::Team => record.team_id.as_deref() == Some(id.as_str()) && record.parent_run_id.is_none(),
    };
    if !owned {
        return Err(ApiError::run_not_found(&run_id));
    }
    let output = RunOutput::from(record.clone());
    Ok(Json(run_output(&output, Some(&record), runner(&state, target, &id))))
}

/// Cancels a paused run as the caller: the run, its paused member runs and every row they
/// wait on become `cancelled`, on the trail too, in one transaction. Cancelling decides the
/// rows, so it asks what cancelling each row would: `approvals:write`, under isolation an
/// admin, and a principal each row's policy lets decide it (403 otherwise, nothing changed).
#[utoipa::path(post, path = "/runs/{run_id}/cancel", operation_id = "cancel_run", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = RunSummary), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(run_id): PathParams<String>,
) -> ApiResult<Json<RunSummary>> {
    caller.require(Scope::ApprovalsWrite)?;
    if caller.own_user().is_some() {
        return Err(ApiError::run_not_found(&run_id));
    }
    let run = state.store.cancel_run_as(&run_id, &caller.principal).await?;
    count_withdrawn(&state, &run, &caller.principal.id).await;
    Ok(Json(RunSummary::from(&run)))
}

/// Counts in the metrics each row that cancelling `run` withdrew as `principal`: cancelled by
/// them at the cancel's time, which stamps the run and its rows alike (a row they cancelled
/// before was counted then; those that had expired are the sweep's, not a decision here). The
/// rows are read again: a failed read leaves a row uncounted, never the cancel failed.
async fn count_withdrawn(state: &AppState, run: &RunRecord, principal: &str) {
    for id in run.waiting_on() {
        if let Ok(Some(row)) = state.store.get_approval(&id).await
            && row.status == ApprovalStatus::Cancelled
            && row.resolved_by.as_deref() == Some(principal)
            && row.resolved_at == Some(run.updated_at)
        {
            state.metrics.decided(&row);
        }
    }
}

/// Hands a run whose continue died back as paused, once it has been `running` for longer
/// than `stale_after_seconds` (the server's stale time when absent, and never less: a shorter
/// one could hand back a run whose continue is alive, and run its approved calls twice). The
/// next continue, the application's or a worker's, takes it and decides its calls from their
/// rows.
#[utoipa::path(post, path = "/runs/{run_id}/release", tag = "runs", params(("run_id" = String, Path)),
    request_body(content = Option<ReleaseBody>),
    responses((status = 200, body = RunSummary), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(run_id): PathParams<String>,
    OptionalJsonBody(body): OptionalJsonBody<ReleaseBody>,
) -> ApiResult<Json<RunSummary>> {
    caller.require(Scope::RunsWrite)?;
    let stale_after = match body.and_then(|body| body.stale_after_seconds).map(Duration::from_secs) {
        Some(asked) if asked < state.stale_after => {
            // In whole seconds, rounded up: the least a caller may ask for.
            let least = state.stale_after.as_secs() + u64::from(state.stale_after.subsec_nanos() > 0);
            return Err(ApiError::unprocessable(format!(
                "`stale_after_seconds` must be at least {least}, the server's stale time"
            )));
        }
        asked => asked.unwrap_or(state.stale_after),
    };
    visible_run(&state, &caller, &run_id).await?;
    let run = state.store.release_stale_run(&run_id, stale_after).await?;
    Ok(Json(RunSummary::from(&run)))
}

async fn visible_run(state: &AppState, caller: &Caller, run_id: &str) -> ApiResult<RunRecord> {
    match state.store.load_run(run_id).await? {
        Some(record) if caller.sees_user(record.user_id.as_deref()) => Ok(record),
        _ => Err(ApiError::run_not_found(run_id)),
    }
}

async fn start(state: AppState, caller: Caller, target: Target, id: String, fields: RunFields) -> ApiResult<Response> {
    caller.require(Scope::RunsWrite)?;
    let message = fields.text("message")?.ok_or_else(|| ApiError::unprocessable("`message` is required"))?;
    fields.refuse_unsupported_on_start()?;
    let stream = fields.flag("stream", true)?;
    let session_id = fields.text("session_id")?;
    if let (Some(user), Some(session_id)) = (caller.own_user(), &session_id) {
        // A session's runs are all its owner's: its latest tells whose it is.
        let latest = state.store.session_runs(session_id, 1).await?;
        if latest.iter().any(|run| run.user_id.as_deref() != Some(user)) {
            return Err(ApiError::session_not_found());
        }
    }
    let options = RunOptions { session_id, user_id: caller.run_user(fields.text("user_id")?) };
    let started = match target {
        Target::Agent => {
            let agent = state.agents.get(&id).ok_or_else(|| target.not_found())?;
            match stream {
                true => Started::Events(agent.run_stream_with(message, options)),
                false => Started::Done(Box::new(agent.run_with(message, options).await)),
            }
        }
        Target::Team => {
            let team = state.teams.get(&id).ok_or_else(|| target.not_found())?;
            match stream {
                true => Started::Events(team.run_stream_with(message, options)),
                false => Started::Done(Box::new(team.run_with(message, options).await)),
            }
        }
    };
    answer(state, target, id, started, false).await
}

async fn resume(
    state: AppState,
    caller: Caller,
    target: Target,
    id: String,
    run_id: String,
    fields: RunFields,
) -> ApiResult<Response> {
    caller.require(Scope::RunsWrite)?;
    match target {
        Target::Agent if !state.agents.contains_key(&id) => return Err(target.not_found()),
        Target::Team if !state.teams.contains_key(&id) => return Err(target.not_found()),
        _ => {}
    }
    let stream = fields.flag("stream", true)?;
    let session_id =
        fields.text("session_id")?.ok_or_else(|| ApiError::bad_request("session_id is required for this action"))?;
    fields.refuse_unsupported_on_continue()?;
    let record = visible_run(&state, &caller, &run_id).await?;
    if record.session_id != session_id {
        return Err(ApiError::run_not_found(&run_id));
    }
    let field = match target {
        Target::Agent => "tools",
        Target::Team => "requirements",
    };
    let paused: Vec<RunRequirement> = RunOutput::from(record).requirements;
    let answers = fields
        .objects(field)?
        .into_iter()
        .map(|answer| {
            serde_json::from_value::<AnswerWire>(answer)
                .map_err(|_| format!("Invalid structure or content for {field}"))
                .and_then(|answer| answer.into_requirement(&paused))
                .map(|mut requirement| {
                    // The caller decides the calls it answers: an audit call's row names them.
                    requirement.set_resolved_by(caller.principal.id.clone());
                    requirement
                })
                .map_err(ApiError::bad_request)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let started = match (target, stream) {
        (Target::Agent, true) => Started::Events(state.agents[&id].continue_stream(&run_id, answers)),
        (Target::Team, true) => Started::Events(state.teams[&id].continue_stream(&run_id, answers)),
        (Target::Agent, false) => Started::Done(Box::new(state.agents[&id].continue_run(&run_id, answers).await)),
        (Target::Team, false) => Started::Done(Box::new(state.teams[&id].continue_run(&run_id, answers).await)),
    };
    answer(state, target, id, started, true).await
}

/// A start or continue: carried out (without `stream`), or under way with its events.
enum Started {
    Done(Box<kern_core::Result<RunOutput>>),
    Events(RunStream),
}

/// The answer to a run or continue: its output as JSON, or its events as they happen. A
/// stream's first event tells a refusal (answered with its status code, the run unchanged)
/// from a run under way.
async fn answer(state: AppState, target: Target, id: String, started: Started, continued: bool) -> ApiResult<Response> {
    let mut events = match started {
        Started::Done(output) => return Ok(Json(body(&state, target, &id, &(*output)?).await).into_response()),
        Started::Events(events) => events,
    };
    let first = events.next().await.ok_or_else(ended_without_outcome)?;
    if let RunEvent::RunError { error, .. } = first {
        return Err(error.into());
    }
    let framer = Framer::new(runner(&state, target, &id), continued);
    let frames = stream::unfold(Some((state, events, Some(first), framer)), move |progress| {
        let id = id.clone();
        async move {
            let (state, mut events, mut pending, mut framer) = progress?;
            loop {
                let event = match pending.take() {
                    Some(event) => event,
                    None => match events.next().await {
                        Some(event) => event,
                        // The run's task ended without its outcome: the stream says so and ends.
                        None => return Some((error_frame(&mut framer, ended_without_outcome()), None)),
                    },
                };
                if let Some(frame) = framer.frame(&event) {
                    return Some((frame, Some((state, events, None, framer))));
                }
                if event.is_last() {
                    return Some((last_frame(&state, target, &id, &mut framer, event).await, None));
                }
            }
        }
    });
    let mut response = Sse::new(frames.map(Ok::<Event, Infallible>)).keep_alive(KeepAlive::default()).into_response();
    // The reference's content type names the charset.
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    Ok(response)
}

/// The run's output, when `event` ends the stream with one.
fn outcome(event: RunEvent) -> Option<RunOutput> {
    match event {
        RunEvent::RunPaused(output) | RunEvent::RunCompleted(output) | RunEvent::RunCancelled(output) => Some(*output),
        _ => None,
    }
}

/// The frame that ends a stream: the run's output under the name of how it stopped, or its error.
async fn last_frame(state: &AppState, target: Target, id: &str, framer: &mut Framer, event: RunEvent) -> Event {
    let name = match &event {
        RunEvent::RunPaused(_) => "RunPaused",
        RunEvent::RunCancelled(_) => "RunCancelled",
        _ => "RunCompleted",
    };
    match event {
        RunEvent::RunError { error, .. } => error_frame(framer, ApiError::from(error)),
        event => match outcome(event) {
            Some(output) => framer.last(name, &body(state, target, id, &output).await),
            None => error_frame(framer, ended_without_outcome()),
        },
    }
}

/// The `RunError` frame of `api`: its message and kern's name for it. Every error that ends a
/// stream is kern's own: a run's, or the end of its task.
fn error_frame(framer: &mut Framer, api: ApiError) -> Event {
    framer.error(api.error_type.unwrap_or("internal_error"), &api.detail)
}

/// A stream that ended before its run's outcome: the run's task died (a runtime shutting down).
fn ended_without_outcome() -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").typed("internal_error")
}

/// The run's output in the reference's shape, counted in the metrics. The stored run adds its
/// user, input and times; when it cannot be read they are left out, not the outcome: the run
/// is stored as the output says, and answering an error would have the caller run it again.
async fn body(state: &AppState, target: Target, id: &str, output: &RunOutput) -> Value {
    state.metrics.run(output.status);
    let record = match state.store.load_run(&output.run_id).await {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(run_id = %output.run_id, %error, "the run's record could not be read for its answer");
            None
        }
    };
    run_output(output, record.as_ref(), runner(state, target, id))
}

fn runner<'a>(state: &'a AppState, target: Target, id: &'a str) -> Runner<'a> {
    match target {
        Target::Agent => Runner::Agent(id, state.agents.get(id).and_then(|agent| agent.name())),
        Target::Team => Runner::Team(id),
    }
}
