//! The approval gate: what a paused call needs before it may run, and what was decided.
//!
//! At a pause the gate opens one pending row per required-approval call. At a continue it
//! decides every paused call from the stored rows (for required approvals: the row wins over
//! whatever the caller passed) and the caller's requirements (for plain HITL and audit
//! calls). Deciding is pure, so a continue can decide before it claims the run and write
//! nothing when a decision is an error.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::approval::{Approval, ApprovalStatus, ApprovalType, OnExpire, PauseType};
use crate::error::{Error, Result};
use crate::limits;
use crate::run::{RunRecord, RunRequirement, RunStatus};
use crate::schema;
use crate::trail::SYSTEM_PRINCIPAL;

use super::step::Identity;
use super::toolbox::Toolbox;

/// Who refused a call, which decides what the model is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The caller rejected the requirement.
    User,
    /// An admin rejected the approval row.
    Admin,
    /// The row expired before anyone decided.
    Expired,
    /// The row was cancelled.
    Cancelled,
}

impl Refusal {
    /// What the model is told of a call refused this way, with the refuser's note.
    pub(crate) fn text(self, tool: &str, note: Option<&str>) -> String {
        let head = match self {
            Refusal::User => format!("The call to `{tool}` was rejected by the user"),
            Refusal::Admin => format!("The call to `{tool}` was rejected by an admin"),
            Refusal::Expired => {
                format!("The call to `{tool}` was not run: its approval expired before an admin decided")
            }
            Refusal::Cancelled => format!("The call to `{tool}` was not run: its approval was cancelled"),
        };
        match note {
            Some(note) => format!("{head}: {note}"),
            None => format!("{head}."),
        }
    }
}

/// What becomes of one paused call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Still waiting: the requirement (with anything supplied so far) stays on the run.
    Wait,
    /// Run the tool with these arguments.
    Run(Value),
    /// Do not run it; tell the model why.
    Refuse(Refusal, Option<String>),
    /// It was executed elsewhere; feed back this result.
    External(Value),
    /// Its row expired under a policy that cancels the whole run.
    CancelRun,
}

/// A paused call, its requirement as now known, the verdict, and the row that decided it.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub(crate) requirement: RunRequirement,
    pub(crate) verdict: Verdict,
    pub(crate) row: Option<Approval>,
}

/// True when one of `decisions` is a row's expiry under a policy that cancels the whole run.
pub(crate) fn cancels_run(decisions: &[Decision]) -> bool {
    cancelling_rows(decisions).next().is_some()
}

/// The rows of `decisions` whose expiry cancels the whole run.
pub(crate) fn cancelling_rows<'d>(
    decisions: impl IntoIterator<Item = &'d Decision>,
) -> impl Iterator<Item = &'d Approval> {
    decisions
        .into_iter()
        .filter(|decision| decision.verdict == Verdict::CancelRun)
        .filter_map(|decision| decision.row.as_ref())
}

/// The ids of the rows that gate the run's paused calls.
pub(crate) fn gating_row_ids<'r>(record: &'r RunRecord, tools: &Toolbox) -> Vec<&'r str> {
    record.requirements.iter().filter(|r| is_gated(r, tools)).filter_map(|r| r.approval_id.as_deref()).collect()
}

/// A call waits for an admin's row when it was paused as one, or when its tool requires
/// approval now (a run paused before the tool was marked must not slip past the gate).
fn is_gated(requirement: &RunRequirement, tools: &Toolbox) -> bool {
    requirement.approval_type == Some(ApprovalType::Required)
        || tools.requires_approval(&requirement.tool_execution.tool_name)
}

