//! Workers: decided runs continue by themselves, exactly once, however many workers run.
//!
//! In process, on every backend: a run continues the moment its row is decided, a worker
//! started after the decisions catches up, an expired row's run is resumed with no caller, a
//! run that also waits on a plain confirmation is left to its caller, a stale run is recovered
//! behind more than a page of a retired agent's, and a decision whose event commits after a
//! later one is not passed over, whether the worker was running or was starting (nor by the
//! reader of the trail that the server and the command line share). Across processes (the
//! children are this test binary, see [`crate::child`]): four worker processes and 200 paused
//! runs decided at random by several admins, each run completed once and each approved tool run
//! once; and a worker killed with SIGKILL mid-continue, whose run another worker recovers.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kern::prelude::*;
use kern::run::RunRecord;
use kern::trail::{EventKind, TrailEvent, TrailReader};
use kern::worker::{RunOutcome, WorkerBuildError, WorkerBuilder};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::{broadcast, oneshot};

use crate::backend::{Backend, ProbeStore};
use crate::ledger::Ledger;
use crate::{child, on_every_backend};

/// The role of a child that runs a worker until it is killed.
const WORKER: &str = "worker";
/// Where the tool records its executions.
const LEDGER_VAR: &str = "KERN_WORKER_LEDGER";
/// How long anything that should happen within a second or two may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// Fulfil an order, recording it in the ledger: a line per execution (the call, its idempotency
/// key and the process), synced before the call returns. A `slow` order's first execution then
/// takes a minute, long enough to be killed in.
#[approval]
#[tool(requires_confirmation)]
async fn fulfil_order(context: &RunContext, ledger: String, slow: bool) -> Result<String, String> {
    let first = !std::fs::read_to_string(&ledger).unwrap_or_default().contains(&context.tool_call_id);
    crate::ledger::record(Path::new(&ledger), context)?;
    if slow && first {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok("fulfilled".to_owned())
}

/// Archive an order: a call that expires unanswered after a second.
#[approval(expires_in = "1s")]
#[tool(requires_confirmation)]
fn archive_order(order: String) -> String {
    format!("archived {order}")
}

/// Ask the customer first: a plain confirmation, which no row decides.
#[tool(requires_confirmation)]
fn call_customer(order: String) -> String {
    format!("called about {order}")
}

fn agent(store: Arc<dyn Store>, ledger: &Path) -> Agent {
    let ledger = ledger.display().to_string();
    let model = ScriptedModel::new()
        .when_user_contains("slow order", Reply::call("fulfil_order", json!({ "ledger": ledger, "slow": true })))
        .when_user_contains("place order", Reply::call("fulfil_order", json!({ "ledger": ledger, "slow": false })))
        .when_user_contains("archive", Reply::call("archive_order", json!({ "order": "A-1" })))
        .when_user_contains(
            "both",
            Reply::calls([
                ("fulfil_order", json!({ "ledger": ledger, "slow": false })),
                ("call_customer", json!({ "order": "A-2" })),
            ]),
        )
        .after_tool("fulfil_order", Reply::text("Order: {result}"))
        .after_tool("archive_order", Reply::text("Archive: {result}"))
        .after_tool("call_customer", Reply::text("Call: {result}"));
    Agent::builder()
        .id("orders")
        .model(model)
        .tool(FulfilOrder)
        .tool(ArchiveOrder)
        .tool(CallCustomer)
        .db(store)
        .build()
        .unwrap()
}

/// A worker of `agent` on `store`, with quick timings.
fn quick_worker(store: Arc<dyn Store>, agent: Agent) -> WorkerBuilder {
    Worker::builder()
        .store(store)
        .agent(agent)
        .poll_interval(Duration::from_millis(200))
        .upkeep_interval(Duration::from_millis(200))
}

/// A worker of `agent` on `store` in this process, with quick timings, until the returned
/// sender is dropped or fired.
fn start_worker(store: Arc<dyn Store>, agent: Agent) -> (oneshot::Sender<()>, broadcast::Receiver<RunOutcome>) {
    start(quick_worker(store, agent).build().unwrap())
}

/// Runs `worker` in this process until the returned sender is dropped or fired.
fn start(worker: Worker) -> (oneshot::Sender<()>, broadcast::Receiver<RunOutcome>) {
    let outcomes = worker.subscribe();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    (stop, outcomes)
}

/// The next outcome of a continue, within [`PATIENCE`].
async fn next_continued(outcomes: &mut broadcast::Receiver<RunOutcome>) -> RunOutput {
    let outcome = tokio::time::timeout(PATIENCE, outcomes.recv()).await.expect("an outcome in time").unwrap();
    match outcome {
        RunOutcome::Continued(output) => *output,
        other => panic!("expected a continue, got {other:?}"),
    }
}

fn row_of(run: &RunOutput) -> &str {
    run.requirements[0].approval_id.as_deref().expect("a gated call has a row")
}

async fn a_decided_run_continues_by_itself(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let (_stop, mut outcomes) = start_worker(store.clone(), agent.clone());

    let approved = agent.run("place order 1").await.unwrap();
    let rejected = agent.run("place order 2").await.unwrap();
    assert_eq!((approved.status, rejected.status), (RunStatus::Paused, RunStatus::Paused));
    store.update_approval(row_of(&approved), ApprovalUpdate::approve("admin-1")).await.unwrap();
    let done = next_continued(&mut outcomes).await;
    assert_eq!((done.run_id.as_str(), done.status), (approved.run_id.as_str(), RunStatus::Completed));
    assert_eq!(done.content.as_deref(), Some("Order: fulfil_order: fulfilled"));

    let note = ApprovalUpdate::reject("admin-2").with_data(json!({ "note": "out of stock" }));
    store.update_approval(row_of(&rejected), note).await.unwrap();
    let done = next_continued(&mut outcomes).await;
    assert_eq!((done.run_id.as_str(), done.status), (rejected.run_id.as_str(), RunStatus::Completed));
    assert_eq!(ledger.executions().len(), 1, "only the approved call ran");
    assert_eq!(store.load_run(&rejected.run_id).await.unwrap().unwrap().status, RunStatus::Completed);
}

async fn a_worker_stopped_before_its_first_turn_takes_no_run(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let paused = agent.run("place order 1").await.unwrap();
    store.update_approval(row_of(&paused), ApprovalUpdate::approve("admin-1")).await.unwrap();

    let worker = quick_worker(store.clone(), agent).build().unwrap();
    tokio::time::timeout(PATIENCE, worker.run(std::future::ready(()))).await.expect("it stops").unwrap();
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert!(ledger.executions().is_empty(), "a stop already asked for takes no run");
}

async fn a_worker_started_after_the_decisions_catches_up(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let mut runs = Vec::new();
    for n in 0..3 {
        let run = agent.run(format!("place order {n}")).await.unwrap();
        store.update_approval(row_of(&run), ApprovalUpdate::approve("admin-1")).await.unwrap();
        runs.push(run.run_id);
    }
    let (_stop, mut outcomes) = start_worker(store.clone(), agent);
    let mut continued: Vec<String> = Vec::new();
    for _ in 0..3 {
        continued.push(next_continued(&mut outcomes).await.run_id);
    }
    continued.sort();
    runs.sort();
    assert_eq!(continued, runs);
    assert_eq!(ledger.executions().len(), 3);
}

async fn an_expired_row_resumes_its_run_without_a_caller(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let (_stop, mut outcomes) = start_worker(store.clone(), agent.clone());
    let run = agent.run("archive the order").await.unwrap();
    let done = next_continued(&mut outcomes).await;
    assert_eq!((done.run_id.as_str(), done.status), (run.run_id.as_str(), RunStatus::Completed));
    let row = store.get_approval(row_of(&run)).await.unwrap().unwrap();
    assert_eq!(row.status, ApprovalStatus::Expired);
    let trail = store.trail(&row.id).await.unwrap();
    assert!(trail.iter().any(|event| event.kind == EventKind::Expired), "the sweep recorded the expiry");
}

async fn a_run_that_also_waits_on_its_caller_is_left_to_it(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let (stop, mut outcomes) = start_worker(store.clone(), agent.clone());
    let mixed = agent.run("both: fulfil and call").await.unwrap();
    assert_eq!(mixed.requirements.len(), 2);
    let row = mixed.requirements.iter().find_map(|r| r.approval_id.clone()).expect("the fulfilment has a row");
    store.update_approval(&row, ApprovalUpdate::approve("admin-1")).await.unwrap();
    // A plain order decided after it is continued: the worker has looked at the mixed run by then.
    let plain = agent.run("place order 3").await.unwrap();
    store.update_approval(row_of(&plain), ApprovalUpdate::approve("admin-1")).await.unwrap();
    assert_eq!(next_continued(&mut outcomes).await.run_id, plain.run_id);
    stop.send(()).unwrap();
    assert_eq!(store.load_run(&mixed.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    // Its caller answers the plain confirmation, and the row decides the rest.
    let mut answers = mixed.requirements.clone();
    answers.iter_mut().filter(|r| r.approval_id.is_none()).for_each(|r| r.confirmation = Some(true));
    let done = agent.continue_run(&mixed.run_id, answers).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
}

/// A run left running by a dead continue is recovered though more than a page of older stale
/// runs come first, all of a program this worker does not have (an agent since retired): it
/// reads past them.
async fn a_stale_run_behind_a_retired_agents_is_recovered(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let paused = agent.run("place order 4").await.unwrap();
    store.update_approval(row_of(&paused), ApprovalUpdate::approve("admin-1")).await.unwrap();
    let claimed = store.claim_run(&paused.run_id).await.unwrap();
    let retired: Vec<RunRecord> = (0..300)
        .map(|n| RunRecord {
            run_id: format!("retired-{n:03}"),
            agent_id: Some("retired".into()),
            updated_at: claimed.updated_at - chrono::TimeDelta::hours(1),
            ..claimed.clone()
        })
        .collect();
    store.save_runs(&retired, &[], &[]).await.unwrap();

    // The claim is half an hour old, its continue long gone: it comes after the retired runs.
    let abandoned = RunRecord { updated_at: claimed.updated_at - chrono::TimeDelta::minutes(30), ..claimed.clone() };
    store.save_runs(&[abandoned], &[], &[]).await.unwrap();
    let (_stop, mut outcomes) = start(quick_worker(store.clone(), agent).build().unwrap());
    let outcome = tokio::time::timeout(PATIENCE, outcomes.recv()).await.expect("an outcome in time").unwrap();
    let RunOutcome::Recovered(done) = outcome else { panic!("expected a recovery, got {outcome:?}") };
    assert_eq!((done.run_id.as_str(), done.status), (paused.run_id.as_str(), RunStatus::Completed));
    assert_eq!(ledger.executions().len(), 1);
    let left = store.stale_runs(Duration::ZERO, None, 1000).await.unwrap();
    assert_eq!(left.len(), 300, "the retired agent's runs are left as they were");
}

/// A worker told how long to wait for the runs under way when it stops waits that long, not for
/// a tool that takes a minute: the run is left running, to be recovered once stale.
async fn a_stopping_worker_waits_no_longer_than_its_grace(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let paused = agent.run("slow order 5").await.unwrap();
    let worker = quick_worker(store.clone(), agent).shutdown_grace(Duration::from_millis(200)).build().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    store.update_approval(row_of(&paused), ApprovalUpdate::approve("admin-1")).await.unwrap();
    let started = async {
        while ledger.executions().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, started).await.expect("the slow tool starts");

    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, running).await.expect("the worker stops").unwrap().unwrap();
    let left = store.load_run(&paused.run_id).await.unwrap().unwrap();
    assert_eq!(left.status, RunStatus::Running, "the worker did not wait for the tool's minute");
}

on_every_backend!(
    a_stopping_worker_waits_no_longer_than_its_grace,
    a_decided_run_continues_by_itself,
    a_worker_stopped_before_its_first_turn_takes_no_run,
    a_worker_started_after_the_decisions_catches_up,
    an_expired_row_resumes_its_run_without_a_caller,
    a_run_that_also_waits_on_its_caller_is_left_to_it,
    a_stale_run_behind_a_retired_agents_is_recovered,
    a_decision_that_commits_late_is_not_passed_over,
    a_decision_under_way_as_a_worker_starts_is_not_passed_over,
    a_reader_of_the_trail_waits_for_an_event_that_commits_late,
);

/// A decision whose event commits after a later one (Postgres takes an event's `seq` before its
/// transaction commits) is not passed over: the worker reads the trail again until the gap
/// fills, rather than leave the run to its next upkeep (an hour away here).
async fn a_decision_that_commits_late_is_not_passed_over(backend: Backend) {
    let probe = Arc::new(ProbeStore::with_late_event(backend.store(), EventKind::Approved));
    let store: Arc<dyn Store> = probe.clone();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let worker = quick_worker(store.clone(), agent.clone()).upkeep_interval(Duration::from_secs(3600));
    let (_stop, mut outcomes) = start(worker.build().unwrap());
    // Once its first scan is done, only the trail tells the worker of a decision.
    while !probe.calls().contains(&"decided_runs") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let decided = agent.run("place order 1").await.unwrap();
    store.update_approval(row_of(&decided), ApprovalUpdate::approve("admin-1")).await.unwrap();
    // The event after the approval's, which a reader sees first.
    let waiting = agent.run("place order 2").await.unwrap();
    let done = next_continued(&mut outcomes).await;
    assert_eq!((done.run_id.as_str(), done.status), (decided.run_id.as_str(), RunStatus::Completed));
    assert_eq!(store.load_run(&waiting.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
}

/// A decision whose commit is under way as a worker starts, with a `seq` below an event already
/// committed, is missed by the worker's first scan and lies before the end of the trail it
/// read: the worker reads the trail from before that end, and waits for the gap to fill,
/// rather than leave the run to its next upkeep (an hour away here).
async fn a_decision_under_way_as_a_worker_starts_is_not_passed_over(backend: Backend) {
    let probe = Arc::new(ProbeStore::with_event_in_flight(backend.store(), EventKind::Approved));
    let store: Arc<dyn Store> = probe.clone();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let decided = agent.run("place order 1").await.unwrap();
    store.update_approval(row_of(&decided), ApprovalUpdate::approve("admin-1")).await.unwrap();
    // Committed after the approval's event took its `seq`, and before the worker starts.
    let waiting = agent.run("place order 2").await.unwrap();

    let worker = quick_worker(store.clone(), agent.clone()).upkeep_interval(Duration::from_secs(3600));
    let (_stop, mut outcomes) = start(worker.build().unwrap());
    while !probe.calls().contains(&"decided_runs") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    probe.commit_in_flight();
    let done = next_continued(&mut outcomes).await;
    assert_eq!((done.run_id.as_str(), done.status), (decided.run_id.as_str(), RunStatus::Completed));
    assert_eq!(store.load_run(&waiting.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
}

/// What the worker, `GET /events`, `GET /audit/events` and the command line read the trail
/// with: a reader stops before a gap in the `seq`s until it fills, and a reader that must not
/// answer an empty page while events exist (a page of the API) waits for it.
async fn a_reader_of_the_trail_waits_for_an_event_that_commits_late(backend: Backend) {
    let kinds = |events: &[TrailEvent]| events.iter().map(|event| event.kind).collect::<Vec<_>>();
    for waiting in [false, true] {
        let store: Arc<dyn Store> = Arc::new(ProbeStore::with_late_event(backend.store(), EventKind::Approved));
        let agent = agent(store.clone(), Path::new("unused"));
        let start = store.last_event_seq().await.unwrap();
        let decided = agent.run("place order 1").await.unwrap();
        let mut reader = TrailReader::after(start);
        assert_eq!(kinds(&reader.read(store.as_ref(), 10).await.unwrap()), [EventKind::Created]);
        store.update_approval(row_of(&decided), ApprovalUpdate::approve("admin-1")).await.unwrap();
        agent.run("place order 2").await.unwrap();

        let events = if waiting {
            reader.read_waiting(store.as_ref(), 10).await.unwrap()
        } else {
            // The approval's event is missing from the first read, which holds a later one.
            assert!(reader.read(store.as_ref(), 10).await.unwrap().is_empty());
            assert_eq!(kinds(reader.held_back()), [EventKind::Created], "the gap may still fill");
            reader.read(store.as_ref(), 10).await.unwrap()
        };
        assert_eq!(kinds(&events), [EventKind::Approved, EventKind::Created], "nothing passed over");
        assert!(reader.held_back().is_empty());
        assert_eq!(reader.position(), store.last_event_seq().await.unwrap());
        assert!(reader.read_waiting(store.as_ref(), 10).await.unwrap().is_empty(), "caught up");
    }
}

#[test]
fn a_worker_needs_a_store_something_to_run_and_distinct_ids() {
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let ledger = PathBuf::from("unused");
    let err = Worker::builder().agent(agent(store.clone(), &ledger)).build().unwrap_err();
    assert_eq!(err, WorkerBuildError::NoStore);
    assert!(err.to_string().contains(".store(db)"));
    assert_eq!(Worker::builder().store(store.clone()).build().unwrap_err(), WorkerBuildError::NothingToRun);
    let twice = Worker::builder()
        .store(store.clone())
        .agent(agent(store.clone(), &ledger))
        .agent(agent(store.clone(), &ledger));
    assert_eq!(twice.build().unwrap_err(), WorkerBuildError::DuplicateId("orders".into()));
    let idle = Worker::builder().store(store.clone()).agent(agent(store.clone(), &ledger)).concurrency(0);
    assert_eq!(idle.build().unwrap_err(), WorkerBuildError::ZeroConcurrency);
    let busy =
        Worker::builder().store(store.clone()).agent(agent(store.clone(), &ledger)).poll_interval(Duration::ZERO);
    assert_eq!(busy.build().unwrap_err(), WorkerBuildError::IntervalOutOfRange { setting: "poll_interval" });
    let never =
        Worker::builder().store(store.clone()).agent(agent(store.clone(), &ledger)).upkeep_interval(Duration::MAX);
    let err = never.build().unwrap_err();
    assert_eq!(err, WorkerBuildError::IntervalOutOfRange { setting: "upkeep_interval" });
    assert!(err.to_string().contains("at most a day"), "{err}");
    // A stale time under the claim's renewals would take over continues still under way.
    let hasty = |stale_after| {
        Worker::builder().store(store.clone()).agent(agent(store.clone(), &ledger)).stale_after(stale_after)
    };
    let err = hasty(kern::worker::MIN_STALE_AFTER - Duration::from_millis(1)).build().unwrap_err();
    assert_eq!(err, WorkerBuildError::StaleAfterTooShort);
    assert!(err.to_string().contains("renews its claim every 20 s"), "{err}");
    hasty(kern::worker::MIN_STALE_AFTER).build().expect("the least stale time");
}

/// The child's part: a worker until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_entry() {
    let Some((role, store)) = child::role().await else { return };
    assert_eq!(role, WORKER);
    let ledger = PathBuf::from(std::env::var(LEDGER_VAR).expect("a ledger"));
    let worker = Worker::builder()
        .store(store.clone())
        .agent(agent(store, &ledger))
        .concurrency(8)
        .poll_interval(Duration::from_millis(500))
        .upkeep_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut outcomes = worker.subscribe();
    tokio::spawn(async move {
        while let Ok(outcome) = outcomes.recv().await {
            if let RunOutcome::Failed { run_id, error } = outcome {
                eprintln!("kern-child failed {run_id}: {error}");
            }
        }
    });
    println!("kern-child ready");
    worker.run(std::future::pending()).await.unwrap();
}

/// A worker process on `backend`'s store, killed when dropped, once it is ready.
async fn spawn_worker(backend: &Backend, ledger: &Ledger) -> tokio::process::Child {
    let mut command = tokio::process::Command::from(child::command("worker::child_entry", WORKER, backend));
    command.env(LEDGER_VAR, &ledger.0).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    let mut worker = command.spawn().expect("spawn a worker");
    let mut stdout = BufReader::new(worker.stdout.take().expect("the worker's stdout")).lines();
    let ready = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = stdout.next_line().await.expect("read the worker's stdout") {
            if line.contains("kern-child ready") {
                return;
            }
        }
        panic!("the worker exited before it was ready");
    });
    ready.await.expect("the worker opens the store in time");
    // Keeps the pipe open, so that the worker's writes to stdout do not fail.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    worker
}

/// Waits until every run of `runs` is completed, within [`PATIENCE`].
async fn all_completed(store: &dyn Store, runs: &[String]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut open = HashMap::new();
        for run_id in runs {
            let status = store.load_run(run_id).await.unwrap().unwrap().status;
            if status != RunStatus::Completed {
                *open.entry(status).or_insert(0) += 1;
            }
        }
        if open.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let decided = store.decided_runs(None, 1000).await.unwrap().len();
            panic!("runs not completed in time, by status: {open:?}; decided and paused: {decided}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How an admin decides a row, drawn at random: mostly approved, some rejected, a few withdrawn.
fn random_decision() -> ApprovalStatus {
    match RandomState::new().hash_one(std::time::SystemTime::now()) % 10 {
        0..=6 => ApprovalStatus::Approved,
        7..=8 => ApprovalStatus::Rejected,
        _ => ApprovalStatus::Cancelled,
    }
}

/// Four worker processes, 200 paused runs decided at random by three admins at once.
async fn four_workers_complete_200_runs_once_each(backend: Backend) {
    const RUNS: usize = 200;
    const ADMINS: usize = 3;
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let mut paused = Vec::with_capacity(RUNS);
    for n in 0..RUNS {
        paused.push(agent.run(format!("place order {n}")).await.unwrap());
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(spawn_worker(&backend, &ledger).await);
    }

    let mut admins = tokio::task::JoinSet::new();
    for admin in 0..ADMINS {
        let rows: Vec<String> = paused.iter().skip(admin).step_by(ADMINS).map(|run| row_of(run).to_owned()).collect();
        let store = store.clone();
        admins.spawn(async move {
            let mut decided = Vec::new();
            for row in rows {
                let who = format!("admin-{admin}");
                let status = random_decision();
                match status {
                    ApprovalStatus::Approved => {
                        drop(store.update_approval(&row, ApprovalUpdate::approve(who)).await.unwrap())
                    }
                    ApprovalStatus::Rejected => {
                        let note = ApprovalUpdate::reject(who).with_data(json!({ "note": "not now" }));
                        drop(store.update_approval(&row, note).await.unwrap());
                    }
                    _ => assert!(store.delete_approval(&row).await.unwrap()),
                }
                decided.push((row, status));
            }
            decided
        });
    }
    let mut decisions = HashMap::new();
    while let Some(decided) = admins.join_next().await {
        decisions.extend(decided.unwrap());
    }
    let run_ids: Vec<String> = paused.iter().map(|run| run.run_id.clone()).collect();
    all_completed(&*store, &run_ids).await;
    drop(workers);

    let executions = ledger.executions();
    let mut approved = 0;
    for run in &paused {
        let row = row_of(run);
        let call = &run.requirements[0].tool_execution.tool_call_id;
        let ran = executions.get(call).map_or(0, Vec::len);
        let executed = store.trail(row).await.unwrap().iter().filter(|e| e.kind == EventKind::Executed).count();
        if decisions[row] == ApprovalStatus::Approved {
            approved += 1;
            assert_eq!((ran, executed), (1, 1), "approved call {call} ran once");
        } else {
            assert_eq!((ran, executed), (0, 0), "{:?} call {call} did not run", decisions[row]);
        }
    }
    assert_eq!(executions.len(), approved);
    assert!(store.decided_runs(None, 10).await.unwrap().is_empty(), "no decided run is left paused");
}

/// A worker killed while its approved tool runs: another worker takes the run over once it is
/// stale, and it completes (the tool running a second time under the same idempotency key).
async fn a_killed_workers_run_is_recovered_by_another(backend: Backend) {
    let store = backend.store();
    let ledger = Ledger::new();
    let agent = agent(store.clone(), &ledger.0);
    let run = agent.run("slow order").await.unwrap();
    let mut first = spawn_worker(&backend, &ledger).await;
    store.update_approval(row_of(&run), ApprovalUpdate::approve("admin-1")).await.unwrap();
    let call = run.requirements[0].tool_execution.tool_call_id.clone();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !ledger.executions().contains_key(&call) {
        assert!(tokio::time::Instant::now() < deadline, "the first worker never ran the tool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().await.expect("kill the first worker");
    child::sessions_ended(&backend).await;
    let left = store.load_run(&run.run_id).await.unwrap().unwrap();
    assert_eq!(left.status, RunStatus::Running);
    // Its claim left unrenewed longer than the second worker waits.
    let abandoned = RunRecord { updated_at: left.updated_at - chrono::TimeDelta::hours(1), ..left };
    store.save_runs(&[abandoned], &[], &[]).await.unwrap();

    let _second = spawn_worker(&backend, &ledger).await;
    all_completed(&*store, std::slice::from_ref(&run.run_id)).await;
    let ran = &ledger.executions()[&call];
    assert_eq!(ran.len(), 2, "once in the killed worker, once in its recovery");
    assert_eq!(ran[0].0, ran[1].0, "under the same idempotency key");
    assert_ne!(ran[0].1, ran[1].1, "in two processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_complete_200_runs_once_each_on_sqlite() {
    four_workers_complete_200_runs_once_each(Backend::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_complete_200_runs_once_each_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        four_workers_complete_200_runs_once_each(backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_run_is_recovered_by_another_on_sqlite() {
    a_killed_workers_run_is_recovered_by_another(Backend::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_run_is_recovered_by_another_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        a_killed_workers_run_is_recovered_by_another(backend).await;
    }
}
