//! Agents: a model, tools and a store, driven by the run loop.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use kern_core::agent::Agent;
//! use kern_core::models::{Reply, ScriptedModel};
//! use kern_core::run::RunStatus;
//!
//! let model = ScriptedModel::new().when_user_contains("hello", Reply::text("Hi!"));
//! let agent = Agent::builder().name("greeter").model(model).build()?;
//! let run = agent.run("hello").await?;
//! assert_eq!(run.status, RunStatus::Completed);
//! assert_eq!(run.content.as_deref(), Some("Hi!"));
//! # Ok::<(), kern_core::Error>(()) }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::approval::SourceType;
pub use crate::engine::DEFAULT_MAX_ROUNDS;
use crate::engine::{Decision, Identity, RunRequest, Runner, Settings, Step, Writes, on_own_task, settings_setters};
use crate::error::{Error, Result};
use crate::run::{RunOutput, RunRecord, RunRequirement, RunStatus};
use crate::store::Store;

/// An agent. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Agent {
    runner: Arc<Runner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("id", &self.id()).field("name", &self.name()).finish_non_exhaustive()
    }
}

/// Who a run acts for and which conversation it continues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The session to continue; a new one when `None`.
    pub session_id: Option<String>,
    /// The user the run acts for; recorded on approval rows.
    pub user_id: Option<String>,
}

impl RunOptions {
    /// Continues the session `session_id`.
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Acts for `user_id`.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
}

impl Agent {
    /// Starts configuring an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// The agent's id, recorded on its runs and approval rows.
    pub fn id(&self) -> &str {
        self.runner.identity.agent_id.as_deref().unwrap_or_default()
    }

    /// The agent's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.runner.identity.name.as_deref()
    }

    /// Runs the agent on `input` in a new session.
    pub async fn run(&self, input: impl Into<String>) -> Result<RunOutput> {
        self.run_with(input, RunOptions::default()).await
    }

    /// Runs the agent on `input` for a user and/or in an existing session.
    ///
    /// Returns when the run completes or pauses; a paused run, with its approval rows, is
    /// already stored, and a failure to store it is this call's error.
    pub async fn run_with(&self, input: impl Into<String>, options: RunOptions) -> Result<RunOutput> {
        let request = RunRequest::top_level(input.into(), options);
        let span = tracing::info_span!("kern.run", agent_id = self.id());
        let step = self.runner.start(request).instrument(span).await;
        persist(&*self.runner.store, step).await
    }

    /// Continues a paused run with the caller's answers to its requirements.
    ///
    /// Calls gated by a required approval are decided by their stored row, whatever
    /// `requirements` says: a missing row is [`Error::ApprovalMissing`], a pending one
    /// [`Error::ApprovalPending`], and either leaves the run paused and untouched. The run is
    /// claimed before anything runs, so of concurrent continues exactly one proceeds.
    pub async fn continue_run(&self, run_id: &str, requirements: Vec<RunRequirement>) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.continue", agent_id = self.id(), run_id);
        let runner = Arc::clone(&self.runner);
        let run_id = run_id.to_owned();
        on_own_task(span, async move { continue_paused(&runner, &run_id, &requirements).await }).await
    }

    /// Finishes a run that a continue claimed and never stored (its process died, or the
    /// database failed as it stored the outcome), which is left `running` for good otherwise:
    /// every `continue_run` of it is refused with [`Error::RunNotPaused`].
    ///
    /// The run is taken over only once it has been running for longer than `stale_after`
    /// ([`Store::reclaim_run`], so of concurrent recoveries exactly one proceeds); sooner, or
    /// for a run that is not running, it is [`Error::RunNotStale`]. Its paused calls are then
    /// decided again from their stored rows, and it resumes and is stored as a continue does.
    /// The caller's answers to calls that no row decides went down with the continue: those
    /// calls wait again, and the run pauses for them. If the rows no longer let the run resume
    /// (a row went missing, say), the run goes back to paused and the error is returned.
    ///
    /// The tool of an approved call may already have run before the continue died, so it may
    /// run again: with the same idempotency key (`approval_id:tool_call_id`, see
    /// [`RunContext::idempotency_key`](crate::tools::RunContext::idempotency_key)), which is how
    /// a tool makes a second run harmless. Pick `stale_after` longer than the longest continue
    /// can take, so that no continue still under way is recovered too.
    pub async fn recover_run(&self, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.recover", agent_id = self.id(), run_id);
        let runner = Arc::clone(&self.runner);
        let run_id = run_id.to_owned();
        on_own_task(span, async move { recover_stale(&runner, &run_id, stale_after).await }).await
    }

    pub(crate) fn runner(&self) -> &Runner {
        &self.runner
    }
}