/// Decides every paused call of `record`.
///
/// `rows` holds the stored rows by id, each moved into the decision of its call; `caller` the
/// requirements the caller passed (only their decisions are taken: confirmation, note, values,
/// result, resolver; never the arguments). Errors leave nothing changed: a caller requirement
/// for no paused call, two for one call, a gated call without its row, a row that is still
/// pending, a row that does not match the call, and user input that does not fit the tool.
pub(crate) fn decide(
    identity: &Identity,
    tools: &Toolbox,
    record: &RunRecord,
    mut rows: HashMap<String, Approval>,
    caller: &[RunRequirement],
    now: DateTime<Utc>,
) -> Result<Vec<Decision>> {
    if let Some(stray) =
        caller.iter().find(|c| !record.requirements.iter().any(|r| r.tool_call_id() == c.tool_call_id()))
    {
        return Err(Error::UnknownRequirement {
            run_id: record.run_id.clone(),
            tool_call_id: stray.tool_call_id().to_owned(),
        });
    }
    let answered_before = |n: usize, answer: &RunRequirement| {
        caller[..n].iter().any(|earlier| earlier.tool_call_id() == answer.tool_call_id())
    };
    if let Some(twice) = caller.iter().enumerate().find_map(|(n, c)| answered_before(n, c).then_some(c)) {
        return Err(Error::DuplicateAnswer {
            run_id: record.run_id.clone(),
            tool_call_id: twice.tool_call_id().to_owned(),
        });
    }
    let decisions: Vec<Result<Decision>> = record
        .requirements
        .iter()
        .map(|stored| {
            let mut requirement = stored.clone();
            if let Some(answer) = caller.iter().find(|c| c.tool_call_id() == stored.tool_call_id()) {
                take_answer(&mut requirement, answer)?;
            }
            if is_gated(stored, tools) {
                decide_gated(identity, record, requirement, &mut rows, now)
            } else {
                let verdict = decide_by_caller(&requirement)?;
                if verdict != Verdict::Wait
                    && requirement.approval_type == Some(ApprovalType::Audit)
                    && requirement.resolved_by.is_none()
                {
                    return Err(Error::AuditWithoutResolver { tool_call_id: requirement.tool_call_id().to_owned() });
                }
                Ok(Decision { requirement, verdict, row: None })
            }
        })
        .collect();
    // A row that cancels the run on its expiry ends it, whatever the other calls wait for.
    if let Some(cancel) = decisions.iter().flatten().find(|decision| decision.verdict == Verdict::CancelRun) {
        return Ok(vec![cancel.clone()]);
    }
    decisions.into_iter().collect()
}

/// Copies the caller's decision onto the stored requirement, leaving the call itself alone.
/// Values and results kern would not store, and a resolver that is no key, are refused.
fn take_answer(requirement: &mut RunRequirement, answer: &RunRequirement) -> Result<()> {
    if let Some(values) = &answer.user_input {
        values.values().try_for_each(|value| limits::check_json("user_input", value))?;
    }
    if let Some(result) = &answer.external_result {
        limits::check_json("external_result", result)?;
    }
    if let Some(resolved_by) = &answer.resolved_by {
        limits::check_name("resolved_by", resolved_by)?;
    }
    requirement.confirmation = answer.confirmation;
    requirement.note.clone_from(&answer.note);
    if let Some(values) = &answer.user_input {
        requirement.user_input.get_or_insert_with(Map::new).extend(values.clone());
    }
    if answer.external_result.is_some() {
        requirement.external_result.clone_from(&answer.external_result);
    }
    if answer.resolved_by.is_some() {
        requirement.resolved_by.clone_from(&answer.resolved_by);
    }
    check_storable(requirement)
}

/// Refuses answers that, merged, could not be stored: found once the run is claimed, the
/// refusal would leave it running. The values are held as one object, and an audit call's row
/// wraps them, or the result, in its data a level deeper still.
fn check_storable(requirement: &RunRequirement) -> Result<()> {
    let wrapped = usize::from(requirement.approval_type == Some(ApprovalType::Audit));
    if let Some(values) = &requirement.user_input {
        let depth = 1 + values.values().map(limits::json_depth).max().unwrap_or(0);
        limits::check_depth("user_input", depth + wrapped)?;
    }
    if let Some(result) = &requirement.external_result {
        limits::check_depth("external_result", limits::json_depth(result) + wrapped)?;
    }
    Ok(())
}

