//! Who may decide an approval row and how: the policy a tool declares with `#[approval(..)]`,
//! the copy of it each row keeps, the principals who decide, and their decisions.
//!
//! A row opened under a policy that names approvers, a quorum, no self-approval or edits is
//! decided only by votes of eligible [`Principal`]s (`Store::decide`); a row without one keeps
//! the reference's flow, where a trusted caller resolves it with `Store::update_approval`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::text_enum::text_enum;

use super::{ApprovalType, PauseType};

text_enum! {
    /// What becomes of a call whose row expires before anyone decides.
    OnExpire {
        /// The call does not run and the model is told, as for a rejection; the run goes on.
        Reject = "reject",
        /// The whole run is cancelled, with every row it still waits on.
        CancelRun = "cancel_run",
    }
}

/// A tool's approval requirement, as declared by `#[approval(..)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Blocking or audit.
    pub approval_type: ApprovalType,
    /// How long a pending row stays valid; `None` means it never expires.
    pub expires_in: Option<Duration>,
    /// What an expiry does.
    pub on_expire: OnExpire,
    /// The roles that may decide (any one of them); empty means any principal.
    pub approvers: Vec<String>,
    /// How many distinct eligible principals must approve; one eligible rejection rejects.
    pub quorum: u32,
    /// Whether the user the run acts for may decide their own call. When not, a run that
    /// names no user has such a call refused (told to the model): nobody could be told apart
    /// from its requester.
    pub self_approval: bool,
    /// Whether an approver may change the call's arguments when approving.
    pub allow_edit: bool,
}

impl ApprovalPolicy {
    /// A blocking approval that never expires, decided by anyone trusted with the store.
    pub const REQUIRED: ApprovalPolicy = ApprovalPolicy::of_type(ApprovalType::Required);

    /// An audit-only approval.
    pub const AUDIT: ApprovalPolicy = ApprovalPolicy::of_type(ApprovalType::Audit);

    /// A policy of `approval_type` with every rule at its default.
    const fn of_type(approval_type: ApprovalType) -> Self {
        ApprovalPolicy {
            approval_type,
            expires_in: None,
            on_expire: OnExpire::Reject,
            approvers: Vec::new(),
            quorum: 1,
            self_approval: true,
            allow_edit: false,
        }
    }

    /// The same policy with an expiry, of at most [`MAX_EXPIRES_IN`] (a tool with a longer one is
    /// refused when an agent or team is built).
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// The same policy with `on_expire`.
    pub fn on_expire(mut self, on_expire: OnExpire) -> Self {
        self.on_expire = on_expire;
        self
    }

    /// The same policy, decided only by principals holding one of `roles`.
    pub fn approvers<R: Into<String>>(mut self, roles: impl IntoIterator<Item = R>) -> Self {
        self.approvers = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The same policy, approved once `quorum` distinct eligible principals have approved.
    pub fn quorum(mut self, quorum: u32) -> Self {
        self.quorum = quorum;
        self
    }

    /// The same policy, with the run's user allowed (or not) to decide their own call.
    pub fn self_approval(mut self, allowed: bool) -> Self {
        self.self_approval = allowed;
        self
    }

    /// The same policy, with approvers allowed to change the call's arguments.
    pub fn allow_edit(mut self) -> Self {
        self.allow_edit = true;
        self
    }

    /// The rules a row of this policy is opened under; `parameters` is the JSON Schema an
    /// edit of the arguments must fit.
    pub fn row_policy(&self, parameters: &Value) -> RowPolicy {
        RowPolicy {
            approvers: self.approvers.clone(),
            quorum: self.quorum.max(1),
            self_approval: self.self_approval,
            allow_edit: self.allow_edit,
            on_expire: self.on_expire,
            parameters: self.allow_edit.then(|| parameters.clone()),
        }
    }
}

/// The policy a row was opened under, copied from its tool at pause time so that a later change
/// of the code neither loosens nor tightens a pending row; shown to admins with the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowPolicy {
    /// The roles that may decide (any one of them); empty means any principal.
    pub approvers: Vec<String>,
    /// How many distinct eligible principals must approve.
    pub quorum: u32,
    /// Whether the run's user may decide their own call.
    pub self_approval: bool,
    /// Whether an approver may change the call's arguments.
    pub allow_edit: bool,
    /// What an expiry does.
    pub on_expire: OnExpire,
    /// The JSON Schema edited arguments must fit, when edits are allowed.
    pub parameters: Option<Value>,
}

/// The longest expiry a policy may give its rows, 100 years: `#[approval(expires_in = ..)]`
/// refuses a longer one at compile time. Times much further ahead are past what the stores keep
/// (year 9999), and a row whose expiry could not be reckoned would never expire.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(36_500 * 24 * 60 * 60);

