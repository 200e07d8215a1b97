//! [`PostgresDb`]: the store many processes and machines share.

pub(crate) mod notify;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kern_core::{BoxFuture, Error, Result};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Connection, Decode, Executor, Pool, Postgres, Row, Type};

use self::notify::Listener;
use crate::driver::{ConnectionPool, Driver, Pools, transaction};
use crate::error::OpenError;
use crate::layout::{Dialect, Ident, Layout, TableNames};
use crate::schema::{RESOLUTION_NOTIFY_VERSION, SCHEMA_VERSION};
use crate::stmt::{Columns, Decoder, Param, Stmt, chain, corrupt};
use crate::store::{SqlStore, forward_store};

/// The most values one statement binds: the protocol counts them in 16 bits.
const MAX_PARAMS: usize = 65_535;

/// How long a connection may sit idle before it is pinged when next handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

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

forward_store!(PostgresDb);

impl PostgresDb {
    /// A builder: URL, pool size, schema, table names.
    pub fn builder() -> PostgresDbBuilder {
        PostgresDbBuilder::default()
    }

    /// Connects to `url` (`postgres://user:password@host/database`) with the default settings.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder().url(url).build().await
    }

    /// The schema version of this store's tables.
    pub async fn schema_version(&self) -> Result<i64> {
        self.inner.schema_version().await
    }

    /// How many write transactions this handle has committed since it opened (a lone write
    /// statement counts as one): the durable commits a workload costs. Clones share the count.
    pub fn commit_count(&self) -> u64 {
        self.inner.pools().commits()
    }

    /// Closes the connections, the listening one too; later calls fail.
    pub async fn close(&self) {
        self.inner.close().await;
    }

    /// Records `version` as the schema version without migrating, to stand for a database
    /// written by another build. Tests only.
    #[doc(hidden)]
    pub async fn __set_schema_version(&self, version: i64) -> Result<()> {
        self.inner.set_schema_version(version).await
    }

    /// Drops `schema` with everything in it, if it exists. Tests only: each test works in a
    /// schema of its own, which outlives the test's stores.
    #[doc(hidden)]
    pub async fn __drop_schema(url: &str, schema: &str) -> Result<()> {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", Ident::new(schema)?.quoted());
        let mut conn = PgConnection::connect(url).await.map_err(OpenError::Postgres)?;
        Postgres::execute_unprepared(&mut conn, &sql).await?;
        conn.close().await.map_err(Error::database)
    }
}

/// Configures and opens a [`PostgresDb`].
#[derive(Clone)]
#[must_use = "call .build().await to connect"]
pub struct PostgresDbBuilder {
    url: Option<String>,
    max_connections: u32,
    connect_timeout: Duration,
    schema: String,
    tables: TableNames,
    schema_version: Option<i64>,
}

impl Default for PostgresDbBuilder {
    fn default() -> Self {
        PostgresDbBuilder {
            url: None,
            max_connections: 10,
            connect_timeout: Duration::from_secs(30),
            schema: "public".into(),
            tables: TableNames::default(),
            schema_version: None,
        }
    }
}

/// Leaves the URL out: it may hold a password.
impl fmt::Debug for PostgresDbBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDbBuilder")
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("schema", &self.schema)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl PostgresDbBuilder {
    /// The server and database: `postgres://user:password@host:port/database`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The most connections the store opens (default 10).
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// How long to wait for a connection (default 30 s): at startup, where an unreachable
    /// server is retried until then, and later whenever all connections are busy.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The schema the tables live in (default `public`); created if missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The approvals table (default `kern_approvals`).
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

    /// Stops migrating at `version`, to create a database as an older build left it. Tests of
    /// the upgrade path only.
    #[doc(hidden)]
    pub fn __schema_version(mut self, version: i64) -> Self {
        self.schema_version = Some(version);
        self
    }

    /// Connects, creating the schema and the tables if missing and upgrading tables written by
    /// an older build. Processes starting at once take turns (an advisory lock).
    ///
    /// Errors: [`Error::Database`] with an [`OpenError`] (a bad name, no URL, an unreachable
    /// server), [`Error::SchemaTooNew`].
    pub async fn build(self) -> Result<PostgresDb> {
        let layout = Layout::new(Dialect::Postgres, Some(&self.schema), &self.tables)?;
        let url = self.url.ok_or(OpenError::MissingTarget("url"))?;
        let options = PgConnectOptions::from_str(&url).map_err(OpenError::Postgres)?;
        let pool = connect_pool(options.clone(), self.max_connections, self.connect_timeout).await?;
        let pools = Pools::new(pool.clone(), pool);
        let version = self.schema_version.unwrap_or(SCHEMA_VERSION);
        let mut store = SqlStore::open(pools, &layout, version).await?;
        // Older tables have no trigger to announce resolutions: their waiters poll.
        if version >= RESOLUTION_NOTIFY_VERSION {
            let listener = Listener::new(options, self.connect_timeout, &layout, store.waiters());
            store = store.with_feed(listener);
        }
        Ok(PostgresDb { inner: Arc::new(store) })
    }
}