fn decide_gated(
    identity: &Identity,
    record: &RunRecord,
    mut requirement: RunRequirement,
    rows: &mut HashMap<String, Approval>,
    now: DateTime<Utc>,
) -> Result<Decision> {
    let call = &requirement.tool_execution;
    let missing = || Error::ApprovalMissing { run_id: record.run_id.clone(), tool_call_id: call.tool_call_id.clone() };
    // Each row gates one call: a row that two calls name is missing for the second.
    let row = requirement.approval_id.as_ref().and_then(|id| rows.remove(id)).ok_or_else(missing)?;
    check_row_matches(identity, record, &requirement, &row)?;
    // An approver's edit replaces the model's arguments; the trail and the row keep both.
    if let Some(args) = row.edited_args().filter(|_| row.status == ApprovalStatus::Approved) {
        requirement.tool_execution.tool_args = args.clone();
    }
    let cancels_run = row.policy.as_ref().is_some_and(|policy| policy.on_expire == OnExpire::CancelRun);
    let verdict = match row.status_at(now) {
        ApprovalStatus::Pending => return Err(Error::ApprovalPending { approval_id: row.id }),
        ApprovalStatus::Expired if cancels_run => Verdict::CancelRun,
        ApprovalStatus::Expired => Verdict::Refuse(Refusal::Expired, None),
        ApprovalStatus::Cancelled => Verdict::Refuse(Refusal::Cancelled, None),
        ApprovalStatus::Rejected => Verdict::Refuse(Refusal::Admin, row.note().map(str::to_owned)),
        ApprovalStatus::Approved => match requirement.pause_type {
            PauseType::Confirmation => Verdict::Run(requirement.tool_execution.tool_args.clone()),
            // The row wins: an approved gated call takes its values or result from the admin
            // alone (`update_approval` refuses approving either without them).
            PauseType::UserInput => {
                requirement.user_input = row.user_input_values().cloned();
                user_input_verdict(&requirement)?
            }
            PauseType::ExternalExecution => row.external_result().cloned().map_or(Verdict::Wait, Verdict::External),
        },
    };
    Ok(Decision { requirement, verdict, row: Some(row) })
}

/// The row must be the one opened for this very call, by this runner, with the arguments
/// that were paused.
fn check_row_matches(
    identity: &Identity,
    record: &RunRecord,
    requirement: &RunRequirement,
    row: &Approval,
) -> Result<()> {
    let call = &requirement.tool_execution;
    let reason = if row.run_id != record.run_id {
        Some(format!("the row belongs to run `{}`", row.run_id))
    } else if (row.source_type, &row.agent_id, &row.team_id)
        != (identity.source_type, &identity.agent_id, &identity.team_id)
    {
        Some(format!("the row was opened by {} {:?} of team {:?}", row.source_type, row.agent_id, row.team_id))
    } else if row.tool_call_id != call.tool_call_id {
        Some(format!("the row decides call `{}`, not `{}`", row.tool_call_id, call.tool_call_id))
    } else if row.tool_name != call.tool_name {
        Some(format!("the row names tool `{}`, the call `{}`", row.tool_name, call.tool_name))
    } else if row.tool_args != call.tool_args {
        Some("the approved arguments differ from the paused call's".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::ApprovalMismatch { approval_id: row.id.clone(), reason }),
        None => Ok(()),
    }
}

fn decide_by_caller(requirement: &RunRequirement) -> Result<Verdict> {
    Ok(match requirement.confirmation {
        None => Verdict::Wait,
        Some(false) => Verdict::Refuse(Refusal::User, requirement.note.clone()),
        Some(true) => match requirement.pause_type {
            PauseType::Confirmation => Verdict::Run(requirement.tool_execution.tool_args.clone()),
            PauseType::UserInput => user_input_verdict(requirement)?,
            PauseType::ExternalExecution => {
                requirement.external_result.clone().map_or(Verdict::Wait, Verdict::External)
            }
        },
    })
}

/// Runs the call once every required value is there and all of them fit the schema.
fn user_input_verdict(requirement: &RunRequirement) -> Result<Verdict> {
    if !requirement.missing_user_input().is_empty() {
        return Ok(Verdict::Wait);
    }
    let refuse =
        |reason: String| Error::InvalidUserInput { tool_call_id: requirement.tool_call_id().to_owned(), reason };
    let values = requirement.user_input.clone().unwrap_or_default();
    let schema =
        requirement.user_input_schema.as_ref().ok_or_else(|| refuse("the call asks for no user input".into()))?;
    schema::validate(schema, &Value::Object(values.clone())).map_err(|error| refuse(error.to_string()))?;
    // Only the declared user-input fields are taken, and a person's value wins over one the
    // model wrote for the field (a hand-written tool's schema may let it): these fields are the
    // person's to fill.
    let declared = schema.get("properties").and_then(Value::as_object);
    let mut args = requirement.tool_execution.tool_args.as_object().cloned().unwrap_or_default();
    for (name, value) in values {
        if declared.is_some_and(|fields| fields.contains_key(&name)) {
            args.insert(name, value);
        }
    }
    Ok(Verdict::Run(Value::Object(args)))
}