/// Why a policy of `quorum` approvers, edits allowed or not, cannot govern a call that pauses as
/// `pause`, or `None` when it can: a quorum approves a call as it stands (a confirmation), and
/// edits change only a call that runs here. Held by the tool builders and by the stores alike.
pub(crate) fn unfit_policy(pause: PauseType, quorum: u32, allow_edit: bool) -> Option<&'static str> {
    match pause {
        PauseType::UserInput | PauseType::ExternalExecution if quorum > 1 => Some(
            "a quorum approves a call as it stands, and a user-input or external-execution call is completed \
             by the one approver who gives its values or result",
        ),
        PauseType::ExternalExecution if allow_edit => {
            Some("an external-execution call does not run here: edited arguments would change nothing")
        }
        _ => None,
    }
}

impl RowPolicy {
    /// True when the row is decided only by votes of eligible principals: it names approvers,
    /// a quorum above one, no self-approval, or edits. Other rows keep the reference's flow.
    pub fn needs_principals(&self) -> bool {
        !self.approvers.is_empty() || self.quorum > 1 || !self.self_approval || self.allow_edit
    }

    /// Why `principal` may not decide a row of this policy whose run acts for `requester`, or
    /// `None` when they may.
    pub fn ineligibility(&self, principal: &Principal, requester: Option<&str>) -> Option<String> {
        if !self.approvers.is_empty() && !self.approvers.iter().any(|role| principal.has_role(role)) {
            return Some(format!("it needs one of the roles {}", self.approvers.join(", ")));
        }
        if !self.self_approval && requester == Some(principal.id.as_str()) {
            return Some("the user a run acts for may not decide their own call".to_owned());
        }
        None
    }
}

/// Who decides: an id (recorded as `resolved_by` and on the trail) and the roles it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Who it is, such as a user name or an API key's principal.
    pub id: String,
    /// What it may do, matched against a policy's approvers.
    pub roles: Vec<String>,
}

impl Principal {
    /// A principal with no roles.
    pub fn new(id: impl Into<String>) -> Self {
        Principal { id: id.into(), roles: Vec::new() }
    }

    /// The same principal, also holding `role`.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// True when the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

/// What a principal decides about a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Let the call run: with the admin's `values` (user input) or `result` (external
    /// execution), and with `args` in place of the model's arguments where the policy allows
    /// edits.
    Approve {
        /// A note for the trail and the model.
        note: Option<String>,
        /// The user-input values the call waits for.
        values: Option<Map<String, Value>>,
        /// The result of an external execution.
        result: Option<Value>,
        /// Edited arguments, replacing the model's.
        args: Option<Value>,
    },
    /// Refuse the call; the note tells the model why.
    Reject {
        /// Why, for the model.
        note: Option<String>,
    },
    /// Withdraw the row: the call will not run.
    Cancel {
        /// Why, for the trail.
        note: Option<String>,
    },
}

impl Decision {
    /// A plain approval.
    pub fn approve() -> Self {
        Decision::Approve { note: None, values: None, result: None, args: None }
    }

    /// A rejection with a note for the model (none when empty).
    pub fn reject(note: impl Into<String>) -> Self {
        Decision::Reject { note: Some(note.into()).filter(|note| !note.is_empty()) }
    }

    /// A cancellation.
    pub fn cancel() -> Self {
        Decision::Cancel { note: None }
    }

    /// The same approval with the user-input `values`. A rejection or a cancellation is given
    /// back as it is: values belong to an approval.
    pub fn with_values(self, values: Map<String, Value>) -> Self {
        match self {
            Decision::Approve { note, result, args, .. } => {
                Decision::Approve { note, values: Some(values), result, args }
            }
            other => other,
        }
    }

    /// The same approval with an external execution's `result` (a rejection or a
    /// cancellation as it is).
    pub fn with_result(self, result: Value) -> Self {
        match self {
            Decision::Approve { note, values, args, .. } => {
                Decision::Approve { note, values, result: Some(result), args }
            }
            other => other,
        }
    }

    /// The same approval with edited arguments.
    pub fn with_args(self, args: Value) -> Self {
        match self {
            Decision::Approve { note, values, result, .. } => {
                Decision::Approve { note, values, result, args: Some(args) }
            }
            other => other,
        }
    }
}

text_enum! {
    /// How a principal voted.
    VoteKind {
        /// For the call.
        Approve = "approve",
        /// Against it.
        Reject = "reject",
    }
}

/// One principal's vote on a row with a policy: each is its own record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The row voted on.
    pub approval_id: String,
    /// Who voted.
    pub principal: String,
    /// The roles they held then.
    pub roles: Vec<String>,
    /// For or against.
    pub kind: VoteKind,
    /// Their note.
    pub note: Option<String>,
    /// The arguments they approved, when they edited them.
    pub args: Option<Value>,
    /// When.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub at: chrono::DateTime<chrono::Utc>,
}
