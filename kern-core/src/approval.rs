//! Approvals: the admin's side of a gated tool call.
//!
//! A required-approval call pauses its run and leaves a pending [`Approval`] row; an admin
//! resolves the row with [`ApprovalUpdate`] (a compare-and-set on its status); `continue_run`
//! reads the row back and obeys it. Audit calls leave a row only once they are resolved.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::{RunRequirement, RunStatus};
use crate::text_enum::text_enum;

mod policy;

pub(crate) use policy::unfit_policy;
pub use policy::{ApprovalPolicy, Decision, MAX_EXPIRES_IN, OnExpire, Principal, RowPolicy, Vote, VoteKind};

text_enum! {
    /// Where an approval row stands.
    ApprovalStatus {
        /// Waiting for an admin.
        Pending = "pending",
        /// The admin allowed the call.
        Approved = "approved",
        /// The admin refused the call.
        Rejected = "rejected",
        /// Nobody decided before `expires_at`.
        Expired = "expired",
        /// Withdrawn; the call will not run.
        Cancelled = "cancelled",
    }
}

impl ApprovalStatus {
    /// True once the row has left `pending`; resolved rows never change again.
    pub fn is_resolved(self) -> bool {
        self != ApprovalStatus::Pending
    }
}

text_enum! {
    /// Whether the row blocks the run or only records what happened.
    ApprovalType {
        /// The run waits for the row to be resolved.
        Required = "required",
        /// The row is written after the ordinary HITL interaction, as an audit trail.
        Audit = "audit",
    }
}

text_enum! {
    /// The kind of human interaction the paused call waits for.
    PauseType {
        /// Confirm or reject the call.
        Confirmation = "confirmation",
        /// Supply some of its arguments.
        UserInput = "user_input",
        /// Carry it out elsewhere and hand back the result.
        ExternalExecution = "external_execution",
    }
}

text_enum! {
    /// What kind of runner made the gated call.
    SourceType {
        /// A single agent (possibly a team member).
        Agent = "agent",
        /// A team's leader.
        Team = "team",
    }
}

/// One approval row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// UUID v7, time-ordered.
    pub id: String,
    /// The run that made the call (for a team member, the member's own run).
    pub run_id: String,
    /// The session of that run.
    pub session_id: String,
    /// Where the row stands.
    pub status: ApprovalStatus,
    /// Blocking or audit.
    pub approval_type: ApprovalType,
    /// What the call waits for.
    pub pause_type: PauseType,
    /// Agent or team leader.
    pub source_type: SourceType,
    /// The name of the agent or team that made the call.
    pub source_name: Option<String>,
    /// The agent that made the call, when an agent did.
    pub agent_id: Option<String>,
    /// The team the call was made in, when any.
    pub team_id: Option<String>,
    /// The user the run acts for.
    pub user_id: Option<String>,
    /// The tool's wire name.
    pub tool_name: String,
    /// The arguments the model gave.
    pub tool_args: Value,
    /// The model's id of the call; the row decides this call and no other.
    pub tool_call_id: String,
    /// The requirements of the pause (the admin's context; this row decides `tool_call_id`).
    pub requirements: Vec<RunRequirement>,
    /// What the admin supplied: nothing or `{"note": ".."}` to reject any call or approve a
    /// confirmation; `{"values": {..}}` (or the values object itself) to approve user input, and
    /// `{"result": ..}` an external execution, each with an optional note (in the values object
    /// itself, a `note` the call waits for is its value: see [`note`](Self::note)). Stores refuse other
    /// data with [`Error::InvalidResolution`](crate::Error::InvalidResolution).
    pub resolution_data: Option<Value>,
    /// Who resolved the row.
    pub resolved_by: Option<String>,
    /// When it was resolved.
    #[serde(serialize_with = "crate::timestamp::serialize_optional")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was written.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
    /// When a pending row stops being valid.
    #[serde(serialize_with = "crate::timestamp::serialize_optional")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The status of the run that owns the row, kept in step with it.
    pub run_status: RunStatus,
    /// The policy the row was opened under (required approvals): who may decide it and what
    /// its expiry does. A row whose policy [needs principals](RowPolicy::needs_principals) is
    /// decided only through [`Store::decide`](crate::store::Store::decide).
    #[serde(default)]
    pub policy: Option<RowPolicy>,
}

