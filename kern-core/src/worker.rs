//! The worker: paused runs continue by themselves once every gated call is decided.
//!
//! An admin decides rows; nobody needs to call `continue_run` afterwards. A [`Worker`] holds the
//! agents and teams of a program and a store, and continues each of their paused runs whose
//! rows are all decided (approved, rejected, expired or cancelled) as soon as it learns of the
//! last decision. The trail is its outbox: the store wakes it when the trail grows
//! ([`Store::wait_for_events`], announced by Postgres across machines), and it looks for
//! decided runs when the new events hold a decision, when it has left some for lack of room,
//! and at each upkeep (which makes up for any wake-up lost). The upkeep also sweeps expired rows
//! (their `on_expire` applies with no caller) and recovers runs that a dead process left
//! `running` past the stale time.
//!
//! Any number of workers may run, in any number of processes and machines that share the
//! database: a continue first claims its run with a compare-and-set in the database
//! ([`Store::claim_run`]), so each run is continued by one of them and each approved tool runs
//! once. A worker that loses the claim moves on.

mod builder;
mod stats;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio::task::{self, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::Agent;
use crate::approval::PageCursor;
use crate::error::{Error, Result};
use crate::follow::{GAP_RECHECK, TrailReader};
use crate::run::{RunOutput, RunRecord, RunStatus};
use crate::store::Store;
use crate::team::Team;
use crate::trail::EventKind;

pub use builder::{DEFAULT_STALE_AFTER, MAX_INTERVAL, MIN_STALE_AFTER, WorkerBuildError, WorkerBuilder};
pub use stats::{WorkerCounts, WorkerStats};

/// How many decided runs one read of the store brings.
const SCAN_PAGE: u32 = 64;

/// How many stale runs one read brings.
const STALE_PAGE: u32 = 256;

/// The most reads of stale runs one upkeep makes: the next reads on from where it stopped.
const STALE_PAGES_PER_UPKEEP: usize = 16;

/// How many trail events one read brings, when the worker looks for decisions among them.
const EVENT_BATCH: u32 = 512;

/// How far before the trail's last event a starting worker reads it. A decision whose commit is
/// under way as the worker starts may hold a lower `seq` than events already committed (Postgres
/// takes a `seq` before its transaction commits), and commit after the worker's first scan: read
/// from before it, the gap it leaves holds the worker's reader until it fills, as it does for a
/// worker that was running. Old decisions read again cost one scan.
const STARTUP_LOOKBACK: i64 = 1_000;

/// How long a worker waits before reading the store again after a failed read: the database
/// may be restarting, and is not hammered meanwhile. Also the first wait before a run whose
/// continue failed is tried again; each failure in a row doubles it, up to [`RETRY_MAX`].
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The longest a run whose continues keep failing waits between two tries.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// How long a worker remembers a run's failures after its last wait ended.
const RETRY_MEMORY: Duration = Duration::from_secs(600);

/// Outcomes a slow subscriber may fall behind by before it misses some.
const OUTCOME_BUFFER: usize = 1024;

/// What became of a run a worker took up, for the application that wants to answer the user who
/// started it. Received from [`Worker::subscribe`].
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// The run was continued; its output says where it stands now: completed, paused again on
    /// new calls, or cancelled (a row expired under `on_expire = "cancel_run"`). A continue that
    /// ended in error is [`Failed`](RunOutcome::Failed).
    Continued(Box<RunOutput>),
    /// A run left `running` by a dead process was taken over and resumed.
    Recovered(Box<RunOutput>),
    /// The continue or recovery failed; the run is as the error says (see
    /// [`Agent::continue_run`]: a failed continue leaves the run paused or as stored).
    Failed {
        /// The run.
        run_id: String,
        /// Why.
        error: Arc<Error>,
    },
}

/// Continues decided runs, sweeps expiries and recovers stale runs until told to stop. Built by
/// [`Worker::builder`].
pub struct Worker {
    store: Arc<dyn Store>,
    /// The agents, by id: they own the top-level runs without a team.
    agents: HashMap<String, Agent>,
    /// The teams, by id: they own the top-level runs with one.
    teams: HashMap<String, Team>,
    settings: builder::Settings,
    stats: Arc<WorkerStats>,
    outcomes: broadcast::Sender<RunOutcome>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("teams", &self.teams.keys().collect::<Vec<_>>())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// An agent or a team, by whose id its top-level runs are found.
#[derive(Clone)]
enum Runner {
    Agent(Agent),
    Team(Team),
}

/// What a task of the worker does with a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Continue,
    Recover,
}

