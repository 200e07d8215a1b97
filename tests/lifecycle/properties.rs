//! The lifecycle's invariants over random interleavings of everything that happens to runs and
//! rows: runs pause, admins approve and reject rows in any state, the expiry sweep runs, pending
//! rows are withdrawn, runs are continued, continues die after claiming their run, runs are
//! recovered, and another agent tries its hand.
//!
//! Each case replays a random script on a fresh store against a model of what every step must
//! do, and after every step checks the store against the model and against what holds whatever
//! happened: a paused run has one row per gated call it waits on and no other pending row, a
//! finished run has no pending row, every row follows its run's status, and no call ran twice
//! or without its approval. A step refused by design returns its documented error and writes
//! nothing. `PROPTEST_CASES` sets how many cases run ([`DEFAULT_CASES`] unless set).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use kern::Error;
use kern::prelude::*;
use kern::run::RunRecord;
use proptest::prelude::{Just, ProptestConfig, Strategy, any, prop_oneof};
use proptest::sample::Index;
use proptest::{collection, proptest};
use serde_json::json;

use crate::backend::Backend;
use crate::tools::*;

/// How many cases run when `PROPTEST_CASES` does not say.
const DEFAULT_CASES: u32 = 64;

/// The longest script of a case.
const MAX_STEPS: usize = 20;

/// Long enough that no claim made during a case is stale.
const ONE_HOUR: Duration = Duration::from_secs(3600);

/// More rows than a case can make (at most two a step).
const ALL_ROWS: u32 = 100;

/// How a run starts, and so which gated calls it pauses on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// One call whose row never expires.
    Delete,
    /// One call whose row expires in an hour.
    Purge,
    /// One call whose row is past its expiry from the start.
    Flush,
    /// Two gated calls in one turn.
    Pair,
    /// One call, then, once it is decided, a second pause on another.
    Chain,
}

impl Start {
    fn input(self) -> &'static str {
        match self {
            Start::Delete => "delete user 42",
            Start::Purge => "purge old logs",
            Start::Flush => "flush the cache",
            Start::Pair => "pair",
            Start::Chain => "restart web",
        }
    }

    /// The tools of the gated calls of pause number `pause` (the first is 0), in call order;
    /// `None` when the run completes instead.
    fn pause(self, pause: usize) -> Option<&'static [&'static str]> {
        match (self, pause) {
            (Start::Delete, 0) => Some(&["delete_user_data"]),
            (Start::Purge, 0) | (Start::Chain, 1) => Some(&["purge_logs"]),
            (Start::Flush, 0) => Some(&["flush_cache"]),
            (Start::Pair, 0) => Some(&["delete_user_data", "purge_logs"]),
            (Start::Chain, 0) => Some(&["restart_service"]),
            _ => None,
        }
    }
}

fn script() -> ScriptedModel {
    ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .when_user_contains("purge", Reply::call("purge_logs", json!({"days": 30})))
        .when_user_contains("flush", Reply::call("flush_cache", json!({})))
        .when_user_contains(
            "pair",
            Reply::calls([("delete_user_data", json!({"user_id": "7"})), ("purge_logs", json!({"days": 7}))]),
        )
        .when_user_contains("restart", Reply::call("restart_service", json!({"name": "web"})))
        .after_tool("restart_service", Reply::call("purge_logs", json!({"days": 1})))
}

fn agent(store: Arc<dyn Store>, id: &str) -> Agent {
    Agent::builder()
        .id(id)
        .model(script())
        .tool(DeleteUserData)
        .tool(PurgeLogs)
        .tool(FlushCache)
        .tool(RestartServiceGated)
        .db(store)
        .build()
        .unwrap()
}

/// Which run or row a step acts on, among those there are when it runs; with none to pick
/// from, the step does nothing.
#[derive(Debug, Clone, Copy)]
struct Pick {
    index: Index,
    /// Among those the step can go through for (pending rows, paused runs whose calls are
    /// decided, ...) when there are any, so that scripts make progress as well as meet refusals.
    ready: bool,
}

