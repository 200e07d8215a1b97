//! [`SqliteDb`]: the embedded store, one file (or memory) per database, and how it opens.
//!
//! Its parts: the builder ([`builder`]), the [`Driver`](crate::driver::Driver) side of SQLite
//! ([`driver`]); its connections are [`Lanes`].

mod builder;
mod driver;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kern_core::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Sqlite};
use tokio::time::{Instant, sleep};

use self::builder::Target;
pub use self::builder::{SqliteDbBuilder, Synchronous};
use crate::codec;
use crate::driver::{Driver, Pools};
use crate::error::OpenError;
use crate::handle::handle;
use crate::lanes::{ACQUIRE_TIMEOUT, Lanes};
use crate::layout::{Layout, VERSION_TABLE};
use crate::schema::{Migrator, Provision, SCHEMA_VERSION};
use crate::stmt::Stmt;
use crate::store::SqlStore;

/// The size the WAL file is brought back to once checkpointed: 64 MiB.
const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// How long a write waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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

handle!(SqliteDb);

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
}

impl SqliteDbBuilder {
    /// Opens the database, creating the file and the tables if missing (unless told not to
    /// [create tables](SqliteDbBuilder::create_tables)) and upgrading tables written by an
    /// older build (unless told not to [upgrade tables](SqliteDbBuilder::upgrade_tables)).
    ///
    /// Errors: [`Error::Database`] with an [`OpenError`] (a bad table name, no target, a file
    /// that cannot be opened: the message names it; no tables where none may be created, older
    /// tables where none may be upgraded),
    /// [`Error::SchemaTooNew`].
    pub async fn build(self) -> Result<SqliteDb> {
        let layout = Layout::new(None, &self.tables)?;
        let target = self.target.ok_or(OpenError::MissingTarget("db_file"))?;
        if let Target::File(path) = &target
            && !names_a_file(path)
        {
            let reason = "it names no file, and each connection would get a database of its own: give a file's \
                          path, or use `in_memory()`";
            return Err(OpenError::Sqlite { path: path.clone(), source: reason.into() }.into());
        }
        let version = self.schema_version.unwrap_or(SCHEMA_VERSION);
        let opened = async {
            let pools = match &target {
                Target::File(path) => {
                    if !self.create_tables {
                        refuse_without_tables(path, &layout).await?;
                    }
                    file_pools(path, self.synchronous, self.create_tables).await?
                }
                Target::Memory => memory_pools().await?,
            };
            let provision = Provision { create: self.create_tables, upgrade: self.upgrade_tables };
            SqlStore::open(pools, &layout, version, provision).await
        };
        // A file that opens but cannot be written fails only at the first write, creating the
        // schema: name the file in that error too.
        let store = opened.await.map_err(|err| match err {
            Error::Database(source) if !source.is::<OpenError>() => {
                OpenError::Sqlite { path: target.path().to_owned(), source }.into()
            }
            other => other,
        })?;
        #[cfg(any(test, feature = "test-support"))]
        let store = store.with_poll_every(self.poll_every);
        Ok(SqliteDb { inner: Arc::new(store) })
    }
}

async fn file_pools(path: &Path, synchronous: Synchronous, create: bool) -> Result<Pools<Sqlite>> {
    if create {
        create_private(path)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .synchronous(synchronous.into())
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        // A large transaction (a migration's rebuild) leaves the WAL file no larger than this
        // once checkpointed, rather than at its largest for as long as the file is open.
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string());
    // Never recycled: a SQLite connection is a handle on a file in this process, which nothing
    // elsewhere keeps a session for.
    let writer = Lanes::new(options.clone(), 1, ACQUIRE_TIMEOUT, None);
    // The writer first: it creates the file and switches it to WAL before readers open it.
    enable_wal(&writer).await?;
    Ok(Pools::new(Lanes::new(options, READ_CONNECTIONS, ACQUIRE_TIMEOUT, None), writer))
}

/// Whether SQLite takes `path` for a file's: not empty, `:memory:` or a `file:` URI (sqlx opens
/// every name as a URI), which would give each connection a database of its own.
fn names_a_file(path: &Path) -> bool {
    let name = path.as_os_str().to_string_lossy();
    !(name.is_empty() || name == ":memory:" || name.starts_with("file:"))
}

/// Creates the file at `path`, empty, readable and writable by its owner alone, unless it
/// exists: it holds conversations, tool arguments, decisions and key digests, and SQLite gives
/// its `-wal` and `-shm` files the mode of the database's (it would create it 0644, for every
/// local user to read).
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::database(err)),
    }
}

