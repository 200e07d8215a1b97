//! SQLite's side of the [`Driver`] seam: how statements run on a connection, rows read back,
//! and the SQL in which SQLite differs.

use chrono::{DateTime, Utc};
use kern_core::{BoxFuture, Error, Result};
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Decode, Executor, Row, Sqlite, Type};

use crate::driver::{ConnectionPool, Driver, begin, commit, transaction};
use crate::lanes::{Lane, Lanes};
use crate::layout::{Ident, Layout};
use crate::stmt::{Columns, Decoder, Param, Stmt, bound, chain, corrupt, join};

/// The most values one SQL text binds (`$n` counts through a whole script): SQLite's default
/// `SQLITE_MAX_VARIABLE_NUMBER`, which sqlx's bundled SQLite keeps.
const MAX_PARAMS: usize = 32_766;

/// Binds `stmt`'s parameters in SQLite's types: timestamps as microseconds since the epoch.
fn query<'q>(stmt: &'q Stmt<'_>) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    stmt.params.iter().fold(sqlx::query(&stmt.sql), |query, param| match param {
        Param::Text(value) => query.bind(value.as_deref()),
        Param::Int(value) => query.bind(*value),
        Param::Time(value) => query.bind(value.map(|time| time.timestamp_micros())),
        Param::Json(value) => query.bind(*value),
        Param::RawJson(value) => query.bind(value.as_ref().map(|value| value.get())),
    })
}

impl Driver for Sqlite {
    type Pool = Lanes<SqliteConnection>;

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// Microseconds since the Unix epoch: SQLite has no time type.
    const TIME_TYPE: &'static str = "INTEGER";
    const JSON_TYPE: &'static str = "TEXT";
    const VERBATIM_JSON_TYPE: &'static str = "TEXT";
    /// A write transaction holds the whole database: nobody writes while it reads.
    /// Deferred: in WAL mode its first read takes the snapshot the rest keep, while writers go on.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN";
    const INT_TYPE: &'static str = "INTEGER";
    /// SQLite compares text by its bytes unless told otherwise.
    const KEY_TYPE: &'static str = "TEXT";
    /// `STRICT` makes column types binding, as they are on Postgres.
    const TABLE_OPTIONS: &'static str = " STRICT";
    /// SQLite's `MAX` of two or more arguments is the greater of them.
    const GREATEST: &'static str = "MAX";

    /// `TEXT` keeps it as it is already.
    fn verbatim_json(_layout: &Layout) -> Vec<String> {
        Vec::new()
    }

    /// A file is created by its first connection, and SQLite locks the whole file for a
    /// transaction that writes: nothing to add.
    fn migration_setup(_layout: &Layout) -> Vec<String> {
        Vec::new()
    }

    /// A SQLite trigger has its statements inline.
    fn before_insert_trigger(layout: &Layout, table: &Ident, name: &Ident, body: &str) -> Vec<String> {
        vec![format!("CREATE TRIGGER {} BEFORE INSERT ON {} BEGIN {body} END", name.quoted(), layout.qualified(table))]
    }

    fn after_row_trigger(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        event: &str,
        condition: &str,
        body: &str,
    ) -> Vec<String> {
        vec![format!(
            "CREATE TRIGGER {} AFTER {event} ON {} FOR EACH ROW WHEN {condition} BEGIN {body} END",
            name.quoted(),
            layout.qualified(table)
        )]
    }

    /// One writer at a time: one shard.
    const COUNT_SHARD: &'static str = "0";

    /// SQLite cannot tell other processes of a write: their waiters poll the file.
    fn announce_resolutions(_layout: &Layout) -> Vec<String> {
        Vec::new()
    }

    fn hold_writes(_table: &str) -> Vec<String> {
        Vec::new()
    }

    fn announce_events(_layout: &Layout) -> Vec<String> {
        Vec::new()
    }

    fn defer_announcements(_layout: &Layout) -> Vec<String> {
        Vec::new()
    }

    fn client_announcements(_layout: &Layout) -> Vec<String> {
        Vec::new()
    }

    const SERIAL_KEY: &'static str = "INTEGER PRIMARY KEY AUTOINCREMENT";

    /// The table's `rowid`, without the sequence table `AUTOINCREMENT` rewrites at each insert
    /// (a page more per commit): the next key is one past the largest, which for an
    /// append-only table is the order of inserts.
    const LEAN_SERIAL_KEY: Option<&'static str> = Some("INTEGER PRIMARY KEY");

