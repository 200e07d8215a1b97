//! The approval lifecycle: pause, resolve, continue, audit; every rule of the gate.

use std::sync::Arc;

use chrono::Utc;
use kern::Error;
use kern::prelude::*;
use kern::run::RunOptions;
use kern::run::ToolCallStatus;
use kern::trail::EventKind;
use serde_json::{Map, Value, json};

use crate::backend::Backend;
use crate::on_every_backend;
use crate::tools::*;

fn script() -> ScriptedModel {
    ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .when_user_contains("purge", Reply::call("purge_logs", json!({"days": 30})))
        .when_user_contains("pay", Reply::call("send_payment", json!({"to": "acme"})))
        .when_user_contains("migrate", Reply::call("run_migration", json!({"name": "v2"})))
        .when_user_contains("archive", Reply::call("archive_records", json!({"table": "orders"})))
        .when_user_contains("rotate", Reply::call("rotate_keys", json!({"service": "billing"})))
        .when_user_contains("discount", Reply::call("set_discount", json!({"code": "WINTER"})))
        .when_user_contains("ship", Reply::call("ship_order", json!({"order_id": "A-9"})))
        .when_user_contains(
            "cleanup",
            Reply::calls([("delete_user_data", json!({"user_id": "7"})), ("restart_service", json!({"name": "web"}))]),
        )
}

fn agent(store: Arc<dyn Store>) -> Agent {
    Agent::builder()
        .id("ops-agent")
        .name("Ops")
        .model(script())
        .tool(DeleteUserData)
        .tool(PurgeLogs)
        .tool(SendPayment)
        .tool(RunMigration)
        .tool(ArchiveRecords)
        .tool(RotateKeys)
        .tool(SetDiscount)
        .tool(ShipOrder)
        .tool(RestartService)
        .db(store)
        .build()
        .unwrap()
}

/// The agent the cross-process test pauses in one process and continues in another.
pub fn agent_for_process(store: Arc<dyn Store>) -> Agent {
    agent(store)
}

fn as_user(user: &str) -> RunOptions {
    RunOptions::default().user_id(user)
}

async fn pending_row(store: &dyn Store, run_id: &str) -> Approval {
    let page = store.list_approvals(&ApprovalQuery::default().run_id(run_id)).await.unwrap();
    assert_eq!(page.total, 1, "one row per gated call: {page:?}");
    page.items.into_iter().next().unwrap()
}

fn resolve(status: ApprovalStatus, data: Option<Value>) -> ApprovalUpdate {
    ApprovalUpdate {
        expected_status: Some(ApprovalStatus::Pending),
        status,
        resolved_by: Some("admin-1".into()),
        resolved_at: Some(Utc::now()),
        resolution_data: data,
    }
}

on_every_backend!(
    a_pause_writes_one_pending_row_with_every_field,
    continuing_before_the_admin_decides_is_an_error_and_changes_nothing,
    an_approved_call_runs_once_with_an_idempotency_key,
    the_row_wins_over_the_callers_confirmation,
    a_missing_row_is_an_error,
    an_expired_row_refuses_the_call,
    approved_user_input_runs_with_the_admins_values,
    a_persons_value_wins_over_the_models_for_a_user_input_field,
    user_input_that_does_not_fit_is_refused_at_resolve_time,
    approved_external_execution_feeds_back_the_result,
    rejection_refuses_every_pause_type,
    a_row_that_disagrees_with_the_paused_call_is_refused,
    plain_calls_paused_in_the_same_turn_take_the_callers_answer,
    concurrent_continues_run_the_tool_exactly_once,
    audit_tools_write_a_row_only_when_resolved,
    audit_rows_carry_the_pause_type_of_their_call,
    a_fresh_agent_and_store_handle_continue_the_run,
    the_row_follows_the_run_into_error,
    a_row_past_its_expiry_or_cancelled_refuses_the_call,
    approving_an_external_execution_needs_its_result,
    a_required_tool_without_a_hitl_kind_still_waits_for_an_admin,
    a_tool_that_now_requires_approval_is_gated_in_runs_paused_before,
);

