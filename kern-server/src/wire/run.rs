//! Runs as the reference's clients read and send them: the run output (null keys left out, its
//! calls and requirements in the shapes of [`super::requirement`]), the `tools` /
//! `requirements` answers a continue carries, turned into kern's [`RunRequirement`]s, and the
//! admin's listing of runs.

use chrono::{DateTime, Utc};
use kern_core::run::{RunOutput, RunRecord, RunRequirement, ToolExecution};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::approval::ApprovalResponse;
use super::requirement::{RequirementWire, ToolExecutionWire, run_status};

/// Who ran a run, as the run output names it.
#[derive(Debug, Clone, Copy)]
pub enum Runner<'a> {
    /// An agent: its id and name.
    Agent(&'a str, Option<&'a str>),
    /// A team: its id.
    Team(&'a str),
    /// Neither: a run written outside kern that names no agent and no team.
    Unnamed,
}

/// A run's output in the reference's shape: null keys left out.
pub fn run_output(output: &RunOutput, record: Option<&RunRecord>, runner: Runner<'_>) -> Value {
    output_since(output, record, runner, record.map(|r| r.created_at))
}

/// [`run_output`], its requirements stamped `since` (RFC 3339): when the run was made, or for
/// a team's member run, whose record is not at hand, when its team run was.
fn output_since(
    output: &RunOutput,
    record: Option<&RunRecord>,
    runner: Runner<'_>,
    since: Option<DateTime<Utc>>,
) -> Value {
    let created = since.map(|at| at.to_rfc3339()).unwrap_or_default();
    let requirement_of =
        |tool: &ToolExecution| output.requirements.iter().find(|r| r.tool_execution.tool_call_id == tool.tool_call_id);
    let mut object = Map::new();
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            object.insert(key.to_owned(), value);
        }
    };
    put("run_id", json!(output.run_id));
    match runner {
        Runner::Agent(id, name) => {
            put("agent_id", json!(id));
            put("agent_name", json!(name));
            // A team member's run names its team too.
            put("team_id", json!(record.and_then(|r| r.team_id.as_deref())));
        }
        Runner::Team(id) => put("team_id", json!(id)),
        Runner::Unnamed => {}
    }
    put("session_id", json!(output.session_id));
    put("user_id", json!(record.and_then(|r| r.user_id.as_deref())));
    put("content", json!(output.content));
    put("content_type", json!("str"));
    put("parent_run_id", json!(record.and_then(|r| r.parent_run_id.as_deref())));
    put("created_at", json!(record.map(|r| r.created_at.timestamp())));
    put("updated_at", json!(record.map(|r| r.updated_at.timestamp())));
    put("status", json!(run_status(output.status)));
    put("input", json!(record.map(|r| json!({"input_content": r.input}))));
    put(
        "tools",
        json!(output.tools.iter().map(|tool| ToolExecutionWire::new(tool, requirement_of(tool))).collect::<Vec<_>>()),
    );
    put(
        "requirements",
        json!(output.requirements.iter().map(|r| RequirementWire::new(r, &created)).collect::<Vec<_>>()),
    );
    put("metrics", json!({"input_tokens": output.usage.input_tokens, "output_tokens": output.usage.output_tokens}));
    if !output.metadata.is_empty() {
        let mut metadata = output.metadata.clone();
        // The row that decided the latest gated call, in the shape the API answers every row in.
        if let Some(row) = output.approval() {
            metadata.insert("approval".to_owned(), json!(ApprovalResponse::from(row)));
        }
        put("metadata", Value::Object(metadata));
    }
    if let Runner::Team(_) = runner {
        let members: Vec<Value> = output
            .member_runs
            .iter()
            .map(|member| output_since(member, None, Runner::Agent(member_agent(output, member), None), since))
            .collect();
        put("member_responses", Value::Array(members));
    }
    Value::Object(object)
}

fn member_agent<'a>(team: &'a RunOutput, member: &RunOutput) -> &'a str {
    team.requirements
        .iter()
        .filter_map(|r| r.member.as_ref())
        .find(|m| m.run_id == member.run_id)
        .map_or("", |m| m.agent_id.as_str())
}

