//! Waiting for an approval row to be resolved: the loop behind every
//! [`Store::wait_for_resolution`](crate::store::Store::wait_for_resolution), and the wake-ups a
//! store sends it.
//!
//! A waiter decides only from the row as it reads it, so a wake-up carries no news, just "read
//! again": a spurious one costs a read, and a store may wake more waiters than it must. What a
//! store must never do is let a resolution pass unnoticed, so each waiter registers for wake-ups
//! before it reads, and reads again after every wake-up, on a timer where writes made elsewhere
//! cannot wake it, and when the row's expiry comes.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::approval::{Approval, ApprovalStatus};
use crate::error::{Error, Result};

/// How soon a waiter whose read failed reads again, when its store polls no sooner: the
/// database may be restarting.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How long a read of the row may take past the wait's deadline: the last read is made at the
/// deadline.
const READ_PATIENCE: Duration = Duration::from_secs(10);

/// The failure of a read still unanswered at the wait's deadline.
fn silent() -> Error {
    Error::database(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the row was not read in time for the wait's deadline",
    ))
}

/// The tasks waiting on approval rows, by row id: a store wakes them after each write that may
/// resolve or delete rows. For store implementations; clones of a store share one.
#[derive(Debug, Default)]
pub struct ResolutionWaiters {
    rows: Mutex<HashMap<String, Waiting>>,
    /// Set once the store closes: a read that fails then is the end of the wait, not a
    /// database away for a while.
    closed: AtomicBool,
}

/// The waiters of one row. Entries live only while the row has waiters, so the map stays as
/// small as the number of rows waited on.
#[derive(Debug)]
struct Waiting {
    notify: Arc<Notify>,
    waiters: usize,
}

impl ResolutionWaiters {
    /// No waiters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the waiters of row `id` to read it again: after a write that may have resolved or
    /// deleted it.
    pub fn wake(&self, id: &str) {
        if let Some(row) = self.rows().get(id) {
            row.notify.notify_waiters();
        }
    }

    /// Tells the waiters their store has closed: each reads once more, and a read that fails
    /// ends its wait with the failure.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    /// Wakes every waiter: after a write whose rows are not known one by one (an expiry sweep),
    /// or when wake-ups may have been lost.
    pub fn wake_all(&self) {
        for row in self.rows().values() {
            row.notify.notify_waiters();
        }
    }

    /// Waits for row `id` as
    /// [`Store::wait_for_resolution`](crate::store::Store::wait_for_resolution) specifies,
    /// reading it with `read`: at first, after each [`wake`](Self::wake) of `id` (or
    /// [`wake_all`](Self::wake_all)), when its expiry comes, and when the timeout passes.
    ///
    /// `poll_interval` is asked before each read: how long a pending row may go unread when no
    /// wake-up comes, for stores that other processes write to without waking this one (`None`:
    /// every write wakes it).
    ///
    /// Once the row has been read, a read that fails with [`Error::Database`] (a restart, a lost
    /// connection) is waited out, unless the store has [closed](Self::close): the row is read
    /// again after the poll interval (at most a second) or a wake-up, until the
    /// deadline, when the failure is the answer. A wait of an hour does not end because the
    /// database was away for a minute of it, nor outlasts its deadline by more than ten seconds
    /// on a read that hangs.
    pub async fn wait<F, Fut>(
        &self,
        id: &str,
        timeout: Duration,
        poll_interval: impl Fn() -> Option<Duration>,
        mut read: F,
    ) -> Result<Approval>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Approval>>>,
    {
        // `None` for a timeout too long to express: no deadline.
        let deadline = Instant::now().checked_add(timeout);
        let subscription = self.subscribe(id);
        let mut read_once = false;
        loop {
            // Created before the read, so a wake-up from here on ends the sleep below. The poll
            // interval is asked before the read too: a store whose wake-ups from other processes
            // are working now will be told of every write after the read.
            let woken = subscription.notify.notified();
            let poll = poll_interval();
            // A read that hangs (a connection gone silent) ends at the deadline, given the time
            // a read takes (a wait of no time reads once all the same).
            let read = read();
            let read = match deadline {
                Some(at) => {
                    let at = at.max(Instant::now() + READ_PATIENCE);
                    tokio::time::timeout_at(at, read).await.unwrap_or_else(|_| Err(silent()))
                }
                None => read.await,
            };
            let row = match read {
                Ok(row) => row.ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))?,
                Err(error @ Error::Database(_))
                    if read_once
                        && !self.closed.load(Ordering::Acquire)
                        && deadline.is_none_or(|at| Instant::now() < at) =>
                {
                    tracing::warn!(%error, id, "cannot read the approval row waited for; reading it again");
                    let retry = Instant::now() + poll.unwrap_or(RETRY_AFTER_FAILURE).min(RETRY_AFTER_FAILURE);
                    let _ = tokio::time::timeout_at(deadline.map_or(retry, |at| at.min(retry)), woken).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            read_once = true;
            match next_step(row, deadline, poll) {
                ControlFlow::Break(row) => return Ok(row),
                ControlFlow::Continue(Some(at)) => {
                    // Woken or not, the row is read again.
                    let _ = tokio::time::timeout_at(at, woken).await;
                }
                ControlFlow::Continue(None) => woken.await,
            }
        }
    }

