//! An in-memory [`Store`]: for tests, examples and single-process programs that need no
//! durability. Same semantics as the database stores, checked by the same test suite.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde_json::Value;

use super::Store;
use super::backend::{
    DecisionRules, ResolutionRules, ResolutionWaiters, TrailSignal, check_api_key, check_save, check_update,
    stale_cutoff,
};
use crate::BoxFuture;
use crate::approval::{
    Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalUpdate, Decision, OnExpire, Principal, Vote,
};
use crate::error::{Error, Result};
use crate::keys::ApiKey;
use crate::run::{RunPage, RunQuery, RunRecord, RunStatus};
use crate::trail::{self, EventKind, Execution, SYSTEM_PRINCIPAL, TrailEvent, TrailReport};

/// A store that keeps everything in process memory. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryDb {
    inner: Arc<Mutex<Tables>>,
    /// Every write goes through a clone of this store, which wakes the rows' waiters: they
    /// never poll.
    waiters: Arc<ResolutionWaiters>,
    /// Likewise signals the trail's followers after each write.
    signal: Arc<TrailSignal>,
}

#[derive(Debug, Default)]
struct Tables {
    runs: HashMap<String, RunRecord>,
    /// The ids of each session's runs, so that a session's history is no scan of every run.
    runs_by_session: HashMap<String, Vec<String>>,
    approvals: HashMap<String, Approval>,
    /// The ids of each run's rows.
    rows_by_run: HashMap<String, Vec<String>>,
    /// The ids of rows that may be pending: every pending row, and rows resolved since it was
    /// last read (a row never returns to pending, so a reader drops those it finds resolved).
    maybe_pending: HashSet<String>,
    votes: HashMap<String, Vec<Vote>>,
    /// Each row's chain of events, in order.
    trails: HashMap<String, Vec<TrailEvent>>,
    /// The `seq` of the last event written.
    last_seq: i64,
    api_keys: HashMap<String, ApiKey>,
}

impl MemoryDb {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied write: every method
        // validates first and mutates last, so the data stays usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Tables {
    /// The resolution of [`Store::update_approval`]: checked first, applied last. Under the
    /// lock the row cannot change between the two, and a row that passes the check is one the
    /// compare-and-set of a database store would match.
    fn resolve(&mut self, id: &str, update: ApprovalUpdate) -> Result<Approval> {
        let now = crate::now();
        ResolutionRules::new(id, &update, now).check(self.approvals.get(id))?;
        let row = self.approvals.get_mut(id).expect("checked above");
        row.status = update.status;
        row.resolved_by = update.resolved_by;
        row.resolved_at = Some(update.resolved_at.unwrap_or(now));
        row.resolution_data = update.resolution_data;
        row.updated_at = now;
        let row = row.clone();
        self.record_resolution(&row, row.resolved_by.as_deref().unwrap_or(SYSTEM_PRINCIPAL), now);
        Ok(row)
    }

    /// The decision of [`Store::decide`]: its effect is worked out under the lock and applied
    /// whole.
    fn decide(&mut self, id: &str, principal: &Principal, decision: &Decision) -> Result<Approval> {
        let now = crate::now();
        let votes = self.votes.get(id).map(Vec::as_slice).unwrap_or_default();
        let effect = DecisionRules::new(id, principal, decision, now).apply(self.approvals.get(id), votes)?;
        if let Some(vote) = effect.vote {
            self.votes.entry(id.to_owned()).or_default().push(vote);
        }
        self.approvals.insert(id.to_owned(), effect.row.clone());
        let events = effect.events.into_iter().map(|(kind, data)| (kind, principal.id.clone(), data));
        self.append(&effect.row, now, events);
        Ok(effect.row)
    }

    /// Appends events to `row`'s chain.
    fn append(
        &mut self,
        row: &Approval,
        at: DateTime<Utc>,
        events: impl IntoIterator<Item = (EventKind, String, Value)>,
    ) {
        let chain = self.trails.entry(row.id.clone()).or_default();
        let head = chain.last().map(|event| (event.index, event.hash.clone()));
        for mut event in
            trail::append(head.as_ref().map(|(index, hash)| (*index, hash.as_str())), &row.id, &row.run_id, at, events)
        {
            self.last_seq += 1;
            event.seq = self.last_seq;
            chain.push(event);
        }
    }

