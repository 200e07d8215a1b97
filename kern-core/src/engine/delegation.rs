//! A team's members: the leader's built-in tools that hand them a task, and their runs in a
//! continue.
//!
//! A delegation starts each chosen member's run as a child run of the team run. A member that
//! finishes answers the leader's call; a member that pauses pauses the team run with it, and the
//! leader's [`Delegation`] record keeps what the member waits for, until the team continues. A
//! continue reads and decides the member runs with the team run, claims them once it holds the
//! team run, and resumes them before the leader: the [`Roster`] is how the cycle reaches them.

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::gate::{self, Decision};
use super::runner::{Delegate, Runner};
use super::step::{RunRequest, Step, Writes, complete_as, parse_arguments, refuse_unrun};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::events::{self, RunEvent};
use crate::models::{ToolCall, ToolSchema};
use crate::run::{
    Delegation, MemberRef, MemberRun, RunRecord, RunRequirement, RunStatus, ToolCallStatus, ToolExecution,
};
use crate::store::Store;
use crate::tools::ToolError;

/// The leader's tool that hands a task to one member.
const DELEGATE_TO_MEMBER: &str = "delegate_task_to_member";
/// The leader's tool that hands a task to every member at once.
const DELEGATE_TO_ALL: &str = "delegate_task_to_all_members";

/// A team member: an agent's runner acting inside the team, on the team's store.
pub(crate) struct Member {
    runner: Runner,
}

impl Member {
    pub(crate) fn new(runner: Runner) -> Self {
        Member { runner }
    }

    pub(crate) fn id(&self) -> &str {
        self.runner.identity.agent_id.as_deref().unwrap_or_default()
    }

    fn reference(&self, run_id: &str) -> MemberRef {
        MemberRef {
            agent_id: self.id().to_owned(),
            agent_name: self.runner.identity.name.clone(),
            run_id: run_id.to_owned(),
        }
    }

    /// Boxed so the loop, which may delegate, can start a member's loop.
    fn start(&self, request: RunRequest) -> BoxFuture<'_, Step> {
        Box::pin(self.runner.start(request))
    }
}

/// The members a leader can delegate to; an agent's roster is empty.
#[derive(Default)]
pub(crate) struct Roster {
    members: Vec<Member>,
}

/// A member run the team run waits on, as stored, and the member that resumes it.
pub(crate) struct Waiting<'r> {
    member: &'r Member,
    pub(crate) record: RunRecord,
}

/// A member run the team run waits on, decided and ready to resume once the team holds it.
pub(crate) struct MemberPlan<'r> {
    member: &'r Member,
    record: RunRecord,
    decisions: Vec<Decision>,
}

impl MemberPlan<'_> {
    /// The decisions of the member run's calls.
    pub(crate) fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// True when a row of the member run expired under a policy that cancels the whole run.
    pub(crate) fn cancels_run(&self) -> bool {
        gate::cancels_run(&self.decisions)
    }
}

impl Roster {
    /// A roster of `members`; [`Error::DuplicateMember`] when two share an id.
    pub(crate) fn new(members: Vec<Member>) -> Result<Self> {
        for (index, member) in members.iter().enumerate() {
            if members[..index].iter().any(|earlier| earlier.id() == member.id()) {
                return Err(Error::DuplicateMember(member.id().to_owned()));
            }
        }
        Ok(Roster { members })
    }

