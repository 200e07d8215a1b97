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

use crate::approval::SourceType;
use crate::engine::{Cycle, RunRequest, Runner, Settings, settings_setters};
pub use crate::engine::{DEFAULT_MAX_CALLS_PER_TURN, DEFAULT_MAX_ROUNDS};
use crate::error::Result;
use crate::events;
use crate::models::Usage;
use crate::run::{RunOptions, RunOutput, RunRequirement};
use crate::tools::ToolDefinition;

/// An agent. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Agent {
    cycle: Arc<Cycle>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("id", &self.id()).field("name", &self.name()).finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts configuring an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// The agent's id, recorded on its runs and approval rows.
    pub fn id(&self) -> &str {
        self.runner().identity.agent_id.as_deref().unwrap_or_default()
    }

    /// The agent's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.runner().identity.name.as_deref()
    }

    /// The tokens spent in session `session_id` so far: the `usage` of each of its runs, the
    /// child runs of team members included.
    pub async fn session_usage(&self, session_id: &str) -> Result<Usage> {
        self.cycle.session_usage(session_id).await
    }

    /// Runs the agent on `input` in a new session.
    pub async fn run(&self, input: impl Into<String>) -> Result<RunOutput> {
        self.run_with(input, RunOptions::default()).await
    }

    /// Runs the agent on `input` for a user and/or in an existing session.
    ///
    /// Returns when the run completes or pauses; a paused run, with its approval rows, is
    /// already stored, and a failure to store it is this call's error.
    ///
    /// The run goes on a task of its own (a Tokio runtime is needed): a caller that stops
    /// waiting (a timeout, a dropped future) does not abandon it half-way, after tools ran;
    /// it is carried through and stored.
    pub async fn run_with(&self, input: impl Into<String>, options: RunOptions) -> Result<RunOutput> {
        let request = RunRequest::top_level(input.into(), options)?;
        self.cycle.run(request, tracing::info_span!("kern.run", agent_id = self.id())).await
    }

    /// Continues a paused run with the caller's answers to its requirements.
    ///
    /// Calls gated by a required approval are decided by their stored row, whatever
    /// `requirements` says: a missing row is [`Error::ApprovalMissing`](crate::Error::ApprovalMissing),
    /// a pending one [`Error::ApprovalPending`](crate::Error::ApprovalPending), and either leaves the
    /// run paused and untouched. The run is claimed before anything runs, so of concurrent
    /// continues exactly one proceeds.
    pub async fn continue_run(&self, run_id: &str, requirements: Vec<RunRequirement>) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.continue", agent_id = self.id(), run_id);
        self.cycle.continue_run(run_id, requirements, span).await
    }

    events::stream_methods!("agent");

    /// Continues a paused run whose calls wait for nothing but their approval rows, as
    /// [`continue_run`](Self::continue_run) does with no answers from the caller.
    pub async fn continue_run_by_id(&self, run_id: &str) -> Result<RunOutput> {
        self.continue_run(run_id, Vec::new()).await
    }

    /// Finishes a run that a continue claimed and never stored (its process died, or the
    /// database failed as it stored the outcome), which is left `running` for good otherwise:
    /// every `continue_run` of it is refused with [`Error::RunNotPaused`](crate::Error::RunNotPaused).
    ///
    /// The run is taken over only once it has been running for longer than `stale_after`
    /// ([`Store::reclaim_run`](crate::store::Store::reclaim_run), so of concurrent recoveries
    /// exactly one proceeds); sooner, or for a run that is not running, it is
    /// [`Error::RunNotStale`](crate::Error::RunNotStale). Its paused calls are then decided again
    /// from their stored rows, and it resumes and is stored as a continue does. The caller's
    /// answers to calls that no row decides went down with the continue: those calls wait
    /// again, and the run pauses for them. If the rows no longer let the run resume (a row went
    /// missing, say), the run goes back to paused and the error is returned.
    ///
    /// The tool of an approved call may already have run before the continue died, so it may
    /// run again: with the same idempotency key (`approval_id:tool_call_id`, see
    /// [`RunContext::idempotency_key`](crate::tools::RunContext::idempotency_key)), which is how
    /// a tool makes a second run harmless. A continue under way renews its claim every 20 s
    /// ([`Store::renew_claim`](crate::store::Store::renew_claim)), so that it is not taken for
    /// dead however long its tools take: pick `stale_after` well above that (a minute or more).
    /// A continue that could not renew for `stale_after` may be taken over all the same; it
    /// then stores nothing ([`Error::RunTakenOver`](crate::Error::RunTakenOver)).
    pub async fn recover_run(&self, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.recover", agent_id = self.id(), run_id);
        self.cycle.recover_run(run_id, stale_after, span).await
    }

    /// The definition of the agent's tool `name` (its description and argument schemas), as
    /// an admin reviewing one of its calls reads it.
    pub fn tool_definition(&self, name: &str) -> Option<&ToolDefinition> {
        self.runner().tools.get(name).map(|entry| &entry.definition)
    }

    /// The loop, for a team that takes this agent on as a member.
    pub(crate) fn runner(&self) -> &Runner {
        self.cycle.runner()
    }
}

/// Configures an [`Agent`].
#[derive(Default)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct AgentBuilder {
    settings: Settings,
}

impl AgentBuilder {
    settings_setters!("agent");

    /// Checks the configuration and builds the agent.
    ///
    /// Errors: [`Error::NoModel`](crate::Error::NoModel),
    /// [`Error::DuplicateTool`](crate::Error::DuplicateTool),
    /// [`Error::InvalidTool`](crate::Error::InvalidTool) for a definition model APIs would
    /// refuse or its approval policy cannot honour (see [`ToolDefinition`]), and
    /// [`Error::ApprovalNeedsDb`](crate::Error::ApprovalNeedsDb) for a tool with an approval,
    /// required or audit, without a db (its rows would have nowhere to go).
    pub fn build(self) -> Result<Agent> {
        let checked = self.settings.check("agent", None)?;
        Ok(Agent { cycle: Arc::new(Cycle::agent(Runner::new(SourceType::Agent, checked))) })
    }
}