/// An answer a continue carries, in either of the reference's shapes: a tool execution (agent
/// `tools`) or a requirement holding one (team `requirements`).
#[derive(Debug, Deserialize)]
pub struct AnswerWire {
    tool_execution: Option<ToolAnswer>,
    #[serde(flatten)]
    tool: ToolAnswer,
    confirmation: Option<bool>,
    confirmation_note: Option<String>,
    external_execution_result: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct ToolAnswer {
    tool_call_id: Option<String>,
    confirmed: Option<bool>,
    confirmation_note: Option<String>,
    result: Option<Value>,
    user_input_schema: Option<Vec<FieldAnswer>>,
}

#[derive(Debug, Deserialize)]
struct FieldAnswer {
    name: String,
    value: Option<Value>,
}

impl AnswerWire {
    /// The answer to the paused call it names, on a copy of that call's requirement in
    /// `paused`; `None` when it names no paused call (the engine refuses such an answer when
    /// it is passed as a bare requirement, so it is passed on as one).
    pub fn into_requirement(self, paused: &[RunRequirement]) -> Result<RunRequirement, String> {
        let tool = self.tool_execution.unwrap_or(self.tool);
        let call_id = tool.tool_call_id.ok_or("each answer needs a `tool_call_id`")?;
        let mut requirement = paused
            .iter()
            .find(|r| r.tool_execution.tool_call_id == call_id)
            .cloned()
            .ok_or_else(|| format!("the run has no paused tool call `{call_id}`"))?;
        requirement.confirmation = self.confirmation.or(tool.confirmed);
        requirement.note = self.confirmation_note.or(tool.confirmation_note);
        if let Some(result) = self.external_execution_result.or(tool.result) {
            requirement.external_result = Some(result);
        }
        if let Some(fields) = tool.user_input_schema {
            let values: Map<String, Value> =
                fields.into_iter().filter_map(|field| Some((field.name, field.value?))).collect();
            if !values.is_empty() {
                requirement.user_input = Some(values);
            }
        }
        Ok(requirement)
    }
}

/// The query string of `GET /runs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListParams {
    /// `running`, `paused`, `completed`, `error` or `cancelled`.
    pub status: Option<String>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// `true` lists team members' runs too.
    pub members: Option<bool>,
    /// 1 to 1000; 50 by default.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The body of `POST /runs/{run_id}/release`, which may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// How long the run must have been `running`, in seconds: at least the server's stale
    /// time, which is taken when this is absent.
    pub stale_after_seconds: Option<u64>,
}

/// A run in a listing, and the answer of a cancel or a release.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub session_id: String,
    /// The team run of a member's run.
    pub parent_run_id: Option<String>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// `RUNNING`, `PAUSED`, `COMPLETED`, `ERROR` or `CANCELLED`.
    pub status: String,
    /// The approval rows the run waits on while paused.
    pub waiting_on: Vec<String>,
    /// The answer of a completed run.
    pub content: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&RunRecord> for RunSummary {
    fn from(run: &RunRecord) -> Self {
        RunSummary {
            run_id: run.run_id.clone(),
            session_id: run.session_id.clone(),
            parent_run_id: run.parent_run_id.clone(),
            agent_id: run.agent_id.clone(),
            team_id: run.team_id.clone(),
            user_id: run.user_id.clone(),
            status: run_status(run.status).to_owned(),
            waiting_on: run.waiting_on(),
            content: run.content.clone(),
            created_at: run.created_at.timestamp(),
            updated_at: run.updated_at.timestamp(),
        }
    }
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub data: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused() -> RunRequirement {
        serde_json::from_value(json!({
            "tool_execution": {"tool_call_id": "call_1", "tool_name": "delete_user_data",
                "tool_args": {"user_id": "42"}, "status": "paused", "result": null, "approval_id": "a1"},
            "pause_type": "confirmation", "confirmation": null, "note": null, "user_input_schema": null,
            "user_input": null, "external_result": null, "approval_type": "required", "approval_id": "a1",
            "member": null, "resolved_by": null
        }))
        .unwrap()
    }

    #[test]
    fn an_agent_tool_answer_confirms_its_call() {
        let answer: AnswerWire =
            serde_json::from_value(json!({"tool_call_id": "call_1", "tool_name": "x", "confirmed": true})).unwrap();
        let requirement = answer.into_requirement(&[paused()]).unwrap();
        assert_eq!(requirement.confirmation, Some(true));
    }

    #[test]
    fn a_team_requirement_answer_reads_its_top_level_confirmation() {
        let answer: AnswerWire = serde_json::from_value(
            json!({"id": "r", "confirmation": false, "confirmation_note": "no", "tool_execution": {"tool_call_id": "call_1"}}),
        )
        .unwrap();
        let requirement = answer.into_requirement(&[paused()]).unwrap();
        assert_eq!((requirement.confirmation, requirement.note.as_deref()), (Some(false), Some("no")));
    }

    #[test]
    fn an_answer_to_no_paused_call_is_refused_by_name() {
        let answer: AnswerWire = serde_json::from_value(json!({"tool_call_id": "call_9"})).unwrap();
        assert_eq!(answer.into_requirement(&[paused()]).unwrap_err(), "the run has no paused tool call `call_9`");
    }

    #[test]
    fn every_tool_execution_key_is_present() {
        let wire = serde_json::to_value(ToolExecutionWire::new(&paused().tool_execution, Some(&paused()))).unwrap();
        for key in
            ["tool_call_error", "metrics", "confirmed", "user_feedback_schema", "approval_id", "parent_tool_call_id"]
        {
            assert!(wire.get(key).is_some(), "{key}");
        }
        assert_eq!(wire["requires_confirmation"], json!(true));
    }
}
