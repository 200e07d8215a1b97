//! Teams: approvals on the team, on a member, and on both.

use std::sync::Arc;

use chrono::Utc;
use kern::Error;
use kern::prelude::*;
use kern::run::RunOptions;
use kern::run::{MemberRef, ToolCallStatus};
use serde_json::json;

use crate::backend::Backend;
use crate::on_every_backend;
use crate::tools::*;

pub const TEAM_ID: &str = "support-team";

fn member(store: Arc<dyn Store>, id: &str, name: &str) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("delete user", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .when_user_contains("restart", Reply::call("restart_service", json!({"name": "web"})));
    Agent::builder().id(id).name(name).model(model).tool(DeleteUserData).tool(RestartService).db(store).build().unwrap()
}

fn leader() -> ScriptedModel {
    let delegate = |task: &str| json!({"member_id": "privacy", "task": task});
    ScriptedModel::new()
        .when_user_contains("team tool", Reply::call("purge_logs", json!({"days": 7})))
        .when_user_contains("member tool", Reply::call("delegate_task_to_member", delegate("delete user 42")))
        .when_user_contains(
            "both",
            Reply::calls([("purge_logs", json!({"days": 7})), ("delegate_task_to_member", delegate("delete user 42"))]),
        )
        .when_user_contains("everyone", Reply::call("delegate_task_to_all_members", json!({"task": "restart web"})))
        .when_user_contains(
            "all of you",
            Reply::call("delegate_task_to_all_members", json!({"task": "delete user 42"})),
        )
        .when_user_contains("audit", Reply::call("archive_records", json!({"table": "tickets"})))
}

pub fn team(store: Arc<dyn Store>) -> Team {
    Team::builder()
        .id(TEAM_ID)
        .name("Support")
        .model(leader())
        .member(member(store.clone(), "privacy", "Privacy"))
        .member(member(store.clone(), "ops", "Ops"))
        .tool(PurgeLogs)
        .tool(ArchiveRecords)
        .db(store)
        .build()
        .unwrap()
}

fn approve() -> ApprovalUpdate {
    ApprovalUpdate::approve("admin-1")
}

async fn rows_of_team(store: &dyn Store) -> Vec<Approval> {
    store.list_approvals(&ApprovalQuery::default().team_id(TEAM_ID)).await.unwrap().items
}

on_every_backend!(
    a_team_tool_pauses_the_team_run,
    a_member_tool_pauses_the_member_and_the_team,
    team_and_member_rows_decide_only_their_own_calls,
    a_rejected_member_tool_is_skipped_and_the_team_completes,
    a_pending_member_row_keeps_the_whole_team_paused,
    team_audit_tools_write_audit_rows,
    delegating_to_all_members_pauses_for_each,
    one_members_decision_never_decides_a_siblings_call,
    a_fresh_team_and_store_handle_continue_the_run,
    concurrent_team_continues_run_the_member_tool_exactly_once,
    a_worker_continues_a_decided_team_run_by_itself,
);

async fn a_team_tool_pauses_the_team_run(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run_with("use the team tool", RunOptions::default().user_id("user-5")).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let rows = store.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await.unwrap().items;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.source_type, SourceType::Team);
    assert_eq!(row.team_id.as_deref(), Some(TEAM_ID));
    assert_eq!(row.source_name.as_deref(), Some("Support"));
    assert_eq!(row.agent_id, None);
    assert_eq!(row.user_id.as_deref(), Some("user-5"));
    assert_eq!(row.tool_name, "purge_logs");
    assert!(run.requirements[0].member.is_none());

    store.update_approval(&row.id, approve()).await.unwrap();
    let done = team.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), 1);
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().run_status, RunStatus::Completed);
}

