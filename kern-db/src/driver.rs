//! The seam between the shared store logic and each database: what a database must provide
//! ([`Driver`]: how statements run, and the SQL that differs between databases), where its
//! connections come from ([`ConnectionPool`]) and the pools statements run on ([`Pools`]).

use std::fmt::Debug;
use std::ops::DerefMut;
#[cfg(any(test, feature = "test-support"))]
use std::sync::atomic::{AtomicU64, Ordering};

use kern_core::{BoxFuture, Error, Result};
use sqlx::Database;

use crate::lanes::Lane;
use crate::layout::{Ident, Layout};
use crate::stmt::{Decoder, Stmt};

/// A sqlx database kern can store into: the one axis along which the databases differ.
/// Implemented for SQLite and Postgres in their modules; everything above this trait (the store
/// semantics, its statements, the schema) is written once.
pub(crate) trait Driver: Database {
    /// Where the store's connections come from.
    type Pool: ConnectionPool<Self, Conn = Lane<Self::Connection>>;

    /// Opens a transaction that will write. SQLite's `BEGIN IMMEDIATE` takes the write lock at
    /// once, where the busy timeout applies; a deferred transaction that upgrades later fails
    /// with `SQLITE_BUSY` without waiting.
    const BEGIN_WRITE: &'static str;

    /// The column type of timestamps.
    const TIME_TYPE: &'static str;

    /// The column type of JSON documents in the tables of version 1 (see [`verbatim_json`](Self::verbatim_json)).
    const JSON_TYPE: &'static str;

    /// The column type of JSON documents in columns added from the version on that keeps JSON
    /// as written (see [`verbatim_json`](Self::verbatim_json)).
    const VERBATIM_JSON_TYPE: &'static str;

    /// Opens a transaction that only reads, all of its statements one snapshot of the
    /// database, taking no lock a writer would wait for.
    const BEGIN_SNAPSHOT: &'static str;

    /// The column type of 64-bit integers.
    const INT_TYPE: &'static str;

    /// The column type of ids, which rows are ordered by: byte order, as in the memory store.
    const KEY_TYPE: &'static str;

    /// What follows the column list of every `CREATE TABLE`.
    const TABLE_OPTIONS: &'static str;

    /// The SQL function giving the greater of two values.
    const GREATEST: &'static str;

    /// Makes the JSON columns keep the text kern writes as it is, where [`JSON_TYPE`](Self::JSON_TYPE)
    /// does not: text inside JSON may hold any character, and Postgres' `jsonb` refuses NUL.
    fn verbatim_json(layout: &Layout) -> Vec<String>;

    /// The statements a migration begins with, in its transaction, before it reads the version
    /// table: what makes concurrent first opens take turns, and creates what holds the tables.
    fn migration_setup(layout: &Layout) -> Vec<String>;

    /// Holds off other sessions' writes to `table` (as SQL names it) until the migration's
    /// transaction ends, where its transaction alone does not (SQLite's write transaction
    /// already shuts every other writer out).
    fn hold_writes(table: &str) -> Vec<String>;

    /// Creates table `table` (as SQL names it) with `columns` unless it exists, asking for no
    /// privilege when it does: a store whose tables exist opens with the rights to read and
    /// write them only.
    fn create_missing_table(table: &str, columns: &str) -> String {
        format!("CREATE TABLE IF NOT EXISTS {table} ({columns})")
    }

    /// Creates trigger `name`, which runs `body` (statements, each ending in `;`) before each
    /// insert into `table`, where `NEW` is the row inserted.
    fn before_insert_trigger(layout: &Layout, table: &Ident, name: &Ident, body: &str) -> Vec<String>;

    /// Creates trigger `name`, which runs `body` (statements, each ending in `;`) after each
    /// `event` (`INSERT`, `UPDATE OF column`) on `table` for which `condition` (SQL over `NEW`,
    /// and `OLD` for an update) holds.
    fn after_row_trigger(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        event: &str,
        condition: &str,
        body: &str,
    ) -> Vec<String>;

    /// The shard of the pending count a row's change is added to (see `schema::pending_count`):
    /// one row where one writer at a time writes, one per session where many do, so that
    /// concurrent commits do not wait for each other's shard.
    const COUNT_SHARD: &'static str;

    /// Makes the approvals table announce to every process each row that leaves `pending` or
    /// is deleted, where the database can (see `wake`); nothing where it cannot.
    fn announce_resolutions(layout: &Layout) -> Vec<String>;

    /// Creates what announces each new event of `layout`'s trail to other processes, if the
    /// database can (see `postgres::notify`).
    fn announce_events(layout: &Layout) -> Vec<String>;

