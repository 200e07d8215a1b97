//! Recovery: finishing runs that a continue claimed and never stored, because its process died
//! or the database failed as it stored the outcome.
//!
//! A continue that dies is simulated by its first step alone: the run is claimed with
//! `Store::claim_run` and nothing more happens, so the tool has not run.

use std::sync::Arc;
use std::time::Duration;

use kern::Error;
use kern::prelude::*;
use kern::run::ToolCallStatus;
use serde_json::json;

use crate::backend::{Backend, ProbeStore};
use crate::on_every_backend;
use crate::team::team;
use crate::tools::*;

/// Long enough that a claim made during a test is never stale.
const ONE_HOUR: Duration = Duration::from_secs(3600);

fn agent(store: Arc<dyn Store>, id: &str) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .when_user_contains(
            "cleanup",
            Reply::calls([("delete_user_data", json!({"user_id": "7"})), ("restart_service", json!({"name": "web"}))]),
        );
    Agent::builder().id(id).model(model).tool(DeleteUserData).tool(RestartService).db(store).build().unwrap()
}

/// The only row of run `run_id`.
async fn row_of(store: &dyn Store, run_id: &str) -> Approval {
    let mut page = store.list_approvals(&ApprovalQuery::default().run_id(run_id)).await.unwrap();
    assert_eq!(page.total, 1, "{page:?}");
    page.items.remove(0)
}

/// Runs the agent until it pauses on an approval, and approves the row.
async fn approved_run(agent: &Agent, store: &dyn Store, input: &str) -> (RunOutput, Approval) {
    let run = agent.run(input).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let row = store.update_approval(&row_of(store, &run.run_id).await.id, ApprovalUpdate::approve("admin-1")).await;
    (run, row.unwrap())
}

/// Points the calls of run `run_id` that row `row_id` decides at a row that does not exist, as
/// a database that lost the row would leave them (rows are never deleted through a store).
async fn lose_row(store: &dyn Store, run_id: &str, row_id: &str) {
    let mut run = store.load_run(run_id).await.unwrap().unwrap();
    for requirement in run.requirements.iter_mut().filter(|r| r.approval_id.as_deref() == Some(row_id)) {
        requirement.approval_id = Some(format!("{row_id}-lost"));
        requirement.tool_execution.approval_id = Some(format!("{row_id}-lost"));
    }
    store.save_runs(std::slice::from_ref(&run), &[], &[]).await.unwrap();
}

async fn status_of(store: &dyn Store, run_id: &str) -> RunStatus {
    store.load_run(run_id).await.unwrap().expect("the run is stored").status
}

on_every_backend!(
    a_run_left_running_is_recovered_and_its_tool_runs_once,
    a_recent_claim_or_a_paused_run_is_not_recovered,
    only_the_agent_that_started_a_run_recovers_it,
    a_run_whose_row_is_gone_goes_back_to_paused,
    calls_that_no_row_decides_wait_again,
    a_team_run_left_running_is_recovered_with_its_members,
    a_team_run_whose_member_row_is_gone_goes_back_to_paused,
    a_team_that_cannot_resume_its_member_ends_the_run_in_error,
    a_recovery_that_cannot_read_the_rows_leaves_the_run_running,
);

async fn a_run_left_running_is_recovered_and_its_tool_runs_once(backend: Backend) {
    let store = backend.store();
    let (run, row) = approved_run(&agent(store.clone(), "ops"), &*store, "delete user 42").await;
    store.claim_run(&run.run_id).await.unwrap();
    let err = agent(store.clone(), "ops").continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::RunNotPaused { status: RunStatus::Running, .. }), "{err:?}");

    // Recovered from another process, with a fresh agent and store handle.
    let done = agent(backend.reopen().await, "ops").recover_run(&run.run_id, Duration::ZERO).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.content.as_deref(), Some("Done. delete_user_data: All data for user 42 has been deleted."));
    let calls = ran(&run.run_id);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].context.idempotency_key, Some(format!("{}:{}", row.id, row.tool_call_id)));
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Completed);
    // The trail says a recovery ran it: the dead continue may have run it before.
    let executed = store.trail(&row.id).await.unwrap().pop().expect("the row has a trail");
    assert_eq!((executed.kind, &executed.data["recovered"]), (kern::trail::EventKind::Executed, &json!(true)));
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().run_status, RunStatus::Completed);

    let err = agent(store.clone(), "ops").recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Completed, .. }), "{err:?}");
    assert_eq!(ran(&run.run_id).len(), 1);
}