/// One step of a script.
#[derive(Debug, Clone)]
enum Step {
    /// `Agent::run`: a new run pauses.
    Start(Start),
    /// An admin approves a row.
    Approve(Pick),
    /// An admin rejects a row.
    Reject(Pick),
    /// The expiry sweep, as of now or of two hours from now.
    Expire { later: bool },
    /// A pending row is withdrawn (`Store::delete_approval`).
    Withdraw(Index),
    /// `Agent::continue_run`, with no answers from the caller.
    Continue(Pick),
    /// A continue claims the run (`Store::claim_run`) and dies before anything else.
    Die(Pick),
    /// `Agent::recover_run`, taking over a claim at once or only after an hour.
    Recover { run: Pick, stale: bool },
    /// Another agent continues the run and recovers it.
    Intrude(Index),
}

fn step() -> impl Strategy<Value = Step> {
    let start = prop_oneof![
        Just(Start::Delete),
        Just(Start::Purge),
        Just(Start::Flush),
        Just(Start::Pair),
        Just(Start::Chain),
    ];
    let pick = || (any::<Index>(), proptest::bool::weighted(0.8)).prop_map(|(index, ready)| Pick { index, ready });
    prop_oneof![
        3 => start.prop_map(Step::Start),
        4 => pick().prop_map(Step::Approve),
        1 => pick().prop_map(Step::Reject),
        1 => any::<bool>().prop_map(|later| Step::Expire { later }),
        1 => any::<Index>().prop_map(Step::Withdraw),
        4 => pick().prop_map(Step::Continue),
        1 => pick().prop_map(Step::Die),
        1 => (pick(), any::<bool>()).prop_map(|(run, stale)| Step::Recover { run, stale }),
        1 => any::<Index>().prop_map(Step::Intrude),
    ]
}

/// When a row's `expires_at` falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lapse {
    Never,
    InAnHour,
    /// Past from the start: the row is pending past its expiry until the sweep marks it.
    AtOnce,
}

impl Lapse {
    fn of(tool_name: &str) -> Self {
        match tool_name {
            "purge_logs" => Lapse::InAnHour,
            "flush_cache" => Lapse::AtOnce,
            _ => Lapse::Never,
        }
    }

    fn expires_at(self, created_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Lapse::Never => None,
            Lapse::InAnHour => Some(created_at + TimeDelta::hours(1)),
            Lapse::AtOnce => Some(created_at),
        }
    }
}

/// A run as the model knows it.
#[derive(Debug)]
struct RunModel {
    run_id: String,
    start: Start,
    status: RunStatus,
    /// The rows of the calls its latest pause waits on, in call order (indexes into the rows).
    waits_on: Vec<usize>,
    /// How many pauses it has made.
    pauses: usize,
}

/// A row as the model knows it.
#[derive(Debug)]
struct RowModel {
    id: String,
    run_id: String,
    tool_call_id: String,
    lapse: Lapse,
    /// The stored status; `None` once the row is deleted.
    status: Option<ApprovalStatus>,
    /// Whether its tool has run.
    ran: bool,
}

impl RowModel {
    /// The status a resolution or a continue goes by: a pending row past its expiry has expired.
    fn seen(&self) -> Option<ApprovalStatus> {
        Self::seen_as(self.status, self.lapse)
    }

    /// How a row stored with `status` reads: a pending row past its expiry has expired.
    fn seen_as(status: Option<ApprovalStatus>, lapse: Lapse) -> Option<ApprovalStatus> {
        match status {
            Some(ApprovalStatus::Pending) if lapse == Lapse::AtOnce => Some(ApprovalStatus::Expired),
            status => status,
        }
    }
}

