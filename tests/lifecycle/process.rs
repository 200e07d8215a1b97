//! Continues from another OS process: one child pauses a run and exits, the parent approves
//! the row, a second child with fresh objects and a fresh store handle continues it.
//!
//! The children are this test binary itself (see [`crate::child`]), where
//! [`child_process_entry`] plays the child's part: `pause-agent`, `continue-agent`,
//! `pause-team` or `continue-team`.

use kern::prelude::*;
use kern::run::RunOptions;

use crate::backend::Backend;
use crate::child;
use crate::tools::ran;

/// The run a `continue-*` child continues.
const RUN_VAR: &str = "KERN_LIFECYCLE_RUN";

/// Runs this binary as a child playing `role`; returns the `key=value` lines it reported.
fn spawn_child(role: &str, backend: &Backend, run_id: &str) -> Vec<(String, String)> {
    let output = child::command("process::child_process_entry", role, backend)
        .env(RUN_VAR, run_id)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child {role} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
        .lines()
        // libtest may print its `test ... ` prefix on the same line as the first report.
        .filter_map(|line| line.split_once("kern-child ").map(|(_, report)| report))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn reported<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("child reported no {key}: {lines:?}"))
}

/// The child's part; a no-op unless this process was spawned as a child.
#[tokio::test]
async fn child_process_entry() {
    let Some((role, store)) = child::role().await else { return };
    let run_id = std::env::var(RUN_VAR).unwrap_or_default();
    let user = RunOptions::default().user_id("user-p");
    let output = match role.as_str() {
        "pause-agent" => crate::approval::agent_for_process(store).run_with("delete user 42", user).await,
        "continue-agent" => crate::approval::agent_for_process(store).continue_run(&run_id, vec![]).await,
        "pause-team" => crate::team::team(store).run_with("use the member tool", user).await,
        "continue-team" => crate::team::team(store).continue_run(&run_id, vec![]).await,
        other => panic!("unknown child role {other}"),
    }
    .expect("child run");
    let ran_here: usize = std::iter::once(&output).chain(&output.member_runs).map(|r| ran(&r.run_id).len()).sum();
    println!("kern-child run_id={}", output.run_id);
    if let Some(approval_id) = output.requirements.first().and_then(|r| r.approval_id.as_deref()) {
        println!("kern-child approval_id={approval_id}");
    }
    println!("kern-child status={}", output.status);
    println!("kern-child ran={ran_here}");
}

async fn continue_in_another_process(backend: Backend, who: &str) {
    let paused = spawn_child(&format!("pause-{who}"), &backend, "");
    assert_eq!(reported(&paused, "status"), "paused");
    assert_eq!(reported(&paused, "ran"), "0");
    let run_id = reported(&paused, "run_id").to_owned();

    let store = backend.reopen().await;
    let row = store.get_approval(reported(&paused, "approval_id")).await.unwrap().expect("the child's pending row");
    assert_eq!((row.status, row.user_id.as_deref()), (ApprovalStatus::Pending, Some("user-p")));
    store.update_approval(&row.id, ApprovalUpdate::approve("admin-p")).await.unwrap();

    let continued = spawn_child(&format!("continue-{who}"), &backend, &run_id);
    assert_eq!(reported(&continued, "status"), "completed");
    assert_eq!(reported(&continued, "ran"), "1", "the approved tool ran exactly once, in the second child");
    assert_eq!(store.load_run(&run_id).await.unwrap().unwrap().status, RunStatus::Completed);
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().run_status, RunStatus::Completed);
}

#[tokio::test]
async fn an_agent_run_continues_in_another_process_on_sqlite() {
    continue_in_another_process(Backend::sqlite().await, "agent").await;
}

#[tokio::test]
async fn an_agent_run_continues_in_another_process_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        continue_in_another_process(backend, "agent").await;
    }
}

#[tokio::test]
async fn a_team_run_continues_in_another_process_on_sqlite() {
    continue_in_another_process(Backend::sqlite().await, "team").await;
}

#[tokio::test]
async fn a_team_run_continues_in_another_process_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        continue_in_another_process(backend, "team").await;
    }
}