impl Runner {
    async fn perform(&self, job: Job, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        match (self, job) {
            (Runner::Agent(agent), Job::Continue) => agent.continue_run_by_id(run_id).await,
            (Runner::Team(team), Job::Continue) => team.continue_run_by_id(run_id).await,
            (Runner::Agent(agent), Job::Recover) => agent.recover_run(run_id, stale_after).await,
            (Runner::Team(team), Job::Recover) => team.recover_run(run_id, stale_after).await,
        }
    }
}

impl WorkerBuilder {
    /// Checks the configuration and builds the worker. Errors: [`WorkerBuildError`].
    pub fn build(self) -> std::result::Result<Worker, WorkerBuildError> {
        let builder::Checked { store, agents, teams, settings } = self.check()?;
        let (outcomes, _) = broadcast::channel(OUTCOME_BUFFER);
        Ok(Worker { store, agents, teams, settings, stats: Arc::new(WorkerStats::default()), outcomes })
    }
}

impl Worker {
    /// Starts configuring a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// The worker's counters, shared: read them while it runs (a server's `/metrics`, say).
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// The outcome of every run this worker continues or recovers from now on. A receiver that
    /// falls more than a thousand outcomes behind misses the oldest
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn subscribe(&self) -> broadcast::Receiver<RunOutcome> {
        self.outcomes.subscribe()
    }

