//! What a store refuses to write, checked the same way by every store before it writes anything:
//! a key it could not look up, a JSON value it could not read back (see [`crate::limits`]), and
//! a row whose policy its call cannot honour.
//!
//! The records are destructured whole, so that a field added to one of them must be placed
//! here (as a key, as JSON, or as neither) before the crate compiles again.

use serde_json::Value;

use crate::approval::{Approval, ApprovalUpdate, RowPolicy, unfit_policy};
use crate::error::{Error, Result};
use crate::keys::ApiKey;
use crate::limits::{check_json, check_json_object, check_key, check_name, check_text};
use crate::run::{Delegation, MemberRun, RunRecord, RunRequirement, ToolExecution};
use crate::trail::Execution;

/// Refuses what [`Store::save_runs`](crate::store::Store::save_runs) would store but kern could
/// not look up or read back: a key column (ids, user, session, agent, team, tool name, call id,
/// resolver, an execution's principal) that is too long or holds a NUL character, or a JSON value (arguments, results,
/// requirements, resolution data, metadata) nested too deep. The error,
/// [`Error::InvalidInput`](crate::Error::InvalidInput), names the field; the store writes
/// nothing.
///
/// A row whose policy its call cannot honour is refused too, as the tool builders refuse the
/// policy: a quorum over a user-input or external-execution call (its values or result come from
/// one approver, and the last voter's would stand for all), or edits of a call that does not
/// run here.
pub fn check_save(runs: &[RunRecord], new_approvals: &[Approval], executions: &[Execution]) -> Result<()> {
    runs.iter().try_for_each(run)?;
    new_approvals.iter().try_for_each(|row| {
        approval_keys(row)?;
        approval_json(row)?;
        approval_policy(row)
    })?;
    executions.iter().try_for_each(executed)
}

/// What an execution's trail event carries: its row's key and call, looked up again, and its
/// principal and digest, text with no NUL (the principal is the runner's `agent:<id>`, a key's
/// length and more). Its `run_id` is not stored: the event takes its row's.
fn executed(execution: &Execution) -> Result<()> {
    let Execution { approval_id, run_id: _, tool_call_id, principal, succeeded: _, result_digest, recovered: _ } =
        execution;
    check_key("execution.approval_id", approval_id)?;
    check_key("execution.tool_call_id", tool_call_id)?;
    check_text("execution.principal", principal)?;
    check_text("execution.result_digest", result_digest)
}

/// Refuses an update that [`Store::update_approval`](crate::store::Store::update_approval)
/// would store but kern could not read back or show as stored: a resolver too long or holding a
/// control character (NUL among them), resolution data nested too deep. The error, [`Error::InvalidInput`](crate::Error::InvalidInput),
/// names the field; the row is left as it is.
pub fn check_update(update: &ApprovalUpdate) -> Result<()> {
    let ApprovalUpdate { expected_status: _, status: _, resolved_by, resolved_at: _, resolution_data } = update;
    // A name given anew, as a decision's principal is: whatever path stores it.
    if let Some(resolved_by) = resolved_by {
        check_name("resolved_by", resolved_by)?;
    }
    optional_json("resolution_data", resolution_data.as_ref())
}

/// Refuses an API key whose id, principal or roles could not be looked up again (see
/// [`check_key`]).
pub fn check_api_key(key: &ApiKey) -> Result<()> {
    check_key("api_key.id", &key.id)?;
    check_name("api_key.principal", &key.principal)?;
    key.roles.iter().try_for_each(|role| check_key("api_key.roles", role))
}

