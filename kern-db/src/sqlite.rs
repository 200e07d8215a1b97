//! [`SqliteDb`]: the embedded store, one file (or memory) per database.

mod connections;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kern_core::{BoxFuture, Error, Result};
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Decode, Executor, Row, Sqlite, Type};
use tokio::time::{Instant, sleep};

use self::connections::Lanes;
use crate::driver::{Driver, Pools};
use crate::error::OpenError;
use crate::layout::{Dialect, Layout, TableNames};
use crate::schema::SCHEMA_VERSION;
use crate::stmt::{Columns, Decoder, Param, Stmt, chain, corrupt};
use crate::store::{SqlStore, forward_store};

/// How long a write waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most values one SQL text binds (`$n` counts through a whole script): SQLite's default
/// `SQLITE_MAX_VARIABLE_NUMBER`, which sqlx's bundled SQLite keeps.
const MAX_PARAMS: usize = 32_766;

/// Read connections per file. Reads never wait for writes under WAL; a few cover the loops
/// and an admin listing at once.
const READ_CONNECTIONS: usize = 4;

/// The SQLite store: runs and approval rows in one database file.
///
/// Writes go through one connection (others queue for it rather than fail on the database
/// lock) and reads through a few more, in WAL mode. Clones share the pools.
///
/// ```no_run
/// # async fn demo() -> kern_core::Result<()> {
/// use kern_db::SqliteDb;
/// let db = SqliteDb::builder().db_file("app.db").approvals_table("approvals").build().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteDb {
    inner: Arc<SqlStore<Sqlite>>,
}

forward_store!(SqliteDb);

impl SqliteDb {
    /// A builder: file, table names, durability.
    pub fn builder() -> SqliteDbBuilder {
        SqliteDbBuilder::default()
    }

    /// Opens (creating if missing) the database file at `path` with the default settings.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::builder().db_file(path).build().await
    }

    /// A private database in memory, gone when the last clone is dropped.
    pub async fn in_memory() -> Result<Self> {
        Self::builder().in_memory().build().await
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

    /// Closes the connections; later calls fail.
    pub async fn close(&self) {
        self.inner.close().await;
    }

    /// Records `version` as the schema version without migrating, to stand for a database
    /// written by another build. Tests only.
    #[doc(hidden)]
    pub async fn __set_schema_version(&self, version: i64) -> Result<()> {
        self.inner.set_schema_version(version).await
    }
}

/// How hard SQLite works to keep a committed write through a power loss (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// Never syncs: fastest, a power loss can corrupt the file.
    Off,
    /// In WAL mode, the last commits can be lost on power loss, never corrupted.
    Normal,
    /// Every commit is on disk before it returns: an approval, once acknowledged, stays.
    #[default]
    Full,
    /// Like `Full`, and also syncs the directory.
    Extra,
}

impl From<Synchronous> for SqliteSynchronous {
    fn from(value: Synchronous) -> Self {
        match value {
            Synchronous::Off => SqliteSynchronous::Off,
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Extra => SqliteSynchronous::Extra,
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone)]
enum Target {
    File(PathBuf),
    Memory,
}

/// Configures and opens a [`SqliteDb`].
#[derive(Debug, Clone, Default)]
#[must_use = "call .build().await to open the database"]
pub struct SqliteDbBuilder {
    target: Option<Target>,
    tables: TableNames,
    synchronous: Synchronous,
    schema_version: Option<i64>,
}

impl SqliteDbBuilder {
    /// The database file; created with its directory's permissions if missing.
    pub fn db_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.target = Some(Target::File(path.into()));
        self
    }

