//! An in-memory [`Store`]: for tests, examples and single-process programs that need no
//! durability. Same semantics as the database stores, checked by the same test suite.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use serde_json::Value;

use super::Store;
use super::backend::{
    DecisionRules, ResolutionRules, ResolutionWaiters, TrailSignal, check_api_key, check_eligible, check_save,
    check_update, stale_cutoff,
};
use crate::BoxFuture;
use crate::approval::{
    Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalUpdate, Decision, OnExpire, PageCursor, Principal,
    Vote,
};
use crate::error::{Error, Result};
use crate::keys::ApiKey;
use crate::run::{RunPage, RunQuery, RunRecord, RunStatus};
use crate::trail::{self, EventKind, Execution, SYSTEM_PRINCIPAL, TrailEvent, TrailReport};

mod archive;

use archive::{Archive, RowSummary, RunSummary, SettledRow, is_finished, is_settled};

/// A store that keeps everything in process memory. Clones share the same data.
///
/// What is settled (a finished run, its resolved rows and their chains of events) is kept
/// packed, so that a long-lived store holds about a kilobyte per finished cycle; reading it
/// decodes it.
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
    /// The runs not finished (finished ones are packed).
    runs: HashMap<String, RunRecord>,
    /// The ids of each session's runs, so that a session's history is no scan of every run.
    runs_by_session: HashMap<String, Vec<String>>,
    /// The ids of each team run's member runs.
    members_by_parent: HashMap<String, Vec<String>>,
    /// The rows not packed: a row is packed once it settles (see [`is_settled`]) and a write
    /// of it or of its run follows, and unpacked when it or its run is written again.
    approvals: HashMap<String, Approval>,
    /// The ids of each run's rows.
    rows_by_run: HashMap<String, Vec<String>>,
    /// The ids of rows that may be pending: every pending row, and rows resolved since it was
    /// last read (a row never returns to pending, so a reader drops those it finds resolved).
    maybe_pending: HashSet<String>,
    votes: HashMap<String, Vec<Vote>>,
    /// The chains of events not packed, each in order: a chain is packed with its row, and
    /// unpacked with it.
    trails: HashMap<String, Vec<TrailEvent>>,
    archive: Archive,
    /// The `seq` of the last event written.
    last_seq: i64,
    api_keys: HashMap<String, ApiKey>,
}