async fn a_member_tool_pauses_the_member_and_the_team(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run_with("use the member tool", RunOptions::default().user_id("user-5")).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.member_runs.len(), 1);
    let member_run = &run.member_runs[0];
    assert_eq!(member_run.status, RunStatus::Paused);
    assert_eq!(
        run.requirements[0].member,
        Some(MemberRef {
            agent_id: "privacy".into(),
            agent_name: Some("Privacy".into()),
            run_id: member_run.run_id.clone()
        })
    );
    let stored_member = store.load_run(&member_run.run_id).await.unwrap().unwrap();
    assert_eq!(stored_member.parent_run_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(stored_member.team_id.as_deref(), Some(TEAM_ID));

    let rows = rows_of_team(&*store).await;
    let rows: Vec<_> = rows.iter().filter(|r| r.run_id == member_run.run_id || r.run_id == run.run_id).collect();
    assert_eq!(rows.len(), 1, "the member's row only, none at team level");
    let row = rows[0];
    assert_eq!(row.run_id, member_run.run_id);
    assert_eq!(row.agent_id.as_deref(), Some("privacy"));
    assert_eq!(row.team_id.as_deref(), Some(TEAM_ID));
    assert_eq!(row.source_type, SourceType::Agent);
    assert_eq!(row.user_id.as_deref(), Some("user-5"));

    store.update_approval(&row.id, approve()).await.unwrap();
    let done = team.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&member_run.run_id).len(), 1);
    assert_eq!(done.member_runs[0].status, RunStatus::Completed);
    // The row that decided the member's call is on the member's output, not the team's.
    let decided = done.member_runs[0].approval().expect("the member's row");
    assert_eq!((decided.id.as_str(), decided.status), (row.id.as_str(), ApprovalStatus::Approved));
    assert_eq!(done.member_runs[0].metadata["approval"]["id"], row.id.as_str());
    assert!(done.approval().is_none(), "the team decided no call of its own");
    assert_eq!(
        done.content.as_deref(),
        Some("Done. delegate_task_to_member: Done. delete_user_data: All data for user 42 has been deleted.")
    );
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().run_status, RunStatus::Completed);
}

async fn team_and_member_rows_decide_only_their_own_calls(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run("both please").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.requirements.len(), 2);
    let member_run_id = run.member_runs[0].run_id.clone();
    let team_row = store.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await.unwrap().items;
    let member_row =
        store.list_approvals(&ApprovalQuery::default().run_id(member_run_id.as_str())).await.unwrap().items;
    assert_eq!((team_row.len(), member_row.len()), (1, 1));

    // Each requirement names its own row, and each row decides its own call.
    for requirement in &run.requirements {
        assert_eq!(requirement.tool_execution.approval_id, requirement.approval_id);
    }
    assert_ne!(run.requirements[0].tool_call_id(), run.requirements[1].tool_call_id());
    for row in [&team_row[0], &member_row[0]] {
        let own = row.requirement().expect("the row's own call is in its requirements");
        assert_eq!(
            (own.tool_execution.tool_name.as_str(), own.approval_id.as_deref()),
            (row.tool_name.as_str(), Some(row.id.as_str()))
        );
        assert!(row.requirements.iter().all(|r| r.member.is_none()), "a row carries only its runner's calls");
    }
    store.update_approval(&team_row[0].id, approve()).await.unwrap();
    // The member's row is still pending: the team cannot go on, and nothing has run.
    let err = team.continue_run(&run.run_id, run.requirements.clone()).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalPending { ref approval_id } if *approval_id == member_row[0].id), "{err:?}");
    assert!(ran(&run.run_id).is_empty());

    store.update_approval(&member_row[0].id, ApprovalUpdate::reject("admin-2")).await.unwrap();
    let done = team.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), 1, "the approved team tool ran");
    assert!(ran(&member_run_id).is_empty(), "the rejected member tool did not");
}