async fn a_pause_writes_one_pending_row_with_every_field(backend: Backend) {
    let store = backend.store();
    let run = agent(store.clone()).run_with("delete user 42", as_user("user-9")).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let row = pending_row(&*store, &run.run_id).await;
    let requirement = &run.requirements[0];
    assert_eq!(requirement.approval_id.as_deref(), Some(row.id.as_str()));
    assert_eq!(requirement.approval_type, Some(ApprovalType::Required));
    assert_eq!(run.tools[0].approval_id.as_deref(), Some(row.id.as_str()));

    assert_eq!(row.status, ApprovalStatus::Pending);
    assert_eq!(row.run_id, run.run_id);
    assert_eq!(row.session_id, run.session_id);
    assert_eq!(row.agent_id.as_deref(), Some("ops-agent"));
    assert_eq!(row.team_id, None);
    assert_eq!(row.user_id.as_deref(), Some("user-9"));
    assert_eq!(row.source_type, SourceType::Agent);
    assert_eq!(row.source_name.as_deref(), Some("Ops"));
    assert_eq!(row.approval_type, ApprovalType::Required);
    assert_eq!(row.pause_type, PauseType::Confirmation);
    assert_eq!(row.tool_name, "delete_user_data");
    assert_eq!(row.tool_args, json!({"user_id": "42"}));
    assert_eq!(row.tool_call_id, requirement.tool_call_id());
    assert_eq!(row.requirements, run.requirements);
    assert_eq!(row.expires_at, None);
    assert_eq!(row.run_status, RunStatus::Paused);
    assert!(ran(&run.run_id).is_empty());

    let run = agent(store.clone()).run("purge old logs").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    let ttl = row.expires_at.expect("expires_in sets expires_at") - row.created_at;
    assert_eq!(ttl, chrono::Duration::hours(1));
}

async fn continuing_before_the_admin_decides_is_an_error_and_changes_nothing(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let mut run = agent.run("delete user 42").await.unwrap();
    run.requirements[0].confirm();
    let err = agent.continue_run(&run.run_id, run.requirements.clone()).await.unwrap_err();
    let row = pending_row(&*store, &run.run_id).await;
    assert!(matches!(err, Error::ApprovalPending { ref approval_id } if *approval_id == row.id), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert!(ran(&run.run_id).is_empty());

    store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap();
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
}

async fn an_approved_call_runs_once_with_an_idempotency_key(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run_with("delete user 42", as_user("user-9")).await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap();

    let done = agent.continue_run(&run.run_id, run.requirements.clone()).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.content.as_deref(), Some("Done. delete_user_data: All data for user 42 has been deleted."));
    let calls = ran(&run.run_id);
    assert_eq!(calls.len(), 1);
    let context = &calls[0].context;
    assert_eq!(context.approval_id.as_deref(), Some(row.id.as_str()));
    assert_eq!(context.idempotency_key, Some(format!("{}:{}", row.id, row.tool_call_id)));
    assert_eq!(context.user_id.as_deref(), Some("user-9"));

    let record = done.approval().expect("the deciding row is on the output");
    assert_eq!(record.id, row.id);
    assert_eq!(record.status, ApprovalStatus::Approved);
    assert_eq!(record.resolved_by.as_deref(), Some("admin-1"));
    assert_eq!(done.approvals.len(), 1);
    assert_eq!(done.metadata["approval"], serde_json::to_value(record).unwrap(), "as DESIGN exposes it");
    let row = store.get_approval(&row.id).await.unwrap().unwrap();
    assert_eq!(row.run_status, RunStatus::Completed);

    let again = agent.continue_run(&run.run_id, run.requirements).await.unwrap_err();
    assert!(matches!(again, Error::RunNotPaused { status: RunStatus::Completed, .. }), "{again:?}");
    assert_eq!(ran(&run.run_id).len(), 1);
}

async fn the_row_wins_over_the_callers_confirmation(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let mut run = agent.run("delete user 42").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    let note = json!({"note": "user 42 has an open legal hold"});
    store.update_approval(&row.id, resolve(ApprovalStatus::Rejected, Some(note))).await.unwrap();

    run.requirements[0].confirm();
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.tools[0].status, ToolCallStatus::Rejected);
    assert_eq!(
        done.content.as_deref(),
        Some(
            "Done. delete_user_data: The call to `delete_user_data` was rejected by an admin: \
             user 42 has an open legal hold"
        )
    );
    assert!(ran(&run.run_id).is_empty());
    // The row that decided the call is on the output, with the admin's note.
    assert_eq!(done.metadata["approval"]["status"], "rejected");
    assert_eq!(done.metadata["approval"]["resolution_data"]["note"], "user 42 has an open legal hold");
    let row = store.get_approval(&row.id).await.unwrap().unwrap();
    assert_eq!(row.run_status, RunStatus::Completed);
}

