//! Waiting for a row's resolution: what comes back at once, after a timeout, and when another
//! task, or another handle on the same database, resolves or deletes the row.
//!
//! A wait that something else should end is given an hour, and the case gives up on it after
//! [`PATIENCE`], far more than it needs: the cases check what the wait returns, never how long
//! it took, and a wake-up that never came shows as a wait still under way. (A wait that runs
//! out reads its row once more, so a wait as short as the case's patience would hide a missed
//! wake-up.)

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use kern::Error;
use kern::approval::{Approval, ApprovalStatus, ApprovalUpdate};
use kern::db::Store;
use kern::run::RunStatus;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::fixtures::{approval, create, create_all, now, run, seconds, stored};
use crate::harness::{Options, SqlTarget};

/// How long a case waits for what should end a wait.
const PATIENCE: Duration = Duration::from_secs(30);

/// The timeout of a wait that something else ends: far past [`PATIENCE`].
const AN_HOUR: Duration = Duration::from_secs(3600);

/// Waits on row `id` in a task of its own.
fn spawn_wait(store: &Arc<dyn Store>, id: &str) -> JoinHandle<kern::Result<Approval>> {
    let (store, id) = (store.clone(), id.to_owned());
    tokio::spawn(async move { store.wait_for_resolution(&id, AN_HOUR).await })
}

/// What `waiter` returned, once something ended its wait.
async fn woken(waiter: JoinHandle<kern::Result<Approval>>) -> Approval {
    tokio::time::timeout(PATIENCE, waiter).await.expect("woken, long before its own timeout").unwrap().unwrap()
}

/// Lets spawned waiters get to their wait before the write they wait for; the outcome does not
/// depend on it, only which path of the store a case exercises.
async fn let_waiters_wait() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

pub async fn a_resolved_row_comes_back_at_once(store: Arc<dyn Store>) {
    let (approved, rejected, lapsed) =
        (approval("run-1"), approval("run-1"), Approval { expires_at: Some(now() - seconds(1)), ..approval("run-1") });
    create_all(&*store, &[approved.clone(), rejected.clone(), lapsed.clone()]).await;
    let approved = store.update_approval(&approved.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    let rejected = store.update_approval(&rejected.id, ApprovalUpdate::reject("admin-2")).await.unwrap();

    assert_eq!(woken(spawn_wait(&store, &approved.id)).await, approved);
    assert_eq!(woken(spawn_wait(&store, &rejected.id)).await, rejected);
    // Past its expiry, a pending row has expired, though no sweep has marked it yet.
    let expired = woken(spawn_wait(&store, &lapsed.id)).await;
    assert_eq!(expired, Approval { status: ApprovalStatus::Expired, ..lapsed.clone() });
    // Read back, it has expired too: expiry needs no sweep.
    assert_eq!(stored(&*store, &lapsed.id).await, expired);
}

pub async fn a_missing_row_is_not_found(store: Arc<dyn Store>) {
    let err = tokio::time::timeout(PATIENCE, store.wait_for_resolution("no-such-id", AN_HOUR)).await.expect("at once");
    let err = err.unwrap_err();
    assert!(matches!(&err, Error::ApprovalNotFound(id) if id == "no-such-id"), "{err:?}");
}

pub async fn a_timeout_returns_the_row_still_pending(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    for timeout in [Duration::ZERO, Duration::from_millis(50)] {
        assert_eq!(store.wait_for_resolution(&row.id, timeout).await.unwrap(), row);
    }
}

pub async fn a_resolution_by_another_task_wakes_every_waiter(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    let waiters: Vec<_> = (0..4).map(|_| spawn_wait(&store, &row.id)).collect();
    let_waiters_wait().await;

    let note = json!({ "note": "checked with the user" });
    let update = ApprovalUpdate::approve("admin-1").with_data(note);
    let approved = store.update_approval(&row.id, update).await.unwrap();
    for waiter in waiters {
        let resolved = woken(waiter).await;
        assert_eq!(resolved.status, ApprovalStatus::Approved);
        assert_eq!(resolved.resolved_by.as_deref(), Some("admin-1"));
        assert_eq!(resolved, approved);
    }
}

/// A run's claim, take-over and release change its status, which a live stream tells: each
/// wakes the trail's followers, though the trail does not grow.
pub async fn a_runs_claim_take_over_and_release_wake_the_followers(store: Arc<dyn Store>) {
    let paused = run("session-1");
    store.save_runs(std::slice::from_ref(&paused), &[], &[]).await.unwrap();
    let head = store.last_event_seq().await.unwrap();
    for (change, after) in
        [("claim", RunStatus::Running), ("take-over", RunStatus::Running), ("release", RunStatus::Paused)]
    {
        // The follower reads the run at each wake-up and ends once it has changed: a wake-up
        // for another reason (Postgres's listener coming up wakes everyone) is read past.
        let before = store.load_run(&paused.run_id).await.unwrap().unwrap();
        let follower = {
            let (store, id) = (store.clone(), paused.run_id.clone());
            tokio::spawn(async move {
                loop {
                    store.wait_for_events(head, AN_HOUR).await.unwrap();
                    let now = store.load_run(&id).await.unwrap().unwrap();
                    if (now.status, now.updated_at) != (before.status, before.updated_at) {
                        return now.status;
                    }
                }
            })
        };
        let_waiters_wait().await;
        match change {
            "claim" => drop(store.claim_run(&paused.run_id).await.unwrap()),
            "take-over" => drop(store.reclaim_run(&paused.run_id, Duration::ZERO).await.unwrap()),
            _ => drop(store.release_stale_run(&paused.run_id, Duration::ZERO).await.unwrap()),
        }
        let seen = tokio::time::timeout(PATIENCE, follower).await.unwrap_or_else(|_| panic!("woken by the {change}"));
        assert_eq!(seen.unwrap(), after, "{change}");
    }
}

pub async fn a_row_that_expires_while_waited_on_comes_back_expired(store: Arc<dyn Store>) {
    let row = Approval { expires_at: Some(now() + TimeDelta::milliseconds(300)), ..approval("run-1") };
    create(&*store, &row).await;
    let expired = woken(spawn_wait(&store, &row.id)).await;
    assert_eq!(expired, Approval { status: ApprovalStatus::Expired, ..row });
}

pub async fn a_row_cancelled_while_waited_on_comes_back_cancelled(store: Arc<dyn Store>) {
    let (deleted, kept) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[deleted.clone(), kept.clone()]).await;
    let waiter = spawn_wait(&store, &deleted.id);
    let_waiters_wait().await;

    assert!(store.delete_approval(&deleted.id).await.unwrap());
    assert_eq!(woken(waiter).await.status, ApprovalStatus::Cancelled);
    // The other row's waiters are not disturbed.
    assert_eq!(store.wait_for_resolution(&kept.id, Duration::ZERO).await.unwrap(), kept);
}

