//! Approval rows as the reference's clients read them: every key present (null when unset),
//! times in epoch seconds, `run_status` in capitals, and kern's additions (`tool_call_id`,
//! `policy`, the `next_cursor` of a page) as extra keys those clients ignore.

use kern_core::approval::{Approval, Vote};
use kern_core::trail::TrailEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::requirement::{RequirementWire, run_status};

/// An approval row.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    pub id: String,
    pub run_id: String,
    pub session_id: String,
    /// `pending`, `approved`, `rejected`, `expired` or `cancelled`.
    pub status: String,
    /// `agent` or `team`.
    pub source_type: String,
    /// `required` or `audit`.
    pub approval_type: Option<String>,
    /// `confirmation`, `user_input` or `external_execution`.
    pub pause_type: Option<String>,
    pub tool_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub tool_args: Option<Value>,
    pub tool_call_id: String,
    pub expires_at: Option<i64>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub workflow_id: Option<String>,
    /// Who the run acts for: the requester, not the approver.
    pub user_id: Option<String>,
    pub schedule_id: Option<String>,
    pub schedule_run_id: Option<String>,
    pub source_name: Option<String>,
    pub requirements: Option<Vec<RequirementWire>>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub resolution_data: Option<Value>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// The run's status in the reference's capitals: `PAUSED`, `RUNNING`, `COMPLETED`, ...
    pub run_status: Option<String>,
    /// The policy in force on the row (approvers, quorum, edits, expiry), if it has one.
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Value>,
}

impl From<&Approval> for ApprovalResponse {
    fn from(row: &Approval) -> Self {
        let created = row.created_at.to_rfc3339();
        ApprovalResponse {
            id: row.id.clone(),
            run_id: row.run_id.clone(),
            session_id: row.session_id.clone(),
            status: row.status.to_string(),
            source_type: row.source_type.to_string(),
            approval_type: Some(row.approval_type.to_string()),
            pause_type: Some(row.pause_type.to_string()),
            tool_name: Some(row.tool_name.clone()),
            tool_args: Some(row.tool_args.clone()),
            tool_call_id: row.tool_call_id.clone(),
            expires_at: row.expires_at.map(|at| at.timestamp()),
            agent_id: row.agent_id.clone(),
            team_id: row.team_id.clone(),
            workflow_id: None,
            user_id: row.user_id.clone(),
            schedule_id: None,
            schedule_run_id: None,
            source_name: row.source_name.clone(),
            requirements: Some(
                row.requirements.iter().map(|requirement| RequirementWire::new(requirement, &created)).collect(),
            ),
            context: Some(json!({"tool_names": [row.tool_name], "source_name": row.source_name})),
            resolution_data: row.resolution_data.clone(),
            resolved_by: row.resolved_by.clone(),
            resolved_at: row.resolved_at.map(|at| at.timestamp()),
            created_at: Some(row.created_at.timestamp()),
            updated_at: Some(row.updated_at.timestamp()),
            run_status: Some(run_status(row.run_status).to_owned()),
            policy: row.policy.as_ref().and_then(|policy| serde_json::to_value(policy).ok()),
        }
    }
}

/// The ETag of a row as it stands: it changes with every write to the row.
pub fn etag(row: &Approval) -> String {
    format!("\"{}-{}\"", row.id, row.updated_at.timestamp_micros())
}

/// A page of rows in the reference's envelope.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalList {
    pub data: Vec<ApprovalResponse>,
    pub meta: PageMeta,
}

/// Where a page stands among all pages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PageMeta {
    pub page: u32,
    pub limit: u32,
    pub total_pages: u64,
    pub total_count: u64,
    pub search_time_ms: f64,
    /// Pass as `cursor` for the next page (keyset paging); null when this page is not full
    /// (a full last page has one, whose page is empty).
    pub next_cursor: Option<String>,
    /// Rows of the page whose stored data could not be read, by id.
    pub unreadable: Vec<String>,
}

/// The query string of `GET /approvals`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `pending`, `approved`, `rejected`, `expired` or `cancelled`.
    #[param(pattern = "^(pending|approved|rejected|expired|cancelled)$")]
    pub status: Option<String>,
    /// `required` or `audit`.
    #[param(pattern = "^(required|audit)$")]
    pub approval_type: Option<String>,
    pub source_type: Option<String>,
    pub pause_type: Option<String>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub workflow_id: Option<String>,
    pub user_id: Option<String>,
    pub schedule_id: Option<String>,
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub tool_name: Option<String>,
    /// Rows created at or after this time (RFC 3339 or epoch seconds).
    pub created_after: Option<String>,
    /// Rows created strictly before this time (RFC 3339 or epoch seconds).
    pub created_before: Option<String>,
    /// Rows that expire strictly before this time (RFC 3339 or epoch seconds).
    pub expiring_before: Option<String>,
    /// 1 to 1000; 100 by default. (Read as text, so that a bad value is refused with what is
    /// wrong with it.)
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// 1-based; ignored with `cursor`.
    #[param(value_type = Option<u32>)]
    pub page: Option<String>,
    /// The `next_cursor` of the previous page (of the same `order`).
    pub cursor: Option<String>,
    /// `newest` (the default) or `expiring_soonest`: the rows that expire, the soonest first.
    #[param(pattern = "^(newest|expiring_soonest)$")]
    pub order: Option<String>,
}

