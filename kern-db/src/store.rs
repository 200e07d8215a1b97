//! The [`Store`] semantics on SQL, written once for both databases.
//!
//! Every method mirrors `kern_core::store::MemoryDb`, the reference; where a database needs
//! more care (a compare-and-set, a transaction) the comment says how it is kept.

use chrono::{DateTime, SecondsFormat, Utc};
use kern_core::approval::{Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalUpdate};
use kern_core::run::{RunRecord, RunStatus};
use kern_core::store::{Store, check_resolution, needs_precheck, unapplied_update_error};
use kern_core::{BoxFuture, Error, Result};

use crate::codec;
use crate::driver::{Driver, Pools};
use crate::layout::Layout;
use crate::queries::{Filter, Queries};
use crate::schema::Migrator;
use crate::stmt::{Stmt, now};

/// A store on one database: its pools and its prepared SQL.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: sqlx::Database> {
    pools: Pools<DB>,
    queries: Queries,
    migrator: Migrator,
}

impl<DB: Driver> SqlStore<DB> {
    /// A store on `pools` with the tables of `layout`, migrated to `target_version`.
    pub(crate) async fn open(pools: Pools<DB>, layout: &Layout, target_version: i64) -> Result<Self> {
        let store = SqlStore { pools, queries: Queries::new(layout), migrator: Migrator::new(layout) };
        store.pools.migrate(&store.migrator, target_version).await?;
        Ok(store)
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

    pub(crate) fn pools(&self) -> &Pools<DB> {
        &self.pools
    }

    fn upsert_session<'a>(&'a self, run: &'a RunRecord) -> Stmt<'a> {
        Stmt::new(&self.queries.upsert_session)
            .bind(run.session_id.as_str())
            .bind(run.user_id.as_deref())
            .bind(run.agent_id.as_deref())
            .bind(run.team_id.as_deref())
            .bind(run.created_at)
            .bind(run.updated_at)
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

    fn set_run_status<'a>(&'a self, run_id: &'a str, status: RunStatus) -> Stmt<'a> {
        Stmt::new(&self.queries.set_run_status).bind(run_id).bind(status.as_str())
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>> {
        let stmt = Stmt::new(&self.queries.get_approval).bind(id);
        Ok(self.pools.read(stmt, codec::approval).await?.pop())
    }

    /// The compare-and-set of a resolution; `None` when it matched no row.
    async fn resolve(&self, id: &str, update: &ApprovalUpdate, now: DateTime<Utc>) -> Result<Option<Approval>> {
        // The statement can only match a pending row, so an update expecting another status
        // can never apply: skip the round trip and report why.
        if update.expected_status.is_some_and(|expected| expected != ApprovalStatus::Pending) {
            return Ok(None);
        }
        let stmt = Stmt::new(&self.queries.resolve_approval)
            .bind(id)
            .bind(update.status.as_str())
            .bind(update.resolved_by.as_deref())
            .bind(update.resolved_at.unwrap_or(now))
            .bind(update.resolution_data.as_ref())
            .bind(now);
        Ok(self.pools.write(stmt, codec::approval).await?.pop())
    }
}

impl<DB: Driver> Store for SqlStore<DB> {
    fn save_runs<'a>(&'a self, runs: &'a [RunRecord], new_approvals: &'a [Approval]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut stmts = Vec::with_capacity(3 * runs.len() + new_approvals.len());
            for run in runs {
                // The session first: runs reference it.
                stmts.push(self.upsert_session(run));
                stmts.push(self.upsert_run(run)?);
            }
            for approval in new_approvals {
                stmts.push(codec::bind_approval(Stmt::new(&self.queries.insert_approval), approval)?);
            }
            // Last, so the rows just inserted follow their run too.
            stmts.extend(runs.iter().map(|run| self.set_run_status(&run.run_id, run.status)));
            self.pools.transaction(&stmts).await
        })
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        Box::pin(async move {
            let stmt = Stmt::new(&self.queries.load_run).bind(run_id);
            Ok(self.pools.read(stmt, codec::run).await?.pop())
        })
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        Box::pin(async move {
            let now = now();
            // The state is JSON: its `status` and `updated_at` change with the columns.
            let stmt = Stmt::new(&self.queries.claim_run)
                .bind(run_id)
                .bind(now)
                .bind(now.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            if let Some(run) = self.pools.write(stmt, codec::run).await?.pop() {
                return Ok(run);
            }
            let stmt = Stmt::new(&self.queries.run_status).bind(run_id);
            match self.pools.read(stmt, codec::run_status).await?.pop() {
                None => Err(Error::RunNotFound(run_id.to_owned())),
                Some(status) => Err(Error::RunNotPaused { run_id: run_id.to_owned(), status }),
            }
        })
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let stmt = Stmt::new(&self.queries.session_runs).bind(session_id).bind(limit);
            let mut runs = self.pools.read(stmt, codec::run).await?;
            runs.reverse();
            Ok(runs)
        })
    }

    fn create_approval<'a>(&'a self, approval: &'a Approval) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let stmt = codec::bind_approval(Stmt::new(&self.queries.insert_approval), approval)?;
            self.pools.execute(stmt).await.map(drop)
        })
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        Box::pin(self.get(id))
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        Box::pin(async move {
            let filter = Filter::new(query);
            let (page_sql, count_sql) = (self.queries.list_page(&filter), self.queries.list_count(&filter));
            let offset = i64::try_from(query.offset()).unwrap_or(i64::MAX);
            let page = Stmt { sql: &page_sql, params: filter.params.clone() }
                .bind(i64::from(query.effective_limit()))
                .bind(offset);
            let count = Stmt { sql: &count_sql, params: filter.params };
            let items = self.pools.read(page, codec::approval).await?;
            let total = self.pools.read(count, codec::count).await?.pop().unwrap_or(0);
            Ok(ApprovalPage { items, total })
        })
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        Box::pin(async move {
            let now = now();
            if needs_precheck(&update) {
                check_resolution(id, self.get(id).await?.as_ref(), &update, now)?;
            }
            if let Some(row) = self.resolve(id, &update, now).await? {
                return Ok(row);
            }
            // Nothing matched: the row is gone, resolved, expired or not as expected. Read it
            // only now, to say which.
            Err(unapplied_update_error(id, self.get(id).await?.as_ref(), &update, now))
        })
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.pools.execute(Stmt::new(&self.queries.delete_approval).bind(id)).await? > 0) })
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let stmt = match user_id {
                Some(user_id) => Stmt::new(&self.queries.count_pending_of_user).bind(user_id),
                None => Stmt::new(&self.queries.count_pending),
            };
            Ok(self.pools.read(stmt, codec::count).await?.pop().unwrap_or(0))
        })
    }

    fn update_approval_run_status<'a>(&'a self, run_id: &'a str, status: RunStatus) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.pools.execute(self.set_run_status(run_id, status)))
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.pools.execute(Stmt::new(&self.queries.expire_approvals).bind(now)))
    }
}