    /// Records on the trail that `row` was resolved, by `principal`.
    fn record_resolution(&mut self, row: &Approval, principal: &str, at: DateTime<Utc>) {
        if let Some(kind) = trail::resolution_kind(row.status) {
            self.append(row, at, [(kind, principal.to_owned(), trail::resolution_data(row))]);
        }
    }

    /// Inserts a new row and opens its chain.
    fn open(&mut self, row: &Approval) {
        let chain = self.trails.entry(row.id.clone()).or_default();
        for mut event in trail::opening_events(row) {
            self.last_seq += 1;
            event.seq = self.last_seq;
            chain.push(event);
        }
        self.rows_by_run.entry(row.run_id.clone()).or_default().push(row.id.clone());
        if row.status == ApprovalStatus::Pending {
            self.maybe_pending.insert(row.id.clone());
        }
        self.approvals.insert(row.id.clone(), row.clone());
    }

    /// Stores `run`, in place of the run of its id.
    fn put_run(&mut self, run: &RunRecord) {
        let moved_from = match self.runs.insert(run.run_id.clone(), run.clone()) {
            Some(old) if old.session_id == run.session_id => return,
            old => old.map(|old| old.session_id),
        };
        if let Some(ids) = moved_from.and_then(|session| self.runs_by_session.get_mut(&session)) {
            ids.retain(|id| *id != run.run_id);
        }
        self.runs_by_session.entry(run.session_id.clone()).or_default().push(run.run_id.clone());
    }

    /// The ids of run `run_id`'s rows.
    fn row_ids_of(&self, run_id: &str) -> Vec<String> {
        self.rows_by_run.get(run_id).cloned().unwrap_or_default()
    }

    /// The rows still pending (past their expiry or not), forgetting those that are not.
    fn pending_rows(&mut self) -> Vec<&Approval> {
        let approvals = &self.approvals;
        self.maybe_pending.retain(|id| approvals.get(id).is_some_and(|row| row.status == ApprovalStatus::Pending));
        self.maybe_pending.iter().filter_map(|id| approvals.get(id)).collect()
    }

    /// Cancels paused run `run_id` and its paused member runs, and every row they wait on.
    fn cancel_run(&mut self, run_id: &str, principal: &str, now: DateTime<Utc>) -> Result<RunRecord> {
        let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        if let Some(team_run_id) = &run.parent_run_id {
            return Err(Error::MemberRun { run_id: run_id.to_owned(), team_run_id: team_run_id.clone() });
        }
        if run.status != RunStatus::Paused {
            return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: run.status });
        }
        let members: Vec<String> = self
            .runs
            .values()
            .filter(|member| member.parent_run_id.as_deref() == Some(run_id) && member.status == RunStatus::Paused)
            .map(|member| member.run_id.clone())
            .collect();
        for id in members.iter().map(String::as_str).chain([run_id]) {
            if let Some(run) = self.runs.get_mut(id) {
                run.status = RunStatus::Cancelled;
                run.updated_at = now;
            }
            let pending: Vec<String> = self
                .row_ids_of(id)
                .into_iter()
                .filter(|row_id| self.approvals.get(row_id).is_some_and(|row| row.status == ApprovalStatus::Pending))
                .collect();
            for row_id in pending {
                let row = self.approvals.get_mut(&row_id).expect("listed above");
                // A row past its expiry expired; the others are withdrawn with the run.
                let (status, by) = match row.is_expired_at(now) {
                    true => (ApprovalStatus::Expired, SYSTEM_PRINCIPAL),
                    false => (ApprovalStatus::Cancelled, principal),
                };
                row.status = status;
                if status == ApprovalStatus::Cancelled {
                    row.resolved_by = Some(principal.to_owned());
                    row.resolved_at = Some(now);
                }
                row.updated_at = now;
                let row = row.clone();
                self.record_resolution(&row, by, now);
            }
            self.set_run_status(id, RunStatus::Cancelled);
        }
        Ok(self.runs[run_id].clone())
    }

    fn set_run_status(&mut self, run_id: &str, status: RunStatus) -> u64 {
        let mut changed = 0;
        for id in self.rows_by_run.get(run_id).into_iter().flatten() {
            if let Some(row) = self.approvals.get_mut(id).filter(|row| row.run_status != status) {
                row.run_status = status;
                changed += 1;
            }
        }
        changed
    }

    /// Run `run_id` when it is `running` and was last written at or before `now - stale_after`:
    /// the condition of [`Store::reclaim_run`] and [`Store::release_stale_run`].
    fn stale_run(&mut self, run_id: &str, stale_after: Duration, now: DateTime<Utc>) -> Result<&mut RunRecord> {
        let cutoff = stale_cutoff(now, stale_after);
        match self.runs.get_mut(run_id) {
            None => Err(Error::RunNotFound(run_id.to_owned())),
            Some(run) if run.status == RunStatus::Running && cutoff.is_some_and(|cutoff| run.updated_at <= cutoff) => {
                Ok(run)
            }
            Some(run) => Err(Error::RunNotStale { run_id: run_id.to_owned(), status: run.status }),
        }
    }

    /// The row as it stands at `now`: a pending row past its expiry reads as expired.
    fn row_at(&self, id: &str, now: DateTime<Utc>) -> Option<Approval> {
        self.approvals.get(id).map(|row| Approval { status: row.status_at(now), ..row.clone() })
    }
}

