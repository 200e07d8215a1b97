//! The run routes: start and continue agent and team runs with the reference's fields, and
//! read a run. A continue is gated by the stored rows exactly as the library's is: whatever the
//! caller answers, a call with a pending row does not run.
//!
//! With `stream` (true unless `false` is given, as in the reference) the answer is a stream of
//! the reference's events for what the run did: its start and how it stopped (paused,
//! completed, or an error), each frame `event: <Name>` with one line of JSON.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use kern_core::keys::Scope;
use kern_core::run::{RunOptions, RunOutput, RunRecord, RunRequirement, RunStatus};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::wire::form::RunFields;
use crate::wire::run::{AnswerWire, Runner, run_output};

/// Who a run route runs.
#[derive(Clone, Copy)]
enum Target {
    Agent,
    Team,
}

impl Target {
    fn not_found(self) -> ApiError {
        match self {
            Target::Agent => ApiError::new(axum::http::StatusCode::NOT_FOUND, "Agent not found"),
            Target::Team => ApiError::new(axum::http::StatusCode::NOT_FOUND, "Team not found"),
        }
    }
}

/// Starts an agent run.
#[utoipa::path(post, path = "/agents/{agent_id}/runs", tag = "runs", params(("agent_id" = String, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "`message` (required), `session_id`, `user_id`, `stream`"),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn agent_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    fields: RunFields,
) -> ApiResult<Response> {
    start(state, caller, Target::Agent, agent_id, fields).await
}

/// Starts a team run.
#[utoipa::path(post, path = "/teams/{team_id}/runs", tag = "runs", params(("team_id" = String, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "`message` (required), `session_id`, `user_id`, `stream`"),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn team_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(team_id): Path<String>,
    fields: RunFields,
) -> ApiResult<Response> {
    start(state, caller, Target::Team, team_id, fields).await
}

/// Continues a paused agent run: `tools` holds the caller's answers (JSON text or an array).
#[utoipa::path(post, path = "/agents/{agent_id}/runs/{run_id}/continue", tag = "runs",
    params(("agent_id" = String, Path), ("run_id" = String, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "`session_id` (required), `tools`, `user_id`, `stream`"),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn agent_continue(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, run_id)): Path<(String, String)>,
    fields: RunFields,
) -> ApiResult<Response> {
    resume(state, caller, Target::Agent, agent_id, run_id, fields).await
}

/// Continues a paused team run: `requirements` holds the caller's answers.
#[utoipa::path(post, path = "/teams/{team_id}/runs/{run_id}/continue", tag = "runs",
    params(("team_id" = String, Path), ("run_id" = String, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "`session_id` (required), `requirements`, `user_id`, `stream`"),
    responses((status = 200, description = "The run's output, or its events with `stream`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn team_continue(
    State(state): State<AppState>,
    caller: Caller,
    Path((team_id, run_id)): Path<(String, String)>,
    fields: RunFields,
) -> ApiResult<Response> {
    resume(state, caller, Target::Team, team_id, run_id, fields).await
}

/// Reads a run.
#[utoipa::path(get, path = "/runs/{run_id}", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, description = "The run's output"), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    caller.require(Scope::RunsWrite).or_else(|_| caller.require(Scope::ApprovalsRead))?;
    let record = visible_run(&state, &caller, &run_id).await?;
    let output = RunOutput::from(record.clone());
    let runner = match (&record.agent_id, &record.team_id) {
        (Some(agent), _) => Runner::Agent(agent, None),
        (None, team) => Runner::Team(team.as_deref().unwrap_or("")),
    };
    Ok(Json(run_output(&output, Some(&record), runner)))
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
    let stream = fields.flag("stream", true)?;
    let options =
        RunOptions { session_id: fields.text("session_id")?, user_id: caller.run_user(fields.text("user_id")?) };
    let output = match target {
        Target::Agent => {
            let agent = state.agents.get(&id).ok_or_else(|| target.not_found())?;
            agent.run_with(message, options).await
        }
        Target::Team => {
            let team = state.teams.get(&id).ok_or_else(|| target.not_found())?;
            team.run_with(message, options).await
        }
    }?;
    answer(&state, target, &id, output, stream, false).await
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
                .map_err(ApiError::bad_request)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let output = match target {
        Target::Agent => state.agents[&id].continue_run(&run_id, answers).await,
        Target::Team => state.teams[&id].continue_run(&run_id, answers).await,
    }?;
    answer(&state, target, &id, output, stream, true).await
}

/// The answer to a run or continue: its output as JSON, or its events.
async fn answer(
    state: &AppState,
    target: Target,
    id: &str,
    output: RunOutput,
    stream: bool,
    continued: bool,
) -> ApiResult<Response> {
    state.metrics.run(output.status);
    let record = state.store.load_run(&output.run_id).await?;
    let runner = match target {
        Target::Agent => Runner::Agent(id, state.agents[id].name()),
        Target::Team => Runner::Team(id),
    };
    let body = run_output(&output, record.as_ref(), runner);
    if !stream {
        return Ok(Json(body).into_response());
    }
    let prefix = match target {
        Target::Agent => "",
        Target::Team => "Team",
    };
    let first = if continued { "RunContinued" } else { "RunStarted" };
    let last = match output.status {
        RunStatus::Paused => "RunPaused",
        RunStatus::Completed => "RunCompleted",
        RunStatus::Cancelled => "RunCancelled",
        RunStatus::Error | RunStatus::Running => "RunError",
    };
    let frames = [first, last].map(|name| frame(&format!("{prefix}{name}"), &body));
    Ok(Sse::new(stream::iter(frames.map(Ok::<_, Infallible>))).into_response())
}

/// One frame: the event's name, repeated in its JSON as `event`, with the run's keys.
fn frame(name: &str, body: &Value) -> Event {
    let mut data = body.as_object().cloned().unwrap_or_default();
    data.insert("event".to_owned(), json!(name));
    data.remove("metrics");
    Event::default().event(name).data(Value::Object(data).to_string())
}
