//! Runs: what an agent or team did, what it waits for, and what it answered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::approval::{Approval, ApprovalType, PageCursor, PauseType};
use crate::models::{Message, Usage};
use crate::text_enum::text_enum;

mod carried;

pub(crate) use carried::Carried;
pub use carried::{in_flight, settled};

text_enum! {
    /// Where a run stands.
    RunStatus {
        /// The loop is working (or a continue has claimed the run).
        Running = "running",
        /// Waiting for people: see [`RunOutput::requirements`].
        Paused = "paused",
        /// Finished with a final answer.
        Completed = "completed",
        /// Stopped by an error.
        Error = "error",
        /// Stopped on request.
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// What became of one tool call.
    ToolCallStatus {
        /// Not decided yet: waiting for a person.
        Paused = "paused",
        /// Ran and returned a result.
        Succeeded = "succeeded",
        /// Ran (or tried to) and failed; the error went back to the model.
        Failed = "failed",
        /// A person or admin refused it; it did not run.
        Rejected = "rejected",
        /// Carried out outside the agent; the given result went back to the model.
        External = "external",
    }
}

/// One tool call of a run and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolExecution {
    /// The model's id for the call.
    pub tool_call_id: String,
    /// The tool's wire name.
    pub tool_name: String,
    /// The arguments the model gave (user-input values merged in once supplied).
    pub tool_args: Value,
    /// What became of the call.
    pub status: ToolCallStatus,
    /// The result or error text that went back to the model.
    pub result: Option<Value>,
    /// The approval row that gates the call, if any, or the audit row that records it (written
    /// when the call ran at once by its tool's condition, or when its caller confirmed it).
    pub approval_id: Option<String>,
}

/// The team member whose call paused a team run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRef {
    /// The member agent's id.
    pub agent_id: String,
    /// The member agent's name.
    pub agent_name: Option<String>,
    /// The member's own run (a child of the team run).
    pub run_id: String,
}

/// A team leader's delegation call and the member runs it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    /// The leader's call that handed out the task.
    pub tool_call_id: String,
    /// The member runs it started.
    pub runs: Vec<MemberRun>,
}

/// A member's child run started by a delegation, as far as the leader knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRun {
    /// Who runs it.
    pub member: MemberRef,
    /// Where it stands.
    pub status: RunStatus,
    /// What it answered (or the error that ended it).
    pub content: Option<String>,
    /// What it waits for while paused, each labelled with the member: the team run's output
    /// lists these after its own.
    #[serde(default)]
    pub requirements: Vec<RunRequirement>,
}

/// A paused tool call and what a person has decided about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequirement {
    /// The paused call.
    pub tool_execution: ToolExecution,
    /// What the call waits for.
    pub pause_type: PauseType,
    /// `Some(true)` once confirmed, `Some(false)` once rejected.
    pub confirmation: Option<bool>,
    /// Why it was rejected, for the model.
    pub note: Option<String>,
    /// JSON Schema of the values a person supplies (user-input pauses).
    pub user_input_schema: Option<Value>,
    /// The values supplied so far (user-input pauses).
    pub user_input: Option<Map<String, Value>>,
    /// The result handed back (external-execution pauses).
    pub external_result: Option<Value>,
    /// The approval kind of the tool, when it has one.
    pub approval_type: Option<ApprovalType>,
    /// The row an admin resolves (required approvals).
    pub approval_id: Option<String>,
    /// The team member that made the call, on a team run's output.
    pub member: Option<MemberRef>,
    /// Who decided the call, recorded on its audit row (audit tools).
    pub resolved_by: Option<String>,
}

impl RunRequirement {
    /// A fresh requirement for a paused call.
    pub fn new(tool_execution: ToolExecution, pause_type: PauseType, user_input_schema: Option<Value>) -> Self {
        RunRequirement {
            tool_execution,
            pause_type,
            confirmation: None,
            note: None,
            user_input_schema,
            user_input: None,
            external_result: None,
            approval_type: None,
            approval_id: None,
            member: None,
            resolved_by: None,
        }
    }

    /// The model's id of the paused call.
    pub fn tool_call_id(&self) -> &str {
        &self.tool_execution.tool_call_id
    }

    /// Allows the call.
    pub fn confirm(&mut self) {
        self.confirmation = Some(true);
        self.note = None;
    }

    /// Refuses the call; the note (if not empty) tells the model why.
    pub fn reject(&mut self, note: impl Into<String>) {
        let note = note.into();
        self.confirmation = Some(false);
        self.note = (!note.is_empty()).then_some(note);
    }