/// Implements [`Store`] for a public store type by forwarding to its `inner` [`SqlStore`].
macro_rules! forward_store {
    ($ty:ty) => {
        impl ::kern_core::store::Store for $ty {
            fn save_runs<'a>(
                &'a self,
                runs: &'a [::kern_core::run::RunRecord],
                new_approvals: &'a [::kern_core::approval::Approval],
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<()>> {
                self.inner.save_runs(runs, new_approvals)
            }

            fn load_run<'a>(
                &'a self,
                run_id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Option<::kern_core::run::RunRecord>>> {
                self.inner.load_run(run_id)
            }

            fn claim_run<'a>(
                &'a self,
                run_id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::run::RunRecord>> {
                self.inner.claim_run(run_id)
            }

            fn session_runs<'a>(
                &'a self,
                session_id: &'a str,
                limit: usize,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::run::RunRecord>>> {
                self.inner.session_runs(session_id, limit)
            }

            fn create_approval<'a>(
                &'a self,
                approval: &'a ::kern_core::approval::Approval,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<()>> {
                self.inner.create_approval(approval)
            }

            fn get_approval<'a>(
                &'a self,
                id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Option<::kern_core::approval::Approval>>> {
                self.inner.get_approval(id)
            }

            fn list_approvals<'a>(
                &'a self,
                query: &'a ::kern_core::approval::ApprovalQuery,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::approval::ApprovalPage>> {
                self.inner.list_approvals(query)
            }

            fn update_approval<'a>(
                &'a self,
                id: &'a str,
                update: ::kern_core::approval::ApprovalUpdate,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::approval::Approval>> {
                self.inner.update_approval(id, update)
            }

            fn delete_approval<'a>(&'a self, id: &'a str) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<bool>> {
                self.inner.delete_approval(id)
            }

            fn count_pending_approvals<'a>(
                &'a self,
                user_id: Option<&'a str>,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<u64>> {
                self.inner.count_pending_approvals(user_id)
            }

            fn update_approval_run_status<'a>(
                &'a self,
                run_id: &'a str,
                status: ::kern_core::run::RunStatus,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<u64>> {
                self.inner.update_approval_run_status(run_id, status)
            }

            fn expire_approvals(
                &self,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<u64>> {
                self.inner.expire_approvals(now)
            }
        }
    };
}
pub(crate) use forward_store;
