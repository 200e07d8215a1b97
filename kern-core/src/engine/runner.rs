//! The run loop shared by agents and team leaders.
//!
//! A [`Runner`] drives one run: ask the model, run the calls that need nobody (concurrently),
//! pause on the ones that need a person, and on continue apply what was decided. It never
//! writes to the store: each step returns a [`Step`] (the run state and the approval rows to
//! insert) for the continue cycle to persist in one transaction.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::join_all;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::gate::{self, Decision, Refusal, Verdict};
use super::hold;
use super::settings::Checked;
use super::step::{
    Identity, RunRequest, Step, Writes, complete, emit_outcome, order_answers, panic_message, parse_arguments,
    refuse_unrun, settle_unrun,
};
use super::toolbox::Toolbox;
use crate::BoxFuture;
use crate::approval::{ApprovalType, PauseType, SourceType};
use crate::error::{Error, Result};
use crate::events::{self, RunEvent};
use crate::models::{Delta, Message, Model, ModelError, ModelRequest, Role, ToolCall};
use crate::run::{RunQuery, RunRecord, RunRequirement, RunStatus, ToolCallStatus, ToolExecution};
use crate::store::Store;
use crate::tools::{RunContext, Tool, ToolDefinition, ToolError};
use crate::trail::{self, Execution};

/// Built-in tools the loop hands to someone else instead of its toolbox: a team leader's
/// delegation to its members. Defined here, where it is called, so that the loop does not
/// depend on how a team works.
pub(crate) trait Delegate: Send + Sync {
    /// True for the names of the tools it carries out.
    fn handles(&self, tool_name: &str) -> bool;

    /// Carries out `call` on `record`; the runs it starts and their rows go to `writes`.
    fn delegate<'a>(
        &'a self,
        record: &'a mut RunRecord,
        call: &'a ToolCall,
        writes: &'a mut Writes,
    ) -> BoxFuture<'a, ()>;
}

/// A tool call ready to run.
struct Invocation {
    tool: Arc<dyn Tool>,
    tool_name: String,
    context: RunContext,
    args: Value,
    /// The model's arguments, when an approver changed them: the model is told.
    edited_from: Option<Value>,
    /// The row whose trail records the call's outcome: the row that approved it, the audit row
    /// of a call its condition let run at once (made with the call, in the turn that runs it,
    /// and named by its context), or the audit row of a call its caller confirmed (which its
    /// context does not name: a confirmation given again after a crash makes a new audit row,
    /// and an idempotency key from it would not be the same).
    recorded_under: Option<String>,
}

/// The loop of one agent (or team leader) over its model and tools.
#[derive(Clone)]
pub(crate) struct Runner {
    pub(crate) identity: Identity,
    model: Arc<dyn Model>,
    instructions: Option<String>,
    pub(crate) tools: Toolbox,
    pub(crate) store: Arc<dyn Store>,
    max_rounds: usize,
    max_calls_per_turn: usize,
    history_runs: usize,
    /// Who carries out the leader's delegation calls; `None` for an agent.
    delegate: Option<Arc<dyn Delegate>>,
}

impl Runner {
    /// The runner of an agent or a team leader (`source_type`) with checked settings.
    pub(crate) fn new(source_type: SourceType, checked: Checked) -> Self {
        let id = Some(checked.id);
        let (agent_id, team_id) = match source_type {
            SourceType::Agent => (id, None),
            SourceType::Team => (None, id),
        };
        Runner {
            identity: Identity { source_type, name: checked.name, agent_id, team_id },
            model: checked.model,
            instructions: checked.instructions,
            tools: checked.tools,
            store: checked.store,
            max_rounds: checked.max_rounds,
            max_calls_per_turn: checked.max_calls_per_turn,
            history_runs: checked.history_runs,
            delegate: None,
        }
    }

    /// The same runner, with `delegate` carrying out the delegation calls its tools include.
    pub(crate) fn with_delegate(self, delegate: Arc<dyn Delegate>) -> Self {
        Runner { delegate: Some(delegate), ..self }
    }