async fn a_recent_claim_or_a_paused_run_is_not_recovered(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone(), "ops");
    let (run, _) = approved_run(&agent, &*store, "delete user 42").await;
    let err = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Paused, .. }), "{err:?}");
    assert!(err.to_string().contains("continue it"), "{err}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Paused);

    // Its continue may still be under way.
    store.claim_run(&run.run_id).await.unwrap();
    let err = agent.recover_run(&run.run_id, ONE_HOUR).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Running, .. }), "{err:?}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Running);
    assert!(ran(&run.run_id).is_empty());

    let err = agent.recover_run("no-such-run", Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::RunNotFound(_)), "{err:?}");
}

async fn only_the_agent_that_started_a_run_recovers_it(backend: Backend) {
    let store = backend.store();
    let (run, _) = approved_run(&agent(store.clone(), "ops"), &*store, "delete user 42").await;
    let claimed = store.claim_run(&run.run_id).await.unwrap();
    let err = agent(store.clone(), "intruder").recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::ForeignRun { ref owner, .. } if owner == "agent `ops`"), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap(), Some(claimed), "the run is not reclaimed");
    assert!(ran(&run.run_id).is_empty());
}

async fn a_run_whose_row_is_gone_goes_back_to_paused(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone(), "ops");
    let (run, row) = approved_run(&agent, &*store, "delete user 42").await;
    store.claim_run(&run.run_id).await.unwrap();
    lose_row(&*store, &run.run_id, &row.id).await;

    let err = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMissing { .. }), "{err:?}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Paused);
    // Paused again, the run is continued as any other: here, refused for the same reason.
    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMissing { .. }), "{err:?}");
    assert!(ran(&run.run_id).is_empty());
}

/// The caller's answers went down with the continue; the rows did not.
async fn calls_that_no_row_decides_wait_again(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone(), "ops");
    let (run, _) = approved_run(&agent, &*store, "cleanup").await;
    assert_eq!(run.requirements.len(), 2);
    store.claim_run(&run.run_id).await.unwrap();

    let recovered = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap();
    assert_eq!(recovered.status, RunStatus::Paused);
    let tools: Vec<_> = ran(&run.run_id).into_iter().map(|r| r.tool).collect();
    assert_eq!(tools, ["delete_user_data"]);
    let mut waiting = recovered.requirements;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].tool_execution.tool_name, "restart_service");

    waiting[0].confirm();
    let done = agent.continue_run(&run.run_id, waiting).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.tools.iter().map(|t| t.status).collect::<Vec<_>>(), [ToolCallStatus::Succeeded; 2]);
    assert_eq!(ran(&run.run_id).len(), 2);
}

async fn a_team_run_left_running_is_recovered_with_its_members(backend: Backend) {
    let store = backend.store();
    // The continue died after claiming the team run only, or its member run too.
    for member_claimed in [false, true] {
        let run = team(store.clone()).run("use the member tool").await.unwrap();
        let member_run_id = run.member_runs[0].run_id.clone();
        let row = row_of(&*store, &member_run_id).await;
        store.update_approval(&row.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
        store.claim_run(&run.run_id).await.unwrap();
        if member_claimed {
            store.claim_run(&member_run_id).await.unwrap();
        }
        let err = team(store.clone()).recover_run(&run.run_id, ONE_HOUR).await.unwrap_err();
        assert!(matches!(err, Error::RunNotStale { status: RunStatus::Running, .. }), "{err:?}");
        let err = team(store.clone()).recover_run(&member_run_id, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, Error::ForeignRun { .. }), "{err:?}");
        let err = agent(store.clone(), "privacy").recover_run(&member_run_id, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, Error::MemberRun { ref team_run_id, .. } if *team_run_id == run.run_id), "{err:?}");

        let done = team(backend.reopen().await).recover_run(&run.run_id, Duration::ZERO).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "member claimed: {member_claimed}");
        assert_eq!(done.member_runs[0].status, RunStatus::Completed);
        let calls = ran(&member_run_id);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].context.idempotency_key, Some(format!("{}:{}", row.id, row.tool_call_id)));
        assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Completed);
        assert_eq!(status_of(&*store, &member_run_id).await, RunStatus::Completed);
    }
}

