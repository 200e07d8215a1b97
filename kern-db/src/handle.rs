//! What the handles and builders of both databases share, written once: each backend's module
//! expands these macros for its own public types, which stay plain structs with their own docs.

/// Implements, for a public handle holding its store as `inner: Arc<SqlStore<_>>`, the
/// [`Store`](kern_core::store::Store) trait (by forwarding) and the methods every handle has.
macro_rules! handle {
    ($ty:ty) => {
        impl ::kern_core::store::Store for $ty {
            fn save_runs<'a>(
                &'a self,
                runs: &'a [::kern_core::run::RunRecord],
                new_approvals: &'a [::kern_core::approval::Approval],
                executions: &'a [::kern_core::trail::Execution],
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<()>> {
                self.inner.save_runs(runs, new_approvals, executions)
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

            fn reclaim_run<'a>(
                &'a self,
                run_id: &'a str,
                stale_after: ::std::time::Duration,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::run::RunRecord>> {
                self.inner.reclaim_run(run_id, stale_after)
            }

            fn renew_claim<'a>(
                &'a self,
                run_id: &'a str,
                held_at: ::chrono::DateTime<::chrono::Utc>,
                renewed_at: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<()>> {
                self.inner.renew_claim(run_id, held_at, renewed_at)
            }

            fn release_stale_run<'a>(
                &'a self,
                run_id: &'a str,
                stale_after: ::std::time::Duration,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::run::RunRecord>> {
                self.inner.release_stale_run(run_id, stale_after)
            }

            fn list_runs<'a>(
                &'a self,
                query: &'a ::kern_core::run::RunQuery,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::run::RunPage>> {
                self.inner.list_runs(query)
            }

            fn session_runs<'a>(
                &'a self,
                session_id: &'a str,
                limit: usize,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::run::RunRecord>>> {
                self.inner.session_runs(session_id, limit)
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

            fn expire_approvals(
                &self,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<u64>> {
                self.inner.expire_approvals(now)
            }

            fn decide<'a>(
                &'a self,
                id: &'a str,
                principal: &'a ::kern_core::approval::Principal,
                decision: ::kern_core::approval::Decision,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::approval::Approval>> {
                self.inner.decide(id, principal, decision)
            }

            fn votes<'a>(
                &'a self,
                id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::approval::Vote>>> {
                self.inner.votes(id)
            }

            fn cancel_run<'a>(
                &'a self,
                run_id: &'a str,
                principal: &'a ::kern_core::approval::Principal,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::run::RunRecord>> {
                self.inner.cancel_run(run_id, principal)
            }

            fn cancel_run_as<'a>(
                &'a self,
                run_id: &'a str,
                principal: &'a ::kern_core::approval::Principal,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::run::RunRecord>> {
                self.inner.cancel_run_as(run_id, principal)
            }

            fn trail<'a>(
                &'a self,
                id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::trail::TrailEvent>>> {
                self.inner.trail(id)
            }

            fn verify_trail(&self) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<::kern_core::trail::TrailReport>> {
                self.inner.verify_trail()
            }

            fn events_after(
                &self,
                after: i64,
                limit: u32,
            ) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<Vec<::kern_core::trail::TrailEvent>>> {
                self.inner.events_after(after, limit)
            }

            fn last_event_seq(&self) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<i64>> {
                self.inner.last_event_seq()
            }

            fn wait_for_events(
                &self,
                after: i64,
                timeout: ::std::time::Duration,
            ) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<i64>> {
                self.inner.wait_for_events(after, timeout)
            }

            fn decided_runs<'a>(
                &'a self,
                after: Option<&'a str>,
                limit: u32,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::run::RunRecord>>> {
                self.inner.decided_runs(after, limit)
            }

            fn stale_runs<'a>(
                &'a self,
                stale_after: ::std::time::Duration,
                after: Option<&'a ::kern_core::approval::PageCursor>,
                limit: u32,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::run::RunRecord>>> {
                self.inner.stale_runs(stale_after, after, limit)
            }

            fn runs_changed_after<'a>(
                &'a self,
                after: &'a ::kern_core::approval::PageCursor,
                limit: u32,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Vec<::kern_core::run::RunRecord>>> {
                self.inner.runs_changed_after(after, limit)
            }

            fn save_api_key<'a>(
                &'a self,
                key: &'a ::kern_core::keys::ApiKey,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<()>> {
                self.inner.save_api_key(key)
            }

            fn api_key<'a>(
                &'a self,
                id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Option<::kern_core::keys::ApiKey>>> {
                self.inner.api_key(id)
            }

            fn api_keys(&self) -> ::kern_core::BoxFuture<'_, ::kern_core::Result<Vec<::kern_core::keys::ApiKey>>> {
                self.inner.api_keys()
            }

            fn revoke_api_key<'a>(
                &'a self,
                id: &'a str,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<Option<::kern_core::keys::ApiKey>>> {
                self.inner.revoke_api_key(id)
            }

            fn wait_for_resolution<'a>(
                &'a self,
                id: &'a str,
                timeout: ::std::time::Duration,
            ) -> ::kern_core::BoxFuture<'a, ::kern_core::Result<::kern_core::approval::Approval>> {
                self.inner.wait_for_resolution(id, timeout)
            }
        }

        impl $ty {
            /// The schema version of this store's tables.
            pub async fn schema_version(&self) -> ::kern_core::Result<i64> {
                self.inner.schema_version().await
            }

            /// Closes the store's connections (a Postgres handle's listening one too); later
            /// calls fail. Clones share them, so they are closed as well.
            pub async fn close(&self) {
                self.inner.close().await;
            }

            /// How many write transactions this handle has committed since it opened (a lone
            /// write statement counts as one): the durable commits a workload costs. Clones share
            /// the count. With the `test-support` feature only, for benchmarks and tests.
            #[cfg(any(test, feature = "test-support"))]
            pub fn commit_count(&self) -> u64 {
                self.inner.pools.commits()
            }

            /// Records `version` as the schema version without migrating, to stand for a
            /// database written by another build. With the `test-support` feature only.
            #[cfg(any(test, feature = "test-support"))]
            #[doc(hidden)]
            pub async fn __set_schema_version(&self, version: i64) -> ::kern_core::Result<()> {
                self.inner.set_schema_version(version).await
            }
        }
    };
}
pub(crate) use handle;