/// Loads, decides, claims and resumes a paused run, then stores the outcome.
async fn continue_paused(runner: &Runner, run_id: &str, requirements: &[RunRequirement]) -> Result<RunOutput> {
    let store = &*runner.store;
    let record = load_own(runner, run_id).await?;
    if record.status != RunStatus::Paused {
        return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: record.status });
    }
    let decisions = runner.decide(&record, requirements).await?;
    let claimed = store.claim_run(run_id).await?;
    // Another continue may have resumed and re-paused the run between our read and our
    // claim; then decide again on what we now own.
    let decisions = if claimed.requirements == record.requirements {
        decisions
    } else {
        decide_claimed(runner, &claimed, requirements).await?
    };
    persist(store, runner.resume(claimed, decisions, Writes::default()).await).await
}

/// Reclaims a run a continue left running, decides its calls from their rows, resumes it,
/// then stores the outcome.
async fn recover_stale(runner: &Runner, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
    let store = &*runner.store;
    load_own(runner, run_id).await?;
    let reclaimed = store.reclaim_run(run_id, stale_after).await?;
    let decisions = decide_claimed(runner, &reclaimed, &[]).await?;
    persist(store, runner.resume(reclaimed, decisions, Writes::default()).await).await
}

/// Reads run `run_id` for this runner to resume: a run of its own, not a team member's.
async fn load_own(runner: &Runner, run_id: &str) -> Result<RunRecord> {
    let record = runner.store.load_run(run_id).await?.ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
    if let Some(team_run_id) = record.parent_run_id {
        return Err(Error::MemberRun { run_id: run_id.to_owned(), team_run_id });
    }
    runner.check_owner(&record)?;
    Ok(record)
}

/// Decides the calls of a run this process holds; when they cannot be decided, gives the run
/// back, paused as it was, so that it can be continued once they can.
async fn decide_claimed(
    runner: &Runner,
    claimed: &RunRecord,
    requirements: &[RunRequirement],
) -> Result<Vec<Decision>> {
    match runner.decide(claimed, requirements).await {
        Ok(decisions) => Ok(decisions),
        Err(error) => {
            let paused = RunRecord { status: RunStatus::Paused, ..claimed.clone() };
            runner.store.save_runs(std::slice::from_ref(&paused), &[]).await?;
            Err(error)
        }
    }
}

/// Stores a step (run state and new rows, one transaction), then reports it.
async fn persist(store: &dyn Store, step: Step) -> Result<RunOutput> {
    store.save_runs(&step.runs(), &step.writes.approvals).await?;
    match step.error {
        Some(error) => Err(error),
        None => Ok(RunOutput::from(step.record)),
    }
}

/// Configures an [`Agent`].
#[derive(Default)]
pub struct AgentBuilder {
    settings: Settings,
}

impl AgentBuilder {
    settings_setters!("agent");

    /// Checks the configuration and builds the agent.
    ///
    /// Errors: [`Error::NoModel`], [`Error::DuplicateTool`], and [`Error::ApprovalNeedsDb`]
    /// for a required-approval tool without a db (a pause would otherwise have nowhere to
    /// put its row).
    pub fn build(self) -> Result<Agent> {
        let checked = self.settings.check("agent", None)?;
        let runner = Runner {
            identity: Identity {
                source_type: SourceType::Agent,
                name: checked.name,
                agent_id: Some(checked.id),
                team_id: None,
            },
            model: checked.model,
            instructions: checked.instructions,
            tools: checked.tools,
            store: checked.store,
            max_rounds: checked.max_rounds,
            history_runs: checked.history_runs,
            roster: None,
        };
        Ok(Agent { runner: Arc::new(runner) })
    }
}