/// Points the first paused call of run `run_id` at `row` instead of its own row (writing `row`
/// when it is new), as someone tampering with the stored run would.
async fn repoint(store: &dyn Store, run_id: &str, row: Option<&Approval>, id: &str) {
    let mut run = store.load_run(run_id).await.unwrap().unwrap();
    run.requirements[0].approval_id = Some(id.to_owned());
    run.requirements[0].tool_execution.approval_id = Some(id.to_owned());
    store.save_runs(std::slice::from_ref(&run), row.map(std::slice::from_ref).unwrap_or_default(), &[]).await.unwrap();
}

async fn a_missing_row_is_an_error(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let mut run = agent.run("delete user 42").await.unwrap();
    repoint(&*store, &run.run_id, None, "no-such-row").await;
    run.requirements[0].confirm();
    let err = agent.continue_run(&run.run_id, run.requirements).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMissing { .. }), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert!(ran(&run.run_id).is_empty());
}

async fn an_expired_row_refuses_the_call(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("purge old logs").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    let expired = store.expire_approvals(Utc::now() + chrono::Duration::days(1)).await.unwrap();
    assert!(expired >= 1);
    let err = store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { from: ApprovalStatus::Expired, .. }), "{err:?}");

    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.tools[0].status, ToolCallStatus::Rejected);
    assert!(done.content.as_deref().unwrap().contains("its approval expired"));
    assert!(ran(&run.run_id).is_empty());
    let decided = done.approval().expect("the expired row is on the output");
    assert_eq!((decided.id.as_str(), decided.status), (row.id.as_str(), ApprovalStatus::Expired));
}

async fn approved_user_input_runs_with_the_admins_values(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("pay acme").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    assert_eq!(row.pause_type, PauseType::UserInput);
    let schema = row.requirement().unwrap().user_input_schema.clone().unwrap();
    assert_eq!(schema["required"], json!(["amount"]));

    store
        .update_approval(&row.id, resolve(ApprovalStatus::Approved, Some(json!({"values": {"amount": 250}}))))
        .await
        .unwrap();
    let done = agent.continue_run(&run.run_id, run.requirements.clone()).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id)[0].args, json!({"to": "acme", "amount": 250}));

    // Flat values work too, and a value named `note` is the call's, not a note of the admin's.
    let run = agent.run("pay acme").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    let values = json!({"amount": 9, "note": "March"});
    let approved = store.update_approval(&row.id, resolve(ApprovalStatus::Approved, Some(values))).await.unwrap();
    assert_eq!(approved.note(), None);
    assert_eq!(approved.user_input_values().map(|values| values["note"].clone()), Some(json!("March")));
    let done = agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(ran(&run.run_id)[0].args, json!({"to": "acme", "amount": 9}));
    assert_eq!(done.tools[0].result, Some(json!("sent 9 to acme (March)")), "the call got its note");

    // The row wins: approving without the values is refused, and a caller's value is ignored.
    let mut run = agent.run("pay acme").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    let err = store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidResolution { .. }), "{err:?}");
    store
        .update_approval(&row.id, resolve(ApprovalStatus::Approved, Some(json!({"values": {"amount": 5}}))))
        .await
        .unwrap();
    run.requirements[0].provide_user_input(json!({"amount": 1_000_000}).as_object().unwrap().clone());
    agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(ran(&run.run_id)[0].args, json!({"to": "acme", "amount": 5}));
}

async fn a_persons_value_wins_over_the_models_for_a_user_input_field(backend: Backend) {
    // A hand-written tool whose schema lets the model write the field a person is to fill.
    let schema = json!({"type": "object", "properties": {"to": {"type": "string"}, "amount": {"type": "integer"}}});
    let input = kern::tools::Hitl::UserInput { fields: vec!["amount".into()] };
    let policy = Some(kern::approval::ApprovalPolicy::REQUIRED);
    let transfer = kern::tools::ToolDefinition::new("transfer", "Transfer money.", schema, input, policy);
    let model = ScriptedModel::new()
        .when_user_contains("pay", Reply::call("transfer", json!({"to": "acme", "amount": 1_000_000})));
    let store = backend.store();
    let agent = Agent::builder().model(model).tool(ByHand(transfer)).db(store.clone()).build().unwrap();
    let run = agent.run("pay acme").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;

    store
        .update_approval(&row.id, resolve(ApprovalStatus::Approved, Some(json!({"values": {"amount": 10}}))))
        .await
        .unwrap();
    agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(ran(&run.run_id)[0].args, json!({"to": "acme", "amount": 10}));
}

