//! Who may approve, end to end: a tool's `#[approval(..)]` policy on its rows, votes of eligible
//! principals, conditions, edits, expiry that cancels a run, and the trail that records it all.

use std::sync::Arc;
use std::time::Duration;

use kern::Error;
use kern::prelude::*;
use kern::run::ToolCallStatus;
use kern::trail::EventKind;
use serde_json::json;

use crate::backend::Backend;
use crate::on_every_backend;
use crate::tools::*;

on_every_backend!(
    a_quorum_of_eligible_principals_decides_and_the_trail_records_it,
    a_call_its_condition_does_not_flag_runs_at_once_with_an_audit_row,
    an_approved_edit_runs_the_tool_with_the_new_arguments_and_tells_the_model,
    an_expiry_that_cancels_the_run_cancels_it,
    a_call_its_requester_may_not_approve_needs_a_run_that_names_its_user,
    an_expiry_that_cancels_a_team_run_cancels_it_whatever_else_is_pending,
    a_paused_run_is_cancelled_with_its_rows,
);

fn is_large(args: &PayVendorArgs) -> bool {
    args.amount > 1000
}

/// Pay a vendor: finance decides, two of them, never the requester.
#[approval(approvers = ["finance"], quorum = 2, self_approval = false, when = is_large)]
#[tool(requires_confirmation)]
fn pay_vendor(context: &RunContext, vendor: String, amount: u32) -> String {
    crate::tools::log_call("pay_vendor", context, json!({ "vendor": vendor, "amount": amount }));
    format!("paid {amount} to {vendor}")
}

/// Email a customer; an approver may reword it.
#[approval(allow_edit)]
#[tool(requires_confirmation)]
fn email_customer(context: &RunContext, to: String, body: String) -> String {
    crate::tools::log_call("email_customer", context, json!({ "to": to, "body": body }));
    format!("sent to {to}: {body}")
}

/// Drop a table: if nobody decides within a second, the whole run is called off.
#[approval(expires_in = "1s", on_expire = "cancel_run")]
#[tool(requires_confirmation)]
fn drop_table(context: &RunContext, table: String) -> String {
    crate::tools::log_call("drop_table", context, json!({ "table": table }));
    format!("dropped {table}")
}

fn agent(store: Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("large", Reply::call("pay_vendor", json!({ "vendor": "acme", "amount": 5000 })))
        .when_user_contains("small", Reply::call("pay_vendor", json!({ "vendor": "acme", "amount": 20 })))
        .when_user_contains("email", Reply::call("email_customer", json!({ "to": "ada", "body": "You owe us." })))
        .when_user_contains(
            "drop",
            Reply::calls([("drop_table", json!({ "table": "orders" })), ("restart_service", json!({ "name": "db" }))]),
        )
        .after_tool("pay_vendor", Reply::text("paid"))
        .after_tool("email_customer", Reply::text("emailed"))
        .after_tool("drop_table", Reply::text("dropped"));
    Agent::builder()
        .id("policy-agent")
        .model(model)
        .tool(PayVendor)
        .tool(EmailCustomer)
        .tool(DropTable)
        .tool(RestartService)
        .db(store)
        .build()
        .unwrap()
}

fn finance(id: &str) -> Principal {
    Principal::new(id).with_role("finance")
}

fn kinds(events: &[kern::trail::TrailEvent]) -> Vec<EventKind> {
    events.iter().map(|event| event.kind).collect()
}

async fn the_row(store: &dyn Store, run_id: &str) -> Approval {
    let page = store.list_approvals(&ApprovalQuery::default().run_id(run_id)).await.unwrap();
    assert_eq!(page.total, 1, "{page:?}");
    page.items.into_iter().next().unwrap()
}

