//! The one error type of kern.

use crate::approval::ApprovalStatus;
use crate::models::ModelError;
use crate::run::RunStatus;

/// Shorthand for results whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kern, one variant a cause, so callers can match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder was given no model.
    #[error("no model configured: call .model(..) on the builder")]
    NoModel,
    /// A tool has an approval (required or audit) but nothing would store its rows.
    #[error(
        "tool `{tool}` has an approval, whose rows need a database: call .db(..) on the builder \
         (without one they would be kept in memory and lost)"
    )]
    ApprovalNeedsDb {
        /// The tool's wire name.
        tool: String,
    },
    /// Two tools share a wire name.
    #[error("two tools are named `{0}`: tool names must be unique")]
    DuplicateTool(String),
    /// A tool's definition cannot work as declared.
    #[error("tool `{tool}` is invalid: {reason}")]
    InvalidTool {
        /// The tool's wire name.
        tool: String,
        /// What to change.
        reason: String,
    },
    /// Two team members share an id.
    #[error("two team members have the id `{0}`: member ids must be unique")]
    DuplicateMember(String),

    /// A team run waits on a member the team no longer has.
    #[error("team has no member `{0}`")]
    UnknownMember(String),
    /// No run has this id.
    #[error("run `{0}` not found")]
    RunNotFound(String),
    /// The run is not paused, so it cannot be continued or cancelled.
    #[error("run `{run_id}` is {status}, not paused: only a paused run can be continued or cancelled")]
    RunNotPaused {
        /// The run's id.
        run_id: String,
        /// Its current status.
        status: RunStatus,
    },
    /// The run is not one a continue left behind: it is not running, or it was claimed too
    /// recently for its continue to have given up, so recovering it could run a tool twice.
    #[error(
        "run `{run_id}` is {status}, not stale: only a run left running for longer than `stale_after` can be \
         recovered; wait for its continue to finish (or recover it later), or continue it if it is paused"
    )]
    RunNotStale {
        /// The run's id.
        run_id: String,
        /// Its current status.
        status: RunStatus,
    },
    /// The run was taken over while a continue or recovery held it: its claim went without
    /// renewal for longer than `stale_after` (the database could not be written, say), and a
    /// recovery reclaimed it, or an admin released it. The holder's outcome is not stored; the
    /// run's is the taker's to store.
    #[error(
        "run `{run_id}` was taken over while this continue held it (a recovery or release found it stale): its \
         outcome is not stored, and the run is left to whoever took it"
    )]
    RunTakenOver {
        /// The run's id.
        run_id: String,
    },
    /// The run belongs to another agent or team, which alone may continue it.
    #[error("run `{run_id}` belongs to {owner}")]
    ForeignRun {
        /// The run's id.
        run_id: String,
        /// Who owns it, such as "agent `ops`" or "team `support`".
        owner: String,
    },
    /// A team member's run was continued directly; it resumes through its team run.
    #[error("run `{run_id}` is a member run of team run `{team_run_id}`: continue the team run instead")]
    MemberRun {
        /// The member's run.
        run_id: String,
        /// The team run it belongs to.
        team_run_id: String,
    },
    /// A requirement passed to `continue_run` names no paused call of the run.
    #[error("run `{run_id}` has no paused tool call `{tool_call_id}`")]
    UnknownRequirement {
        /// The run's id.
        run_id: String,
        /// The call id the caller passed.
        tool_call_id: String,
    },
    /// `continue_run` was passed two answers to one paused call: which one stands would be a
    /// guess.
    #[error("run `{run_id}`'s tool call `{tool_call_id}` is answered twice")]
    DuplicateAnswer {
        /// The run's id.
        run_id: String,
        /// The call answered twice.
        tool_call_id: String,
    },
    /// User-input values supplied by the caller do not fit the tool's schema.
    #[error("user input for tool call `{tool_call_id}` refused: {reason}")]
    InvalidUserInput {
        /// The paused call.
        tool_call_id: String,
        /// Why the values do not fit.
        reason: String,
    },
    /// The model exceeded the configured number of tool-call rounds.
    #[error("run `{run_id}` stopped after {rounds} tool-call rounds without a final answer")]
    RoundLimit {
        /// The run's id.
        run_id: String,
        /// The limit that was reached.
        rounds: usize,
    },

    /// A required-approval call has no approval row.
    #[error("no approval row for tool call `{tool_call_id}` of run `{run_id}`")]
    ApprovalMissing {
        /// The run's id.
        run_id: String,
        /// The gated call.
        tool_call_id: String,
    },
    /// The approval row of a gated call has not been resolved yet.
    #[error("approval `{approval_id}` is still pending: an admin must approve or reject it first")]
    ApprovalPending {
        /// The pending row's id.
        approval_id: String,
    },
    /// The stored run state and its approval row disagree on what was approved.
    #[error("approval `{approval_id}` does not match the paused call: {reason}")]
    ApprovalMismatch {
        /// The row's id.
        approval_id: String,
        /// What differs.
        reason: String,
    },
    /// No approval row has this id.
    #[error("approval `{0}` not found")]
    ApprovalNotFound(String),
    /// A compare-and-set update found the row in another status.
    #[error("approval `{id}` is {actual}, not {expected}")]
    ApprovalConflict {
        /// The row's id.
        id: String,
        /// The status the caller expected.
        expected: ApprovalStatus,
        /// The status the row actually has.
        actual: ApprovalStatus,
    },
    /// The update would move the row along a transition the lifecycle forbids.
    #[error("approval `{id}` cannot go from {from} to {to}")]
    InvalidTransition {
        /// The row's id.
        id: String,
        /// Its current status.
        from: ApprovalStatus,
        /// The requested status.
        to: ApprovalStatus,
    },
    /// The resolution data does not fit the paused call.
    #[error("resolution data for approval `{id}` refused: {reason}")]
    InvalidResolution {
        /// The row's id.
        id: String,
        /// Why it does not fit.
        reason: String,
    },
    /// The principal may not decide the row under its policy.
    #[error("principal `{principal}` may not decide approval `{id}`: {reason}")]
    NotEligible {
        /// The row's id.
        id: String,
        /// Who tried.
        principal: String,
        /// Which rule refused them.
        reason: String,
    },
    /// The principal has already voted on the row: each counts once.
    #[error("principal `{principal}` has already voted on approval `{id}`")]
    DuplicateVote {
        /// The row's id.
        id: String,
        /// Who voted again.
        principal: String,
    },
    /// The row has a policy that names who decides it, so the trusted `update_approval` path,
    /// which names no principal, may not resolve it.
    #[error(
        "approval `{id}` has a policy (approvers, quorum, self-approval or edits): decide it as a principal \
         with Store::decide"
    )]
    DecideAsPrincipal {
        /// The row's id.
        id: String,
    },
    /// An approver changed the arguments of a call whose tool does not allow edits.
    #[error("approval `{id}` does not allow edits: its tool has no `allow_edit`")]
    EditNotAllowed {
        /// The row's id.
        id: String,
    },
    /// An audit call was confirmed or rejected without naming who decided; its audit row must.
    #[error(
        "tool call `{tool_call_id}` has an audit approval: name who decided it with set_resolved_by(..) \
         before continuing"
    )]
    AuditWithoutResolver {
        /// The audited call.
        tool_call_id: String,
    },

    /// A value given to kern (an id, a user, a resolver, a payload) is one it will not store:
    /// too long, holding a NUL character, or nested too deep. Refused before anything is
    /// written or run.
    #[error("{field} refused: {reason}")]
    InvalidInput {
        /// What the value is, such as `user_id` or `resolution_data`.
        field: &'static str,
        /// What is wrong with it, and the limit it breaks.
        reason: String,
    },

    /// The run stopped abnormally (a panic, or its task was cancelled); it is stored as failed.
    #[error("run aborted: {0}")]
    Aborted(String),
    /// The model provider failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The stored schema was written by a newer version of kern.
    #[error("database schema version {found} is newer than this build supports ({supported}): upgrade kern")]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl Error {
    /// Wraps a backend error as [`Error::Database`].
    pub fn database(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Database(Box::new(err))
    }
}
