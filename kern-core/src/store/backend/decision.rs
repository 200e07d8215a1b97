//! The rules of deciding a row as a principal, written once for every store: who may decide it
//! under its policy, when votes make a quorum, what an edit may change, and what the decision
//! leaves on the row, in the votes and on the trail.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::ResolutionRules;
use crate::approval::{
    Approval, ApprovalPolicy, ApprovalStatus, ApprovalUpdate, Decision, Principal, RowPolicy, Vote, VoteKind,
};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema;
use crate::trail::{self, EventKind};

/// What a decision does, for a store to write in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionEffect {
    /// The vote to record (approvals and rejections are votes; a cancellation is not).
    pub vote: Option<Vote>,
    /// The row as it stands after the decision.
    pub row: Approval,
    /// True when the decision resolves the row: the store applies it with a compare-and-set on
    /// `pending`, so that exactly one decision resolves it.
    pub resolves: bool,
    /// The events to append to the row's trail, in order, with `kind` and `data`; the
    /// principal is the decider.
    pub events: Vec<(EventKind, Value)>,
}

/// Refuses `principal` deciding `row` when the row's policy (the default one when it has none)
/// does not let them, with [`Error::NotEligible`]: the check of every decision, and of every
/// row a run cancelled as a principal withdraws.
pub fn check_eligible(row: &Approval, principal: &Principal) -> Result<()> {
    let requester = row.user_id.as_deref();
    let reason = match &row.policy {
        Some(policy) => policy.ineligibility(principal, requester),
        None => ApprovalPolicy::REQUIRED.row_policy(&Value::Null).ineligibility(principal, requester),
    };
    match reason {
        Some(reason) => Err(Error::NotEligible { id: row.id.clone(), principal: principal.id.clone(), reason }),
        None => Ok(()),
    }
}

/// The rules of one [`Store::decide`](crate::store::Store::decide) call.
///
/// [`apply`](Self::apply) takes the row and its votes as stored (read under the row's lock, or
/// in the one transaction a store writes in) and returns what the decision does, or the error
/// that refuses it, in this order: [`Error::ApprovalNotFound`], [`Error::ApprovalConflict`] (the
/// row is no longer pending, an expiry included), [`Error::NotEligible`] (a role the policy asks
/// for is missing, or the run's user decides their own call where the policy forbids it),
/// [`Error::DuplicateVote`], [`Error::EditNotAllowed`], [`Error::InvalidResolution`] (values, a
/// result or edited arguments that do not fit the call).
///
/// A row with no policy is decided as one with the default policy: any principal, a quorum of
/// one. The row is approved by the vote that completes the quorum of approvals of the same
/// arguments (the model's, or one edit of them: each edit starts its own count), with that
/// vote's values, result and edited arguments; one eligible rejection rejects it; an eligible
/// cancellation cancels it.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRules<'a> {
    id: &'a str,
    principal: &'a Principal,
    decision: &'a Decision,
    now: DateTime<Utc>,
}

impl<'a> DecisionRules<'a> {
    /// The rules for `principal` deciding row `id` with `decision` at `now`.
    pub fn new(id: &'a str, principal: &'a Principal, decision: &'a Decision, now: DateTime<Utc>) -> Self {
        DecisionRules { id, principal, decision, now }
    }