/// An error the lifecycle documents for a step it refuses.
#[derive(Debug)]
enum Refusal {
    /// `ApprovalNotFound`: the row is gone.
    NotFound(String),
    /// `InvalidTransition` from `expired`: the row expired, swept or not.
    Expired(ApprovalStatus),
    /// `ApprovalConflict` with this actual status: someone resolved the row first.
    Resolved(ApprovalStatus),
    /// `RunNotPaused` with this status.
    NotPaused(RunStatus),
    /// `RunNotStale` with this status.
    NotStale(RunStatus),
    /// `ApprovalMissing` for this call.
    Missing(String),
    /// `ApprovalPending` for this row.
    Pending(String),
    /// `ForeignRun`.
    Foreign,
}

impl Refusal {
    fn matches(&self, error: &Error) -> bool {
        match (self, error) {
            (Refusal::NotFound(id), Error::ApprovalNotFound(got)) => id == got,
            (Refusal::Expired(to), Error::InvalidTransition { from: ApprovalStatus::Expired, to: got, .. }) => {
                to == got
            }
            (
                Refusal::Resolved(actual),
                Error::ApprovalConflict { expected: ApprovalStatus::Pending, actual: got, .. },
            ) => actual == got,
            (Refusal::NotPaused(status), Error::RunNotPaused { status: got, .. })
            | (Refusal::NotStale(status), Error::RunNotStale { status: got, .. }) => status == got,
            (Refusal::Missing(call), Error::ApprovalMissing { tool_call_id, .. }) => call == tool_call_id,
            (Refusal::Pending(id), Error::ApprovalPending { approval_id }) => id == approval_id,
            (Refusal::Foreign, Error::ForeignRun { .. }) => true,
            _ => false,
        }
    }
}

/// Everything a case's store holds: every row, and the runs of the case.
#[derive(Debug, PartialEq)]
struct Snapshot {
    runs: BTreeMap<String, RunRecord>,
    rows: BTreeMap<String, Approval>,
}

/// One case: the store, the agent that owns the runs, another one, and the model.
struct Case {
    store: Arc<dyn Store>,
    owner: Agent,
    intruder: Agent,
    runs: Vec<RunModel>,
    rows: Vec<RowModel>,
}

impl Case {
    fn new(store: Arc<dyn Store>) -> Self {
        let owner = agent(store.clone(), "owner");
        let intruder = agent(store.clone(), "intruder");
        Case { store, owner, intruder, runs: Vec::new(), rows: Vec::new() }
    }

    async fn apply(&mut self, step: &Step) {
        match *step {
            Step::Start(start) => self.start(start).await,
            Step::Approve(row) => self.resolve(row, ApprovalStatus::Approved).await,
            Step::Reject(row) => self.resolve(row, ApprovalStatus::Rejected).await,
            Step::Expire { later } => self.expire(later).await,
            Step::Withdraw(row) => self.withdraw(row).await,
            Step::Continue(run) => self.continue_run(run).await,
            Step::Die(run) => self.die(run).await,
            Step::Recover { run, stale } => self.recover(run, stale).await,
            Step::Intrude(run) => self.intrude(run).await,
        }
    }

    async fn start(&mut self, start: Start) {
        let output = self.owner.run(start.input()).await.expect("a run starts");
        self.runs.push(RunModel {
            run_id: output.run_id.clone(),
            start,
            status: RunStatus::Running,
            waits_on: Vec::new(),
            pauses: 0,
        });
        self.went_on(self.runs.len() - 1, &output).await;
    }

