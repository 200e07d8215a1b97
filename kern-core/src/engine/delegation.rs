//! Delegation: a team leader's built-in tools that hand a task to members.
//!
//! A delegation starts each chosen member's run as a child run of the team run. A member
//! that finishes answers the leader's call; a member that pauses pauses the team run with it,
//! its requirements shown on the team run (naming the member), until the team continues.

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::{RunRequest, Runner, Step, Writes, complete, parse_arguments};
use crate::BoxFuture;
use crate::models::{ToolCall, ToolSchema};
use crate::run::{Delegation, MemberRef, MemberRun, RunRecord, RunStatus, ToolCallStatus, ToolExecution};
use crate::tools::ToolError;

/// The leader's tool that hands a task to one member.
pub(crate) const DELEGATE_TO_MEMBER: &str = "delegate_task_to_member";
/// The leader's tool that hands a task to every member at once.
pub(crate) const DELEGATE_TO_ALL: &str = "delegate_task_to_all_members";

/// A team member: an agent's runner acting inside the team, on the team's store.
#[derive(Clone)]
pub(crate) struct Member {
    pub(crate) runner: Runner,
}

impl Member {
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

/// The members a leader can delegate to.
pub(crate) struct Roster {
    members: Vec<Member>,
}

impl Roster {
    pub(crate) fn new(members: Vec<Member>) -> Self {
        Roster { members }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id() == id)
    }

    /// True for the names of the delegation tools.
    pub(crate) fn handles(tool_name: &str) -> bool {
        tool_name == DELEGATE_TO_MEMBER || tool_name == DELEGATE_TO_ALL
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
    pub(crate) async fn delegate(&self, record: &mut RunRecord, call: &ToolCall, writes: &mut Writes) {
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
            Err(error) => return complete(record, &call.id, Err(error)),
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
}

/// Records a member step on the team run: its run, its rows, and (when it paused) its
/// requirements, labelled with the member. Returns the leader's view of it.
pub(crate) fn track(record: &mut RunRecord, member: &Member, step: Step, writes: &mut Writes) -> MemberRun {
    let reference = member.reference(&step.record.run_id);
    if !record.member_run_ids.contains(&step.record.run_id) {
        record.member_run_ids.push(step.record.run_id.clone());
    }
    if step.record.status == RunStatus::Paused {
        record.requirements.extend(step.record.requirements.iter().cloned().map(|mut requirement| {
            requirement.member = Some(reference.clone());
            requirement
        }));
    }
    let content = match &step.error {
        Some(error) => Some(format!("error: {error}")),
        None => step.record.content.clone(),
    };
    let run = MemberRun { member: reference, status: step.record.status, content };
    writes.approvals.extend(step.writes.approvals);
    writes.member_runs.push(step.record);
    run
}

/// Answers every delegation whose member runs have all finished.
pub(crate) fn settle(record: &mut RunRecord) {
    let (done, waiting): (Vec<Delegation>, Vec<Delegation>) = std::mem::take(&mut record.delegations)
        .into_iter()
        .partition(|d| d.runs.iter().all(|run| run.status != RunStatus::Paused));
    record.delegations = waiting;
    for delegation in done {
        let answer = match delegation.runs.as_slice() {
            [single] => single.content.clone().unwrap_or_default(),
            runs => runs
                .iter()
                .map(|run| format!("{}: {}", run.member.agent_id, run.content.as_deref().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        complete(record, &delegation.tool_call_id, Ok(Value::String(answer)));
    }
}