async fn a_rejected_member_tool_is_skipped_and_the_team_completes(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let mut run = team.run("use the member tool").await.unwrap();
    let member_run_id = run.member_runs[0].run_id.clone();
    let row = store.list_approvals(&ApprovalQuery::default().run_id(member_run_id.as_str())).await.unwrap().items;
    store
        .update_approval(&row[0].id, ApprovalUpdate::reject("admin-1").with_data(json!({"note": "legal hold"})))
        .await
        .unwrap();
    run.requirements[0].confirm();
    let done = team.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let member = &done.member_runs[0];
    assert_eq!(member.status, RunStatus::Completed);
    assert_eq!(member.tools[0].status, ToolCallStatus::Rejected);
    assert!(done.content.unwrap().contains("rejected by an admin: legal hold"));
    assert!(ran(&member_run_id).is_empty());
}

async fn a_pending_member_row_keeps_the_whole_team_paused(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run("use the member tool").await.unwrap();
    let err = team.continue_run(&run.run_id, run.requirements.clone()).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalPending { .. }), "{err:?}");
    // The member's run resumes only through its team, and the team resumes only its own runs.
    let err = team.continue_run(&run.member_runs[0].run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::ForeignRun { .. }), "{err:?}");
    let err =
        member(store.clone(), "privacy", "Privacy").continue_run(&run.member_runs[0].run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::MemberRun { ref team_run_id, .. } if *team_run_id == run.run_id), "{err:?}");
    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert_eq!(store.load_run(&run.member_runs[0].run_id).await.unwrap().unwrap().status, RunStatus::Paused);
}

async fn team_audit_tools_write_audit_rows(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let mut run = team.run_with("audit the tickets", RunOptions::default().user_id("user-8")).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(store.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await.unwrap().total, 0);
    run.requirements[0].confirm();
    run.requirements[0].set_resolved_by("lead-1");
    let done = team.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let rows = store.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await.unwrap().items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].approval_type, ApprovalType::Audit);
    assert_eq!(rows[0].status, ApprovalStatus::Approved);
    assert_eq!(rows[0].source_type, SourceType::Team);
    assert_eq!(rows[0].team_id.as_deref(), Some(TEAM_ID));
    assert_eq!(rows[0].user_id.as_deref(), Some("user-8"));
    assert_eq!(rows[0].resolved_by.as_deref(), Some("lead-1"));
    assert_eq!(rows[0].pause_type, PauseType::Confirmation);
}

async fn delegating_to_all_members_pauses_for_each(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let mut run = team.run("everyone restart web").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.member_runs.len(), 2);
    assert_eq!(run.requirements.len(), 2);
    // Both members paused on their own restart call, with the same call id in their own runs.
    let mut members: Vec<_> = run.requirements.iter().map(|r| r.member.clone().unwrap().agent_id).collect();
    members.sort();
    assert_eq!(members, vec!["ops", "privacy"]);
    for requirement in &mut run.requirements {
        if requirement.member.as_ref().unwrap().agent_id == "ops" {
            requirement.confirm();
        } else {
            requirement.reject("privacy does not restart things");
        }
    }
    let done = team.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let content = done.content.unwrap();
    assert!(
        content.contains("privacy: Done. restart_service: The call to `restart_service` was rejected by the user"),
        "{content}"
    );
    assert!(content.contains("ops: Done. restart_service: restarted web"), "{content}");
}

async fn one_members_decision_never_decides_a_siblings_call(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run("all of you: delete user 42").await.unwrap();
    assert_eq!((run.status, run.member_runs.len()), (RunStatus::Paused, 2));
    // Both members paused on the same call, with the same call id in their own runs, each on a row.
    let of = |agent: &str| {
        let requirement = run.requirements.iter().find(|r| r.member.as_ref().unwrap().agent_id == agent).unwrap();
        (requirement.member.clone().unwrap().run_id, requirement.approval_id.clone().expect("a row"))
    };
    let ((privacy_run, privacy_row), (ops_run, ops_row)) = (of("privacy"), of("ops"));
    assert_ne!(privacy_row, ops_row);

    store.update_approval(&privacy_row, approve()).await.unwrap();
    let err = team.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalPending { ref approval_id } if *approval_id == ops_row), "{err:?}");
    assert!(ran(&privacy_run).is_empty() && ran(&ops_run).is_empty(), "nothing ran while a sibling waits");

    store.update_approval(&ops_row, ApprovalUpdate::reject("admin-1")).await.unwrap();
    let done = team.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&privacy_run).len(), 1, "the approved member's call ran once");
    assert!(ran(&ops_run).is_empty(), "its sibling's rejected call did not run");
}