    /// Makes what [`announce_resolutions`](Self::announce_resolutions) and
    /// [`announce_events`](Self::announce_events) created note what to announce instead, for
    /// the writer to announce once its commit is done (see `postgres::notify`); nothing where
    /// the database announces nothing.
    fn defer_announcements(layout: &Layout) -> Vec<String>;

    /// Makes what [`announce_resolutions`](Self::announce_resolutions) and
    /// [`announce_events`](Self::announce_events) created do nothing for the store's own
    /// connections, whose commits the store announces itself (see `postgres::notify`); nothing
    /// where the database announces nothing.
    fn client_announcements(layout: &Layout) -> Vec<String>;

    /// The column definition of an integer key the database numbers itself, in insert order,
    /// as schema 6 created the trail's table with it.
    const SERIAL_KEY: &'static str;

    /// The key schema 10 rebuilds that table with, where [`SERIAL_KEY`](Self::SERIAL_KEY)
    /// keeps a sequence that every insert rewrites (SQLite's `AUTOINCREMENT`); `None` where it
    /// does not.
    const LEAN_SERIAL_KEY: Option<&'static str>;

    /// Reads the stored definitions (`type`, `sql`) of table `$1` and of its indexes and
    /// triggers, the table's first, where schema 13 rebuilds the tables whose checks compare a
    /// column with a list of values (see `schema::plain_checks`): SQLite builds a table of the
    /// list at every statement that writes the column. `None` where such a check costs nothing.
    const DEFINITIONS_OF: Option<&'static str>;

    /// What ends a `SELECT` that locks the rows it reads until the transaction ends (on
    /// SQLite nothing: a write transaction holds the whole database).
    const FOR_UPDATE: &'static str;

    /// A trigger condition true when `column` of the row changes in an `UPDATE` (`NULL`s
    /// compare as values).
    fn differs(column: &str) -> String;

    /// Creates trigger `name`, which refuses each `event` (`UPDATE` or `DELETE`) on `table` for
    /// which `condition` (SQL over `OLD` and `NEW`) holds, or every one without a condition,
    /// with `message`.
    fn refusing_trigger(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        event: &str,
        condition: Option<&str>,
        message: &str,
    ) -> Vec<String>;

    /// Creates trigger `name`, which refuses with `message` what removes rows of `table`
    /// without firing a row's `DELETE` trigger: `TRUNCATE` on Postgres; on SQLite
    /// `INSERT OR REPLACE`, which deletes the row it replaces unseen, refused as any insert of a
    /// row that has a stored row's value of one of its `keys` (each the columns of a primary
    /// key or a unique constraint).
    fn refusing_wholesale_removal(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        keys: &[&[&str]],
        message: &str,
    ) -> Vec<String>;

    /// Runs `stmt` and decodes every row it returns.
    fn fetch<'c, T: Send + 'c>(
        conn: &'c mut Self::Connection,
        stmt: &'c Stmt<'_>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>>;

    /// Runs `stmt`; returns how many rows it changed.
    fn execute<'c>(conn: &'c mut Self::Connection, stmt: &'c Stmt<'_>) -> BoxFuture<'c, Result<u64>>;

    /// Runs a statement without parameters and without preparing it: DDL, locks.
    fn execute_unprepared<'c>(conn: &'c mut Self::Connection, sql: &'c str) -> BoxFuture<'c, Result<()>>;

    /// Runs `stmts` (two or more) as one transaction on `writer`, all of them or, on any
    /// error, none, in as few calls to the database as it allows. `independent` promises that
    /// no statement reads what another writes and that no two write the same row (what their
    /// triggers write aside: triggers run commands of their own, which see each other), so
    /// they may run as parts of one statement, which sees one snapshot.
    fn write_all<'a>(writer: &'a Self::Pool, stmts: Vec<Stmt<'a>>, independent: bool) -> BoxFuture<'a, Result<()>>;

