//! What the commands print about rows, runs, events and keys: one shape whether they came from
//! the database or from a server, so that `--json` reads the same against either. Times are
//! RFC 3339; statuses are kern's lower-case names.

use chrono::{DateTime, SubsecRound, Utc};
use kern_core::approval::Approval;
use kern_core::keys::ApiKey;
use kern_core::run::RunRecord;
use kern_core::trail::TrailEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit::{Failure, Outcome};

/// An approval row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub id: String,
    pub status: String,
    pub tool_name: String,
    pub tool_args: Value,
    pub tool_call_id: String,
    pub pause_type: String,
    pub approval_type: String,
    pub source_type: String,
    pub source_name: Option<String>,
    pub run_id: String,
    pub session_id: String,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub run_status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_data: Option<Value>,
    pub policy: Option<Value>,
}

impl From<&Approval> for ApprovalView {
    fn from(row: &Approval) -> Self {
        ApprovalView {
            id: row.id.clone(),
            status: row.status.to_string(),
            tool_name: row.tool_name.clone(),
            tool_args: row.tool_args.clone(),
            tool_call_id: row.tool_call_id.clone(),
            pause_type: row.pause_type.to_string(),
            approval_type: row.approval_type.to_string(),
            source_type: row.source_type.to_string(),
            source_name: row.source_name.clone(),
            run_id: row.run_id.clone(),
            session_id: row.session_id.clone(),
            agent_id: row.agent_id.clone(),
            team_id: row.team_id.clone(),
            user_id: row.user_id.clone(),
            run_status: row.run_status.to_string(),
            created_at: to_second(row.created_at),
            expires_at: row.expires_at.map(to_second),
            resolved_by: row.resolved_by.clone(),
            resolved_at: row.resolved_at.map(to_second),
            resolution_data: row.resolution_data.clone(),
            policy: row.policy.as_ref().and_then(|policy| serde_json::to_value(policy).ok()),
        }
    }
}

/// A row as the server's API answers it: times in epoch seconds, the run status in capitals.
#[derive(Debug, Deserialize)]
pub struct WireApproval {
    id: String,
    status: String,
    tool_name: Option<String>,
    tool_args: Option<Value>,
    tool_call_id: String,
    pause_type: Option<String>,
    approval_type: Option<String>,
    source_type: String,
    source_name: Option<String>,
    run_id: String,
    session_id: String,
    agent_id: Option<String>,
    team_id: Option<String>,
    user_id: Option<String>,
    run_status: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    resolved_by: Option<String>,
    resolved_at: Option<i64>,
    resolution_data: Option<Value>,
    policy: Option<Value>,
}

fn epoch(seconds: Option<i64>) -> Option<DateTime<Utc>> {
    seconds.and_then(|seconds| DateTime::from_timestamp(seconds, 0))
}

/// A stored time to the second, as a server sends it, so that a view reads the same through
/// either target.
fn to_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(0)
}

impl From<WireApproval> for ApprovalView {
    fn from(row: WireApproval) -> Self {
        ApprovalView {
            id: row.id,
            status: row.status,
            tool_name: row.tool_name.unwrap_or_default(),
            tool_args: row.tool_args.unwrap_or(Value::Null),
            tool_call_id: row.tool_call_id,
            pause_type: row.pause_type.unwrap_or_default(),
            approval_type: row.approval_type.unwrap_or_default(),
            source_type: row.source_type,
            source_name: row.source_name,
            run_id: row.run_id,
            session_id: row.session_id,
            agent_id: row.agent_id,
            team_id: row.team_id,
            user_id: row.user_id,
            run_status: row.run_status.unwrap_or_default().to_lowercase(),
            created_at: epoch(Some(row.created_at)).unwrap_or_default(),
            expires_at: epoch(row.expires_at),
            resolved_by: row.resolved_by,
            resolved_at: epoch(row.resolved_at),
            resolution_data: row.resolution_data,
            policy: row.policy,
        }
    }
}

/// A page of rows, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `--cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub run_id: String,
    pub status: String,
    pub session_id: String,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// The team run of a member's run.
    pub parent_run_id: Option<String>,
    /// The rows the run waits on while it is paused.
    pub waiting_on: Vec<String>,
    pub content: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<&RunRecord> for RunView {
    fn from(run: &RunRecord) -> Self {
        RunView {
            run_id: run.run_id.clone(),
            status: run.status.to_string(),
            session_id: run.session_id.clone(),
            agent_id: run.agent_id.clone(),
            team_id: run.team_id.clone(),
            user_id: run.user_id.clone(),
            parent_run_id: run.parent_run_id.clone(),
            waiting_on: run.waiting_on(),
            content: run.content.clone(),
            created_at: Some(to_second(run.created_at)),
            updated_at: Some(to_second(run.updated_at)),
        }
    }
}

