//! The agent or team of this server that runs a given run or made a given call: the inbox
//! continues and recovers runs through it, and reads a tool's description from it.

use std::time::Duration;

use kern_core::agent::Agent;
use kern_core::approval::Approval;
use kern_core::run::{RunOutput, RunRecord};
use kern_core::team::Team;
use kern_core::tools::ToolDefinition;

use crate::state::AppState;

/// A runner of this server.
pub enum Runner<'a> {
    Agent(&'a Agent),
    Team(&'a Team),
}

impl<'a> Runner<'a> {
    /// The runner of a top-level run, when this server has it; a member's run is continued
    /// through its team's run.
    pub fn of_run(state: &'a AppState, record: &RunRecord) -> Option<Self> {
        if record.parent_run_id.is_some() {
            return None;
        }
        match (&record.agent_id, &record.team_id) {
            (Some(agent), None) => state.agents.get(agent).map(Runner::Agent),
            (None, Some(team)) => state.teams.get(team).map(Runner::Team),
            _ => None,
        }
    }

    /// The definition of the tool a row's call named, from the agent (or team) that made it.
    pub fn tool_definition(state: &AppState, row: &Approval) -> Option<ToolDefinition> {
        let by_agent = row.agent_id.as_ref().and_then(|agent| state.agents.get(agent));
        let by_team = row.team_id.as_ref().and_then(|team| state.teams.get(team));
        by_agent
            .and_then(|agent| agent.tool_definition(&row.tool_name))
            .or_else(|| by_team.and_then(|team| team.tool_definition(&row.tool_name)))
            .cloned()
    }

    /// Continues the paused run `run_id` from its decided rows.
    pub async fn continue_run(&self, run_id: &str) -> kern_core::Result<RunOutput> {
        match self {
            Runner::Agent(agent) => agent.continue_run_by_id(run_id).await,
            Runner::Team(team) => team.continue_run_by_id(run_id).await,
        }
    }

    /// Recovers the run `run_id`, stuck in `running` for longer than `stale_after`.
    pub async fn recover_run(&self, run_id: &str, stale_after: Duration) -> kern_core::Result<RunOutput> {
        match self {
            Runner::Agent(agent) => agent.recover_run(run_id, stale_after).await,
            Runner::Team(team) => team.recover_run(run_id, stale_after).await,
        }
    }
}