    /// Works until `shutdown` completes, then stops taking runs and waits for the continues
    /// under way to finish: nothing is left claimed.
    ///
    /// Runs decided while no worker ran are taken up at once. A failing store is retried every
    /// second, with a warning; the worker itself never fails once started. Errors: the first read
    /// of the store, so that a worker pointed at a database it cannot reach says so.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut trail = TrailReader::after(self.store.last_event_seq().await? - STARTUP_LOOKBACK);
        tracing::info!(agents = ?self.agents.keys().collect::<Vec<_>>(), teams = ?self.teams.keys().collect::<Vec<_>>(),
            "kern worker started");
        let mut state = State::default();
        let mut next_upkeep = Instant::now();
        // What was decided while no worker ran is taken up at once.
        let mut scan = true;
        // After a failed scan, none before this: whatever wakes the worker meanwhile (a write,
        // a notification, a task's end), a failing query is sent again once a second at most.
        let mut scan_not_before: Option<Instant> = None;
        // When to read the trail again, held back by a gap in its `seq`s that may still fill (or
        // after a failed read): kept across the loop's turns, so a task that ends first does
        // not put it off.
        let mut recheck_at: Option<Instant> = None;
        // The decisions counted while held back, which come again once the gap is passed.
        let mut counted = HashSet::new();
        tokio::pin!(shutdown);
        loop {
            // A stop asked for meanwhile is heard before any run is taken: by the sweep's
            // recoveries, or by a scan.
            if has_completed(shutdown.as_mut()).await {
                break;
            }
            if Instant::now() >= next_upkeep {
                self.upkeep(&mut state).await;
                next_upkeep = Instant::now() + self.settings.upkeep_interval;
                scan = true;
            }
            let mut delay = self.settings.poll_interval;
            if scan && has_completed(shutdown.as_mut()).await {
                break;
            }
            if scan {
                match scan_not_before.filter(|at| Instant::now() < *at) {
                    Some(at) => delay = delay.min(at.saturating_duration_since(Instant::now())),
                    None => match self.dispatch(&mut state).await {
                        Ok(()) => (scan, scan_not_before) = (false, None),
                        Err(error) => {
                            tracing::warn!(%error, "kern worker cannot read decided runs; retrying");
                            scan_not_before = Some(Instant::now() + RETRY_AFTER_FAILURE);
                            delay = RETRY_AFTER_FAILURE;
                        }
                    },
                }
            }
            let timeout = delay.min(next_upkeep.saturating_duration_since(Instant::now()));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = state.tasks.join_next_with_id(), if !state.tasks.is_empty() => {
                    self.finished(&mut state, joined);
                    // Room again: a run the last scan found and left for the lack of it is taken
                    // now, and once none is left the next scan looks for more.
                    self.take_queued(&mut state);
                    scan |= state.backlog && state.queued.is_empty();
                    scan |= std::mem::take(&mut state.scan_due);
                }
                woken = self.more_events(trail.position(), timeout, recheck_at) => match woken {
                    Ok(true) => match self.decided_since(&mut trail, &mut counted).await {
                        Ok(decided) => {
                            scan |= decided;
                            recheck_at = (!trail.held_back().is_empty()).then(|| Instant::now() + GAP_RECHECK);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "kern worker cannot read the trail; looking for decided runs");
                            scan = true;
                            recheck_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                        }
                    },
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "kern worker cannot follow the trail; retrying");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(RETRY_AFTER_FAILURE) => {}
                        }
                    }
                },
            }
        }
        tracing::info!(in_flight = state.tasks.len(), "kern worker stopping: finishing the runs under way");
        let drained = async {
            while let Some(joined) = state.tasks.join_next_with_id().await {
                self.finished(&mut state, joined);
            }
        };
        match self.settings.shutdown_grace {
            None => drained.await,
            Some(grace) => {
                if tokio::time::timeout(grace, drained).await.is_err() {
                    tracing::warn!(
                        in_flight = state.tasks.len(),
                        grace_ms = grace.as_millis() as u64,
                        "kern worker stopped waiting for the runs under way: left running, to be recovered once stale"
                    );
                }
            }
        }
        Ok(())
    }

    /// Waits until the trail may hold events after `seq`, or `timeout` passes, and tells
    /// whether it may: at `recheck_at` when the last read was held back by a gap that may still
    /// fill (the store would answer at once), else as the store wakes it.
    async fn more_events(&self, seq: i64, timeout: Duration, recheck_at: Option<Instant>) -> Result<bool> {
        if let Some(recheck_at) = recheck_at {
            let deadline = Instant::now() + timeout;
            tokio::time::sleep_until(recheck_at.min(deadline)).await;
            return Ok(recheck_at <= deadline);
        }
        Ok(self.store.wait_for_events(seq, timeout).await? > seq)
    }

    /// Reads the trail's next events and tells whether they may have made a run decided: a row
    /// approved, rejected, expired or cancelled. Its own continues' events (executions) are no
    /// reason to look again.
    ///
    /// The reader stops before a gap in the `seq`s that may still fill: on Postgres an event may
    /// commit after a later one, and a worker that moved past it would not see its decision
    /// until its next upkeep. The decisions it holds back are committed all the same, and a
    /// scan reads decided runs from the store, so they count at once; `counted` keeps them from
    /// counting again at each read until the gap is passed.
    async fn decided_since(&self, trail: &mut TrailReader, counted: &mut HashSet<i64>) -> Result<bool> {
        let passed = trail.read(self.store.as_ref(), EVENT_BATCH).await?;
        let mut decided = false;
        for event in passed.iter().chain(trail.held_back()) {
            let decision = matches!(
                event.kind,
                EventKind::Approved | EventKind::Rejected | EventKind::Expired | EventKind::Cancelled
            );
            decided |= decision && counted.insert(event.seq);
        }
        let position = trail.position();
        counted.retain(|seq| *seq > position);
        Ok(decided)
    }

    /// Starts a continue of each decided run this worker can take, up to its concurrency.
    ///
    /// Every worker reads the decided runs in the same order, so each starts its round at a
    /// random place in the page it reads: workers that wake together then mostly claim
    /// different runs, rather than all racing for the first ones and all but one losing.
    async fn dispatch(&self, state: &mut State) -> Result<()> {
        let mut after: Option<String> = None;
        state.queued.clear();
        while state.tasks.len() < self.settings.concurrency {
            let page = self.store.decided_runs(after.as_deref(), SCAN_PAGE).await?;
            let start = random_index(page.len());
            for run in page[start..].iter().chain(&page[..start]) {
                if let Some(runner) = self.runner_for(run)
                    && state.takes(run)
                {
                    if state.tasks.len() < self.settings.concurrency {
                        self.start(state, runner, Job::Continue, &run.run_id);
                    } else {
                        // Kept for when a task ends, rather than read again then.
                        state.queued.push_back((runner, run.run_id.clone()));
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE as usize => after = Some(last.run_id.clone()),
                _ => break,
            }
        }
        // Full, it may have left some: it looks again once the queue runs out.
        state.backlog = state.tasks.len() >= self.settings.concurrency;
        Ok(())
    }

    /// Starts queued runs while there is room. A queued run another worker took meanwhile is
    /// only a lost claim.
    fn take_queued(&self, state: &mut State) {
        while state.tasks.len() < self.settings.concurrency {
            let Some((runner, run_id)) = state.queued.pop_front() else { return };
            if !state.holds(&run_id) {
                self.start(state, runner, Job::Continue, &run_id);
            }
        }
    }

    /// The periodic chores: rows past their expiry are marked so (and their `on_expire`
    /// applied), and runs left running by a dead process are recovered.
    async fn upkeep(&self, state: &mut State) {
        state.prune();
        match self.store.expire_approvals(crate::now()).await {
            Ok(0) => {}
            Ok(expired) => {
                tracing::info!(expired, "kern worker expired approval rows");
                self.stats.add_expired(expired);
            }
            Err(error) => tracing::warn!(%error, "kern worker cannot sweep expired rows"),
        }
        self.recover_stale(state).await;
    }

    /// Starts a recovery of each stale run this worker can take, oldest first, up to its
    /// concurrency.
    ///
    /// Stale runs of every program come back, and those of a program no worker here has (a
    /// retired agent's, say) stay stale: they are read past, a page at a time, until this
    /// worker has no room left or no stale run is left. At most [`STALE_PAGES_PER_UPKEEP`]
    /// pages at once; the next upkeep reads on from where this one stopped (the page in which
    /// this worker filled, read again, since it may hold runs left for lack of room), and from
    /// the oldest again once the listing was read to its end.
    async fn recover_stale(&self, state: &mut State) {
        let stale_after = self.settings.stale_after;
        let full = |state: &State| state.tasks.len() >= self.settings.concurrency;
        let mut after = state.stale_cursor.take();
        for _ in 0..STALE_PAGES_PER_UPKEEP {
            if full(state) {
                break;
            }
            let page = match self.store.stale_runs(stale_after, after.as_ref(), STALE_PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "kern worker cannot read stale runs");
                    break;
                }
            };
            for run in &page {
                if !full(state)
                    && !state.holds(&run.run_id)
                    && let Some(runner) = self.runner_for(run)
                {
                    self.start(state, runner, Job::Recover, &run.run_id);
                }
            }
            if full(state) {
                break;
            }
            match page.last() {
                Some(last) if page.len() == STALE_PAGE as usize => {
                    after = Some(PageCursor { at: last.updated_at, id: last.run_id.clone() });
                }
                _ => return,
            }
        }
        state.stale_cursor = after;
    }

    /// The team of a top-level team run, or the agent of an agent's, if this worker has it:
    /// an agent and a team of the same id are told apart.
    fn runner_for(&self, run: &RunRecord) -> Option<Runner> {
        match (&run.team_id, &run.agent_id) {
            (Some(team), _) => self.teams.get(team).cloned().map(Runner::Team),
            (None, Some(agent)) => self.agents.get(agent).cloned().map(Runner::Agent),
            (None, None) => None,
        }
    }

    fn start(&self, state: &mut State, runner: Runner, job: Job, run_id: &str) {
        self.stats.started();
        let run_id = run_id.to_owned();
        let stale_after = self.settings.stale_after;
        let span = tracing::info_span!("kern.worker", ?job, run_id);
        let task = state.tasks.spawn(
            {
                let run_id = run_id.clone();
                async move { runner.perform(job, &run_id, stale_after).await }
            }
            .instrument(span),
        );
        state.jobs.insert(task.id(), (run_id, job));
    }

    /// Records what became of a task's run.
    fn finished(&self, state: &mut State, joined: std::result::Result<(task::Id, Result<RunOutput>), task::JoinError>) {
        self.stats.ended();
        let task = match &joined {
            Ok((task, _)) => *task,
            Err(error) => error.id(),
        };
        let Some((run_id, job)) = state.jobs.remove(&task) else { return };
        let result = match joined {
            Ok((_, result)) => result,
            Err(error) => {
                // A panic in a tool or model is caught by the engine; only a runtime shutting
                // down (or a panic of kern's own) ends a task here.
                tracing::error!(run_id, %error, ?job, "kern worker task ended abnormally");
                self.stats.add_failed();
                state.retry_later(&run_id, true);
                return;
            }
        };
        state.scan_due |= state.decided_while_held.remove(&run_id);
        match &result {
            Ok(output) if output.status == RunStatus::Paused => {
                let waiting = output.requirements.iter().filter_map(|r| r.approval_id.clone()).collect();
                state.paused_again(&run_id, waiting);
            }
            // Done, or another worker's claim came first: nothing of this run to wait out.
            Ok(_)
            | Err(
                Error::RunNotPaused { .. }
                | Error::RunNotStale { .. }
                | Error::RunTakenOver { .. }
                | Error::ApprovalPending { .. },
            ) => {
                state.retries.remove(&run_id);
            }
            Err(_) => state.retry_later(&run_id, true),
        }
        let outcome = match result {
            Ok(output) => {
                tracing::info!(run_id, status = %output.status, ?job, "kern worker resumed a run");
                match job {
                    Job::Continue => {
                        self.stats.add_continued();
                        RunOutcome::Continued(Box::new(output))
                    }
                    Job::Recover => {
                        self.stats.add_recovered();
                        RunOutcome::Recovered(Box::new(output))
                    }
                }
            }
            // Another worker claimed the run first (or it stopped being stale, or took it over
            // from this one, or a row was reopened by a concurrent writer): nothing to do here.
            Err(
                Error::RunNotPaused { .. }
                | Error::RunNotStale { .. }
                | Error::RunTakenOver { .. }
                | Error::ApprovalPending { .. },
            ) => {
                self.stats.add_lost_claim();
                return;
            }
            Err(error) => {
                tracing::warn!(run_id, %error, ?job, "kern worker could not resume a run");
                self.stats.add_failed();
                RunOutcome::Failed { run_id, error: Arc::new(error) }
            }
        };
        // Nobody listening is fine.
        let _ = self.outcomes.send(outcome);
    }
}