async fn a_team_run_whose_member_row_is_gone_goes_back_to_paused(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run("use the member tool").await.unwrap();
    let member_run_id = run.member_runs[0].run_id.clone();
    let row = row_of(&*store, &member_run_id).await;
    store.update_approval(&row.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    store.claim_run(&run.run_id).await.unwrap();
    store.claim_run(&member_run_id).await.unwrap();
    lose_row(&*store, &member_run_id, &row.id).await;

    let err = team.recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMissing { .. }), "{err:?}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Paused);
    assert_eq!(status_of(&*store, &member_run_id).await, RunStatus::Paused);
    // Paused again, team and member are continued as any other: here, refused for the same reason.
    let err = team.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalMissing { .. }), "{err:?}");
    assert!(ran(&member_run_id).is_empty());
}

/// An agent whose model asks for `long_export`, which takes 45 s, `recent_export` (25 s), or
/// `delete_user_data`.
fn exporter(store: Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("recent", Reply::call("recent_export", json!({})))
        .when_user_contains("export", Reply::call("long_export", json!({})))
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})));
    let agent = Agent::builder().id("ops").model(model).tool(LongExport).tool(RecentExport).tool(DeleteUserData);
    agent.db(store).build().unwrap()
}

/// Continues run `run_id` on a task of its own, for the test to act while it runs.
fn continue_in_background(agent: &Agent, run_id: &str) -> tokio::task::JoinHandle<kern::Result<RunOutput>> {
    let (agent, run_id) = (agent.clone(), run_id.to_owned());
    tokio::spawn(async move { agent.continue_run(&run_id, vec![]).await })
}

/// How many times the continues on `probe` renewed their claims.
fn renewals(probe: &ProbeStore) -> usize {
    probe.calls().iter().filter(|call| **call == "renew_claim").count()
}

/// Waits (on the paused clock) until `long_export` has started in run `run_id`.
async fn export_started(run_id: &str) {
    while ran(run_id).is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A continue that takes longer than its claim goes unrenewed renews it as it goes, so that it
/// is not taken for dead; one that ends sooner writes nothing more.
#[tokio::test(start_paused = true)]
async fn a_long_continue_renews_its_claim() {
    let probe = Arc::new(ProbeStore::over(Arc::new(MemoryDb::new())));
    let store: Arc<dyn Store> = probe.clone();
    let agent = exporter(store.clone());
    let (run, _) = approved_run(&agent, &*store, "export everything").await;
    let done = agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(renewals(&probe), 2, "at 20 s and 40 s: {:?}", probe.calls());

    let (quick, _) = approved_run(&agent, &*store, "delete user 42").await;
    let before = probe.calls().len();
    assert_eq!(agent.continue_run(&quick.run_id, vec![]).await.unwrap().status, RunStatus::Completed);
    assert!(!probe.calls()[before..].contains(&"renew_claim"), "{:?}", probe.calls());
}

/// A team whose two members each hold an approved call, the first of them `long_export`: a
/// continue whose team run is taken over while the first member's call runs resumes no member
/// after it, whose approved call the taker runs.
#[tokio::test(start_paused = true)]
async fn a_taken_over_team_continue_runs_no_further_approved_call() {
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let member = |id: &str| {
        let model = ScriptedModel::new()
            .when_user_contains("export", Reply::call("long_export", json!({})))
            .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})));
        Agent::builder().id(id).model(model).tool(LongExport).tool(DeleteUserData).db(store.clone()).build().unwrap()
    };
    let leader = ScriptedModel::new()
        .when_user_contains(
            "export",
            Reply::call("delegate_task_to_member", json!({"member_id": "exporter", "task": "export"})),
        )
        .when_user_contains(
            "both",
            Reply::calls([
                ("delegate_task_to_member", json!({"member_id": "exporter", "task": "export"})),
                ("delegate_task_to_member", json!({"member_id": "privacy", "task": "delete user 42"})),
            ]),
        );
    let team = Team::builder().id("pair").model(leader).member(member("exporter")).member(member("privacy"));
    let team = team.db(store.clone()).build().unwrap();
    let run = team.run("both of you").await.unwrap();
    assert_eq!(run.member_runs.len(), 2);
    for member_run in &run.member_runs {
        let row = row_of(&*store, &member_run.run_id).await;
        store.update_approval(&row.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    }
    let (exporter, privacy) = (run.member_runs[0].run_id.clone(), run.member_runs[1].run_id.clone());
    let continued = tokio::spawn({
        let (team, run_id) = (team.clone(), run.run_id.clone());
        async move { team.continue_run(&run_id, vec![]).await }
    });
    export_started(&exporter).await;
    store.reclaim_run(&run.run_id, Duration::ZERO).await.unwrap();

    let err = continued.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::RunTakenOver { .. }), "{err:?}");
    assert!(ran(&privacy).is_empty(), "the second member's approved call is left to the taker");
}