    /// Supplies user-input values (merged with any given before) and allows the call.
    pub fn provide_user_input(&mut self, values: Map<String, Value>) {
        self.user_input.get_or_insert_with(Map::new).extend(values);
        self.confirmation = Some(true);
    }

    /// Hands back the result of an externally executed call.
    pub fn set_external_execution_result(&mut self, value: impl Into<Value>) {
        self.external_result = Some(value.into());
        self.confirmation = Some(true);
    }

    /// Records who decided the call; audit tools write it on their audit row.
    pub fn set_resolved_by(&mut self, who: impl Into<String>) {
        self.resolved_by = Some(who.into());
    }

    /// The user-input fields that are required and not yet supplied.
    pub fn missing_user_input(&self) -> Vec<String> {
        let required = self
            .user_input_schema
            .as_ref()
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default();
        required
            .into_iter()
            .filter(|name| self.user_input.as_ref().is_none_or(|v| !v.contains_key(*name)))
            .map(str::to_owned)
            .collect()
    }

    /// True once the caller has decided everything the call waits for. A call gated by a
    /// required approval is still decided by its row, whatever this says.
    pub fn is_resolved(&self) -> bool {
        match self.confirmation {
            None => false,
            Some(false) => true,
            Some(true) => match self.pause_type {
                PauseType::Confirmation => true,
                PauseType::UserInput => self.missing_user_input().is_empty(),
                PauseType::ExternalExecution => self.external_result.is_some(),
            },
        }
    }
}

/// Who a run acts for and which conversation it continues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "options do nothing until given to a run"]
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

/// What `run` and `continue_run` return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The run's id: pass it to `continue_run`.
    pub run_id: String,
    /// The session the run belongs to.
    pub session_id: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// The final answer, once completed.
    pub content: Option<String>,
    /// Every tool call of the run and its outcome.
    pub tools: Vec<ToolExecution>,
    /// What the run waits for when paused: its own calls, then (on a team run) its members',
    /// each with [`member`](RunRequirement::member) set.
    pub requirements: Vec<RunRequirement>,
    /// The approval rows that decided the run's gated calls, as they stood when they did,
    /// oldest first. The output of the continue that cancels a run because a row expired ends
    /// with that row (a member's, on a team run), which the stored run does not hold: its
    /// rows read back `expired` from the store.
    pub approvals: Vec<Approval>,
    /// Extra facts: `"error"` holds what stopped a failed run, and `"approval"` the row that
    /// decided its latest gated call (as [`approval`](Self::approval) returns it).
    pub metadata: Map<String, Value>,
    /// Tokens spent on model calls.
    pub usage: Usage,
    /// The runs of team members, on a team run.
    pub member_runs: Vec<RunOutput>,
}

/// The whole persisted state of a run: enough for a fresh agent in another process to go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// Its session.
    pub session_id: String,
    /// The user it acts for.
    pub user_id: Option<String>,
    /// The agent that runs it (a team run has none).
    pub agent_id: Option<String>,
    /// The team it belongs to: the team's own run or a member's child run.
    pub team_id: Option<String>,
    /// The team run of a member's child run.
    pub parent_run_id: Option<String>,
    /// Where the run stands.
    pub status: RunStatus,
    /// The user's input that started it.
    pub input: String,
    /// The conversation so far, system prompt excluded.
    pub messages: Vec<Message>,
    /// Every tool call and its outcome.
    pub tools: Vec<ToolExecution>,
    /// The run's own calls that wait for people while it is paused (a team run's members'
    /// calls are on its [`delegations`](Self::delegations)).
    pub requirements: Vec<RunRequirement>,
    /// The approval rows that decided the run's gated calls, as they stood when they did.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// The final answer.
    pub content: Option<String>,
    /// Extra facts, carried to the output.
    pub metadata: Map<String, Value>,
    /// Tokens spent.
    pub usage: Usage,
    /// Child runs of team members, by run id.
    pub member_run_ids: Vec<String>,
    /// The leader's delegations still waiting on paused member runs.
    #[serde(default)]
    pub delegations: Vec<Delegation>,
    /// When the run started.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When the record was last written.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// Filters and paging of [`Store::list_runs`](crate::store::Store::list_runs). Every filter is
/// optional; the child runs of team members are left out unless [`members`](Self::members) is
/// set, as they are part of their team run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunQuery {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this agent.
    pub agent_id: Option<String>,
    /// Only runs of this team (its own runs and, with `members`, its members').
    pub team_id: Option<String>,
    /// Only runs acting for this user.
    pub user_id: Option<String>,
    /// Only runs of this session.
    pub session_id: Option<String>,
    /// Lists member runs too, not only top-level ones.
    #[serde(default)]
    pub members: bool,
    /// Only runs after this one in the listing's order (newest first, ties broken by run id,
    /// descending): the [`RunPage::next_cursor`] of the previous page.
    pub after: Option<PageCursor>,
    /// At most this many runs (default 50).
    pub limit: Option<u32>,
}