/// A run's key columns and the JSON values its state holds. The state's own nesting is fixed
/// and shallow (a value sits at most nine levels down), so values within the limit keep the
/// whole state readable.
fn run(run: &RunRecord) -> Result<()> {
    let RunRecord {
        run_id,
        session_id,
        user_id,
        agent_id,
        team_id,
        parent_run_id,
        status: _,
        // Text only: a message's tool calls carry their arguments as the model wrote them.
        input: _,
        messages: _,
        tools,
        requirements,
        approvals,
        content: _,
        metadata,
        usage: _,
        member_run_ids: _,
        delegations,
        created_at: _,
        updated_at: _,
    } = run;
    check_key("run_id", run_id)?;
    check_key("session_id", session_id)?;
    optional_key("user_id", user_id.as_deref())?;
    optional_key("agent_id", agent_id.as_deref())?;
    optional_key("team_id", team_id.as_deref())?;
    optional_key("parent_run_id", parent_run_id.as_deref())?;
    tools.iter().try_for_each(execution)?;
    requirements.iter().try_for_each(requirement)?;
    // Rows as they were read from a store: their keys are stored there, only their JSON here.
    approvals.iter().try_for_each(approval_json)?;
    check_json_object("metadata", metadata)?;
    delegations.iter().try_for_each(|Delegation { tool_call_id: _, runs }| {
        runs.iter().try_for_each(|MemberRun { member: _, status: _, content: _, requirements }| {
            requirements.iter().try_for_each(requirement)
        })
    })
}

fn approval_keys(row: &Approval) -> Result<()> {
    check_key("id", &row.id)?;
    check_key("run_id", &row.run_id)?;
    check_key("session_id", &row.session_id)?;
    optional_key("source_name", row.source_name.as_deref())?;
    optional_key("agent_id", row.agent_id.as_deref())?;
    optional_key("team_id", row.team_id.as_deref())?;
    optional_key("user_id", row.user_id.as_deref())?;
    check_key("tool_name", &row.tool_name)?;
    check_key("tool_call_id", &row.tool_call_id)?;
    // A new row decided already (an audit row) names its resolver anew.
    row.resolved_by.as_deref().map_or(Ok(()), |resolved_by| check_name("resolved_by", resolved_by))
}

fn approval_json(row: &Approval) -> Result<()> {
    // Destructured whole here, where every field is placed: keys in `approval_keys`.
    let Approval {
        id: _,
        run_id: _,
        session_id: _,
        status: _,
        approval_type: _,
        pause_type: _,
        source_type: _,
        source_name: _,
        agent_id: _,
        team_id: _,
        user_id: _,
        tool_name: _,
        tool_args,
        tool_call_id: _,
        requirements,
        resolution_data,
        resolved_by: _,
        resolved_at: _,
        created_at: _,
        updated_at: _,
        expires_at: _,
        run_status: _,
        policy,
    } = row;
    check_json("tool_args", tool_args)?;
    requirements.iter().try_for_each(requirement)?;
    optional_json("resolution_data", resolution_data.as_ref())?;
    policy.as_ref().map_or(Ok(()), row_policy)
}

/// Refuses a row whose policy its kind of call cannot honour (see [`check_save`]).
fn approval_policy(row: &Approval) -> Result<()> {
    let Some(policy) = &row.policy else { return Ok(()) };
    match unfit_policy(row.pause_type, policy.quorum, policy.allow_edit) {
        Some(reason) => Err(Error::InvalidInput { field: "policy", reason: reason.to_owned() }),
        None => Ok(()),
    }
}

fn row_policy(policy: &RowPolicy) -> Result<()> {
    let RowPolicy { approvers, quorum: _, self_approval: _, allow_edit: _, on_expire: _, parameters } = policy;
    approvers.iter().try_for_each(|role| check_key("approvers", role))?;
    optional_json("parameters", parameters.as_ref())
}

fn requirement(requirement: &RunRequirement) -> Result<()> {
    let RunRequirement {
        tool_execution,
        pause_type: _,
        confirmation: _,
        note: _,
        user_input_schema,
        user_input,
        external_result,
        approval_type: _,
        approval_id: _,
        member: _,
        resolved_by: _,
    } = requirement;
    execution(tool_execution)?;
    optional_json("user_input_schema", user_input_schema.as_ref())?;
    user_input.as_ref().map_or(Ok(()), |values| check_json_object("user_input", values))?;
    optional_json("external_result", external_result.as_ref())
}

fn execution(execution: &ToolExecution) -> Result<()> {
    let ToolExecution { tool_call_id: _, tool_name: _, tool_args, status: _, result, approval_id: _ } = execution;
    check_json("tool_args", tool_args)?;
    optional_json("result", result.as_ref())
}

