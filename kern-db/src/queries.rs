//! The SQL of a store, built once when it opens: table names are formatted in (they cannot be
//! parameters), every value is a numbered parameter.

use kern_core::approval::{ApprovalQuery, ApprovalStatus};
use kern_core::run::RunStatus;

use crate::codec::{APPROVAL_COLUMN_COUNT, APPROVAL_COLUMNS};
use crate::layout::{Dialect, Layout};
use crate::stmt::{Param, ceil_micros};

/// Every statement a store runs, except the WHERE clauses of list queries (see [`Filter`]).
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) insert_approval: String,
    pub(crate) get_approval: String,
    pub(crate) delete_approval: String,
    /// The compare-and-set: `$1` id, `$2` status, `$3` resolved_by, `$4` resolved_at,
    /// `$5` resolution_data, `$6` now. Applies only to a pending, unexpired row.
    pub(crate) resolve_approval: String,
    /// `$1` run id, `$2` run status.
    pub(crate) set_run_status: String,
    /// `$1` now.
    pub(crate) expire_approvals: String,
    pub(crate) count_pending: String,
    /// `$1` user id.
    pub(crate) count_pending_of_user: String,
    select_approvals: String,
    count_approvals: String,
    /// `$1`..`$6`: session_id, user_id, agent_id, team_id, created_at, updated_at.
    pub(crate) upsert_session: String,
    /// `$1`..`$10`: run_id, session_id, parent_run_id, agent_id, team_id, user_id, status,
    /// state, created_at, updated_at.
    pub(crate) upsert_run: String,
    pub(crate) load_run: String,
    /// The compare-and-set on a run: `$1` run id, `$2` now, `$3` now as JSON text (for the
    /// state's `updated_at`).
    pub(crate) claim_run: String,
    pub(crate) run_status: String,
    /// `$1` session id, `$2` limit: newest first.
    pub(crate) session_runs: String,
}

impl Queries {
    pub(crate) fn new(layout: &Layout) -> Self {
        let approvals = layout.table(&layout.approvals);
        let runs = layout.table(&layout.runs);
        let sessions = layout.table(&layout.sessions);
        let pending = ApprovalStatus::Pending.as_str();
        let expired = ApprovalStatus::Expired.as_str();
        let running = RunStatus::Running.as_str();
        let paused = RunStatus::Paused.as_str();
        let placeholders: Vec<String> = (1..=APPROVAL_COLUMN_COUNT).map(|n| format!("${n}")).collect();
        let (greatest, patch_state) = match layout.dialect {
            Dialect::Sqlite => ("MAX", format!("json_set(state, '$.status', '{running}', '$.updated_at', $3)")),
            Dialect::Postgres => {
                ("GREATEST", format!("state || jsonb_build_object('status', '{running}', 'updated_at', $3::text)"))
            }
        };
        Queries {
            insert_approval: format!(
                "INSERT INTO {approvals} ({APPROVAL_COLUMNS}) VALUES ({})",
                placeholders.join(", ")
            ),
            get_approval: format!("SELECT {APPROVAL_COLUMNS} FROM {approvals} WHERE id = $1"),
            delete_approval: format!("DELETE FROM {approvals} WHERE id = $1"),
            resolve_approval: format!(
                "UPDATE {approvals} SET status = $2, resolved_by = $3, resolved_at = $4, resolution_data = $5, \
                 updated_at = $6 \
                 WHERE id = $1 AND status = '{pending}' AND (expires_at IS NULL OR expires_at > $6) \
                 RETURNING {APPROVAL_COLUMNS}"
            ),
            set_run_status: format!("UPDATE {approvals} SET run_status = $2 WHERE run_id = $1 AND run_status <> $2"),
            expire_approvals: format!(
                "UPDATE {approvals} SET status = '{expired}', updated_at = $1 \
                 WHERE status = '{pending}' AND expires_at <= $1"
            ),
            count_pending: format!("SELECT COUNT(*) AS n FROM {approvals} WHERE status = '{pending}'"),
            count_pending_of_user: format!(
                "SELECT COUNT(*) AS n FROM {approvals} WHERE status = '{pending}' AND user_id = $1"
            ),
            select_approvals: format!("SELECT {APPROVAL_COLUMNS} FROM {approvals}"),
            count_approvals: format!("SELECT COUNT(*) AS n FROM {approvals}"),
            upsert_session: format!(
                "INSERT INTO {sessions} AS cur (session_id, user_id, agent_id, team_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (session_id) DO UPDATE SET \
                 user_id = COALESCE(cur.user_id, excluded.user_id), \
                 agent_id = COALESCE(cur.agent_id, excluded.agent_id), \
                 team_id = COALESCE(cur.team_id, excluded.team_id), \
                 updated_at = {greatest}(cur.updated_at, excluded.updated_at)"
            ),
            upsert_run: format!(
                "INSERT INTO {runs} \
                 (run_id, session_id, parent_run_id, agent_id, team_id, user_id, status, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (run_id) DO UPDATE SET \
                 session_id = excluded.session_id, parent_run_id = excluded.parent_run_id, \
                 agent_id = excluded.agent_id, team_id = excluded.team_id, user_id = excluded.user_id, \
                 status = excluded.status, state = excluded.state, \
                 created_at = excluded.created_at, updated_at = excluded.updated_at"
            ),
            load_run: format!("SELECT state FROM {runs} WHERE run_id = $1"),
            claim_run: format!(
                "UPDATE {runs} SET status = '{running}', updated_at = $2, state = {patch_state} \
                 WHERE run_id = $1 AND status = '{paused}' RETURNING state"
            ),
            run_status: format!("SELECT status FROM {runs} WHERE run_id = $1"),
            session_runs: format!(
                "SELECT state FROM {runs} WHERE session_id = $1 AND parent_run_id IS NULL \
                 ORDER BY created_at DESC, run_id DESC LIMIT $2"
            ),
        }
    }

