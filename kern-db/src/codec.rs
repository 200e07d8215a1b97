//! Rows to kern's types and back. Enums are stored as their text, structured fields as JSON.

use chrono::{DateTime, Utc};
use kern_core::approval::{Approval, PageCursor, UnreadableRow, Vote};
use kern_core::keys::ApiKey;
use kern_core::run::{RunRecord, RunStatus};
use kern_core::trail::TrailEvent;
use kern_core::{Error, ParseEnumError, Result};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::stmt::{Columns, Stmt, corrupt};

/// The columns of an approval row as read back.
pub(crate) const APPROVAL_COLUMNS: &str = "id, run_id, session_id, status, approval_type, pause_type, source_type, \
     source_name, agent_id, team_id, user_id, tool_name, tool_args, tool_call_id, requirements, resolution_data, \
     resolved_by, resolved_at, created_at, updated_at, expires_at, run_status, policy";

/// The columns an insert writes, in the order [`bind_approval`] binds them: those read back,
/// and `principals_only`, which the trusted resolution's compare-and-set reads (a row decided
/// only by principals never matches it).
pub(crate) const APPROVAL_INSERT_COLUMNS: &str = "id, run_id, session_id, status, approval_type, pause_type, \
     source_type, source_name, agent_id, team_id, user_id, tool_name, tool_args, tool_call_id, requirements, \
     resolution_data, resolved_by, resolved_at, created_at, updated_at, expires_at, run_status, policy, \
     principals_only";

/// How many columns [`APPROVAL_INSERT_COLUMNS`] lists.
pub(crate) const APPROVAL_COLUMN_COUNT: usize = 24;

/// The columns of a trail event, in the order [`bind_event`] binds them after `seq`.
pub(crate) const EVENT_COLUMNS: &str = "seq, approval_id, run_id, idx, kind, principal, at, data, prev_hash, hash";

/// The columns an event insert writes (the database numbers `seq`).
pub(crate) const EVENT_INSERT_COLUMNS: &str = "approval_id, run_id, idx, kind, principal, at, data, prev_hash, hash";

/// How many columns [`EVENT_INSERT_COLUMNS`] lists.
pub(crate) const EVENT_COLUMN_COUNT: usize = 9;

/// The columns of a vote, in the order [`bind_vote`] binds them.
pub(crate) const VOTE_COLUMNS: &str = "approval_id, principal, roles, kind, note, args, at";

/// The columns of an API key, in the order [`bind_api_key`] binds them.
pub(crate) const API_KEY_COLUMNS: &str = "id, principal, roles, scopes, secret_hash, created_at, revoked_at";

/// The columns of the runs table that [`run`] reads, and [`listed_run`] with `run_id`.
pub(crate) const RUN_COLUMNS: &str = "run_id, state, status, updated_at";

/// Binds every field of `approval`, in [`APPROVAL_INSERT_COLUMNS`] order, with `run_status`
/// for its run's status.
pub(crate) fn bind_approval<'a>(stmt: Stmt<'a>, approval: &'a Approval, run_status: RunStatus) -> Result<Stmt<'a>> {
    let requirements = serde_json::value::to_raw_value(&approval.requirements)
        .map_err(|e| Error::Corrupt(format!("requirements of approval `{}`: {e}", approval.id)))?;
    Ok(stmt
        .bind(approval.id.as_str())
        .bind(approval.run_id.as_str())
        .bind(approval.session_id.as_str())
        .bind(approval.status.as_str())
        .bind(approval.approval_type.as_str())
        .bind(approval.pause_type.as_str())
        .bind(approval.source_type.as_str())
        .bind(approval.source_name.as_deref())
        .bind(approval.agent_id.as_deref())
        .bind(approval.team_id.as_deref())
        .bind(approval.user_id.as_deref())
        .bind(approval.tool_name.as_str())
        .bind(&approval.tool_args)
        .bind(approval.tool_call_id.as_str())
        .bind(requirements)
        .bind(approval.resolution_data.as_ref())
        .bind(approval.resolved_by.as_deref())
        .bind(approval.resolved_at)
        .bind(approval.created_at)
        .bind(approval.updated_at)
        .bind(approval.expires_at)
        .bind(run_status.as_str())
        .bind(policy(approval)?)
        .bind(i64::from(approval.needs_principals())))
}

/// The row's policy as JSON, or `None`.
fn policy(approval: &Approval) -> Result<Option<Box<RawValue>>> {
    approval
        .policy
        .as_ref()
        .map(serde_json::value::to_raw_value)
        .transpose()
        .map_err(|e| Error::Corrupt(format!("policy of approval `{}`: {e}", approval.id)))
}

/// Binds an event, in [`EVENT_INSERT_COLUMNS`] order.
pub(crate) fn bind_event<'a>(stmt: Stmt<'a>, event: &'a TrailEvent) -> Stmt<'a> {
    stmt.bind(event.approval_id.as_str())
        .bind(event.run_id.as_str())
        .bind(i64::from(event.index))
        .bind(event.kind.as_str())
        .bind(event.principal.as_str())
        .bind(event.at)
        .bind(&event.data)
        .bind(event.prev_hash.as_str())
        .bind(event.hash.as_str())
}

