//! Processes killed mid-cycle: a child process runs approve cycles (pause, approve, continue)
//! on a SQLite file or on Postgres and is killed with SIGKILL at a random point of one, a few
//! times over; after each kill the parent checks the store and finishes what the child left.
//!
//! The cycles' tool appends each of its executions to a ledger file and syncs it before it
//! returns, so the count outlives the process that ran it. After every kill: every row reads
//! back, alone and in listings; every run is paused, running or completed, with its rows
//! following its status; recovery finishes every run left running; and every approved call ran
//! exactly once, but for a call whose run the kill left running, which its recovery runs once
//! more under the same idempotency key (the second run `Agent::recover_run` warns of). The
//! kills go on past [`KILLS`] until some kill has left a run paused and some a run running, so
//! that both ways of finishing are exercised on every backend.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kern::prelude::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

use crate::backend::Backend;
use crate::child;
use crate::ledger::Ledger;

/// The role of a child that runs approve cycles until it is killed.
const CYCLES: &str = "approve-cycles";
/// Where the child's tool records its executions.
const LEDGER_VAR: &str = "KERN_LIFECYCLE_LEDGER";
/// How many times the child is killed, per backend, at least.
const KILLS: usize = 8;
/// How many times the child may be killed, per backend, before a kill has left a run to
/// continue and one to recover.
const MAX_KILLS: usize = 60;
/// The longest the child cycles before it is killed, from when it is ready.
const MAX_DELAY_MS: u64 = 60;
/// How long a child may take to open the store.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// A child nobody kills stops cycling after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// Settle an invoice, recording it in the ledger: a line per execution (the call, its
/// idempotency key and the process), synced before the call returns.
#[approval]
#[tool(requires_confirmation)]
fn settle_invoice(context: &RunContext, ledger: String) -> Result<String, String> {
    crate::ledger::record(Path::new(&ledger), context)?;
    Ok("settled".to_owned())
}

fn agent(store: Arc<dyn Store>, ledger: &Path) -> Agent {
    let settle = Reply::call("settle_invoice", json!({ "ledger": ledger.display().to_string() }));
    let model = ScriptedModel::new().when_user_contains("settle", settle);
    Agent::builder().id("billing").model(model).tool(SettleInvoice).db(store).build().unwrap()
}

/// The child's part: approve cycles, one after the other, until it is killed.
#[tokio::test]
async fn child_entry() {
    let Some((role, store)) = child::role().await else { return };
    assert_eq!(role, CYCLES);
    let ledger = PathBuf::from(std::env::var(LEDGER_VAR).expect("a ledger"));
    let agent = agent(store.clone(), &ledger);
    println!("kern-child ready");
    let started = tokio::time::Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let run = agent.run("settle the invoice").await.expect("the run pauses");
        let row = run.requirements[0].approval_id.as_deref().expect("the gated call has a row");
        store.update_approval(row, ApprovalUpdate::approve("admin-c")).await.expect("the row is approved");
        let done = agent.continue_run(&run.run_id, Vec::new()).await.expect("the run is continued");
        assert_eq!(done.status, RunStatus::Completed);
    }
}

/// How the parent finished a run the child left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// The child completed it.
    ByChild,
    /// It was paused: the parent approved its row if need be and continued it.
    Continued,
    /// It was running: the parent recovered it.
    Recovered,
}

/// A delay in `0..=max_ms` milliseconds, drawn from std's randomly keyed hasher.
fn random_delay(max_ms: u64) -> Duration {
    Duration::from_millis(RandomState::new().hash_one(std::time::SystemTime::now()) % (max_ms + 1))
}

/// Runs approve cycles in a child, kills it at a random point, and has the parent check the
/// store and finish what was left; [`KILLS`] times on one store, and more until a kill has left
/// a run to continue and one to recover.
async fn killed_cycles(backend: Backend) {
    let ledger = Ledger::new();
    let mut finished = BTreeMap::new();
    let left = |finished: &BTreeMap<String, Finished>, how| finished.values().any(|seen| *seen == how);
    for kill in 1.. {
        let both_left = left(&finished, Finished::Continued) && left(&finished, Finished::Recovered);
        if kill > KILLS && both_left {
            break;
        }
        assert!(kill <= MAX_KILLS, "{MAX_KILLS} kills never left both a paused and a running run: {finished:?}");
        let mut command = tokio::process::Command::from(child::command("crash::child_entry", CYCLES, &backend));
        command.env(LEDGER_VAR, &ledger.0).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut cycling = command.spawn().expect("spawn the child");
        let mut stdout = BufReader::new(cycling.stdout.take().expect("the child's stdout")).lines();
        let ready = tokio::time::timeout(READY_WITHIN, async {
            while let Some(line) = stdout.next_line().await.expect("read the child's stdout") {
                if line.contains("kern-child ready") {
                    return true;
                }
            }
            false
        });
        let ready = ready.await.expect("the child opens the store in time");
        if ready {
            tokio::time::sleep(random_delay(MAX_DELAY_MS)).await;
        }
        if !ready || cycling.try_wait().expect("poll the child").is_some() {
            let mut stderr = String::new();
            cycling.stderr.take().expect("the child's stderr").read_to_string(&mut stderr).await.ok();
            panic!("kill {kill}: the child stopped before it was killed:\n{stderr}");
        }
        cycling.kill().await.expect("kill the child");
        child::sessions_ended(&backend).await;

        let store = backend.reopen().await;
        finish(&*store, &agent(store.clone(), &ledger.0), &mut finished).await;
        check(&*store, &ledger, &finished).await;
    }
}

