//! The [`Store`] semantics on SQL, written once for both databases.
//!
//! Every method mirrors `kern_core::store::MemoryDb`, the reference; where a database needs
//! more care (a compare-and-set, a transaction) the comment says how it is kept. A lookup by an
//! id that cannot be a key (see `kern_core::limits`) finds nothing without asking the database,
//! which might fail on it instead: no row has such an id, since saves refuse them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kern_core::approval::{
    Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalUpdate, Decision, OnExpire, PageCursor, Principal,
    UnreadableRow, Vote,
};
use kern_core::keys::ApiKey;
use kern_core::limits::{self, is_key};
use kern_core::run::{RunPage, RunQuery, RunRecord, RunStatus};
use kern_core::store::Store;
use kern_core::store::backend::{
    DecisionRules, ResolutionRules, ResolutionWaiters, TrailSignal, check_api_key, check_eligible, check_save,
    check_update, stale_cutoff,
};
use kern_core::trail::{self, BrokenLink, EventKind, Execution, SYSTEM_PRINCIPAL, TrailEvent, TrailReport};
use kern_core::{BoxFuture, Error, Result};
use serde_json::Value;

use crate::codec;
use crate::driver::{ConnectionPool, Driver, Pools, begin, begin_snapshot, roll_back};
use crate::lanes::Lane;
use crate::layout::Layout;
use crate::queries::{Filter, Queries};
use crate::schema::{Migrator, Provision};
use crate::stmt::Stmt;
use crate::wake::{self, Announcer, ResolutionFeed, Resolved};

/// Approval rows per `INSERT`. A statement binds at most 32,766 values on SQLite and 65,535 on
/// Postgres, and sqlx looks up each `$n` of a SQLite statement by a scan of all its names, so
/// the time to bind grows with the square of the values: 32 rows (704 values) keep both small.
const ROWS_PER_INSERT: usize = 32;

/// Trail events per `INSERT`: 9 values each, as few as [`ROWS_PER_INSERT`] rows bind.
const EVENTS_PER_INSERT: usize = 64;

/// Overdue rows per transaction of the expiry sweep.
const SWEEP_BATCH: u32 = 256;

/// What one batch of the expiry sweep did: how many rows it expired, and the id to go on
/// after when it was full.
struct SweptBatch {
    expired: u64,
    next: Option<String>,
}

/// A store on one database: its pools and its prepared SQL.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Driver> {
    pub(crate) pools: Pools<DB>,
    queries: Queries,
    migrator: Migrator,
    /// The waiters of rows, woken after each write through this handle that may resolve or
    /// delete rows (and by `feed` for writes through others).
    waiters: Arc<ResolutionWaiters>,
    /// The trail's followers, signalled after each write through this handle (and by `feed`
    /// for writes through others, where it announces events).
    signal: Arc<TrailSignal>,
    /// Resolutions committed through other handles, where the database announces them.
    feed: Option<Box<dyn ResolutionFeed>>,
    /// What tells other handles of the commits made through this one, where the database
    /// carries announcements.
    announcer: Option<Box<dyn Announcer>>,
    /// The runs a listing passed over because their state cannot be read, each warned of once:
    /// workers read the listings every few seconds.
    warned_unreadable_runs: std::sync::Mutex<HashSet<String>>,
    /// How often waiters read when nothing wakes them, in place of the store's own intervals.
    #[cfg(any(test, feature = "test-support"))]
    poll_every: Option<Duration>,
}

impl<DB: Driver> SqlStore<DB> {
    /// A store on `pools` with the tables of `layout`, migrated to `target_version`, created
    /// where missing and upgraded where older as `provision` lets it.
    pub(crate) async fn open(
        pools: Pools<DB>,
        layout: &Layout,
        target_version: i64,
        provision: Provision,
    ) -> Result<Self> {
        let migrator = Migrator::new::<DB>(layout);
        migrator.apply(&pools, target_version, provision).await?;
        let queries = Queries::new::<DB>(layout);
        Ok(SqlStore {
            pools,
            queries,
            migrator,
            waiters: Arc::default(),
            signal: Arc::default(),
            feed: None,
            announcer: None,
            warned_unreadable_runs: std::sync::Mutex::default(),
            #[cfg(any(test, feature = "test-support"))]
            poll_every: None,
        })
    }