/// Reads an event selected with [`EVENT_COLUMNS`].
pub(crate) fn event(row: &dyn Columns) -> Result<TrailEvent> {
    Ok(TrailEvent {
        seq: row.int("seq")?,
        approval_id: row.text("approval_id")?,
        run_id: row.text("run_id")?,
        index: u32::try_from(row.int("idx")?).map_err(|e| corrupt("idx", e))?,
        kind: enum_text(row, "kind")?,
        principal: row.text("principal")?,
        at: row.time("at")?,
        data: row.json("data")?,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

/// Binds a vote, in [`VOTE_COLUMNS`] order.
pub(crate) fn bind_vote<'a>(stmt: Stmt<'a>, vote: &'a Vote, roles: &'a Value) -> Stmt<'a> {
    stmt.bind(vote.approval_id.as_str())
        .bind(vote.principal.as_str())
        .bind(roles)
        .bind(vote.kind.as_str())
        .bind(vote.note.as_deref())
        .bind(vote.args.as_ref())
        .bind(vote.at)
}

/// Reads the `seq` column of an event.
pub(crate) fn seq(row: &dyn Columns) -> Result<i64> {
    row.int("seq")
}

/// Reads a vote selected with [`VOTE_COLUMNS`].
pub(crate) fn vote(row: &dyn Columns) -> Result<Vote> {
    Ok(Vote {
        approval_id: row.text("approval_id")?,
        principal: row.text("principal")?,
        roles: from_json("roles", row)?,
        kind: enum_text(row, "kind")?,
        note: row.opt_text("note")?,
        args: row.opt_json("args")?,
        at: row.time("at")?,
    })
}

/// Reads the head of a chain: its last event's `idx` and `hash`.
pub(crate) fn head(row: &dyn Columns) -> Result<(u32, String, String)> {
    Ok((u32::try_from(row.int("idx")?).map_err(|e| corrupt("idx", e))?, row.text("hash")?, row.text("run_id")?))
}

/// Reads what a row's next event is chained on: its `run_id`, and the `idx` and `hash` of its
/// chain's last event, unless the chain is empty (both `NULL`).
pub(crate) fn run_and_head(row: &dyn Columns) -> Result<(String, Option<(u32, String)>)> {
    let head = match row.opt_text("hash")? {
        Some(hash) => Some((u32::try_from(row.int("idx")?).map_err(|e| corrupt("idx", e))?, hash)),
        None => None,
    };
    Ok((row.text("run_id")?, head))
}

/// Reads a row selected with [`APPROVAL_COLUMNS`].
pub(crate) fn approval(row: &dyn Columns) -> Result<Approval> {
    Ok(Approval {
        id: row.text("id")?,
        run_id: row.text("run_id")?,
        session_id: row.text("session_id")?,
        status: enum_text(row, "status")?,
        approval_type: enum_text(row, "approval_type")?,
        pause_type: enum_text(row, "pause_type")?,
        source_type: enum_text(row, "source_type")?,
        source_name: row.opt_text("source_name")?,
        agent_id: row.opt_text("agent_id")?,
        team_id: row.opt_text("team_id")?,
        user_id: row.opt_text("user_id")?,
        tool_name: row.text("tool_name")?,
        tool_args: row.json("tool_args")?,
        tool_call_id: row.text("tool_call_id")?,
        requirements: from_json("requirements", row)?,
        resolution_data: row.opt_json("resolution_data")?,
        resolved_by: row.opt_text("resolved_by")?,
        resolved_at: row.opt_time("resolved_at")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        expires_at: row.opt_time("expires_at")?,
        run_status: enum_text(row, "run_status")?,
        policy: row.opt_json("policy")?.map(serde_json::from_value).transpose().map_err(|e| corrupt("policy", e))?,
    })
}

/// A row of a page as read back.
pub(crate) struct PageRow {
    /// The row, or its id and why it cannot be read.
    pub(crate) row: Result<Approval, UnreadableRow>,
    /// How many rows match, on every page.
    pub(crate) total: u64,
    /// Where the row stands, read from its own columns so that the next page can start after
    /// a row that cannot be read as a whole; `None` when even those cannot be read.
    pub(crate) key: Option<RowKey>,
}

/// What places a row in a listing: its id and times.
#[derive(Debug)]
pub(crate) struct RowKey {
    pub(crate) id: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

/// Reads what places a row in a listing from its own columns.
fn row_key(row: &dyn Columns) -> Result<RowKey> {
    Ok(RowKey { id: row.text("id")?, created_at: row.time("created_at")?, expires_at: row.opt_time("expires_at")? })
}

/// Reads a row selected with [`APPROVAL_COLUMNS`], or names it as one that cannot be read: a
/// read of many rows goes on past it.
pub(crate) fn approval_or_unreadable(row: &dyn Columns) -> Result<Result<Approval, UnreadableRow>> {
    Ok(approval(row).map_err(|err| UnreadableRow {
        id: row.opt_text("id").ok().flatten().unwrap_or_default(),
        reason: err.to_string(),
    }))
}

/// Reads a row of a page (the columns of [`approval`] and `total`).
pub(crate) fn page_row(row: &dyn Columns) -> Result<PageRow> {
    let total = row.int("total")?;
    let total = u64::try_from(total).map_err(|e| corrupt("total", e))?;
    let approval = approval_or_unreadable(row)?;
    let key = match &approval {
        Ok(approval) => {
            Some(RowKey { id: approval.id.clone(), created_at: approval.created_at, expires_at: approval.expires_at })
        }
        Err(_) => row_key(row).ok(),
    };
    Ok(PageRow { row: approval, total, key })
}

/// Binds an API key, in [`API_KEY_COLUMNS`] order.
pub(crate) fn bind_api_key<'a>(stmt: Stmt<'a>, key: &'a ApiKey) -> Result<Stmt<'a>> {
    Ok(stmt
        .bind(key.id.as_str())
        .bind(key.principal.as_str())
        .bind(key_json(key, "roles", &key.roles)?)
        .bind(key_json(key, "scopes", &key.scopes)?)
        .bind(key.secret_hash.as_str())
        .bind(key.created_at)
        .bind(key.revoked_at))
}

/// A field of `key` as JSON.
fn key_json<T: serde::Serialize>(key: &ApiKey, field: &str, value: &T) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(|e| Error::Corrupt(format!("{field} of API key `{}`: {e}", key.id)))
}

/// Reads an API key selected with [`API_KEY_COLUMNS`].
pub(crate) fn api_key(row: &dyn Columns) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.text("id")?,
        principal: row.text("principal")?,
        roles: from_json("roles", row)?,
        scopes: from_json("scopes", row)?,
        secret_hash: row.text("secret_hash")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

/// The whole run record, stored as JSON in `state`.
pub(crate) fn run_state(run: &RunRecord) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(run).map_err(|e| Error::Corrupt(format!("state of run `{}`: {e}", run.run_id)))
}