/// Opens one pending row per required-approval call that has none yet, and marks the calls
/// with their row ids. Each row carries the requirement it decides, as the admin's context:
/// only its own, so that a turn of many gated calls stores as much as its calls, not their
/// square.
pub(crate) fn open_rows(identity: &Identity, tools: &Toolbox, record: &mut RunRecord) -> Vec<Approval> {
    let now = crate::now();
    let mut rows = Vec::new();
    for index in 0..record.requirements.len() {
        let requirement = &record.requirements[index];
        if !is_gated(requirement, tools) || requirement.approval_id.is_some() {
            continue;
        }
        let mut row = new_row(identity, record, requirement, ApprovalType::Required, now);
        row.expires_at = tools.expires_in(&row.tool_name).and_then(|ttl| now.checked_add_signed(ttl));
        row.policy = tools.row_policy(&row.tool_name);
        row.run_status = RunStatus::Paused;
        let requirement = &mut record.requirements[index];
        requirement.approval_id = Some(row.id.clone());
        requirement.tool_execution.approval_id = Some(row.id.clone());
        row.requirements = vec![requirement.clone()];
        if let Some(execution) = record.tools.iter_mut().find(|e| e.tool_call_id == row.tool_call_id) {
            execution.approval_id = Some(row.id.clone());
        }
        rows.push(row);
    }
    rows
}

/// The audit row of a decided audit call: what was decided, by whom, with what data.
pub(crate) fn audit_row(identity: &Identity, record: &RunRecord, decision: &Decision) -> Option<Approval> {
    let requirement = &decision.requirement;
    if requirement.approval_type != Some(ApprovalType::Audit) {
        return None;
    }
    let (status, resolution_data) = match &decision.verdict {
        Verdict::Wait | Verdict::CancelRun => return None,
        Verdict::Run(_) => {
            (ApprovalStatus::Approved, requirement.user_input.as_ref().map(|values| json!({ "values": values })))
        }
        Verdict::External(result) => (ApprovalStatus::Approved, Some(json!({ "result": result }))),
        Verdict::Refuse(_, note) => (ApprovalStatus::Rejected, note.as_ref().map(|note| json!({ "note": note }))),
    };
    let now = crate::now();
    let mut row = new_row(identity, record, requirement, ApprovalType::Audit, now);
    row.status = status;
    row.resolution_data = resolution_data;
    row.resolved_by.clone_from(&requirement.resolved_by);
    row.resolved_at = Some(now);
    row.requirements = vec![requirement.clone()];
    Some(row)
}

/// The audit row of a call whose tool's `when` condition did not require approval: it runs at
/// once, and the row says why no one was asked.
pub(crate) fn unconditioned_row(identity: &Identity, record: &RunRecord, requirement: &RunRequirement) -> Approval {
    let now = crate::now();
    let mut row = new_row(identity, record, requirement, ApprovalType::Audit, now);
    row.status = ApprovalStatus::Approved;
    row.resolution_data = Some(json!({ "note": "the approval's condition did not require approval for this call" }));
    row.resolved_by = Some(SYSTEM_PRINCIPAL.to_owned());
    row.resolved_at = Some(now);
    row.requirements = vec![requirement.clone()];
    row
}

/// A pending row for `requirement`'s call in `record`, as `identity` made it.
fn new_row(
    identity: &Identity,
    record: &RunRecord,
    requirement: &RunRequirement,
    approval_type: ApprovalType,
    now: DateTime<Utc>,
) -> Approval {
    let call = &requirement.tool_execution;
    Approval {
        id: crate::new_id(),
        run_id: record.run_id.clone(),
        session_id: record.session_id.clone(),
        status: ApprovalStatus::Pending,
        approval_type,
        pause_type: requirement.pause_type,
        source_type: identity.source_type,
        source_name: identity.name.clone(),
        agent_id: identity.agent_id.clone(),
        team_id: identity.team_id.clone(),
        user_id: record.user_id.clone(),
        tool_name: call.tool_name.clone(),
        tool_args: call.tool_args.clone(),
        tool_call_id: call.tool_call_id.clone(),
        requirements: Vec::new(),
        resolution_data: None,
        resolved_by: None,
        resolved_at: None,
        created_at: now,
        updated_at: now,
        expires_at: None,
        run_status: record.status,
        policy: None,
    }
}