    /// A private database in memory instead of a file.
    pub fn in_memory(mut self) -> Self {
        self.target = Some(Target::Memory);
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

    /// Durability of commits (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Stops migrating at `version`, to create a database as an older build left it. Tests of
    /// the upgrade path only.
    #[doc(hidden)]
    pub fn __schema_version(mut self, version: i64) -> Self {
        self.schema_version = Some(version);
        self
    }

    /// Opens the database, creating the file and the tables if missing and upgrading tables
    /// written by an older build.
    ///
    /// Errors: [`Error::Database`] with an [`OpenError`] (a bad table name, no target, a file
    /// that cannot be opened: the message names it), [`Error::SchemaTooNew`].
    pub async fn build(self) -> Result<SqliteDb> {
        let layout = Layout::new(Dialect::Sqlite, None, &self.tables)?;
        let target = self.target.ok_or(OpenError::MissingTarget("db_file"))?;
        let version = self.schema_version.unwrap_or(SCHEMA_VERSION);
        let opened = async {
            let pools = match &target {
                Target::File(path) => file_pools(path, self.synchronous).await?,
                Target::Memory => memory_pools().await?,
            };
            SqlStore::open(pools, &layout, version).await
        };
        // A file that opens but cannot be written fails only at the first write, creating the
        // schema: name the file in that error too.
        let store = opened.await.map_err(|err| match err {
            Error::Database(source) => OpenError::Sqlite { path: target.path().to_owned(), source }.into(),
            other => other,
        })?;
        Ok(SqliteDb { inner: Arc::new(store) })
    }
}

impl Target {
    /// The path as it appears in errors.
    fn path(&self) -> &Path {
        match self {
            Target::File(path) => path,
            Target::Memory => Path::new(":memory:"),
        }
    }
}

async fn file_pools(path: &Path, synchronous: Synchronous) -> Result<Pools<Sqlite>> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .synchronous(synchronous.into())
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let writer = Lanes::file(options.clone(), 1);
    // The writer first: it creates the file and switches it to WAL before readers open it.
    enable_wal(&writer).await?;
    Ok(Pools::new(Lanes::file(options, READ_CONNECTIONS), writer))
}

/// Switches the file to WAL (a lasting property of the file). The switch needs an exclusive
/// lock that SQLite does not wait for, so when several stores open a new file at once all but
/// one get `SQLITE_BUSY`: retry them until the busy timeout. A file in WAL mode returns at once.
async fn enable_wal(writer: &Lanes) -> Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let mut conn = writer.acquire_lane().await?;
        match conn.execute(sqlx::raw_sql("PRAGMA journal_mode = WAL")).await {
            Ok(_) => return Ok(()),
            Err(err) if is_busy(&err) && Instant::now() < deadline => sleep(Duration::from_millis(10)).await,
            Err(err) => return Err(Error::database(err)),
        }
    }
}

/// `SQLITE_BUSY` or one of its extended codes.
fn is_busy(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    let code = err.as_database_error().and_then(|e| e.code()).and_then(|code| code.parse::<i32>().ok());
    code.is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

/// One connection for everything: each connection to `:memory:` is a database of its own.
async fn memory_pools() -> Result<Pools<Sqlite>> {
    let lanes = Lanes::memory(SqliteConnectOptions::new().in_memory(true).foreign_keys(true)).await?;
    Ok(Pools::new(lanes.clone(), lanes))
}

/// Binds `stmt`'s parameters in SQLite's types: timestamps as microseconds since the epoch.
fn query<'q>(stmt: &'q Stmt<'_>) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    stmt.params.iter().fold(sqlx::query(&stmt.sql), |query, param| match param {
        Param::Text(value) => query.bind(value.as_deref()),
        Param::Int(value) => query.bind(*value),
        Param::Time(value) => query.bind(value.map(|time| time.timestamp_micros())),
        Param::Json(value) => query.bind(*value),
        Param::RawJson(value) => query.bind(value.get()),
    })
}