async fn a_quorum_of_eligible_principals_decides_and_the_trail_records_it(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run_with("pay the large invoice", RunOptions::default().user_id("alice")).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let row = the_row(&*store, &run.run_id).await;
    let policy = row.policy.clone().expect("the policy in force is on the row");
    assert_eq!((policy.approvers, policy.quorum, policy.self_approval), (vec!["finance".to_owned()], 2, false));

    let err = store.update_approval(&row.id, ApprovalUpdate::approve("root")).await.unwrap_err();
    assert!(matches!(err, Error::DecideAsPrincipal { .. }), "{err:?}");
    let err = store.decide(&row.id, &finance("alice"), Decision::approve()).await.unwrap_err();
    assert!(matches!(err, Error::NotEligible { .. }), "{err:?}");
    store.decide(&row.id, &finance("bob"), Decision::approve()).await.unwrap();
    let err = agent.continue_run_by_id(&run.run_id).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalPending { .. }), "one vote of two: {err:?}");
    store.decide(&row.id, &finance("carol"), Decision::approve()).await.unwrap();

    let done = agent.continue_run_by_id(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), 1);
    assert_eq!(done.approval().and_then(|row| row.resolved_by.as_deref()), Some("carol"));
    let trail = store.trail(&row.id).await.unwrap();
    assert_eq!(
        kinds(&trail),
        [EventKind::Created, EventKind::Vote, EventKind::Vote, EventKind::Approved, EventKind::Executed]
    );
    assert_eq!(trail[4].principal, "agent:policy-agent");
    assert!(store.verify_trail().await.unwrap().is_intact());
}

async fn a_call_its_condition_does_not_flag_runs_at_once_with_an_audit_row(backend: Backend) {
    let store = backend.store();
    let run = agent(store.clone()).run("pay the small invoice").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "no one is asked");
    assert_eq!(ran(&run.run_id).len(), 1);
    let row = the_row(&*store, &run.run_id).await;
    assert_eq!((row.approval_type, row.status), (ApprovalType::Audit, ApprovalStatus::Approved));
    assert!(row.note().unwrap().contains("did not require approval"), "{row:?}");
    let trail = store.trail(&row.id).await.unwrap();
    assert_eq!(kinds(&trail), [EventKind::Created, EventKind::Approved, EventKind::Executed]);
}

async fn an_approved_edit_runs_the_tool_with_the_new_arguments_and_tells_the_model(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("email the customer").await.unwrap();
    let row = the_row(&*store, &run.run_id).await;
    let err = store
        .decide(&row.id, &Principal::new("editor"), Decision::approve().with_args(json!({ "to": "ada" })))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResolution { .. }), "an edit that breaks the schema: {err:?}");
    let kinder = json!({ "to": "ada", "body": "A gentle reminder." });
    store.decide(&row.id, &Principal::new("editor"), Decision::approve().with_args(kinder.clone())).await.unwrap();

    let done = agent.continue_run_by_id(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id)[0].args, kinder);
    assert_eq!(done.tools[0].tool_args, kinder);
    let told = done.tools[0].result.as_ref().and_then(|r| r.as_str()).unwrap().to_owned();
    assert_eq!(told, "sent to ada: A gentle reminder.");
    let stored = store.load_run(&run.run_id).await.unwrap().unwrap();
    let answer = stored.messages.iter().rev().find(|m| m.tool_call_id.is_some()).unwrap();
    assert!(answer.content.as_deref().unwrap().contains("changed the arguments"), "{answer:?}");
    assert!(kinds(&store.trail(&row.id).await.unwrap()).contains(&EventKind::Edited));
}

async fn an_expiry_that_cancels_the_run_cancels_it(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("drop the table").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let done = agent.continue_run_by_id(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Cancelled);
    assert!(ran(&run.run_id).is_empty());
    let row = the_row(&*store, &run.run_id).await;
    assert_eq!(row.status, ApprovalStatus::Expired);
    let told = done.approval().expect("the output names the row that cancelled the run");
    assert_eq!((told.id.as_str(), told.status), (row.id.as_str(), ApprovalStatus::Expired));
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Cancelled);
}

/// Refusing self-approval tells the requester apart by the run's user: a run that names none
/// gets the call refused (told to the model) rather than a row anyone may approve.
async fn a_call_its_requester_may_not_approve_needs_a_run_that_names_its_user(backend: Backend) {
    let store = backend.store();
    let run = agent(store.clone()).run("pay the large invoice").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    let told = run.tools[0].result.as_ref().and_then(|result| result.as_str()).unwrap_or_default();
    assert!(told.contains("names no user") && told.contains("RunOptions::user_id"), "{told}");
    let rows = store.list_approvals(&ApprovalQuery::default().run_id(&run.run_id)).await.unwrap();
    assert_eq!(rows.total, 0, "no row anyone could approve");
    assert!(ran(&run.run_id).is_empty());
}