async fn a_fresh_team_and_store_handle_continue_the_run(backend: Backend) {
    let run = team(backend.store()).run("use the member tool").await.unwrap();
    let admin = backend.reopen().await;
    let row = admin
        .list_approvals(&ApprovalQuery::default().run_id(run.member_runs[0].run_id.as_str()))
        .await
        .unwrap()
        .items
        .remove(0);
    admin
        .update_approval(
            &row.id,
            ApprovalUpdate {
                expected_status: Some(ApprovalStatus::Pending),
                status: ApprovalStatus::Approved,
                resolved_by: Some("admin".into()),
                resolved_at: Some(Utc::now()),
                resolution_data: None,
            },
        )
        .await
        .unwrap();
    let done = team(backend.reopen().await).continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.member_runs[0].run_id).len(), 1);
}

#[test]
fn build_refuses_bad_teams() {
    let db: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let err = Team::builder()
        .model(leader())
        .member(member(db.clone(), "same", "A"))
        .member(member(db.clone(), "same", "B"))
        .db(db.clone())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateMember(ref id) if id == "same"), "{err:?}");

    // A member's approval tool needs the team's db: member runs are stored there.
    let err = Team::builder().model(leader()).member(member(db.clone(), "privacy", "P")).build().unwrap_err();
    assert!(matches!(err, Error::ApprovalNeedsDb { ref tool } if tool == "delete_user_data"), "{err:?}");
    let err = Team::builder().model(leader()).tool(PurgeLogs).build().unwrap_err();
    assert!(matches!(err, Error::ApprovalNeedsDb { ref tool } if tool == "purge_logs"), "{err:?}");
    let err = Team::builder().member(member(db.clone(), "privacy", "P")).db(db).build().unwrap_err();
    assert!(matches!(err, Error::NoModel), "{err:?}");
}

/// A member run that ends in error fails the delegation's call, as a tool's error does.
#[tokio::test]
async fn a_delegation_whose_member_fails_is_recorded_failed() {
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let leader = ScriptedModel::new().when_user_contains(
        "sing",
        Reply::call("delegate_task_to_member", json!({"member_id": "privacy", "task": "sing a song"})),
    );
    let team = Team::builder()
        .id(TEAM_ID)
        .model(leader)
        .member(member(store.clone(), "privacy", "Privacy"))
        .db(store)
        .build()
        .unwrap();
    // The member's model has no reply for the task: its run ends in error.
    let done = team.run("sing for us").await.unwrap();
    assert_eq!(done.member_runs[0].status, RunStatus::Error);
    assert_eq!(done.tools[0].tool_name, "delegate_task_to_member");
    assert_eq!(done.tools[0].status, ToolCallStatus::Failed);
    assert!(done.content.unwrap().contains("error: "), "the model is told of the member's error");
}