/// Opens the pool. sqlx retries an unreachable server until the timeout, then reports only the
/// timeout; one more direct attempt recovers the reason (refused, unknown host, ..) for the error.
///
/// By default sqlx pings every connection it hands out, a round trip per store call. A
/// connection in steady use has just answered; one that sat idle (where a restarted server or
/// a dropped link shows) is still pinged, and replaced if it does not answer.
async fn connect_pool(options: PgConnectOptions, max_connections: u32, timeout: Duration) -> Result<PgPool, OpenError> {
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    match pool_options.connect_with(options.clone()).await {
        Ok(pool) => Ok(pool),
        Err(sqlx::Error::PoolTimedOut) => {
            let reason = PgConnection::connect_with(&options).await.err();
            Err(OpenError::Postgres(reason.unwrap_or(sqlx::Error::PoolTimedOut)))
        }
        Err(err) => Err(OpenError::Postgres(err)),
    }
}

fn query<'q>(stmt: &'q Stmt<'_>) -> Query<'q, Postgres, PgArguments> {
    stmt.params.iter().fold(sqlx::query(&stmt.sql), |query, param| match param {
        Param::Text(value) => query.bind(value.as_deref()),
        Param::Int(value) => query.bind(*value),
        Param::Time(value) => query.bind(*value),
        Param::Json(value) => query.bind(*value),
        Param::RawJson(value) => query.bind(Json(value.as_ref())),
    })
}

impl Driver for Postgres {
    type Pool = PgPool;

    const BEGIN_WRITE: &'static str = "BEGIN";

    fn fetch<'c, T: Send + 'c>(
        conn: &'c mut PgConnection,
        stmt: &'c Stmt<'_>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>> {
        Box::pin(async move {
            let rows = query(stmt).fetch_all(conn).await.map_err(Error::database)?;
            rows.iter().map(|row| decode(row)).collect()
        })
    }

    fn execute<'c>(conn: &'c mut PgConnection, stmt: &'c Stmt<'_>) -> BoxFuture<'c, Result<u64>> {
        Box::pin(async move {
            let done = query(stmt).execute(conn).await.map_err(Error::database)?;
            Ok(done.rows_affected())
        })
    }

    fn execute_unprepared<'c>(conn: &'c mut PgConnection, sql: &'c str) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move { conn.execute(sqlx::raw_sql(sql)).await.map(drop).map_err(Error::database) })
    }

    /// Postgres runs one parameterized statement per call. Independent statements become one
    /// (`WITH s0 AS (..), s1 AS (..) last`), atomic by itself: one round trip where a
    /// transaction takes one per statement plus `BEGIN` and `COMMIT`.
    fn write_all<'a>(writer: &'a PgPool, stmts: Vec<Stmt<'a>>, independent: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let params: usize = stmts.iter().map(|stmt| stmt.params.len()).sum();
            if !independent || params > MAX_PARAMS {
                return transaction::<Postgres>(writer, &stmts).await;
            }
            let (mut texts, params) = chain(stmts);
            let last = texts.pop().unwrap_or_default();
            let steps: Vec<String> = texts.iter().enumerate().map(|(n, text)| format!("s{n} AS ({text})")).collect();
            let stmt = Stmt { sql: format!("WITH {} {last}", steps.join(", ")).into(), params };
            let mut conn = ConnectionPool::acquire(writer).await?;
            Self::execute(&mut conn, &stmt).await.map(drop)
        })
    }
}

impl ConnectionPool<Postgres> for PgPool {
    type Conn = PoolConnection<Postgres>;

    fn acquire(&self) -> BoxFuture<'_, Result<PoolConnection<Postgres>>> {
        Box::pin(async move { Pool::acquire(self).await.map_err(Error::database) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Pool::close(self))
    }
}

fn get<'r, T: Decode<'r, Postgres> + Type<Postgres>>(row: &'r PgRow, column: &str) -> Result<T> {
    row.try_get(column).map_err(|e| corrupt(column, e))
}

impl Columns for PgRow {
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i64> {
        get(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        get(self, column)
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        get(self, column)
    }

    fn json_text(&self, column: &str) -> Result<&str> {
        get::<Json<&RawValue>>(self, column).map(|json| json.0.get())
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU32, Ordering};

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
        sqlx::query_scalar(sql).bind(schema).fetch_all(&db.inner.pools().reader).await.unwrap()
    }

    #[tokio::test]
    async fn the_upgrade_to_version_4_adds_the_resolution_trigger() {
        on_fresh_schema(|url, schema| async move {
            let builder = PostgresDb::builder().url(url).schema(&schema);
            let old = builder.clone().__schema_version(RESOLUTION_NOTIFY_VERSION - 1).build().await.unwrap();
            assert_eq!(trigger_names(&old, &schema).await, ["kern_runs_on_save"]);
            old.close().await;

            let db = builder.build().await.unwrap();
            assert_eq!(db.schema_version().await.unwrap(), SCHEMA_VERSION);
            assert_eq!(trigger_names(&db, &schema).await, ["kern_approvals_on_resolve", "kern_runs_on_save"]);
            db.close().await;
        })
        .await;
    }
}