    async fn resolve(&mut self, pick: Pick, to: ApprovalStatus) {
        let Some(row) = self.pick_row(pick) else { return };
        let id = self.rows[row].id.clone();
        let update = match to {
            ApprovalStatus::Approved => ApprovalUpdate::approve("admin-1"),
            _ => ApprovalUpdate::reject("admin-1"),
        };
        let before = self.snapshot().await;
        let outcome = self.store.update_approval(&id, update).await;
        let refusal = match self.rows[row].seen() {
            None => Refusal::NotFound(id),
            Some(ApprovalStatus::Pending) => {
                let resolved = outcome.expect("a pending row is resolved");
                assert_eq!((resolved.status, resolved.resolved_by.as_deref()), (to, Some("admin-1")));
                self.rows[row].status = Some(to);
                return;
            }
            Some(ApprovalStatus::Expired) => Refusal::Expired(to),
            Some(resolved) => Refusal::Resolved(resolved),
        };
        self.refused(&before, &refusal, outcome).await;
    }

    async fn expire(&mut self, later: bool) {
        let now = Utc::now() + if later { TimeDelta::hours(2) } else { TimeDelta::zero() };
        let due: Vec<usize> = (0..self.rows.len())
            .filter(|&row| {
                let row = &self.rows[row];
                row.status == Some(ApprovalStatus::Pending)
                    && (row.lapse == Lapse::AtOnce || (later && row.lapse == Lapse::InAnHour))
            })
            .collect();
        let expired = self.store.expire_approvals(now).await.expect("the sweep runs");
        assert_eq!(expired, due.len() as u64, "the sweep expires the pending rows past their expiry");
        for row in due {
            self.rows[row].status = Some(ApprovalStatus::Expired);
        }
    }

    /// Withdraws a pending row, which is either deleted or kept as cancelled: both are read back.
    async fn withdraw(&mut self, index: Index) {
        let pending: Vec<usize> =
            (0..self.rows.len()).filter(|&row| self.rows[row].seen() == Some(ApprovalStatus::Pending)).collect();
        let Some(row) = (!pending.is_empty()).then(|| pending[index.index(pending.len())]) else { return };
        let id = self.rows[row].id.clone();
        self.store.delete_approval(&id).await.expect("a pending row is withdrawn");
        let left = self.store.get_approval(&id).await.expect("read the withdrawn row");
        if let Some(left) = &left {
            assert_eq!(left.status, ApprovalStatus::Cancelled, "a withdrawn row is gone or cancelled");
        }
        self.rows[row].status = left.map(|left| left.status);
    }

    async fn continue_run(&mut self, pick: Pick) {
        let Some(run) = self
            .pick_run(pick, |case, run| case.runs[run].status == RunStatus::Paused && case.undecided(run).is_none())
        else {
            return;
        };
        let before = self.snapshot().await;
        let outcome = self.owner.continue_run(&self.runs[run].run_id, Vec::new()).await;
        let status = self.runs[run].status;
        let refusal = if status == RunStatus::Paused { self.undecided(run) } else { Some(Refusal::NotPaused(status)) };
        match refusal {
            Some(refusal) => self.refused(&before, &refusal, outcome).await,
            None => self.resumed(run, &outcome.expect("a run whose rows are decided is continued")).await,
        }
    }

    async fn die(&mut self, pick: Pick) {
        let Some(run) = self.pick_run(pick, |case, run| case.runs[run].status == RunStatus::Paused) else { return };
        let before = self.snapshot().await;
        let claimed = self.store.claim_run(&self.runs[run].run_id).await;
        match self.runs[run].status {
            RunStatus::Paused => {
                assert_eq!(claimed.expect("a paused run is claimed").status, RunStatus::Running);
                self.runs[run].status = RunStatus::Running;
            }
            status => self.refused(&before, &Refusal::NotPaused(status), claimed).await,
        }
    }

