//! The cycle of a run, written once for agents and teams.
//!
//! A run starts and is stored. A continue loads the run, checks that it is this runner's own,
//! decides its paused calls (reading only, so a refusal changes nothing), claims it, decides
//! again if another continue changed it meanwhile (giving it back if that fails), resumes it and
//! stores the outcome in one transaction. A recovery reclaims a run a continue left running and
//! goes on the same way. A team plugs its members in through its [`Roster`]: the member runs its
//! run waits on are read and decided with it, claimed once it is held, resumed before its
//! leader, and stored with it. An agent's roster is empty.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::delegation::{MemberPlan, Roster, Waiting};
use super::gate::{Decision, cancelling_rows, cancels_run};
use super::hold::Hold;
use super::runner::Runner;
use super::step::{Identity, RunRequest, Step, Writes, mark_failed};
use crate::approval::{Approval, ApprovalStatus, Principal};
use crate::error::{Error, Result};
use crate::events::{self, RunEvent};
use crate::models::Usage;
use crate::run::{Carried, RunOutput, RunRecord, RunRequirement, RunStatus};
use crate::store::Store;
use crate::trail::SYSTEM_PRINCIPAL;

/// One agent or team: its runner and its members.
pub(crate) struct Cycle {
    runner: Runner,
    roster: Arc<Roster>,
}

/// Everything a continue decides before it holds the run, reading only: what the run and its
/// waiting member runs resume with, and the member runs that are done, which the output
/// reports. A failed read changes nothing, and nothing is read once the outcome is stored.
struct Plan<'r> {
    decisions: Vec<Decision>,
    members: Vec<MemberPlan<'r>>,
    finished_members: Vec<RunRecord>,
}

impl Plan<'_> {
    /// True when a row expired under a policy that cancels the whole run.
    fn cancels_run(&self) -> bool {
        cancels_run(&self.decisions) || self.members.iter().any(MemberPlan::cancels_run)
    }

    /// The rows whose expiry cancels the whole run, its member runs' included.
    fn cancelling_rows(&self) -> Vec<Approval> {
        let members = self.members.iter().flat_map(|member| member.decisions());
        cancelling_rows(self.decisions.iter().chain(members)).cloned().collect()
    }
}

impl Cycle {
    /// The cycle of an agent.
    pub(crate) fn agent(runner: Runner) -> Self {
        Cycle { runner, roster: Arc::default() }
    }

    /// The cycle of a team: `leader` delegates to `roster`.
    pub(crate) fn team(leader: Runner, roster: Arc<Roster>) -> Self {
        Cycle { runner: leader.with_delegate(roster.clone()), roster }
    }

    pub(crate) fn runner(&self) -> &Runner {
        &self.runner
    }

    fn store(&self) -> &dyn Store {
        &*self.runner.store
    }

    /// Starts a run and stores where it stands: completed, paused with its rows, or failed. On a
    /// task of its own (see [`on_own_task`]): a caller that stops waiting (a request that timed
    /// out) does not abandon a run whose tools may have run.
    pub(crate) async fn run(self: &Arc<Self>, request: RunRequest, span: tracing::Span) -> Result<RunOutput> {
        let cycle = Arc::clone(self);
        on_own_task(span, async move {
            let step = cycle.runner.start(request).await;
            cycle.persist(step, &[]).await
        })
        .await
    }

    /// The tokens spent in session `session_id`: by every run of it, member runs included.
    pub(crate) async fn session_usage(&self, session_id: &str) -> Result<Usage> {
        let mut usage = Usage::default();
        for run in self.store().session_runs(session_id, usize::MAX).await? {
            usage += run.usage;
            for member_run_id in &run.member_run_ids {
                if let Some(member) = self.store().load_run(member_run_id).await? {
                    usage += member.usage;
                }
            }
        }
        Ok(usage)
    }

    /// Continues paused run `run_id` with the caller's `answers`, on a task of its own (see
    /// [`on_own_task`]).
    pub(crate) async fn continue_run(
        self: &Arc<Self>,
        run_id: &str,
        answers: Vec<RunRequirement>,
        span: tracing::Span,
    ) -> Result<RunOutput> {
        let cycle = Arc::clone(self);
        let run_id = run_id.to_owned();
        on_own_task(span, async move { cycle.continue_paused(&run_id, &answers).await }).await
    }

    /// Recovers run `run_id`, left running by a continue for longer than `stale_after`, on a
    /// task of its own (see [`on_own_task`]).
    pub(crate) async fn recover_run(
        self: &Arc<Self>,
        run_id: &str,
        stale_after: Duration,
        span: tracing::Span,
    ) -> Result<RunOutput> {
        let cycle = Arc::clone(self);
        let run_id = run_id.to_owned();
        on_own_task(span, async move { cycle.recover_stale(&run_id, stale_after).await }).await
    }

