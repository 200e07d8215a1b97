//! The SQL of a store, built once when it opens: table names are formatted in (they cannot be
//! parameters), every value is a numbered parameter.

use chrono::{DateTime, Utc};
use kern_core::approval::{ApprovalQuery, ApprovalStatus, ListOrder, PageCursor, PauseType};
use kern_core::run::{RunQuery, RunStatus};

use kern_core::limits;

use crate::codec::{
    API_KEY_COLUMNS, APPROVAL_COLUMN_COUNT, APPROVAL_COLUMNS, APPROVAL_INSERT_COLUMNS, EVENT_COLUMN_COUNT,
    EVENT_COLUMNS, EVENT_INSERT_COLUMNS, RUN_COLUMNS, VOTE_COLUMNS,
};
use crate::driver::Driver;
use crate::layout::Layout;
use crate::stmt::{Param, Stmt, ceil_micros, floor_micros};

/// Every statement a store runs, except the WHERE clauses of list queries (see [`Filter`]) and
/// the row count of an insert.
#[derive(Debug)]
pub(crate) struct Queries {
    approvals: String,
    runs: String,
    events: String,
    pub(crate) get_approval: String,
    /// [`get_approval`](Self::get_approval), locking the row until the transaction ends.
    pub(crate) get_approval_locked: String,
    /// The compare-and-set: `$1` id, `$2` status, `$3` resolved_by, `$4` resolved_at,
    /// `$5` resolution_data, `$6` now. Applies only to a pending, unexpired row.
    pub(crate) resolve_approval: String,
    /// [`resolve_approval`](Self::resolve_approval) limited to confirmation rows: the only
    /// rows an approval needs no data for, so it may apply without reading the row first.
    pub(crate) resolve_confirmation: String,
    /// A principal's decision of a pending row: `$1` id, `$2` status, `$3` resolved_by, `$4`
    /// resolved_at, `$5` resolution_data, `$6` now.
    pub(crate) decide_row: String,
    /// A vote on a pending row that does not decide it: `$1` id, `$2` now (its `updated_at`).
    pub(crate) touch_row: String,
    /// `$1` id, `$2` now.
    pub(crate) expire_row: String,
    /// The pending rows past their expiry at `$1` (not locked: a sweep locks runs before rows),
    /// in `id` order after `$2`, at most `$3`.
    pub(crate) overdue_rows: String,
    /// The pending rows of run `$1`, locked.
    pub(crate) pending_rows_of_run: String,
    /// `$1` now.
    pub(crate) count_pending: String,
    /// `$1` user id, `$2` now.
    pub(crate) count_pending_of_user: String,
    /// Every row, for the trail's check.
    pub(crate) all_rows: String,
    /// The events of row `$1`, in chain order.
    pub(crate) trail: String,
    /// The last event of row `$1`'s chain: `idx`, `hash` and the `run_id` every event of the
    /// chain names (its row's).
    pub(crate) trail_head: String,
    /// The `run_id` of row `$1` and the `idx` and `hash` of its chain's last event (`NULL`s for
    /// an empty chain): what the event of its resolution is chained on.
    pub(crate) resolution_head: String,
    /// One event, its columns bound as [`insert_events`](Self::insert_events) binds them, as
    /// an `INSERT .. SELECT` without `FROM` (see `Driver::update_then_insert`).
    pub(crate) insert_selected_event: String,
    /// Every event, by row and in chain order, for the trail's check.
    pub(crate) all_events: String,
    /// The events after `seq` `$1`, in `seq` order, at most `$2`.
    pub(crate) events_after: String,
    /// The `seq` of the latest event, 0 without any.
    pub(crate) last_event_seq: String,
    /// The votes on row `$1`, oldest first.
    pub(crate) votes: String,
    /// Every vote, by row: what the trail's check compares with the vote events.
    pub(crate) all_votes: String,
    pub(crate) insert_vote: String,
    count_approvals: String,
    /// The pending rows not past their expiry at `$1`, from the kept count.
    pending_count: String,
    /// `$1`..`$10`: run_id, session_id, parent_run_id, agent_id, team_id, user_id, status,
    /// state, created_at, updated_at.
    pub(crate) upsert_run: String,
    pub(crate) load_run: String,
    /// [`load_run`](Self::load_run), locking the run until the transaction ends.
    pub(crate) load_run_locked: String,
    /// The paused member runs of team run `$1`, locked.
    pub(crate) paused_members: String,
    /// The compare-and-set on a run: `$1` run id, `$2` now. It sets the `status` and
    /// `updated_at` columns only, which are what a run reads back (see `codec::run`).
    pub(crate) claim_run: String,
    /// The compare-and-set on a run a continue left running: `$1` run id, `$2` now, `$3` the
    /// latest `updated_at` that counts as stale.
    pub(crate) reclaim_run: String,
    /// The compare-and-set that renews a held claim: `$1` run id, `$2` now, `$3` the
    /// `updated_at` the holder left.
    pub(crate) renew_claim: String,
    /// [`reclaim_run`](Self::reclaim_run) that hands the run back as `paused`.
    pub(crate) release_run: String,
    /// The running member runs of team run `$1`, paused (at `$2`) when the team run is stale
    /// by `$3`, as [`release_run`](Self::release_run) finds it: a dead continue held them too.
    pub(crate) release_members: String,
    pub(crate) run_status: String,
    /// `$1` session id, `$2` limit: newest first.
    pub(crate) session_runs: String,
    /// Paused top-level runs with approval rows, their own or their members', none of them
    /// pending at `$2`: `run_id` after `$1`, in `run_id` order, at most `$3`.
    pub(crate) decided_runs: String,
    /// Runs written after the cursor `($1, $2)` in (`updated_at`, `run_id`) order, at most `$3`.
    changed_runs: String,
    /// Binds every column of a key, in `codec::API_KEY_COLUMNS` order.
    pub(crate) insert_api_key: String,
    /// The key `$1`.
    pub(crate) api_key: String,
    /// Every key, oldest first.
    pub(crate) api_keys: String,
    /// Revokes key `$1` at `$2`, unless it is revoked already, and returns it.
    pub(crate) revoke_api_key: String,
}