    /// The catalog keeps each definition's text as it was written (renames aside); the
    /// automatic indexes of keys and unique columns have none and come back with the table.
    const DEFINITIONS_OF: Option<&'static str> = Some(
        "SELECT type, sql FROM sqlite_schema WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type <> 'table', rowid",
    );

    const FOR_UPDATE: &'static str = "";

    fn differs(column: &str) -> String {
        format!("NEW.{column} IS NOT OLD.{column}")
    }

    /// `RAISE(ABORT, ..)` rolls the statement back with the message.
    fn refusing_trigger(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        event: &str,
        condition: Option<&str>,
        message: &str,
    ) -> Vec<String> {
        let when = condition.map(|condition| format!(" WHEN {condition}")).unwrap_or_default();
        vec![format!(
            "CREATE TRIGGER {} BEFORE {event} ON {}{when} BEGIN SELECT RAISE(ABORT, '{message}'); END",
            name.quoted(),
            layout.qualified(table)
        )]
    }

    fn refusing_wholesale_removal(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        keys: &[&[&str]],
        message: &str,
    ) -> Vec<String> {
        let same_key: Vec<String> = keys
            .iter()
            .map(|key| {
                let columns: Vec<String> = key.iter().map(|column| format!("{column} = NEW.{column}")).collect();
                format!("({})", columns.join(" AND "))
            })
            .collect();
        vec![format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {} WHEN EXISTS (SELECT 1 FROM {} WHERE {}) \
             BEGIN SELECT RAISE(ABORT, '{message}'); END",
            name.quoted(),
            layout.qualified(table),
            table.quoted(),
            same_key.join(" OR ")
        )]
    }

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
    /// the connection's thread, where a transaction takes one per statement and two more
    /// (`BEGIN`, `COMMIT`); a statement at a time only for scripts with more values than one
    /// text may bind. A caller that stops waiting can leave the transaction open: a script
    /// stops at its next statement. The lane is marked inside a transaction until the commit,
    /// so the connection is then closed or rolled back (see [`begin`]).
    fn write_all<'a>(
        writer: &'a Lanes<SqliteConnection>,
        stmts: Vec<Stmt<'a>>,
        independent: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Self::commit_all(&mut writer.acquire_lane().await?, stmts, independent).await })
    }

    fn commit_all<'c>(
        conn: &'c mut Lane<SqliteConnection>,
        stmts: Vec<Stmt<'c>>,
        _independent: bool,
    ) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move {
            if bound(&stmts) > MAX_PARAMS {
                return transaction::<Sqlite>(conn, &stmts).await;
            }
            let (texts, params) = chain(stmts);
            let script = Stmt { sql: format!("{}; {}; COMMIT", Self::BEGIN_WRITE, texts.join("; ")).into(), params };
            conn.set_in_transaction(true);
            Self::execute(conn, &script).await?;
            conn.set_in_transaction(false);
            Ok(())
        })
    }

    /// One script, `BEGIN IMMEDIATE; update; insert WHERE changes() = 1; COMMIT`: `changes()`
    /// counts the rows the statement before changed, its triggers' writes aside.
    fn update_then_insert<'c, T: Send + 'c>(
        conn: &'c mut Lane<SqliteConnection>,
        update: Stmt<'c>,
        insert: Stmt<'c>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>> {
        Box::pin(async move {
            let script = join(update, insert, |update, insert| {
                format!("{}; {update}; {insert} WHERE changes() = 1; COMMIT", Self::BEGIN_WRITE)
            });
            conn.set_in_transaction(true);
            let rows = Self::fetch(conn, &script, decode).await?;
            conn.set_in_transaction(false);
            Ok(rows)
        })
    }

    /// `BEGIN IMMEDIATE; ..` as one script, one hand-off to the connection's thread.
    fn begin_with<'c, T: Send + 'c>(
        conn: &'c mut Lane<SqliteConnection>,
        writes: Vec<Stmt<'c>>,
        read: Stmt<'c>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>> {
        Box::pin(async move {
            if bound(&writes) + read.params.len() > MAX_PARAMS {
                begin::<Sqlite>(conn).await?;
                for stmt in &writes {
                    Self::execute(conn, stmt).await?;
                }
                return Self::fetch(conn, &read, decode).await;
            }
            let mut stmts = writes;
            stmts.push(read);
            let (texts, params) = chain(stmts);
            let script = Stmt { sql: format!("{}; {}", Self::BEGIN_WRITE, texts.join("; ")).into(), params };
            // Marked first: the caller may stop waiting once the script is on its way.
            conn.set_in_transaction(true);
            Self::fetch(conn, &script, decode).await
        })
    }

    /// `..; COMMIT` as one script.
    fn commit_with<'c>(conn: &'c mut Lane<SqliteConnection>, stmts: Vec<Stmt<'c>>) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move {
            if stmts.is_empty() || bound(&stmts) > MAX_PARAMS {
                for stmt in &stmts {
                    Self::execute(conn, stmt).await?;
                }
                return commit::<Sqlite>(conn).await;
            }
            let (texts, params) = chain(stmts);
            let script = Stmt { sql: format!("{}; COMMIT", texts.join("; ")).into(), params };
            Self::execute(conn, &script).await?;
            conn.set_in_transaction(false);
            Ok(())
        })
    }

    fn commit(conn: &mut Lane<SqliteConnection>) -> BoxFuture<'_, Result<()>> {
        Self::execute_unprepared(conn, "COMMIT")
    }

    /// A SQLite connection is a handle on a file in this process: an error is never its loss.
    fn connection_lost(_err: &Error) -> bool {
        false
    }
}

impl ConnectionPool<Sqlite> for Lanes<SqliteConnection> {
    type Conn = Lane<SqliteConnection>;

    fn acquire(&self) -> BoxFuture<'_, Result<Self::Conn>> {
        Box::pin(self.acquire_lane())
    }

    /// Any connection: a SQLite connection is a handle on a file in this process, which no
    /// server or link can take away.
    fn acquire_live(&self) -> BoxFuture<'_, Result<Self::Conn>> {
        Box::pin(self.acquire_lane())
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Lanes::close(self))
    }
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
