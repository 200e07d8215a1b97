//! Postgres' side of the [`Driver`] seam: how statements run on a connection, rows read back,
//! and the SQL in which Postgres differs.

use chrono::{DateTime, Utc};
use kern_core::{BoxFuture, Error, Result};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnection, PgRow, PgTypeInfo, PgValueFormat};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Connection, Decode, Encode, Executor, Postgres, Row, Type, TypeInfo as _, ValueRef as _};

use super::notify;
use crate::driver::{ConnectionPool, Driver, begin, commit, transaction};
use crate::lanes::{Lane, Lanes};
use crate::layout::{Ident, Layout};
use crate::stmt::{Columns, Decoder, Param, Stmt, bound, chain, corrupt, join};

/// The most values one statement binds: the protocol counts them in 16 bits.
const MAX_PARAMS: usize = 65_535;

/// Serializes first opens of the same Postgres database, so two processes starting at once do
/// not both create the tables (the bytes spell "kern_db!").
const MIGRATION_LOCK: i64 = 0x6b65_726e_5f64_6221;

/// The type `json`, built into every Postgres database under this id.
const JSON_OID: Oid = Oid(114);

/// How long a pooled connection may take to answer a ping before it is taken for dead: one
/// whose peer vanished without a reset (a failover, a NAT's dropped flow) never errs by itself
/// until the kernel gives up on it, a quarter of an hour later.
const PING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds `stmt`'s parameters in Postgres' types.
fn query<'q>(stmt: &'q Stmt<'_>) -> Query<'q, Postgres, PgArguments> {
    stmt.params.iter().fold(sqlx::query(&stmt.sql), |query, param| match param {
        Param::Text(value) => query.bind(value.as_deref()),
        Param::Int(value) => query.bind(*value),
        Param::Time(value) => query.bind(*value),
        Param::Json(value) => query.bind(value.map(JsonText)),
        Param::RawJson(value) => query.bind(value.as_ref().map(|value| JsonText(value.as_ref()))),
    })
}

/// A value bound as JSON text of type `json`, which Postgres takes as it is. sqlx binds JSON as
/// `jsonb`, which Postgres parses and refuses when text inside holds a NUL (`\u0000`).
struct JsonText<T>(T);

impl<T> Type<Postgres> for JsonText<T> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_OID)
    }
}

impl<T: Serialize> Encode<'_, Postgres> for JsonText<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        serde_json::to_writer(&mut **buf, &self.0)?;
        Ok(IsNull::No)
    }
}

impl Driver for Postgres {
    type Pool = Lanes<PgConnection>;

    const BEGIN_WRITE: &'static str = "BEGIN";

    const TIME_TYPE: &'static str = "TIMESTAMPTZ";
    const JSON_TYPE: &'static str = "JSONB";
    const VERBATIM_JSON_TYPE: &'static str = "JSON";
    /// Each statement of a `READ COMMITTED` transaction sees the latest commits.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const INT_TYPE: &'static str = "BIGINT";
    /// The "C" collation compares text by its bytes, as the other stores do.
    const KEY_TYPE: &'static str = "TEXT COLLATE \"C\"";
    const TABLE_OPTIONS: &'static str = "";
    const GREATEST: &'static str = "GREATEST";

    /// `json` keeps the text as it is (and still checks it is JSON), where `jsonb` parses it
    /// into a form that cannot hold a NUL. No query reads inside these columns, so nothing
    /// leans on `jsonb`'s operators or indexes.
    fn verbatim_json(layout: &Layout) -> Vec<String> {
        let json = |column: &str| format!("ALTER COLUMN {column} TYPE JSON");
        vec![
            format!("ALTER TABLE {} {}", layout.qualified(&layout.runs), json("state")),
            format!(
                "ALTER TABLE {} {}, {}, {}",
                layout.qualified(&layout.approvals),
                json("tool_args"),
                json("requirements"),
                json("resolution_data")
            ),
        ]
    }

