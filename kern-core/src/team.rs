//! Teams: a leader model that delegates tasks to member agents.
//!
//! The leader is a run loop like an agent's, with two built-in tools that hand a task to one
//! member or to all of them. Each member works in a child run of the team run. Approvals work
//! at both levels: a team tool's row belongs to the team run; a member tool's row belongs to
//! the member's run and names the team; either pauses the whole team run.

use std::sync::Arc;

use tracing::Instrument;

use crate::agent::{Agent, RunOptions};
use crate::approval::SourceType;
use crate::engine::{
    Decision, Identity, Member, Roster, RunRequest, Runner, Settings, Step, Writes, settings_setters, settle, track,
};
use crate::error::{Error, Result};
use crate::run::{RunOutput, RunRecord, RunRequirement, RunStatus};

/// A team of agents under a leader model. Cheap to clone.
#[derive(Clone)]
pub struct Team {
    leader: Arc<Runner>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// A paused member run, ready to resume once the team run is claimed.
struct MemberResumption<'a> {
    member: &'a Member,
    record: RunRecord,
    decisions: Vec<Decision>,
}

/// Everything a continue reads before it claims the team run: what the team and its paused
/// members resume with, and the member runs that are done, which the output reports. Reading
/// them all first means a failed read changes nothing, and nothing is read once the outcome
/// is stored.
struct Prepared<'a> {
    decisions: Vec<Decision>,
    members: Vec<MemberResumption<'a>>,
    finished_members: Vec<RunRecord>,
}

impl Team {
    /// Starts configuring a team.
    pub fn builder() -> TeamBuilder {
        TeamBuilder::default()
    }

    /// The team's id, recorded on its runs and approval rows.
    pub fn id(&self) -> &str {
        self.leader.identity.team_id.as_deref().unwrap_or_default()
    }

    /// Runs the team on `input` in a new session.
    pub async fn run(&self, input: impl Into<String>) -> Result<RunOutput> {
        self.run_with(input, RunOptions::default()).await
    }

    /// Runs the team on `input` for a user and/or in an existing session.
    pub async fn run_with(&self, input: impl Into<String>, options: RunOptions) -> Result<RunOutput> {
        let request = RunRequest::top_level(input.into(), options);
        let step =
            self.leader.start(request).instrument(tracing::info_span!("kern.team_run", team_id = self.id())).await;
        self.persist(step, &[]).await
    }