impl Driver for Sqlite {
    type Pool = Lanes;

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    fn fetch<'c, T: Send + 'c>(
        conn: &'c mut SqliteConnection,
        stmt: &'c Stmt<'_>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>> {
        Box::pin(async move {
            let rows = query(stmt).fetch_all(conn).await.map_err(Error::database)?;
            rows.iter().map(|row| decode(row)).collect()
        })
    }

    fn execute<'c>(conn: &'c mut SqliteConnection, stmt: &'c Stmt<'_>) -> BoxFuture<'c, Result<u64>> {
        Box::pin(async move {
            let done = query(stmt).execute(conn).await.map_err(Error::database)?;
            Ok(done.rows_affected())
        })
    }

    fn execute_unprepared<'c>(conn: &'c mut SqliteConnection, sql: &'c str) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move { conn.execute(sqlx::raw_sql(sql)).await.map(drop).map_err(Error::database) })
    }

    /// One script, `BEGIN IMMEDIATE; ..; COMMIT`, so the whole transaction is one hand-off to
    /// the connection's thread, where sqlx's transactions take one per statement and three
    /// more (`BEGIN`, a check that it began, `COMMIT`); sqlx's transactions only for scripts
    /// with more values than one text may bind.
    ///
    /// A caller that stops waiting can leave the transaction open, unknown to sqlx: a script
    /// stops at its next statement, and sqlx's custom `BEGIN` is abandoned between the `BEGIN`
    /// and its check. So the connection is closed, which rolls the transaction back. The one
    /// connection of an in-memory database cannot be: it uses a plain `BEGIN`, which sqlx
    /// abandons cleanly (with no other connection, there is no other writer to lock out).
    fn write_all<'a>(writer: &'a Lanes, stmts: Vec<Stmt<'a>>, _independent: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut conn = writer.acquire_lane().await?;
            if !writer.can_discard() {
                return transaction(&mut conn, None, &stmts).await;
            }
            conn.discard_on_drop(true);
            let params: usize = stmts.iter().map(|stmt| stmt.params.len()).sum();
            if params > MAX_PARAMS {
                transaction(&mut conn, Some(Self::BEGIN_WRITE), &stmts).await?;
            } else {
                let (texts, params) = chain(stmts);
                let script = Stmt { sql: format!("BEGIN IMMEDIATE; {}; COMMIT", texts.join("; ")).into(), params };
                Self::execute(&mut conn, &script).await?;
            }
            conn.discard_on_drop(false);
            Ok(())
        })
    }
}

/// Runs `stmts` in one sqlx transaction on `conn`, begun with `begin` (or a plain `BEGIN`): all
/// of them or, on any error, none.
async fn transaction(conn: &mut SqliteConnection, begin: Option<&'static str>, stmts: &[Stmt<'_>]) -> Result<()> {
    let mut tx = match begin {
        Some(begin) => conn.begin_with(begin).await,
        None => conn.begin().await,
    }
    .map_err(Error::database)?;
    for stmt in stmts {
        Sqlite::execute(&mut tx, stmt).await?;
    }
    tx.commit().await.map_err(Error::database)
}

fn get<'r, T: Decode<'r, Sqlite> + Type<Sqlite>>(row: &'r SqliteRow, column: &str) -> Result<T> {
    row.try_get(column).map_err(|e| corrupt(column, e))
}

impl Columns for SqliteRow {
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i64> {
        get(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        let micros: Option<i64> = get(self, column)?;
        micros
            .map(|micros| {
                DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(column, "timestamp out of range"))
            })
            .transpose()
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        get(self, column)
    }

    fn json_text(&self, column: &str) -> Result<&str> {
        get(self, column)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use kern_core::approval::{ApprovalQuery, ApprovalStatus};

    use super::*;
    use crate::queries::{Filter, Queries};

    /// A database file no other test uses, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new() -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            TempFile(std::env::temp_dir().join(format!("kern-db-unit-{}-{n}.db", std::process::id())))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    async fn scalar<T>(db: &SqliteDb, sql: &str) -> T
    where
        T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + Send + Unpin,
    {
        let mut conn = db.inner.pools().writer.acquire_lane().await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut *conn).await.unwrap()
    }

