//! The values a step of a run passes around: who runs it, what it was asked, what it leaves to
//! store, and how a call's outcome is written into the run.
//!
//! A leaf of the engine: the loop, the gate, delegation and the continue cycle all build on it,
//! and it builds on none of them.

use serde_json::{Map, Value};

use crate::approval::{Approval, SourceType};
use crate::error::{Error, Result};
use crate::events::{self, RunEvent};
use crate::limits;
use crate::models::{Message, Role};
use crate::run::{RunOptions, RunRecord, RunStatus, ToolCallStatus};
use crate::tools::ToolError;
use crate::trail::Execution;

/// Who a runner acts as: written on approval rows and handed to tools.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) source_type: SourceType,
    pub(crate) name: Option<String>,
    pub(crate) agent_id: Option<String>,
    pub(crate) team_id: Option<String>,
}

impl Identity {
    /// Who owns `record`, in words, for an error that refuses to touch it.
    pub(crate) fn describe_owner(record: &RunRecord) -> String {
        match (&record.agent_id, &record.team_id) {
            (Some(agent), Some(team)) => format!("agent `{agent}` of team `{team}`"),
            (Some(agent), None) => format!("agent `{agent}`"),
            (None, Some(team)) => format!("team `{team}`"),
            (None, None) => "no agent or team".to_owned(),
        }
    }

    /// The principal of what the runner does, on the trail: `agent:<id>` or `team:<id>`.
    pub(crate) fn principal(&self) -> String {
        match (&self.agent_id, &self.team_id) {
            (Some(agent), _) => format!("agent:{agent}"),
            (None, Some(team)) => format!("team:{team}"),
            (None, None) => crate::trail::SYSTEM_PRINCIPAL.to_owned(),
        }
    }

    /// True when this runner started `record`: only its owner knows its tools and may decide
    /// its calls.
    pub(crate) fn owns(&self, record: &RunRecord) -> bool {
        (&record.agent_id, &record.team_id) == (&self.agent_id, &self.team_id)
    }
}

/// The input of a new run.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunRequest {
    pub(crate) input: String,
    pub(crate) session_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) parent_run_id: Option<String>,
}

impl RunRequest {
    /// A top-level run of `input` with the caller's options, which must be keys kern stores
    /// ([`Error::InvalidInput`] otherwise).
    pub(crate) fn top_level(input: String, options: RunOptions) -> Result<Self> {
        if let Some(session_id) = &options.session_id {
            limits::check_name("session_id", session_id)?;
        }
        if let Some(user_id) = &options.user_id {
            limits::check_name("user_id", user_id)?;
        }
        Ok(RunRequest { input, session_id: options.session_id, user_id: options.user_id, parent_run_id: None })
    }
}

/// What a step writes besides the run itself: new approval rows, member child runs, and the
/// approved calls it ran, for the trail.
#[derive(Debug, Clone, Default)]
pub(crate) struct Writes {
    pub(crate) approvals: Vec<Approval>,
    pub(crate) member_runs: Vec<RunRecord>,
    pub(crate) executions: Vec<Execution>,
}

/// What a step of a run leaves to persist, and the error that ended it, if any.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) record: RunRecord,
    pub(crate) writes: Writes,
    pub(crate) error: Option<Error>,
}

impl Step {
    /// Closes a step: stamps the run and, when `result` is an error, marks it failed.
    pub(crate) fn finish(mut record: RunRecord, writes: Writes, result: Result<()>) -> Self {
        record.updated_at = crate::now();
        let error = result.err();
        if let Some(error) = &error {
            mark_failed(&mut record, &error.to_string());
        }
        Step { record, writes, error }
    }
}

/// Marks `record` ended in error, for the reason `reason`, which its metadata keeps.
pub(crate) fn mark_failed(record: &mut RunRecord, reason: &str) {
    record.status = RunStatus::Error;
    record.metadata.insert("error".into(), Value::String(reason.to_owned()));
}