/// Reads every row and its run as a restarted process would, checks they agree, and finishes
/// the runs the child left: recovers those left running, continues the paused ones (approving
/// their row if need be). Records how each run was finished in `finished`.
async fn finish(store: &dyn Store, agent: &Agent, finished: &mut BTreeMap<String, Finished>) {
    for row in all_rows(store).await {
        let run = store.load_run(&row.run_id).await.expect("read the run").expect("a row's run is stored");
        let expected_run_status = if run.status == RunStatus::Running { RunStatus::Paused } else { run.status };
        assert_eq!(row.run_status, expected_run_status, "the row follows its run: {row:?}");
        let how = match (run.status, row.status) {
            (RunStatus::Completed, ApprovalStatus::Approved) => {
                finished.entry(run.run_id.clone()).or_insert(Finished::ByChild);
                continue;
            }
            (RunStatus::Running, ApprovalStatus::Approved) => {
                let done = agent.recover_run(&run.run_id, Duration::ZERO).await.expect("the run is recovered");
                assert_eq!(done.status, RunStatus::Completed, "{done:?}");
                Finished::Recovered
            }
            (RunStatus::Paused, ApprovalStatus::Pending | ApprovalStatus::Approved) => {
                if row.status == ApprovalStatus::Pending {
                    store.update_approval(&row.id, ApprovalUpdate::approve("admin-p")).await.expect("approve");
                }
                let done = agent.continue_run(&run.run_id, Vec::new()).await.expect("the run is continued");
                assert_eq!(done.status, RunStatus::Completed, "{done:?}");
                Finished::Continued
            }
            other => panic!("no cycle leaves a run and its row {other:?}: {row:?}"),
        };
        finished.insert(run.run_id, how);
    }
}

/// Every run is completed with its row approved, the listings agree, and each call ran as
/// often as how its run was finished allows.
async fn check(store: &dyn Store, ledger: &Ledger, finished: &BTreeMap<String, Finished>) {
    let rows = all_rows(store).await;
    assert_eq!(rows.len(), finished.len(), "one row per run");
    assert_eq!(store.count_pending_approvals(None).await.expect("count the pending rows"), 0);
    let pending = store.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending)).await;
    assert_eq!(pending.expect("list the pending rows").total, 0);
    let mut executions = ledger.executions();
    for row in &rows {
        let run = store.load_run(&row.run_id).await.expect("read the run").expect("the run is stored");
        assert_eq!(
            (run.status, row.status, row.run_status),
            (RunStatus::Completed, ApprovalStatus::Approved, RunStatus::Completed)
        );
        let ran = executions.remove(&row.tool_call_id).unwrap_or_default();
        let key = format!("{}:{}", row.id, row.tool_call_id);
        assert!(ran.iter().all(|(ran_key, _)| *ran_key == key), "every execution has the row's key: {ran:?}");
        let here = ran.iter().filter(|(_, pid)| *pid == std::process::id()).count();
        let in_children = ran.len() - here;
        let allowed = match finished[&row.run_id] {
            Finished::ByChild => (0, 1..=1),
            Finished::Continued => (1, 0..=0),
            // The kill may have come after the tool ran and before the outcome was stored.
            Finished::Recovered => (1, 0..=1),
        };
        assert!(here == allowed.0 && allowed.1.contains(&in_children), "{:?}: {ran:?}", finished[&row.run_id]);
    }
    assert!(executions.is_empty(), "no call ran without its row: {executions:?}");
}

/// Every row, page by page; each one also reads back alone, as listed.
async fn all_rows(store: &dyn Store) -> Vec<Approval> {
    const PAGE: u32 = 20;
    let mut rows = Vec::new();
    for page in 1.. {
        let listed = store.list_approvals(&ApprovalQuery::default().limit(PAGE).page(page)).await.expect("list rows");
        let last = listed.items.len() < PAGE as usize;
        rows.extend(listed.items);
        if last {
            assert_eq!(listed.total, rows.len() as u64, "the pages hold every row");
            break;
        }
    }
    for row in &rows {
        assert_eq!(store.get_approval(&row.id).await.expect("read the row").as_ref(), Some(row));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_cycles_killed_at_random_leave_runs_recovery_finishes_on_sqlite() {
    killed_cycles(Backend::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_cycles_killed_at_random_leave_runs_recovery_finishes_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        killed_cycles(backend).await;
    }
}