    /// One page of matching rows, newest first, ties broken by id; binds the filter's values,
    /// then the limit and the offset.
    pub(crate) fn list_page(&self, filter: &Filter<'_>) -> String {
        let n = filter.params.len();
        format!(
            "{} {} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            self.select_approvals,
            filter.where_clause(),
            n + 1,
            n + 2
        )
    }

    /// How many rows match; binds the filter's values.
    pub(crate) fn list_count(&self, filter: &Filter<'_>) -> String {
        format!("{} {}", self.count_approvals, filter.where_clause())
    }
}

/// The conditions of an [`ApprovalQuery`] and the values they bind: only the filters that are
/// set, so the database can use its indexes.
#[derive(Debug)]
pub(crate) struct Filter<'a> {
    conditions: Vec<String>,
    pub(crate) params: Vec<Param<'a>>,
}

impl<'a> Filter<'a> {
    pub(crate) fn new(query: &'a ApprovalQuery) -> Self {
        let mut filter = Filter { conditions: Vec::new(), params: Vec::new() };
        filter.add("status =", query.status.map(|v| v.as_str()));
        filter.add("approval_type =", query.approval_type.map(|v| v.as_str()));
        filter.add("pause_type =", query.pause_type.map(|v| v.as_str()));
        filter.add("source_type =", query.source_type.map(|v| v.as_str()));
        filter.add("agent_id =", query.agent_id.as_deref());
        filter.add("team_id =", query.team_id.as_deref());
        filter.add("user_id =", query.user_id.as_deref());
        filter.add("run_id =", query.run_id.as_deref());
        filter.add("session_id =", query.session_id.as_deref());
        filter.add("created_at <", query.created_before.map(ceil_micros));
        filter.add("created_at >=", query.created_after.map(ceil_micros));
        filter
    }

    fn add<P: Into<Param<'a>>>(&mut self, test: &str, value: Option<P>) {
        if let Some(value) = value {
            self.params.push(value.into());
            self.conditions.push(format!("{test} ${}", self.params.len()));
        }
    }

    fn where_clause(&self) -> String {
        if self.conditions.is_empty() { String::new() } else { format!("WHERE {}", self.conditions.join(" AND ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::TableNames;

    fn queries() -> Queries {
        Queries::new(&Layout::new(Dialect::Sqlite, None, &TableNames::default()).unwrap())
    }

    #[test]
    fn only_set_filters_become_conditions() {
        let query = ApprovalQuery::default().user_id("u' OR 1=1 --").status(ApprovalStatus::Pending);
        let filter = Filter::new(&query);
        assert_eq!(
            queries().list_page(&filter),
            format!(
                "SELECT {APPROVAL_COLUMNS} FROM \"kern_approvals\" WHERE status = $1 AND user_id = $2 \
                 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            )
        );
        assert_eq!(filter.params.len(), 2);
    }

    #[test]
    fn no_filter_lists_everything() {
        let query = ApprovalQuery::default();
        assert_eq!(queries().list_count(&Filter::new(&query)), "SELECT COUNT(*) AS n FROM \"kern_approvals\" ");
    }

    #[test]
    fn insert_binds_every_column() {
        assert_eq!(APPROVAL_COLUMNS.split(',').count(), APPROVAL_COLUMN_COUNT);
        assert!(queries().insert_approval.ends_with(&format!("${APPROVAL_COLUMN_COUNT})")));
    }
}
