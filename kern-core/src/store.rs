//! Persistence: the [`Store`] trait and the in-memory store.
//!
//! A store keeps runs (so a fresh process can continue a paused run) and approval rows. The
//! writes the loops make are grouped so each step of a cycle is one transaction: a pause
//! writes the run state and its approval rows together, a claim is one compare-and-set (and so
//! is the reclaim of a run whose continue never finished), and a finished run writes its state,
//! its audit rows and the `run_status` of its approval rows together. A process holding a paused
//! run learns of its row's resolution from [`Store::wait_for_resolution`], which each store
//! answers as soon as it can tell.
//!
//! Every store holds to the same [limits](crate::limits): a write holding a key it could not
//! look up or a JSON value it could not read back is refused with
//! [`Error::InvalidInput`](crate::Error::InvalidInput) before anything is written (see
//! [`backend::check_save`]), and a lookup by an id that cannot be a key finds nothing, as any
//! unknown id does.

pub mod backend;
mod memory;

use std::time::Duration;

use chrono::{DateTime, Utc};

use self::backend::{RESOLUTION_POLL_INTERVAL, ResolutionWaiters};
use crate::BoxFuture;
use crate::approval::{Approval, ApprovalPage, ApprovalQuery, ApprovalUpdate, Decision, PageCursor, Principal, Vote};
use crate::error::Result;
use crate::keys::ApiKey;
use crate::run::{RunPage, RunQuery, RunRecord};
use crate::trail::{Execution, TrailEvent, TrailReport};

pub use memory::MemoryDb;