    async fn continue_paused(&self, run_id: &str, answers: &[RunRequirement]) -> Result<RunOutput> {
        let record = self.load_own(run_id).await?;
        if record.status != RunStatus::Paused {
            return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: record.status });
        }
        let plan = self.plan(&record, answers).await?;
        if plan.cancels_run() {
            return self.cancel(run_id, plan.cancelling_rows()).await;
        }
        let claimed = own_calls(self.store().claim_run(run_id).await?);
        continued(&claimed);
        // Another continue may have resumed and paused the run again between our read and our
        // claim; then decide again on what we now hold.
        let plan = if same_state(&claimed, &record) {
            plan
        } else {
            match self.plan(&claimed, answers).await {
                Ok(plan) if !plan.cancels_run() => plan,
                outcome => {
                    self.release(claimed, &[]).await?;
                    return match outcome {
                        Ok(plan) => self.cancel(run_id, plan.cancelling_rows()).await,
                        Err(error) => Err(error),
                    };
                }
            }
        };
        self.resume_held(claimed, plan, false).await
    }

    async fn recover_stale(&self, run_id: &str, stale_after: Duration) -> Result<RunOutput> {
        self.load_own(run_id).await?;
        let reclaimed = own_calls(self.store().reclaim_run(run_id, stale_after).await?);
        continued(&reclaimed);
        // Which member runs the continue had claimed is known only once all are read: until
        // then the team run stays running. Given back paused, it would wait on running member
        // runs, which neither a continue nor a recovery could resume.
        let waiting =
            match self.roster.waiting(self.store(), &reclaimed, &[RunStatus::Paused, RunStatus::Running]).await {
                Ok(waiting) => waiting,
                // A failed read may pass: the run stays running, to be recovered again.
                Err(error @ Error::Database(_)) => return Err(error),
                // Anything else (a member the team no longer has, a member run gone or finished)
                // would fail every recovery alike: the run ends in error.
                Err(error) => return Err(self.end_in_error(run_id, error).await),
            };
        let held_members: Vec<RunRecord> = waiting
            .iter()
            .filter(|waiting| waiting.record.status == RunStatus::Running)
            .map(|waiting| waiting.record.clone())
            .collect();
        let plan = match self.decide(&reclaimed, &[], waiting).await {
            Ok(plan) if plan.cancels_run() => {
                self.release(reclaimed, &held_members).await?;
                return self.cancel(run_id, plan.cancelling_rows()).await;
            }
            Ok(plan) => plan,
            // The dead continue may have run approved tools: given back paused, the run would
            // let a plain continue run them again. It stays running, to be recovered again.
            Err(error @ Error::Database(_)) => return Err(error),
            Err(error) => {
                self.release(reclaimed, &held_members).await?;
                return Err(error);
            }
        };
        self.resume_held(reclaimed, plan, true).await
    }

    /// Reads run `run_id` for this runner to resume: a run of its own, not a team member's.
    async fn load_own(&self, run_id: &str) -> Result<RunRecord> {
        let record = self.store().load_run(run_id).await?.ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        let identity = &self.runner.identity;
        if let Some(team_run_id) = &record.parent_run_id
            && record.agent_id == identity.agent_id
        {
            return Err(Error::MemberRun { run_id: run_id.to_owned(), team_run_id: team_run_id.clone() });
        }
        if !identity.owns(&record) {
            return Err(Error::ForeignRun { run_id: run_id.to_owned(), owner: Identity::describe_owner(&record) });
        }
        Ok(own_calls(record))
    }

    /// Decides everything the paused run `record` waits for, reading only.
    async fn plan(&self, record: &RunRecord, answers: &[RunRequirement]) -> Result<Plan<'_>> {
        let waiting = self.roster.waiting(self.store(), record, &[RunStatus::Paused]).await?;
        self.decide(record, answers, waiting).await
    }

    /// Decides the run's own calls and those of its `waiting` member runs, and reads the member
    /// runs that are done; reads only. A row that cancels the run on its expiry ends it whatever
    /// the other calls wait for, as on an agent's run: a plan that cancels the run is returned
    /// despite the others' errors (a pending row, say), for the run to be cancelled.
    async fn decide<'r>(
        &'r self,
        record: &RunRecord,
        answers: &[RunRequirement],
        waiting: Vec<Waiting<'r>>,
    ) -> Result<Plan<'r>> {
        let (member_answers, own_answers): (Vec<&RunRequirement>, Vec<&RunRequirement>) =
            answers.iter().partition(|answer| answer.member.is_some());
        let own_answers: Vec<RunRequirement> = own_answers.into_iter().cloned().collect();
        let decisions = self.runner.decide(record, &own_answers).await;
        let members = self.roster.decide(record, &member_answers, waiting).await;
        let (decisions, members) = match (decisions, members) {
            (Ok(decisions), Ok(members)) => (decisions, members),
            (decisions, members)
                if decisions.as_deref().is_ok_and(cancels_run)
                    || members.as_deref().is_ok_and(|members| members.iter().any(MemberPlan::cancels_run)) =>
            {
                let (decisions, members) = (decisions.unwrap_or_default(), members.unwrap_or_default());
                return Ok(Plan { decisions, members, finished_members: Vec::new() });
            }
            (Err(error), _) | (_, Err(error)) => return Err(error),
        };
        let finished_members = Roster::finished(self.store(), record, &members).await?;
        Ok(Plan { decisions, members, finished_members })
    }

    /// Resumes a run this process holds: claims the member runs it waits on, resumes them and
    /// then the run, and stores the outcome. If a member run cannot be claimed, the run and
    /// every member run held go back to paused. A `recovery`'s executions say so on the trail.
    async fn resume_held(&self, mut record: RunRecord, plan: Plan<'_>, recovery: bool) -> Result<RunOutput> {
        let Plan { decisions, members, finished_members } = plan;
        // The claim's stamp, which its renewals move on while the run resumes.
        let held_at = record.updated_at;
        // What a recovery runs of the calls the dead continue held may have run before.
        let held_rows: HashSet<String> = decisions
            .iter()
            .chain(members.iter().flat_map(MemberPlan::decisions))
            .filter_map(|decision| decision.row.as_ref().map(|row| row.id.clone()))
            .collect();
        if let Err((error, held)) = Roster::claim(self.store(), &members).await {
            self.release(record, &held).await?;
            return Err(error);
        }
        let run_id = record.run_id.clone();
        let resumed = async {
            let mut writes = Writes::default();
            Roster::resume(&mut record, members, &mut writes).await;
            self.runner.resume(record, decisions, writes).await
        };
        let mut step = Hold::new(self.store(), &run_id, held_at).keep(resumed).await?;
        for execution in &mut step.writes.executions {
            execution.recovered = recovery && held_rows.contains(&execution.approval_id);
        }
        self.persist(step, &finished_members).await
    }

    /// Cancels paused run `run_id` because its rows `expired` under a policy that says so; the
    /// store cancels the rows it still waits on with it. The output names the expired rows, as
    /// it names the rows that decided the calls of a run that goes on.
    async fn cancel(&self, run_id: &str, expired: Vec<Approval>) -> Result<RunOutput> {
        let mut run = self.store().cancel_run(run_id, &Principal::new(SYSTEM_PRINCIPAL)).await?;
        run.approvals.extend(expired);
        Ok(RunOutput::from(run))
    }

    /// Gives held runs back, paused as they were.
    async fn release(&self, run: RunRecord, members: &[RunRecord]) -> Result<()> {
        let runs: Vec<RunRecord> = members
            .iter()
            .cloned()
            .chain(std::iter::once(run))
            .map(|run| RunRecord { status: RunStatus::Paused, ..run })
            .collect();
        self.store().save_runs(&runs, &[], &[]).await
    }

    /// Ends run `run_id` in error as it stands stored, when what holds it would fail every
    /// recovery alike (`refused`): a store refused to take what its step left (a value past
    /// kern's limits that no check before caught), or the team lacks a member it waits on. Left
    /// running, it would be recovered, its tools run again, and refused again, for ever. The
    /// member runs of a team run that its continue held end with it: no continue or recovery
    /// could take them once their team run has ended. Returns the refusal; a run not stored, or
    /// not running, is left as it is.
    async fn end_in_error(&self, run_id: &str, refused: Error) -> Error {
        let stored = match self.store().load_run(run_id).await {
            Ok(Some(stored)) if stored.status == RunStatus::Running => stored,
            _ => return refused,
        };
        let mut runs = match self.held_members(&stored).await {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(run_id, %error, "the member runs of a run whose outcome was refused could not be read");
                return refused;
            }
        };
        let now = crate::now();
        let reason = refused.to_string();
        for member in &mut runs {
            mark_failed(member, &format!("its team run {run_id} ended in error: {reason}"));
            member.updated_at = now;
        }
        let mut run = stored;
        mark_failed(&mut run, &reason);
        run.updated_at = now;
        runs.push(run);
        if let Err(error) = self.store().save_runs(&runs, &[], &[]).await {
            tracing::warn!(run_id, %error, "a run whose outcome was refused could not be ended in error");
        }
        refused
    }

    /// The member runs of `run` that stand running: those its continue held.
    async fn held_members(&self, run: &RunRecord) -> Result<Vec<RunRecord>> {
        let mut held = Vec::new();
        for member_run_id in &run.member_run_ids {
            if let Some(member) = self.store().load_run(member_run_id).await?
                && member.status == RunStatus::Running
                && member.parent_run_id.as_deref() == Some(run.run_id.as_str())
            {
                held.push(member);
            }
        }
        Ok(held)
    }

    /// Stores a step (the run, its member runs and new rows in one transaction), then reports
    /// it with every member run of the run: those the step wrote and, from before it,
    /// `finished_members`.
    async fn persist(&self, step: Step, finished_members: &[RunRecord]) -> Result<RunOutput> {
        let Step { record, writes: Writes { approvals, member_runs, executions }, error } = step;
        // Member runs first, then the run itself: moved in and back out, not copied.
        let mut runs = member_runs;
        runs.push(record);
        let saved = self.store().save_runs(&runs, &approvals, &executions).await;
        if let Err(refused @ Error::InvalidInput { .. }) = saved {
            let run_id = &runs.last().expect("the run itself is last").run_id;
            return Err(self.end_in_error(run_id, refused).await);
        }
        saved?;
        for row in approvals.iter().filter(|row| row.status == ApprovalStatus::Pending) {
            events::emit(|| RunEvent::ApprovalRequested(Box::new(row.clone())));
        }
        if let Some(error) = error {
            return Err(error);
        }
        let record = runs.pop().expect("the run itself is last");
        // Every member run of a team run is one of the two: the step wrote those it started or
        // resumed, and the continue read the others before it claimed the run.
        let member_runs = record
            .member_run_ids
            .iter()
            .filter_map(|run_id| runs.iter().chain(finished_members).find(|r| &r.run_id == run_id))
            .map(|run| RunOutput::from(run.clone()))
            .collect();
        Ok(RunOutput { member_runs, ..RunOutput::from(record) })
    }
}