    /// The same runner acting inside team `team_id`, on the team's store.
    pub(crate) fn in_team(&self, team_id: &str, store: Arc<dyn Store>) -> Self {
        let mut runner = self.clone();
        runner.identity.team_id = Some(team_id.to_owned());
        runner.store = store;
        runner
    }

    /// Starts a run and drives it until it completes, pauses or fails.
    pub(crate) async fn start(&self, request: RunRequest) -> Step {
        let now = crate::now();
        let mut record = RunRecord {
            run_id: crate::new_id(),
            session_id: request.session_id.unwrap_or_else(crate::new_id),
            user_id: request.user_id,
            agent_id: self.identity.agent_id.clone(),
            team_id: self.identity.team_id.clone(),
            parent_run_id: request.parent_run_id,
            status: RunStatus::Running,
            input: request.input,
            messages: Vec::new(),
            tools: Vec::new(),
            requirements: Vec::new(),
            approvals: Vec::new(),
            content: None,
            metadata: Map::new(),
            usage: Default::default(),
            member_run_ids: Vec::new(),
            delegations: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        match &record.parent_run_id {
            None => events::emit(|| RunEvent::RunStarted {
                run_id: record.run_id.clone(),
                session_id: record.session_id.clone(),
            }),
            Some(team_run_id) => events::emit(|| RunEvent::MemberRunStarted {
                run_id: team_run_id.clone(),
                member_run_id: record.run_id.clone(),
                agent_id: self.identity.agent_id.clone().unwrap_or_default(),
            }),
        }
        let mut writes = Writes::default();
        // A panic (in a model, say) ends the run as failed, and it is stored so: tools may
        // have run before it.
        let result = AssertUnwindSafe(async {
            record.messages = self.history(&record).await?;
            record.messages.push(Message::user(record.input.clone()));
            self.advance(&mut record, &mut writes).await
        })
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(Error::Aborted(format!("the run panicked: {}", panic_message(panic.as_ref())))));
        Step::finish(record, writes, result)
    }

    /// Decides the paused calls of `record` from their stored rows and the caller's
    /// requirements. Reads only, so an error here leaves the run as it was.
    pub(crate) async fn decide(&self, record: &RunRecord, caller: &[RunRequirement]) -> Result<Vec<Decision>> {
        let mut rows = HashMap::new();
        for id in gate::gating_row_ids(record, &self.tools) {
            if let Some(row) = self.store.get_approval(id).await? {
                rows.insert(id.to_owned(), row);
            }
        }
        gate::decide(&self.identity, &self.tools, record, rows, caller, crate::now())
    }