async fn user_input_that_does_not_fit_is_refused_at_resolve_time(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("pay acme").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    for bad in [
        json!({"values": {"amount": "lots"}}),
        json!({"values": {"amount": -5}}),
        json!({"values": {"amount": 5, "fee": 1}}),
        json!({"values": {}}),
        json!("250"),
    ] {
        let err =
            store.update_approval(&row.id, resolve(ApprovalStatus::Approved, Some(bad.clone()))).await.unwrap_err();
        assert!(matches!(err, Error::InvalidResolution { .. }), "{bad}: {err:?}");
    }
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().status, ApprovalStatus::Pending);
    // Values missing keep the run paused: its row still waits for them.
    let err = agent.continue_run(&run.run_id, run.requirements).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalPending { .. }), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert!(ran(&run.run_id).is_empty());
}

async fn approved_external_execution_feeds_back_the_result(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("migrate the db").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    assert_eq!(row.pause_type, PauseType::ExternalExecution);
    store
        .update_approval(&row.id, resolve(ApprovalStatus::Approved, Some(json!({"result": "migration v2 applied"}))))
        .await
        .unwrap();
    // The caller hands back another result: the row's is the one the model reads.
    let mut requirements = run.requirements;
    requirements[0].set_external_execution_result("migration v3 applied");
    let done = agent.continue_run(&run.run_id, requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.tools[0].status, ToolCallStatus::External);
    assert_eq!(done.content.as_deref(), Some("Done. run_migration: migration v2 applied"));
    assert!(ran(&run.run_id).is_empty());
}

async fn rejection_refuses_every_pause_type(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    for input in ["delete user 42", "pay acme", "migrate the db"] {
        let mut run = agent.run(input).await.unwrap();
        let row = pending_row(&*store, &run.run_id).await;
        store.update_approval(&row.id, resolve(ApprovalStatus::Rejected, None)).await.unwrap();
        // Whatever the caller says, the rejected row decides.
        match row.pause_type {
            PauseType::Confirmation => run.requirements[0].confirm(),
            PauseType::UserInput => {
                run.requirements[0].provide_user_input(json!({"amount": 1}).as_object().unwrap().clone())
            }
            PauseType::ExternalExecution => run.requirements[0].set_external_execution_result("done"),
        }
        let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{input}");
        assert_eq!(done.tools[0].status, ToolCallStatus::Rejected, "{input}");
        assert!(done.content.unwrap().contains("rejected by an admin."), "{input}");
        assert!(ran(&run.run_id).is_empty(), "{input}");
    }
}

async fn a_row_that_disagrees_with_the_paused_call_is_refused(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("delete user 42").await.unwrap();
    let mut row = pending_row(&*store, &run.run_id).await;
    // Someone swaps the row for one approving other arguments.
    row.id = format!("{}-forged", row.id);
    row.tool_args = json!({"user_id": "*"});
    row.status = ApprovalStatus::Approved;
    repoint(&*store, &run.run_id, Some(&row), &row.id).await;
    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMismatch { .. }), "{err:?}");
    assert!(ran(&run.run_id).is_empty());
}

async fn plain_calls_paused_in_the_same_turn_take_the_callers_answer(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let mut run = agent.run("cleanup").await.unwrap();
    assert_eq!(run.requirements.len(), 2);
    let page = store.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await.unwrap();
    assert_eq!(page.total, 1, "only the approval tool opens a row");
    store.update_approval(&page.items[0].id, resolve(ApprovalStatus::Approved, None)).await.unwrap();
    for requirement in &mut run.requirements {
        if requirement.tool_execution.tool_name == "restart_service" {
            requirement.reject("not now");
        }
    }
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let tools: Vec<_> = ran(&run.run_id).into_iter().map(|r| r.tool).collect();
    assert_eq!(tools, vec!["delete_user_data"]);
}

async fn concurrent_continues_run_the_tool_exactly_once(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("delete user 42").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap();

    let completed = continued_at_once(|| {
        let (agent, run_id, requirements) = (agent.clone(), run.run_id.clone(), run.requirements.clone());
        async move { agent.continue_run(&run_id, requirements).await }
    })
    .await;
    assert_eq!(completed, 1);
    assert_eq!(ran(&run.run_id).len(), 1);
}

