//! The stores the lifecycle runs on, each reopenable as a fresh handle.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kern::approval::{Approval, ApprovalPage, ApprovalQuery, ApprovalUpdate, Decision, PageCursor, Principal, Vote};
use kern::db::{MemoryDb, PostgresDb, SqliteDb, Store};
use kern::keys::ApiKey;
use kern::run::{RunPage, RunQuery, RunRecord};
use kern::trail::{EventKind, Execution, TrailEvent, TrailReport};
use kern::{BoxFuture, Result};

/// A name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}

/// Where the Postgres tests connect; unset means they are skipped (and say so).
pub const POSTGRES_URL_VAR: &str = "KERN_TEST_POSTGRES_URL";

/// One store under test.
pub enum Backend {
    Memory(MemoryDb),
    Sqlite { path: std::path::PathBuf, db: SqliteDb },
    Postgres { url: String, schema: String, db: PostgresDb },
}

impl Backend {
    pub fn memory() -> Self {
        Backend::Memory(MemoryDb::new())
    }

    pub async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique("kern_lifecycle")));
        let db = SqliteDb::open(&path).await.expect("open sqlite");
        Backend::Sqlite { path, db }
    }

    /// A Postgres store in a fresh schema, or `None` (with a note) when no server is configured.
    pub async fn postgres() -> Option<Self> {
        let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{POSTGRES_URL_VAR} is not set under CI: the Postgres variants must run"
            );
            eprintln!("skipped: {POSTGRES_URL_VAR} is not set, so the Postgres variant does not run");
            return None;
        };
        let schema = unique("kern_test");
        let db = PostgresDb::builder()
            .url(&url)
            .schema(&schema)
            .max_connections(8)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but Postgres is unusable: {e}"));
        Some(Backend::Postgres { url, schema, db })
    }

    /// The store as agents take it.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Memory(db) => Arc::new(db.clone()),
            Backend::Sqlite { db, .. } => Arc::new(db.clone()),
            Backend::Postgres { db, .. } => Arc::new(db.clone()),
        }
    }

    /// A new handle on the same data, as another process would open it.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match self {
            Backend::Memory(db) => Arc::new(db.clone()),
            Backend::Sqlite { path, .. } => Arc::new(SqliteDb::open(path).await.expect("reopen sqlite")),
            Backend::Postgres { url, schema, .. } => {
                Arc::new(PostgresDb::builder().url(url).schema(schema).build().await.expect("reopen postgres"))
            }
        }
    }

    /// How a child process opens the same data: `(kind, location, schema)`.
    pub fn locator(&self) -> Option<(&'static str, String, String)> {
        match self {
            Backend::Memory(_) => None,
            Backend::Sqlite { path, .. } => Some(("sqlite", path.display().to_string(), String::new())),
            Backend::Postgres { url, schema, .. } => Some(("postgres", url.clone(), schema.clone())),
        }
    }

    /// Opens the store a locator names.
    pub async fn open(kind: &str, location: &str, schema: &str) -> Arc<dyn Store> {
        match kind {
            "sqlite" => Arc::new(SqliteDb::open(location).await.expect("open sqlite")),
            _ => Arc::new(PostgresDb::builder().url(location).schema(schema).build().await.expect("open postgres")),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        match self {
            Backend::Memory(_) => {}
            Backend::Sqlite { path, .. } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Backend::Postgres { url, schema, .. } => {
                // Drop runs inside the test's runtime; the schema goes on a thread of its own.
                let (url, schema) = (url.clone(), schema.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(PostgresDb::__drop_schema(&url, &schema)).map_err(std::io::Error::other)
                })
                .join();
                if let Ok(Err(error)) = dropped {
                    eprintln!("could not drop a test schema: {error}");
                }
            }
        }
    }
}

/// A store (a memory store unless told otherwise) that logs the name of each call and can fail
/// writes of run state or reads of rows, as when the database goes down mid-run, or show an
/// event late, as when Postgres commits it after a later one, or hold one back with its run's
/// decision until the test commits it.
pub struct ProbeStore {
    inner: Arc<dyn Store>,
    /// The numbers of the saves that fail, the first save being number 1.
    failing_saves: Range<usize>,
    /// The numbers of the saves refused as holding a value past kern's limits.
    refused_saves: Range<usize>,
    saves: AtomicUsize,
    /// Whether reads of approval rows fail.
    failing_row_reads: AtomicBool,
    /// The kind of the event that commits late: the first of that kind is left out of the
    /// trail's reads until one holds an event after it, and out of that one too.
    late: Option<EventKind>,
    /// Whether the late event has been left out of a read that held a later one.
    late_passed: AtomicBool,
    /// The kind of the event in flight: the first of that kind, and its run among the decided
    /// runs, are seen by no read until [`commit_in_flight`](Self::commit_in_flight).
    in_flight: Option<EventKind>,
    in_flight_committed: AtomicBool,
    /// Whether the next renewal of a claim commits but loses its answer, as when the connection
    /// drops just after.
    lose_renewal_answer: AtomicBool,
    /// Whether the next renewal of a claim fails before it reaches the database.
    fail_renewal: AtomicBool,
    calls: std::sync::Mutex<Vec<&'static str>>,
    /// What each save was asked to write: its runs' ids and its new rows' ids.
    saved: std::sync::Mutex<Vec<SavedBatch>>,
}