/// What one [`Worker::run`] keeps between its rounds.
#[derive(Default)]
struct State {
    tasks: JoinSet<Result<RunOutput>>,
    /// The run and job of each task, by its id: a task that ends abnormally tells only its id.
    /// Its runs are those this worker holds, on which a scan starts no second task.
    jobs: HashMap<task::Id, (String, Job)>,
    /// Runs a scan found decided while a task of this worker still held them (a decision made
    /// as its continue stored the run paused again): a scan is due once that task ends.
    decided_while_held: HashSet<String>,
    /// Whether a task that ended leaves a scan due (see `decided_while_held`).
    scan_due: bool,
    /// The runs whose continues failed (or paused again), and when each may be tried again:
    /// a run a continue cannot resume would otherwise be tried at every scan.
    retries: HashMap<String, Retry>,
    /// Whether the last scan ended with no room left, so that it may have left decided runs.
    backlog: bool,
    /// Decided runs the last scan found and had no room for, in the order it found them.
    queued: VecDeque<(Runner, String)>,
    /// Where the next upkeep reads on in the stale runs, when the last stopped before their
    /// end (see [`Worker::recover_stale`]).
    stale_cursor: Option<PageCursor>,
    /// Runs that also wait for calls no row decides (a plain confirmation, say), as last
    /// written: a continue without the caller's answers cannot resume them, so they are left to
    /// the application until they change.
    waiting_on_people: HashMap<String, DateTime<Utc>>,
}

