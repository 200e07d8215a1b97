//! Teams: a leader model that delegates tasks to member agents.
//!
//! The leader is a run loop like an agent's, with two built-in tools that hand a task to one
//! member or to all of them. Each member works in a child run of the team run. Approvals work
//! at both levels: a team tool's row belongs to the team run; a member tool's row belongs to
//! the member's run and names the team; either pauses the whole team run.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::agent::{Agent, RunOptions};
use crate::approval::SourceType;
use crate::engine::{
    Decision, Identity, Member, Roster, RunRequest, Runner, Settings, Step, Writes, on_own_task, settings_setters,
    settle, track,
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

/// A member run the team run waits on, as stored, and the member that resumes it.
struct Waiting<'a> {
    member: &'a Member,
    record: RunRecord,
}

/// A member run the team run waits on, decided and ready to resume once the team holds it.
struct MemberResumption<'a> {
    member: &'a Member,
    record: RunRecord,
    decisions: Vec<Decision>,
}

/// Everything a continue reads before it claims the team run (a recovery, before it resumes
/// the team run it reclaimed): what the team and its paused members resume with, and the
/// member runs that are done, which the output reports. Reading them all first means a failed
/// read changes nothing, and nothing is read once the outcome is stored.
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
        on_own_task(span, async move { team.continue_paused(&run_id, requirements).await }).await
    }

    /// Finishes a team run that a continue claimed and never stored, as
    /// [`Agent::recover_run`] does for an agent's run; the same cautions apply, to the tools
    /// of the team and of its members alike.
    ///
    /// The team run is reclaimed ([`Store::reclaim_run`](crate::store::Store::reclaim_run))
    /// once it has been running for longer than `stale_after`, else [`Error::RunNotStale`].
    /// The member runs the continue had claimed are taken over with it: only a holder of the
    /// team run resumes them. Those it had not claimed yet are claimed. Then the team's calls
    /// and its members' are decided again from their rows, and everything resumes and is
    /// stored as a continue does. If the rows no longer let the run resume, the team run and
    /// its member runs go back to paused and the error is returned. If a member run cannot be
    /// read for a database error, the team run stays running, to be recovered again; if the
    /// team cannot resume a member run at all (a member it no longer has, a member run gone or
    /// finished), the team run is stored as failed, with the error.
    pub async fn recover_run(&self, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        let span = tracing::info_span!("kern.team_recover", team_id = self.id(), run_id);
        let team = self.clone();
        let run_id = run_id.to_owned();
        on_own_task(span, async move { team.recover_stale(&run_id, stale_after).await }).await
    }

    /// Loads, checks, decides, claims and resumes a paused team run, then stores the outcome.
    async fn continue_paused(&self, run_id: &str, requirements: Vec<RunRequirement>) -> Result<RunOutput> {
        let record = self.load_own(run_id).await?;
        if record.status != RunStatus::Paused {
            return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: record.status });
        }
        let prepared = self.prepare(&record, &requirements).await?;
        let claimed = self.leader.store.claim_run(run_id).await?;
        // Another continue may have resumed and re-paused the run between our read and our
        // claim; then decide again on what we now own.
        let prepared = if claimed.requirements == record.requirements {
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
        self.resume_held(claimed, prepared).await
    }

    /// Reclaims a team run a continue left running, decides its calls and its members' from
    /// their rows, resumes it, then stores the outcome.
    async fn recover_stale(&self, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        self.load_own(run_id).await?;
        let reclaimed = self.leader.store.reclaim_run(run_id, stale_after).await?;
        // Which member runs the continue had claimed is known only once all are read: until
        // then the team run stays running. Given back paused, it would wait on running member
        // runs, which neither a continue nor a recovery could resume.
        let waiting = match self.waiting_members(&reclaimed, &[RunStatus::Paused, RunStatus::Running]).await {
            Ok(waiting) => waiting,
            // A failed read may pass: the run stays running, to be recovered again.
            Err(error @ Error::Database(_)) => return Err(error),
            // Anything else (a member the team no longer has, a member run gone or finished)
            // would fail every recovery alike: the team run ends in error.
            Err(error) => return self.persist(Step::finish(reclaimed, Writes::default(), Err(error)), &[]).await,
        };
        let claimed_members: Vec<RunRecord> = waiting
            .iter()
            .filter(|waiting| waiting.record.status == RunStatus::Running)
            .map(|waiting| waiting.record.clone())
            .collect();
        let prepared = match self.decide(&reclaimed, &[], waiting).await {
            Ok(prepared) => prepared,
            Err(error) => {
                self.release(reclaimed, &claimed_members).await?;
                return Err(error);
            }
        };
        self.resume_held(reclaimed, prepared).await
    }

    /// Reads team run `run_id` for this team to resume: a run of its own.
    async fn load_own(&self, run_id: &str) -> Result<RunRecord> {
        let record = self.leader.store.load_run(run_id).await?.ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        self.leader.check_owner(&record)?;
        Ok(record)
    }

    /// Decides everything a paused team run waits for, reading only.
    async fn prepare<'a>(&'a self, record: &RunRecord, requirements: &[RunRequirement]) -> Result<Prepared<'a>> {
        let waiting = self.waiting_members(record, &[RunStatus::Paused]).await?;
        self.decide(record, requirements, waiting).await
    }

    /// Reads the member runs the team run `record` waits on; each must be in one of the
    /// `resumable` statuses, else [`Error::RunNotPaused`].
    async fn waiting_members(&self, record: &RunRecord, resumable: &[RunStatus]) -> Result<Vec<Waiting<'_>>> {
        let store = &*self.leader.store;
        let roster = self.roster();
        let references = record.delegations.iter().flat_map(|d| &d.runs).filter(|run| run.status == RunStatus::Paused);
        let mut waiting = Vec::new();
        for reference in references.map(|run| &run.member) {
            let member =
                roster.get(&reference.agent_id).ok_or_else(|| Error::UnknownMember(reference.agent_id.clone()))?;
            let record =
                store.load_run(&reference.run_id).await?.ok_or_else(|| Error::RunNotFound(reference.run_id.clone()))?;
            if !resumable.contains(&record.status) {
                return Err(Error::RunNotPaused { run_id: record.run_id, status: record.status });
            }
            waiting.push(Waiting { member, record });
        }
        Ok(waiting)
    }

    /// Decides the team's own calls and those of the `waiting` member runs, and reads the
    /// member runs that are done; reads only.
    async fn decide<'a>(
        &self,
        record: &RunRecord,
        requirements: &[RunRequirement],
        waiting: Vec<Waiting<'a>>,
    ) -> Result<Prepared<'a>> {
        let store = &*self.leader.store;
        let (member_answers, team_answers): (Vec<&RunRequirement>, Vec<&RunRequirement>) =
            requirements.iter().partition(|r| r.member.is_some());
        let mut team_view = record.clone();
        team_view.requirements.retain(|r| r.member.is_none());
        let team_answers: Vec<RunRequirement> = team_answers.into_iter().cloned().collect();
        let decisions = self.leader.decide(&team_view, &team_answers).await?;

        if let Some(stray) = member_answers
            .iter()
            .find(|answer| answer.member.as_ref().is_some_and(|m| !waiting.iter().any(|w| w.record.run_id == m.run_id)))
        {
            return Err(Error::UnknownRequirement {
                run_id: record.run_id.clone(),
                tool_call_id: stray.tool_call_id().to_owned(),
            });
        }
        let mut members = Vec::new();
        for Waiting { member, record: member_record } in waiting {
            let answers: Vec<RunRequirement> = member_answers
                .iter()
                .filter(|answer| answer.member.as_ref().is_some_and(|m| m.run_id == member_record.run_id))
                .map(|answer| RunRequirement { member: None, ..(*answer).clone() })
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

    /// Resumes a team run this process holds: claims the member runs it waits on that are
    /// still paused (those a crashed continue left running are held with the team run), then
    /// resumes members and leader and stores the outcome. If a member run cannot be claimed,
    /// the team run and every member run it holds go back to paused.
    async fn resume_held(&self, team: RunRecord, prepared: Prepared<'_>) -> Result<RunOutput> {
        let Prepared { decisions, members, finished_members } = prepared;
        let mut held: Vec<RunRecord> = members
            .iter()
            .filter(|resumption| resumption.record.status == RunStatus::Running)
            .map(|resumption| resumption.record.clone())
            .collect();
        for resumption in members.iter().filter(|resumption| resumption.record.status == RunStatus::Paused) {
            match self.leader.store.claim_run(&resumption.record.run_id).await {
                Ok(_) => held.push(resumption.record.clone()),
                Err(error) => {
                    self.release(team, &held).await?;
                    return Err(error);
                }
            }
        }
        let step = self.resume(team, decisions, members).await;
        self.persist(step, &finished_members).await
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