/// A renewal that failed leaves the continue unsure it still holds its run: before it stores
/// its outcome, it renews once more, and finding the run taken over meanwhile, stores nothing.
#[tokio::test(start_paused = true)]
async fn after_a_failed_renewal_a_continue_checks_its_hold_before_storing() {
    let probe = Arc::new(ProbeStore::over(Arc::new(MemoryDb::new())));
    let store: Arc<dyn Store> = probe.clone();
    let agent = exporter(store.clone());
    let (run, _) = approved_run(&agent, &*store, "export the recent records").await;
    probe.fail_next_renewal();
    let continued = continue_in_background(&agent, &run.run_id);
    export_started(&run.run_id).await;
    // Past the renewal at 20 s, which fails; short of the tool's end at 25 s.
    tokio::time::sleep(Duration::from_secs(21)).await;
    let taken = store.reclaim_run(&run.run_id, Duration::ZERO).await.unwrap();

    let err = continued.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::RunTakenOver { .. }), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap(), Some(taken), "the taker's to store");
    // The failed renewal, then the last: from the stamp it knew, and from the one the failed
    // renewal might have left.
    assert_eq!(renewals(&probe), 3, "{:?}", probe.calls());
}

/// A renewal that commits but loses its answer leaves the run stamped as the continue does not
/// know for sure: the next renewal tries that stamp too, and the continue keeps its run.
#[tokio::test(start_paused = true)]
async fn a_renewal_whose_answer_was_lost_does_not_lose_the_run() {
    let probe = Arc::new(ProbeStore::over(Arc::new(MemoryDb::new())));
    let store: Arc<dyn Store> = probe.clone();
    let agent = exporter(store.clone());
    let (run, _) = approved_run(&agent, &*store, "export everything").await;
    probe.lose_next_renewal_answer();
    let done = agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Completed);
    assert!(renewals(&probe) >= 2, "{:?}", probe.calls());
}

/// A continue whose run was taken over while it ran (here, reclaimed at once) does not store its
/// outcome over the taker's: it says so, and the run stands as the taker left it.
#[tokio::test(start_paused = true)]
async fn a_continue_whose_run_was_taken_over_does_not_store_its_outcome() {
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let agent = exporter(store.clone());
    let (run, _) = approved_run(&agent, &*store, "export everything").await;
    let continued = continue_in_background(&agent, &run.run_id);
    export_started(&run.run_id).await;
    let taken = store.reclaim_run(&run.run_id, Duration::ZERO).await.unwrap();

    let err = continued.await.unwrap().unwrap_err();
    assert!(matches!(&err, Error::RunTakenOver { run_id } if *run_id == run.run_id), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap(), Some(taken), "the taker's to store");
}

/// The tool ran but its outcome was never stored, so it runs again on recovery, under the
/// same idempotency key.
#[tokio::test]
async fn a_run_whose_outcome_was_not_stored_is_recovered() {
    // Save 1 stores the pause; save 2, the continue's outcome, fails.
    let store: Arc<dyn Store> = Arc::new(ProbeStore::failing_save(2));
    let agent = agent(store.clone(), "ops");
    let (run, row) = approved_run(&agent, &*store, "delete user 42").await;
    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Running);
    assert_eq!(ran(&run.run_id).len(), 1);

    let done = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let keys: Vec<_> = ran(&run.run_id).into_iter().map(|r| r.context.idempotency_key).collect();
    let key = Some(format!("{}:{}", row.id, row.tool_call_id));
    assert_eq!(keys, [key.clone(), key]);
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Completed);
}