/// The ids one `save_runs` call was asked to write, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBatch {
    pub runs: Vec<String>,
    pub rows: Vec<String>,
}

impl Default for ProbeStore {
    fn default() -> Self {
        ProbeStore::over(Arc::new(MemoryDb::new()))
    }
}

impl ProbeStore {
    /// Probes `inner`.
    pub fn over(inner: Arc<dyn Store>) -> Self {
        ProbeStore {
            inner,
            failing_saves: 0..0,
            refused_saves: 0..0,
            saves: AtomicUsize::new(0),
            failing_row_reads: AtomicBool::new(false),
            late: None,
            late_passed: AtomicBool::new(false),
            in_flight: None,
            in_flight_committed: AtomicBool::new(false),
            lose_renewal_answer: AtomicBool::new(false),
            fail_renewal: AtomicBool::new(false),
            calls: std::sync::Mutex::default(),
            saved: std::sync::Mutex::default(),
        }
    }

    /// What each save so far was asked to write, oldest first.
    pub fn saved(&self) -> Vec<SavedBatch> {
        self.saved.lock().unwrap().clone()
    }

    /// Lets the next renewal of a claim commit and lose its answer.
    pub fn lose_next_renewal_answer(&self) {
        self.lose_renewal_answer.store(true, Ordering::Relaxed);
    }

    /// Fails the next renewal of a claim, writing nothing.
    pub fn fail_next_renewal(&self) {
        self.fail_renewal.store(true, Ordering::Relaxed);
    }

    /// Probes `inner`, whose first event of `kind` commits late: a reader sees the event after
    /// it first.
    pub fn with_late_event(inner: Arc<dyn Store>, kind: EventKind) -> Self {
        ProbeStore { late: Some(kind), ..ProbeStore::over(inner) }
    }

    /// Probes `inner`, whose first event of `kind` is written by a transaction still under way
    /// until [`commit_in_flight`](Self::commit_in_flight): reads of the trail and of decided
    /// runs see neither the event nor its run's decision, while later events are seen.
    pub fn with_event_in_flight(inner: Arc<dyn Store>, kind: EventKind) -> Self {
        ProbeStore { in_flight: Some(kind), ..ProbeStore::over(inner) }
    }

    /// Commits the event in flight: every read sees it from now on.
    pub fn commit_in_flight(&self) {
        self.in_flight_committed.store(true, Ordering::Relaxed);
    }

    /// The event in flight, while it is.
    async fn event_in_flight(&self) -> Result<Option<TrailEvent>> {
        let Some(kind) = self.in_flight.filter(|_| !self.in_flight_committed.load(Ordering::Relaxed)) else {
            return Ok(None);
        };
        Ok(self.inner.events_after(0, u32::MAX).await?.into_iter().find(|event| event.kind == kind))
    }

    /// Fails every save.
    pub fn failing_saves() -> Self {
        ProbeStore { failing_saves: 1..usize::MAX, ..ProbeStore::default() }
    }

    /// Fails save number `n` only (the first is 1), as when the database is down a moment.
    pub fn failing_save(n: usize) -> Self {
        ProbeStore { failing_saves: n..n + 1, ..ProbeStore::default() }
    }

    /// Refuses save number `n` only, as a store refuses a value past kern's limits.
    pub fn refusing_save(n: usize) -> Self {
        ProbeStore { refused_saves: n..n + 1, ..ProbeStore::default() }
    }

    /// Fails (or stops failing) every read of an approval row.
    pub fn fail_row_reads(&self, fail: bool) {
        self.failing_row_reads.store(fail, Ordering::Relaxed);
    }