impl Queries {
    pub(crate) fn new<DB: Driver>(layout: &Layout) -> Self {
        let approvals = layout.qualified(&layout.approvals);
        let runs = layout.qualified(&layout.runs);
        let pending = ApprovalStatus::Pending.as_str();
        let expired = ApprovalStatus::Expired.as_str();
        let running = RunStatus::Running.as_str();
        let paused = RunStatus::Paused.as_str();
        let (events, votes) = (layout.qualified(&layout.events()), layout.qualified(&layout.votes()));
        let api_keys = layout.qualified(&layout.api_keys());
        let lock = DB::FOR_UPDATE;
        let decide_row = format!(
            "UPDATE {approvals} SET status = $2, resolved_by = $3, resolved_at = $4, resolution_data = $5, \
             updated_at = $6 WHERE id = $1 AND status = '{pending}' AND (expires_at IS NULL OR expires_at > $6)"
        );
        // The trusted path never resolves a row decided only by principals.
        let resolve_approval = format!("{decide_row} AND principals_only = 0");
        let not_expired = "(expires_at IS NULL OR expires_at > $1)";
        // The pending rows not past their expiry at `$1`: the kept count (see
        // `schema::pending_count`) less the pending rows past it, read on the index of expiries.
        let pending_count = format!(
            "(SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM {}) - \
             (SELECT COUNT(*) FROM {approvals} WHERE status = '{pending}' AND expires_at <= $1)",
            layout.qualified(&layout.pending_counts())
        );
        let returning = format!("RETURNING {APPROVAL_COLUMNS}");
        let confirmation = PauseType::Confirmation.as_str();
        Queries {
            resolve_confirmation: format!("{resolve_approval} AND pause_type = '{confirmation}' {returning}"),
            resolve_approval: format!("{resolve_approval} {returning}"),
            get_approval: format!("SELECT {APPROVAL_COLUMNS} FROM {approvals} WHERE id = $1"),
            get_approval_locked: format!("SELECT {APPROVAL_COLUMNS} FROM {approvals} WHERE id = $1{lock}"),
            touch_row: format!("UPDATE {approvals} SET updated_at = $2 WHERE id = $1 AND status = '{pending}'"),
            decide_row,
            expire_row: format!(
                "UPDATE {approvals} SET status = '{expired}', updated_at = $2 WHERE id = $1 AND status = '{pending}'"
            ),
            overdue_rows: format!(
                "SELECT {APPROVAL_COLUMNS} FROM {approvals} WHERE status = '{pending}' AND expires_at <= $1 \
                 AND id > $2 ORDER BY id LIMIT $3"
            ),
            pending_rows_of_run: format!(
                "SELECT {APPROVAL_COLUMNS} FROM {approvals} WHERE run_id = $1 AND status = '{pending}' ORDER BY id{lock}"
            ),
            count_pending: format!("SELECT {pending_count} AS n"),
            count_pending_of_user: format!(
                "SELECT COUNT(*) AS n FROM {approvals} WHERE status = '{pending}' AND user_id = $2 AND {not_expired}"
            ),
            all_rows: format!("SELECT {APPROVAL_COLUMNS} FROM {approvals} ORDER BY id"),
            trail: format!("SELECT {EVENT_COLUMNS} FROM {events} WHERE approval_id = $1 ORDER BY idx"),
            trail_head: format!(
                "SELECT idx, hash, run_id FROM {events} WHERE approval_id = $1 ORDER BY idx DESC LIMIT 1"
            ),
            resolution_head: format!(
                "SELECT a.run_id, head.idx, head.hash FROM {approvals} a LEFT JOIN \
                 (SELECT idx, hash FROM {events} WHERE approval_id = $1 ORDER BY idx DESC LIMIT 1) head ON 1 = 1 \
                 WHERE a.id = $1"
            ),
            insert_selected_event: format!(
                "INSERT INTO {events} ({EVENT_INSERT_COLUMNS}) SELECT {}",
                (1..=EVENT_COLUMN_COUNT).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
            ),
            all_events: format!("SELECT {EVENT_COLUMNS} FROM {events} ORDER BY approval_id, idx"),
            events_after: format!("SELECT {EVENT_COLUMNS} FROM {events} WHERE seq > $1 ORDER BY seq LIMIT $2"),
            last_event_seq: format!("SELECT COALESCE(MAX(seq), 0) AS seq FROM {events}"),
            votes: format!("SELECT {VOTE_COLUMNS} FROM {votes} WHERE approval_id = $1 ORDER BY at, principal"),
            all_votes: format!("SELECT {VOTE_COLUMNS} FROM {votes} ORDER BY approval_id, at, principal"),
            insert_vote: format!("INSERT INTO {votes} ({VOTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            events,
            count_approvals: format!("SELECT COUNT(*) AS n FROM {approvals}"),
            pending_count,
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
            load_run: format!("SELECT {RUN_COLUMNS} FROM {runs} WHERE run_id = $1"),
            load_run_locked: format!("SELECT {RUN_COLUMNS} FROM {runs} WHERE run_id = $1{lock}"),
            paused_members: format!(
                "SELECT {RUN_COLUMNS} FROM {runs} WHERE parent_run_id = $1 AND status = '{paused}' \
                 ORDER BY run_id{lock}"
            ),
            claim_run: format!(
                "UPDATE {runs} SET status = '{running}', updated_at = $2 \
                 WHERE run_id = $1 AND status = '{paused}' RETURNING {RUN_COLUMNS}"
            ),
            reclaim_run: format!(
                "UPDATE {runs} SET updated_at = $2 \
                 WHERE run_id = $1 AND status = '{running}' AND updated_at <= $3 RETURNING {RUN_COLUMNS}"
            ),
            renew_claim: format!(
                "UPDATE {runs} SET updated_at = $2 WHERE run_id = $1 AND status = '{running}' AND updated_at = $3"
            ),
            release_members: format!(
                "UPDATE {runs} SET status = '{paused}', updated_at = $2 \
                 WHERE parent_run_id = $1 AND status = '{running}' AND EXISTS (SELECT 1 FROM {runs} AS team \
                 WHERE team.run_id = $1 AND team.status = '{running}' AND team.updated_at <= $3)"
            ),
            release_run: format!(
                "UPDATE {runs} SET status = '{paused}', updated_at = $2 \
                 WHERE run_id = $1 AND status = '{running}' AND updated_at <= $3 RETURNING {RUN_COLUMNS}"
            ),
            run_status: format!("SELECT status FROM {runs} WHERE run_id = $1"),
            session_runs: format!(
                "SELECT {RUN_COLUMNS} FROM {runs} WHERE session_id = $1 AND parent_run_id IS NULL \
                 ORDER BY created_at DESC, run_id DESC LIMIT $2"
            ),
            decided_runs: format!(
                "SELECT {RUN_COLUMNS} FROM {runs} r WHERE r.status = '{paused}' AND r.parent_run_id IS NULL \
                 AND r.run_id > $1 AND EXISTS ({rows}) AND NOT EXISTS ({pending}) ORDER BY r.run_id LIMIT $3",
                rows = family_rows(&approvals, &runs, ""),
                pending = family_rows(
                    &approvals,
                    &runs,
                    &format!(" AND a.status = '{pending}' AND (a.expires_at IS NULL OR a.expires_at > $2)")
                ),
            ),
            changed_runs: format!(
                "SELECT {RUN_COLUMNS} FROM {runs} WHERE (updated_at, run_id) > ($1, $2) ORDER BY updated_at, run_id \
                 LIMIT $3"
            ),
            insert_api_key: format!("INSERT INTO {api_keys} ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            api_key: format!("SELECT {API_KEY_COLUMNS} FROM {api_keys} WHERE id = $1"),
            api_keys: format!("SELECT {API_KEY_COLUMNS} FROM {api_keys} ORDER BY created_at, id"),
            revoke_api_key: format!(
                "UPDATE {api_keys} SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {API_KEY_COLUMNS}"
            ),
            approvals,
            runs,
        }
    }

    /// One page of the runs `query` selects, newest first, ties broken by run id; `None` when
    /// it filters on a key no run can have (see [`limits::is_key`]), so that nothing matches
    /// without asking the database.
    pub(crate) fn list_runs<'a>(&self, query: &'a RunQuery) -> Option<Stmt<'a>> {
        let keys = [&query.agent_id, &query.team_id, &query.user_id, &query.session_id];
        let cursor_id = query.after.as_ref().map(|cursor| &cursor.id);
        if keys.into_iter().flatten().chain(cursor_id).any(|key| !limits::is_key(key)) {
            return None;
        }
        let mut conditions = Vec::new();
        let mut params: Vec<Param<'a>> = Vec::new();
        let mut add = |test: &str, value: Option<Param<'a>>| {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{test} ${}", params.len()));
            }
        };
        add("status =", query.status.map(|status| status.as_str().into()));
        add("agent_id =", query.agent_id.as_deref().map(Param::from));
        add("team_id =", query.team_id.as_deref().map(Param::from));
        add("user_id =", query.user_id.as_deref().map(Param::from));
        add("session_id =", query.session_id.as_deref().map(Param::from));
        if !query.members {
            conditions.push("parent_run_id IS NULL".to_owned());
        }
        if let Some(after) = &query.after {
            let [time, id] = cursor(after);
            params.extend([time, id]);
            let n = params.len();
            conditions.push(format!("(created_at, run_id) < (${}, ${n})", n - 1));
        }
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM {} {} ORDER BY created_at DESC, run_id DESC LIMIT ${}",
            self.runs,
            where_of(conditions.iter().map(String::as_str)),
            params.len() + 1
        );
        Some(Stmt { sql: sql.into(), params }.bind(i64::from(query.effective_limit())))
    }

    /// Runs written after `after` (see [`Store::runs_changed_after`]), at most `limit`.
    ///
    /// [`Store::runs_changed_after`]: kern_core::store::Store::runs_changed_after
    pub(crate) fn runs_changed_after<'a>(&'a self, after: &'a PageCursor, limit: u32) -> Stmt<'a> {
        Stmt { sql: self.changed_runs.as_str().into(), params: cursor(after).into() }.bind(i64::from(limit))
    }

    /// Top-level runs running since `cutoff` or before, oldest first (ties by run id), after
    /// `after`, at most `limit`; `None` when the cursor names a run id no run can have (see
    /// [`limits::is_key`]), so that nothing matches without asking the database.
    pub(crate) fn stale_runs<'a>(
        &self,
        cutoff: DateTime<Utc>,
        after: Option<&'a PageCursor>,
        limit: u32,
    ) -> Option<Stmt<'a>> {
        let mut params = vec![Param::from(cutoff)];
        let mut condition = "";
        if let Some(after) = after {
            if !limits::is_key(&after.id) {
                return None;
            }
            params.extend(cursor(after));
            condition = " AND (updated_at, run_id) > ($2, $3)";
        }
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM {} WHERE status = '{}' AND parent_run_id IS NULL AND updated_at <= $1{condition} \
             ORDER BY updated_at, run_id LIMIT ${}",
            self.runs,
            RunStatus::Running.as_str(),
            params.len() + 1
        );
        Some(Stmt { sql: sql.into(), params }.bind(i64::from(limit)))
    }

    /// Inserts `rows` approval rows in one statement; binds every column of each row in turn.
    pub(crate) fn insert_approvals(&self, rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let first = row * APPROVAL_COLUMN_COUNT;
                let placeholders: Vec<String> =
                    (1..=APPROVAL_COLUMN_COUNT).map(|n| format!("${}", first + n)).collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        format!("INSERT INTO {} ({APPROVAL_INSERT_COLUMNS}) VALUES {}", self.approvals, values.join(", "))
    }

    /// Inserts `rows` events in one statement; binds every column of each event in turn.
    pub(crate) fn insert_events(&self, rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let first = row * EVENT_COLUMN_COUNT;
                let placeholders: Vec<String> = (1..=EVENT_COLUMN_COUNT).map(|n| format!("${}", first + n)).collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        format!("INSERT INTO {} ({EVENT_INSERT_COLUMNS}) VALUES {}", self.events, values.join(", "))
    }

    /// One page of matching rows in the query's order, ties broken by id, each with the number of all
    /// matching rows in column `total` (a subquery the database runs once, on the index alone,
    /// which counts the rows of every page: the cursor is no condition of it); binds the
    /// filter's [page values](Filter::page_params), then the limit and the offset.
    pub(crate) fn list_page(&self, filter: &Filter<'_>) -> String {
        let n = filter.params.len() + filter.cursor.as_ref().map_or(0, |cursor| cursor.len());
        format!(
            "SELECT {APPROVAL_COLUMNS}, ({}) AS total FROM {} {} \
             ORDER BY {} LIMIT ${} OFFSET ${}",
            self.total(filter),
            self.approvals,
            filter.page_where_clause(),
            filter.order_by(),
            n + 1,
            n + 2
        )
    }

    /// How many rows match, for a page that came back empty; binds the filter's values.
    pub(crate) fn list_count(&self, filter: &Filter<'_>) -> String {
        if filter.pending_only { format!("SELECT {} AS n", self.pending_count) } else { self.total(filter) }
    }

    /// The query of the number of rows that match `filter`: from the kept count of pending
    /// rows for the inbox (pending rows, no other filter), a count of the rows otherwise.
    fn total(&self, filter: &Filter<'_>) -> String {
        if filter.pending_only {
            format!("SELECT {}", self.pending_count)
        } else {
            format!("{} {}", self.count_approvals, filter.where_clause())
        }
    }
}

