//! The [`Store`] semantics on SQL, written once for both databases.
//!
//! Every method mirrors `kern_core::store::MemoryDb`, the reference; where a database needs
//! more care (a compare-and-set, a transaction) the comment says how it is kept. A lookup by an
//! id that cannot be a key (see `kern_core::limits`) finds nothing without asking the database,
//! which might fail on it instead: no row has such an id, since saves refuse them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kern_core::approval::{Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalUpdate};
use kern_core::limits::is_key;
use kern_core::run::{RunRecord, RunStatus};
use kern_core::store::Store;
use kern_core::store::backend::{ResolutionRules, ResolutionWaiters, check_save, check_update, stale_cutoff};
use kern_core::{BoxFuture, Error, Result};

use crate::codec;
use crate::driver::{Driver, Pools};
use crate::layout::Layout;
use crate::queries::{Filter, Queries};
use crate::schema::Migrator;
use crate::stmt::Stmt;
use crate::wake::{self, ResolutionFeed};

/// Approval rows per `INSERT`. A statement binds at most 32,766 values on SQLite and 65,535 on
/// Postgres, and sqlx looks up each `$n` of a SQLite statement by a scan of all its names, so
/// the time to bind grows with the square of the values: 32 rows (704 values) keep both small.
const ROWS_PER_INSERT: usize = 32;

/// A store on one database: its pools and its prepared SQL.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Driver> {
    pub(crate) pools: Pools<DB>,
    queries: Queries,
    migrator: Migrator,
    /// The waiters of rows, woken after each write through this handle that may resolve or
    /// delete rows (and by `feed` for writes through others).
    waiters: Arc<ResolutionWaiters>,
    /// Resolutions committed through other handles, where the database announces them.
    feed: Option<Box<dyn ResolutionFeed>>,
}

impl<DB: Driver> SqlStore<DB> {
    /// A store on `pools` with the tables of `layout`, migrated to `target_version`.
    pub(crate) async fn open(pools: Pools<DB>, layout: &Layout, target_version: i64) -> Result<Self> {
        let migrator = Migrator::new::<DB>(layout);
        migrator.apply(&pools, target_version).await?;
        Ok(SqlStore { pools, queries: Queries::new(layout), migrator, waiters: Arc::default(), feed: None })
    }

    /// The waiters of this store's rows, for a feed to wake.
    pub(crate) fn waiters(&self) -> Arc<ResolutionWaiters> {
        self.waiters.clone()
    }

    /// This store, told of other handles' resolutions by `feed`.
    pub(crate) fn with_feed(self, feed: impl ResolutionFeed + 'static) -> Self {
        SqlStore { feed: Some(Box::new(feed)), ..self }
    }

    /// Stops the feed and closes the connections; later calls fail.
    pub(crate) async fn close(&self) {
        if let Some(feed) = &self.feed {
            feed.close().await;
        }
        self.pools.close().await;
    }

    /// The schema version of this store's tables.
    pub(crate) async fn schema_version(&self) -> Result<i64> {
        let stmt = Stmt::new(&self.migrator.read_version).bind(self.migrator.scope.as_str());
        Ok(self.pools.read(stmt, codec::version).await?.pop().unwrap_or(0))
    }