/// Starts sixteen continues of one run at once (together past a barrier, so that their reads
/// of the paused run race their claims) and returns how many completed it; every other must be
/// refused as no longer paused.
pub async fn continued_at_once<F, Fut>(continue_run: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = kern::Result<RunOutput>> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let (start, attempt) = (start.clone(), continue_run());
            tokio::spawn(async move {
                start.wait().await;
                attempt.await
            })
        })
        .collect();
    let mut completed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(output) => {
                assert_eq!(output.status, RunStatus::Completed);
                completed += 1;
            }
            Err(Error::RunNotPaused { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    completed
}

async fn audit_rows_carry_the_pause_type_of_their_call(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());

    let mut run = agent.run_with("discount the winter code", as_user("user-3")).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    run.requirements[0].provide_user_input(Map::from_iter([("percent".to_owned(), json!(10))]));
    run.requirements[0].set_resolved_by("lead-7");
    assert_eq!(agent.continue_run(&run.run_id, run.requirements).await.unwrap().status, RunStatus::Completed);
    let row = pending_row(&*store, &run.run_id).await;
    assert_eq!(
        (row.approval_type, row.pause_type, row.status),
        (ApprovalType::Audit, PauseType::UserInput, ApprovalStatus::Approved)
    );
    assert_eq!(row.resolution_data, Some(json!({"values": {"percent": 10}})));
    assert_eq!((row.user_id.as_deref(), row.resolved_by.as_deref()), (Some("user-3"), Some("lead-7")));

    let mut run = agent.run_with("ship order A-9", as_user("user-3")).await.unwrap();
    run.requirements[0].set_external_execution_result("shipped by the warehouse");
    run.requirements[0].set_resolved_by("lead-7");
    assert_eq!(agent.continue_run(&run.run_id, run.requirements).await.unwrap().status, RunStatus::Completed);
    let row = pending_row(&*store, &run.run_id).await;
    assert_eq!((row.pause_type, row.status), (PauseType::ExternalExecution, ApprovalStatus::Approved));
    assert_eq!(row.resolution_data, Some(json!({"result": "shipped by the warehouse"})));
}

async fn audit_tools_write_a_row_only_when_resolved(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    for (input, tool) in [("archive orders", "archive_records"), ("rotate billing keys", "rotate_keys")] {
        let mut run = agent.run_with(input, as_user("user-3")).await.unwrap();
        assert_eq!(run.status, RunStatus::Paused);
        assert_eq!(run.requirements[0].approval_type, Some(ApprovalType::Audit));
        let rows = store.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await.unwrap();
        assert_eq!(rows.total, 0, "{tool}: no row before the decision");

        run.requirements[0].confirm();
        run.requirements[0].set_resolved_by("lead-7");
        let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed);
        let row = pending_row(&*store, &run.run_id).await;
        assert_eq!(row.approval_type, ApprovalType::Audit, "{tool}");
        assert_eq!(row.status, ApprovalStatus::Approved);
        assert_eq!(row.pause_type, PauseType::Confirmation);
        assert_eq!(row.tool_name, tool);
        assert_eq!(row.user_id.as_deref(), Some("user-3"));
        assert_eq!(row.resolved_by.as_deref(), Some("lead-7"));
        assert_eq!(row.run_status, RunStatus::Completed);
        let ran = ran(&run.run_id);
        assert_eq!(ran.len(), 1);
        // Its row's trail says it ran, as a row an admin approved does. No admin approved it:
        // its context names no approval, and a confirmation given again would make a new row.
        assert_eq!(ran[0].context.approval_id, None, "{tool}");
        assert_eq!(done.tools[0].approval_id.as_deref(), Some(row.id.as_str()), "{tool}");
        let kinds: Vec<EventKind> = store.trail(&row.id).await.unwrap().iter().map(|event| event.kind).collect();
        assert_eq!(kinds, [EventKind::Created, EventKind::Approved, EventKind::Executed], "{tool}");
    }

    let mut run = agent.run_with("archive orders", as_user("user-3")).await.unwrap();
    run.requirements[0].reject("keep them");
    // An audit row names who decided.
    let err = agent.continue_run(&run.run_id, run.requirements.clone()).await.unwrap_err();
    assert!(matches!(err, Error::AuditWithoutResolver { .. }), "{err:?}");
    run.requirements[0].set_resolved_by("lead-7");
    agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    assert_eq!(row.status, ApprovalStatus::Rejected);
    assert_eq!(row.resolution_data, Some(json!({"note": "keep them"})));
    assert!(ran(&run.run_id).is_empty());
}