/// Reports that the run `claimed` resumes.
fn continued(claimed: &RunRecord) {
    events::emit(|| RunEvent::RunContinued { run_id: claimed.run_id.clone(), session_id: claimed.session_id.clone() });
}

/// The run with only its own calls as requirements. Team runs stored by earlier releases also
/// listed their members' calls there; those are read from the member runs themselves.
fn own_calls(mut record: RunRecord) -> RunRecord {
    record.requirements.retain(|requirement| requirement.member.is_none());
    record
}

/// True when `claimed` holds the state `read` was decided on: everything but the status and
/// the time of the claim. (Compared field by field, so that a new field cannot be missed.)
fn same_state(claimed: &RunRecord, read: &RunRecord) -> bool {
    let RunRecord {
        run_id,
        session_id,
        user_id,
        agent_id,
        team_id,
        parent_run_id,
        status: _,
        input,
        messages,
        tools,
        requirements,
        approvals,
        content,
        metadata,
        usage,
        member_run_ids,
        delegations,
        created_at,
        updated_at: _,
    } = read;
    claimed.run_id == *run_id
        && claimed.session_id == *session_id
        && claimed.user_id == *user_id
        && claimed.agent_id == *agent_id
        && claimed.team_id == *team_id
        && claimed.parent_run_id == *parent_run_id
        && claimed.input == *input
        && claimed.messages == *messages
        && claimed.tools == *tools
        && claimed.requirements == *requirements
        && claimed.approvals == *approvals
        && claimed.content == *content
        && claimed.metadata == *metadata
        && claimed.usage == *usage
        && claimed.member_run_ids == *member_run_ids
        && claimed.delegations == *delegations
        && claimed.created_at == *created_at
}

/// Runs a run, a continue or a recovery on a task of its own, so that a caller that stops
/// waiting cannot abandon it half-way: once started or claimed, a run is carried through and
/// stored. It is counted until then ([`run::settled`](crate::run::settled)).
async fn on_own_task<T: Send + 'static>(
    span: tracing::Span,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    // Made here, where it takes the caller's event stream; counted for as long as it runs.
    let work = events::carried(work.instrument(span));
    let counted = Carried::start();
    let task = tokio::spawn(async move {
        let _counted = counted;
        work.await
    });
    task.await.map_err(|join| Error::Aborted(join.to_string()))?
}
