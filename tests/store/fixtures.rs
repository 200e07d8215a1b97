//! Rows and runs to store, and small assertions shared by the cases.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use kern::approval::{Approval, ApprovalPolicy, ApprovalStatus, ApprovalType, PauseType, SourceType};
use kern::db::Store;
use kern::models::{Message, Usage};
use kern::run::{RunRecord, RunRequirement, RunStatus, ToolCallStatus, ToolExecution};
use kern::trail::Execution;
use serde_json::{Map, Value, json};

use crate::harness::unique_name;

/// The current time as the stores keep it: whole microseconds, so what goes in comes back equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn seconds(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// A requirement for the paused call `tool_call_id`.
pub fn requirement(tool_call_id: &str, pause_type: PauseType, user_input_schema: Option<Value>) -> RunRequirement {
    let call = ToolExecution {
        tool_call_id: tool_call_id.to_owned(),
        tool_name: "delete_user_data".into(),
        tool_args: json!({ "user_id": "42" }),
        status: ToolCallStatus::Paused,
        result: None,
        approval_id: None,
    };
    RunRequirement::new(call, pause_type, user_input_schema)
}

/// A pending confirmation row of `run_id`, with a fresh id.
pub fn approval(run_id: &str) -> Approval {
    let tool_call_id = unique_name();
    let created_at = now();
    Approval {
        id: unique_name(),
        run_id: run_id.to_owned(),
        session_id: "session-1".into(),
        status: ApprovalStatus::Pending,
        approval_type: ApprovalType::Required,
        pause_type: PauseType::Confirmation,
        source_type: SourceType::Agent,
        source_name: Some("ops agent".into()),
        agent_id: Some("agent-1".into()),
        team_id: None,
        user_id: Some("user-1".into()),
        tool_name: "delete_user_data".into(),
        tool_args: json!({ "user_id": "42" }),
        requirements: vec![requirement(&tool_call_id, PauseType::Confirmation, None)],
        tool_call_id,
        resolution_data: None,
        resolved_by: None,
        resolved_at: None,
        created_at,
        updated_at: created_at,
        expires_at: None,
        run_status: RunStatus::Paused,
        policy: None,
    }
}

/// `row` opened under `policy`, as a pause of a tool with that `#[approval(..)]` writes it.
pub fn with_policy(mut row: Approval, policy: ApprovalPolicy) -> Approval {
    let parameters = json!({
        "type": "object",
        "properties": { "user_id": { "type": "string", "maxLength": 8 } },
        "required": ["user_id"],
        "additionalProperties": false
    });
    row.policy = Some(policy.row_policy(&parameters));
    row
}

/// A pending user-input row whose call asks for a string `reason`.
pub fn user_input_approval(run_id: &str) -> Approval {
    let mut row = approval(run_id);
    let schema = json!({
        "type": "object",
        "properties": { "reason": { "type": "string" } },
        "required": ["reason"],
    });
    row.pause_type = PauseType::UserInput;
    row.requirements = vec![requirement(&row.tool_call_id, PauseType::UserInput, Some(schema))];
    row
}

/// A pending external-execution row: the admin carries the call out and hands back its result.
pub fn external_approval(run_id: &str) -> Approval {
    let mut row = approval(run_id);
    row.pause_type = PauseType::ExternalExecution;
    row.requirements = vec![requirement(&row.tool_call_id, PauseType::ExternalExecution, None)];
    row
}

/// A paused top-level run of `session_id`, with a fresh id.
pub fn run(session_id: &str) -> RunRecord {
    let created_at = now();
    RunRecord {
        run_id: unique_name(),
        session_id: session_id.to_owned(),
        user_id: Some("user-1".into()),
        agent_id: Some("agent-1".into()),
        team_id: None,
        parent_run_id: None,
        status: RunStatus::Paused,
        input: "delete user 42".into(),
        messages: vec![Message::user("delete user 42"), Message::assistant("Asking an admin first.")],
        tools: Vec::new(),
        requirements: vec![requirement("call-1", PauseType::Confirmation, None)],
        approvals: Vec::new(),
        content: None,
        metadata: Map::from_iter([("trace".to_owned(), json!({ "step": 1 }))]),
        usage: Usage { input_tokens: 12, output_tokens: 7 },
        member_run_ids: Vec::new(),
        delegations: Vec::new(),
        created_at,
        updated_at: created_at,
    }
}

/// The record of `row`'s call having run (`succeeded`) or failed, as a continue saves it.
pub fn execution(row: &Approval, succeeded: bool) -> Execution {
    Execution {
        approval_id: row.id.clone(),
        run_id: row.run_id.clone(),
        tool_call_id: row.tool_call_id.clone(),
        principal: "agent:agent-1".into(),
        succeeded,
        result_digest: "digest".into(),
        recovered: false,
    }
}

/// Inserts `row`, as a pause of a run saved elsewhere would.
pub async fn create(store: &dyn Store, row: &Approval) {
    create_all(store, std::slice::from_ref(row)).await;
}

/// Inserts every row, as a pause of runs saved elsewhere would.
pub async fn create_all(store: &dyn Store, rows: &[Approval]) {
    store.save_runs(&[], rows, &[]).await.expect("create approval rows");
}

/// The rows' ids, newest first with ties broken by id descending: the order of a listing.
pub fn listing_order(rows: &[&Approval]) -> Vec<String> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    rows.into_iter().map(|row| row.id.clone()).collect()
}

pub fn ids(rows: &[Approval]) -> Vec<String> {
    rows.iter().map(|row| row.id.clone()).collect()
}

/// The stored row, which must exist.
pub async fn stored(store: &dyn Store, id: &str) -> Approval {
    store.get_approval(id).await.expect("read the row").expect("the row exists")
}
