//! What the benchmarks share: the database each run works in and removes after it (with the
//! upkeep a live database gets), the rows of a large approvals table, as a live system leaves
//! them (most decided, some pending), and the summaries of timed series.

pub mod scratch;
pub mod stats;

use chrono::{DateTime, Utc};
use kern::prelude::*;
use serde_json::json;

pub use scratch::{Scratch, scratch_name};

/// Row `i` of a filled table, `i` milliseconds older than `now`: pending, or approved by
/// `bench-admin` when it was created.
pub fn filler_row(i: usize, pending: bool, now: DateTime<Utc>) -> Approval {
    let created_at = now - chrono::Duration::milliseconds(i as i64);
    Approval {
        id: filler_id(i),
        run_id: format!("run-{i}"),
        session_id: format!("session-{}", i % 1_000),
        status: if pending { ApprovalStatus::Pending } else { ApprovalStatus::Approved },
        approval_type: ApprovalType::Required,
        pause_type: PauseType::Confirmation,
        source_type: SourceType::Agent,
        source_name: Some("bench-agent".into()),
        agent_id: Some("bench-agent".into()),
        team_id: None,
        user_id: Some(format!("user-{}", i % 500)),
        tool_name: "delete_records".into(),
        tool_args: json!({"table": "users", "count": 3}),
        tool_call_id: "call_1".into(),
        requirements: Vec::new(),
        resolution_data: None,
        resolved_by: (!pending).then(|| "bench-admin".into()),
        resolved_at: (!pending).then_some(created_at),
        created_at,
        updated_at: created_at,
        expires_at: None,
        run_status: if pending { RunStatus::Paused } else { RunStatus::Completed },
        policy: None,
    }
}

/// The id of row `i`: a UUID in form, ordered as `i`.
pub fn filler_id(i: usize) -> String {
    format!("{:08x}-0000-7000-8000-{:012x}", i / 65_536, i)
}