    fn get(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id() == id)
    }

    /// The delegation tools as the leader's model sees them.
    pub(crate) fn schemas(&self) -> Vec<ToolSchema> {
        let ids: Vec<&str> = self.members.iter().map(Member::id).collect();
        let listing = self
            .members
            .iter()
            .map(|m| match &m.runner.identity.name {
                Some(name) => format!("`{}` ({name})", m.id()),
                None => format!("`{}`", m.id()),
            })
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            ToolSchema {
                name: DELEGATE_TO_MEMBER.to_owned(),
                description: format!("Hand a task to one team member and get its answer. Members: {listing}."),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "member_id": {"type": "string", "enum": ids, "description": "The member to ask."},
                        "task": {"type": "string", "description": "What the member should do."}
                    },
                    "required": ["member_id", "task"],
                    "additionalProperties": false
                }),
            },
            ToolSchema {
                name: DELEGATE_TO_ALL.to_owned(),
                description: format!(
                    "Hand one task to every team member at once and get all answers. Members: {listing}."
                ),
                parameters: json!({
                    "type": "object",
                    "properties": {"task": {"type": "string", "description": "What every member should do."}},
                    "required": ["task"],
                    "additionalProperties": false
                }),
            },
        ]
    }

    /// Carries out a delegation call: starts the member runs (concurrently), records them,
    /// and answers the call unless a member paused.
    async fn delegate_call(&self, record: &mut RunRecord, call: &ToolCall, writes: &mut Writes) {
        record.tools.push(ToolExecution {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            tool_args: Value::String(call.arguments.clone()),
            status: ToolCallStatus::Paused,
            result: None,
            approval_id: None,
        });
        let (members, task) = match self.targets(call) {
            Ok(targets) => targets,
            Err(error) => return refuse_unrun(record, &call.id, error),
        };
        if let Some(execution) = record.tools.last_mut() {
            execution.tool_args = parse_arguments(&call.arguments).unwrap_or(Value::Null);
        }
        let steps = join_all(members.iter().map(|member| {
            member.start(RunRequest {
                input: task.clone(),
                session_id: Some(record.session_id.clone()),
                user_id: record.user_id.clone(),
                parent_run_id: Some(record.run_id.clone()),
            })
        }))
        .await;
        let mut runs = Vec::new();
        for (member, step) in members.iter().zip(steps) {
            runs.push(track(record, member, step, writes));
        }
        record.delegations.push(Delegation { tool_call_id: call.id.clone(), runs });
        settle(record);
    }

    fn targets(&self, call: &ToolCall) -> Result<(Vec<&Member>, String), ToolError> {
        let args = parse_arguments(&call.arguments)?;
        let text = |key: &str| {
            args.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ToolError::InvalidArguments(format!("missing string field `{key}`")))
        };
        let task = text("task")?;
        if call.name == DELEGATE_TO_ALL {
            return Ok((self.members.iter().collect(), task));
        }
        let id = text("member_id")?;
        let member = self.get(&id).ok_or_else(|| {
            let ids: Vec<&str> = self.members.iter().map(Member::id).collect();
            ToolError::InvalidArguments(format!("unknown member `{id}`; members: {}", ids.join(", ")))
        })?;
        Ok((vec![member], task))
    }

    /// Reads the member runs the team run `record` waits on; each must be in one of the
    /// `resumable` statuses, else [`Error::RunNotPaused`].
    pub(crate) async fn waiting(
        &self,
        store: &dyn Store,
        record: &RunRecord,
        resumable: &[RunStatus],
    ) -> Result<Vec<Waiting<'_>>> {
        let references = record.delegations.iter().flat_map(|d| &d.runs).filter(|run| run.status == RunStatus::Paused);
        let mut waiting = Vec::new();
        for reference in references.map(|run| &run.member) {
            let member =
                self.get(&reference.agent_id).ok_or_else(|| Error::UnknownMember(reference.agent_id.clone()))?;
            let record =
                store.load_run(&reference.run_id).await?.ok_or_else(|| Error::RunNotFound(reference.run_id.clone()))?;
            if !resumable.contains(&record.status) {
                return Err(Error::RunNotPaused { run_id: record.run_id, status: record.status });
            }
            waiting.push(Waiting { member, record });
        }
        Ok(waiting)
    }

    /// Decides the calls of the `waiting` member runs of team run `record` from their rows and
    /// the caller's `answers` to them; reads only. An answer for no waiting member run is
    /// [`Error::UnknownRequirement`]. Every member run is decided, whatever another's outcome:
    /// a row that cancels the run on its expiry ends it whatever the other calls wait for, so
    /// plans that cancel it are returned (those of the members decided) despite another's error.
    pub(crate) async fn decide<'r>(
        &self,
        record: &RunRecord,
        answers: &[&RunRequirement],
        waiting: Vec<Waiting<'r>>,
    ) -> Result<Vec<MemberPlan<'r>>> {
        let answered_run = |answer: &RunRequirement| answer.member.as_ref().map(|m| m.run_id.clone());
        if let Some(stray) = answers
            .iter()
            .find(|answer| answered_run(answer).is_none_or(|run_id| !waiting.iter().any(|w| w.record.run_id == run_id)))
        {
            return Err(Error::UnknownRequirement {
                run_id: record.run_id.clone(),
                tool_call_id: stray.tool_call_id().to_owned(),
            });
        }
        let mut plans = Vec::with_capacity(waiting.len());
        let mut first_error = None;
        for Waiting { member, record } in waiting {
            let own: Vec<RunRequirement> = answers
                .iter()
                .filter(|answer| answered_run(answer).as_deref() == Some(record.run_id.as_str()))
                .map(|answer| RunRequirement { member: None, ..(*answer).clone() })
                .collect();
            match member.runner.decide(&record, &own).await {
                Ok(decisions) => plans.push(MemberPlan { member, record, decisions }),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if !plans.iter().any(MemberPlan::cancels_run) => Err(error),
            _ => Ok(plans),
        }
    }

    /// Reads the member runs of team run `record` that are done (those not in `plans`), which
    /// the output reports.
    pub(crate) async fn finished(
        store: &dyn Store,
        record: &RunRecord,
        plans: &[MemberPlan<'_>],
    ) -> Result<Vec<RunRecord>> {
        let mut finished = Vec::new();
        for run_id in record.member_run_ids.iter().filter(|id| !plans.iter().any(|plan| &plan.record.run_id == *id)) {
            finished.push(store.load_run(run_id).await?.ok_or_else(|| Error::RunNotFound(run_id.clone()))?);
        }
        Ok(finished)
    }

    /// Claims the planned member runs that are still paused, for a continue that holds their
    /// team run (those a crashed continue left running are held with the team run already).
    /// Returns every member run now held; on a refused claim, the error and the runs held so
    /// far, for the caller to give back.
    pub(crate) async fn claim(
        store: &dyn Store,
        plans: &[MemberPlan<'_>],
    ) -> std::result::Result<Vec<RunRecord>, (Error, Vec<RunRecord>)> {
        let mut held: Vec<RunRecord> = plans
            .iter()
            .filter(|plan| plan.record.status == RunStatus::Running)
            .map(|plan| plan.record.clone())
            .collect();
        for plan in plans.iter().filter(|plan| plan.record.status == RunStatus::Paused) {
            match store.claim_run(&plan.record.run_id).await {
                Ok(_) => held.push(plan.record.clone()),
                Err(error) => return Err((error, held)),
            }
        }
        Ok(held)
    }

    /// Resumes the planned member runs, records them on the team run `record`, and answers the
    /// delegations they finish.
    pub(crate) async fn resume(record: &mut RunRecord, plans: Vec<MemberPlan<'_>>, writes: &mut Writes) {
        for MemberPlan { member, record: member_record, decisions } in plans {
            events::emit(|| RunEvent::MemberRunContinued {
                run_id: record.run_id.clone(),
                member_run_id: member_record.run_id.clone(),
                agent_id: member.id().to_owned(),
            });
            let step = member.runner.resume(member_record, decisions, Writes::default()).await;
            let run = track(record, member, step, writes);
            for delegation in &mut record.delegations {
                for slot in delegation.runs.iter_mut().filter(|r| r.member.run_id == run.member.run_id) {
                    *slot = run.clone();
                }
            }
        }
        settle(record);
    }
}

impl Delegate for Roster {
    fn handles(&self, tool_name: &str) -> bool {
        tool_name == DELEGATE_TO_MEMBER || tool_name == DELEGATE_TO_ALL
    }

    fn delegate<'a>(
        &'a self,
        record: &'a mut RunRecord,
        call: &'a ToolCall,
        writes: &'a mut Writes,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.delegate_call(record, call, writes))
    }
}