impl Approval {
    /// The requirement this row decides.
    pub fn requirement(&self) -> Option<&RunRequirement> {
        self.requirements.iter().find(|r| r.tool_execution.tool_call_id == self.tool_call_id)
    }

    /// The admin's note, if the resolution data carries one. In the values of an approved
    /// user-input call given as the data itself, a `note` is the call's value when the call
    /// waits for one of that name, not a note.
    pub fn note(&self) -> Option<&str> {
        let data = self.resolution_data.as_ref()?;
        let flat_values = self.pause_type == PauseType::UserInput
            && self.status == ApprovalStatus::Approved
            && data.as_object().is_some_and(values_are_the_data);
        if flat_values && self.input_fields().any(|field| field == "note") {
            return None;
        }
        data.get("note")?.as_str()
    }

    /// The names of the values the row's call waits for: its user-input schema's properties
    /// (none for other calls).
    pub fn input_fields(&self) -> impl Iterator<Item = &str> {
        let schema = self.requirement().and_then(|requirement| requirement.user_input_schema.as_ref());
        let properties = schema.and_then(|schema| schema.get("properties")).and_then(Value::as_object);
        properties.into_iter().flat_map(|properties| properties.keys().map(String::as_str))
    }

    /// The user-input values the admin supplied: `{"values": {..}}` or the object itself.
    pub fn user_input_values(&self) -> Option<&serde_json::Map<String, Value>> {
        let data = self.resolution_data.as_ref()?.as_object()?;
        if values_are_the_data(data) { Some(data) } else { data.get("values").and_then(Value::as_object) }
    }

    /// The external-execution result the admin supplied.
    pub fn external_result(&self) -> Option<&Value> {
        self.resolution_data.as_ref()?.get("result")
    }

    /// True when the row is pending past its expiry.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.status == ApprovalStatus::Pending && self.expires_at.is_some_and(|at| at <= now)
    }

    /// The status the row has at `now`: a pending row past its expiry has expired, whether or
    /// not a sweep has marked it yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> ApprovalStatus {
        if self.is_expired_at(now) { ApprovalStatus::Expired } else { self.status }
    }

    /// True when only votes of eligible principals decide the row (see [`RowPolicy`]).
    pub fn needs_principals(&self) -> bool {
        self.policy.as_ref().is_some_and(RowPolicy::needs_principals)
    }

    /// The arguments an approver put in place of the model's, when the row was approved with
    /// an edit its policy allows.
    pub fn edited_args(&self) -> Option<&Value> {
        self.policy.as_ref().filter(|policy| policy.allow_edit)?;
        self.resolution_data.as_ref()?.get("args")
    }
}

/// Whether user-input resolution `data` holds the values as itself, not under `values` (an
/// object).
fn values_are_the_data(data: &serde_json::Map<String, Value>) -> bool {
    !matches!(data.get("values"), Some(Value::Object(_)))
}

/// An admin's resolution of an approval row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalUpdate {
    /// When set, the update applies only if the row still has this status (compare-and-set).
    pub expected_status: Option<ApprovalStatus>,
    /// The new status.
    pub status: ApprovalStatus,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When; the store uses the current time when `None`.
    pub resolved_at: Option<DateTime<Utc>>,
    /// A note, user-input values or an external result (see [`Approval::resolution_data`]).
    pub resolution_data: Option<Value>,
}

impl ApprovalUpdate {
    /// Approve a pending row.
    pub fn approve(resolved_by: impl Into<String>) -> Self {
        Self::resolve(ApprovalStatus::Approved, resolved_by)
    }

    /// Reject a pending row.
    pub fn reject(resolved_by: impl Into<String>) -> Self {
        Self::resolve(ApprovalStatus::Rejected, resolved_by)
    }

    fn resolve(status: ApprovalStatus, resolved_by: impl Into<String>) -> Self {
        ApprovalUpdate {
            expected_status: Some(ApprovalStatus::Pending),
            status,
            resolved_by: Some(resolved_by.into()),
            resolved_at: Some(crate::now()),
            resolution_data: None,
        }
    }

    /// Attaches resolution data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.resolution_data = Some(data);
        self
    }
}

text_enum! {
    /// The order of a listing of approval rows.
    #[derive(Default)]
    ListOrder {
        /// Newest first, ties broken by id (descending): the reference's order.
        #[default]
        Newest = "newest",
        /// The rows that expire, the soonest first, ties broken by id (ascending): what an admin
        /// on call decides first. Rows without an expiry are not listed in this order.
        ExpiringSoonest = "expiring_soonest",
    }
}