/// A member that finished in an earlier step is reported from a read made before the claim:
/// once the outcome is stored, nothing is read, so no failed read can report a stored
/// outcome as an error.
#[tokio::test]
async fn a_team_continue_reads_nothing_after_storing_its_outcome() {
    let probe = Arc::new(crate::backend::ProbeStore::default());
    let store: Arc<dyn Store> = probe.clone();
    let notes = Agent::builder()
        .id("notes")
        .name("Notes")
        .model(ScriptedModel::new().otherwise(Reply::text("noted")))
        .db(store.clone())
        .build()
        .unwrap();
    let team = Team::builder()
        .id(TEAM_ID)
        .model(ScriptedModel::new().when_user_contains(
            "everyone",
            Reply::call("delegate_task_to_all_members", json!({"task": "delete user 42"})),
        ))
        .member(member(store.clone(), "privacy", "Privacy"))
        .member(notes)
        .db(store.clone())
        .build()
        .unwrap();
    let run = team.run("everyone, please").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let statuses: Vec<RunStatus> = run.member_runs.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [RunStatus::Paused, RunStatus::Completed]);
    let row = rows_of_team(&*store).await.pop().unwrap();
    store.update_approval(&row.id, approve()).await.unwrap();

    let before = probe.calls().len();
    let done = team.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let statuses: Vec<RunStatus> = done.member_runs.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [RunStatus::Completed, RunStatus::Completed]);
    let calls = probe.calls().split_off(before);
    assert_eq!(calls.last(), Some(&"save_runs"), "{calls:?}");
    assert_eq!(calls.iter().filter(|&&call| call == "save_runs").count(), 1, "{calls:?}");
}

/// Sixteen continues of one team run at once: one completes it, the others are refused, and
/// the member's approved tool runs once.
async fn concurrent_team_continues_run_the_member_tool_exactly_once(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let run = team.run("use the member tool").await.unwrap();
    let member_run = run.member_runs[0].run_id.clone();
    let row = rows_of_team(&*store).await.pop().unwrap();
    store.update_approval(&row.id, approve()).await.unwrap();

    let completed = crate::approval::continued_at_once(|| {
        let (team, run_id, requirements) = (team.clone(), run.run_id.clone(), run.requirements.clone());
        async move { team.continue_run(&run_id, requirements).await }
    })
    .await;
    assert_eq!(completed, 1);
    assert_eq!(ran(&member_run).len(), 1, "the approved member tool ran once");
}

/// A worker that has the team continues its run once the member's row is decided: the team
/// run and its member run both complete, and the member's tool runs once.
async fn a_worker_continues_a_decided_team_run_by_itself(backend: Backend) {
    let store = backend.store();
    let team = team(store.clone());
    let worker = Worker::builder()
        .store(store.clone())
        .team(team.clone())
        .poll_interval(std::time::Duration::from_millis(200))
        .upkeep_interval(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let mut outcomes = worker.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let working = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));

    let run = team.run("use the member tool").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let member_run = run.member_runs[0].run_id.clone();
    let row = rows_of_team(&*store).await.pop().unwrap();
    store.update_approval(&row.id, approve()).await.unwrap();

    let outcome = tokio::time::timeout(std::time::Duration::from_secs(120), outcomes.recv()).await.unwrap().unwrap();
    let kern::worker::RunOutcome::Continued(done) = outcome else { panic!("expected a continue, got {outcome:?}") };
    assert_eq!((done.run_id.as_str(), done.status), (run.run_id.as_str(), RunStatus::Completed));
    assert_eq!(ran(&member_run).len(), 1);
    for id in [&run.run_id, &member_run] {
        assert_eq!(store.load_run(id).await.unwrap().unwrap().status, RunStatus::Completed, "{id}");
    }
    let _ = stop.send(());
    working.await.unwrap().unwrap();
}

/// A team's pause on a member's gated call is one save: the team run, the member run and the
/// member's pending row, together.
#[tokio::test]
async fn a_team_pause_is_one_save_of_both_runs_and_the_row() {
    let store = Arc::new(crate::backend::ProbeStore::default());
    let team = team(store.clone());
    let run = team.run("use the member tool").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let member_run = run.member_runs[0].run_id.clone();
    let row = run.requirements[0].approval_id.clone().expect("the member's row");
    let saved = store.saved();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let mut runs = saved[0].runs.clone();
    runs.sort();
    let mut expected = vec![run.run_id.clone(), member_run];
    expected.sort();
    assert_eq!((runs, saved[0].rows.clone()), (expected, vec![row]));
}