/// A team whose leader and member `dba` may each `drop_table` (its row cancels the run when it
/// expires) or `purge_logs`: one drops while the other purges.
fn team_of_droppers(store: Arc<dyn Store>) -> Team {
    let delegate = |task: &str| json!({ "member_id": "dba", "task": task });
    let dba_model = ScriptedModel::new()
        .when_user_contains("purge", Reply::call("purge_logs", json!({ "days": 7 })))
        .when_user_contains("drop", Reply::call("drop_table", json!({ "table": "orders" })));
    let dba = Agent::builder().id("dba").model(dba_model).tool(DropTable).tool(PurgeLogs).db(store.clone()).build();
    let leader = ScriptedModel::new()
        .when_user_contains(
            "leader drops",
            Reply::calls([
                ("drop_table", json!({ "table": "orders" })),
                ("delegate_task_to_member", delegate("purge the logs")),
            ]),
        )
        .when_user_contains(
            "member drops",
            Reply::calls([
                ("purge_logs", json!({ "days": 7 })),
                ("delegate_task_to_member", delegate("drop the orders table")),
            ]),
        );
    let team = Team::builder().id("ops-team").model(leader).member(dba.unwrap()).tool(DropTable).tool(PurgeLogs);
    team.db(store).build().unwrap()
}

/// A row that cancels the run when it expires ends a team run as it ends an agent's, whether it
/// is the leader's or a member's, however many other rows of the team are still pending.
async fn an_expiry_that_cancels_a_team_run_cancels_it_whatever_else_is_pending(backend: Backend) {
    let store = backend.store();
    let team = team_of_droppers(store.clone());
    for input in ["leader drops", "member drops"] {
        let run = team.run(input).await.unwrap();
        assert_eq!(run.status, RunStatus::Paused, "{input}");
        let member_run_id = run.member_runs[0].run_id.clone();
        tokio::time::sleep(Duration::from_millis(1100)).await;

        let done = team.continue_run(&run.run_id, vec![]).await.unwrap();
        assert_eq!(done.status, RunStatus::Cancelled, "{input}");
        let told = done.approval().map(|row| (row.tool_name.as_str(), row.status));
        assert_eq!(told, Some(("drop_table", ApprovalStatus::Expired)), "{input}: the row that cancelled the run");
        assert_eq!(store.load_run(&member_run_id).await.unwrap().unwrap().status, RunStatus::Cancelled, "{input}");
        let mut statuses = Vec::new();
        for run_id in [&run.run_id, &member_run_id] {
            let rows = store.list_approvals(&ApprovalQuery::default().run_id(run_id)).await.unwrap().items;
            statuses.extend(rows.into_iter().map(|row| (row.tool_name, row.status)));
        }
        let statuses: Vec<_> = statuses.iter().map(|(tool, status)| (tool.as_str(), *status)).collect();
        assert!(statuses.contains(&("drop_table", ApprovalStatus::Expired)), "{input}: {statuses:?}");
        assert!(statuses.contains(&("purge_logs", ApprovalStatus::Cancelled)), "{input}: {statuses:?}");
        assert!(ran(&run.run_id).is_empty() && ran(&member_run_id).is_empty(), "{input}");
    }
}

async fn a_paused_run_is_cancelled_with_its_rows(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let run = agent.run("email the customer").await.unwrap();
    let cancelled = store.cancel_run(&run.run_id, &Principal::new("ops")).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    let row = the_row(&*store, &run.run_id).await;
    assert_eq!((row.status, row.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("ops")));
    let err = agent.continue_run_by_id(&run.run_id).await.unwrap_err();
    assert!(matches!(err, Error::RunNotPaused { status: RunStatus::Cancelled, .. }), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Cancelled);
    assert!(ran(&run.run_id).is_empty(), "the cancelled call never ran");
}