    /// The calls so far, oldest first.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    fn log(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

fn outage<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T>> {
    Box::pin(async { Err(kern::Error::database(std::io::Error::other("connection reset"))) })
}

impl Store for ProbeStore {
    fn save_runs<'a>(
        &'a self,
        runs: &'a [RunRecord],
        new_approvals: &'a [Approval],
        executions: &'a [Execution],
    ) -> BoxFuture<'a, Result<()>> {
        self.log("save_runs");
        self.saved.lock().unwrap().push(SavedBatch {
            runs: runs.iter().map(|run| run.run_id.clone()).collect(),
            rows: new_approvals.iter().map(|row| row.id.clone()).collect(),
        });
        let number = self.saves.fetch_add(1, Ordering::Relaxed) + 1;
        if self.failing_saves.contains(&number) {
            return outage();
        }
        if self.refused_saves.contains(&number) {
            let reason = "it nests 65 levels deep, more than the 64 allowed".to_owned();
            return Box::pin(async move { Err(kern::Error::InvalidInput { field: "resolution_data", reason }) });
        }
        self.inner.save_runs(runs, new_approvals, executions)
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        self.log("load_run");
        self.inner.load_run(run_id)
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        self.log("claim_run");
        self.inner.claim_run(run_id)
    }

    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        self.log("reclaim_run");
        self.inner.reclaim_run(run_id, stale_after)
    }

    fn renew_claim<'a>(
        &'a self,
        run_id: &'a str,
        held_at: chrono::DateTime<chrono::Utc>,
        renewed_at: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<()>> {
        self.log("renew_claim");
        if self.fail_renewal.swap(false, Ordering::Relaxed) {
            return outage();
        }
        if !self.lose_renewal_answer.swap(false, Ordering::Relaxed) {
            return self.inner.renew_claim(run_id, held_at, renewed_at);
        }
        Box::pin(async move {
            self.inner.renew_claim(run_id, held_at, renewed_at).await?;
            Err(kern::Error::database(std::io::Error::other("connection reset after the commit")))
        })
    }

    fn release_stale_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        self.log("release_stale_run");
        self.inner.release_stale_run(run_id, stale_after)
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        self.log("session_runs");
        self.inner.session_runs(session_id, limit)
    }

    fn list_runs<'a>(&'a self, query: &'a RunQuery) -> BoxFuture<'a, Result<RunPage>> {
        self.log("list_runs");
        self.inner.list_runs(query)
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        self.log("get_approval");
        if self.failing_row_reads.load(Ordering::Relaxed) {
            return outage();
        }
        self.inner.get_approval(id)
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        self.log("list_approvals");
        self.inner.list_approvals(query)
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        self.log("update_approval");
        self.inner.update_approval(id, update)
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.log("delete_approval");
        self.inner.delete_approval(id)
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        self.log("count_pending_approvals");
        self.inner.count_pending_approvals(user_id)
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        self.log("expire_approvals");
        self.inner.expire_approvals(now)
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        principal: &'a Principal,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Approval>> {
        self.log("decide");
        self.inner.decide(id, principal, decision)
    }

    fn votes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Vote>>> {
        self.log("votes");
        self.inner.votes(id)
    }

    fn cancel_run<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        self.log("cancel_run");
        self.inner.cancel_run(run_id, principal)
    }

    fn cancel_run_as<'a>(&'a self, run_id: &'a str, principal: &'a Principal) -> BoxFuture<'a, Result<RunRecord>> {
        self.log("cancel_run_as");
        self.inner.cancel_run_as(run_id, principal)
    }

    fn trail<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<TrailEvent>>> {
        self.log("trail");
        self.inner.trail(id)
    }

    fn verify_trail(&self) -> BoxFuture<'_, Result<TrailReport>> {
        self.log("verify_trail");
        self.inner.verify_trail()
    }

    fn events_after(&self, after: i64, limit: u32) -> BoxFuture<'_, Result<Vec<TrailEvent>>> {
        self.log("events_after");
        Box::pin(async move {
            let mut events = self.inner.events_after(after, limit).await?;
            let late = self.late.and_then(|kind| events.iter().position(|event| event.kind == kind));
            if let Some(position) = late.filter(|_| !self.late_passed.load(Ordering::Relaxed)) {
                events.remove(position);
                if position < events.len() {
                    self.late_passed.store(true, Ordering::Relaxed);
                }
            }
            if let Some(in_flight) = self.event_in_flight().await? {
                events.retain(|event| event.seq != in_flight.seq);
            }
            Ok(events)
        })
    }

    fn last_event_seq(&self) -> BoxFuture<'_, Result<i64>> {
        self.log("last_event_seq");
        self.inner.last_event_seq()
    }

    fn wait_for_events(&self, after: i64, timeout: Duration) -> BoxFuture<'_, Result<i64>> {
        self.log("wait_for_events");
        self.inner.wait_for_events(after, timeout)
    }

    fn decided_runs<'a>(&'a self, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        self.log("decided_runs");
        Box::pin(async move {
            let mut runs = self.inner.decided_runs(after, limit).await?;
            if let Some(in_flight) = self.event_in_flight().await? {
                runs.retain(|run| run.run_id != in_flight.run_id);
            }
            Ok(runs)
        })
    }

    fn stale_runs<'a>(
        &'a self,
        stale_after: Duration,
        after: Option<&'a PageCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        self.log("stale_runs");
        self.inner.stale_runs(stale_after, after, limit)
    }

    fn runs_changed_after<'a>(&'a self, after: &'a PageCursor, limit: u32) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        self.log("runs_changed_after");
        self.inner.runs_changed_after(after, limit)
    }

    fn save_api_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
        self.log("save_api_key");
        self.inner.save_api_key(key)
    }

    fn api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        self.log("api_key");
        self.inner.api_key(id)
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKey>>> {
        self.log("api_keys");
        self.inner.api_keys()
    }

    fn revoke_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        self.log("revoke_api_key");
        self.inner.revoke_api_key(id)
    }
}
