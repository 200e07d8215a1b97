//! Waiting for a row's resolution: what comes back at once, after a timeout, and when another
//! task, or another handle on the same database, resolves or deletes the row.
//!
//! A wait that should end early is given [`PATIENCE`], far more than it needs, and the cases
//! check what it returns, never how long it took: a wake-up that never came shows as a row
//! still pending.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use kern::Error;
use kern::approval::{Approval, ApprovalStatus, ApprovalUpdate};
use kern::db::Store;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::fixtures::{approval, create, create_all, now, seconds, stored};
use crate::harness::{Options, SqlTarget};

/// The timeout of a wait that something else ends.
const PATIENCE: Duration = Duration::from_secs(30);

/// Waits on row `id` in a task of its own.
fn spawn_wait(store: &Arc<dyn Store>, id: &str) -> JoinHandle<kern::Result<Approval>> {
    let (store, id) = (store.clone(), id.to_owned());
    tokio::spawn(async move { store.wait_for_resolution(&id, PATIENCE).await })
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

    assert_eq!(store.wait_for_resolution(&approved.id, PATIENCE).await.unwrap(), approved);
    assert_eq!(store.wait_for_resolution(&rejected.id, PATIENCE).await.unwrap(), rejected);
    // Past its expiry, a pending row has expired, though no sweep has marked it yet.
    let expired = store.wait_for_resolution(&lapsed.id, PATIENCE).await.unwrap();
    assert_eq!(expired, Approval { status: ApprovalStatus::Expired, ..lapsed.clone() });
    // Read back, it has expired too: expiry needs no sweep.
    assert_eq!(stored(&*store, &lapsed.id).await, expired);
}

pub async fn a_missing_row_is_not_found(store: Arc<dyn Store>) {
    let err = store.wait_for_resolution("no-such-id", PATIENCE).await.unwrap_err();
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
        let woken = waiter.await.unwrap().unwrap();
        assert_eq!(woken.status, ApprovalStatus::Approved);
        assert_eq!(woken.resolved_by.as_deref(), Some("admin-1"));
        assert_eq!(woken, approved);
    }
}

pub async fn a_row_that_expires_while_waited_on_comes_back_expired(store: Arc<dyn Store>) {
    let row = Approval { expires_at: Some(now() + TimeDelta::milliseconds(300)), ..approval("run-1") };
    create(&*store, &row).await;
    let expired = store.wait_for_resolution(&row.id, PATIENCE).await.unwrap();
    assert_eq!(expired, Approval { status: ApprovalStatus::Expired, ..row });
}

pub async fn a_row_cancelled_while_waited_on_comes_back_cancelled(store: Arc<dyn Store>) {
    let (deleted, kept) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[deleted.clone(), kept.clone()]).await;
    let waiter = spawn_wait(&store, &deleted.id);
    let_waiters_wait().await;

    assert!(store.delete_approval(&deleted.id).await.unwrap());
    assert_eq!(waiter.await.unwrap().unwrap().status, ApprovalStatus::Cancelled);
    // The other row's waiters are not disturbed.
    assert_eq!(store.wait_for_resolution(&kept.id, Duration::ZERO).await.unwrap(), kept);
}

pub async fn a_resolution_through_another_handle_wakes_the_waiter(target: SqlTarget) {
    let (waiting, admin) =
        (target.open(Options::default()).await.unwrap(), target.open(Options::default()).await.unwrap());
    let (store, other) = (waiting.store(), admin.store());
    let (resolved, deleted) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[resolved.clone(), deleted.clone()]).await;
    let resolution = spawn_wait(&store, &resolved.id);
    let deletion = spawn_wait(&store, &deleted.id);
    let_waiters_wait().await;

    let rejected = other.update_approval(&resolved.id, ApprovalUpdate::reject("admin-2")).await.unwrap();
    assert!(other.delete_approval(&deleted.id).await.unwrap());

    let woken = resolution.await.unwrap().unwrap();
    assert_eq!((woken.status, woken.resolved_by.as_deref()), (ApprovalStatus::Rejected, Some("admin-2")));
    assert_eq!(woken, rejected);
    assert_eq!(deletion.await.unwrap().unwrap().status, ApprovalStatus::Cancelled);
    waiting.close().await;
    admin.close().await;
}