/// Filters and paging of [`crate::store::Store::list_approvals`]. Every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalQuery {
    /// Only rows in this status.
    pub status: Option<ApprovalStatus>,
    /// Only rows of this type.
    pub approval_type: Option<ApprovalType>,
    /// Only rows of this pause type.
    pub pause_type: Option<PauseType>,
    /// Only rows from agents or only from teams.
    pub source_type: Option<SourceType>,
    /// Only rows of this agent.
    pub agent_id: Option<String>,
    /// Only rows of this team.
    pub team_id: Option<String>,
    /// Only rows of this user.
    pub user_id: Option<String>,
    /// Only rows of this run.
    pub run_id: Option<String>,
    /// Only rows of this session.
    pub session_id: Option<String>,
    /// Only rows created strictly before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only rows created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only rows of this tool.
    pub tool_name: Option<String>,
    /// Only rows that expire strictly before this time (rows without an expiry never match).
    pub expires_before: Option<DateTime<Utc>>,
    /// The listing's order; newest first unless set.
    #[serde(default)]
    pub order: ListOrder,
    /// Only rows after this one in the listing's order (keyset paging: stable while rows are
    /// added, and as quick on the thousandth page as on the first). Takes the place of `page`.
    pub after: Option<PageCursor>,
    /// At most this many rows (default 50).
    pub limit: Option<u32>,
    /// 1-based page of `limit` rows (default 1).
    pub page: Option<u32>,
}

macro_rules! query_setters {
    ($($field:ident: $ty:ty),+ $(,)?) => {
        impl ApprovalQuery {
            $(
                #[doc = concat!("Filters on `", stringify!($field), "`.")]
                pub fn $field(mut self, value: impl Into<$ty>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )+
        }
    };
}

query_setters! {
    status: ApprovalStatus,
    approval_type: ApprovalType,
    pause_type: PauseType,
    source_type: SourceType,
    agent_id: String,
    team_id: String,
    user_id: String,
    run_id: String,
    session_id: String,
    created_before: DateTime<Utc>,
    created_after: DateTime<Utc>,
    tool_name: String,
    expires_before: DateTime<Utc>,
    after: PageCursor,
}

impl ApprovalQuery {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// Lists in `order`.
    pub fn order(mut self, order: ListOrder) -> Self {
        self.order = order;
        self
    }

    /// Returns at most `limit` rows per page.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Returns the 1-based page `page`.
    pub fn page(mut self, page: u32) -> Self {
        self.page = Some(page);
        self
    }

    /// The page size in effect.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }

    /// How many rows to skip for the requested page (none after a cursor).
    pub fn offset(&self) -> u64 {
        if self.after.is_some() {
            return 0;
        }
        u64::from(self.page.unwrap_or(1).max(1) - 1) * u64::from(self.effective_limit())
    }

    /// True when `approval`, as it stands at `now` (see [`Approval::status_at`]), passes every
    /// filter (paging aside).
    pub fn matches_at(&self, approval: &Approval, now: DateTime<Utc>) -> bool {
        fn eq<T: PartialEq>(filter: &Option<T>, value: &T) -> bool {
            filter.as_ref().is_none_or(|f| f == value)
        }
        fn eq_opt(filter: &Option<String>, value: &Option<String>) -> bool {
            filter.as_ref().is_none_or(|f| value.as_ref() == Some(f))
        }
        eq(&self.status, &approval.status_at(now))
            && eq(&self.approval_type, &approval.approval_type)
            && eq(&self.pause_type, &approval.pause_type)
            && eq(&self.source_type, &approval.source_type)
            && eq_opt(&self.agent_id, &approval.agent_id)
            && eq_opt(&self.team_id, &approval.team_id)
            && eq_opt(&self.user_id, &approval.user_id)
            && eq(&self.run_id, &approval.run_id)
            && eq(&self.session_id, &approval.session_id)
            && self.created_before.is_none_or(|t| approval.created_at < t)
            && self.created_after.is_none_or(|t| approval.created_at >= t)
            && self.tool_name.as_ref().is_none_or(|tool| *tool == approval.tool_name)
            && self.expires_before.is_none_or(|t| approval.expires_at.is_some_and(|at| at < t))
            && (self.order != ListOrder::ExpiringSoonest || approval.expires_at.is_some())
    }

    /// Where `approval` stands in the listing's order: its time (creation, or expiry when
    /// expiring soonest first) and id.
    pub fn position<'a>(&self, approval: &'a Approval) -> (DateTime<Utc>, &'a str) {
        (self.time_of(approval.created_at, approval.expires_at), approval.id.as_str())
    }

    /// The time the listing orders a row of these times by.
    fn time_of(&self, created_at: DateTime<Utc>, expires_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
        match self.order {
            ListOrder::Newest => created_at,
            ListOrder::ExpiringSoonest => expires_at.unwrap_or(created_at),
        }
    }

    /// Compares two rows in the listing's order: `Less` for the one listed first.
    pub fn compare(&self, a: &Approval, b: &Approval) -> std::cmp::Ordering {
        self.compare_positions(self.position(a), self.position(b))
    }

    /// Compares two rows in the listing's order by their [positions](Self::position): for a
    /// store that sorts what it keeps of rows it does not hold whole.
    pub fn compare_positions(&self, a: (DateTime<Utc>, &str), b: (DateTime<Utc>, &str)) -> std::cmp::Ordering {
        match self.order {
            ListOrder::Newest => b.cmp(&a),
            ListOrder::ExpiringSoonest => a.cmp(&b),
        }
    }

    /// The cursor just past `approval` in the listing's order.
    pub fn cursor_after(&self, approval: &Approval) -> PageCursor {
        self.cursor_at(approval.created_at, approval.expires_at, &approval.id)
    }

    /// The cursor just past the row of these times and id (one a store could not read whole).
    pub fn cursor_at(&self, created_at: DateTime<Utc>, expires_at: Option<DateTime<Utc>>, id: &str) -> PageCursor {
        PageCursor { at: self.time_of(created_at, expires_at), id: id.to_owned() }
    }

    /// True when `approval` comes after the query's cursor in the listing's order (always true
    /// without a cursor).
    pub fn is_after_cursor(&self, approval: &Approval) -> bool {
        self.after.as_ref().is_none_or(|cursor| {
            let (at, id) = self.position(approval);
            let position = (at, id);
            let cursor = (cursor.at, cursor.id.as_str());
            match self.order {
                ListOrder::Newest => position < cursor,
                ListOrder::ExpiringSoonest => position > cursor,
            }
        })
    }
}