    /// [`write_all`](Self::write_all) on `conn`, a writer's connection that has just answered
    /// (see [`Pools::read_on_writer`]), for statements (one or more) that a read made on it
    /// prepared.
    fn commit_all<'c>(
        conn: &'c mut Lane<Self::Connection>,
        stmts: Vec<Stmt<'c>>,
        independent: bool,
    ) -> BoxFuture<'c, Result<()>>;

    /// Runs `update`, a compare-and-set with `RETURNING`, and `insert`, an `INSERT .. SELECT`
    /// without `FROM` that takes place only when the update changed a row, atomically (both or
    /// neither) in one call to the database on `conn`, a writer's connection that has just
    /// answered (see [`Pools::read_on_writer`]); returns the update's rows decoded.
    fn update_then_insert<'c, T: Send + 'c>(
        conn: &'c mut Lane<Self::Connection>,
        update: Stmt<'c>,
        insert: Stmt<'c>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>>;

    /// Begins a write transaction on `conn` (see [`begin`]) with the `writes` (which return no
    /// rows), then `read`, and decodes the rows it reads: in one call where the database takes
    /// several statements in one text (SQLite).
    fn begin_with<'c, T: Send + 'c>(
        conn: &'c mut Lane<Self::Connection>,
        writes: Vec<Stmt<'c>>,
        read: Stmt<'c>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>>;

    /// Commits the transaction [`begin`] began on `conn`.
    fn commit(conn: &mut Lane<Self::Connection>) -> BoxFuture<'_, Result<()>>;

    /// Runs `stmts`, which promise what [`write_all`](Self::write_all)'s `independent` does,
    /// and commits the transaction [`begin`] or [`begin_with`](Self::begin_with) began, in as
    /// few calls as the database allows.
    fn commit_with<'c>(conn: &'c mut Lane<Self::Connection>, stmts: Vec<Stmt<'c>>) -> BoxFuture<'c, Result<()>>;

    /// True when `err` says the connection a statement ran on is gone (the server ended it, or
    /// the link broke): the statement may have run or not, and another connection may succeed.
    fn connection_lost(err: &Error) -> bool;
}

/// Connections of one database, lent out one at a time.
pub(crate) trait ConnectionPool<DB: Database>: Debug + Send + Sync {
    /// A lent connection; it goes back to the pool when dropped.
    type Conn: DerefMut<Target = DB::Connection> + Send;

    /// A connection, waiting while all are lent out.
    fn acquire(&self) -> BoxFuture<'_, Result<Self::Conn>>;

    /// A connection that has just answered: one that does not is closed and another taken. For
    /// writes, which cannot simply run again when their connection fails, since they may have
    /// committed.
    fn acquire_live(&self) -> BoxFuture<'_, Result<Self::Conn>>;

    /// Closes the connections; later calls to `acquire` fail.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Begins a write transaction on `conn`, for work that reads before it writes (a decision, a
/// cancellation, the expiry sweep), with a plain [`BEGIN_WRITE`](Driver::BEGIN_WRITE) that sqlx
/// does not track: one round trip, where a sqlx transaction takes two on SQLite (it checks that
/// the transaction began) and on Postgres needed a ping first. A Postgres connection found dead
/// at `BEGIN`, which then began nothing, is replaced and the `BEGIN` sent again: a write that
/// begins so needs no ping. If the caller stops waiting before [`commit`] or [`roll_back`], the
/// connection is closed, which rolls the transaction back (SQLite's in-memory connection,
/// which cannot be, is rolled back before it is lent again).
pub(crate) async fn begin<DB: Driver>(conn: &mut Lane<DB::Connection>) -> Result<()> {
    open::<DB>(conn, DB::BEGIN_WRITE).await
}

/// Opens a transaction that reads one snapshot ([`BEGIN_SNAPSHOT`](Driver::BEGIN_SNAPSHOT)) on
/// `conn`, as [`begin`] opens one that writes.
pub(crate) async fn begin_snapshot<DB: Driver>(conn: &mut Lane<DB::Connection>) -> Result<()> {
    open::<DB>(conn, DB::BEGIN_SNAPSHOT).await
}

/// Opens a transaction on `conn` with `begin`, once more on a fresh connection when the lent one
/// is found dead.
async fn open<DB: Driver>(conn: &mut Lane<DB::Connection>, begin: &str) -> Result<()> {
    // Marked first: a caller may stop waiting once the `BEGIN` is on its way.
    conn.set_in_transaction(true);
    let begun = match DB::execute_unprepared(conn, begin).await {
        Err(err) if DB::connection_lost(&err) => {
            tracing::debug!(error = %err, "a lent connection did not answer its BEGIN: taking another");
            conn.reconnect().await?;
            DB::execute_unprepared(conn, begin).await
        }
        begun => begun,
    };
    // A `BEGIN` that failed began nothing.
    conn.set_in_transaction(begun.is_ok());
    begun
}

/// Commits the transaction [`begin`] began (see [`Driver::commit`]).
pub(crate) async fn commit<DB: Driver>(conn: &mut Lane<DB::Connection>) -> Result<()> {
    DB::commit(conn).await?;
    conn.set_in_transaction(false);
    Ok(())
}

/// Rolls back the transaction [`begin`] began.
pub(crate) async fn roll_back<DB: Driver>(conn: &mut Lane<DB::Connection>) -> Result<()> {
    DB::execute_unprepared(conn, "ROLLBACK").await?;
    conn.set_in_transaction(false);
    Ok(())
}

/// Runs `stmts` in one transaction on `conn` (see [`begin`]), a call to the database each: all
/// of them or, on any error, none.
pub(crate) async fn transaction<DB: Driver>(conn: &mut Lane<DB::Connection>, stmts: &[Stmt<'_>]) -> Result<()> {
    begin::<DB>(conn).await?;
    for stmt in stmts {
        DB::execute(conn, stmt).await?;
    }
    commit::<DB>(conn).await
}

/// Where statements run. Writes go to `writer`, reads to `reader`: on SQLite the writer is a
/// single connection, so writers queue in the pool instead of failing on the database lock,
/// while readers proceed in parallel (WAL). On Postgres both are the same pool.
#[derive(Debug)]
pub(crate) struct Pools<DB: Driver> {
    pub(crate) reader: DB::Pool,
    pub(crate) writer: DB::Pool,
    /// Write transactions committed, a lone write statement counting as one: what a cycle
    /// costs in durable commits (see `commit_count`).
    #[cfg(any(test, feature = "test-support"))]
    commits: AtomicU64,
}

impl<DB: Driver> Pools<DB> {
    pub(crate) fn new(reader: DB::Pool, writer: DB::Pool) -> Self {
        Pools {
            reader,
            writer,
            #[cfg(any(test, feature = "test-support"))]
            commits: AtomicU64::new(0),
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Passes the outcome of a committed write through, counting it when commits are counted.
    pub(crate) fn committed<T>(&self, value: T) -> T {
        #[cfg(any(test, feature = "test-support"))]
        self.commits.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// Runs a reading statement. One whose connection turns out to be gone (a server restart
    /// or a killed session leaves dead connections in the pool) runs again on one that answers:
    /// a read changes nothing, so the caller need not see the failure.
    pub(crate) async fn read<T: Send>(&self, stmt: Stmt<'_>, decode: Decoder<T>) -> Result<Vec<T>> {
        let mut conn = self.reader.acquire().await?;
        match DB::fetch(&mut conn, &stmt, decode).await {
            Err(err) if DB::connection_lost(&err) => {
                tracing::debug!(error = %err, "a read lost its connection: running it on another");
                conn.discard();
                drop(conn);
                DB::fetch(&mut *self.reader.acquire_live().await?, &stmt, decode).await
            }
            read => read,
        }
    }

    /// Runs a reading statement on a writer's connection, for the write it prepares to follow
    /// on the same connection: the read shows that the connection answers, as the ping that
    /// lends a writer's connection does (see [`ConnectionPool::acquire_live`]), and does work
    /// besides. A read changes nothing: one whose connection turns out to be gone runs again on
    /// one that answers.
    pub(crate) async fn read_on_writer<T: Send>(
        &self,
        stmt: &Stmt<'_>,
        decode: Decoder<T>,
    ) -> Result<(Lane<DB::Connection>, Vec<T>)> {
        let mut conn = self.writer.acquire().await?;
        match DB::fetch(&mut conn, stmt, decode).await {
            Err(err) if DB::connection_lost(&err) => {
                tracing::debug!(error = %err, "a writer's read lost its connection: running it on another");
                conn.discard();
                drop(conn);
                let mut conn = self.writer.acquire_live().await?;
                let rows = DB::fetch(&mut conn, stmt, decode).await?;
                Ok((conn, rows))
            }
            read => Ok((conn, read?)),
        }
    }

    /// One writing statement whose `RETURNING` rows are decoded.
    pub(crate) async fn write<T: Send>(&self, stmt: Stmt<'_>, decode: Decoder<T>) -> Result<Vec<T>> {
        let mut conn = self.writer.acquire_live().await?;
        DB::fetch(&mut conn, &stmt, decode).await.map(|rows| self.committed(rows))
    }

    pub(crate) async fn execute(&self, stmt: Stmt<'_>) -> Result<u64> {
        let mut conn = self.writer.acquire_live().await?;
        DB::execute(&mut conn, &stmt).await.map(|changed| self.committed(changed))
    }

    /// Runs `stmts` as one transaction (see [`Driver::write_all`]). A lone statement is atomic
    /// by itself and commits without `BEGIN` and `COMMIT`: two calls to the database fewer.
    pub(crate) async fn write_all(&self, mut stmts: Vec<Stmt<'_>>, independent: bool) -> Result<()> {
        match stmts.len() {
            0 => Ok(()),
            1 => self.execute(stmts.remove(0)).await.map(drop),
            _ => DB::write_all(&self.writer, stmts, independent).await.map(|done| self.committed(done)),
        }
    }

    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