/// A run's failures in a row, and when it may be tried again.
struct Retry {
    failures: u32,
    at: Instant,
    /// The rows the run last paused on, when a continue paused it again.
    waiting: Vec<String>,
}

impl State {
    /// Whether a task of this worker holds run `run_id` (at most its concurrency to look through).
    fn holds(&self, run_id: &str) -> bool {
        self.jobs.values().any(|(held, _)| held == run_id)
    }

    /// Whether the worker should start a continue of decided run `run` now.
    fn takes(&mut self, run: &RunRecord) -> bool {
        if self.holds(&run.run_id) {
            self.decided_while_held.insert(run.run_id.clone());
            return false;
        }
        if self.waits(&run.run_id) {
            return false;
        }
        if self.waiting_on_people.get(&run.run_id) == Some(&run.updated_at) {
            return false;
        }
        if run.waits_only_on_rows() {
            self.waiting_on_people.remove(&run.run_id);
            true
        } else {
            self.waiting_on_people.insert(run.run_id.clone(), run.updated_at);
            false
        }
    }
}

/// A random index below `len` (0 for an empty range).
fn random_index(len: usize) -> usize {
    let random = uuid::Uuid::new_v4().as_u128();
    usize::try_from(random % len.max(1) as u128).unwrap_or(0)
}

