//! Fresh databases for each test, of each backend, removed afterwards.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kern::Result;
use kern::db::{MemoryDb, PostgresDb, SqliteDb, Store};

/// The variable naming the Postgres server of the tests.
const POSTGRES_URL_VAR: &str = "KERN_TEST_POSTGRES_URL";

/// How long a Postgres test waits for the server before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A store implementation under test.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    SqliteMemory,
    Sqlite,
    Postgres,
}

impl Backend {
    /// Runs `case` on an empty store of this backend.
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self {
            Backend::Memory => case(Arc::new(MemoryDb::new())).await,
            Backend::SqliteMemory => case(Arc::new(SqliteDb::in_memory().await.expect("open in-memory SQLite"))).await,
            Backend::Sqlite | Backend::Postgres => {
                self.run_sql(|target| async move {
                    let db = target.open(Options::default()).await.expect("open the store");
                    case(db.store()).await;
                    db.close().await;
                })
                .await
            }
        }
    }

    /// Runs `case` with a fresh database of this SQL backend, and removes the database after,
    /// whether the case passed or not.
    pub async fn run_sql<F, Fut>(self, case: F)
    where
        F: FnOnce(SqlTarget) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(target) = SqlTarget::fresh(self) else { return };
        // Spawned, so a failing case still lets the cleanup run.
        let outcome = tokio::spawn(case(target.clone())).await;
        let removed = target.remove().await;
        if let Err(err) = outcome {
            // The case's failure is the one to report; a failed cleanup only follows from it.
            if let Err(cleanup) = removed {
                eprintln!("could not remove the test database after the failure: {cleanup}");
            }
            std::panic::resume_unwind(err.into_panic());
        }
        removed.expect("remove the test database");
    }
}

/// A database that no test but this one uses: a temporary SQLite file or a Postgres schema.
#[derive(Debug, Clone)]
pub enum SqlTarget {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

/// How to open a store on a [`SqlTarget`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    tables: Option<[&'static str; 3]>,
    schema_version: Option<i64>,
    existing_tables_only: bool,
    not_upgraded: bool,
    woken_only: bool,
}

impl Options {
    /// The approvals, runs and sessions tables.
    pub fn tables(mut self, tables: [&'static str; 3]) -> Self {
        self.tables = Some(tables);
        self
    }

    /// Migrate only up to `version`, as an older build would have.
    pub fn schema_version(mut self, version: i64) -> Self {
        self.schema_version = Some(version);
        self
    }

    /// Open only tables that exist (`create_tables(false)`).
    pub fn existing_tables_only(mut self) -> Self {
        self.existing_tables_only = true;
        self
    }

    /// Open tables only as they are (`upgrade_tables(false)`).
    pub fn not_upgraded(mut self) -> Self {
        self.not_upgraded = true;
        self
    }

    /// Waiters and followers that read only once an hour when nothing wakes them: within a
    /// test, only a wake-up ends their wait.
    pub fn woken_only(mut self) -> Self {
        self.woken_only = true;
        self
    }
}

/// The wait between reads of a store opened [`woken_only`](Options::woken_only).
const AN_HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

impl SqlTarget {
    /// Whether the database announces one handle's commits to the others (Postgres), rather
    /// than leaving them to read (SQLite).
    pub fn announces(&self) -> bool {
        matches!(self, SqlTarget::Postgres { .. })
    }