/// The conditions of an [`ApprovalQuery`] and the values they bind: only the filters that are
/// set, so the database can use its indexes.
#[derive(Debug)]
pub(crate) struct Filter<'a> {
    conditions: Vec<String>,
    /// The values of `conditions`: all a count binds.
    pub(crate) params: Vec<Param<'a>>,
    /// The time and id a page starts after ([`ApprovalQuery::after`]), bound after `params`:
    /// a condition of the page only.
    cursor: Option<[Param<'a>; 2]>,
    order: ListOrder,
    /// True when the only condition is being pending at the time bound first: the rows the
    /// kept count counts.
    pending_only: bool,
}

impl<'a> Filter<'a> {
    /// The filter of `query` at `now` (a pending row past its expiry counts as expired); `None`
    /// when it filters on a key no row can have, or its cursor names one (see
    /// [`limits::is_key`]), so that nothing matches without asking the database.
    pub(crate) fn new(query: &'a ApprovalQuery, now: DateTime<Utc>) -> Option<Self> {
        let cursor_id = query.after.as_ref().map(|cursor| &cursor.id);
        let keys =
            [&query.agent_id, &query.team_id, &query.user_id, &query.run_id, &query.session_id, &query.tool_name];
        if keys.into_iter().flatten().chain(cursor_id).any(|key| !limits::is_key(key)) {
            return None;
        }
        let cursor = query.after.as_ref().map(cursor);
        let mut filter =
            Filter { conditions: Vec::new(), params: Vec::new(), cursor, order: query.order, pending_only: false };
        if query.order == ListOrder::ExpiringSoonest {
            filter.conditions.push("expires_at IS NOT NULL".to_owned());
        }
        let (pending, expired) = (ApprovalStatus::Pending.as_str(), ApprovalStatus::Expired.as_str());
        match query.status {
            Some(ApprovalStatus::Pending) => {
                filter.params.push(now.into());
                let n = filter.params.len();
                filter.conditions.push(format!("status = '{pending}' AND (expires_at IS NULL OR expires_at > ${n})"));
            }
            Some(ApprovalStatus::Expired) => {
                filter.params.push(now.into());
                let n = filter.params.len();
                filter
                    .conditions
                    .push(format!("(status = '{expired}' OR (status = '{pending}' AND expires_at <= ${n}))"));
            }
            status => filter.add("status =", status.map(|v| v.as_str())),
        }
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
        filter.add("tool_name =", query.tool_name.as_deref());
        filter.add("expires_at <", query.expires_before.map(ceil_micros));
        filter.pending_only = query.status == Some(ApprovalStatus::Pending) && filter.conditions.len() == 1;
        Some(filter)
    }