/// Implements the settings every builder has, on its fields `tables: TableNames`,
/// `create_tables: bool`, `upgrade_tables: bool`, `schema_version: Option<i64>` and (for tests)
/// `poll_every: Option<Duration>`.
macro_rules! builder {
    ($ty:ty) => {
        impl $ty {
            /// The approvals table (default `kern_approvals`). The trail's events, the votes and
            /// the API keys are kept in tables named after it: `<name>_events`, `<name>_votes`
            /// and `<name>_api_keys`.
            pub fn approvals_table(mut self, name: impl Into<String>) -> Self {
                self.tables.approvals = name.into();
                self
            }

            /// The runs table (default `kern_runs`).
            pub fn runs_table(mut self, name: impl Into<String>) -> Self {
                self.tables.runs = name.into();
                self
            }

            /// The sessions table (default `kern_sessions`).
            pub fn sessions_table(mut self, name: impl Into<String>) -> Self {
                self.tables.sessions = name.into();
                self
            }

            /// Whether opening creates kern's tables where the database has none of the names
            /// given (default `true`). A program that only reads and decides, such as an
            /// admin's tool, passes `false`: a mistyped schema or table name is then
            /// [`OpenError::NoTables`](crate::OpenError::NoTables), with nothing created,
            /// rather than a new, empty store.
            pub fn create_tables(mut self, create: bool) -> Self {
                self.create_tables = create;
                self
            }

            /// Whether opening upgrades the tables an older build wrote (default `true`). A
            /// program that only reads and decides passes `false` and leaves the upgrade to the
            /// application that owns the schema, whose older build would refuse tables newer
            /// than it knows: such tables are then
            /// [`OpenError::OutOfDate`](crate::OpenError::OutOfDate), with nothing changed.
            pub fn upgrade_tables(mut self, upgrade: bool) -> Self {
                self.upgrade_tables = upgrade;
                self
            }

            /// Stops migrating at `version`, to create a database as an older build left it.
            /// With the `test-support` feature only, for tests of the upgrade path.
            #[cfg(any(test, feature = "test-support"))]
            #[doc(hidden)]
            pub fn __schema_version(mut self, version: i64) -> Self {
                self.schema_version = Some(version);
                self
            }

            /// Reads a waited-on row (and the trail's head) only this often when nothing wakes
            /// its waiter, in place of the store's own intervals: with an hour, only a wake-up
            /// ends a wait. With the `test-support` feature only, for tests of the wake-ups.
            #[cfg(any(test, feature = "test-support"))]
            #[doc(hidden)]
            pub fn __poll_every(mut self, every: std::time::Duration) -> Self {
                self.poll_every = Some(every);
                self
            }
        }
    };
}
pub(crate) use builder;