impl RunQuery {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// Only runs in `status`.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs of agent `agent_id`.
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Only runs of team `team_id`.
    pub fn team_id(mut self, team_id: impl Into<String>) -> Self {
        self.team_id = Some(team_id.into());
        self
    }

    /// Only runs acting for `user_id`.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Only runs of session `session_id`.
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Lists member runs too.
    pub fn members(mut self, members: bool) -> Self {
        self.members = members;
        self
    }

    /// Only runs after `cursor`.
    pub fn after(mut self, cursor: PageCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// At most `limit` runs.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page size in effect.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }

    /// True when `run` passes every filter and comes after the cursor (paging by size aside).
    pub fn matches(&self, run: &RunRecord) -> bool {
        fn eq_opt(filter: &Option<String>, value: &Option<String>) -> bool {
            filter.as_ref().is_none_or(|f| value.as_ref() == Some(f))
        }
        self.status.is_none_or(|status| status == run.status)
            && eq_opt(&self.agent_id, &run.agent_id)
            && eq_opt(&self.team_id, &run.team_id)
            && eq_opt(&self.user_id, &run.user_id)
            && self.session_id.as_ref().is_none_or(|session| *session == run.session_id)
            && (self.members || run.parent_run_id.is_none())
            && self
                .after
                .as_ref()
                .is_none_or(|cursor| (run.created_at, run.run_id.as_str()) < (cursor.at, cursor.id.as_str()))
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The runs of the page.
    pub items: Vec<RunRecord>,
    /// Where the next page starts ([`RunQuery::after`]), when this page is full.
    #[serde(default)]
    pub next_cursor: Option<PageCursor>,
}

impl RunPage {
    /// A page of `items` (newest first) for a query of page size `limit`: a full page names the
    /// cursor after its last run.
    pub fn new(items: Vec<RunRecord>, limit: u32) -> Self {
        let full = items.len() == limit as usize;
        let next_cursor =
            items.last().filter(|_| full).map(|run| PageCursor { at: run.created_at, id: run.run_id.clone() });
        RunPage { items, next_cursor }
    }
}

impl RunRecord {
    /// The approval rows the run waits on while it is paused: its own calls', then (on a team
    /// run) its members'.
    pub fn waiting_on(&self) -> Vec<String> {
        self.paused_calls().filter_map(|requirement| requirement.approval_id.clone()).collect()
    }

    /// Whether every paused call of the run, its own and its paused members', is gated by an
    /// approval row: only then can a continue with no answers from a caller resume it.
    pub fn waits_only_on_rows(&self) -> bool {
        self.paused_calls().all(|requirement| requirement.approval_id.is_some())
    }

    /// The paused calls of the run: its own, then (on a team run) its members'.
    fn paused_calls(&self) -> impl Iterator<Item = &RunRequirement> {
        let members = self.delegations.iter().flat_map(|delegation| &delegation.runs);
        self.requirements.iter().chain(members.flat_map(|member| &member.requirements))
    }
}

impl RunOutput {
    /// The latest approval row that decided one of the run's own gated calls. On a team run, a
    /// member's rows decided its own calls: they are on its output, in
    /// [`member_runs`](Self::member_runs), but for the row whose expiry cancelled the run,
    /// which the cancelling continue's output names, whoever's it is.
    pub fn approval(&self) -> Option<&Approval> {
        self.approvals.last()
    }
}

/// An output's metadata: the run's, and under `"approval"` the row that decided its latest
/// gated call, as the reference exposes it.
impl From<RunRecord> for RunOutput {
    fn from(record: RunRecord) -> Self {
        let mut requirements = record.requirements;
        let members = record.delegations.into_iter().flat_map(|delegation| delegation.runs);
        requirements.extend(members.flat_map(|run| run.requirements));
        let mut metadata = record.metadata;
        if let Some(row) = record.approvals.last().and_then(|row| serde_json::to_value(row).ok()) {
            metadata.insert("approval".to_owned(), row);
        }
        RunOutput {
            run_id: record.run_id,
            session_id: record.session_id,
            status: record.status,
            content: record.content,
            tools: record.tools,
            requirements,
            approvals: record.approvals,
            metadata,
            usage: record.usage,
            member_runs: Vec::new(),
        }
    }
}