    /// This store, its waiters reading `every` so often when nothing wakes them.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn with_poll_every(self, every: Option<Duration>) -> Self {
        SqlStore { poll_every: every, ..self }
    }

    /// The store's own `interval` between a waiter's reads, unless a test set another.
    fn polled(&self, interval: Duration) -> Duration {
        #[cfg(any(test, feature = "test-support"))]
        if let Some(every) = self.poll_every {
            return every;
        }
        interval
    }

    /// The trail's followers, for a feed to signal.
    pub(crate) fn signal(&self) -> Arc<TrailSignal> {
        self.signal.clone()
    }

    /// The waiters of this store's rows, for a feed to wake.
    pub(crate) fn waiters(&self) -> Arc<ResolutionWaiters> {
        self.waiters.clone()
    }

    /// This store, told of other handles' resolutions by `feed`.
    pub(crate) fn with_feed(self, feed: impl ResolutionFeed + 'static) -> Self {
        SqlStore { feed: Some(Box::new(feed)), ..self }
    }

    /// This store, telling other handles of its commits through `announcer`.
    pub(crate) fn with_announcer(self, announcer: impl Announcer + 'static) -> Self {
        SqlStore { announcer: Some(Box::new(announcer)), ..self }
    }

    /// Sends what is left to announce, stops the feed and closes the connections; later calls
    /// fail.
    pub(crate) async fn close(&self) {
        if let Some(announcer) = &self.announcer {
            announcer.close().await;
        }
        if let Some(feed) = &self.feed {
            feed.close().await;
        }
        self.pools.close().await;
        self.waiters.close();
    }

    /// The schema version of this store's tables.
    pub(crate) async fn schema_version(&self) -> Result<i64> {
        let stmt = Stmt::new(&self.migrator.read_version).bind(self.migrator.scope.as_str());
        Ok(self.pools.read(stmt, codec::version).await?.pop().unwrap_or(0))
    }

    /// Records `version` as the schema version, without migrating: for tests that need a
    /// database written by a newer build.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) async fn set_schema_version(&self, version: i64) -> Result<()> {
        let stmt = Stmt::new(&self.migrator.write_version).bind(self.migrator.scope.as_str()).bind(version);
        self.pools.execute(stmt).await.map(drop)
    }

    /// Tells other handles of a commit through this one that `resolved` rows (see
    /// [`Announcer::committed`]), where this store has an announcer.
    async fn announce(&self, resolved: Resolved) {
        if let Some(announcer) = &self.announcer {
            announcer.committed(resolved).await;
        }
    }

    /// Runs `writes` and commits the transaction on `conn`, then gives the connection back,
    /// announcing the commit once it is back when its answer was lost (see
    /// [`announce_if_lost`](Self::announce_if_lost)).
    async fn commit(&self, mut conn: Lane<DB::Connection>, writes: Vec<Stmt<'_>>) -> Result<()> {
        let committed = DB::commit_with(&mut conn, writes).await;
        drop(conn);
        if let Err(error) = &committed {
            self.announce_if_lost(error).await;
        }
        committed
    }

    /// After a write that failed with `error`: one whose connection was lost once it was sent
    /// may have committed all the same, and is announced then to every waiter (a spurious
    /// announcement costs a read; a lost one, a minute's wait in another process).
    async fn announce_if_lost(&self, error: &Error) {
        if DB::connection_lost(error) {
            self.waiters.wake_all();
            self.signal.appended();
            self.announce(Resolved::Any).await;
        }
    }

    /// [`Store::save_runs`], before the trail's followers are signalled.
    async fn write_runs(&self, runs: &[RunRecord], new_approvals: &[Approval], executions: &[Execution]) -> Result<()> {
        check_save(runs, new_approvals, executions)?;
        let opening: Vec<TrailEvent> = new_approvals.iter().flat_map(trail::opening_events).collect();
        let (conn, executed) = self.chain_executions(&opening, executions).await?;
        let mut stmts = self.insert_approvals(new_approvals, runs)?;
        stmts.extend(self.insert_events(&opening));
        stmts.extend(self.insert_events(&executed));
        for run in runs {
            stmts.push(self.upsert_run(run)?);
        }
        // The inserted rows already carry their runs' status, each event's place in its chain
        // is set, and each upsert writes only its own run's row, so only a repeated run makes
        // the statements depend on each other.
        let distinct = runs.iter().map(|run| run.run_id.as_str()).collect::<HashSet<_>>().len() == runs.len();
        match conn {
            Some(mut conn) => DB::commit_all(&mut conn, stmts, distinct).await.map(|done| self.pools.committed(done)),
            None => self.pools.write_all(stmts, distinct).await,
        }
    }

    /// The events of `executions`, each hashed onto its row's chain: after the last event this
    /// batch writes for the row (its `opening` events, or an execution before it), else after
    /// the last one stored, read on a writer's connection, which the write then takes (see
    /// [`Pools::read_on_writer`]).
    ///
    /// A stored head is read before the write, not in its transaction: an event never changes
    /// once written, and an event written meanwhile after the same head takes the index this
    /// one needs, which the table keeps unique, so the write then fails rather than fork the
    /// chain.
    async fn chain_executions(
        &self,
        opening: &[TrailEvent],
        executions: &[Execution],
    ) -> Result<(Option<Lane<DB::Connection>>, Vec<TrailEvent>)> {
        let now = kern_core::now();
        let mut conn: Option<Lane<DB::Connection>> = None;
        let mut events: Vec<TrailEvent> = Vec::new();
        for execution in executions {
            let id = execution.approval_id.as_str();
            let written = opening.iter().chain(&events).rev().find(|event| event.approval_id == id);
            // The chain's run, which is its row's, whatever run the execution names.
            let head = match written {
                Some(event) => Some((event.index, event.hash.clone(), event.run_id.clone())),
                None => {
                    let read = Stmt::new(&self.queries.trail_head).bind(id);
                    let mut heads = match &mut conn {
                        Some(conn) => DB::fetch(conn, &read, codec::head).await?,
                        None => {
                            let (lane, heads) = self.pools.read_on_writer(&read, codec::head).await?;
                            conn = Some(lane);
                            heads
                        }
                    };
                    heads.pop()
                }
            };
            let Some((index, hash, run_id)) = head else {
                return Err(Error::ApprovalNotFound(execution.approval_id.clone()));
            };
            let event = (execution.kind(), execution.principal.clone(), execution.data());
            events.extend(trail::append(Some((index, hash.as_str())), id, &run_id, now, [event]));
        }
        Ok((conn, events))
    }

    fn upsert_run<'a>(&'a self, run: &'a RunRecord) -> Result<Stmt<'a>> {
        Ok(Stmt::new(&self.queries.upsert_run)
            .bind(run.run_id.as_str())
            .bind(run.session_id.as_str())
            .bind(run.parent_run_id.as_deref())
            .bind(run.agent_id.as_deref())
            .bind(run.team_id.as_deref())
            .bind(run.user_id.as_deref())
            .bind(run.status.as_str())
            .bind(codec::run_state(run)?)
            .bind(run.created_at)
            .bind(run.updated_at))
    }

    /// Inserts `approvals`, each with the status of its run when `runs` has it: the status every
    /// row of a saved run ends with (the last of repeated runs wins, as the last write would).
    /// Bound here rather than left to the trigger, which on Postgres may not see rows inserted
    /// in the same statement.
    fn insert_approvals<'a>(&'a self, approvals: &'a [Approval], runs: &[RunRecord]) -> Result<Vec<Stmt<'a>>> {
        approvals
            .chunks(ROWS_PER_INSERT)
            .map(|chunk| {
                let mut stmt = Stmt::new(self.queries.insert_approvals(chunk.len()));
                for approval in chunk {
                    let run = runs.iter().rev().find(|run| run.run_id == approval.run_id);
                    stmt = codec::bind_approval(stmt, approval, run.map_or(approval.run_status, |run| run.status))?;
                }
                Ok(stmt)
            })
            .collect()
    }

    /// Inserts `events`, in order.
    fn insert_events<'a>(&'a self, events: &'a [TrailEvent]) -> Vec<Stmt<'a>> {
        events
            .chunks(EVENTS_PER_INSERT)
            .map(|chunk| chunk.iter().fold(Stmt::new(self.queries.insert_events(chunk.len())), codec::bind_event))
            .collect()
    }

    /// Appends `events` to the chain of row `approval_id`, after its last event as `conn` (in a
    /// transaction that holds the row) reads it.
    async fn append(
        &self,
        conn: &mut DB::Connection,
        approval_id: &str,
        run_id: &str,
        at: DateTime<Utc>,
        events: impl IntoIterator<Item = (EventKind, String, Value)>,
    ) -> Result<()> {
        for stmt in self.insert_events(&self.chain(conn, approval_id, run_id, at, events).await?) {
            DB::execute(conn, &stmt).await?;
        }
        Ok(())
    }

    /// `events` hashed onto the chain of row `approval_id`, after its last event as `conn` (in
    /// a transaction that holds the row) reads it; for the caller to insert.
    async fn chain(
        &self,
        conn: &mut DB::Connection,
        approval_id: &str,
        run_id: &str,
        at: DateTime<Utc>,
        events: impl IntoIterator<Item = (EventKind, String, Value)>,
    ) -> Result<Vec<TrailEvent>> {
        let head = DB::fetch(conn, &Stmt::new(&self.queries.trail_head).bind(approval_id), codec::head).await?.pop();
        Ok(trail::append(head.as_ref().map(|(idx, hash, _)| (*idx, hash.as_str())), approval_id, run_id, at, events))
    }

    /// Sets a pending row's decision (`decide_row`) and records it on its trail, by `principal`.
    async fn record_decision(
        &self,
        conn: &mut DB::Connection,
        row: &Approval,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let stmt = Stmt::new(&self.queries.decide_row)
            .bind(row.id.as_str())
            .bind(row.status.as_str())
            .bind(row.resolved_by.as_deref())
            .bind(row.resolved_at)
            .bind(row.resolution_data.as_ref())
            .bind(now);
        if DB::execute(conn, &stmt).await? != 1 {
            return Err(Error::ApprovalConflict {
                id: row.id.clone(),
                expected: ApprovalStatus::Pending,
                actual: row.status,
            });
        }
        let kind = trail::resolution_kind(row.status).unwrap_or(EventKind::Cancelled);
        self.append(conn, &row.id, &row.run_id, now, [(kind, principal.to_owned(), trail::resolution_data(row))]).await
    }

    /// Marks pending `row`, past its expiry at `now`, expired, on its trail too.
    /// Returns false, writing nothing, when the row is no longer pending.
    async fn expire(&self, conn: &mut DB::Connection, row: &Approval, now: DateTime<Utc>) -> Result<bool> {
        if DB::execute(conn, &Stmt::new(&self.queries.expire_row).bind(row.id.as_str()).bind(now)).await? != 1 {
            return Ok(false);
        }
        let expired = Approval { status: ApprovalStatus::Expired, ..row.clone() };
        let event = (EventKind::Expired, SYSTEM_PRINCIPAL.to_owned(), trail::resolution_data(&expired));
        self.append(conn, &row.id, &row.run_id, now, [event]).await?;
        Ok(true)
    }

    /// Locks paused run `run_id` (a top-level one), its paused member runs and the rows they all
    /// wait on, in the transaction `conn` is in: the runs, the run itself last, and their
    /// pending rows in the same order. It locks the run before its rows, as every writer that
    /// takes both does.
    async fn lock_to_cancel(
        &self,
        conn: &mut DB::Connection,
        run_id: &str,
    ) -> Result<(Vec<RunRecord>, Vec<Vec<Approval>>)> {
        let run = DB::fetch(conn, &Stmt::new(&self.queries.load_run_locked).bind(run_id), codec::run)
            .await?
            .pop()
            .ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        if let Some(team_run_id) = &run.parent_run_id {
            return Err(Error::MemberRun { run_id: run_id.to_owned(), team_run_id: team_run_id.clone() });
        }
        if run.status != RunStatus::Paused {
            return Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: run.status });
        }
        let mut runs = DB::fetch(conn, &Stmt::new(&self.queries.paused_members).bind(run_id), codec::run).await?;
        runs.push(run);
        let mut rows = Vec::with_capacity(runs.len());
        for run in &runs {
            let pending = Stmt::new(&self.queries.pending_rows_of_run).bind(run.run_id.as_str());
            rows.push(DB::fetch(conn, &pending, codec::approval).await?);
        }
        Ok((runs, rows))
    }

    /// Cancels the runs and rows [`lock_to_cancel`](Self::lock_to_cancel) locked, in the
    /// transaction `conn` is in: the run and its paused member runs, and the rows they wait on;
    /// returns the run and how many of the rows had expired (and are recorded so).
    async fn cancel_locked(
        &self,
        conn: &mut DB::Connection,
        mut runs: Vec<RunRecord>,
        rows: Vec<Vec<Approval>>,
        principal: &Principal,
        checked: bool,
        now: DateTime<Utc>,
    ) -> Result<(RunRecord, u64)> {
        // Every row is checked before anything is written: a refusal leaves no trace, not even
        // the `seq`s of events rolled back.
        if checked {
            for row in rows.iter().flatten().filter(|row| !row.is_expired_at(now)) {
                check_eligible(row, principal)?;
            }
        }
        let mut expired = 0;
        for (run, pending) in runs.iter_mut().zip(rows) {
            for mut row in pending {
                // A row past its expiry expired; the others are withdrawn with the run.
                if row.is_expired_at(now) {
                    expired += u64::from(self.expire(conn, &row, now).await?);
                    continue;
                }
                row.status = ApprovalStatus::Cancelled;
                row.resolved_by = Some(principal.id.clone());
                row.resolved_at = Some(now);
                self.record_decision(conn, &row, &principal.id, now).await?;
            }
            run.status = RunStatus::Cancelled;
            run.updated_at = now;
            DB::execute(conn, &self.upsert_run(run)?).await?;
        }
        Ok((runs.pop().expect("the run itself is last"), expired))
    }

    /// [`Store::cancel_run`], or with `checked` [`Store::cancel_run_as`]: one transaction.
    async fn cancel(&self, run_id: &str, principal: &Principal, checked: bool) -> Result<RunRecord> {
        limits::check_name("principal", &principal.id)?;
        if !is_key(run_id) {
            return Err(Error::RunNotFound(run_id.to_owned()));
        }
        let mut conn = self.pools.writer.acquire().await?;
        begin::<DB>(&mut conn).await?;
        let cancelled = match self.lock_to_cancel(&mut conn, run_id).await {
            // Judged once locked: a row whose expiry passed while this waited has expired.
            Ok((runs, rows)) => self.cancel_locked(&mut conn, runs, rows, principal, checked, kern_core::now()).await,
            Err(error) => Err(error),
        };
        let run = match cancelled {
            Ok((run, _)) => run,
            Err(error) => {
                roll_back::<DB>(&mut conn).await?;
                return Err(error);
            }
        };
        // Back to the pool before the announcement: a slow one holds no connection.
        self.commit(conn, Vec::new()).await?;
        self.pools.committed(());
        self.waiters.wake_all();
        self.signal.appended();
        self.announce(Resolved::Any).await;
        Ok(run)
    }

    /// One batch of the expiry sweep: the overdue rows after id `after`, in one transaction.
    async fn expire_batch(&self, after: &str, now: DateTime<Utc>) -> Result<SweptBatch> {
        let mut conn = self.pools.writer.acquire().await?;
        begin::<DB>(&mut conn).await?;
        let stmt = Stmt::new(&self.queries.overdue_rows).bind(now).bind(after).bind(i64::from(SWEEP_BATCH));
        let overdue = DB::fetch(&mut conn, &stmt, codec::approval_or_unreadable).await?;
        let full = overdue.len() >= SWEEP_BATCH as usize;
        let next = overdue.last().filter(|_| full).map(|row| stored_id(row).to_owned());
        // A row this build cannot read (its policy unknown) is left pending, and named, rather
        // than holding up the expiry of every other.
        let mut readable = Vec::with_capacity(overdue.len());
        for row in overdue {
            match row {
                Ok(row) => readable.push(row),
                Err(row) => {
                    tracing::warn!(
                        approval_id = row.id,
                        reason = row.reason,
                        "the expiry sweep skips a row it cannot read"
                    );
                }
            }
        }
        let overdue = readable;
        let (mut expired, mut withdrew_runs) = (0, false);
        // Runs first, then rows, as every writer that locks both takes them: a row whose
        // expiry cancels its run is expired with the run.
        let cancelling = overdue
            .iter()
            .filter(|row| row.policy.as_ref().is_some_and(|policy| policy.on_expire == OnExpire::CancelRun));
        for row in cancelling {
            let load = Stmt::new(&self.queries.load_run).bind(row.run_id.as_str());
            let run = match DB::fetch(&mut conn, &load, codec::run).await {
                Ok(mut runs) => runs.pop(),
                Err(Error::Corrupt(reason)) => {
                    tracing::warn!(approval_id = row.id, %reason, "the expiry sweep cannot read the run a row cancels");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let team_run_id = run.and_then(|run| run.parent_run_id).unwrap_or_else(|| row.run_id.clone());
            // Read before its lock, the row may have been decided since (on Postgres, where the
            // read does not wait for a decision under way): once the run and the rows are locked,
            // only a row still due cancels.
            let cancelled = match self.lock_to_cancel(&mut conn, &team_run_id).await {
                Ok((runs, rows)) => {
                    let locked = Stmt::new(&self.queries.get_approval_locked).bind(row.id.as_str());
                    let still_due = DB::fetch(&mut conn, &locked, codec::approval).await?.pop();
                    if !still_due.is_some_and(|locked| locked.is_expired_at(now)) {
                        continue;
                    }
                    self.cancel_locked(&mut conn, runs, rows, &Principal::new(SYSTEM_PRINCIPAL), false, now).await
                }
                Err(error) => Err(error),
            };
            match cancelled {
                Ok((_, with_run)) => {
                    expired += with_run;
                    withdrew_runs = true;
                }
                // A run that is not paused (already cancelled, or held by a continue) is left
                // to whoever holds it: the continue applies the expiry itself.
                Err(Error::RunNotPaused { .. } | Error::RunNotFound(_)) => {}
                // A run, or a row it waits on, this build cannot read: the row still expires
                // below, and the run is left to a build that can read it (`lock_to_cancel` reads all
                // it needs before it writes anything).
                Err(Error::Corrupt(reason)) => {
                    tracing::warn!(approval_id = row.id, %reason, "the expiry sweep cannot cancel the run a row cancels");
                }
                Err(error) => return Err(error),
            }
        }
        let mut resolved = Vec::new();
        for row in &overdue {
            if self.expire(&mut conn, row, now).await? {
                resolved.push(row.id.clone());
            }
        }
        expired += resolved.len() as u64;
        self.commit(conn, Vec::new()).await?;
        self.pools.committed(());
        if expired > 0 || withdrew_runs {
            // Every waiter of this handle reads its row again; other handles are told the
            // rows, unless runs were cancelled with rows the sweep does not name.
            self.waiters.wake_all();
            self.signal.appended();
            self.announce(if withdrew_runs { Resolved::Any } else { Resolved::Rows(resolved) }).await;
        }
        Ok(SweptBatch { expired, next })
    }

    /// The transaction of a decision: locks the row, applies the rules, writes the vote, the
    /// row and the events.
    async fn apply_decision(&self, id: &str, principal: &Principal, decision: &Decision) -> Result<Approval> {
        let mut conn = self.pools.writer.acquire().await?;
        let locked = Stmt::new(&self.queries.get_approval_locked).bind(id);
        let row = DB::begin_with(&mut conn, Vec::new(), locked, codec::approval).await?.pop();
        // Taken once the row is locked: a decision that waited for the writer is judged at the
        // time it is made, not at the time it was asked for, so it cannot land past the row's
        // expiry.
        let now = kern_core::now();
        let votes = DB::fetch(&mut conn, &Stmt::new(&self.queries.votes).bind(id), codec::vote).await?;
        let effect = match DecisionRules::new(id, principal, decision, now).apply(row.as_ref(), &votes) {
            Ok(effect) => effect,
            Err(error) => {
                roll_back::<DB>(&mut conn).await?;
                return Err(error);
            }
        };
        let events = effect.events.into_iter().map(|(kind, data)| (kind, principal.id.clone(), data));
        let chained = self.chain(&mut conn, id, &effect.row.run_id, now, events).await?;
        let roles = effect.vote.as_ref().map(|vote| Value::from(vote.roles.clone()));
        let mut writes = Vec::new();
        if let (Some(vote), Some(roles)) = (&effect.vote, &roles) {
            writes.push(codec::bind_vote(Stmt::new(&self.queries.insert_vote), vote, roles));
        }
        if effect.resolves {
            writes.push(
                Stmt::new(&self.queries.decide_row)
                    .bind(id)
                    .bind(effect.row.status.as_str())
                    .bind(effect.row.resolved_by.as_deref())
                    .bind(effect.row.resolved_at)
                    .bind(effect.row.resolution_data.as_ref())
                    .bind(now),
            );
        } else if effect.vote.is_some() {
            writes.push(Stmt::new(&self.queries.touch_row).bind(id).bind(effect.row.updated_at));
        }
        writes.extend(self.insert_events(&chained));
        self.commit(conn, writes).await?;
        self.pools.committed(());
        Ok(effect.row)
    }

    /// `sql`, a compare-and-set on run `run_id` that stamps it with `now`, with its first two
    /// values bound.
    fn stamp_run<'a>(&self, sql: &'a str, run_id: &'a str, now: DateTime<Utc>) -> Stmt<'a> {
        Stmt::new(sql).bind(run_id).bind(now)
    }

    /// Runs `stmt`, a compare-and-set on run `run_id` that returns the run. When it matches
    /// no row, reads the run's status to say why: [`Error::RunNotFound`], or `refusal(status)`.
    async fn compare_and_stamp(
        &self,
        stmt: Stmt<'_>,
        run_id: &str,
        refusal: impl FnOnce(RunStatus) -> Error,
    ) -> Result<RunRecord> {
        if !is_key(run_id) {
            return Err(Error::RunNotFound(run_id.to_owned()));
        }
        let written = self.pools.write(stmt, codec::run).await;
        // A compare-and-set that matched no run changed nothing: nothing to announce.
        let changed = match &written {
            Ok(runs) => !runs.is_empty(),
            Err(_) => may_have_committed::<DB, _>(&written),
        };
        if changed {
            // A run's status changed: this handle's followers read it, other processes hear it.
            self.signal.appended();
            self.announce(Resolved::Nothing).await;
        }
        if let Some(run) = written?.pop() {
            return Ok(run);
        }
        Err(self.why_not(run_id, refusal).await?)
    }

    /// Why a compare-and-set on run `run_id` matched nothing, read after it:
    /// [`Error::RunNotFound`], or `refusal(status)`.
    async fn why_not(&self, run_id: &str, refusal: impl FnOnce(RunStatus) -> Error) -> Result<Error> {
        let stmt = Stmt::new(&self.queries.run_status).bind(run_id);
        Ok(match self.pools.read(stmt, codec::run_status).await?.pop() {
            None => Error::RunNotFound(run_id.to_owned()),
            Some(status) => refusal(status),
        })
    }

    /// The row as it stands now: a pending row past its expiry reads as expired.
    async fn get(&self, id: &str) -> Result<Option<Approval>> {
        if !is_key(id) {
            return Ok(None);
        }
        let stmt = Stmt::new(&self.queries.get_approval).bind(id);
        let now = kern_core::now();
        Ok(self
            .pools
            .read(stmt, codec::approval)
            .await?
            .pop()
            .map(|row| Approval { status: row.status_at(now), ..row }))
    }

    /// The compare-and-set of a resolution, `sql` one of the `resolve_*` queries; `None` when
    /// it matched no row.
    async fn resolve(&self, sql: &str, id: &str, update: &ApprovalUpdate) -> Result<Option<Approval>> {
        // The statement can only match a pending row, so an update expecting another status
        // can never apply: skip the round trip and report why.
        if update.expected_status.is_some_and(|expected| expected != ApprovalStatus::Pending) {
            return Ok(None);
        }
        // The event says only what the update sets, so it is hashed before the update, onto the
        // head read first. Until the row is decided its chain grows only by the votes and edits
        // of a row decided by principals alone, which this compare-and-set never matches; an
        // event written meanwhile all the same would take this one's index, which the table
        // keeps unique: the resolution then fails whole rather than fork the chain.
        let read = Stmt::new(&self.queries.resolution_head).bind(id);
        let (mut conn, mut found) = self.pools.read_on_writer(&read, codec::run_and_head).await?;
        let Some((run_id, head)) = found.pop() else {
            return Ok(None);
        };
        // Taken once the writer is this resolution's: one that waited for this process's other
        // writes is judged when made. (A wait for another process's write lock, or for a
        // Postgres row lock, still comes after; `decide` locks the row before it judges.)
        let now = kern_core::now();
        let principal = update.resolved_by.clone().unwrap_or_else(|| SYSTEM_PRINCIPAL.to_owned());
        let kind = trail::resolution_kind(update.status).unwrap_or(EventKind::Cancelled);
        let data = trail::decision_data(update.status, update.resolved_by.as_deref(), update.resolution_data.as_ref());
        let head = head.as_ref().map(|(index, hash)| (*index, hash.as_str()));
        let event = trail::append(head, id, &run_id, now, [(kind, principal, data)]).pop().expect("one event");
        let resolve = Stmt::new(sql)
            .bind(id)
            .bind(update.status.as_str())
            .bind(update.resolved_by.as_deref())
            .bind(update.resolved_at.unwrap_or(now))
            .bind(update.resolution_data.as_ref())
            .bind(now);
        let append = codec::bind_event(Stmt::new(&self.queries.insert_selected_event), &event);
        let row = DB::update_then_insert(&mut conn, resolve, append, codec::approval).await?.pop();
        Ok(row.map(|row| self.pools.committed(row)))
    }

    /// The resolution of [`Store::update_approval`], before its waiters are woken.
    async fn apply_update(&self, id: &str, update: &ApprovalUpdate) -> Result<Approval> {
        check_update(update)?;
        if !is_key(id) {
            return Err(Error::ApprovalNotFound(id.to_owned()));
        }
        let now = kern_core::now();
        let rules = ResolutionRules::new(id, update, now);
        // Most approvals confirm a call: the compare-and-set that only a confirmation row can
        // match needs no row read first, when the data is what a confirmation takes.
        if rules.fits_confirmation()
            && let Some(row) = self.resolve(&self.queries.resolve_confirmation, id, update).await?
        {
            return Ok(row);
        }
        if rules.needs_check() {
            rules.check(self.get(id).await?.as_ref())?;
        }
        if let Some(row) = self.resolve(&self.queries.resolve_approval, id, update).await? {
            return Ok(row);
        }
        // Nothing matched: the row is gone, resolved, expired or not as expected. Read it
        // only now, and judge it as of now, to say which.
        Err(ResolutionRules::new(id, update, kern_core::now()).refusal(self.get(id).await?.as_ref()))
    }

    /// Up to `limit` readable runs of a listing that workers and live streams page through,
    /// after `after`: `page` selects, with the store's queries, the rows after a cursor (at most
    /// so many; `None` when none can match), `cursor` names a row's place (`None` when it cannot
    /// be read). A run whose state cannot be read (written by a newer build, or altered by hand)
    /// is passed over, warned of once, and the listing goes on past it: failing the page would
    /// stop every reader at that run for good. A listing ordered by a time it cannot read ends
    /// at that run: there is no place after it to go on from.
    async fn readable_runs<C>(
        &self,
        mut after: Option<C>,
        limit: u32,
        page: impl for<'c> Fn(&'c Queries, Option<&'c C>, u32) -> Option<Stmt<'c>>,
        cursor: impl Fn(&codec::ListedRun) -> Option<C>,
    ) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        loop {
            let wanted = limit - u32::try_from(runs.len()).unwrap_or(limit);
            let Some(stmt) = page(&self.queries, after.as_ref(), wanted) else { return Ok(runs) };
            let listed = self.pools.read(stmt, codec::listed_run).await?;
            let ended = listed.len() < wanted as usize;
            for row in listed {
                let place = cursor(&row);
                match row.run {
                    Ok(run) => runs.push(run),
                    Err(unreadable) => self.warn_unreadable_run(unreadable),
                }
                match place {
                    Some(place) => after = Some(place),
                    None => return Ok(runs),
                }
            }
            if ended || runs.len() >= limit as usize {
                return Ok(runs);
            }
        }
    }

    /// Says that a listing passed over a run it cannot read: a warning the first time.
    fn warn_unreadable_run(&self, unreadable: UnreadableRow) {
        let first = self.warned_unreadable_runs.lock().map_or(true, |mut warned| warned.insert(unreadable.id.clone()));
        let (run_id, reason) = (&unreadable.id, &unreadable.reason);
        if first {
            tracing::warn!(run_id, reason, "a stored run cannot be read: listings pass over it");
        } else {
            tracing::debug!(run_id, reason, "a stored run cannot be read: passed over again");
        }
    }
}

