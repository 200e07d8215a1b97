//! [`PostgresDb`]: the store many processes and machines share, and how it connects.
//!
//! Its parts: the builder ([`builder`]), the [`Driver`](crate::driver::Driver) side of Postgres
//! ([`driver`]), the announcements of resolutions between processes: the channels, triggers and
//! listener ([`notify`]) and the sender of the store's own ([`announce`]); its connections are
//! [`Lanes`].

mod announce;
mod builder;
mod driver;
mod notify;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use kern_core::Result;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Postgres};

use self::announce::ClientAnnouncer;
pub use self::builder::PostgresDbBuilder;
use self::notify::Listener;
use crate::driver::Pools;
use crate::error::OpenError;
use crate::handle::handle;
use crate::lanes::{Lanes, Recycling};
use crate::layout::Layout;
use crate::schema::{
    CLIENT_NOTIFY_VERSION, EVENT_NOTIFY_VERSION, Provision, RESOLUTION_NOTIFY_VERSION, SCHEMA_VERSION,
};
use crate::store::SqlStore;

/// How long to wait before trying an unreachable server again, while opening.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// The Postgres store: the same rows as [`SqliteDb`](crate::SqliteDb), in a schema of a
/// Postgres database, so any process that reaches it can resolve and continue runs.
///
/// A handle's first [`wait_for_resolution`](kern_core::store::Store::wait_for_resolution)
/// opens one more connection, which `LISTEN`s for the resolutions of every process and wakes
/// the handle's waiters; while it is down they poll.
///
/// ```no_run
/// # async fn demo() -> kern_core::Result<()> {
/// use kern_db::PostgresDb;
/// let db = PostgresDb::builder().url("postgres://kern@db/app").schema("agents").build().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresDb {
    inner: Arc<SqlStore<Postgres>>,
}

handle!(PostgresDb);

impl PostgresDb {
    /// A builder: URL, pool size, schema, table names.
    pub fn builder() -> PostgresDbBuilder {
        PostgresDbBuilder::default()
    }

    /// Connects to `url` (`postgres://user:password@host/database`) with the default settings.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder().url(url).build().await
    }

    /// Drops `schema` with everything in it, if it exists. With the `test-support` feature only:
    /// each test works in a schema of its own, which outlives the test's stores.
    #[cfg(any(test, feature = "test-support"))]
    #[doc(hidden)]
    pub async fn __drop_schema(url: &str, schema: &str) -> Result<()> {
        use kern_core::Error;
        use sqlx::Connection as _;

        use crate::driver::Driver as _;
        use crate::layout::Ident;

        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", Ident::new(schema)?.quoted());
        let mut conn = PgConnection::connect(url).await.map_err(OpenError::Postgres)?;
        Postgres::execute_unprepared(&mut conn, &sql).await?;
        conn.close().await.map_err(Error::database)
    }
}