    /// Takes the advisory lock of kern's migrations, then creates the schema of the tables when
    /// missing.
    fn migration_setup(layout: &Layout) -> Vec<String> {
        let lock = format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})");
        [lock].into_iter().chain(layout.schema.as_ref().map(create_schema)).collect()
    }

    /// Other sessions' inserts and updates wait; their reads go on.
    fn hold_writes(table: &str) -> Vec<String> {
        vec![format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")]
    }

    /// `CREATE TABLE IF NOT EXISTS` would demand the CREATE privilege on the schema even when
    /// the table exists: the table is looked up first.
    fn create_missing_table(table: &str, columns: &str) -> String {
        format!("DO $$ BEGIN IF to_regclass('{table}') IS NULL THEN CREATE TABLE {table} ({columns}); END IF; END $$")
    }

    /// A Postgres trigger calls a function, kept with the tables.
    fn before_insert_trigger(layout: &Layout, table: &Ident, name: &Ident, body: &str) -> Vec<String> {
        let function = layout.qualified(name);
        vec![
            format!(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
            ),
            format!(
                "CREATE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {function}()",
                name.quoted(),
                layout.qualified(table)
            ),
        ]
    }

    fn after_row_trigger(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        event: &str,
        condition: &str,
        body: &str,
    ) -> Vec<String> {
        let function = layout.qualified(name);
        vec![
            format!(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
            ),
            format!(
                "CREATE TRIGGER {} AFTER {event} ON {} FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION {function}()",
                name.quoted(),
                layout.qualified(table)
            ),
        ]
    }

    /// The session's own (its server process id, modulo 1,024): a shard's row lock is held to
    /// the commit, and sessions commit one transaction at a time, so concurrent commits wait
    /// for each other only when their process ids collide. (A random shard of 64 made half of
    /// 32 concurrent commits wait.)
    const COUNT_SHARD: &'static str = "pg_backend_pid() % 1024";

    fn announce_resolutions(layout: &Layout) -> Vec<String> {
        notify::trigger(layout)
    }

    fn announce_events(layout: &Layout) -> Vec<String> {
        notify::event_trigger(layout)
    }

    fn defer_announcements(layout: &Layout) -> Vec<String> {
        notify::deferred_triggers(layout)
    }

    fn client_announcements(layout: &Layout) -> Vec<String> {
        notify::client_triggers(layout)
    }

    const SERIAL_KEY: &'static str = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY";

    /// An identity column's sequence is an object of its own, logged once per 32 values.
    const LEAN_SERIAL_KEY: Option<&'static str> = None;

    /// Postgres compares a column with a list of constants without building anything.
    const DEFINITIONS_OF: Option<&'static str> = None;

    const FOR_UPDATE: &'static str = " FOR UPDATE";

    /// Compared as text, which every column type has (`json` has no equality).
    fn differs(column: &str) -> String {
        format!("NEW.{column}::text IS DISTINCT FROM OLD.{column}::text")
    }

    /// A function raising the message, called by a row trigger.
    fn refusing_trigger(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        event: &str,
        condition: Option<&str>,
        message: &str,
    ) -> Vec<String> {
        let function = layout.qualified(name);
        let raise = format!("RAISE EXCEPTION '{message}';");
        let body = match condition {
            Some(condition) => format!("IF {condition} THEN {raise} END IF;"),
            None => raise,
        };
        let returned = if event == "DELETE" { "OLD" } else { "NEW" };
        vec![
            format!(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN {returned}; END $$"
            ),
            format!(
                "CREATE TRIGGER {} BEFORE {event} ON {} FOR EACH ROW EXECUTE FUNCTION {function}()",
                name.quoted(),
                layout.qualified(table)
            ),
        ]
    }

    fn refusing_wholesale_removal(
        layout: &Layout,
        table: &Ident,
        name: &Ident,
        _keys: &[&[&str]],
        message: &str,
    ) -> Vec<String> {
        let function = layout.qualified(name);
        vec![
            format!(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$"
            ),
            format!(
                "CREATE TRIGGER {} BEFORE TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
                name.quoted(),
                layout.qualified(table)
            ),
        ]
    }

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
    fn write_all<'a>(
        writer: &'a Lanes<PgConnection>,
        stmts: Vec<Stmt<'a>>,
        independent: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A transaction's `BEGIN` shows whether its connection answers (see `begin`); a lone
            // statement's connection is pinged first.
            let mut conn =
                if is_transaction(&stmts, independent) { writer.acquire() } else { writer.acquire_live() }.await?;
            Self::commit_all(&mut conn, stmts, independent).await
        })
    }

    fn commit_all<'c>(
        conn: &'c mut Lane<PgConnection>,
        stmts: Vec<Stmt<'c>>,
        independent: bool,
    ) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move {
            if is_transaction(&stmts, independent) {
                return transaction::<Postgres>(conn, &stmts).await;
            }
            Self::execute(conn, &one_statement(stmts)).await.map(drop)
        })
    }

    /// One statement, `WITH changed AS (update), appended AS (insert FROM changed) SELECT *
    /// FROM changed`: the insert selects one row per changed row, so none when the update
    /// changed none.
    fn update_then_insert<'c, T: Send + 'c>(
        conn: &'c mut Lane<PgConnection>,
        update: Stmt<'c>,
        insert: Stmt<'c>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>> {
        Box::pin(async move {
            let stmt = join(update, insert, |update, insert| {
                format!("WITH changed AS ({update}), appended AS ({insert} FROM changed) SELECT * FROM changed")
            });
            Self::fetch(conn, &stmt, decode).await
        })
    }

    /// `BEGIN`, then each statement.
    fn begin_with<'c, T: Send + 'c>(
        conn: &'c mut Lane<PgConnection>,
        writes: Vec<Stmt<'c>>,
        read: Stmt<'c>,
        decode: Decoder<T>,
    ) -> BoxFuture<'c, Result<Vec<T>>> {
        Box::pin(async move {
            begin::<Postgres>(conn).await?;
            for stmt in &writes {
                Self::execute(conn, stmt).await?;
            }
            Self::fetch(conn, &read, decode).await
        })
    }

    /// The statements as one (see [`write_all`](Driver::write_all)), then `COMMIT`.
    fn commit_with<'c>(conn: &'c mut Lane<PgConnection>, stmts: Vec<Stmt<'c>>) -> BoxFuture<'c, Result<()>> {
        Box::pin(async move {
            if stmts.len() > 1 && bound(&stmts) <= MAX_PARAMS {
                Self::execute(conn, &one_statement(stmts)).await?;
            } else {
                for stmt in &stmts {
                    Self::execute(conn, stmt).await?;
                }
            }
            commit::<Postgres>(conn).await
        })
    }

    fn commit(conn: &mut Lane<PgConnection>) -> BoxFuture<'_, Result<()>> {
        Self::execute_unprepared(conn, "COMMIT")
    }

    /// The link failed, or the server ended the session (SQLSTATE class 08, connection
    /// exception; or 57P01 to 57P03: terminated by an administrator, a crash, a shutdown).
    fn connection_lost(err: &Error) -> bool {
        let Error::Database(source) = err else { return false };
        match source.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Io(_)) => true,
            Some(sqlx::Error::Database(err)) => {
                err.code().is_some_and(|code| code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&&*code))
            }
            _ => false,
        }
    }
}