/// A place in a listing's order: the time the listing is ordered by (a row's creation for the
/// newest first, its expiry for the expiring soonest first; a run's creation in the runs'
/// listing, its last write in the stale runs') and the id of the last row or run of a page.
/// Written as `<microseconds>.<id>`, opaque to whoever pages with it; see
/// [`ApprovalQuery::cursor_after`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageCursor {
    /// The row's time in the listing's order.
    pub at: DateTime<Utc>,
    /// The row's id.
    pub id: String,
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.at.timestamp_micros(), self.id)
    }
}

/// A text that is no [`PageCursor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a page cursor: pass the `next_cursor` of the previous page")]
pub struct ParseCursorError(pub String);

impl FromStr for PageCursor {
    type Err = ParseCursorError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let invalid = || ParseCursorError(s.to_owned());
        let (micros, id) = s.split_once('.').ok_or_else(invalid)?;
        let at = (micros.parse().ok().and_then(DateTime::from_timestamp_micros))
            .filter(crate::limits::is_time)
            .ok_or_else(invalid)?;
        // An id no row or run could have would page differently on each backend.
        if !crate::limits::is_key(id) {
            return Err(invalid());
        }
        Ok(PageCursor { at, id: id.to_owned() })
    }
}

impl Serialize for PageCursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PageCursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One page of approval rows, in the listing's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalPage {
    /// The rows of the page that could be read.
    pub items: Vec<Approval>,
    /// How many rows match the filters across all pages, unreadable ones included.
    pub total: u64,
    /// The rows of the page that could not be read (stored data kern cannot decode), so that
    /// one damaged row does not hide the others; each is also logged as an error. Reading such
    /// a row alone fails with [`Error::Corrupt`](crate::Error::Corrupt).
    #[serde(default)]
    pub unreadable: Vec<UnreadableRow>,
    /// Where the next page starts ([`ApprovalQuery::after`]), when this page is full.
    #[serde(default)]
    pub next_cursor: Option<PageCursor>,
}

/// A row of a listing that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableRow {
    /// The row's id, as stored.
    pub id: String,
    /// Why it could not be read.
    pub reason: String,
}