impl State {
    /// Whether run `run_id` waits out its failures.
    fn waits(&self, run_id: &str) -> bool {
        self.retries.get(run_id).is_some_and(|retry| Instant::now() < retry.at)
    }

    /// Records that a continue paused run `run_id` again, on the rows `waiting`. On rows it
    /// had not paused on, it went on: it is taken again as soon as they are decided, however
    /// many steps it has taken. On the same rows, a decided call could not resume (a user-input
    /// row without every value), which a scan would find again at once: only the second time
    /// in a row waits.
    fn paused_again(&mut self, run_id: &str, waiting: Vec<String>) {
        match self.retries.get(run_id) {
            Some(retry) if retry.waiting == waiting => self.retry_later(run_id, false),
            _ => {
                self.retries.insert(run_id.to_owned(), Retry { failures: 0, at: Instant::now(), waiting });
            }
        }
    }

    /// Counts one more failure of run `run_id` and sets when it may be tried again: after
    /// [`RETRY_AFTER_FAILURE`], doubled for each failure in a row, up to [`RETRY_MAX`]. Unless
    /// `wait_first`, the first failure is tried again at once.
    fn retry_later(&mut self, run_id: &str, wait_first: bool) {
        let retry = self.retries.entry(run_id.to_owned()).or_insert_with(|| Retry {
            failures: 0,
            at: Instant::now(),
            waiting: Vec::new(),
        });
        retry.failures += 1;
        let doublings = if wait_first { retry.failures } else { retry.failures - 1 };
        let wait = match doublings {
            0 => Duration::ZERO,
            n => RETRY_AFTER_FAILURE.saturating_mul(1 << (n - 1).min(16)).min(RETRY_MAX),
        };
        retry.at = Instant::now() + wait;
    }

    /// Forgets what is no longer needed: failures whose wait ended long ago, and which runs wait
    /// on people (a scan finds those again, and runs that finished meanwhile are gone).
    fn prune(&mut self) {
        let now = Instant::now();
        self.retries.retain(|_, retry| retry.at + RETRY_MEMORY > now);
        self.waiting_on_people.clear();
    }
}

/// Whether `future` has completed, asked without waiting for it. A future found complete must
/// not be asked again: the caller stops at its first `true`.
async fn has_completed(future: Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        biased;
        () = future => true,
        () = std::future::ready(()) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_run_that_pauses_on_new_rows_is_taken_again_at_once_however_many_steps_it_takes() {
        let mut state = State::default();
        for step in 0..20 {
            state.paused_again("run", rows(&[&format!("row-{step}")]));
            assert!(!state.waits("run"), "step {step}");
        }
    }

    #[test]
    fn a_run_that_pauses_on_the_same_rows_waits_from_the_second_time_in_a_row() {
        let mut state = State::default();
        state.paused_again("run", rows(&["row-1"]));
        state.paused_again("run", rows(&["row-1"]));
        assert!(!state.waits("run"), "the first time it could not resume is tried again at once");
        state.paused_again("run", rows(&["row-1"]));
        assert!(state.waits("run"));
        state.paused_again("run", rows(&["row-2"]));
        assert!(!state.waits("run"), "new rows: it went on");
    }
}