impl PostgresDbBuilder {
    /// Connects, creating the schema and the tables if missing (unless told not to
    /// [create tables](PostgresDbBuilder::create_tables)) and upgrading tables written by an
    /// older build (unless told not to [upgrade tables](PostgresDbBuilder::upgrade_tables)).
    /// Processes that start at once and find something to create or upgrade take turns (an
    /// advisory lock); tables already up to date are only read.
    ///
    /// Errors: [`Error::Database`](kern_core::Error::Database) with an [`OpenError`] (a bad
    /// name, no URL, an unreachable server, no tables where none may be created, older tables
    /// where none may be upgraded),
    /// [`Error::SchemaTooNew`](kern_core::Error::SchemaTooNew).
    pub async fn build(self) -> Result<PostgresDb> {
        let layout = Layout::new(Some(&self.schema), &self.tables)?;
        let url = self.url.ok_or(OpenError::MissingTarget("url"))?;
        let options = PgConnectOptions::from_str(&url).map_err(OpenError::Postgres)?;
        let version = self.schema_version.unwrap_or(SCHEMA_VERSION);
        // From the version whose triggers let it, the store announces its own commits.
        let announcing = version >= CLIENT_NOTIFY_VERSION;
        let writing = options.clone();
        let writing =
            if announcing { writing.options([(notify::DEFER_SETTING, notify::CLIENT_ANNOUNCES)]) } else { writing };
        let recycling = Recycling { max_lifetime: self.max_lifetime, idle_timeout: self.idle_timeout };
        let lanes = connect_lanes(writing, self.max_connections, self.connect_timeout, recycling).await?;
        let pools = Pools::new(lanes.clone(), lanes.clone());
        let provision = Provision { create: self.create_tables, upgrade: self.upgrade_tables };
        let mut store = SqlStore::open(pools, &layout, version, provision).await?;
        #[cfg(any(test, feature = "test-support"))]
        {
            store = store.with_poll_every(self.poll_every);
        }
        if announcing {
            store = store.with_announcer(ClientAnnouncer::new(options.clone(), self.connect_timeout, &layout));
        }
        // Older tables have no trigger to announce resolutions, or the trail's growth: their
        // waiters, or the trail's followers, poll.
        if version >= RESOLUTION_NOTIFY_VERSION {
            let signal = (version >= EVENT_NOTIFY_VERSION).then(|| store.signal());
            let listener = Listener::new(options, self.connect_timeout, &layout, store.waiters(), signal);
            store = store.with_feed(listener);
        }
        Ok(PostgresDb { inner: Arc::new(store) })
    }
}