    async fn recover(&mut self, pick: Pick, stale: bool) {
        let Some(run) = self.pick_run(pick, |case, run| case.runs[run].status == RunStatus::Running) else { return };
        let stale_after = if stale { Duration::ZERO } else { ONE_HOUR };
        let before = self.snapshot().await;
        let outcome = self.owner.recover_run(&self.runs[run].run_id, stale_after).await;
        let status = self.runs[run].status;
        if status != RunStatus::Running || !stale {
            return self.refused(&before, &Refusal::NotStale(status), outcome).await;
        }
        match self.undecided(run) {
            // The rows no longer let the run resume: it goes back to paused, with the error.
            Some(refusal) => {
                let error = outcome.expect_err("a recovery of a run with undecided calls fails");
                assert!(refusal.matches(&error), "expected {refusal:?}, got {error:?}");
                self.runs[run].status = RunStatus::Paused;
            }
            None => self.resumed(run, &outcome.expect("a stale run whose rows are decided is recovered")).await,
        }
    }

    async fn intrude(&mut self, index: Index) {
        let Some(run) = (!self.runs.is_empty()).then(|| index.index(self.runs.len())) else { return };
        let run_id = &self.runs[run].run_id;
        let before = self.snapshot().await;
        let continued = self.intruder.continue_run(run_id, Vec::new()).await;
        self.refused(&before, &Refusal::Foreign, continued).await;
        let recovered = self.intruder.recover_run(run_id, Duration::ZERO).await;
        self.refused(&before, &Refusal::Foreign, recovered).await;
    }

    /// The row `pick` names: a pending one when it is for ready ones and there are any.
    fn pick_row(&self, pick: Pick) -> Option<usize> {
        choose(pick, self.rows.len(), |row| self.rows[row].seen() == Some(ApprovalStatus::Pending))
    }

    /// The run `pick` names: one that is `ready` when it is for ready ones and there are any.
    fn pick_run(&self, pick: Pick, ready: impl Fn(&Case, usize) -> bool) -> Option<usize> {
        choose(pick, self.runs.len(), |run| ready(self, run))
    }

    /// Why the calls the run waits on cannot be decided, for the first call in order that
    /// cannot: its row is gone or still pending.
    fn undecided(&self, run: usize) -> Option<Refusal> {
        self.runs[run].waits_on.iter().map(|&row| &self.rows[row]).find_map(|row| match row.seen() {
            None => Some(Refusal::Missing(row.tool_call_id.clone())),
            Some(ApprovalStatus::Pending) => Some(Refusal::Pending(row.id.clone())),
            Some(_) => None,
        })
    }

    /// A continue or a recovery went through: the approved calls ran, and the run went on.
    async fn resumed(&mut self, run: usize, output: &RunOutput) {
        for &row in &self.runs[run].waits_on {
            let row = &mut self.rows[row];
            row.ran = row.seen() == Some(ApprovalStatus::Approved);
        }
        self.went_on(run, output).await;
    }

    /// The run went on to its next pause, whose rows are new and pending, or completed.
    async fn went_on(&mut self, run: usize, output: &RunOutput) {
        let RunModel { start, pauses, .. } = self.runs[run];
        let Some(tools) = start.pause(pauses) else {
            assert_eq!(output.status, RunStatus::Completed, "{output:?}");
            self.runs[run].status = RunStatus::Completed;
            self.runs[run].waits_on.clear();
            return;
        };
        assert_eq!(output.status, RunStatus::Paused, "{output:?}");
        let paused: Vec<&str> = output.requirements.iter().map(|r| r.tool_execution.tool_name.as_str()).collect();
        assert_eq!(paused, tools);
        let mut waits_on = Vec::new();
        for requirement in &output.requirements {
            let id = requirement.approval_id.as_deref().expect("a gated call has a row");
            let row = self.store.get_approval(id).await.expect("read the row").expect("the row is stored");
            let lapse = Lapse::of(&row.tool_name);
            // A row past its expiry from the start reads as expired: expiry needs no sweep.
            let fresh = RowModel::seen_as(Some(ApprovalStatus::Pending), lapse);
            assert_eq!((Some(row.status), row.tool_call_id.as_str()), (fresh, requirement.tool_call_id()));
            assert_eq!(row.expires_at, lapse.expires_at(row.created_at), "{row:?}");
            waits_on.push(self.rows.len());
            self.rows.push(RowModel {
                id: row.id,
                run_id: row.run_id,
                tool_call_id: row.tool_call_id,
                lapse,
                status: Some(ApprovalStatus::Pending),
                ran: false,
            });
        }
        let run = &mut self.runs[run];
        run.status = RunStatus::Paused;
        run.waits_on = waits_on;
        run.pauses += 1;
    }