    /// `None` when the backend is Postgres and no server is configured: the test is skipped.
    fn fresh(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(SqlTarget::Sqlite(std::env::temp_dir().join(format!("{}.db", unique_name())))),
            Backend::Postgres => match std::env::var(POSTGRES_URL_VAR) {
                Ok(url) => Some(SqlTarget::Postgres { url, schema: unique_name() }),
                Err(_) => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "{POSTGRES_URL_VAR} is not set under CI: the Postgres variants must run"
                    );
                    eprintln!(
                        "skipping a Postgres store test: {POSTGRES_URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
                    );
                    None
                }
            },
            Backend::Memory | Backend::SqliteMemory => unreachable!("{backend:?} is not a SQL target"),
        }
    }

    /// Opens a store on this database.
    pub async fn open(&self, options: Options) -> Result<SqlDb> {
        match self {
            SqlTarget::Sqlite(path) => {
                let mut builder = SqliteDb::builder()
                    .db_file(path)
                    .create_tables(!options.existing_tables_only)
                    .upgrade_tables(!options.not_upgraded);
                if let Some([approvals, runs, sessions]) = options.tables {
                    builder = builder.approvals_table(approvals).runs_table(runs).sessions_table(sessions);
                }
                if let Some(version) = options.schema_version {
                    builder = builder.__schema_version(version);
                }
                if options.woken_only {
                    builder = builder.__poll_every(AN_HOUR);
                }
                builder.build().await.map(SqlDb::Sqlite)
            }
            SqlTarget::Postgres { url, schema } => {
                let mut builder = PostgresDb::builder()
                    .url(url)
                    .schema(schema)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .create_tables(!options.existing_tables_only)
                    .upgrade_tables(!options.not_upgraded);
                if let Some([approvals, runs, sessions]) = options.tables {
                    builder = builder.approvals_table(approvals).runs_table(runs).sessions_table(sessions);
                }
                if let Some(version) = options.schema_version {
                    builder = builder.__schema_version(version);
                }
                if options.woken_only {
                    builder = builder.__poll_every(AN_HOUR);
                }
                builder.build().await.map(SqlDb::Postgres)
            }
        }
    }

    /// Runs one statement, `sql`, on the database itself, past any store, and returns what the
    /// database answered: `{t:name}` stands for table `name` (see [`table`](Self::table)), and
    /// `{time}` for a fixed time in the column type the database keeps times in.
    pub async fn raw(&self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        use sqlx::Connection;
        let mut sql = sql.to_owned();
        while let Some(start) = sql.find("{t:") {
            let end = start + sql[start..].find('}').expect("a closed placeholder");
            let table = self.table(&sql[start + 3..end]);
            sql.replace_range(start..=end, &table);
        }
        match self {
            SqlTarget::Sqlite(path) => {
                let sql = sql.replace("{time}", "1767225600000000");
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
                sqlx::query(&sql).execute(&mut conn).await.map(drop)
            }
            SqlTarget::Postgres { url, .. } => {
                let sql = sql.replace("{time}", "TIMESTAMPTZ '2026-01-01 00:00:00+00'");
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::query(&sql).execute(&mut conn).await.map(drop)
            }
        }
    }

    /// `table` as SQL run on this database by [`execute_raw`](Self::execute_raw) names it.
    pub fn table(&self, table: &str) -> String {
        match self {
            SqlTarget::Sqlite(_) => format!("\"{table}\""),
            SqlTarget::Postgres { schema, .. } => format!("\"{schema}\".\"{table}\""),
        }
    }

    /// Runs `sql` on this database through a connection of its own, as a program other than
    /// kern would: to leave rows kern did not write.
    pub async fn execute_raw(&self, sql: &str) {
        use sqlx::{Connection, Executor};
        match self {
            SqlTarget::Sqlite(path) => {
                let mut conn =
                    sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(path))
                        .await
                        .expect("connect to the SQLite file");
                conn.execute(sql).await.expect("run the raw SQL");
                conn.close().await.expect("close the connection");
            }
            SqlTarget::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to Postgres");
                conn.execute(sql).await.expect("run the raw SQL");
                conn.close().await.expect("close the connection");
            }
        }
    }

    /// Drops the guard `trigger` of table `table`, as only someone with the rights to change
    /// the schema can: to write what kern refuses to.
    pub async fn drop_trigger(&self, table: &str, trigger: &str) {
        let sql = match self {
            SqlTarget::Sqlite(_) => format!("DROP TRIGGER \"{trigger}\""),
            SqlTarget::Postgres { .. } => format!("DROP TRIGGER \"{trigger}\" ON {}", self.table(table)),
        };
        self.execute_raw(&sql).await;
    }

    /// Whether the SQLite file exists; `None` on Postgres.
    pub fn sqlite_file_exists(&self) -> Option<bool> {
        match self {
            SqlTarget::Sqlite(path) => Some(path.exists()),
            SqlTarget::Postgres { .. } => None,
        }
    }

    async fn remove(&self) -> Result<()> {
        match self {
            SqlTarget::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
                Ok(())
            }
            SqlTarget::Postgres { url, schema } => PostgresDb::__drop_schema(url, schema).await,
        }
    }
}

/// A store opened on a [`SqlTarget`], with the calls only database stores have.
#[derive(Debug, Clone)]
pub enum SqlDb {
    Sqlite(SqliteDb),
    Postgres(PostgresDb),
}

impl SqlDb {
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            SqlDb::Sqlite(db) => Arc::new(db.clone()),
            SqlDb::Postgres(db) => Arc::new(db.clone()),
        }
    }

    pub async fn schema_version(&self) -> i64 {
        let version = match self {
            SqlDb::Sqlite(db) => db.schema_version().await,
            SqlDb::Postgres(db) => db.schema_version().await,
        };
        version.expect("read the schema version")
    }

    pub async fn set_schema_version(&self, version: i64) {
        let done = match self {
            SqlDb::Sqlite(db) => db.__set_schema_version(version).await,
            SqlDb::Postgres(db) => db.__set_schema_version(version).await,
        };
        done.expect("set the schema version");
    }

    pub fn commit_count(&self) -> u64 {
        match self {
            SqlDb::Sqlite(db) => db.commit_count(),
            SqlDb::Postgres(db) => db.commit_count(),
        }
    }

    pub async fn close(&self) {
        match self {
            SqlDb::Sqlite(db) => db.close().await,
            SqlDb::Postgres(db) => db.close().await,
        }
    }
}

/// A name no other test, run or process uses at the same time; also a valid Postgres schema.
pub fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("kern_store_{:x}_{millis:x}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
