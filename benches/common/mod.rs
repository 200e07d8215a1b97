//! What the benchmarks share: the database each run works in and removes after it (with the
//! upkeep a live database gets), and the rows of a large approvals table, as a live system
//! leaves them (most decided, some pending).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use kern::prelude::*;
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A name no other run of a benchmark uses: for a database file or a Postgres schema.
pub fn scratch_name(tag: &str) -> String {
    static OPENED: AtomicU64 = AtomicU64::new(0);
    format!("kern_bench_{tag}_{}_{}", std::process::id(), OPENED.fetch_add(1, Ordering::Relaxed))
}

/// The database a benchmark works in, removed by [`Scratch::remove`].
pub enum Scratch {
    /// A SQLite file (with its WAL and shared-memory files).
    File(PathBuf),
    /// A Postgres schema.
    Schema { url: String, schema: String },
}

impl Scratch {
    /// Deletes the file or drops the schema; close the store on it first.
    pub async fn remove(self) -> Result<(), BoxError> {
        match self {
            Scratch::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Scratch::Schema { url, schema } => PostgresDb::__drop_schema(&url, &schema).await?,
        }
        Ok(())
    }

    /// The upkeep a live database gets on its own after a bulk write: Postgres's autovacuum
    /// marks the new pages all-visible (so counts read the index alone) and refreshes the
    /// planner's statistics; SQLite has only the statistics.
    pub async fn maintain(&self) -> Result<(), BoxError> {
        use sqlx::Connection;
        match self {
            Scratch::File(path) => {
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
                sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
                conn.close().await?;
            }
            Scratch::Schema { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(&format!("VACUUM (ANALYZE) \"{schema}\".\"kern_approvals\"")).execute(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }
}

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