    /// Records `version` as the schema version, without migrating: for tests that need a
    /// database written by a newer build.
    pub(crate) async fn set_schema_version(&self, version: i64) -> Result<()> {
        let stmt = Stmt::new(&self.migrator.write_version).bind(self.migrator.scope.as_str()).bind(version);
        self.pools.execute(stmt).await.map(drop)
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
        if let Some(run) = self.pools.write(stmt, codec::run).await?.pop() {
            return Ok(run);
        }
        let stmt = Stmt::new(&self.queries.run_status).bind(run_id);
        match self.pools.read(stmt, codec::run_status).await?.pop() {
            None => Err(Error::RunNotFound(run_id.to_owned())),
            Some(status) => Err(refusal(status)),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>> {
        if !is_key(id) {
            return Ok(None);
        }
        let stmt = Stmt::new(&self.queries.get_approval).bind(id);
        Ok(self.pools.read(stmt, codec::approval).await?.pop())
    }

    /// The compare-and-set of a resolution, `sql` one of the `resolve_*` queries; `None` when
    /// it matched no row.
    async fn resolve(
        &self,
        sql: &str,
        id: &str,
        update: &ApprovalUpdate,
        now: DateTime<Utc>,
    ) -> Result<Option<Approval>> {
        // The statement can only match a pending row, so an update expecting another status
        // can never apply: skip the round trip and report why.
        if update.expected_status.is_some_and(|expected| expected != ApprovalStatus::Pending) {
            return Ok(None);
        }
        let stmt = Stmt::new(sql)
            .bind(id)
            .bind(update.status.as_str())
            .bind(update.resolved_by.as_deref())
            .bind(update.resolved_at.unwrap_or(now))
            .bind(update.resolution_data.as_ref())
            .bind(now);
        Ok(self.pools.write(stmt, codec::approval).await?.pop())
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
            && let Some(row) = self.resolve(&self.queries.resolve_confirmation, id, update, now).await?
        {
            return Ok(row);
        }
        if rules.needs_check() {
            rules.check(self.get(id).await?.as_ref())?;
        }
        if let Some(row) = self.resolve(&self.queries.resolve_approval, id, update, now).await? {
            return Ok(row);
        }
        // Nothing matched: the row is gone, resolved, expired or not as expected. Read it
        // only now, to say which.
        Err(rules.refusal(self.get(id).await?.as_ref()))
    }
}

impl<DB: Driver> Store for SqlStore<DB> {
    /// One statement per run: the schema's trigger keeps the run's session and the
    /// `run_status` of its approval rows in step as it is saved.
    fn save_runs<'a>(&'a self, runs: &'a [RunRecord], new_approvals: &'a [Approval]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_save(runs, new_approvals)?;
            let mut stmts = self.insert_approvals(new_approvals, runs)?;
            for run in runs {
                stmts.push(self.upsert_run(run)?);
            }
            // The inserted rows already carry their runs' status and each upsert writes only its
            // own run's row, so only a repeated run makes the statements depend on each other.
            let distinct_runs = runs.iter().map(|run| run.run_id.as_str()).collect::<HashSet<_>>().len() == runs.len();
            self.pools.write_all(stmts, distinct_runs).await
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
            let Some(filter) = Filter::new(query) else { return Ok(ApprovalPage::default()) };
            let offset = i64::try_from(query.offset()).unwrap_or(i64::MAX);
            let page = Stmt { sql: self.queries.list_page(&filter).into(), params: filter.params.clone() }
                .bind(i64::from(query.effective_limit()))
                .bind(offset);
            let rows = self.pools.read(page, codec::approval_and_total).await?;
            let total = rows.first().map(|(_, total)| *total);
            let (mut items, mut unreadable) = (Vec::with_capacity(rows.len()), Vec::new());
            for (row, _) in rows {
                match row {
                    Ok(row) => items.push(row),
                    Err(row) => {
                        tracing::error!(id = %row.id, reason = %row.reason, "an approval row cannot be read");
                        unreadable.push(row);
                    }
                }
            }
            let total = match total {
                Some(total) => total,
                // An empty first page of a real size: nothing matches.
                None if offset == 0 && query.effective_limit() > 0 => 0,
                // Past the end, or a page of no rows: only a count can tell.
                None => {
                    let count = Stmt { sql: self.queries.list_count(&filter).into(), params: filter.params };
                    self.pools.read(count, codec::count).await?.pop().unwrap_or(0)
                }
            };
            Ok(ApprovalPage { items, total, unreadable })
        })
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        Box::pin(async move {
            let row = self.apply_update(id, &update).await?;
            self.waiters.wake(id);
            Ok(row)
        })
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            if !is_key(id) {
                return Ok(false);
            }
            let deleted = self.pools.execute(Stmt::new(&self.queries.delete_approval).bind(id)).await? > 0;
            if deleted {
                self.waiters.wake(id);
            }
            Ok(deleted)
        })
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let stmt = match user_id {
                Some(user_id) if !is_key(user_id) => return Ok(0),
                Some(user_id) => Stmt::new(&self.queries.count_pending_of_user).bind(user_id),
                None => Stmt::new(&self.queries.count_pending),
            };
            Ok(self.pools.read(stmt, codec::count).await?.pop().unwrap_or(0))
        })
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let expired = self.pools.execute(Stmt::new(&self.queries.expire_approvals).bind(now)).await?;
            // The sweep does not say which rows it marked: every waiter reads its row again.
            if expired > 0 {
                self.waiters.wake_all();
            }
            Ok(expired)
        })
    }

    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        let poll_interval = || Some(wake::poll_interval(self.feed.as_deref()));
        Box::pin(async move { self.waiters.wait(id, timeout, poll_interval, || self.get(id)).await })
    }
}