impl ConnectionPool<Postgres> for Lanes<PgConnection> {
    type Conn = Lane<PgConnection>;

    fn acquire(&self) -> BoxFuture<'_, Result<Self::Conn>> {
        Box::pin(self.acquire_lane())
    }

    /// Pings each connection it takes (a round trip); one that does not answer, within
    /// [`PING_PATIENCE`], is discarded and the next taken. Past as many as the lanes hold, a
    /// fresh one has been opened, so the last error is the server's.
    fn acquire_live(&self) -> BoxFuture<'_, Result<Self::Conn>> {
        Box::pin(async move {
            let mut attempts = self.size();
            loop {
                let mut conn = self.acquire_lane().await?;
                let silent =
                    || sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer to a ping"));
                match tokio::time::timeout(PING_PATIENCE, conn.ping()).await.unwrap_or_else(|_| Err(silent())) {
                    Ok(()) => return Ok(conn),
                    Err(err) if attempts == 0 => {
                        conn.discard();
                        return Err(Error::database(err));
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "a pooled connection did not answer: taking another");
                        conn.discard();
                        attempts -= 1;
                    }
                }
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Lanes::close(self))
    }
}

/// Whether `stmts` run as a transaction, not as one statement: when they depend on each other,
/// or bind more values than one statement may.
fn is_transaction(stmts: &[Stmt<'_>], independent: bool) -> bool {
    !independent || bound(stmts) > MAX_PARAMS
}

/// Independent statements (see [`Driver::write_all`]) as one, `WITH s0 AS (..), s1 AS (..)
/// last`, atomic by itself.
fn one_statement(stmts: Vec<Stmt<'_>>) -> Stmt<'_> {
    let (mut texts, params) = chain(stmts);
    let last = texts.pop().unwrap_or_default();
    let steps: Vec<String> = texts.iter().enumerate().map(|(n, text)| format!("s{n} AS ({text})")).collect();
    if steps.is_empty() {
        return Stmt { sql: last, params };
    }
    Stmt { sql: format!("WITH {} {last}", steps.join(", ")).into(), params }
}

/// Creates the schema only when missing: `CREATE SCHEMA IF NOT EXISTS` would demand the
/// CREATE privilege on the database even when the schema exists.
fn create_schema(schema: &Ident) -> String {
    format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{name}') \
         THEN CREATE SCHEMA {quoted}; END IF; END $$",
        name = schema.as_str(),
        quoted = schema.quoted()
    )
}

/// Postgres's epoch, 2000-01-01, in microseconds from the Unix epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

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

    /// Read as the microseconds from 2000 that Postgres sends, and added up checked: sqlx's own
    /// reading panics on a time chrono cannot hold (`infinity`, a year past 262143), which a
    /// `timestamptz` column takes from any writer, and a row kern cannot read must be an error.
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        let value = self.try_get_raw(column).map_err(|e| corrupt(column, e))?;
        if value.is_null() {
            return Ok(None);
        }
        let kind = value.type_info();
        if !<DateTime<Utc> as Type<Postgres>>::compatible(&kind) {
            return Err(corrupt(column, format!("a {} column, not a time", kind.name())));
        }
        if let PgValueFormat::Text = value.format() {
            return get(self, column);
        }
        let micros = <i64 as Decode<Postgres>>::decode(value).map_err(|e| corrupt(column, e))?;
        let at = micros.checked_add(POSTGRES_EPOCH_MICROS).and_then(DateTime::from_timestamp_micros);
        at.map(Some).ok_or_else(|| corrupt(column, format!("{micros} µs from 2000 is no time kern can read")))
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        get(self, column)
    }

    fn json_text(&self, column: &str) -> Result<&str> {
        get::<Json<&RawValue>>(self, column).map(|json| json.0.get())
    }
}
