//! The shapes a run and a row share: a run's status as the reference names it, one tool call
//! with every key present, and a paused call with what was decided about it.

use kern_core::approval::PauseType;
use kern_core::run::{RunRequirement, RunStatus, ToolCallStatus, ToolExecution};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The reference's name of a run status.
pub fn run_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "RUNNING",
        RunStatus::Paused => "PAUSED",
        RunStatus::Completed => "COMPLETED",
        RunStatus::Error => "ERROR",
        RunStatus::Cancelled => "CANCELLED",
    }
}

/// One tool call, every key present.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ToolExecutionWire {
    pub tool_call_id: String,
    pub tool_name: String,
    #[schema(value_type = Object)]
    pub tool_args: Value,
    pub tool_call_error: Option<bool>,
    #[schema(value_type = Option<Value>)]
    pub result: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<Value>,
    pub child_run_id: Option<String>,
    pub stop_after_tool_call: bool,
    pub created_at: Option<i64>,
    pub requires_confirmation: Option<bool>,
    pub confirmed: Option<bool>,
    pub confirmation_note: Option<String>,
    pub requires_user_input: Option<bool>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub user_input_schema: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub user_feedback_schema: Option<Value>,
    pub answered: Option<bool>,
    pub external_execution_required: Option<bool>,
    pub external_execution_silent: Option<bool>,
    pub approval_type: Option<String>,
    pub approval_id: Option<String>,
    pub parent_tool_call_id: Option<String>,
}

impl ToolExecutionWire {
    /// A call of the run, with what its requirement (if it is paused or was decided) says.
    pub fn new(tool: &ToolExecution, requirement: Option<&RunRequirement>) -> Self {
        let pause = requirement.map(|r| r.pause_type);
        ToolExecutionWire {
            tool_call_id: tool.tool_call_id.clone(),
            tool_name: tool.tool_name.clone(),
            tool_args: tool.tool_args.clone(),
            tool_call_error: matches!(tool.status, ToolCallStatus::Failed | ToolCallStatus::Rejected).then_some(true),
            result: tool.result.clone(),
            metrics: None,
            child_run_id: None,
            stop_after_tool_call: false,
            created_at: None,
            requires_confirmation: (pause == Some(PauseType::Confirmation)).then_some(true),
            confirmed: requirement.and_then(|r| r.confirmation),
            confirmation_note: requirement.and_then(|r| r.note.clone()),
            requires_user_input: (pause == Some(PauseType::UserInput)).then_some(true),
            user_input_schema: requirement.and_then(user_input_fields),
            user_feedback_schema: None,
            answered: requirement.and_then(|r| r.user_input.as_ref()).map(|_| true),
            external_execution_required: (pause == Some(PauseType::ExternalExecution)).then_some(true),
            external_execution_silent: None,
            approval_type: requirement.and_then(|r| r.approval_type).map(|t| t.to_string()),
            approval_id: tool.approval_id.clone().or_else(|| requirement.and_then(|r| r.approval_id.clone())),
            parent_tool_call_id: None,
        }
    }
}

/// The reference's user-input fields (`name`, `field_type`, `description`, `value`) from a
/// requirement's JSON Schema and the values supplied so far.
fn user_input_fields(requirement: &RunRequirement) -> Option<Value> {
    let properties = requirement.user_input_schema.as_ref()?.get("properties")?.as_object()?;
    let values = requirement.user_input.as_ref();
    let fields = properties
        .iter()
        .map(|(name, schema)| {
            let field_type = match schema.get("type").and_then(Value::as_str) {
                Some("integer") => "int",
                Some("number") => "float",
                Some("boolean") => "bool",
                Some("array") => "list",
                Some("object") => "dict",
                _ => "str",
            };
            json!({
                "name": name,
                "field_type": field_type,
                "description": schema.get("description"),
                "value": values.and_then(|values| values.get(name)),
            })
        })
        .collect();
    Some(Value::Array(fields))
}

/// A paused call and what was decided about it; null keys left out, as the reference does.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequirementWire {
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    pub tool_execution: ToolExecutionWire,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub external_execution_result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_agent_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub user_input_schema: Option<Value>,
}

impl RequirementWire {
    /// `requirement`, stamped with `created_at` (RFC 3339).
    pub fn new(requirement: &RunRequirement, created_at: &str) -> Self {
        let member = requirement.member.as_ref();
        RequirementWire {
            id: requirement.tool_execution.tool_call_id.clone(),
            created_at: created_at.to_owned(),
            tool_execution: ToolExecutionWire::new(&requirement.tool_execution, Some(requirement)),
            confirmation: requirement.confirmation,
            confirmation_note: requirement.note.clone(),
            external_execution_result: requirement.external_result.clone(),
            member_agent_id: member.map(|m| m.agent_id.clone()),
            member_agent_name: member.and_then(|m| m.agent_name.clone()),
            member_run_id: member.map(|m| m.run_id.clone()),
            user_input_schema: user_input_fields(requirement),
        }
    }
}