impl RunView {
    /// A run as the server answers it: `GET /runs/{id}` (the reference's run output) or an
    /// item of `GET /runs`.
    pub fn from_wire(run: &Value) -> Outcome<Self> {
        let text = |key: &str| run.get(key).and_then(Value::as_str).map(str::to_owned);
        let time = |key: &str| epoch(run.get(key).and_then(Value::as_i64));
        let ids = |items: &Vec<Value>, pointer: &str| -> Vec<String> {
            items.iter().filter_map(|item| item.pointer(pointer).and_then(Value::as_str)).map(str::to_owned).collect()
        };
        let waiting_on = match (run.get("waiting_on"), run.get("requirements")) {
            (Some(Value::Array(ids_listed)), _) => ids(ids_listed, ""),
            (_, Some(Value::Array(requirements))) => ids(requirements, "/tool_execution/approval_id"),
            _ => Vec::new(),
        };
        Ok(RunView {
            run_id: required(run, "run_id", text)?,
            status: required(run, "status", text)?.to_lowercase(),
            session_id: required(run, "session_id", text)?,
            agent_id: text("agent_id"),
            team_id: text("team_id"),
            user_id: text("user_id"),
            parent_run_id: text("parent_run_id"),
            waiting_on,
            content: text("content"),
            created_at: Some(required(run, "created_at", time)?),
            updated_at: time("updated_at"),
        })
    }
}

/// Field `key` of a server's answer, read by `read`: kern's server always sends it, so an
/// answer without it comes from something else, and is refused rather than shown as blank.
fn required<T>(answer: &Value, key: &str, read: impl Fn(&str) -> Option<T>) -> Outcome<T> {
    read(key).ok_or_else(|| {
        let what = if answer.is_object() { format!("has no `{key}`") } else { "is no JSON object".to_owned() };
        Failure::error(format!("the server's answer {what}: is --server the address of a kern server?"))
    })
}

/// One event of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub seq: i64,
    pub approval_id: String,
    pub run_id: String,
    pub index: u32,
    pub kind: String,
    pub principal: String,
    /// To the microsecond, always six digits, as the trail hashes it and the CSV export and the
    /// server write it.
    #[serde(serialize_with = "micros")]
    pub at: DateTime<Utc>,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&TrailEvent> for EventView {
    fn from(event: &TrailEvent) -> Self {
        EventView {
            seq: event.seq,
            approval_id: event.approval_id.clone(),
            run_id: event.run_id.clone(),
            index: event.index,
            kind: event.kind.to_string(),
            principal: event.principal.clone(),
            at: event.at,
            data: event.data.clone(),
            prev_hash: event.prev_hash.clone(),
            hash: event.hash.clone(),
        }
    }
}

impl EventView {
    /// True for the events that create or decide a row: what `watch` prints unless told all.
    pub fn creates_or_decides(&self) -> bool {
        matches!(self.kind.as_str(), "created" | "approved" | "rejected" | "expired" | "cancelled")
    }
}

/// An API key, without its secret's hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub id: String,
    pub principal: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyView {
    /// A key as the server's `/keys` routes answer it (times in epoch seconds).
    pub fn from_wire(key: &Value) -> Outcome<Self> {
        let text = |name: &str| key.get(name).and_then(Value::as_str).map(str::to_owned);
        let time = |name: &str| epoch(key.get(name).and_then(Value::as_i64));
        let texts = |name: &str| -> Vec<String> {
            let items = key.get(name).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        };
        Ok(KeyView {
            id: required(key, "id", text)?,
            principal: required(key, "principal", text)?,
            roles: texts("roles"),
            scopes: texts("scopes"),
            created_at: required(key, "created_at", time)?,
            revoked_at: time("revoked_at"),
        })
    }
}

impl From<&ApiKey> for KeyView {
    fn from(key: &ApiKey) -> Self {
        KeyView {
            id: key.id.clone(),
            principal: key.principal.clone(),
            roles: key.roles.clone(),
            scopes: key.scopes.iter().map(ToString::to_string).collect(),
            created_at: to_second(key.created_at),
            revoked_at: key.revoked_at.map(to_second),
        }
    }
}

/// `at` in RFC 3339 with six digits of the second, however many of them are zero.
fn micros<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn an_events_time_keeps_its_six_digits_as_the_trail_hashes_it() {
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 9, 0, 12).unwrap() + chrono::TimeDelta::milliseconds(120);
        let event = EventView {
            seq: 1,
            approval_id: "a".into(),
            run_id: "r".into(),
            index: 1,
            kind: "created".into(),
            principal: "p".into(),
            at,
            data: Value::Null,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["at"], "2026-01-31T09:00:12.120000Z");
        assert_eq!(serde_json::from_value::<EventView>(json).unwrap(), event, "and reads back");
    }
}