    fn add<P: Into<Param<'a>>>(&mut self, test: &str, value: Option<P>) {
        if let Some(value) = value {
            self.params.push(value.into());
            self.conditions.push(format!("{test} ${}", self.params.len()));
        }
    }

    /// The values a page binds: those of the conditions, then the cursor's.
    pub(crate) fn page_params(&self) -> Vec<Param<'a>> {
        self.params.iter().chain(self.cursor.iter().flatten()).cloned().collect()
    }

    /// The listing's order.
    fn order_by(&self) -> &'static str {
        match self.order {
            ListOrder::Newest => "created_at DESC, id DESC",
            ListOrder::ExpiringSoonest => "expires_at, id",
        }
    }

    /// The conditions of the rows counted in the total.
    fn where_clause(&self) -> String {
        where_of(self.conditions.iter().map(String::as_str))
    }

    /// The conditions of the rows of a page: the total's, and after the cursor in the listing's
    /// order.
    fn page_where_clause(&self) -> String {
        let n = self.params.len();
        let after = self.cursor.as_ref().map(|_| match self.order {
            ListOrder::Newest => format!("(created_at, id) < (${}, ${})", n + 1, n + 2),
            ListOrder::ExpiringSoonest => format!("(expires_at, id) > (${}, ${})", n + 1, n + 2),
        });
        where_of(self.conditions.iter().map(String::as_str).chain(after.as_deref()))
    }
}