    /// The step was refused with `refusal`, and wrote nothing.
    async fn refused<T: Debug>(&self, before: &Snapshot, refusal: &Refusal, outcome: kern::Result<T>) {
        match outcome {
            Err(error) if refusal.matches(&error) => {}
            other => panic!("expected {refusal:?}, got {other:?}"),
        }
        assert_eq!(&self.snapshot().await, before, "a refused step writes nothing");
    }

    async fn snapshot(&self) -> Snapshot {
        let page = self.store.list_approvals(&ApprovalQuery::default().limit(ALL_ROWS)).await.expect("list the rows");
        assert_eq!(page.total, page.items.len() as u64, "every row is listed");
        let rows = page.items.into_iter().map(|row| (row.id.clone(), row)).collect();
        let mut runs = BTreeMap::new();
        for run in &self.runs {
            let record = self.store.load_run(&run.run_id).await.expect("read the run").expect("the run is stored");
            runs.insert(run.run_id.clone(), record);
        }
        Snapshot { runs, rows }
    }

    /// The store holds what the model says, and every invariant holds.
    async fn check(&self) {
        let now = Utc::now();
        let snapshot = self.snapshot().await;
        for row in &self.rows {
            assert_eq!(snapshot.rows.get(&row.id).map(|stored| stored.status), row.seen(), "{row:?}");
        }
        assert_eq!(snapshot.rows.len(), self.rows.iter().filter(|row| row.status.is_some()).count(), "no other row");
        for run in &self.runs {
            let record = &snapshot.runs[&run.run_id];
            assert_eq!(record.status, run.status, "{run:?}");
            if run.status == RunStatus::Paused {
                let waits_on: Vec<Option<&str>> =
                    record.requirements.iter().map(|r| r.approval_id.as_deref()).collect();
                let rows: Vec<Option<&str>> =
                    run.waits_on.iter().map(|&row| Some(self.rows[row].id.as_str())).collect();
                assert_eq!(waits_on, rows, "{run:?}");
            }
        }
        let deleted: HashSet<&str> =
            self.rows.iter().filter(|row| row.status.is_none()).map(|row| row.id.as_str()).collect();
        assert_invariants(&snapshot, &deleted, now);
        let stored_pending = snapshot.rows.values().filter(|row| row.status == ApprovalStatus::Pending).count();
        let counted = self.store.count_pending_approvals(None).await.expect("count the pending rows");
        assert_eq!(counted, stored_pending as u64);

        for row in &self.rows {
            let times = ran(&row.run_id).iter().filter(|call| call.context.tool_call_id == row.tool_call_id).count();
            assert_eq!(times, usize::from(row.ran), "an approved call runs once its run goes on: {row:?}");
        }
    }
}

/// The position among `0..len` that `pick` names.
fn choose(pick: Pick, len: usize, ready: impl Fn(usize) -> bool) -> Option<usize> {
    let ready: Vec<usize> = (0..len).filter(|&at| ready(at)).collect();
    if pick.ready && !ready.is_empty() {
        Some(ready[pick.index.index(ready.len())])
    } else {
        (len > 0).then(|| pick.index.index(len))
    }
}