    /// Continues a paused team run: paused members resume first (their rows checked as an
    /// agent checks them), then the leader (its own rows checked likewise).
    ///
    /// `requirements` may mix the team's own and the members' (those with `member` set), as
    /// found on the paused run's output.
    pub async fn continue_run(&self, run_id: &str, requirements: Vec<RunRequirement>) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.team_continue", team_id = self.id(), run_id);
        let team = self.clone();
        let run_id = run_id.to_owned();
        // On a task of its own, so a caller that stops waiting cannot abandon claimed runs
        // half-way: once claimed, the team run is carried through and stored.
        let task = tokio::spawn(async move { team.continue_paused(&run_id, requirements).await }.instrument(span));
        task.await.map_err(|join| Error::Aborted(join.to_string()))?
    }

    /// Loads, checks, decides, claims and resumes a paused team run, then stores the outcome.
    async fn continue_paused(&self, run_id: &str, requirements: Vec<RunRequirement>) -> Result<RunOutput> {
        let store = &*self.leader.store;
        let record = store.load_run(run_id).await?.ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        self.leader.check_owner(&record)?;
        if record.status != RunStatus::Paused {
            return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: record.status });
        }
        let prepared = self.prepare(&record, &requirements).await?;
        let claimed = store.claim_run(run_id).await?;
        // Another continue may have resumed and re-paused the run between our read and our
        // claim; then decide again on what we now own.
        let Prepared { decisions, members, finished_members } = if claimed.requirements == record.requirements {
            prepared
        } else {
            match self.prepare(&claimed, &requirements).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    self.release(claimed, &[]).await?;
                    return Err(error);
                }
            }
        };
        let mut owned = Vec::new();
        for resumption in &members {
            match store.claim_run(&resumption.record.run_id).await {
                Ok(_) => owned.push(resumption.record.clone()),
                Err(error) => {
                    self.release(claimed, &owned).await?;
                    return Err(error);
                }
            }
        }
        let step = self.resume(claimed, decisions, members).await;
        self.persist(step, &finished_members).await
    }

    /// Decides everything the team run waits for, reading only.
    async fn prepare<'a>(&'a self, record: &RunRecord, requirements: &[RunRequirement]) -> Result<Prepared<'a>> {
        let store = &*self.leader.store;
        let (member_answers, team_answers): (Vec<&RunRequirement>, Vec<&RunRequirement>) =
            requirements.iter().partition(|r| r.member.is_some());
        let mut team_view = record.clone();
        team_view.requirements.retain(|r| r.member.is_none());
        let team_answers: Vec<RunRequirement> = team_answers.into_iter().cloned().collect();
        let decisions = self.leader.decide(&team_view, &team_answers).await?;

        let paused: Vec<_> = record
            .delegations
            .iter()
            .flat_map(|d| &d.runs)
            .filter(|run| run.status == RunStatus::Paused)
            .map(|run| run.member.clone())
            .collect();
        if let Some(stray) = member_answers
            .iter()
            .find(|answer| answer.member.as_ref().is_some_and(|m| !paused.iter().any(|p| p.run_id == m.run_id)))
        {
            return Err(Error::UnknownRequirement {
                run_id: record.run_id.clone(),
                tool_call_id: stray.tool_call_id().to_owned(),
            });
        }
        let roster = self.roster();
        let mut members = Vec::new();
        for reference in paused {
            let member =
                roster.get(&reference.agent_id).ok_or_else(|| Error::UnknownMember(reference.agent_id.clone()))?;
            let member_record =
                store.load_run(&reference.run_id).await?.ok_or_else(|| Error::RunNotFound(reference.run_id.clone()))?;
            if member_record.status != RunStatus::Paused {
                return Err(Error::RunNotPaused { run_id: reference.run_id, status: member_record.status });
            }
            let answers: Vec<RunRequirement> = member_answers
                .iter()
                .filter(|a| a.member.as_ref().is_some_and(|m| m.run_id == reference.run_id))
                .map(|a| RunRequirement { member: None, ..(*a).clone() })
                .collect();
            let decisions = member.runner.decide(&member_record, &answers).await?;
            members.push(MemberResumption { member, record: member_record, decisions });
        }
        let mut finished_members = Vec::new();
        for run_id in &record.member_run_ids {
            if !members.iter().any(|m| &m.record.run_id == run_id) {
                let run = store.load_run(run_id).await?.ok_or_else(|| Error::RunNotFound(run_id.clone()))?;
                finished_members.push(run);
            }
        }
        Ok(Prepared { decisions, members, finished_members })
    }

    /// Resumes the paused members, answers the delegations they finish, then the leader.
    async fn resume(
        &self,
        mut record: RunRecord,
        decisions: Vec<Decision>,
        members: Vec<MemberResumption<'_>>,
    ) -> Step {
        let mut writes = Writes::default();
        record.requirements.retain(|r| r.member.is_none());
        for MemberResumption { member, record: member_record, decisions } in members {
            let step = member.runner.resume(member_record, decisions, Writes::default()).await;
            let run = track(&mut record, member, step, &mut writes);
            for delegation in &mut record.delegations {
                for slot in delegation.runs.iter_mut().filter(|r| r.member.run_id == run.member.run_id) {
                    *slot = run.clone();
                }
            }
        }
        settle(&mut record);
        self.leader.resume(record, decisions, writes).await
    }

    /// Gives claimed runs back, paused as they were.
    async fn release(&self, team: RunRecord, members: &[RunRecord]) -> Result<()> {
        let runs: Vec<RunRecord> = members
            .iter()
            .cloned()
            .chain(std::iter::once(team))
            .map(|mut run| {
                run.status = RunStatus::Paused;
                run
            })
            .collect();
        self.leader.store.save_runs(&runs, &[]).await
    }

    /// Stores a step (team run, member runs and new rows in one transaction), then reports
    /// it with every member run of the team run: those the step wrote and, from before it,
    /// `finished_members`.
    async fn persist(&self, step: Step, finished_members: &[RunRecord]) -> Result<RunOutput> {
        self.leader.store.save_runs(&step.runs(), &step.writes.approvals).await?;
        if let Some(error) = step.error {
            return Err(error);
        }
        let Step { record, writes, .. } = step;
        // Every member run of the team run is one of the two: the step wrote those it started
        // or resumed, and the continue read the others before it claimed the run.
        let member_runs = record
            .member_run_ids
            .iter()
            .filter_map(|run_id| writes.member_runs.iter().chain(finished_members).find(|r| &r.run_id == run_id))
            .map(|run| RunOutput::from(run.clone()))
            .collect();
        let mut output = RunOutput::from(record);
        output.member_runs = member_runs;
        Ok(output)
    }

    fn roster(&self) -> &Roster {
        self.leader.roster.as_deref().expect("a team's leader always has a roster")
    }
}

/// Configures a [`Team`].
#[derive(Default)]
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
    /// Errors as for agents ([`Error::NoModel`], [`Error::DuplicateTool`],
    /// [`Error::ApprovalNeedsDb`] for a required-approval tool on the team or any member
    /// without a team db), and [`Error::DuplicateMember`].
    pub fn build(self) -> Result<Team> {
        let gated_member_tool = self.members.iter().find_map(|m| m.runner().tools.first_requiring_approval());
        let checked = self.settings.check("team", gated_member_tool)?;
        let mut members: Vec<Member> = Vec::with_capacity(self.members.len());
        for agent in &self.members {
            if members.iter().any(|m| m.id() == agent.id()) {
                return Err(Error::DuplicateMember(agent.id().to_owned()));
            }
            let mut runner = agent.runner().clone();
            runner.identity.team_id = Some(checked.id.clone());
            runner.store = Arc::clone(&checked.store);
            members.push(Member { runner });
        }
        let roster = Roster::new(members);
        let leader = Runner {
            identity: Identity {
                source_type: SourceType::Team,
                name: checked.name,
                agent_id: None,
                team_id: Some(checked.id),
            },
            model: checked.model,
            instructions: checked.instructions,
            tools: checked.tools.with_builtins(roster.schemas())?,
            store: checked.store,
            max_rounds: checked.max_rounds,
            history_runs: checked.history_runs,
            roster: Some(Arc::new(roster)),
        };
        Ok(Team { leader: Arc::new(leader) })
    }
}