/// Where runs and approval rows live. Implemented by [`MemoryDb`] and by `kern-db`'s
/// `SqliteDb` and `PostgresDb`; agents hold it as `Arc<dyn Store>`.
pub trait Store: Send + Sync + 'static {
    /// Writes the runs' state (insert or replace), inserts `new_approvals` and records each of
    /// `executions` on the trail (under its row's run), in one transaction; then every approval row of each run takes
    /// the run's status as its `run_status`. Each new row starts its trail with a `created`
    /// event (and an audit row, written already decided, with the event of its decision). If
    /// anything fails, nothing is written. Errors:
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) (a key or JSON value beyond the
    /// [limits](crate::limits), see [`backend::check_save`]),
    /// [`Error::ApprovalNotFound`](crate::Error::ApprovalNotFound) (an execution of no row),
    /// [`Error::Database`](crate::Error::Database).
    fn save_runs<'a>(
        &'a self,
        runs: &'a [RunRecord],
        new_approvals: &'a [Approval],
        executions: &'a [Execution],
    ) -> BoxFuture<'a, Result<()>>;

    /// Reads a run's state.
    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>>;

    /// Moves a paused run to running in one compare-and-set and returns its state, so exactly
    /// one continue proceeds. Errors: [`Error::RunNotFound`](crate::Error::RunNotFound),
    /// [`Error::RunNotPaused`](crate::Error::RunNotPaused).
    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>>;

    /// Takes over a run that a continue claimed and never finished (its process died, or the
    /// database failed when it stored the outcome), which would otherwise stay `running` for
    /// good: a run that is `running` and was last written at or before `now - stale_after` (see
    /// [`backend::stale_cutoff`]) gets `updated_at = now` in one compare-and-set, and its state
    /// is returned: the run as claimed, still holding the calls the continue was to decide. The
    /// fresh `updated_at` makes the run no longer stale, so of concurrent reclaims exactly one
    /// wins. Errors: [`Error::RunNotFound`](crate::Error::RunNotFound),
    /// [`Error::RunNotStale`](crate::Error::RunNotStale) (the run is not running, or was written
    /// less than `stale_after` ago).
    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>>;

    /// Renews the claim on run `run_id` that a continue or recovery has held since `held_at`
    /// (the `updated_at` its claim or its last renewal left), so that a continue that outlives
    /// `stale_after` is not taken for dead: a compare-and-set that stamps the run `renewed_at`
    /// (whole microseconds, as [`now`](crate::now) gives), which the holder chose, so that it
    /// knows the stamp a renewal whose answer it lost may have left. Errors:
    /// [`Error::RunTakenOver`](crate::Error::RunTakenOver) when the run no longer stands as held
    /// (reclaimed, released, or no longer running),
    /// [`Error::RunNotFound`](crate::Error::RunNotFound).
    fn renew_claim<'a>(
        &'a self,
        run_id: &'a str,
        held_at: DateTime<Utc>,
        renewed_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Hands a run a continue claimed and never finished back to whoever continues runs: a run
    /// that is `running` and was last written at or before `now - stale_after` (see
    /// [`backend::stale_cutoff`]) becomes `paused` with `updated_at = now` in one
    /// compare-and-set, and is returned as stored. A continue (or a worker) then claims it as
    /// any paused run, and decides its calls again from their rows: as with
    /// [`reclaim_run`](Store::reclaim_run), an approved call the abandoned continue had started
    /// may run a second time. Of concurrent releases exactly one wins. Errors:
    /// [`Error::RunNotFound`](crate::Error::RunNotFound),
    /// [`Error::RunNotStale`](crate::Error::RunNotStale) (the run is not running, or was written
    /// less than `stale_after` ago).
    fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>>;

    /// The latest `limit` top-level runs of a session (no parent run), oldest first.
    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>>;

    /// Lists runs matching `query`, newest first (ties broken by run id, descending), a page
    /// at a time: pass the page's [`next_cursor`](RunPage::next_cursor) as
    /// [`RunQuery::after`] for the next.
    fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>>;

    /// Reads an approval row.
    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>>;

    /// Lists rows matching `query`, newest first (ties broken by id, descending). A row of the
    /// page that cannot be read does not fail the listing: it is named in
    /// [`ApprovalPage::unreadable`] and counted in the total.
    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>>;

    /// Resolves a pending row and returns it as stored.
    ///
    /// The status change is one conditional statement on `status = 'pending'` (and, when
    /// given, `expected_status`), so of many concurrent resolutions exactly one wins. Errors:
    /// [`Error::ApprovalNotFound`](crate::Error::ApprovalNotFound),
    /// [`Error::ApprovalConflict`](crate::Error::ApprovalConflict) (naming the actual status),
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) (a resolved or expired row,
    /// or a move back to pending), [`Error::InvalidResolution`](crate::Error::InvalidResolution)
    /// (data that does not fit the paused call, see [`Approval::resolution_data`]; the row stays
    /// pending), [`Error::DecideAsPrincipal`](crate::Error::DecideAsPrincipal) (a row whose
    /// policy names who decides it: see [`decide`](Store::decide)),
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) (a resolver or data beyond the
    /// [limits](crate::limits), see [`backend::check_update`]; refused before the row is read),
    /// [`Error::Database`](crate::Error::Database). The resolution is recorded on the row's
    /// trail, `resolved_by` as its principal.
    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>>;

    /// Withdraws a pending row: it becomes `cancelled`, on the trail too (the trail is
    /// append-only, so no row is ever removed). False when there is no such row; a row already
    /// resolved is [`Error::InvalidTransition`](crate::Error::InvalidTransition), and one whose
    /// policy names who decides it [`Error::DecideAsPrincipal`](crate::Error::DecideAsPrincipal)
    /// (cancel it with [`decide`](Store::decide) as one of them).
    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Counts pending rows (not past their expiry), of one user or of all.
    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>>;

    /// Marks pending rows whose `expires_at` is at or before `now` as expired, on the trail
    /// too, and applies their policy's [`OnExpire`](crate::approval::OnExpire): a row that
    /// cancels its run cancels it when it is paused. Returns how many rows expired.
    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>>;

    /// Decides row `id` as `principal`, under the row's policy ([`backend::DecisionRules`]):
    /// each vote is its own record, the row is approved once `quorum` distinct eligible
    /// principals approved (exactly once under any concurrency), rejected by one eligible
    /// rejection, cancelled by an eligible cancellation. Returns the row as it stands after the
    /// decision (still pending while the quorum is short). Every vote and resolution is written
    /// on the trail in the same transaction.
    ///
    /// Errors leave everything as it was: [`Error::ApprovalNotFound`](crate::Error::ApprovalNotFound),
    /// [`Error::ApprovalConflict`](crate::Error::ApprovalConflict) (the row is no longer pending),
    /// [`Error::NotEligible`](crate::Error::NotEligible),
    /// [`Error::DuplicateVote`](crate::Error::DuplicateVote),
    /// [`Error::EditNotAllowed`](crate::Error::EditNotAllowed),
    /// [`Error::InvalidResolution`](crate::Error::InvalidResolution) (values, result or edited
    /// arguments that do not fit the call).
    fn decide<'a>(
        &'a self,
        id: &'a str,
        principal: &'a Principal,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Approval>>;

    /// The votes cast on row `id`, oldest first.
    fn votes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Vote>>>;

    /// Cancels paused run `run_id` as `principal`: the run (and its paused member runs, for a
    /// team run) becomes [`RunStatus::Cancelled`](crate::run::RunStatus::Cancelled) and every
    /// row it still waits on `cancelled` (`expired`, by kern, when past its expiry), on the trail
    /// too, in one transaction. Returns the run as stored. No row's policy is asked: this is
    /// kern's own cancellation (a policy's `on_expire`), and like
    /// [`update_approval`](Store::update_approval) a trusted path; an admin's goes through
    /// [`cancel_run_as`](Store::cancel_run_as). Errors:
    /// [`Error::RunNotFound`](crate::Error::RunNotFound),
    /// [`Error::RunNotPaused`](crate::Error::RunNotPaused),
    /// [`Error::MemberRun`](crate::Error::MemberRun) (a member run is cancelled with its team
    /// run).
    fn cancel_run<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>>;

    /// [`cancel_run`](Store::cancel_run) as an admin `principal`, under the policy of each row
    /// it withdraws: cancelling a run decides its rows, so a row that `principal` may not decide
    /// ([`backend::check_eligible`]) refuses the whole cancellation with
    /// [`Error::NotEligible`](crate::Error::NotEligible), and nothing changes. The rows are
    /// checked in the transaction that cancels them.
    fn cancel_run_as<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>>;

    /// The trail of row `id`: its events, in chain order (empty when there is no such row).
    fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>>;

    /// Recomputes every row's chain and compares each row, and the votes stored on it, with its
    /// events, an approval with its quorum of votes ([`trail::verify_row`](crate::trail::verify_row));
    /// reports the first link that does not hold, or an event whose row is gone.
    fn verify_trail(&self) -> BoxFuture<'_, Result<TrailReport>>;

    /// The events of every row's trail stored after event `after` (a [`TrailEvent::seq`]; 0
    /// for the first), in `seq` order, at most `limit` of them: the outbox that live event
    /// streams and workers follow. On Postgres a `seq` is taken before its transaction commits,
    /// so a reader that sees a gap may find the missing event a moment later.
    fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>>;

    /// The `seq` of the latest event stored (0 when there is none): where a reader that wants
    /// only what happens from now on starts.
    fn last_event_seq(&self) -> BoxFuture<'_, Result<i64>>;

    /// Waits until the trail holds an event after `after` (a [`TrailEvent::seq`]), the store
    /// signals a change (a run's status, say), or `timeout` passes, and returns the `seq` of the
    /// latest event: how a live event stream or a worker sleeps until there is something to
    /// read. It may return with nothing new; callers read what they follow and wait again.
    ///
    /// Each store wakes it after its own writes; writes through other handles reach it as the
    /// store can tell: announced by Postgres (the trail's growth and runs' changes), and on
    /// SQLite the trail's growth read every tenth of a second.
    fn wait_for_events(&self, after: i64, timeout: Duration) -> BoxFuture<'_, Result<i64>>;

    /// Paused top-level runs whose gated calls are all decided: each has approval rows (its own,
    /// or its member runs' for a team) and none of them is pending (a row past its expiry is
    /// expired, swept or not). What a worker continues. In `run_id` order, after `after`, at most
    /// `limit`; a run may also wait for calls no row decides, which its continue cannot answer.
    ///
    /// This listing, [`stale_runs`](Store::stale_runs) and
    /// [`runs_changed_after`](Store::runs_changed_after) pass over a stored run whose state this
    /// build cannot read (logged), and go on past it to fill the page: one such run must not stop
    /// every worker or live stream at it.
    fn decided_runs<'a>(&'a self, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>>;

    /// Top-level runs left `running` since `stale_after` ago or longer: claims held by a continue
    /// that died, which [`reclaim_run`](Store::reclaim_run) takes over. Oldest first (their
    /// `updated_at`, ties by `run_id`), after `after` (the last run of the previous page: its
    /// `updated_at` and `run_id`), at most `limit`.
    fn stale_runs<'a>(
        &'a self,
        stale_after: Duration,
        after: Option<&'a PageCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>>;

    /// Runs written after `after` in the order of their last write, then of their id
    /// (`updated_at`, `run_id`), member runs included, at most `limit`: how a live stream follows
    /// runs' status changes, a page on from the last run of the one before (however many runs
    /// one write stamped with the same time). A cursor with an empty id takes every run written
    /// at or after its time. A run written more than once shows as it stands now, in the place
    /// of its last write.
    fn runs_changed_after<'a>(&'a self, after: &'a PageCursor, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>>;

    /// Stores a newly issued API key. Errors: [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// (a key id or principal beyond the [limits](crate::limits)),
    /// [`Error::Database`](crate::Error::Database) (also when the id is taken).
    fn save_api_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>>;

    /// Reads an API key, revoked or not.
    fn api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>>;

    /// Every API key, revoked ones included, oldest first.
    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKey>>>;

    /// Revokes an API key and returns it as stored; a key revoked before keeps its first
    /// `revoked_at`. `None` when there is no such key.
    fn revoke_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>>;

    /// Waits until row `id` is no longer pending and returns it, so that a process holding a
    /// paused run can continue it as soon as an admin decides, in whatever process or machine.
    ///
    /// Returns at once when the row is already approved, rejected, expired or cancelled. A row
    /// still pending past its `expires_at` has expired although no sweep has marked it yet
    /// ([`Approval::is_expired_at`]; the stored row stays `pending` until
    /// [`expire_approvals`](Store::expire_approvals)): it comes back with status
    /// [`ApprovalStatus::Expired`](crate::approval::ApprovalStatus::Expired), as
    /// `update_approval` and the continue treat it, and a wait on a row that expires meanwhile
    /// ends at its expiry. When `timeout` passes first, the row comes back as it stands, still
    /// pending: check `status`.
    ///
    /// Errors: [`Error::ApprovalNotFound`](crate::Error::ApprovalNotFound) when there is no such
    /// row, [`Error::Database`](crate::Error::Database).
    ///
    /// This default reads the row every [`backend::RESOLUTION_POLL_INTERVAL`], so that any store
    /// can wait; the stores kern ships are woken by the resolution instead.
    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        // A registry of its own, which no write wakes: only the poll interval does.
        Box::pin(async move {
            let waiters = ResolutionWaiters::new();
            waiters.wait(id, timeout, || Some(RESOLUTION_POLL_INTERVAL), || self.get_approval(id)).await
        })
    }
}

