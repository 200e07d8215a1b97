//! The worker: paused runs continue by themselves once every gated call is decided.
//!
//! An admin decides rows; nobody needs to call `continue_run` afterwards. A [`Worker`] holds the
//! agents and teams of a program and a store, and continues each of their paused runs whose
//! rows are all decided (approved, rejected, expired or cancelled) as soon as it learns of the
//! last decision: the store wakes it ([`Store::wait_for_events`], announced by Postgres across
//! machines), and a short timeout makes up for any wake-up lost. It also sweeps expired rows
//! (their `on_expire` applies with no caller) and recovers runs that a dead process left
//! `running` past the stale time.
//!
//! Any number of workers may run, in any number of processes and machines that share the
//! database: a continue first claims its run with a compare-and-set in the database
//! ([`Store::claim_run`]), so each run is continued by one of them and each approved tool runs
//! once. A worker that loses the claim moves on.

mod builder;
mod stats;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::run::{RunOutput, RunRecord};
use crate::store::Store;
use crate::team::Team;

pub use builder::{WorkerBuildError, WorkerBuilder};
pub use stats::{WorkerCounts, WorkerStats};

/// How many decided runs one read of the store brings.
const SCAN_PAGE: u32 = 64;

/// How long a worker waits before reading the store again after a failed read: the database
/// may be restarting, and is not hammered meanwhile.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What became of a run a worker took up, for the application that wants to answer the user who
/// started it. Received from [`Worker::subscribe`].
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// The run was continued; its output says where it stands now (completed, or paused again
    /// on new calls, or stopped by an error the model could not recover from).
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
    runners: HashMap<String, Runner>,
    settings: builder::Settings,
    stats: Arc<WorkerStats>,
    outcomes: broadcast::Sender<RunOutcome>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("runners", &self.runners.keys().collect::<Vec<_>>())
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
    /// falls more than a few hundred outcomes behind misses the oldest
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
        let mut seq = self.store.last_event_seq().await?;
        tracing::info!(runners = ?self.runners.keys().collect::<Vec<_>>(), "kern worker started");
        let mut state = State::default();
        let mut next_upkeep = Instant::now();
        tokio::pin!(shutdown);
        loop {
            if Instant::now() >= next_upkeep {
                self.upkeep(&mut state).await;
                next_upkeep = Instant::now() + self.settings.upkeep_interval;
            }
            let delay = match self.dispatch(&mut state).await {
                Ok(()) => self.settings.poll_interval,
                Err(error) => {
                    tracing::warn!(%error, "kern worker cannot read decided runs; retrying");
                    RETRY_AFTER_FAILURE
                }
            };
            let timeout = delay.min(next_upkeep.saturating_duration_since(Instant::now()));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = state.tasks.join_next(), if !state.tasks.is_empty() => self.finished(&mut state, joined),
                woken = self.store.wait_for_events(seq, timeout) => match woken {
                    Ok(last) => seq = last,
                    Err(error) => {
                        tracing::warn!(%error, "kern worker cannot follow the trail; retrying");
                        tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                    }
                },
            }
        }
        tracing::info!(in_flight = state.tasks.len(), "kern worker stopping: finishing the runs under way");
        while let Some(joined) = state.tasks.join_next().await {
            self.finished(&mut state, joined);
        }
        Ok(())
    }

    /// Starts a continue of each decided run this worker can take, up to its concurrency.
    ///
    /// Every worker reads the decided runs in the same order, so each starts its round at a
    /// random place in the page it reads: workers that wake together then mostly claim
    /// different runs, rather than all racing for the first ones and all but one losing.
    async fn dispatch(&self, state: &mut State) -> Result<()> {
        let mut after: Option<String> = None;
        while state.tasks.len() < self.settings.concurrency {
            let page = self.store.decided_runs(after.as_deref(), SCAN_PAGE).await?;
            let start = random_index(page.len());
            for run in page[start..].iter().chain(&page[..start]) {
                if state.tasks.len() >= self.settings.concurrency {
                    break;
                }
                if let Some(runner) = self.runner_for(run)
                    && state.takes(run)
                {
                    self.start(state, runner, Job::Continue, &run.run_id);
                }
            }
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE as usize => after = Some(last.run_id.clone()),
                _ => break,
            }
        }
        Ok(())
    }

    /// The periodic chores: rows past their expiry are marked so (and their `on_expire`
    /// applied), and runs left running by a dead process are recovered.
    async fn upkeep(&self, state: &mut State) {
        match self.store.expire_approvals(crate::now()).await {
            Ok(0) => {}
            Ok(expired) => {
                tracing::info!(expired, "kern worker expired approval rows");
                self.stats.add_expired(expired);
            }
            Err(error) => tracing::warn!(%error, "kern worker cannot sweep expired rows"),
        }
        let stale_after = self.settings.stale_after;
        let limit = u32::try_from(self.settings.concurrency).unwrap_or(u32::MAX);
        match self.store.stale_runs(stale_after, limit).await {
            Ok(stale) => {
                for run in &stale {
                    if state.tasks.len() < self.settings.concurrency
                        && !state.in_flight.contains(&run.run_id)
                        && let Some(runner) = self.runner_for(run)
                    {
                        self.start(state, runner, Job::Recover, &run.run_id);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "kern worker cannot read stale runs"),
        }
    }

    /// The agent or team of a top-level run, if this worker has it.
    fn runner_for(&self, run: &RunRecord) -> Option<Runner> {
        let owner = run.team_id.as_ref().or(run.agent_id.as_ref())?;
        self.runners.get(owner).cloned()
    }

    fn start(&self, state: &mut State, runner: Runner, job: Job, run_id: &str) {
        state.in_flight.insert(run_id.to_owned());
        self.stats.started();
        let run_id = run_id.to_owned();
        let stale_after = self.settings.stale_after;
        let span = tracing::info_span!("kern.worker", ?job, run_id);
        state.tasks.spawn(
            async move {
                let result = runner.perform(job, &run_id, stale_after).await;
                (run_id, job, result)
            }
            .instrument(span),
        );
    }

    /// Records what became of a task's run.
    fn finished(
        &self,
        state: &mut State,
        joined: std::result::Result<(String, Job, Result<RunOutput>), tokio::task::JoinError>,
    ) {
        self.stats.ended();
        let (run_id, job, result) = match joined {
            Ok(done) => done,
            Err(error) => {
                // A panic in a tool or model is caught by the engine; only a runtime shutting
                // down ends a task here. Its run id is lost with it, so the set is rebuilt.
                tracing::error!(%error, "kern worker task ended abnormally");
                self.stats.add_failed();
                state.in_flight.clear();
                return;
            }
        };
        state.in_flight.remove(&run_id);
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
            // Another worker claimed the run first (or it stopped being stale, or a row was
            // reopened by a concurrent writer): nothing to do here.
            Err(Error::RunNotPaused { .. } | Error::RunNotStale { .. } | Error::ApprovalPending { .. }) => {
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
    tasks: JoinSet<(String, Job, Result<RunOutput>)>,
    /// The runs this worker's tasks hold, so that a scan does not start a second task on one.
    in_flight: HashSet<String>,
    /// Runs that also wait for calls no row decides (a plain confirmation, say), as last
    /// written: a continue without the caller's answers cannot resume them, so they are left to
    /// the application until they change.
    waiting_on_people: HashMap<String, DateTime<Utc>>,
}

impl State {
    /// Whether the worker should start a continue of decided run `run` now.
    fn takes(&mut self, run: &RunRecord) -> bool {
        if self.in_flight.contains(&run.run_id) {
            return false;
        }
        if self.waiting_on_people.get(&run.run_id) == Some(&run.updated_at) {
            return false;
        }
        if waits_only_on_rows(run) {
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

/// Whether every paused call of `run`, its own and its paused members', is gated by an approval
/// row: only then can a continue with no answers from a caller resume it.
fn waits_only_on_rows(run: &RunRecord) -> bool {
    let members = run.delegations.iter().flat_map(|delegation| &delegation.runs);
    run.requirements
        .iter()
        .chain(members.flat_map(|member| &member.requirements))
        .all(|requirement| requirement.approval_id.is_some())
}