/// Opens the connections, the first one now: an unreachable server is tried again until
/// `timeout`, and the error names the reason (refused, unknown host, ..) of the last attempt.
///
/// A lent connection can be dead (the server restarted, or ended the session). Writes ping
/// theirs (a write whose connection fails may have committed, so it cannot run again) and
/// reads do not: one that fails on a lost connection runs again on a live one (see
/// `Pools::read`).
async fn connect_lanes(
    options: PgConnectOptions,
    max_connections: u32,
    timeout: Duration,
    recycling: Recycling,
) -> Result<Lanes<PgConnection>, OpenError> {
    let size = usize::try_from(max_connections.max(1)).unwrap_or(usize::MAX);
    let lanes = Lanes::new(options.clone(), size, timeout, Some(recycling));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let attempt = tokio::time::timeout_at(deadline, options.connect()).await;
        match attempt {
            Ok(Ok(conn)) => {
                lanes.adopt(conn);
                return Ok(lanes);
            }
            Ok(Err(err)) if tokio::time::Instant::now() + CONNECT_RETRY >= deadline => {
                return Err(OpenError::Postgres(err));
            }
            Ok(Err(_)) => tokio::time::sleep(CONNECT_RETRY).await,
            Err(_) => return Err(OpenError::Postgres(sqlx::Error::PoolTimedOut)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU32, Ordering};

    use chrono::Utc;

    use super::*;

    /// The variable naming the Postgres server of the tests.
    const URL_VAR: &str = "KERN_TEST_POSTGRES_URL";

    /// Runs `case` with the server's URL and a schema no other test uses, dropped afterwards
    /// whether the case passed or not. Without a server configured, the test passes untried.
    pub(super) async fn on_fresh_schema<F, Fut>(case: F)
    where
        F: FnOnce(String, String) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let Ok(url) = std::env::var(URL_VAR) else {
            assert!(std::env::var_os("CI").is_none(), "{URL_VAR} is not set under CI: the Postgres tests must run");
            eprintln!("skipping a Postgres test: {URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
            return;
        };
        let millis = Utc::now().timestamp_millis();
        let schema = format!("kern_db_{:x}_{millis:x}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        // Spawned, so a failing case still lets the schema go.
        let outcome = tokio::spawn(case(url.clone(), schema.clone())).await;
        PostgresDb::__drop_schema(&url, &schema).await.expect("drop the test schema");
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    }

    async fn trigger_names(db: &PostgresDb, schema: &str) -> Vec<String> {
        let sql = "SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                   WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY t.tgname";
        sqlx::query_scalar(sql)
            .bind(schema)
            .fetch_all(&mut *db.inner.pools.reader.acquire_lane().await.unwrap())
            .await
            .unwrap()
    }

    /// The server session of the connection the store lends next.
    async fn session_of(db: &PostgresDb) -> i32 {
        let mut conn = db.inner.pools.reader.acquire_lane().await.unwrap();
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap()
    }

    /// Whether server session `pid` is still there, as `db` sees the server.
    async fn session_alive(db: &PostgresDb, pid: i32) -> bool {
        let mut conn = db.inner.pools.reader.acquire_lane().await.unwrap();
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1";
        sqlx::query_scalar::<_, i64>(sql).bind(pid).fetch_one(&mut *conn).await.unwrap() > 0
    }

    #[tokio::test]
    async fn connections_past_their_time_are_closed_and_replaced() {
        on_fresh_schema(|url, schema| async move {
            let builder = PostgresDb::builder().url(url).schema(&schema);
            let db = builder.clone().build().await.unwrap();
            let kept = session_of(&db).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(session_of(&db).await, kept, "a connection within its times is lent again");
            db.close().await;
            let forever =
                builder.clone().max_lifetime(Duration::MAX).idle_timeout(Duration::MAX).build().await.unwrap();
            let kept = session_of(&forever).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(session_of(&forever).await, kept, "`Duration::MAX` neither overflows nor closes a connection");
            forever.close().await;

            for (what, db) in [
                ("idle too long", builder.clone().idle_timeout(Duration::from_millis(50)).build().await.unwrap()),
                ("open too long", builder.clone().max_lifetime(Duration::from_millis(50)).build().await.unwrap()),
            ] {
                let first = session_of(&db).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let second = session_of(&db).await;
                assert_ne!(second, first, "{what}: another session");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while session_alive(&db, first).await {
                    assert!(tokio::time::Instant::now() < deadline, "{what}: the spent session was left open");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                db.close().await;
            }
        })
        .await;
    }

    #[tokio::test]
    async fn the_upgrade_to_version_4_adds_the_resolution_trigger() {
        on_fresh_schema(|url, schema| async move {
            let builder = PostgresDb::builder().url(url).schema(&schema);
            let old = builder.clone().__schema_version(RESOLUTION_NOTIFY_VERSION - 1).build().await.unwrap();
            assert_eq!(trigger_names(&old, &schema).await, ["kern_runs_on_save"]);
            old.close().await;

            let db = builder.clone().__schema_version(RESOLUTION_NOTIFY_VERSION).build().await.unwrap();
            assert_eq!(db.schema_version().await.unwrap(), RESOLUTION_NOTIFY_VERSION);
            assert_eq!(trigger_names(&db, &schema).await, ["kern_approvals_on_resolve", "kern_runs_on_save"]);
            db.close().await;

            // Later versions guard the trail, its votes and the rows' decisions, announce the
            // trail's growth, and keep the count of pending rows.
            let db = builder.build().await.unwrap();
            assert_eq!(db.schema_version().await.unwrap(), SCHEMA_VERSION);
            let guards = [
                "kern_approvals_count_in",
                "kern_approvals_count_out",
                "kern_approvals_events_no_delete",
                "kern_approvals_events_no_removal",
                "kern_approvals_events_no_update",
                "kern_approvals_events_on_insert",
                "kern_approvals_fixed_call",
                "kern_approvals_keeps_id",
                "kern_approvals_no_delete",
                "kern_approvals_no_removal",
                "kern_approvals_on_resolve",
                "kern_approvals_resolved",
                "kern_approvals_votes_no_delete",
                "kern_approvals_votes_no_removal",
                "kern_approvals_votes_no_update",
                "kern_runs_on_change",
                "kern_runs_on_save",
            ];
            assert_eq!(trigger_names(&db, &schema).await, guards);
            db.close().await;
        })
        .await;
    }
}