/// Reads a run selected with [`RUN_COLUMNS`]: its state, with the status and `updated_at` of
/// its columns, which a claim sets without rewriting the state.
pub(crate) fn run(row: &dyn Columns) -> Result<RunRecord> {
    let mut run: RunRecord = from_json("state", row)?;
    run.status = enum_text(row, "status")?;
    run.updated_at = row.time("updated_at")?;
    Ok(run)
}

/// A run of a listing that workers page through: where it stands in the listing's order, and
/// the run, or why it cannot be read.
pub(crate) struct ListedRun {
    pub(crate) run_id: String,
    /// Its last write's time, unless that cannot be read either.
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) run: std::result::Result<RunRecord, UnreadableRow>,
}

impl ListedRun {
    /// Its place in a listing ordered by last write, then id; `None` when its time cannot be read.
    pub(crate) fn time_cursor(&self) -> Option<PageCursor> {
        self.updated_at.map(|at| PageCursor { at, id: self.run_id.clone() })
    }
}

/// Reads a run selected with [`RUN_COLUMNS`] as [`run`] does, or names it as one that cannot
/// be read (its time included): a listing goes on past it.
pub(crate) fn listed_run(row: &dyn Columns) -> Result<ListedRun> {
    let run_id = row.text("run_id")?;
    let updated_at = row.time("updated_at").ok();
    let run = run(row).map_err(|err| UnreadableRow { id: run_id.clone(), reason: err.to_string() });
    Ok(ListedRun { run_id, updated_at, run })
}

/// Reads the `status` column of a run.
pub(crate) fn run_status(row: &dyn Columns) -> Result<RunStatus> {
    enum_text(row, "status")
}

/// Reads the `n` column of a count.
pub(crate) fn count(row: &dyn Columns) -> Result<u64> {
    let n = row.int("n")?;
    u64::try_from(n).map_err(|e| corrupt("n", e))
}

/// Reads the `version` column.
pub(crate) fn version(row: &dyn Columns) -> Result<i64> {
    row.int("version")
}

/// Parses a JSON column straight into `T`: the state of a run is most of what a cycle reads,
/// and a [`serde_json::Value`] in between would allocate each of its nodes once more.
fn from_json<T: serde::de::DeserializeOwned>(column: &str, row: &dyn Columns) -> Result<T> {
    serde_json::from_str(row.json_text(column)?).map_err(|e| corrupt(column, e))
}

/// Reads a column holding one of a string-backed enum's texts; any other text was not written
/// by kern.
fn enum_text<T: std::str::FromStr<Err = ParseEnumError>>(row: &dyn Columns, column: &str) -> Result<T> {
    row.text(column)?.parse().map_err(|e| corrupt(column, e))
}