/// A store refuses what the continue left (a value past kern's limits that no earlier check
/// caught): the run ends in error, not left running for recoveries to run its tool again.
#[tokio::test]
async fn a_run_whose_outcome_a_store_refuses_ends_in_error() {
    let store: Arc<dyn Store> = Arc::new(ProbeStore::refusing_save(2));
    let agent = agent(store.clone(), "ops");
    let (run, _) = approved_run(&agent, &*store, "delete user 42").await;
    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field: "resolution_data", .. }), "{err:?}");
    let stored = store.load_run(&run.run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Error);
    assert!(stored.metadata["error"].as_str().unwrap().contains("65 levels"), "{:?}", stored.metadata);
    let err = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { .. }), "nothing left to recover: {err:?}");
    assert_eq!(ran(&run.run_id).len(), 1, "the tool ran once");
}

/// The same, for a team run: the member run its continue held ends in error with it, rather
/// than standing running under a team run that has ended.
#[tokio::test]
async fn a_team_run_whose_outcome_a_store_refuses_ends_in_error_with_its_members() {
    let store: Arc<dyn Store> = Arc::new(ProbeStore::refusing_save(2));
    let run = team(store.clone()).run("use the member tool").await.unwrap();
    let member_run_id = run.member_runs[0].run_id.clone();
    let row = row_of(&*store, &member_run_id).await;
    store.update_approval(&row.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    let err = team(store.clone()).continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field: "resolution_data", .. }), "{err:?}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Error);
    let member = store.load_run(&member_run_id).await.unwrap().unwrap();
    assert_eq!(member.status, RunStatus::Error);
    assert!(member.metadata["error"].as_str().unwrap().contains("65 levels"), "{:?}", member.metadata);
    let err = team(store.clone()).recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { .. }), "nothing left to recover: {err:?}");
    assert_eq!(ran(&member_run_id).len(), 1, "the member's tool ran once");
}

/// A member run the dead continue had claimed ends in error with its team run: no continue or
/// recovery could take it once its team run has ended. One it had not claimed stays paused.
async fn a_team_that_cannot_resume_its_member_ends_the_run_in_error(backend: Backend) {
    let store = backend.store();
    for member_claimed in [false, true] {
        let run = team(store.clone()).run("use the member tool").await.unwrap();
        let member_run_id = run.member_runs[0].run_id.clone();
        store.claim_run(&run.run_id).await.unwrap();
        if member_claimed {
            store.claim_run(&member_run_id).await.unwrap();
        }
        // The team was rebuilt without the member whose run it waits on: no recovery can resume it.
        let rebuilt = Team::builder()
            .id(crate::team::TEAM_ID)
            .model(ScriptedModel::new())
            .member(agent(store.clone(), "ops"))
            .db(store.clone())
            .build()
            .unwrap();
        let err = rebuilt.recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, Error::UnknownMember(ref id) if id == "privacy"), "{err:?}");
        let stored = store.load_run(&run.run_id).await.unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Error);
        assert!(stored.metadata["error"].as_str().unwrap().contains("privacy"), "{:?}", stored.metadata);
        let member = store.load_run(&member_run_id).await.unwrap().unwrap();
        if member_claimed {
            assert_eq!(member.status, RunStatus::Error);
            let reason = member.metadata["error"].as_str().unwrap();
            assert!(reason.contains(&run.run_id) && reason.contains("privacy"), "{reason}");
        } else {
            assert_eq!(member.status, RunStatus::Paused);
        }
        assert!(ran(&member_run_id).is_empty());
    }
}

/// Given back paused, a run whose continue died could be continued by a plain `continue_run`,
/// which would run again what the dead continue may have run: a recovery that fails to read
/// the rows leaves it running, to be recovered again.
async fn a_recovery_that_cannot_read_the_rows_leaves_the_run_running(backend: Backend) {
    let probe = Arc::new(ProbeStore::over(backend.store()));
    let store: Arc<dyn Store> = probe.clone();
    let agent = agent(store.clone(), "ops");
    let (run, row) = approved_run(&agent, &*store, "delete user 42").await;
    store.claim_run(&run.run_id).await.unwrap();

    probe.fail_row_reads(true);
    let err = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(status_of(&*store, &run.run_id).await, RunStatus::Running);
    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::RunNotPaused { status: RunStatus::Running, .. }), "{err:?}");
    assert!(ran(&run.run_id).is_empty());

    probe.fail_row_reads(false);
    let done = agent.recover_run(&run.run_id, Duration::ZERO).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let calls = ran(&run.run_id);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].context.idempotency_key, Some(format!("{}:{}", row.id, row.tool_call_id)));
}