/// The query string of `GET /approvals/count`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountParams {
    pub user_id: Option<String>,
}

/// How many rows are pending.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CountResponse {
    pub count: u64,
}

/// Where one row stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    pub approval_id: String,
    pub status: String,
    pub run_id: String,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
}

impl From<&Approval> for StatusResponse {
    fn from(row: &Approval) -> Self {
        StatusResponse {
            approval_id: row.id.clone(),
            status: row.status.to_string(),
            run_id: row.run_id.clone(),
            resolved_at: row.resolved_at.map(|at| at.timestamp()),
            resolved_by: row.resolved_by.clone(),
        }
    }
}

/// The body of `POST /approvals/{id}/resolve`. A field it does not know is refused, as the
/// votes' are: a misspelt or misplaced `args` would approve the call unedited.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `approved` or `rejected`.
    #[schema(pattern = "^(approved|rejected)$")]
    pub status: String,
    /// Who decides, on a server without authentication; ignored otherwise: the decision is
    /// the signed-in caller's.
    pub resolved_by: Option<String>,
    /// `note`, user-input `values`, an external `result`, edited `args`.
    #[schema(value_type = Option<Object>)]
    pub resolution_data: Option<Value>,
}

/// The body of `POST /approvals/{id}/votes`: a note, and with an approval the values, result
/// or edited arguments it carries. A field it does not know is refused: a misspelt `args`
/// would approve the call unedited.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// `approve` or `reject`. (Read as optional, so that a vote without it is refused with
    /// what is wrong with it.)
    #[schema(value_type = String, required = true, pattern = "^(approve|reject)$")]
    pub decision: Option<String>,
    pub note: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub values: Option<serde_json::Map<String, Value>>,
    #[schema(value_type = Option<Value>)]
    pub result: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub args: Option<Value>,
}

/// The body of `POST /approvals/{id}/cancel`: a note, and nothing else (a withdrawal carries
/// no values, result or arguments).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub note: Option<String>,
}

/// A vote on a row.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VoteResponse {
    pub principal: String,
    pub roles: Vec<String>,
    /// `approve` or `reject`.
    pub kind: String,
    pub note: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub args: Option<Value>,
    pub at: i64,
}

impl From<&Vote> for VoteResponse {
    fn from(vote: &Vote) -> Self {
        VoteResponse {
            principal: vote.principal.clone(),
            roles: vote.roles.clone(),
            kind: vote.kind.to_string(),
            note: vote.note.clone(),
            args: vote.args.clone(),
            at: vote.at.timestamp(),
        }
    }
}

/// The votes on a row and the row as it stands after a vote.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VotesResponse {
    pub approval: ApprovalResponse,
    pub votes: Vec<VoteResponse>,
}

/// One event of a row's trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrailEventResponse {
    /// The store's order of all events: the `Last-Event-ID` of the event stream.
    pub seq: i64,
    pub approval_id: String,
    pub run_id: String,
    pub index: u32,
    /// `created`, `vote`, `approved`, `rejected`, `edited`, `expired`, `cancelled`,
    /// `executed` or `failed`.
    pub kind: String,
    pub principal: String,
    /// RFC 3339 with microseconds.
    pub at: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&TrailEvent> for TrailEventResponse {
    fn from(event: &TrailEvent) -> Self {
        TrailEventResponse {
            seq: event.seq,
            approval_id: event.approval_id.clone(),
            run_id: event.run_id.clone(),
            index: event.index,
            kind: event.kind.to_string(),
            principal: event.principal.clone(),
            at: event.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            data: event.data.clone(),
            prev_hash: event.prev_hash.clone(),
            hash: event.hash.clone(),
        }
    }
}

/// The query string of `GET /audit/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrailPageParams {
    /// The `seq` of the last event already read; 0 (the default) for the first.
    pub after: Option<i64>,
    /// 1 to 1000; 100 by default.
    pub limit: Option<u32>,
}

/// A page of the trail's events, in `seq` order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrailPage {
    pub data: Vec<TrailEventResponse>,
    /// The `seq` of the latest event stored when the page was read: how far a reader that
    /// wants everything so far has to go.
    pub last_seq: i64,
}

/// What `GET /audit/verify` found.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// True when every chain holds.
    pub ok: bool,
    pub rows: u64,
    pub events: u64,
    /// The first link that does not hold.
    pub broken: Option<String>,
}