    /// What the decision does to `row` (as stored, `None` when there is none) with `votes` (its
    /// votes so far), or why it may not.
    pub fn apply(&self, row: Option<&Approval>, votes: &[Vote]) -> Result<DecisionEffect> {
        limits::check_name("principal", &self.principal.id)?;
        let row = row.ok_or_else(|| Error::ApprovalNotFound(self.id.to_owned()))?;
        let actual = row.status_at(self.now);
        if actual != ApprovalStatus::Pending {
            return Err(Error::ApprovalConflict { id: self.id.to_owned(), expected: ApprovalStatus::Pending, actual });
        }
        check_eligible(row, self.principal)?;
        let policy = row.policy.clone().unwrap_or_else(|| ApprovalPolicy::REQUIRED.row_policy(&Value::Null));
        match self.decision {
            Decision::Cancel { note } => {
                Ok(self.resolve(row, ApprovalStatus::Cancelled, note_data(note), None, vec![]))
            }
            Decision::Reject { note } => {
                let vote = self.vote(votes, VoteKind::Reject, note, None)?;
                let events = vec![(EventKind::Vote, trail::vote_data(&vote))];
                Ok(self.resolve(row, ApprovalStatus::Rejected, note_data(note), Some(vote), events))
            }
            Decision::Approve { note, values, result, args } => {
                // The model's own arguments given back are no edit: an approval of the call as is.
                let args = &args.clone().filter(|args| *args != row.tool_args);
                self.check_edit(row, &policy, args.as_ref())?;
                if let Some(values) = values {
                    limits::check_json_object("values", values)?;
                }
                if let Some(result) = result {
                    limits::check_json("result", result)?;
                }
                let data = approval_data(note, values, result);
                let update = ApprovalUpdate {
                    expected_status: Some(ApprovalStatus::Pending),
                    status: ApprovalStatus::Approved,
                    resolved_by: Some(self.principal.id.clone()),
                    resolved_at: Some(self.now),
                    resolution_data: data.clone(),
                };
                ResolutionRules::new(self.id, &update, self.now).check_data_of(row)?;
                let data = match args {
                    Some(args) => {
                        let mut data = data.and_then(|data| data.as_object().cloned()).unwrap_or_default();
                        data.insert("args".to_owned(), args.clone());
                        Some(Value::Object(data))
                    }
                    None => data,
                };
                // The parts wrapped as the row holds them nest a level deeper than each alone.
                if let Some(data) = &data {
                    limits::check_json("resolution_data", data)?;
                }
                let vote = self.vote(votes, VoteKind::Approve, note, args.clone())?;
                let mut events = vec![(EventKind::Vote, trail::vote_data(&vote))];
                // Only approvals of the same arguments make a quorum: an edit starts its own count.
                let same = |vote: &&Vote| vote.kind == VoteKind::Approve && vote.args == *args;
                let approvals = votes.iter().filter(same).count() + 1;
                if approvals < usize::try_from(policy.quorum).unwrap_or(usize::MAX) {
                    // A vote that does not decide still changes the row, by its `updated_at`:
                    // the row's ETag names it, so a decision made on the row as it was before
                    // the vote is refused as stale.
                    let row = Approval { updated_at: self.now, ..row.clone() };
                    return Ok(DecisionEffect { vote: Some(vote), row, resolves: false, events });
                }
                if let Some(args) = args {
                    events.push((EventKind::Edited, json!({ "from": row.tool_args, "to": args })));
                }
                Ok(self.resolve(row, ApprovalStatus::Approved, data, Some(vote), events))
            }
        }
    }

    /// The principal's vote, unless they have voted already.
    fn vote(&self, votes: &[Vote], kind: VoteKind, note: &Option<String>, args: Option<Value>) -> Result<Vote> {
        if votes.iter().any(|vote| vote.principal == self.principal.id) {
            return Err(Error::DuplicateVote { id: self.id.to_owned(), principal: self.principal.id.clone() });
        }
        if let Some(note) = note {
            limits::check_text("note", note)?;
        }
        Ok(Vote {
            approval_id: self.id.to_owned(),
            principal: self.principal.id.clone(),
            roles: self.principal.roles.clone(),
            kind,
            note: note.clone(),
            args,
            at: self.now,
        })
    }

    /// Edited arguments need a policy that allows them and must fit the tool's schema.
    fn check_edit(&self, row: &Approval, policy: &RowPolicy, args: Option<&Value>) -> Result<()> {
        let Some(args) = args else { return Ok(()) };
        if !policy.allow_edit {
            return Err(Error::EditNotAllowed { id: self.id.to_owned() });
        }
        limits::check_json("args", args)?;
        let refuse = |reason: String| Error::InvalidResolution { id: self.id.to_owned(), reason };
        match &policy.parameters {
            Some(parameters) => {
                schema::validate(parameters, args).map_err(|reason| refuse(format!("edited arguments: {reason}")))
            }
            None if args.is_object() => Ok(()),
            None => Err(refuse(format!("edited arguments of `{}` must be a JSON object", row.tool_name))),
        }
    }

    /// The row resolved to `status` by the principal, with the event that records it last.
    fn resolve(
        &self,
        row: &Approval,
        status: ApprovalStatus,
        data: Option<Value>,
        vote: Option<Vote>,
        mut events: Vec<(EventKind, Value)>,
    ) -> DecisionEffect {
        let mut row = row.clone();
        row.status = status;
        row.resolved_by = Some(self.principal.id.clone());
        row.resolved_at = Some(self.now);
        row.resolution_data = data;
        row.updated_at = self.now;
        let kind = match status {
            ApprovalStatus::Approved => EventKind::Approved,
            ApprovalStatus::Rejected => EventKind::Rejected,
            _ => EventKind::Cancelled,
        };
        events.push((kind, trail::resolution_data(&row)));
        DecisionEffect { vote, row, resolves: true, events }
    }
}

/// `{"note": ..}`, or nothing without a note.
fn note_data(note: &Option<String>) -> Option<Value> {
    note.as_ref().map(|note| json!({ "note": note }))
}

/// The resolution data of an approval: its note, values and result, as `update_approval` takes
/// them.
fn approval_data(note: &Option<String>, values: &Option<Map<String, Value>>, result: &Option<Value>) -> Option<Value> {
    let mut data = Map::new();
    if let Some(note) = note {
        data.insert("note".to_owned(), Value::String(note.clone()));
    }
    if let Some(values) = values {
        data.insert("values".to_owned(), Value::Object(values.clone()));
    }
    if let Some(result) = result {
        data.insert("result".to_owned(), result.clone());
    }
    (!data.is_empty()).then_some(Value::Object(data))
}