/// What holds of the store whatever happened to it (`deleted`: the rows withdrawn by deleting).
fn assert_invariants(snapshot: &Snapshot, deleted: &HashSet<&str>, now: DateTime<Utc>) {
    for row in snapshot.rows.values() {
        let run = snapshot.runs.get(&row.run_id).expect("every row belongs to a stored run");
        // A claim moves the run alone, in one compare-and-set: its rows say paused until the
        // outcome is stored.
        let run_status = if run.status == RunStatus::Running { RunStatus::Paused } else { run.status };
        assert_eq!(row.run_status, run_status, "a row follows its run's status: {row:?}");
        assert_eq!(
            snapshot.rows.values().filter(|other| other.tool_call_id == row.tool_call_id).count(),
            1,
            "one row per gated call"
        );
        if row.status == ApprovalStatus::Pending && !row.is_expired_at(now) {
            assert!(
                matches!(run.status, RunStatus::Paused | RunStatus::Running),
                "no pending row for a finished run: {row:?}"
            );
            assert!(
                run.requirements.iter().any(|r| r.approval_id.as_deref() == Some(&row.id)),
                "a pending row decides a call its run waits on: {row:?}"
            );
        }
    }
    for run in snapshot.runs.values().filter(|run| run.status == RunStatus::Paused) {
        for requirement in &run.requirements {
            let id = requirement.approval_id.as_deref().expect("a paused gated call names its row");
            match snapshot.rows.get(id) {
                Some(row) => assert_eq!(row.tool_call_id, requirement.tool_call_id(), "the row decides its call"),
                None => assert!(deleted.contains(id), "a paused run's row is gone only when deleted: {id}"),
            }
        }
    }
    for run in snapshot.runs.values() {
        let ran = ran(&run.run_id);
        for call in &ran {
            let key = call.context.idempotency_key.as_deref();
            let row = snapshot.rows.values().find(|row| row.tool_call_id == call.context.tool_call_id);
            let row = row.expect("a call ran only with its row");
            assert_eq!(row.status, ApprovalStatus::Approved, "a call ran only once approved: {row:?}");
            assert_eq!(key, Some(format!("{}:{}", row.id, row.tool_call_id).as_str()));
            let times = ran.iter().filter(|other| other.context.tool_call_id == call.context.tool_call_id).count();
            assert_eq!(times, 1, "no call ran twice: {row:?}");
        }
    }
}

/// `PROPTEST_CASES` when set (proptest reads it into its default config), else [`DEFAULT_CASES`].
fn config() -> ProptestConfig {
    let from_env = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { from_env.cases } else { DEFAULT_CASES };
    ProptestConfig { cases, ..from_env }
}

/// Replays `steps` on the store `backend` opens, checking everything after every step.
fn replay(backend: impl AsyncFnOnce() -> Backend, steps: &[Step]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let backend = backend().await;
        let mut case = Case::new(backend.store());
        for step in steps {
            case.apply(step).await;
            case.check().await;
        }
    });
}

/// Replays `steps` on a fresh Postgres schema, or says once that the variant is skipped.
fn replay_on_postgres(steps: &[Step]) {
    static SKIPPED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os(crate::backend::POSTGRES_URL_VAR).is_none() {
        let var = crate::backend::POSTGRES_URL_VAR;
        assert!(std::env::var_os("CI").is_none(), "{var} is not set under CI: the Postgres variants must run");
        SKIPPED.call_once(|| {
            eprintln!("skipped: {} is not set, so the Postgres variant does not run", crate::backend::POSTGRES_URL_VAR);
        });
        return;
    }
    replay(async || Backend::postgres().await.expect("the variable is set"), steps);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_interleavings_keep_every_invariant_on_memory(steps in collection::vec(step(), 1..=MAX_STEPS)) {
        replay(async || Backend::memory(), &steps);
    }

    #[test]
    fn random_interleavings_keep_every_invariant_on_sqlite(steps in collection::vec(step(), 1..=MAX_STEPS)) {
        replay(Backend::sqlite, &steps);
    }

    #[test]
    fn random_interleavings_keep_every_invariant_on_postgres(steps in collection::vec(step(), 1..=MAX_STEPS)) {
        replay_on_postgres(&steps);
    }
}