impl MemoryDb {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Store::cancel_run`], or with `checked` [`Store::cancel_run_as`].
    fn cancel(&self, run_id: &str, principal: &Principal, checked: bool) -> Result<RunRecord> {
        crate::limits::check_name("principal", &principal.id)?;
        let cancelled = self.tables().cancel_run(run_id, principal, checked, crate::now())?;
        self.waiters.wake_all();
        self.signal.appended();
        Ok(cancelled)
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
    /// Run `run_id`, whole or decoded.
    fn run(&self, run_id: &str) -> Option<Cow<'_, RunRecord>> {
        match self.runs.get(run_id) {
            Some(run) => Some(Cow::Borrowed(run)),
            None => self.archive.runs.get(run_id).map(Cow::Owned),
        }
    }

    /// Row `id`, whole or decoded.
    fn row(&self, id: &str) -> Option<Cow<'_, Approval>> {
        match self.approvals.get(id) {
            Some(row) => Some(Cow::Borrowed(row)),
            None => self.archive.rows.get(id).map(|settled| Cow::Owned(settled.row)),
        }
    }

    /// What scans sort and filter run `run_id` on.
    fn run_summary(&self, run_id: &str) -> Option<RunSummary> {
        match self.runs.get(run_id) {
            Some(run) => Some(RunSummary::of(run)),
            None => self.archive.runs.summary(run_id),
        }
    }

    /// The summaries of every run, with their ids, in no order.
    fn run_summaries(&self) -> impl Iterator<Item = (RunSummary, &String)> {
        let live = self.runs.iter().map(|(id, run)| (RunSummary::of(run), id));
        live.chain(self.archive.runs.summaries().map(|(id, summary)| (summary, id)))
    }

    /// Whether row `id` exists, whole or packed.
    fn has_row(&self, id: &str) -> bool {
        self.approvals.contains_key(id) || self.archive.rows.contains(id)
    }

    /// The packed rows a listing by `query` may hold, with their ids, decoded one at a time:
    /// only those of the status asked for, and of the run asked for (found by its index, not a
    /// scan).
    fn packed_candidates<'t>(
        &'t self,
        query: &'t ApprovalQuery,
    ) -> Box<dyn Iterator<Item = (&'t String, Approval)> + 't> {
        let wanted = |summary: RowSummary| query.status.is_none_or(|asked| asked == summary.status);
        let packed = &self.archive.rows;
        match &query.run_id {
            Some(run_id) => Box::new(
                (self.rows_by_run.get(run_id).into_iter().flatten())
                    .filter(move |id| packed.summary(id).is_some_and(wanted))
                    .filter_map(|id| Some((id, packed.get(id)?.row))),
            ),
            None => Box::new(packed.decode_where(wanted).map(|(id, settled)| (id, settled.row))),
        }
    }

    /// Unpacks row `id` and its chain, if packed.
    fn unpack_row(&mut self, id: &str) {
        if let Some(SettledRow { row, chain }) = self.archive.rows.take(id) {
            self.approvals.insert(id.to_owned(), row);
            self.trails.insert(id.to_owned(), chain);
        }
    }

    /// Row `id`, to change: a packed row is unpacked first.
    fn row_mut(&mut self, id: &str) -> Option<&mut Approval> {
        self.unpack_row(id);
        self.approvals.get_mut(id)
    }

    /// Stores `row` in place of the row of its id.
    fn put_row(&mut self, row: Approval) {
        self.unpack_row(&row.id);
        self.approvals.insert(row.id.clone(), row);
    }

    /// Row `id`'s chain of events, whole or decoded.
    fn chain(&self, id: &str) -> Cow<'_, [TrailEvent]> {
        match self.trails.get(id) {
            Some(chain) => Cow::Borrowed(chain),
            None => Cow::Owned(self.archive.rows.get(id).map(|settled| settled.chain).unwrap_or_default()),
        }
    }

    /// The resolution of [`Store::update_approval`]: checked first, applied last. Under the
    /// lock the row cannot change between the two, and a row that passes the check is one the
    /// compare-and-set of a database store would match.
    fn resolve(&mut self, id: &str, update: ApprovalUpdate) -> Result<Approval> {
        let now = crate::now();
        ResolutionRules::new(id, &update, now).check(self.row(id).as_deref())?;
        let row = self.row_mut(id).expect("checked above");
        row.status = update.status;
        row.resolved_by = update.resolved_by;
        // Kept to whole microseconds, as a database keeps it.
        row.resolved_at = Some(update.resolved_at.map_or(now, |at| at.trunc_subsecs(6)));
        row.resolution_data = update.resolution_data;
        row.updated_at = now;
        let row = row.clone();
        self.record_resolution(&row, row.resolved_by.as_deref().unwrap_or(SYSTEM_PRINCIPAL), now);
        self.settle(&row.run_id);
        Ok(row)
    }

    /// The decision of [`Store::decide`]: its effect is worked out under the lock and applied
    /// whole.
    fn decide(&mut self, id: &str, principal: &Principal, decision: &Decision) -> Result<Approval> {
        let now = crate::now();
        let votes = self.votes.get(id).map(Vec::as_slice).unwrap_or_default();
        let effect = DecisionRules::new(id, principal, decision, now).apply(self.row(id).as_deref(), votes)?;
        if let Some(vote) = effect.vote {
            self.votes.entry(id.to_owned()).or_default().push(vote);
        }
        self.put_row(effect.row.clone());
        let events = effect.events.into_iter().map(|(kind, data)| (kind, principal.id.clone(), data));
        self.append(id, &effect.row.run_id, now, events);
        self.settle(&effect.row.run_id);
        Ok(effect.row)
    }

    /// Appends events to the chain of row `id` (of run `run_id`).
    fn append(
        &mut self,
        id: &str,
        run_id: &str,
        at: DateTime<Utc>,
        events: impl IntoIterator<Item = (EventKind, String, Value)>,
    ) {
        self.unpack_row(id);
        let chain = self.trails.entry(id.to_owned()).or_default();
        let head = chain.last().map(|event| (event.index, event.hash.clone()));
        for mut event in
            trail::append(head.as_ref().map(|(index, hash)| (*index, hash.as_str())), id, run_id, at, events)
        {
            self.last_seq += 1;
            event.seq = self.last_seq;
            chain.push(event);
        }
    }

    /// Records on the trail that `row` was resolved, by `principal`.
    fn record_resolution(&mut self, row: &Approval, principal: &str, at: DateTime<Utc>) {
        if let Some(kind) = trail::resolution_kind(row.status) {
            self.append(&row.id, &row.run_id, at, [(kind, principal.to_owned(), trail::resolution_data(row))]);
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

    /// Stores `run` in place of the run of its id, and brings its rows' run status in step.
    fn put_run(&mut self, run: &RunRecord) {
        let old = match self.runs.remove(&run.run_id) {
            Some(old) => Some(old),
            None => self.archive.runs.take(&run.run_id),
        };
        // Its rows take its status: those packed (of a run written again once finished, or
        // written resolved with a finished run's status) are unpacked first.
        self.unpack_rows_of(&run.run_id);
        if is_finished(run.status) {
            self.archive.runs.put(run.run_id.clone(), run, RunSummary::of(run));
        } else {
            self.runs.insert(run.run_id.clone(), run.clone());
        }
        self.set_run_status(&run.run_id, run.status);
        let moved = match old {
            Some(old) if old.session_id == run.session_id && old.parent_run_id == run.parent_run_id => return,
            moved => moved,
        };
        let id = &run.run_id;
        if let Some(old) = moved {
            if let Some(ids) = self.runs_by_session.get_mut(&old.session_id) {
                ids.retain(|other| other != id);
            }
            if let Some(ids) = old.parent_run_id.and_then(|parent| self.members_by_parent.get_mut(&parent)) {
                ids.retain(|other| other != id);
            }
        }
        self.runs_by_session.entry(run.session_id.clone()).or_default().push(id.clone());
        if let Some(parent) = &run.parent_run_id {
            self.members_by_parent.entry(parent.clone()).or_default().push(id.clone());
        }
    }

    /// Unpacks the packed rows of run `run_id`, with their chains.
    fn unpack_rows_of(&mut self, run_id: &str) {
        let packed: Vec<String> = (self.rows_by_run.get(run_id).into_iter().flatten())
            .filter(|id| self.archive.rows.contains(id))
            .cloned()
            .collect();
        for id in &packed {
            self.unpack_row(id);
        }
    }

    /// Packs what of run `run_id` has settled: its rows that have, with their chains. (The run
    /// itself is packed when written finished.)
    fn settle(&mut self, run_id: &str) {
        for id in self.rows_by_run.get(run_id).into_iter().flatten() {
            if !self.approvals.get(id).is_some_and(is_settled) {
                continue;
            }
            let Some((id, row)) = self.approvals.remove_entry(id) else { continue };
            let settled = SettledRow { row, chain: self.trails.remove(&id).unwrap_or_default() };
            let summary = RowSummary::of(&settled);
            self.archive.rows.put(id, &settled, summary);
        }
    }

    /// The ids of run `run_id`'s rows.
    fn row_ids_of(&self, run_id: &str) -> Vec<String> {
        self.rows_by_run.get(run_id).cloned().unwrap_or_default()
    }

    /// Forgets the ids of rows that left pending since the last reader: [`pending`] then
    /// reads only pending rows.
    ///
    /// [`pending`]: Self::pending
    fn forget_resolved(&mut self) {
        let approvals = &self.approvals;
        self.maybe_pending.retain(|id| approvals.get(id).is_some_and(|row| row.status == ApprovalStatus::Pending));
    }

    /// The rows still pending (past their expiry or not), once [`forget_resolved`] has run.
    ///
    /// [`forget_resolved`]: Self::forget_resolved
    fn pending(&self) -> impl Iterator<Item = &Approval> {
        self.maybe_pending.iter().filter_map(|id| self.approvals.get(id))
    }

    /// Cancels paused run `run_id` and its paused member runs, and every row they wait on; with
    /// `checked`, only when `principal` may decide each row it withdraws (nothing changes
    /// otherwise).
    fn cancel_run(
        &mut self,
        run_id: &str,
        principal: &Principal,
        checked: bool,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        let run = self.run(run_id).ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        if let Some(team_run_id) = &run.parent_run_id {
            return Err(Error::MemberRun { run_id: run_id.to_owned(), team_run_id: team_run_id.clone() });
        }
        if run.status != RunStatus::Paused {
            return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: run.status });
        }
        let members: Vec<String> = (self.members_by_parent.get(run_id).into_iter().flatten())
            .filter(|id| self.runs.get(*id).is_some_and(|member| member.status == RunStatus::Paused))
            .cloned()
            .collect();
        if checked {
            for id in members.iter().map(String::as_str).chain([run_id]) {
                let withdrawn = self.row_ids_of(id).into_iter().filter_map(|row_id| self.approvals.get(&row_id));
                for row in withdrawn.filter(|row| row.status == ApprovalStatus::Pending && !row.is_expired_at(now)) {
                    check_eligible(row, principal)?;
                }
            }
        }
        for member in &members {
            self.cancel_one(member, &principal.id, now);
        }
        Ok(self.cancel_one(run_id, &principal.id, now).expect("a paused run is not finished: it is among the runs"))
    }

    /// Cancels run `run_id` (paused) and every row it waits on; returns the run cancelled.
    fn cancel_one(&mut self, run_id: &str, principal: &str, now: DateTime<Utc>) -> Option<RunRecord> {
        let pending: Vec<String> = self
            .row_ids_of(run_id)
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
        let cancelled =
            self.runs.get(run_id).map(|run| RunRecord { status: RunStatus::Cancelled, updated_at: now, ..run.clone() });
        if let Some(run) = &cancelled {
            self.put_run(run);
        }
        self.settle(run_id);
        cancelled
    }

    /// Sets the `run_status` of run `run_id`'s rows (none of them packed).
    fn set_run_status(&mut self, run_id: &str, status: RunStatus) {
        for id in self.rows_by_run.get(run_id).into_iter().flatten() {
            if let Some(row) = self.approvals.get_mut(id) {
                row.run_status = status;
            }
        }
    }

    /// Run `run_id` when it is `running` and was last written at or before `now - stale_after`:
    /// the condition of [`Store::reclaim_run`] and [`Store::release_stale_run`].
    fn stale_run(&mut self, run_id: &str, stale_after: Duration, now: DateTime<Utc>) -> Result<&mut RunRecord> {
        let cutoff = stale_cutoff(now, stale_after);
        let stale = self.runs.get(run_id).is_some_and(|run| {
            run.status == RunStatus::Running && cutoff.is_some_and(|cutoff| run.updated_at <= cutoff)
        });
        if !stale {
            return Err(self.not_in(run_id, |status| Error::RunNotStale { run_id: run_id.to_owned(), status }));
        }
        Ok(self.runs.get_mut(run_id).expect("checked above"))
    }

    /// Pauses the running member runs of team run `run_id`, at `now`.
    fn release_members(&mut self, run_id: &str, now: DateTime<Utc>) {
        let Self { members_by_parent, runs, .. } = self;
        for id in members_by_parent.get(run_id).into_iter().flatten() {
            if let Some(member) = runs.get_mut(id).filter(|member| member.status == RunStatus::Running) {
                member.status = RunStatus::Paused;
                member.updated_at = now;
            }
        }
    }

    /// Why run `run_id` is not in the state asked: it does not exist, or the error of its
    /// status.
    fn not_in(&self, run_id: &str, error: impl FnOnce(RunStatus) -> Error) -> Error {
        match self.run(run_id) {
            None => Error::RunNotFound(run_id.to_owned()),
            Some(run) => error(run.status),
        }
    }

    /// The row as it stands at `now`: a pending row past its expiry reads as expired.
    fn row_at(&self, id: &str, now: DateTime<Utc>) -> Option<Approval> {
        self.row(id).map(|row| {
            let status = row.status_at(now);
            Approval { status, ..row.into_owned() }
        })
    }
}

impl MemoryDb {
    /// Wakes the trail's followers after a run's status changed (`changed` holds the run): a
    /// live stream tells of runs too.
    fn changed_status(&self, changed: &Result<RunRecord>) {
        if changed.is_ok() {
            self.signal.appended();
        }
    }
}

impl Store for MemoryDb {
    fn save_runs<'a>(
        &'a self,
        runs: &'a [RunRecord],
        new_approvals: &'a [Approval],
        executions: &'a [Execution],
    ) -> BoxFuture<'a, Result<()>> {
        if let Err(err) = check_save(runs, new_approvals, executions) {
            return ready(Err(err));
        }
        let mut tables = self.tables();
        let mut batch = HashSet::new();
        if let Some(dup) = new_approvals.iter().find(|a| tables.has_row(&a.id) || !batch.insert(a.id.as_str())) {
            return ready(Err(Error::database(std::io::Error::other(format!("approval `{}` already exists", dup.id)))));
        }
        let known = |id: &str| tables.has_row(id) || batch.contains(id);
        if let Some(stray) = executions.iter().find(|execution| !known(&execution.approval_id)) {
            return ready(Err(Error::ApprovalNotFound(stray.approval_id.clone())));
        }
        for approval in new_approvals {
            tables.open(approval);
        }
        let now = crate::now();
        for execution in executions {
            let id = &execution.approval_id;
            let run_id = tables.row(id).expect("checked above").run_id.clone();
            tables.append(id, &run_id, now, [(execution.kind(), execution.principal.clone(), execution.data())]);
        }
        for run in runs {
            tables.put_run(run);
            tables.settle(&run.run_id);
        }
        drop(tables);
        self.signal.appended();
        ready(Ok(()))
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        ready(Ok(self.tables().run(run_id).map(Cow::into_owned)))
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        let mut tables = self.tables();
        let result = match tables.runs.get_mut(run_id).filter(|run| run.status == RunStatus::Paused) {
            Some(run) => {
                run.status = RunStatus::Running;
                run.updated_at = crate::now();
                Ok(run.clone())
            }
            None => Err(tables.not_in(run_id, |status| Error::RunNotPaused { run_id: run_id.to_owned(), status })),
        };
        drop(tables);
        self.changed_status(&result);
        ready(result)
    }

    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        let now = crate::now();
        let reclaimed = self.tables().stale_run(run_id, stale_after, now).map(|run| {
            run.updated_at = now;
            run.clone()
        });
        self.changed_status(&reclaimed);
        ready(reclaimed)
    }

    fn renew_claim<'a>(
        &'a self,
        run_id: &'a str,
        held_at: DateTime<Utc>,
        renewed_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>> {
        let mut tables = self.tables();
        let held =
            tables.runs.get_mut(run_id).filter(|run| run.status == RunStatus::Running && run.updated_at == held_at);
        let renewed = match held {
            Some(run) => {
                run.updated_at = renewed_at.trunc_subsecs(6);
                Ok(())
            }
            None => Err(tables.not_in(run_id, |_| Error::RunTakenOver { run_id: run_id.to_owned() })),
        };
        ready(renewed)
    }

    /// A team run is released with the member runs its dead continue held.
    fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        let now = crate::now();
        let mut tables = self.tables();
        let released = tables.stale_run(run_id, stale_after, now).map(|run| {
            run.status = RunStatus::Paused;
            run.updated_at = now;
            run.clone()
        });
        if released.is_ok() {
            tables.release_members(run_id, now);
        }
        drop(tables);
        self.changed_status(&released);
        ready(released)
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let ids = tables.runs_by_session.get(session_id).into_iter().flatten();
        let mut summaries: Vec<(RunSummary, &String)> =
            ids.filter_map(|id| Some((tables.run_summary(id)?, id))).collect();
        summaries.retain(|(summary, _)| summary.top_level);
        summaries.sort_by(|(a, a_id), (b, b_id)| (a.created_at, a_id).cmp(&(b.created_at, b_id)));
        let skip = summaries.len().saturating_sub(limit);
        let runs = summaries.into_iter().skip(skip).filter_map(|(_, id)| tables.run(id).map(Cow::into_owned)).collect();
        ready(Ok(runs))
    }

    fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>> {
        let tables = self.tables();
        // The runs a summary already rules out are never decoded; the others are, newest first,
        // until the page is full.
        let mut summaries: Vec<(RunSummary, &String)> = match &query.session_id {
            Some(session) => (tables.runs_by_session.get(session).into_iter().flatten())
                .filter_map(|id| Some((tables.run_summary(id)?, id)))
                .collect(),
            None => tables.run_summaries().collect(),
        };
        let before_cursor = |summary: &RunSummary, id: &str| {
            query.after.as_ref().is_none_or(|cursor| (summary.created_at, id) < (cursor.at, cursor.id.as_str()))
        };
        summaries.retain(|(summary, id)| {
            (query.members || summary.top_level)
                && query.status.is_none_or(|status| status == summary.status)
                && before_cursor(summary, id)
        });
        summaries.sort_by(|(a, a_id), (b, b_id)| (b.created_at, b_id).cmp(&(a.created_at, a_id)));
        let limit = query.effective_limit();
        let page = summaries
            .into_iter()
            .filter_map(|(_, id)| tables.run(id))
            .filter(|run| query.matches(run))
            .take(limit as usize)
            .map(Cow::into_owned)
            .collect();
        ready(Ok(RunPage::new(page, limit)))
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        ready(Ok(self.tables().row_at(id, crate::now())))
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        let mut tables = self.tables();
        let now = crate::now();
        // Only pending rows can be listed as pending, and none of them is packed.
        let pending_only = query.status == Some(ApprovalStatus::Pending);
        if pending_only {
            tables.forget_resolved();
        }
        let tables = &*tables;
        let whole: Vec<&Approval> = match pending_only {
            true => tables.pending().collect(),
            false => tables.approvals.values().collect(),
        };
        // Each row is kept as its position in the listing (a packed row decoded only to be
        // filtered): only the page's rows are copied.
        let mut matching: Vec<((DateTime<Utc>, &str), bool)> = whole
            .into_iter()
            .filter(|row| query.matches_at(row, now))
            .map(|row| (query.position(row), query.is_after_cursor(row)))
            .collect();
        if !pending_only {
            let packed = tables.packed_candidates(query).filter(|(_, row)| query.matches_at(row, now));
            matching
                .extend(packed.map(|(id, row)| ((query.position(&row).0, id.as_str()), query.is_after_cursor(&row))));
        }
        matching.sort_by(|(a, _), (b, _)| query.compare_positions(*a, *b));
        let total = matching.len() as u64;
        let offset = usize::try_from(query.offset()).unwrap_or(usize::MAX);
        let limit = query.effective_limit() as usize;
        let items: Vec<Approval> = matching
            .into_iter()
            .filter(|(_, after_cursor)| *after_cursor)
            .skip(offset)
            .take(limit)
            .filter_map(|((_, id), _)| tables.row_at(id, now))
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
            Some(row) if row.needs_principals() => Err(Error::DecideAsPrincipal { id: id.to_owned() }),
            Some(row) if row.status != ApprovalStatus::Pending => {
                Err(Error::InvalidTransition { id: id.to_owned(), from: row.status, to: ApprovalStatus::Cancelled })
            }
            Some(mut row) => {
                row.status = ApprovalStatus::Cancelled;
                row.resolved_at = Some(now);
                row.updated_at = now;
                tables.put_row(row.clone());
                tables.record_resolution(&row, SYSTEM_PRINCIPAL, now);
                tables.settle(&row.run_id);
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
        tables.forget_resolved();
        let count = tables
            .pending()
            .filter(|a| a.status_at(now) == ApprovalStatus::Pending)
            .filter(|a| user_id.is_none_or(|u| a.user_id.as_deref() == Some(u)))
            .count();
        ready(Ok(count as u64))
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        let mut tables = self.tables();
        tables.forget_resolved();
        let expired: Vec<String> = tables.pending().filter(|a| a.is_expired_at(now)).map(|a| a.id.clone()).collect();
        let mut cancelling = Vec::new();
        for id in &expired {
            let row = tables.approvals.get_mut(id).expect("listed above");
            row.status = ApprovalStatus::Expired;
            row.updated_at = now;
            let row = row.clone();
            tables.record_resolution(&row, SYSTEM_PRINCIPAL, now);
            tables.settle(&row.run_id);
            if row.policy.as_ref().is_some_and(|policy| policy.on_expire == OnExpire::CancelRun) {
                let parent = tables.run(&row.run_id).and_then(|run| run.parent_run_id.clone());
                cancelling.push(parent.unwrap_or(row.run_id));
            }
        }
        for run_id in cancelling {
            // A run that is not paused (already cancelled, or held by a continue) is left to
            // whoever holds it: the continue applies the expiry itself.
            let _ = tables.cancel_run(&run_id, &Principal::new(SYSTEM_PRINCIPAL), false, now);
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
        ready(self.cancel(run_id, principal, false))
    }

    fn cancel_run_as<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        ready(self.cancel(run_id, principal, true))
    }

    fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>> {
        ready(Ok(self.tables().chain(id).into_owned()))
    }

    fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>> {
        let tables = self.tables();
        let mut events: Vec<TrailEvent> =
            tables.trails.values().flatten().filter(|event| event.seq > after).cloned().collect();
        // Only the packed chains that end after `after` are decoded.
        let packed =
            (tables.archive.rows.decode_where(|row| row.chain.last_seq > after)).flat_map(|(_, settled)| settled.chain);
        events.extend(packed.filter(|event| event.seq > after));
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
        // A row that is packed is settled: not pending.
        let decided =
            |id: &String| tables.approvals.get(id).is_none_or(|row| row.status_at(now) != ApprovalStatus::Pending);
        let mut runs: Vec<&RunRecord> = tables
            .runs
            .values()
            .filter(|run| run.status == RunStatus::Paused && run.parent_run_id.is_none())
            .filter(|run| after.is_none_or(|after| run.run_id.as_str() > after))
            .filter(|run| {
                let members = tables.members_by_parent.get(&run.run_id).into_iter().flatten();
                let family = [&run.run_id].into_iter().chain(members);
                let mut rows = family.flat_map(|id| tables.rows_by_run.get(id)).flatten().peekable();
                rows.peek().is_some() && rows.all(decided)
            })
            .collect();
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        ready(Ok(runs.into_iter().take(limit as usize).cloned().collect()))
    }

    fn stale_runs<'a>(
        &'a self,
        stale_after: Duration,
        after: Option<&'a PageCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let Some(cutoff) = stale_cutoff(crate::now(), stale_after) else {
            return ready(Ok(Vec::new()));
        };
        // As on a database, a cursor no listing gives (an id no run can have) reads nothing.
        if after.is_some_and(|cursor| !crate::limits::is_key(&cursor.id)) {
            return ready(Ok(Vec::new()));
        }
        let after_cursor = |run: &RunRecord| {
            after.is_none_or(|cursor| (run.updated_at, run.run_id.as_str()) > (cursor.at, cursor.id.as_str()))
        };
        let mut runs: Vec<&RunRecord> = tables
            .runs
            .values()
            .filter(|run| {
                run.status == RunStatus::Running
                    && run.parent_run_id.is_none()
                    && run.updated_at <= cutoff
                    && after_cursor(run)
            })
            .collect();
        runs.sort_by(|a, b| (a.updated_at, &a.run_id).cmp(&(b.updated_at, &b.run_id)));
        ready(Ok(runs.into_iter().take(limit as usize).cloned().collect()))
    }

    fn runs_changed_after<'a>(&'a self, after: &'a PageCursor, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let mut summaries: Vec<(RunSummary, &String)> = tables
            .run_summaries()
            .filter(|(summary, id)| (summary.updated_at, id.as_str()) > (after.at, after.id.as_str()))
            .collect();
        summaries.sort_by(|(a, a_id), (b, b_id)| (a.updated_at, a_id).cmp(&(b.updated_at, b_id)));
        let page = summaries.into_iter().take(limit as usize).filter_map(|(_, id)| tables.run(id).map(Cow::into_owned));
        ready(Ok(page.collect()))
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
        let mut ids: Vec<&String> =
            tables.approvals.keys().chain(tables.archive.rows.summaries().map(|(id, _)| id)).collect();
        ids.sort();
        let events = tables.trails.values().map(|chain| chain.len() as u64).sum::<u64>()
            + tables.archive.rows.summaries().map(|(_, row)| row.chain.events).sum::<u64>();
        let broken = ids
            .iter()
            .find_map(|id| {
                let votes = tables.votes.get(id.as_str()).map(Vec::as_slice).unwrap_or_default();
                trail::verify_row(&tables.row(id).expect("listed above"), &tables.chain(id), votes).err()
            })
            .or_else(|| trail::orphan(tables.trails.iter().filter(|(id, _)| !tables.has_row(id))));
        ready(Ok(TrailReport { approvals: ids.len() as u64, events, broken }))
    }

    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        let read = move || std::future::ready(Ok(self.tables().row_at(id, crate::now())));
        Box::pin(async move { self.waiters.wait(id, timeout, || None, read).await })
    }
}