    async fn index_names(db: &SqliteDb) -> Vec<String> {
        names(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .await
    }

    async fn trigger_names(db: &SqliteDb) -> Vec<String> {
        names(db, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name").await
    }

    async fn names(db: &SqliteDb, sql: &str) -> Vec<String> {
        let mut conn = db.inner.pools().reader.acquire_lane().await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut *conn).await.unwrap()
    }

    #[tokio::test]
    async fn files_use_wal_foreign_keys_and_the_chosen_durability() {
        for (synchronous, level) in [(Synchronous::Full, 2), (Synchronous::Normal, 1), (Synchronous::Off, 0)] {
            let file = TempFile::new();
            let db = SqliteDb::builder().db_file(&file.0).synchronous(synchronous).build().await.unwrap();
            assert_eq!(scalar::<String>(&db, "PRAGMA journal_mode").await, "wal");
            assert_eq!(scalar::<i64>(&db, "PRAGMA foreign_keys").await, 1);
            assert_eq!(scalar::<i64>(&db, "PRAGMA synchronous").await, level);
            db.close().await;
        }
    }

    #[tokio::test]
    async fn the_upgrade_to_version_2_adds_the_indexes() {
        let file = TempFile::new();
        let old = SqliteDb::builder().db_file(&file.0).__schema_version(1).build().await.unwrap();
        assert_eq!(index_names(&old).await, Vec::<String>::new());
        old.close().await;

        let db = SqliteDb::open(&file.0).await.unwrap();
        let expected =
            ["kern_approvals_run_idx", "kern_approvals_status_idx", "kern_approvals_user_idx", "kern_runs_session_idx"];
        assert_eq!(index_names(&db).await, expected);
        db.close().await;
    }

    #[tokio::test]
    async fn the_upgrade_to_version_3_adds_the_trigger() {
        let file = TempFile::new();
        let old = SqliteDb::builder().db_file(&file.0).__schema_version(2).build().await.unwrap();
        assert_eq!(trigger_names(&old).await, Vec::<String>::new());
        old.close().await;

        let db = SqliteDb::open(&file.0).await.unwrap();
        assert_eq!(trigger_names(&db).await, ["kern_runs_on_save"]);
        db.close().await;
    }

    /// A caller that stops waiting mid-way through a batch must leave the in-memory
    /// database's one connection usable and the batch whole or absent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_batch_leaves_the_in_memory_database_usable() {
        let db = SqliteDb::in_memory().await.unwrap();
        let pools = db.inner.pools();
        pools.execute(Stmt::new("CREATE TABLE pairs (n INTEGER NOT NULL)")).await.unwrap();
        let pair = |n: i64| {
            vec![Stmt::new("INSERT INTO pairs VALUES ($1)").bind(n), Stmt::new("INSERT INTO pairs VALUES ($1)").bind(n)]
        };
        for n in 0..200 {
            // Given up after a varying number of polls, so at varying points of the batch.
            let give_up = async {
                for _ in 0..n % 8 {
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                biased;
                _ = pools.write_all(pair(n), false) => {}
                () = give_up => {}
            }
            pools.write_all(pair(-n - 1), false).await.unwrap();
        }
        let counts: Vec<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM pairs GROUP BY n")
            .fetch_all(&mut *pools.reader.acquire_lane().await.unwrap())
            .await
            .unwrap();
        assert!(counts.len() >= 200 && counts.iter().all(|&count| count == 2), "{counts:?}");
    }

    #[tokio::test]
    async fn the_pending_inbox_reads_the_index_in_order() {
        let db = SqliteDb::in_memory().await.unwrap();
        let queries = Queries::new(&Layout::new(Dialect::Sqlite, None, &TableNames::default()).unwrap());
        let query = ApprovalQuery::default().status(ApprovalStatus::Pending);
        let filter = Filter::new(&query);
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", queries.list_page(&filter)))
                .bind(ApprovalStatus::Pending.as_str())
                .bind(50_i64)
                .bind(0_i64)
                .fetch_all(&mut *db.inner.pools().reader.acquire_lane().await.unwrap())
                .await
                .unwrap();
        let details: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(details.iter().any(|d| d.contains("USING INDEX kern_approvals_status_idx")), "{details:?}");
        assert!(!details.iter().any(|d| d.contains("TEMP B-TREE")), "{details:?}");
    }
}
