//! Teams: a leader model that delegates tasks to member agents.
//!
//! The leader is a run loop like an agent's, with two built-in tools that hand a task to one
//! member or to all of them. Each member works in a child run of the team run. Approvals work
//! at both levels: a team tool's row belongs to the team run; a member tool's row belongs to
//! the member's run and names the team; either pauses the whole team run.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::Agent;
use crate::approval::SourceType;
use crate::engine::{Cycle, Member, Roster, RunRequest, Runner, Settings, settings_setters};
use crate::error::Result;
use crate::events;
use crate::models::Usage;
use crate::run::{RunOptions, RunOutput, RunRequirement};
use crate::tools::ToolDefinition;

/// A team of agents under a leader model. Cheap to clone.
#[derive(Clone)]
pub struct Team {
    cycle: Arc<Cycle>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("id", &self.id()).finish_non_exhaustive()
    }
}

impl Team {
    /// Starts configuring a team.
    pub fn builder() -> TeamBuilder {
        TeamBuilder::default()
    }

    /// The team's id, recorded on its runs and approval rows.
    pub fn id(&self) -> &str {
        self.cycle.runner().identity.team_id.as_deref().unwrap_or_default()
    }

    /// The tokens spent in session `session_id` so far: the `usage` of each of its runs, the
    /// child runs of team members included.
    pub async fn session_usage(&self, session_id: &str) -> Result<Usage> {
        self.cycle.session_usage(session_id).await
    }

    /// Runs the team on `input` in a new session.
    pub async fn run(&self, input: impl Into<String>) -> Result<RunOutput> {
        self.run_with(input, RunOptions::default()).await
    }

    /// Runs the team on `input` for a user and/or in an existing session, on a task of its own
    /// as [`Agent::run_with`](crate::agent::Agent::run_with) does.
    pub async fn run_with(&self, input: impl Into<String>, options: RunOptions) -> Result<RunOutput> {
        let request = RunRequest::top_level(input.into(), options)?;
        self.cycle.run(request, tracing::info_span!("kern.team_run", team_id = self.id())).await
    }

    /// Continues a paused team run: paused members resume first (their rows checked as an
    /// agent checks them), then the leader (its own rows checked likewise).
    ///
    /// `requirements` may mix the team's own and the members' (those with `member` set), as
    /// found on the paused run's output.
    pub async fn continue_run(&self, run_id: &str, requirements: Vec<RunRequirement>) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.team_continue", team_id = self.id(), run_id);
        self.cycle.continue_run(run_id, requirements, span).await
    }

    events::stream_methods!("team");

    /// Continues a paused team run whose calls wait for nothing but their approval rows, as
    /// [`continue_run`](Self::continue_run) does with no answers from the caller.
    pub async fn continue_run_by_id(&self, run_id: &str) -> Result<RunOutput> {
        self.continue_run(run_id, Vec::new()).await
    }

    /// Finishes a team run that a continue claimed and never stored, as
    /// [`Agent::recover_run`] does for an agent's run; the same cautions apply, to the tools
    /// of the team and of its members alike.
    ///
    /// The team run is reclaimed ([`Store::reclaim_run`](crate::store::Store::reclaim_run))
    /// once it has been running for longer than `stale_after`, else
    /// [`Error::RunNotStale`](crate::Error::RunNotStale). The member runs the continue had
    /// claimed are taken over with it: only a holder of the team run resumes them. Those it had
    /// not claimed yet are claimed. Then the team's calls and its members' are decided again
    /// from their rows, and everything resumes and is stored as a continue does. If the rows no
    /// longer let the run resume, the team run and its member runs go back to paused and the
    /// error is returned. If a member run cannot be read for a database error, the team run
    /// stays running, to be recovered again; if the team cannot resume a member run at all (a
    /// member it no longer has, a member run gone or finished), the team run is stored as
    /// failed, with the error.
    pub async fn recover_run(&self, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.team_recover", team_id = self.id(), run_id);
        self.cycle.recover_run(run_id, stale_after, span).await
    }

    /// The definition of the team's own tool `name` (its description and argument schemas), as
    /// an admin reviewing one of its calls reads it; members' tools are their agents'.
    pub fn tool_definition(&self, name: &str) -> Option<&ToolDefinition> {
        self.cycle.runner().tools.get(name).map(|entry| &entry.definition)
    }
}

/// Configures a [`Team`].
#[derive(Default)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct TeamBuilder {
    settings: Settings,
    members: Vec<Agent>,
}

impl TeamBuilder {
    settings_setters!("team");

    /// Adds a member agent. Its runs are stored in the team's db.
    pub fn member(mut self, agent: Agent) -> Self {
        self.members.push(agent);
        self
    }

    /// Checks the configuration and builds the team.
    ///
    /// Errors as for agents ([`Error::NoModel`](crate::Error::NoModel),
    /// [`Error::DuplicateTool`](crate::Error::DuplicateTool),
    /// [`Error::InvalidTool`](crate::Error::InvalidTool),
    /// [`Error::ApprovalNeedsDb`](crate::Error::ApprovalNeedsDb) for a tool with an approval on
    /// the team or any member without a team db), and
    /// [`Error::DuplicateMember`](crate::Error::DuplicateMember).
    pub fn build(self) -> Result<Team> {
        let gated_member_tool = self.members.iter().find_map(|m| m.runner().tools.first_with_approval());
        let checked = self.settings.check("team", gated_member_tool)?;
        let members =
            self.members.iter().map(|agent| Member::new(agent.runner().in_team(&checked.id, checked.store.clone())));
        let roster = Arc::new(Roster::new(members.collect())?);
        let leader = Runner::new(SourceType::Team, checked.with_builtins(roster.schemas())?);
        Ok(Team { cycle: Arc::new(Cycle::team(leader, roster)) })
    }
}