fn optional_key(field: &'static str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |value| check_key(field, value))
}

fn optional_json(field: &'static str, value: Option<&Value>) -> Result<()> {
    value.map_or(Ok(()), |value| check_json(field, value))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::Error;
    use crate::approval::{ApprovalStatus, ApprovalType, PauseType, SourceType};
    use crate::limits::{MAX_JSON_DEPTH, MAX_KEY_LEN};
    use crate::models::Usage;
    use crate::run::{MemberRef, RunStatus, ToolCallStatus};

    /// Sets one key field of a row.
    type SetKey = fn(&mut Approval, String);

    /// Changes one field of a run.
    type EditRun = fn(&mut RunRecord);

    /// Changes one field of a run, with what it captures.
    type EditRunWith<'a> = Box<dyn Fn(&mut RunRecord) + 'a>;

    /// A value nesting exactly `depth` levels.
    fn nested(depth: usize) -> Value {
        (1..depth).fold(json!("x"), |inner, _| json!([inner]))
    }

    fn call(tool_args: Value) -> ToolExecution {
        ToolExecution {
            tool_call_id: "call-1".into(),
            tool_name: "lookup".into(),
            tool_args,
            status: ToolCallStatus::Paused,
            result: None,
            approval_id: None,
        }
    }

    fn row() -> Approval {
        let now = crate::now();
        Approval {
            id: "row-1".into(),
            run_id: "run-1".into(),
            session_id: "session-1".into(),
            status: ApprovalStatus::Pending,
            approval_type: ApprovalType::Required,
            pause_type: PauseType::Confirmation,
            source_type: SourceType::Agent,
            source_name: None,
            agent_id: None,
            team_id: None,
            user_id: None,
            tool_name: "lookup".into(),
            tool_args: json!({}),
            tool_call_id: "call-1".into(),
            requirements: vec![RunRequirement::new(call(json!({})), PauseType::Confirmation, None)],
            resolution_data: None,
            resolved_by: None,
            resolved_at: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            run_status: RunStatus::Paused,
            policy: None,
        }
    }

    fn record() -> RunRecord {
        let now = crate::now();
        RunRecord {
            run_id: "run-1".into(),
            session_id: "session-1".into(),
            user_id: None,
            agent_id: None,
            team_id: None,
            parent_run_id: None,
            status: RunStatus::Paused,
            input: "hi".into(),
            messages: Vec::new(),
            tools: Vec::new(),
            requirements: Vec::new(),
            approvals: Vec::new(),
            content: None,
            metadata: Map::new(),
            usage: Usage::default(),
            member_run_ids: Vec::new(),
            delegations: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn refused_field(result: Result<()>) -> &'static str {
        match result {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn values_at_the_limits_pass() {
        let mut run = record();
        run.user_id = Some("u".repeat(MAX_KEY_LEN));
        run.tools.push(call(nested(MAX_JSON_DEPTH)));
        let mut approval = row();
        approval.tool_args = nested(MAX_JSON_DEPTH);
        approval.resolved_by = Some("r".repeat(MAX_KEY_LEN));
        check_save(&[run], &[approval], &[]).unwrap();
    }

    #[test]
    fn every_key_column_of_a_row_is_checked() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let cases: [(&str, SetKey); 10] = [
            ("id", |row, key| row.id = key),
            ("run_id", |row, key| row.run_id = key),
            ("session_id", |row, key| row.session_id = key),
            ("source_name", |row, key| row.source_name = Some(key)),
            ("agent_id", |row, key| row.agent_id = Some(key)),
            ("team_id", |row, key| row.team_id = Some(key)),
            ("user_id", |row, key| row.user_id = Some(key)),
            ("tool_name", |row, key| row.tool_name = key),
            ("tool_call_id", |row, key| row.tool_call_id = key),
            ("resolved_by", |row, key| row.resolved_by = Some(key)),
        ];
        for (field, set) in cases {
            for key in [long.clone(), "a\0b".to_owned()] {
                let mut approval = row();
                set(&mut approval, key);
                assert_eq!(refused_field(check_save(&[], &[approval], &[])), field);
            }
        }
    }

    #[test]
    fn every_key_column_of_a_run_is_checked() {
        let cases: [(&str, EditRun); 6] = [
            ("run_id", |run| run.run_id = "\0".into()),
            ("session_id", |run| run.session_id = "\0".into()),
            ("user_id", |run| run.user_id = Some("\0".into())),
            ("agent_id", |run| run.agent_id = Some("\0".into())),
            ("team_id", |run| run.team_id = Some("\0".into())),
            ("parent_run_id", |run| run.parent_run_id = Some("\0".into())),
        ];
        for (field, set) in cases {
            let mut run = record();
            set(&mut run);
            assert_eq!(refused_field(check_save(&[run], &[], &[])), field);
        }
    }

    #[test]
    fn every_json_value_of_a_run_is_checked() {
        let deep = || nested(MAX_JSON_DEPTH + 1);
        let deep_object = || Map::from_iter([("a".to_owned(), nested(MAX_JSON_DEPTH))]);
        let paused = |execution| RunRequirement::new(execution, PauseType::UserInput, None);
        let cases: [(&str, EditRunWith<'_>); 9] = [
            ("tool_args", Box::new(|run| run.tools.push(call(deep())))),
            ("result", Box::new(|run| run.tools.push(ToolExecution { result: Some(deep()), ..call(json!({})) }))),
            ("metadata", Box::new(|run| run.metadata = deep_object())),
            ("tool_args", Box::new(|run| run.requirements.push(paused(call(deep()))))),
            (
                "user_input_schema",
                Box::new(|run| {
                    run.requirements.push(RunRequirement::new(call(json!({})), PauseType::UserInput, Some(deep())))
                }),
            ),
            (
                "user_input",
                Box::new(|run| {
                    run.requirements.push(RunRequirement { user_input: Some(deep_object()), ..paused(call(json!({}))) })
                }),
            ),
            (
                "external_result",
                Box::new(|run| {
                    run.requirements.push(RunRequirement { external_result: Some(deep()), ..paused(call(json!({}))) })
                }),
            ),
            (
                "resolution_data",
                Box::new(|run| run.approvals.push(Approval { resolution_data: Some(deep()), ..row() })),
            ),
            (
                "tool_args",
                Box::new(|run| {
                    let member = MemberRef { agent_id: "a".into(), agent_name: None, run_id: "run-2".into() };
                    let requirements = vec![paused(call(deep()))];
                    let runs = vec![MemberRun { member, status: RunStatus::Paused, content: None, requirements }];
                    run.delegations.push(Delegation { tool_call_id: "call-0".into(), runs });
                }),
            ),
        ];
        for (field, set) in cases {
            let mut run = record();
            set(&mut run);
            assert_eq!(refused_field(check_save(&[run], &[], &[])), field);
        }
    }

    #[test]
    fn the_json_values_of_a_row_are_checked() {
        let deep = nested(MAX_JSON_DEPTH + 1);
        assert_eq!(refused_field(check_save(&[], &[Approval { tool_args: deep.clone(), ..row() }], &[])), "tool_args");
        let requirements = vec![RunRequirement::new(call(deep.clone()), PauseType::Confirmation, None)];
        assert_eq!(refused_field(check_save(&[], &[Approval { requirements, ..row() }], &[])), "tool_args");
        let resolved = Approval { resolution_data: Some(deep), ..row() };
        assert_eq!(refused_field(check_save(&[], &[resolved], &[])), "resolution_data");
    }

    #[test]
    fn an_update_is_checked_for_its_resolver_and_data() {
        for resolver in ["admin\0", "admin\u{1b}[2J"] {
            assert_eq!(refused_field(check_update(&ApprovalUpdate::approve(resolver))), "resolved_by");
        }
        let update = ApprovalUpdate::approve("admin").with_data(nested(MAX_JSON_DEPTH + 1));
        assert_eq!(refused_field(check_update(&update)), "resolution_data");
        check_update(&ApprovalUpdate::approve("admin").with_data(nested(MAX_JSON_DEPTH))).unwrap();
    }
}