/// Records a member step on the team run: its run, its rows, and (when it paused) what it
/// waits for, labelled with the member. Returns the leader's view of it.
fn track(record: &mut RunRecord, member: &Member, step: Step, writes: &mut Writes) -> MemberRun {
    let reference = member.reference(&step.record.run_id);
    events::emit(|| RunEvent::MemberRunFinished {
        run_id: record.run_id.clone(),
        member_run_id: step.record.run_id.clone(),
        agent_id: reference.agent_id.clone(),
        status: step.record.status,
    });
    if !record.member_run_ids.contains(&step.record.run_id) {
        record.member_run_ids.push(step.record.run_id.clone());
    }
    let requirements = match step.record.status {
        RunStatus::Paused => step
            .record
            .requirements
            .iter()
            .cloned()
            .map(|requirement| RunRequirement { member: Some(reference.clone()), ..requirement })
            .collect(),
        _ => Vec::new(),
    };
    let content = match &step.error {
        Some(error) => Some(format!("error: {error}")),
        None => step.record.content.clone(),
    };
    let run = MemberRun { member: reference, status: step.record.status, content, requirements };
    writes.approvals.extend(step.writes.approvals);
    writes.executions.extend(step.writes.executions);
    writes.member_runs.push(step.record);
    run
}

/// Answers every delegation whose member runs have all finished.
fn settle(record: &mut RunRecord) {
    let (done, waiting): (Vec<Delegation>, Vec<Delegation>) = std::mem::take(&mut record.delegations)
        .into_iter()
        .partition(|d| d.runs.iter().all(|run| run.status != RunStatus::Paused));
    record.delegations = waiting;
    for delegation in done {
        // A delegation of which a member run ended in error, or was cancelled, did not do its
        // work: the call is recorded failed, as a tool's error is.
        let failed = delegation.runs.iter().any(|run| matches!(run.status, RunStatus::Error | RunStatus::Cancelled));
        let status = if failed { ToolCallStatus::Failed } else { ToolCallStatus::Succeeded };
        let answer = match delegation.runs.as_slice() {
            [single] => single.content.clone().unwrap_or_default(),
            runs => runs
                .iter()
                .map(|run| format!("{}: {}", run.member.agent_id, run.content.as_deref().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        complete_as(record, &delegation.tool_call_id, status, Value::String(answer));
    }
}