/// Parses the model's argument text; empty text and `null` mean no arguments (`{}`, as a tool
/// reads them, and as a call that pauses is checked). Arguments nested deeper than kern stores
/// ([`limits::MAX_JSON_DEPTH`]) go back to the model like malformed ones.
pub(crate) fn parse_arguments(raw: &str) -> Result<Value, ToolError> {
    if raw.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let args = match serde_json::from_str(raw) {
        Ok(Value::Null) => return Ok(Value::Object(Map::new())),
        Ok(args) => args,
        Err(e) => return Err(ToolError::InvalidArguments(format!("arguments are not valid JSON: {e}"))),
    };
    limits::check_json("arguments", &args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
    Ok(args)
}

/// Records a call's outcome and tells the model.
pub(crate) fn complete(record: &mut RunRecord, call_id: &str, result: Result<Value, ToolError>) {
    match result {
        Ok(value) => complete_as(record, call_id, ToolCallStatus::Succeeded, value),
        Err(error) => complete_as(record, call_id, ToolCallStatus::Failed, Value::String(format!("error: {error}"))),
    }
}

/// Settles a call that does not run here: rejected, expired, or answered with a result given
/// from outside. Recorded as [`complete_as`] does, and told to the run's event stream, which
/// heard of no start, so that a stream shows how each call ended.
pub(crate) fn settle_unrun(record: &mut RunRecord, call_id: &str, status: ToolCallStatus, result: Value) {
    emit_unrun(record, call_id, status, &result);
    complete_as(record, call_id, status, result);
}

/// Refuses a call before it runs, for `error` (an unknown tool, arguments that do not fit, a
/// rule it breaks): recorded as a failure, as [`complete`] records one, and told to the run's
/// event stream as a tool's own failure is.
pub(crate) fn refuse_unrun(record: &mut RunRecord, call_id: &str, error: ToolError) {
    let result = Err(error);
    if let Some(execution) = record.tools.iter().find(|e| e.tool_call_id == call_id) {
        emit_outcome(&record.run_id, call_id, &execution.tool_name, &result);
    }
    complete(record, call_id, result);
}

/// Tells the run's event stream how the recorded call `call_id`, which did not run, ended.
fn emit_unrun(record: &RunRecord, call_id: &str, status: ToolCallStatus, result: &Value) {
    let Some(execution) = record.tools.iter().find(|e| e.tool_call_id == call_id) else { return };
    emit_completed(&record.run_id, call_id, &execution.tool_name, status, result);
}

/// Tells the event stream of run `run_id` how its call `call_id` to `tool_name` ended with
/// `result`: succeeded with its value, or failed with the error's text.
pub(crate) fn emit_outcome(run_id: &str, call_id: &str, tool_name: &str, result: &Result<Value, ToolError>) {
    match result {
        Ok(value) => emit_completed(run_id, call_id, tool_name, ToolCallStatus::Succeeded, value),
        Err(error) => {
            let text = Value::String(error.to_string());
            emit_completed(run_id, call_id, tool_name, ToolCallStatus::Failed, &text);
        }
    }
}

/// Tells the event stream of run `run_id` how its call `call_id` to `tool_name` ended; the
/// event is made only when someone listens.
fn emit_completed(run_id: &str, call_id: &str, tool_name: &str, status: ToolCallStatus, result: &Value) {
    events::emit(|| RunEvent::ToolCallCompleted {
        run_id: run_id.to_owned(),
        tool_call_id: call_id.to_owned(),
        tool_name: tool_name.to_owned(),
        status,
        result: result.clone(),
    });
}

/// Records a call's outcome with `status` and hands `result` to the model as the call's answer.
///
/// A result nested deeper than kern stores ([`limits::MAX_JSON_DEPTH`]) is kept as its JSON
/// text: the tool has run, and its outcome must be stored whatever it returned.
pub(crate) fn complete_as(record: &mut RunRecord, call_id: &str, status: ToolCallStatus, result: Value) {
    let text = match &result {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let result =
        if limits::json_depth(&result) > limits::MAX_JSON_DEPTH { Value::String(text.clone()) } else { result };
    let mut name = String::new();
    if let Some(execution) = record.tools.iter_mut().find(|e| e.tool_call_id == call_id) {
        execution.status = status;
        execution.result = Some(result);
        name.clone_from(&execution.tool_name);
    }
    record.messages.push(Message::tool_result(call_id, name, text));
}

/// Puts the answers to the model's last turn in the order of its calls. kern answers a call
/// it refuses at once and one that runs once it has run (after a pause, perhaps), but some
/// servers (the chat templates of llama.cpp, vLLM and Mistral among them) match results to
/// calls by position.
pub(crate) fn order_answers(messages: &mut [Message]) {
    let Some(turn) = messages.iter().rposition(|message| message.role == Role::Assistant) else { return };
    let (asked, answers) = messages.split_at_mut(turn + 1);
    if !answers.iter().all(|message| message.role == Role::Tool) {
        return;
    }
    let calls = &asked[turn].tool_calls;
    let place = |answer: &Message| {
        let id = answer.tool_call_id.as_deref();
        calls.iter().position(|call| Some(call.id.as_str()) == id).unwrap_or(calls.len())
    };
    answers.sort_by_cached_key(place);
}

/// The text a panic was raised with.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (None, Some(text)) => text.clone(),
        (None, None) => "a non-text panic".to_owned(),
    }
}