    /// Applies `decisions` to a claimed run and drives it on once nothing waits any more.
    ///
    /// `writes` carries what the caller already has to persist with the run (a team's
    /// resumed member runs).
    pub(crate) async fn resume(&self, mut record: RunRecord, decisions: Vec<Decision>, mut writes: Writes) -> Step {
        // A panic (in a model, say) must not leave the claimed run `running` for good: the run
        // ends as failed, and is stored so with what it did until then, as a started run is:
        // approved tools may have run, and their outcomes belong on the run and its rows' trail.
        let result = AssertUnwindSafe(self.resume_claimed(&mut record, decisions, &mut writes))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(Error::Aborted(format!("the run panicked: {}", panic_message(panic.as_ref()))))
            });
        Step::finish(record, writes, result)
    }

    async fn resume_claimed(
        &self,
        record: &mut RunRecord,
        decisions: Vec<Decision>,
        writes: &mut Writes,
    ) -> Result<()> {
        // A team's member runs resume one after another: one whose run was taken over meanwhile
        // runs none of its approved calls (the taker runs them).
        if hold::taken_over() {
            return Err(Error::RunTakenOver { run_id: record.run_id.clone() });
        }
        record.status = RunStatus::Running;
        self.apply(record, decisions, writes).await;
        if record.requirements.is_empty() && record.delegations.is_empty() {
            self.advance(record, writes).await
        } else {
            record.status = RunStatus::Paused;
            Ok(())
        }
    }

    /// The latest completed runs this runner made in the session of `record`, for its user, as
    /// question and answer pairs, oldest first: another agent's, team's or user's turns in the
    /// same session are not this conversation, and a run that did not complete has no answer.
    async fn history(&self, record: &RunRecord) -> Result<Vec<Message>> {
        if self.history_runs == 0 {
            return Ok(Vec::new());
        }
        let query = RunQuery {
            status: Some(RunStatus::Completed),
            agent_id: self.identity.agent_id.clone(),
            team_id: self.identity.team_id.clone(),
            user_id: record.user_id.clone(),
            session_id: Some(record.session_id.clone()),
            limit: Some(u32::try_from(self.history_runs).unwrap_or(u32::MAX)),
            ..RunQuery::default()
        };
        let newest_first = self.store.list_runs(&query).await?.items;
        Ok(newest_first
            .into_iter()
            .rev()
            .flat_map(|run| {
                let answer = run.content.map(Message::assistant);
                std::iter::once(Message::user(run.input)).chain(answer)
            })
            .collect())
    }

    /// Model, then tools, until a final answer, a pause, or the round limit; a continue whose
    /// run was taken over meanwhile starts neither model turn nor tool more (see
    /// [`hold::taken_over`]).
    async fn advance(&self, record: &mut RunRecord, writes: &mut Writes) -> Result<()> {
        let taken_over = |record: &RunRecord| Error::RunTakenOver { run_id: record.run_id.clone() };
        loop {
            if hold::taken_over() {
                return Err(taken_over(record));
            }
            order_answers(&mut record.messages);
            // The conversation is copied only to put the instructions first.
            let with_instructions: Vec<Message>;
            let messages = match self.instructions.as_deref() {
                None => record.messages.as_slice(),
                Some(instructions) => {
                    with_instructions =
                        std::iter::once(Message::system(instructions)).chain(record.messages.iter().cloned()).collect();
                    with_instructions.as_slice()
                }
            };
            let request = ModelRequest { messages, tools: self.tools.schemas() };
            let span = tracing::debug_span!("kern.model", model = self.model.id(), run_id = %record.run_id);
            let response = if events::listening() {
                let run_id = record.run_id.as_str();
                let report = move |delta: Delta<'_>| {
                    events::emit(|| match delta {
                        Delta::Text(text) => {
                            RunEvent::ContentDelta { run_id: run_id.to_owned(), text: text.to_owned() }
                        }
                        Delta::Reasoning(text) => {
                            RunEvent::ReasoningDelta { run_id: run_id.to_owned(), text: text.to_owned() }
                        }
                    });
                };
                self.model.respond_streaming(request, &report).instrument(span).await
            } else {
                self.model.respond(request).instrument(span).await
            };
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    // An answer cut short cost its tokens all the same.
                    if let ModelError::CutShort { usage, .. } = &error {
                        record.usage += *usage;
                    }
                    return Err(error.into());
                }
            };
            record.usage += response.usage;
            let mut message = response.message;
            // Providers number calls per response or per conversation, so their ids repeat
            // across turns and between a team's runs; rows and answers need ids that do not.
            for call in &mut message.tool_calls {
                call.id = format!("call_{}", uuid::Uuid::now_v7().simple());
            }
            let calls = message.tool_calls.clone();
            let text = message.content.clone();
            record.messages.push(message);
            if calls.is_empty() {
                record.content = text;
                record.status = RunStatus::Completed;
                return Ok(());
            }
            let rounds =
                record.messages.iter().filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty()).count();
            if rounds > self.max_rounds {
                return Err(Error::RoundLimit { run_id: record.run_id.clone(), rounds: self.max_rounds });
            }
            if hold::taken_over() {
                return Err(taken_over(record));
            }
            self.dispatch(record, calls, writes).await;
            if !record.requirements.is_empty() || !record.delegations.is_empty() {
                record.status = RunStatus::Paused;
                writes.approvals.extend(gate::open_rows(&self.identity, &self.tools, record));
                return Ok(());
            }
        }
    }

    /// Handles one turn's calls: refuses unknown tools and malformed arguments (telling the
    /// model), pauses calls that need a person, and runs the rest concurrently.
    async fn dispatch(&self, record: &mut RunRecord, mut calls: Vec<ToolCall>, writes: &mut Writes) {
        let excess = calls.split_off(calls.len().min(self.max_calls_per_turn));
        let mut ready = Vec::new();
        for call in calls {
            if let Some(delegate) = self.delegate.as_deref().filter(|d| d.handles(&call.name)) {
                delegate.delegate(record, &call, writes).await;
                continue;
            }
            let mut execution = ToolExecution {
                tool_call_id: call.id.clone(),
                tool_name: call.name.clone(),
                tool_args: Value::Null,
                status: ToolCallStatus::Paused,
                result: None,
                approval_id: None,
            };
            let Some(entry) = self.tools.get(&call.name) else {
                record.tools.push(execution);
                refuse_unrun(record, &call.id, self.unknown_tool(&call.name));
                continue;
            };
            let args = match parse_arguments(&call.arguments) {
                Ok(args) => args,
                Err(error) => {
                    execution.tool_args = Value::String(call.arguments.clone());
                    record.tools.push(execution);
                    refuse_unrun(record, &call.id, error);
                    continue;
                }
            };
            execution.tool_args = args.clone();
            let definition = &entry.definition;
            let unfit = entry.parameters.as_ref().and_then(|parameters| parameters.validate(&args).err());
            match (definition.hitl.pause_type(), unfit) {
                // A call that cannot run must not cost a person's decision: its arguments go
                // back to the model now, not after an approval.
                (Some(_), Some(reason)) => {
                    record.tools.push(execution);
                    refuse_unrun(record, &call.id, ToolError::InvalidArguments(reason.to_string()));
                }
                (Some(pause_type), None) => {
                    let mut requirement =
                        RunRequirement::new(execution.clone(), pause_type, definition.user_input_schema.clone());
                    requirement.approval_type = definition.approval.as_ref().map(|p| p.approval_type);
                    // A tool's `when` condition may find that a call to confirm needs no approval;
                    // user input and external execution always need a person.
                    let conditional = definition.requires_approval() && pause_type == PauseType::Confirmation;
                    let needed = if conditional { needs_approval(&*entry.tool, &args) } else { Ok(true) };
                    match needed {
                        // A policy that refuses self-approval tells the requester apart by the
                        // run's user: without one, anyone could approve their own call.
                        Ok(true) if refuses_self_approval(definition) && record.user_id.is_none() => {
                            record.tools.push(execution);
                            let refusal = format!(
                                "`{}` may not be approved by the user it acts for, and this run names no user: \
                                 start it with RunOptions::user_id",
                                call.name
                            );
                            refuse_unrun(record, &call.id, ToolError::Failed(refusal));
                        }
                        Ok(true) => {
                            record.requirements.push(requirement);
                            record.tools.push(execution);
                        }
                        Ok(false) => {
                            let row = gate::unconditioned_row(&self.identity, record, &requirement);
                            execution.approval_id = Some(row.id.clone());
                            record.tools.push(execution);
                            let context = self.context(record, &call.id, Some(&row.id));
                            let recorded_under = Some(row.id.clone());
                            writes.approvals.push(row);
                            let (tool, tool_name) = (Arc::clone(&entry.tool), call.name);
                            let invocation =
                                Invocation { tool, tool_name, context, args, edited_from: None, recorded_under };
                            ready.push((call.id, invocation));
                        }
                        Err(error) => {
                            record.tools.push(execution);
                            refuse_unrun(record, &call.id, error);
                        }
                    }
                }
                (None, _) => {
                    record.tools.push(execution);
                    let context = self.context(record, &call.id, None);
                    let tool_name = call.name;
                    let tool = Arc::clone(&entry.tool);
                    let invocation =
                        Invocation { tool, tool_name, context, args, edited_from: None, recorded_under: None };
                    ready.push((call.id, invocation));
                }
            }
        }
        let limit = self.max_calls_per_turn;
        for call in excess {
            record.tools.push(ToolExecution {
                tool_call_id: call.id.clone(),
                tool_name: call.name,
                tool_args: Value::String(call.arguments),
                status: ToolCallStatus::Paused,
                result: None,
                approval_id: None,
            });
            let refusal = format!("not run: a turn may make at most {limit} tool calls; make this call again later");
            refuse_unrun(record, &call.id, ToolError::Failed(refusal));
        }
        self.execute(record, ready, writes).await;
    }

    /// Applies decisions: refused and external calls are answered, approved ones run
    /// (concurrently), undecided ones stay on the run; audit rows go to `writes`.
    async fn apply(&self, record: &mut RunRecord, decisions: Vec<Decision>, writes: &mut Writes) {
        let mut waiting = Vec::new();
        let mut ready = Vec::new();
        for mut decision in decisions {
            let call_id = decision.requirement.tool_call_id().to_owned();
            // What the call needs of its row, which moves onto the run once it decided the call;
            // a call its caller confirmed gets its audit row now, whose trail records its outcome.
            let edited = decision.row.as_ref().is_some_and(|row| row.edited_args().is_some());
            let audit = gate::audit_row(&self.identity, record, &decision);
            let approval_id = decision.row.as_ref().map(|row| row.id.clone());
            let recorded_under = approval_id.clone().or_else(|| audit.as_ref().map(|row| row.id.clone()));
            if let Some(row) = &audit
                && let Some(execution) = record.tools.iter_mut().find(|e| e.tool_call_id == call_id)
            {
                execution.approval_id = Some(row.id.clone());
            }
            writes.approvals.extend(audit);
            if decision.verdict != Verdict::Wait
                && let Some(row) = decision.row.take()
            {
                record.approvals.push(row);
            }
            match decision.verdict {
                Verdict::Wait => waiting.push(decision.requirement),
                Verdict::Refuse(refusal, note) => {
                    let text = refusal.text(&decision.requirement.tool_execution.tool_name, note.as_deref());
                    settle_unrun(record, &call_id, ToolCallStatus::Rejected, Value::String(text));
                }
                Verdict::External(result) => settle_unrun(record, &call_id, ToolCallStatus::External, result),
                // The cycle cancels such a run instead of resuming it; were one resumed, the call
                // is refused as any expired one.
                Verdict::CancelRun => {
                    let text = Refusal::Expired.text(&decision.requirement.tool_execution.tool_name, None);
                    settle_unrun(record, &call_id, ToolCallStatus::Rejected, Value::String(text));
                }
                Verdict::Run(args) => {
                    let mut edited_from = None;
                    if let Some(execution) = record.tools.iter_mut().find(|e| e.tool_call_id == call_id) {
                        if edited {
                            edited_from = Some(execution.tool_args.clone());
                        }
                        execution.tool_args = args.clone();
                    }
                    let tool_name = decision.requirement.tool_execution.tool_name;
                    match self.tools.get(&tool_name) {
                        Some(entry) => {
                            let context = self.context(record, &call_id, approval_id.as_deref());
                            let tool = Arc::clone(&entry.tool);
                            let invocation = Invocation { tool, tool_name, context, args, edited_from, recorded_under };
                            ready.push((call_id, invocation));
                        }
                        None => refuse_unrun(record, &call_id, self.unknown_tool(&tool_name)),
                    }
                }
            }
        }
        record.requirements = waiting;
        self.execute(record, ready, writes).await;
    }

    /// Runs invocations concurrently and records each result, in call order; an approved
    /// call's outcome also goes to `writes`, for its row's trail.
    async fn execute(&self, record: &mut RunRecord, ready: Vec<(String, Invocation)>, writes: &mut Writes) {
        let results = join_all(ready.into_iter().map(|(call_id, invocation)| async move {
            events::emit(|| RunEvent::ToolCallStarted {
                run_id: invocation.context.run_id.clone(),
                tool_call_id: call_id.clone(),
                tool_name: invocation.tool_name.clone(),
                args: invocation.args.clone(),
            });
            let span = tracing::info_span!(
                "kern.tool",
                tool = %invocation.tool_name,
                call_id = %invocation.context.tool_call_id,
                run_id = %invocation.context.run_id
            );
            let edit = invocation.edited_from.map(|from| (from, invocation.args.clone()));
            let recorded_under = invocation.recorded_under;
            // A panicking tool is a failed call, told to the model like any other failure: one
            // that panics as it is called, before its future exists, as one that panics in it.
            let (tool, context, args) = (&invocation.tool, &invocation.context, invocation.args);
            let call = AssertUnwindSafe(async move { tool.call(context, args).await });
            let result = call.catch_unwind().instrument(span).await.unwrap_or_else(|panic| {
                Err(ToolError::Failed(format!("the tool panicked: {}", panic_message(panic.as_ref()))))
            });
            emit_outcome(&invocation.context.run_id, &call_id, &invocation.tool_name, &result);
            (call_id, recorded_under, edit, result)
        }))
        .await;
        for (call_id, recorded_under, edit, result) in results {
            if let Some(approval_id) = recorded_under {
                let outcome = match &result {
                    Ok(value) => trail::value_digest(value),
                    Err(error) => trail::value_digest(&Value::String(error.to_string())),
                };
                writes.executions.push(Execution {
                    approval_id,
                    run_id: record.run_id.clone(),
                    tool_call_id: call_id.clone(),
                    principal: self.identity.principal(),
                    succeeded: result.is_ok(),
                    result_digest: outcome,
                    recovered: false,
                });
            }
            complete(record, &call_id, result);
            if let Some((from, to)) = edit
                && let Some(answer) = record.messages.last_mut()
            {
                let text = answer.content.take().unwrap_or_default();
                answer.content = Some(format!(
                    "An approver changed the arguments of this call from {from} to {to} before it ran. {text}"
                ));
            }
        }
    }

    fn unknown_tool(&self, name: &str) -> ToolError {
        ToolError::Failed(format!("unknown tool `{name}`; available tools: {}", self.tools.names()))
    }

    fn context(&self, record: &RunRecord, tool_call_id: &str, approval_id: Option<&str>) -> RunContext {
        RunContext {
            run_id: record.run_id.clone(),
            session_id: record.session_id.clone(),
            user_id: record.user_id.clone(),
            agent_id: self.identity.agent_id.clone(),
            team_id: record.team_id.clone(),
            tool_call_id: tool_call_id.to_owned(),
            approval_id: approval_id.map(str::to_owned),
            idempotency_key: approval_id.map(|id| format!("{id}:{tool_call_id}")),
        }
    }
}

/// Whether `tool`'s call with `args` needs its approval (its `when` condition). A condition
/// that panics fails the call, told to the model, as a tool that panics does: it must not end
/// the whole run, with the other calls of its turn.
fn needs_approval(tool: &dyn Tool, args: &Value) -> std::result::Result<bool, ToolError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| tool.needs_approval(args))).unwrap_or_else(|panic| {
        Err(ToolError::Failed(format!("the tool's approval condition panicked: {}", panic_message(panic.as_ref()))))
    })
}

/// True when a call of the tool defined by `definition` needs an approval its requester may not
/// give.
fn refuses_self_approval(definition: &ToolDefinition) -> bool {
    definition
        .approval
        .as_ref()
        .is_some_and(|policy| policy.approval_type == ApprovalType::Required && !policy.self_approval)
}