/// The id of a row read, whether or not the rest of it could be.
fn stored_id(row: &std::result::Result<Approval, UnreadableRow>) -> &str {
    match row {
        Ok(row) => &row.id,
        Err(unreadable) => &unreadable.id,
    }
}

/// Whether a write that ended so may have committed: it did if it succeeded; a row it returned
/// that fails to decode was written all the same (stored data this build cannot read, which
/// listings report as unreadable); and a write whose connection was lost once sent may have.
/// Its commit is then announced: a spurious announcement costs a waiter a read, a lost one its
/// minute's wait.
fn may_have_committed<DB: Driver, T>(written: &Result<T>) -> bool {
    match written {
        Ok(_) | Err(Error::Corrupt(_)) => true,
        Err(error) => DB::connection_lost(error),
    }
}

impl<DB: Driver> Store for SqlStore<DB> {
    /// One statement per run: the schema's trigger keeps the run's session and the
    /// `run_status` of its approval rows in step as it is saved.
    fn save_runs<'a>(
        &'a self,
        runs: &'a [RunRecord],
        new_approvals: &'a [Approval],
        executions: &'a [Execution],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let saved = self.write_runs(runs, new_approvals, executions).await;
            // Whatever was written (nothing, on an error: a spurious signal costs a read).
            self.signal.appended();
            if may_have_committed::<DB, _>(&saved) {
                self.announce(Resolved::Nothing).await;
            }
            saved
        })
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        Box::pin(async move {
            if !is_key(run_id) {
                return Ok(None);
            }
            let stmt = Stmt::new(&self.queries.load_run).bind(run_id);
            Ok(self.pools.read(stmt, codec::run).await?.pop())
        })
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        Box::pin(async move {
            let stmt = self.stamp_run(&self.queries.claim_run, run_id, kern_core::now());
            self.compare_and_stamp(stmt, run_id, |status| Error::RunNotPaused { run_id: run_id.to_owned(), status })
                .await
        })
    }

    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        Box::pin(async move {
            let now = kern_core::now();
            // A cutoff of `None` binds NULL, which no `updated_at` is at or before. Bound, the
            // cutoff is floored to whole microseconds, which leaves a stored (whole-microsecond)
            // time at or before it exactly when it was at or before the precise one.
            let stmt = self.stamp_run(&self.queries.reclaim_run, run_id, now).bind(stale_cutoff(now, stale_after));
            self.compare_and_stamp(stmt, run_id, |status| Error::RunNotStale { run_id: run_id.to_owned(), status })
                .await
        })
    }

    fn renew_claim<'a>(
        &'a self,
        run_id: &'a str,
        held_at: DateTime<Utc>,
        renewed_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if !is_key(run_id) {
                return Err(Error::RunNotFound(run_id.to_owned()));
            }
            // Unlike a claim, a renewal changes nothing another process waits on: it is not
            // announced.
            let stmt = self.stamp_run(&self.queries.renew_claim, run_id, renewed_at).bind(held_at);
            if self.pools.execute(stmt).await? == 1 {
                return Ok(());
            }
            Err(self.why_not(run_id, |_| Error::RunTakenOver { run_id: run_id.to_owned() }).await?)
        })
    }

    /// A team run is released with the member runs its dead continue held, in one transaction:
    /// released alone, it would wait on members no continue could resume.
    fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        Box::pin(async move {
            if !is_key(run_id) {
                return Err(Error::RunNotFound(run_id.to_owned()));
            }
            let now = kern_core::now();
            // The cutoff is bound as `reclaim_run` binds it.
            let cutoff = stale_cutoff(now, stale_after);
            let members = self.stamp_run(&self.queries.release_members, run_id, now).bind(cutoff);
            let run = self.stamp_run(&self.queries.release_run, run_id, now).bind(cutoff);
            let mut conn = self.pools.writer.acquire().await?;
            let Some(released) = DB::begin_with(&mut conn, vec![members], run, codec::run).await?.pop() else {
                roll_back::<DB>(&mut conn).await?;
                drop(conn);
                return Err(self
                    .why_not(run_id, |status| Error::RunNotStale { run_id: run_id.to_owned(), status })
                    .await?);
            };
            self.commit(conn, Vec::new()).await?;
            self.pools.committed(());
            self.signal.appended();
            self.announce(Resolved::Nothing).await;
            Ok(released)
        })
    }

    fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>> {
        Box::pin(async move {
            let Some(stmt) = self.queries.list_runs(query) else { return Ok(RunPage::default()) };
            let runs = self.pools.read(stmt, codec::run).await?;
            Ok(RunPage::new(runs, query.effective_limit()))
        })
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            if !is_key(session_id) {
                return Ok(Vec::new());
            }
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let stmt = Stmt::new(&self.queries.session_runs).bind(session_id).bind(limit);
            let mut runs = self.pools.read(stmt, codec::run).await?;
            runs.reverse();
            Ok(runs)
        })
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        Box::pin(self.get(id))
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        Box::pin(async move {
            let now = kern_core::now();
            let Some(filter) = Filter::new(query, now) else { return Ok(ApprovalPage::default()) };
            let offset = i64::try_from(query.offset()).unwrap_or(i64::MAX);
            let limit = query.effective_limit();
            let page = Stmt { sql: self.queries.list_page(&filter).into(), params: filter.page_params() }
                .bind(i64::from(limit))
                .bind(offset);
            let rows = self.pools.read(page, codec::page_row).await?;
            let total = rows.first().map(|row| row.total);
            // A full page goes on after its last row, readable or not.
            let full = rows.len() == limit as usize;
            let next_cursor = rows
                .last()
                .filter(|_| full)
                .and_then(|row| row.key.as_ref())
                .map(|key| query.cursor_at(key.created_at, key.expires_at, &key.id));
            let (mut items, mut unreadable) = (Vec::with_capacity(rows.len()), Vec::new());
            for codec::PageRow { row, .. } in rows {
                match row {
                    Ok(row) => items.push(Approval { status: row.status_at(now), ..row }),
                    Err(row) => {
                        tracing::error!(id = %row.id, reason = %row.reason, "an approval row cannot be read");
                        unreadable.push(row);
                    }
                }
            }
            let total = match total {
                Some(total) => total,
                // An empty first page of a real size: nothing matches.
                None if offset == 0 && query.after.is_none() && limit > 0 => 0,
                // Past the end (by page or cursor), or a page of no rows: only a count can tell.
                None => {
                    let count = Stmt { sql: self.queries.list_count(&filter).into(), params: filter.params };
                    self.pools.read(count, codec::count).await?.pop().unwrap_or(0)
                }
            };
            Ok(ApprovalPage { items, total, unreadable, next_cursor })
        })
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        Box::pin(async move {
            let row = self.apply_update(id, &update).await;
            if may_have_committed::<DB, _>(&row) {
                self.waiters.wake(id);
                self.signal.appended();
                self.announce(Resolved::Rows(vec![id.to_owned()])).await;
            }
            row
        })
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            if !is_key(id) {
                return Ok(false);
            }
            let mut conn = self.pools.writer.acquire().await?;
            begin::<DB>(&mut conn).await?;
            let row = DB::fetch(&mut conn, &Stmt::new(&self.queries.get_approval_locked).bind(id), codec::approval)
                .await?
                .pop();
            // Judged once locked, as a decision is.
            let now = kern_core::now();
            let refusal = match &row {
                None => Some(Ok(false)),
                Some(row) if row.needs_principals() => Some(Err(Error::DecideAsPrincipal { id: id.to_owned() })),
                Some(row) if row.status_at(now) != ApprovalStatus::Pending => Some(Err(Error::InvalidTransition {
                    id: id.to_owned(),
                    from: row.status_at(now),
                    to: ApprovalStatus::Cancelled,
                })),
                Some(_) => None,
            };
            if let Some(outcome) = refusal {
                roll_back::<DB>(&mut conn).await?;
                return outcome;
            }
            let mut row = row.expect("checked above");
            row.status = ApprovalStatus::Cancelled;
            row.resolved_at = Some(now);
            self.record_decision(&mut conn, &row, SYSTEM_PRINCIPAL, now).await?;
            self.commit(conn, Vec::new()).await?;
            self.pools.committed(());
            self.waiters.wake(id);
            self.signal.appended();
            self.announce(Resolved::Rows(vec![id.to_owned()])).await;
            Ok(true)
        })
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let now = kern_core::now();
            let stmt = match user_id {
                Some(user_id) if !is_key(user_id) => return Ok(0),
                Some(user_id) => Stmt::new(&self.queries.count_pending_of_user).bind(now).bind(user_id),
                None => Stmt::new(&self.queries.count_pending).bind(now),
            };
            Ok(self.pools.read(stmt, codec::count).await?.pop().unwrap_or(0))
        })
    }

    /// A batch of [`SWEEP_BATCH`] rows at a time, each in a transaction of its own: a sweep
    /// after a long pause holds the writer a batch at a time, not for every overdue row.
    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let (mut expired, mut after) = (0, String::new());
            loop {
                let swept = self.expire_batch(&after, now).await?;
                expired += swept.expired;
                match swept.next {
                    Some(last) => after = last,
                    None => return Ok(expired),
                }
            }
        })
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        principal: &'a Principal,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Approval>> {
        Box::pin(async move {
            limits::check_name("principal", &principal.id)?;
            if !is_key(id) {
                return Err(Error::ApprovalNotFound(id.to_owned()));
            }
            let row = self.apply_decision(id, principal, &decision).await?;
            let resolved = if row.status.is_resolved() {
                self.waiters.wake(id);
                Resolved::Rows(vec![id.to_owned()])
            } else {
                Resolved::Nothing
            };
            // A vote that leaves the row pending is on the trail too.
            self.signal.appended();
            self.announce(resolved).await;
            Ok(row)
        })
    }

    fn votes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Vote>>> {
        Box::pin(async move {
            if !is_key(id) {
                return Ok(Vec::new());
            }
            self.pools.read(Stmt::new(&self.queries.votes).bind(id), codec::vote).await
        })
    }

    fn cancel_run<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        Box::pin(self.cancel(run_id, principal, false))
    }

    fn cancel_run_as<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        Box::pin(self.cancel(run_id, principal, true))
    }

    fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>> {
        Box::pin(async move {
            if !is_key(id) {
                return Ok(Vec::new());
            }
            self.pools.read(Stmt::new(&self.queries.trail).bind(id), codec::event).await
        })
    }

    fn verify_trail(&self) -> BoxFuture<'_, Result<TrailReport>> {
        Box::pin(async move {
            // The rows and their events as of one moment: a row written between two reads would
            // look like tampering. Read on a reader, so that writers go on meanwhile.
            let mut conn = self.pools.reader.acquire().await?;
            begin_snapshot::<DB>(&mut conn).await?;
            let rows = DB::fetch(&mut conn, &Stmt::new(&self.queries.all_rows), codec::approval_or_unreadable).await?;
            let events = DB::fetch(&mut conn, &Stmt::new(&self.queries.all_events), codec::event).await?;
            let all_votes = DB::fetch(&mut conn, &Stmt::new(&self.queries.all_votes), codec::vote).await?;
            roll_back::<DB>(&mut conn).await?;
            let mut chains: std::collections::BTreeMap<String, Vec<TrailEvent>> = std::collections::BTreeMap::new();
            for event in events {
                chains.entry(event.approval_id.clone()).or_default().push(event);
            }
            let mut votes: HashMap<String, Vec<Vote>> = HashMap::new();
            for vote in all_votes {
                votes.entry(vote.approval_id.clone()).or_default().push(vote);
            }
            let total = chains.values().map(Vec::len).sum::<usize>() as u64;
            // A row that cannot be read cannot be checked: the first link it names broken.
            let broken = rows
                .iter()
                .find_map(|row| match row {
                    Ok(row) => {
                        let chain = chains.get(&row.id).map(Vec::as_slice).unwrap_or_default();
                        trail::verify_row(row, chain, votes.get(&row.id).map(Vec::as_slice).unwrap_or_default()).err()
                    }
                    Err(unreadable) => Some(BrokenLink {
                        approval_id: unreadable.id.clone(),
                        index: 0,
                        seq: None,
                        reason: format!("the row cannot be read: {}", unreadable.reason),
                    }),
                })
                .or_else(|| {
                    let ids: HashSet<&str> = rows.iter().map(stored_id).collect();
                    trail::orphan(chains.iter().filter(|(id, _)| !ids.contains(id.as_str())))
                });
            Ok(TrailReport { approvals: rows.len() as u64, events: total, broken })
        })
    }

    fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>> {
        Box::pin(async move {
            let stmt = Stmt::new(&self.queries.events_after).bind(after).bind(i64::from(limit));
            self.pools.read(stmt, codec::event).await
        })
    }

    fn last_event_seq(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            Ok(self.pools.read(Stmt::new(&self.queries.last_event_seq), codec::seq).await?.pop().unwrap_or(0))
        })
    }

    fn wait_for_events(&self, after: i64, timeout: Duration) -> BoxFuture<'_, Result<i64>> {
        let poll_interval = || Some(self.polled(wake::event_poll_interval(self.feed.as_deref())));
        Box::pin(async move { self.signal.wait(after, timeout, poll_interval, || self.last_event_seq()).await })
    }

    fn decided_runs<'a>(&'a self, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            let now = kern_core::now();
            self.readable_runs(
                after.map(str::to_owned),
                limit,
                |queries, after, limit| {
                    let after = after.map_or("", String::as_str);
                    Some(Stmt::new(&queries.decided_runs).bind(after).bind(now).bind(i64::from(limit)))
                },
                |listed| Some(listed.run_id.clone()),
            )
            .await
        })
    }

    fn stale_runs<'a>(
        &'a self,
        stale_after: Duration,
        after: Option<&'a PageCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            let Some(cutoff) = stale_cutoff(kern_core::now(), stale_after) else { return Ok(Vec::new()) };
            self.readable_runs(
                after.cloned(),
                limit,
                |queries, after, limit| queries.stale_runs(cutoff, after, limit),
                codec::ListedRun::time_cursor,
            )
            .await
        })
    }

    fn runs_changed_after<'a>(&'a self, after: &'a PageCursor, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            self.readable_runs(
                Some(after.clone()),
                limit,
                |queries, after, limit| after.map(|after| queries.runs_changed_after(after, limit)),
                codec::ListedRun::time_cursor,
            )
            .await
        })
    }

    fn save_api_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_api_key(key)?;
            self.pools.execute(codec::bind_api_key(Stmt::new(&self.queries.insert_api_key), key)?).await.map(drop)
        })
    }

    fn api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        Box::pin(async move {
            if !is_key(id) {
                return Ok(None);
            }
            Ok(self.pools.read(Stmt::new(&self.queries.api_key).bind(id), codec::api_key).await?.pop())
        })
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKey>>> {
        Box::pin(async move { self.pools.read(Stmt::new(&self.queries.api_keys), codec::api_key).await })
    }

    /// One statement: the first `revoked_at` stays, and the key comes back as stored.
    fn revoke_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        Box::pin(async move {
            if !is_key(id) {
                return Ok(None);
            }
            let stmt = Stmt::new(&self.queries.revoke_api_key).bind(id).bind(kern_core::now());
            Ok(self.pools.write(stmt, codec::api_key).await?.pop())
        })
    }

    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        let poll_interval = || Some(self.polled(wake::poll_interval(self.feed.as_deref())));
        Box::pin(async move { self.waiters.wait(id, timeout, poll_interval, || self.get(id)).await })
    }
}