/// A handle's own writes wake its waiters and the trail's followers: with no reads between
/// wake-ups, nothing else could end their waits.
pub async fn a_handles_own_writes_wake_its_waiters_and_followers(target: SqlTarget) {
    let db = target.open(Options::default().woken_only()).await.unwrap();
    let store = db.store();
    let (resolved, deleted) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[resolved.clone(), deleted.clone()]).await;
    let head = store.last_event_seq().await.unwrap();
    let resolution = spawn_wait(&store, &resolved.id);
    let deletion = spawn_wait(&store, &deleted.id);
    // A follower may be woken with nothing new (a listener coming up wakes every waiter): it
    // waits again until the trail has grown.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                let last = store.wait_for_events(head, AN_HOUR).await.unwrap();
                if last > head {
                    return last;
                }
            }
        })
    };
    let_waiters_wait().await;

    let approved = store.update_approval(&resolved.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    assert!(store.delete_approval(&deleted.id).await.unwrap());

    assert_eq!(woken(resolution).await, approved);
    assert_eq!(woken(deletion).await.status, ApprovalStatus::Cancelled);
    let grown = tokio::time::timeout(PATIENCE, follower).await.expect("the follower woken").unwrap();
    assert!(grown > head);

    db.close().await;
}

pub async fn a_resolution_through_another_handle_wakes_the_waiter(target: SqlTarget) {
    // Where the database announces other handles' commits (Postgres), only the announcement
    // may end the wait; SQLite's waiters read the shared file, as designed.
    let waiting = if target.announces() { Options::default().woken_only() } else { Options::default() };
    let (waiting, admin) = (target.open(waiting).await.unwrap(), target.open(Options::default()).await.unwrap());
    let (store, other) = (waiting.store(), admin.store());
    let (resolved, deleted) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[resolved.clone(), deleted.clone()]).await;
    let resolution = spawn_wait(&store, &resolved.id);
    let deletion = spawn_wait(&store, &deleted.id);
    let_waiters_wait().await;

    let rejected = other.update_approval(&resolved.id, ApprovalUpdate::reject("admin-2")).await.unwrap();
    assert!(other.delete_approval(&deleted.id).await.unwrap());

    let resolved = woken(resolution).await;
    assert_eq!((resolved.status, resolved.resolved_by.as_deref()), (ApprovalStatus::Rejected, Some("admin-2")));
    assert_eq!(resolved, rejected);
    assert_eq!(woken(deletion).await.status, ApprovalStatus::Cancelled);
    waiting.close().await;
    admin.close().await;
}