async fn a_fresh_agent_and_store_handle_continue_the_run(backend: Backend) {
    let run = agent(backend.store()).run("delete user 42").await.unwrap();
    let admin = backend.reopen().await;
    let row = pending_row(&*admin, &run.run_id).await;
    admin.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap();
    let done = agent(backend.reopen().await).continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), 1);
}

#[tokio::test]
async fn a_pause_that_cannot_be_stored_fails_the_run() {
    let store = Arc::new(crate::backend::ProbeStore::failing_saves());
    let err = agent(store.clone()).run("delete user 42").await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    // The pause was the run's one save: it failed, and nothing ran after it.
    assert_eq!(store.calls(), ["save_runs"]);
}

/// A pause is one save: the paused run and its pending row, together.
#[tokio::test]
async fn a_pause_is_one_save_of_the_run_and_its_row() {
    let store = Arc::new(crate::backend::ProbeStore::default());
    let run = agent(store.clone()).run("delete user 42").await.unwrap();
    let row = run.requirements[0].approval_id.clone().expect("a row");
    let saved = store.saved();
    assert_eq!(saved, [crate::backend::SavedBatch { runs: vec![run.run_id.clone()], rows: vec![row] }]);
}

async fn the_row_follows_the_run_into_error(backend: Backend) {
    let store = backend.store();
    // After the approved call, the model asks for another round, past the limit of one.
    let model = ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .after_tool("delete_user_data", Reply::call("delete_user_data", json!({"user_id": "43"})));
    let agent = Agent::builder().model(model).tool(DeleteUserData).db(store.clone()).max_rounds(1).build().unwrap();
    let run = agent.run("delete user 42").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap();

    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::RoundLimit { .. }), "{err:?}");
    assert_eq!(ran(&run.run_id).len(), 1);
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Error);
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().run_status, RunStatus::Error);
}

async fn a_row_past_its_expiry_or_cancelled_refuses_the_call(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    // Past its expiry but never swept by `expire_approvals`: still refused.
    let run = agent.run("purge old logs").await.unwrap();
    let mut row = pending_row(&*store, &run.run_id).await;
    row.id = format!("{}-lapsed", row.id);
    row.expires_at = Some(row.created_at - chrono::Duration::seconds(1));
    repoint(&*store, &run.run_id, Some(&row), &row.id).await;
    let done = agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.tools[0].status, ToolCallStatus::Rejected);
    assert!(done.content.unwrap().contains("its approval expired"));

    let run = agent.run("delete user 42").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    store.update_approval(&row.id, resolve(ApprovalStatus::Cancelled, None)).await.unwrap();
    let done = agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert!(done.content.unwrap().contains("its approval was cancelled"));
    assert!(ran(&run.run_id).is_empty());
}

async fn approving_an_external_execution_needs_its_result(backend: Backend) {
    let store = backend.store();
    let run = agent(store.clone()).run("migrate the db").await.unwrap();
    let row = pending_row(&*store, &run.run_id).await;
    for data in [None, Some(json!({"note": "done"}))] {
        let err = store.update_approval(&row.id, resolve(ApprovalStatus::Approved, data)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidResolution { .. }), "{err:?}");
    }
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().status, ApprovalStatus::Pending);
}

async fn a_required_tool_without_a_hitl_kind_still_waits_for_an_admin(backend: Backend) {
    let store = backend.store();
    let model = ScriptedModel::new().when_user_contains("wipe", Reply::call("wipe_disk", json!({})));
    let agent = Agent::builder().model(model).tool(WipeDisk).db(store.clone()).build().unwrap();
    let run = agent.run("wipe it").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.requirements[0].pause_type, PauseType::Confirmation);
    assert!(ran(&run.run_id).is_empty());
    let row = pending_row(&*store, &run.run_id).await;
    store.update_approval(&row.id, resolve(ApprovalStatus::Approved, None)).await.unwrap();
    agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(ran(&run.run_id).len(), 1);
}

async fn a_tool_that_now_requires_approval_is_gated_in_runs_paused_before(backend: Backend) {
    let store = backend.store();
    let build = |gated: bool| {
        let model =
            ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "db"})));
        let builder = Agent::builder().id("ops").model(model).db(store.clone());
        if gated { builder.tool(RestartServiceGated) } else { builder.tool(RestartService) }.build().unwrap()
    };
    let mut run = build(false).run("restart").await.unwrap();
    run.requirements[0].confirm();
    let err = build(true).continue_run(&run.run_id, run.requirements).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMissing { .. }), "{err:?}");
    assert!(ran(&run.run_id).is_empty());
}