/// The approval rows of top-level run `r` and of its member runs that meet `condition` (`AND ..`
/// on `a`, the row): one branch a level, so that each probes an index (rows by run, runs by
/// parent) rather than the database testing every row against both.
fn family_rows(approvals: &str, runs: &str, condition: &str) -> String {
    format!(
        "SELECT 1 FROM {approvals} a WHERE a.run_id = r.run_id{condition} UNION ALL \
         SELECT 1 FROM {runs} m JOIN {approvals} a ON a.run_id = m.run_id WHERE m.parent_run_id = r.run_id{condition}"
    )
}

/// `WHERE` and all of `conditions`; nothing without any.
fn where_of<'s>(conditions: impl Iterator<Item = &'s str>) -> String {
    let conditions: Vec<&str> = conditions.collect();
    if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) }
}

/// The values of the cursor's condition: `(created_at, id) < (time, id)` newest first,
/// `(expires_at, id) > (time, id)` expiring soonest first, `(updated_at, run_id) > (time, id)`
/// for the stale runs, oldest first. A cursor between two stored microseconds is equal to no
/// stored time: the rows after it are those before the next microsecond (newest first) or from
/// it on (the others), whatever their id, which the empty id, less than any other, selects in
/// all.
fn cursor<'a>(cursor: &'a PageCursor) -> [Param<'a>; 2] {
    let exact = floor_micros(cursor.at) == cursor.at;
    [ceil_micros(cursor.at).into(), if exact { cursor.id.as_str() } else { "" }.into()]
}