/// Refuses the file at `path` unless it holds `layout`'s tables, read without writing to it:
/// opening a store switches the file to WAL, a lasting change that a file refused for want of
/// tables (another program's database, say) must not get.
async fn refuse_without_tables(path: &Path, layout: &Layout) -> Result<()> {
    let mut conn =
        SqliteConnectOptions::new().filename(path).read_only(true).connect().await.map_err(Error::database)?;
    let migrator = Migrator::new::<Sqlite>(layout);
    let listed = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1";
    let versioned: i64 =
        sqlx::query_scalar(listed).bind(VERSION_TABLE).fetch_one(&mut conn).await.map_err(Error::database)?;
    let holds = versioned > 0 && {
        let read = Stmt::new(&migrator.read_version).bind(migrator.scope.as_str());
        !Sqlite::fetch(&mut conn, &read, codec::version).await?.is_empty()
    };
    // A read-only connection leaves nothing to close cleanly.
    let _ = conn.close().await;
    if holds { Ok(()) } else { Err(migrator.no_tables()) }
}

/// Switches the file to WAL (a lasting property of the file). The switch needs an exclusive
/// lock that SQLite does not wait for, so when several stores open a new file at once all but
/// one get `SQLITE_BUSY`: retry them until the busy timeout. A file in WAL mode returns at once.
/// A database that cannot be in WAL (one of each connection's own) is refused: its readers
/// would not see what its writer wrote.
async fn enable_wal(writer: &Lanes<SqliteConnection>) -> Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let mut conn = writer.acquire_lane().await?;
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL").fetch_one(&mut *conn).await {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                let reason = format!(
                    "the database cannot be shared by its connections (journal mode `{mode}`, not WAL): give a file's path, or use `in_memory()`"
                );
                return Err(Error::database(std::io::Error::other(reason)));
            }
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
    let lanes = Lanes::resident(SqliteConnectOptions::new().in_memory(true).foreign_keys(true)).await?;
    Ok(Pools::new(lanes.clone(), lanes))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use kern_core::approval::{ApprovalQuery, ApprovalStatus};
    use sqlx::{Decode, Row, Type};

    use super::*;
    use crate::layout::TableNames;
    use crate::queries::{Filter, Queries};
    use crate::stmt::Stmt;

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
        let mut conn = db.inner.pools.writer.acquire_lane().await.unwrap();
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
        let mut conn = db.inner.pools.reader.acquire_lane().await.unwrap();
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
            assert_eq!(scalar::<i64>(&db, "PRAGMA journal_size_limit").await, 64 << 20);
            db.close().await;
        }
    }

    #[tokio::test]
    async fn the_upgrade_to_version_2_adds_the_indexes() {
        let file = TempFile::new();
        let old = SqliteDb::builder().db_file(&file.0).__schema_version(1).build().await.unwrap();
        assert_eq!(index_names(&old).await, Vec::<String>::new());
        old.close().await;

        let db = SqliteDb::builder().db_file(&file.0).__schema_version(2).build().await.unwrap();
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

        let db = SqliteDb::builder().db_file(&file.0).__schema_version(3).build().await.unwrap();
        assert_eq!(trigger_names(&db).await, ["kern_runs_on_save"]);
        db.close().await;
    }

    /// A statement that writes the enumerated columns of each table that version 13 rebuilds,
    /// and how many tables SQLite builds to run it from then on: a run's save still builds one,
    /// where its trigger gathers the run's approval rows before it updates them.
    const ENUM_WRITES: [(&str, usize); 3] = [
        (
            "INSERT INTO kern_runs (run_id, session_id, status, state, created_at, updated_at) \
             VALUES ('r2', 's', 'paused', '{}', 0, 0)",
            1,
        ),
        (
            "UPDATE kern_approvals SET status = 'approved', approval_type = 'audit', pause_type = 'user_input', \
             source_type = 'team', run_status = 'completed' WHERE id = 'a'",
            0,
        ),
        (
            "INSERT INTO kern_approvals_events (approval_id, run_id, idx, kind, principal, at, data, prev_hash, hash) \
             VALUES ('a', 'r', 1, 'approved', 'p', 0, '{}', '', '')",
            0,
        ),
    ];

    /// How many tables SQLite builds to run `sql` (`OpenEphemeral` in its program).
    async fn tables_built(db: &SqliteDb, sql: &str) -> usize {
        let mut conn = db.inner.pools.reader.acquire_lane().await.unwrap();
        let program = sqlx::query(&format!("EXPLAIN {sql}")).fetch_all(&mut *conn).await.unwrap();
        program.iter().filter(|step| step.get::<String, _>("opcode") == "OpenEphemeral").count()
    }

    #[tokio::test]
    async fn the_upgrade_to_version_13_checks_enumerated_columns_without_building_tables_and_keeps_the_rest() {
        let file = TempFile::new();
        let old = SqliteDb::builder().db_file(&file.0).__schema_version(12).build().await.unwrap();
        let mut conn = old.inner.pools.writer.acquire_lane().await.unwrap();
        let columns = crate::codec::APPROVAL_INSERT_COLUMNS;
        for sql in [
            "INSERT INTO kern_runs (run_id, session_id, user_id, status, state, created_at, updated_at) \
             VALUES ('r', 's', 'u', 'paused', '{}', 1, 2)"
                .to_owned(),
            format!(
                "INSERT INTO kern_approvals ({columns}) VALUES ('a', 'r', 's', 'pending', 'required', 'confirmation', \
                 'agent', NULL, NULL, NULL, 'u', 'tool', '{{}}', 'c', '[]', NULL, NULL, NULL, 1, 1, NULL, 'paused', \
                 NULL, 0)"
            ),
            "INSERT INTO kern_approvals_events (approval_id, run_id, idx, kind, principal, at, data, prev_hash, hash) \
             VALUES ('a', 'r', 0, 'created', 'p', 1, '{}', '', 'h')"
                .to_owned(),
        ] {
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
        }
        drop(conn);
        let (indexes, triggers) = (index_names(&old).await, trigger_names(&old).await);
        for (sql, built) in ENUM_WRITES {
            assert!(tables_built(&old, sql).await > built, "{sql}");
        }
        old.close().await;

        let db = SqliteDb::builder().db_file(&file.0).__schema_version(13).build().await.unwrap();
        assert_eq!(index_names(&db).await, indexes);
        assert_eq!(trigger_names(&db).await, triggers);
        for (sql, built) in ENUM_WRITES {
            assert_eq!(tables_built(&db, sql).await, built, "{sql}");
        }
        let kept = "SELECT (SELECT COUNT(*) FROM kern_runs WHERE user_id = 'u') \
                    + (SELECT COUNT(*) FROM kern_approvals WHERE status = 'pending') \
                    + (SELECT COUNT(*) FROM kern_approvals_events WHERE hash = 'h') \
                    + (SELECT n FROM kern_approvals_pending)";
        assert_eq!(scalar::<i64>(&db, kept).await, 4);
        // The checks refuse what they refused, and the triggers still run.
        let mut conn = db.inner.pools.writer.acquire_lane().await.unwrap();
        for (refused, why) in [
            ("UPDATE kern_runs SET status = 'done' WHERE run_id = 'r'", "CHECK constraint failed: status ="),
            ("UPDATE kern_approvals SET pause_type = 'later' WHERE id = 'a'", "CHECK constraint failed: pause_type ="),
            (
                "INSERT INTO kern_approvals_events (approval_id, run_id, idx, kind, principal, at, data, prev_hash, hash) \
                 VALUES ('a', 'r', 1, 'kind', 'p', 1, '{}', 'h', 'h2')",
                "CHECK constraint failed: kind =",
            ),
            ("DELETE FROM kern_approvals WHERE id = 'a'", "approval rows are never deleted"),
        ] {
            let err = sqlx::query(refused).execute(&mut *conn).await.unwrap_err();
            assert!(err.to_string().contains(why), "{refused}: {err}");
        }
        let save = "INSERT INTO kern_runs (run_id, session_id, user_id, status, state, created_at, updated_at) \
                    VALUES ('r', 's', 'u', 'completed', '{}', 1, 3) ON CONFLICT (run_id) DO UPDATE SET status = excluded.status";
        sqlx::query(save).execute(&mut *conn).await.unwrap();
        drop(conn);
        assert_eq!(scalar::<String>(&db, "SELECT run_status FROM kern_approvals WHERE id = 'a'").await, "completed");
        db.close().await;
    }

    /// A caller that stops waiting mid-way through a batch must leave the in-memory
    /// database's one connection usable and the batch whole or absent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_batch_leaves_the_in_memory_database_usable() {
        let db = SqliteDb::in_memory().await.unwrap();
        let pools = &db.inner.pools;
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
        let queries = Queries::new::<Sqlite>(&Layout::new(None, &TableNames::default()).unwrap());
        let query = ApprovalQuery::default().status(ApprovalStatus::Pending);
        let filter = Filter::new(&query, kern_core::now()).unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", queries.list_page(&filter)))
                .bind(ApprovalStatus::Pending.as_str())
                .bind(50_i64)
                .bind(0_i64)
                .fetch_all(&mut *db.inner.pools.reader.acquire_lane().await.unwrap())
                .await
                .unwrap();
        let details: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(details.iter().any(|d| d.contains("USING COVERING INDEX kern_approvals_inbox_idx")), "{details:?}");
        assert!(!details.iter().any(|d| d.contains("TEMP B-TREE")), "{details:?}");
    }
}