/// A shared store is a store, so one `Arc<dyn Store>` can serve many agents.
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn save_runs<'a>(
        &'a self,
        runs: &'a [RunRecord],
        new_approvals: &'a [Approval],
        executions: &'a [Execution],
    ) -> BoxFuture<'a, Result<()>> {
        (**self).save_runs(runs, new_approvals, executions)
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        (**self).load_run(run_id)
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        (**self).claim_run(run_id)
    }

    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        (**self).reclaim_run(run_id, stale_after)
    }

    fn renew_claim<'a>(
        &'a self,
        run_id: &'a str,
        held_at: DateTime<Utc>,
        renewed_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>> {
        (**self).renew_claim(run_id, held_at, renewed_at)
    }

    fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        (**self).release_stale_run(run_id, stale_after)
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        (**self).session_runs(session_id, limit)
    }

    fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>> {
        (**self).list_runs(query)
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        (**self).get_approval(id)
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        (**self).list_approvals(query)
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        (**self).update_approval(id, update)
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        (**self).delete_approval(id)
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        (**self).count_pending_approvals(user_id)
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        (**self).expire_approvals(now)
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        principal: &'a Principal,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Approval>> {
        (**self).decide(id, principal, decision)
    }

    fn votes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Vote>>> {
        (**self).votes(id)
    }

    fn cancel_run<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        (**self).cancel_run(run_id, principal)
    }

    fn cancel_run_as<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        (**self).cancel_run_as(run_id, principal)
    }

    fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>> {
        (**self).trail(id)
    }

    fn verify_trail(&self) -> BoxFuture<'_, Result<TrailReport>> {
        (**self).verify_trail()
    }

    fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>> {
        (**self).events_after(after, limit)
    }

    fn last_event_seq(&self) -> BoxFuture<'_, Result<i64>> {
        (**self).last_event_seq()
    }

    fn wait_for_events(&self, after: i64, timeout: Duration) -> BoxFuture<'_, Result<i64>> {
        (**self).wait_for_events(after, timeout)
    }

    fn decided_runs<'a>(&'a self, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        (**self).decided_runs(after, limit)
    }

    fn stale_runs<'a>(
        &'a self,
        stale_after: Duration,
        after: Option<&'a PageCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        (**self).stale_runs(stale_after, after, limit)
    }

    fn runs_changed_after<'a>(&'a self, after: &'a PageCursor, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        (**self).runs_changed_after(after, limit)
    }

    fn save_api_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
        (**self).save_api_key(key)
    }

    fn api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        (**self).api_key(id)
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKey>>> {
        (**self).api_keys()
    }

    fn revoke_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        (**self).revoke_api_key(id)
    }

    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        (**self).wait_for_resolution(id, timeout)
    }
}