    fn subscribe<'a>(&'a self, id: &'a str) -> Subscription<'a> {
        let mut rows = self.rows();
        let row = rows.entry(id.to_owned()).or_insert_with(|| Waiting { notify: Arc::default(), waiters: 0 });
        row.waiters += 1;
        Subscription { waiters: self, id, notify: row.notify.clone() }
    }

    fn rows(&self) -> MutexGuard<'_, HashMap<String, Waiting>> {
        // Nothing panics while holding the lock, and every change is one step: the map stays
        // usable.
        self.rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One waiter's registration for the wake-ups of its row, withdrawn when dropped (a wait that
/// returns, fails or is cancelled).
struct Subscription<'a> {
    waiters: &'a ResolutionWaiters,
    id: &'a str,
    notify: Arc<Notify>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut rows = self.waiters.rows();
        if let Some(row) = rows.get_mut(self.id) {
            row.waiters -= 1;
            if row.waiters == 0 {
                rows.remove(self.id);
            }
        }
    }
}

/// Decides on a freshly read `row`: return it (`Break`) when it is resolved (a pending row past
/// its expiry is, as [`Approval::is_expired_at`] says, and goes back marked expired) or the
/// deadline has passed; otherwise read it again when woken (`Continue`), or at the latest by the
/// deadline, the row's expiry (which no write announces) or the poll interval, whichever comes
/// first (`None`: only when woken).
fn next_step(
    row: Approval,
    deadline: Option<Instant>,
    poll: Option<Duration>,
) -> ControlFlow<Approval, Option<Instant>> {
    let now = crate::now();
    if row.is_expired_at(now) {
        return ControlFlow::Break(Approval { status: ApprovalStatus::Expired, ..row });
    }
    let instant = Instant::now();
    if row.status.is_resolved() || deadline.is_some_and(|deadline| deadline <= instant) {
        return ControlFlow::Break(row);
    }
    let expiry = row.expires_at.and_then(|at| (at - now).to_std().ok()).and_then(|left| instant.checked_add(left));
    let poll = poll.and_then(|interval| instant.checked_add(interval));
    ControlFlow::Continue([deadline, expiry, poll].into_iter().flatten().min())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::BoxFuture;
    use crate::approval::{
        ApprovalPage, ApprovalQuery, ApprovalType, ApprovalUpdate, Decision, PageCursor, PauseType, Principal,
        SourceType, Vote,
    };
    use crate::keys::ApiKey;
    use crate::run::{RunPage, RunQuery, RunRecord, RunStatus};
    use crate::store::{MemoryDb, Store};
    use crate::trail::{Execution, TrailEvent, TrailReport};

    fn pending() -> Approval {
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
            tool_name: "delete_user_data".into(),
            tool_args: serde_json::json!({}),
            tool_call_id: "call-1".into(),
            requirements: Vec::new(),
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

    #[test]
    fn resolved_rows_are_done_and_a_lapsed_pending_row_is_expired() {
        let rejected = Approval { status: ApprovalStatus::Rejected, ..pending() };
        assert!(matches!(next_step(rejected.clone(), None, None), ControlFlow::Break(row) if row == rejected));
        let lapsed = Approval { expires_at: Some(crate::now() - TimeDelta::seconds(1)), ..pending() };
        let expected = Approval { status: ApprovalStatus::Expired, ..lapsed.clone() };
        assert!(matches!(next_step(lapsed, None, None), ControlFlow::Break(row) if row == expected));
    }

    #[test]
    fn a_pending_row_past_the_deadline_is_done() {
        let row = pending();
        assert!(matches!(next_step(row.clone(), Some(Instant::now()), None), ControlFlow::Break(done) if done == row));
    }

    #[test]
    fn a_pending_row_is_read_again_at_the_first_of_deadline_expiry_and_poll() {
        let soon = Instant::now() + Duration::from_secs(3600);
        let ControlFlow::Continue(Some(at)) = next_step(pending(), Some(soon), Some(Duration::from_secs(1))) else {
            panic!("a pending row is read again");
        };
        assert!(at < soon);
        let expiring = Approval { expires_at: Some(crate::now() + TimeDelta::seconds(2)), ..pending() };
        let ControlFlow::Continue(Some(at)) = next_step(expiring, None, None) else {
            panic!("a pending row is read again");
        };
        assert!(at <= Instant::now() + Duration::from_secs(2));
        assert!(matches!(next_step(pending(), None, None), ControlFlow::Continue(None)));
    }

    /// A store that takes the default wait: a memory store's rows, read by polling.
    struct Polled(MemoryDb);

    impl Store for Polled {
        fn save_runs<'a>(
            &'a self,
            runs: &'a [RunRecord],
            approvals: &'a [Approval],
            executions: &'a [Execution],
        ) -> BoxFuture<'a, Result<()>> {
            self.0.save_runs(runs, approvals, executions)
        }

        fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
            self.0.load_run(run_id)
        }

        fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
            self.0.claim_run(run_id)
        }

        fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
            self.0.reclaim_run(run_id, stale_after)
        }

        fn renew_claim<'a>(
            &'a self,
            run_id: &'a str,
            held_at: DateTime<Utc>,
            renewed_at: DateTime<Utc>,
        ) -> BoxFuture<'a, Result<()>> {
            self.0.renew_claim(run_id, held_at, renewed_at)
        }

        fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
            self.0.release_stale_run(run_id, stale_after)
        }

        fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
            self.0.session_runs(session_id, limit)
        }

        fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>> {
            self.0.list_runs(query)
        }

        fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
            self.0.get_approval(id)
        }

        fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
            self.0.list_approvals(query)
        }

        fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
            self.0.update_approval(id, update)
        }

        fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
            self.0.delete_approval(id)
        }

        fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
            self.0.count_pending_approvals(user_id)
        }

        fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
            self.0.expire_approvals(now)
        }

        fn decide<'a>(
            &'a self,
            id: &'a str,
            principal: &'a Principal,
            decision: Decision,
        ) -> BoxFuture<'a, Result<Approval>> {
            self.0.decide(id, principal, decision)
        }

        fn votes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Vote>>> {
            self.0.votes(id)
        }

        fn cancel_run<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
            self.0.cancel_run(run_id, principal)
        }

        fn cancel_run_as<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
            self.0.cancel_run_as(run_id, principal)
        }

        fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>> {
            self.0.trail(id)
        }

        fn verify_trail(&self) -> BoxFuture<'_, Result<TrailReport>> {
            self.0.verify_trail()
        }

        fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>> {
            self.0.events_after(after, limit)
        }

        fn last_event_seq(&self) -> BoxFuture<'_, Result<i64>> {
            self.0.last_event_seq()
        }

        fn wait_for_events(&self, after: i64, timeout: Duration) -> BoxFuture<'_, Result<i64>> {
            self.0.wait_for_events(after, timeout)
        }

        fn decided_runs<'a>(&'a self, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
            self.0.decided_runs(after, limit)
        }

        fn stale_runs<'a>(
            &'a self,
            stale_after: Duration,
            after: Option<&'a PageCursor>,
            limit: u32,
        ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
            self.0.stale_runs(stale_after, after, limit)
        }

        fn runs_changed_after<'a>(
            &'a self,
            after: &'a PageCursor,
            limit: u32,
        ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
            self.0.runs_changed_after(after, limit)
        }

        fn save_api_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
            self.0.save_api_key(key)
        }

        fn api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
            self.0.api_key(id)
        }

        fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKey>>> {
            self.0.api_keys()
        }

        fn revoke_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
            self.0.revoke_api_key(id)
        }
    }

    #[tokio::test]
    async fn the_default_wait_polls_until_the_row_is_resolved_or_cancelled() {
        let store = Arc::new(Polled(MemoryDb::new()));
        let (resolved, deleted) = (pending(), Approval { id: "row-2".into(), ..pending() });
        store.save_runs(&[], &[resolved.clone(), deleted.clone()], &[]).await.unwrap();
        assert_eq!(store.wait_for_resolution(&resolved.id, Duration::ZERO).await.unwrap(), resolved);

        let wait = |id: &str| {
            let (store, id) = (store.clone(), id.to_owned());
            tokio::spawn(async move { store.wait_for_resolution(&id, Duration::from_secs(30)).await })
        };
        let (resolution, deletion) = (wait(&resolved.id), wait(&deleted.id));
        // Lets the waiters read the rows pending first; the outcome does not depend on it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let approved = store.update_approval(&resolved.id, ApprovalUpdate::approve("admin")).await.unwrap();
        assert!(store.delete_approval(&deleted.id).await.unwrap());
        assert_eq!(resolution.await.unwrap().unwrap(), approved);
        assert_eq!(deletion.await.unwrap().unwrap().status, ApprovalStatus::Cancelled);
    }

    #[tokio::test]
    async fn a_waiter_withdraws_when_its_wait_ends() {
        let waiters = ResolutionWaiters::new();
        let row = Approval { status: ApprovalStatus::Approved, ..pending() };
        let read = || std::future::ready(Ok(Some(row.clone())));
        assert_eq!(waiters.wait("row-1", Duration::from_secs(30), || None, read).await.unwrap(), row);
        assert!(waiters.rows().is_empty());
    }

    /// Reads of row-1 that answer in turn from `answers`: a row, or a database failure.
    fn reads(answers: Vec<Option<Approval>>) -> impl FnMut() -> std::future::Ready<Result<Option<Approval>>> {
        let answers = Mutex::new(answers.into_iter());
        move || {
            let next = answers.lock().unwrap().next().expect("no more reads were expected");
            std::future::ready(
                next.map(Some).ok_or_else(|| Error::database(std::io::Error::other("server restarting"))),
            )
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_away_in_the_middle_of_a_wait_is_waited_out() {
        let waiters = ResolutionWaiters::new();
        let approved = Approval { status: ApprovalStatus::Approved, ..pending() };
        let read = reads(vec![Some(pending()), None, None, Some(approved.clone())]);
        let poll = || Some(Duration::from_secs(60));
        assert_eq!(waiters.wait("row-1", Duration::from_secs(3600), poll, read).await.unwrap(), approved);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_hangs_ends_the_wait_after_its_deadline() {
        let waiters = ResolutionWaiters::new();
        let mut first = true;
        let read = move || {
            let answers = std::mem::replace(&mut first, false);
            async move {
                if answers { Ok(Some(pending())) } else { std::future::pending::<Result<Option<Approval>>>().await }
            }
        };
        let err = waiters.wait("row-1", Duration::from_secs(5), || None, read).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err:?}");
        // A first read that hangs ends too.
        let hangs = || std::future::pending::<Result<Option<Approval>>>();
        let err = waiters.wait("row-1", Duration::ZERO, || None, hangs).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_read_at_the_deadline_is_waited_for() {
        let waiters = ResolutionWaiters::new();
        let read = || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Some(pending()))
        };
        let row = waiters.wait("row-1", Duration::from_secs(5), || None, read).await.unwrap();
        assert_eq!((row.id.as_str(), row.status), ("row-1", ApprovalStatus::Pending));
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_still_away_at_the_deadline_or_at_the_first_read_fails_the_wait() {
        let waiters = ResolutionWaiters::new();
        // Read at 0 s, failed at 1 s and 2 s, and failing still at the deadline, 2.5 s.
        let failing = reads(vec![Some(pending()), None, None, None]);
        let poll = || Some(Duration::from_secs(1));
        let err = waiters.wait("row-1", Duration::from_millis(2500), poll, failing).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err:?}");
        let first = reads(vec![None]);
        let err = waiters.wait("row-1", Duration::from_secs(3600), || None, first).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err:?}");
        // A store that closed is not coming back.
        waiters.close();
        let closed = reads(vec![Some(pending()), None]);
        let poll = || Some(Duration::from_millis(10));
        let err = waiters.wait("row-1", Duration::from_secs(3600), poll, closed).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err:?}");
    }
}