impl Store for MemoryDb {
    fn save_runs<'a>(
        &'a self,
        runs: &'a [RunRecord],
        new_approvals: &'a [Approval],
        executions: &'a [Execution],
    ) -> BoxFuture<'a, Result<()>> {
        if let Err(err) = check_save(runs, new_approvals) {
            return ready(Err(err));
        }
        let mut tables = self.tables();
        let mut batch = HashSet::new();
        if let Some(dup) =
            new_approvals.iter().find(|a| tables.approvals.contains_key(&a.id) || !batch.insert(a.id.as_str()))
        {
            return ready(Err(Error::database(std::io::Error::other(format!("approval `{}` already exists", dup.id)))));
        }
        let known = |id: &str| tables.approvals.contains_key(id) || batch.contains(id);
        if let Some(stray) = executions.iter().find(|execution| !known(&execution.approval_id)) {
            return ready(Err(Error::ApprovalNotFound(stray.approval_id.clone())));
        }
        for approval in new_approvals {
            tables.open(approval);
        }
        let now = crate::now();
        for execution in executions {
            let row = tables.approvals[&execution.approval_id].clone();
            tables.append(&row, now, [(execution.kind(), execution.principal.clone(), execution.data())]);
        }
        for run in runs {
            tables.put_run(run);
            tables.set_run_status(&run.run_id, run.status);
        }
        drop(tables);
        self.signal.appended();
        ready(Ok(()))
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        ready(Ok(self.tables().runs.get(run_id).cloned()))
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        let mut tables = self.tables();
        let result = match tables.runs.get_mut(run_id) {
            None => Err(Error::RunNotFound(run_id.to_owned())),
            Some(run) if run.status != RunStatus::Paused => {
                Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: run.status })
            }
            Some(run) => {
                run.status = RunStatus::Running;
                run.updated_at = crate::now();
                Ok(run.clone())
            }
        };
        ready(result)
    }

    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        let now = crate::now();
        let reclaimed = self.tables().stale_run(run_id, stale_after, now).map(|run| {
            run.updated_at = now;
            run.clone()
        });
        ready(reclaimed)
    }

    fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        let now = crate::now();
        let released = self.tables().stale_run(run_id, stale_after, now).map(|run| {
            run.status = RunStatus::Paused;
            run.updated_at = now;
            run.clone()
        });
        ready(released)
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let ids = tables.runs_by_session.get(session_id).into_iter().flatten();
        let mut runs: Vec<&RunRecord> =
            ids.filter_map(|id| tables.runs.get(id)).filter(|run| run.parent_run_id.is_none()).collect();
        runs.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
        let skip = runs.len().saturating_sub(limit);
        ready(Ok(runs.into_iter().skip(skip).cloned().collect()))
    }

    fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>> {
        let tables = self.tables();
        let mut runs: Vec<&RunRecord> = tables.runs.values().filter(|run| query.matches(run)).collect();
        runs.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
        let limit = query.effective_limit();
        let page = runs.into_iter().take(limit as usize).cloned().collect();
        ready(Ok(RunPage::new(page, limit)))
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        ready(Ok(self.tables().row_at(id, crate::now())))
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        let mut tables = self.tables();
        let now = crate::now();
        // Only pending rows can be listed as pending.
        let candidates: Vec<&Approval> = match query.status {
            Some(ApprovalStatus::Pending) => tables.pending_rows(),
            _ => tables.approvals.values().collect(),
        };
        // Sorted by reference: only the page's rows are copied.
        let mut matching: Vec<&Approval> = candidates.into_iter().filter(|row| query.matches_at(row, now)).collect();
        matching.sort_by(|a, b| query.compare(a, b));
        let total = matching.len() as u64;
        let offset = usize::try_from(query.offset()).unwrap_or(usize::MAX);
        let limit = query.effective_limit() as usize;
        let items: Vec<Approval> = matching
            .into_iter()
            .filter(|row| query.is_after_cursor(row))
            .skip(offset)
            .take(limit)
            .map(|row| Approval { status: row.status_at(now), ..row.clone() })
            .collect();
        let next_cursor = items.last().filter(|_| items.len() == limit).map(|row| query.cursor_after(row));
        ready(Ok(ApprovalPage { items, total, unreadable: Vec::new(), next_cursor }))
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        let resolved = check_update(&update).and_then(|()| self.tables().resolve(id, update));
        if resolved.is_ok() {
            self.waiters.wake(id);
            self.signal.appended();
        }
        ready(resolved)
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        let mut tables = self.tables();
        let now = crate::now();
        let cancelled = match tables.row_at(id, now) {
            None => Ok(false),
            Some(row) if row.status != ApprovalStatus::Pending => {
                Err(Error::InvalidTransition { id: id.to_owned(), from: row.status, to: ApprovalStatus::Cancelled })
            }
            Some(mut row) => {
                row.status = ApprovalStatus::Cancelled;
                row.resolved_at = Some(now);
                row.updated_at = now;
                tables.approvals.insert(id.to_owned(), row.clone());
                tables.record_resolution(&row, SYSTEM_PRINCIPAL, now);
                Ok(true)
            }
        };
        drop(tables);
        if matches!(cancelled, Ok(true)) {
            self.waiters.wake(id);
            self.signal.appended();
        }
        ready(cancelled)
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        let mut tables = self.tables();
        let now = crate::now();
        let count = tables
            .pending_rows()
            .into_iter()
            .filter(|a| a.status_at(now) == ApprovalStatus::Pending)
            .filter(|a| user_id.is_none_or(|u| a.user_id.as_deref() == Some(u)))
            .count();
        ready(Ok(count as u64))
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        let mut tables = self.tables();
        let expired: Vec<String> =
            tables.pending_rows().into_iter().filter(|a| a.is_expired_at(now)).map(|a| a.id.clone()).collect();
        let mut cancelling = Vec::new();
        for id in &expired {
            let row = tables.approvals.get_mut(id).expect("listed above");
            row.status = ApprovalStatus::Expired;
            row.updated_at = now;
            let row = row.clone();
            tables.record_resolution(&row, SYSTEM_PRINCIPAL, now);
            if row.policy.as_ref().is_some_and(|policy| policy.on_expire == OnExpire::CancelRun) {
                let run = tables.runs.get(&row.run_id);
                cancelling.push(run.and_then(|run| run.parent_run_id.clone()).unwrap_or(row.run_id));
            }
        }
        for run_id in cancelling {
            // A run that is not paused (already cancelled, or held by a continue) is left to
            // whoever holds it: the continue applies the expiry itself.
            let _ = tables.cancel_run(&run_id, SYSTEM_PRINCIPAL, now);
        }
        drop(tables);
        self.waiters.wake_all();
        self.signal.appended();
        ready(Ok(expired.len() as u64))
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        principal: &'a Principal,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Approval>> {
        let decided = self.tables().decide(id, principal, &decision);
        if let Ok(row) = &decided {
            if row.status.is_resolved() {
                self.waiters.wake(id);
            }
            // A vote that leaves the row pending is on the trail too.
            self.signal.appended();
        }
        ready(decided)
    }

    fn votes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Vote>>> {
        let mut votes = self.tables().votes.get(id).cloned().unwrap_or_default();
        votes.sort_by(|a, b| (a.at, &a.principal).cmp(&(b.at, &b.principal)));
        ready(Ok(votes))
    }

    fn cancel_run<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        if let Err(error) = crate::limits::check_key("principal", &principal.id) {
            return ready(Err(error));
        }
        let cancelled = self.tables().cancel_run(run_id, &principal.id, crate::now());
        if cancelled.is_ok() {
            self.waiters.wake_all();
            self.signal.appended();
        }
        ready(cancelled)
    }

    fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>> {
        ready(Ok(self.tables().trails.get(id).cloned().unwrap_or_default()))
    }

    fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>> {
        let tables = self.tables();
        let mut events: Vec<TrailEvent> =
            tables.trails.values().flatten().filter(|event| event.seq > after).cloned().collect();
        events.sort_by_key(|event| event.seq);
        events.truncate(limit as usize);
        ready(Ok(events))
    }

    fn last_event_seq(&self) -> BoxFuture<'_, Result<i64>> {
        ready(Ok(self.tables().last_seq))
    }

    fn wait_for_events(&self, after: i64, timeout: Duration) -> BoxFuture<'_, Result<i64>> {
        let read = move || std::future::ready(Ok(self.tables().last_seq));
        Box::pin(async move { self.signal.wait(after, timeout, || None, read).await })
    }

    fn decided_runs<'a>(&'a self, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let now = crate::now();
        let mut runs: Vec<&RunRecord> = tables
            .runs
            .values()
            .filter(|run| run.status == RunStatus::Paused && run.parent_run_id.is_none())
            .filter(|run| after.is_none_or(|after| run.run_id.as_str() > after))
            .filter(|run| {
                let family = |row: &&Approval| {
                    row.run_id == run.run_id
                        || tables
                            .runs
                            .get(&row.run_id)
                            .is_some_and(|member| member.parent_run_id.as_ref() == Some(&run.run_id))
                };
                let mut rows = tables.approvals.values().filter(family).peekable();
                rows.peek().is_some() && rows.all(|row| row.status_at(now) != ApprovalStatus::Pending)
            })
            .collect();
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        ready(Ok(runs.into_iter().take(limit as usize).cloned().collect()))
    }

    fn stale_runs(&self, stale_after: Duration, limit: u32) -> BoxFuture<'_, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let Some(cutoff) = stale_cutoff(crate::now(), stale_after) else {
            return ready(Ok(Vec::new()));
        };
        let mut runs: Vec<&RunRecord> = tables
            .runs
            .values()
            .filter(|run| run.status == RunStatus::Running && run.parent_run_id.is_none() && run.updated_at <= cutoff)
            .collect();
        runs.sort_by(|a, b| (a.updated_at, &a.run_id).cmp(&(b.updated_at, &b.run_id)));
        ready(Ok(runs.into_iter().take(limit as usize).cloned().collect()))
    }

    fn runs_changed_since(&self, since: DateTime<Utc>, limit: u32) -> BoxFuture<'_, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let mut runs: Vec<&RunRecord> = tables.runs.values().filter(|run| run.updated_at >= since).collect();
        runs.sort_by(|a, b| (a.updated_at, &a.run_id).cmp(&(b.updated_at, &b.run_id)));
        ready(Ok(runs.into_iter().take(limit as usize).cloned().collect()))
    }

    fn save_api_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
        let saved = check_api_key(key).and_then(|()| match self.tables().api_keys.entry(key.id.clone()) {
            Entry::Occupied(_) => Err(Error::database(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("API key {} already exists", key.id),
            ))),
            Entry::Vacant(slot) => {
                slot.insert(key.clone());
                Ok(())
            }
        });
        ready(saved)
    }

    fn api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        ready(Ok(self.tables().api_keys.get(id).cloned()))
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKey>>> {
        let mut keys: Vec<ApiKey> = self.tables().api_keys.values().cloned().collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        ready(Ok(keys))
    }

    fn revoke_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        let mut tables = self.tables();
        let revoked = tables.api_keys.get_mut(id).map(|key| {
            key.revoked_at.get_or_insert_with(crate::now);
            key.clone()
        });
        ready(Ok(revoked))
    }

    fn verify_trail(&self) -> BoxFuture<'_, Result<TrailReport>> {
        let tables = self.tables();
        let mut ids: Vec<&String> = tables.approvals.keys().collect();
        ids.sort();
        let events = tables.trails.values().map(Vec::len).sum::<usize>() as u64;
        let broken = ids
            .iter()
            .find_map(|id| {
                let chain = tables.trails.get(*id).map(Vec::as_slice).unwrap_or_default();
                trail::verify_row(&tables.approvals[*id], chain).err()
            })
            .or_else(|| trail::orphan(tables.trails.iter().filter(|(id, _)| !tables.approvals.contains_key(*id))));
        ready(Ok(TrailReport { approvals: ids.len() as u64, events, broken }))
    }

    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        let read = move || std::future::ready(Ok(self.tables().row_at(id, crate::now())));
        Box::pin(async move { self.waiters.wait(id, timeout, || None, read).await })
    }
}