#[cfg(test)]
mod tests {
    use sqlx::Sqlite;

    use super::*;
    use crate::layout::TableNames;

    fn queries() -> Queries {
        Queries::new::<Sqlite>(&Layout::new(None, &TableNames::default()).unwrap())
    }

    #[test]
    fn only_set_filters_become_conditions() {
        let query = ApprovalQuery::default().user_id("u' OR 1=1 --").status(ApprovalStatus::Pending);
        let filter = Filter::new(&query, kern_core::now()).unwrap();
        let where_clause = "WHERE status = 'pending' AND (expires_at IS NULL OR expires_at > $1) AND user_id = $2";
        assert_eq!(
            queries().list_page(&filter),
            format!(
                "SELECT {APPROVAL_COLUMNS}, (SELECT COUNT(*) AS n FROM \"kern_approvals\" {where_clause}) AS total \
                 FROM \"kern_approvals\" {where_clause} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            )
        );
        assert_eq!(filter.params.len(), 2);
    }

    #[test]
    fn a_cursor_limits_the_page_and_not_its_total() {
        let cursor = PageCursor { at: kern_core::now(), id: "row-9".into() };
        let query = ApprovalQuery::default().tool_name("send_invoice").after(cursor);
        let filter = Filter::new(&query, kern_core::now()).unwrap();
        let count = "WHERE tool_name = $1";
        assert_eq!(
            queries().list_page(&filter),
            format!(
                "SELECT {APPROVAL_COLUMNS}, (SELECT COUNT(*) AS n FROM \"kern_approvals\" {count}) AS total \
                 FROM \"kern_approvals\" {count} AND (created_at, id) < ($2, $3) \
                 ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
            )
        );
        assert_eq!(queries().list_count(&filter), format!("SELECT COUNT(*) AS n FROM \"kern_approvals\" {count}"));
        assert_eq!((filter.params.len(), filter.page_params().len()), (1, 3));
    }

    #[test]
    fn a_cursor_alone_is_the_only_condition_of_the_page() {
        let cursor = PageCursor { at: kern_core::now(), id: "row-9".into() };
        let query = ApprovalQuery::default().after(cursor);
        let filter = Filter::new(&query, kern_core::now()).unwrap();
        let page = queries().list_page(&filter);
        assert!(page.contains("(SELECT COUNT(*) AS n FROM \"kern_approvals\" ) AS total"), "{page}");
        assert!(page.contains("WHERE (created_at, id) < ($1, $2) ORDER BY"), "{page}");
    }

    #[test]
    fn the_inbox_total_reads_the_kept_count_and_other_filters_count_rows() {
        let now = kern_core::now();
        let counted = "(SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM \"kern_approvals_pending\") - \
                       (SELECT COUNT(*) FROM \"kern_approvals\" WHERE status = 'pending' AND expires_at <= $1)";
        let inbox = ApprovalQuery::default().status(ApprovalStatus::Pending);
        let filter = Filter::new(&inbox, now).unwrap();
        assert!(queries().list_page(&filter).contains(&format!("(SELECT {counted}) AS total")));
        assert_eq!(queries().list_count(&filter), format!("SELECT {counted} AS n"));
        assert_eq!(queries().count_pending, format!("SELECT {counted} AS n"));
        for narrower in [inbox.clone().user_id("u1"), inbox.clone().order(ListOrder::ExpiringSoonest)] {
            let filter = Filter::new(&narrower, now).unwrap();
            assert!(queries().list_count(&filter).starts_with("SELECT COUNT(*) AS n FROM"), "{narrower:?}");
        }
    }

    #[test]
    fn no_filter_lists_everything() {
        let query = ApprovalQuery::default();
        let filter = Filter::new(&query, kern_core::now()).unwrap();
        assert_eq!(queries().list_count(&filter), "SELECT COUNT(*) AS n FROM \"kern_approvals\" ");
    }

    #[test]
    fn a_filter_on_a_key_no_row_can_have_matches_nothing() {
        let now = kern_core::now();
        assert!(Filter::new(&ApprovalQuery::default().user_id("a\0b"), now).is_none());
        let long = "s".repeat(limits::MAX_KEY_LEN + 1);
        assert!(Filter::new(&ApprovalQuery::default().session_id(long), now).is_none());
        assert!(Filter::new(&ApprovalQuery::default().run_id("s".repeat(limits::MAX_KEY_LEN)), now).is_some());
        assert!(Filter::new(&ApprovalQuery::default().tool_name("a\0b"), now).is_none());
        let cursor = PageCursor { at: now, id: "a\0b".into() };
        assert!(Filter::new(&ApprovalQuery::default().after(cursor), now).is_none());
    }

    #[test]
    fn insert_binds_every_column_of_every_row() {
        assert_eq!(APPROVAL_INSERT_COLUMNS.split(',').count(), APPROVAL_COLUMN_COUNT);
        assert_eq!(EVENT_INSERT_COLUMNS.split(',').count(), EVENT_COLUMN_COUNT);
        let row = |first: usize| {
            let placeholders: Vec<String> = (first..first + APPROVAL_COLUMN_COUNT).map(|n| format!("${n}")).collect();
            format!("({})", placeholders.join(", "))
        };
        let second = 1 + APPROVAL_COLUMN_COUNT;
        assert!(queries().insert_approvals(1).ends_with(&format!("VALUES {}", row(1))));
        assert!(queries().insert_approvals(2).ends_with(&format!("VALUES {}, {}", row(1), row(second))));
    }
}
