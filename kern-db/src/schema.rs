//! The versioned schema: an ordered list of migrations, applied at startup in one transaction.
//!
//! A database records, per set of kern tables, the version it is at. Opening it applies the
//! migrations after that version; a version newer than this build knows is refused, since this
//! build would misread the rows.

use kern_core::approval::{ApprovalStatus, ApprovalType, PauseType, SourceType};
use kern_core::run::RunStatus;
use kern_core::{Error, Result};

use crate::layout::{Dialect, Ident, Layout};
use crate::postgres::notify;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 4;

/// The first version whose triggers keep a run's session row and its approval rows'
/// `run_status` in step as the run is saved.
const DERIVED_ROWS_VERSION: i64 = 3;

/// The first version whose Postgres approvals table announces resolutions (`NOTIFY`), so that
/// waiters in other processes wake at once; a store on older tables has its waiters poll.
pub(crate) const RESOLUTION_NOTIFY_VERSION: i64 = 4;

/// Postgres refuses a `NOTIFY` payload of this many bytes or more.
const MAX_NOTIFY_PAYLOAD: usize = 8000;

/// Serializes first opens of the same Postgres database, so two processes starting at once do
/// not both create the tables (the bytes spell "kern_db!").
const POSTGRES_MIGRATION_LOCK: i64 = 0x6b65_726e_5f64_6221;

/// One step of the schema.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) statements: Vec<String>,
}

/// Everything needed to bring one store's tables to a version.
#[derive(Debug)]
pub(crate) struct Migrator {
    /// Run first in the transaction: takes the lock, creates the schema and the version table.
    pub(crate) setup: Vec<String>,
    /// Reads the version of `scope` (`$1`).
    pub(crate) read_version: String,
    /// Records the version (`$2`) of `scope` (`$1`).
    pub(crate) write_version: String,
    pub(crate) scope: String,
    migrations: Vec<Migration>,
}

impl Migrator {
    pub(crate) fn new(layout: &Layout) -> Self {
        let types = ColumnTypes::of(layout.dialect);
        let versions = layout.version_table();
        let mut setup = Vec::new();
        if let Some(schema) = &layout.schema {
            setup.push(format!("SELECT pg_advisory_xact_lock({POSTGRES_MIGRATION_LOCK})"));
            setup.push(create_schema(schema));
        }
        setup.push(format!(
            "CREATE TABLE IF NOT EXISTS {versions} (scope TEXT PRIMARY KEY NOT NULL, version {int} NOT NULL)",
            int = types.int
        ));
        Migrator {
            setup,
            read_version: format!("SELECT version FROM {versions} WHERE scope = $1"),
            write_version: format!(
                "INSERT INTO {versions} (scope, version) VALUES ($1, $2) \
                 ON CONFLICT (scope) DO UPDATE SET version = excluded.version"
            ),
            scope: layout.scope(),
            migrations: vec![
                Migration { version: 1, statements: tables(layout, &types) },
                Migration { version: 2, statements: indexes(layout) },
                Migration { version: DERIVED_ROWS_VERSION, statements: derived_rows(layout) },
                Migration { version: RESOLUTION_NOTIFY_VERSION, statements: resolution_notify(layout) },
            ],
        }
    }

    /// The migrations that bring a database at `current` to `target`.
    pub(crate) fn pending(&self, current: i64, target: i64) -> Result<&[Migration]> {
        if current > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
        }
        let start = self.migrations.partition_point(|m| m.version <= current);
        let end = self.migrations.partition_point(|m| m.version <= target);
        Ok(self.migrations.get(start..end).unwrap_or_default())
    }
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

/// The column types that differ between the dialects.
struct ColumnTypes {
    /// Timestamps: microseconds since the Unix epoch on SQLite, which has no time type.
    time: &'static str,
    json: &'static str,
    int: &'static str,
    /// Ids, which rows are ordered by: byte order, as in the memory store.
    key: &'static str,
    /// SQLite's STRICT makes column types binding, as they are on Postgres.
    table_options: &'static str,
}

impl ColumnTypes {
    fn of(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Sqlite => {
                ColumnTypes { time: "INTEGER", json: "TEXT", int: "INTEGER", key: "TEXT", table_options: " STRICT" }
            }
            Dialect::Postgres => ColumnTypes {
                time: "TIMESTAMPTZ",
                json: "JSONB",
                int: "BIGINT",
                key: "TEXT COLLATE \"C\"",
                table_options: "",
            },
        }
    }
}

/// `column TEXT NOT NULL CHECK (column IN (..every value..))`.
fn enum_column(column: &str, values: impl IntoIterator<Item = &'static str>) -> String {
    let list: Vec<String> = values.into_iter().map(|v| format!("'{v}'")).collect();
    format!("{column} TEXT NOT NULL CHECK ({column} IN ({}))", list.join(", "))
}

/// Version 1: the tables.
fn tables(layout: &Layout, types: &ColumnTypes) -> Vec<String> {
    let ColumnTypes { time, json, key, table_options, .. } = types;
    let run_status = |column: &str| enum_column(column, RunStatus::ALL.iter().map(|s| s.as_str()));
    let sessions = layout.table(&layout.sessions);
    vec![
        format!(
            "CREATE TABLE {sessions} (
                session_id {key} PRIMARY KEY NOT NULL,
                user_id TEXT,
                agent_id TEXT,
                team_id TEXT,
                created_at {time} NOT NULL,
                updated_at {time} NOT NULL
            ){table_options}"
        ),
        format!(
            "CREATE TABLE {runs} (
                run_id {key} PRIMARY KEY NOT NULL,
                session_id {key} NOT NULL REFERENCES {sessions} (session_id),
                parent_run_id TEXT,
                agent_id TEXT,
                team_id TEXT,
                user_id TEXT,
                {status},
                state {json} NOT NULL,
                created_at {time} NOT NULL,
                updated_at {time} NOT NULL
            ){table_options}",
            runs = layout.table(&layout.runs),
            status = run_status("status"),
        ),
        format!(
            "CREATE TABLE {approvals} (
                id {key} PRIMARY KEY NOT NULL,
                run_id {key} NOT NULL,
                session_id {key} NOT NULL,
                {status},
                {approval_type},
                {pause_type},
                {source_type},
                source_name TEXT,
                agent_id TEXT,
                team_id TEXT,
                user_id TEXT,
                tool_name TEXT NOT NULL,
                tool_args {json} NOT NULL,
                tool_call_id TEXT NOT NULL,
                requirements {json} NOT NULL,
                resolution_data {json},
                resolved_by TEXT,
                resolved_at {time},
                created_at {time} NOT NULL,
                updated_at {time} NOT NULL,
                expires_at {time},
                {run_status}
            ){table_options}",
            approvals = layout.table(&layout.approvals),
            status = enum_column("status", ApprovalStatus::ALL.iter().map(|s| s.as_str())),
            approval_type = enum_column("approval_type", ApprovalType::ALL.iter().map(|s| s.as_str())),
            pause_type = enum_column("pause_type", PauseType::ALL.iter().map(|s| s.as_str())),
            source_type = enum_column("source_type", SourceType::ALL.iter().map(|s| s.as_str())),
            run_status = run_status("run_status"),
        ),
    ]
}

/// Version 2: indexes for the queries the product makes.
fn indexes(layout: &Layout) -> Vec<String> {
    let index = |table: &Ident, suffix: &str, columns: &str| {
        format!("CREATE INDEX \"{}_{suffix}\" ON {} ({columns})", table.as_str(), layout.table(table))
    };
    vec![
        // The admin's inbox: pending rows newest first (and any other status filter).
        index(&layout.approvals, "status_idx", "status, created_at DESC, id DESC"),
        // Continue and save_runs: the rows of a run.
        index(&layout.approvals, "run_idx", "run_id"),
        // A user's pending rows (count_pending_approvals, user filters).
        index(&layout.approvals, "user_idx", "user_id, status"),
        // session_runs: the latest runs of a session.
        index(&layout.runs, "session_idx", "session_id, created_at"),
    ]
}

/// Version 3: a trigger keeps what a saved run implies: its session row exists (and keeps the
/// session's first ids and latest update) and its approval rows carry its status. Saves write
/// runs with `INSERT .. ON CONFLICT DO UPDATE`, which fires `BEFORE INSERT` triggers on both
/// databases even when the row exists; a claim is a plain `UPDATE` and fires nothing, so the
/// derived rows follow saves only, as in the memory store. A save is then one statement per
/// run instead of three.
fn derived_rows(layout: &Layout) -> Vec<String> {
    let runs = layout.table(&layout.runs);
    let name = format!("\"{}_on_save\"", layout.runs.as_str());
    let session =
        ["session_id", "user_id", "agent_id", "team_id", "created_at", "updated_at"].map(|c| format!("NEW.{c}"));
    let body = format!(
        "{}; {};",
        upsert_session(layout, session.each_ref().map(String::as_str)),
        set_run_status(layout, "NEW.run_id", "NEW.status")
    );
    match &layout.schema {
        // SQLite: a trigger has its statements inline.
        None => vec![format!("CREATE TRIGGER {name} BEFORE INSERT ON {runs} BEGIN {body} END")],
        // Postgres: a trigger calls a function, kept in the tables' schema.
        Some(schema) => {
            let function = format!("{}.{name}", schema.quoted());
            vec![
                format!(
                    "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
                ),
                format!("CREATE TRIGGER {name} BEFORE INSERT ON {runs} FOR EACH ROW EXECUTE FUNCTION {function}()"),
            ]
        }
    }
}

/// Upserts the session of a run from `values`, SQL expressions for its session_id, user_id,
/// agent_id, team_id, created_at and updated_at (`NEW.column` in the trigger). A session keeps
/// the first ids it was given and its latest update. (No alias for the target table: SQLite
/// refuses one in a trigger.)
fn upsert_session(layout: &Layout, values: [&str; 6]) -> String {
    let sessions = layout.table(&layout.sessions);
    let greatest = match layout.dialect {
        Dialect::Sqlite => "MAX",
        Dialect::Postgres => "GREATEST",
    };
    format!(
        "INSERT INTO {sessions} (session_id, user_id, agent_id, team_id, created_at, updated_at) \
         VALUES ({}) \
         ON CONFLICT (session_id) DO UPDATE SET \
         user_id = COALESCE({sessions}.user_id, excluded.user_id), \
         agent_id = COALESCE({sessions}.agent_id, excluded.agent_id), \
         team_id = COALESCE({sessions}.team_id, excluded.team_id), \
         updated_at = {greatest}({sessions}.updated_at, excluded.updated_at)",
        values.join(", ")
    )
}

/// Sets the `run_status` of the rows of run `run_id` to `status` (SQL expressions, as for
/// [`upsert_session`]), touching only rows that differ.
fn set_run_status(layout: &Layout, run_id: &str, status: &str) -> String {
    format!(
        "UPDATE {} SET run_status = {status} WHERE run_id = {run_id} AND run_status <> {status}",
        layout.table(&layout.approvals)
    )
}

/// Version 4: on Postgres, a trigger announces each row that leaves `pending` or is deleted: it
/// sends the row's id on the table's channel (see `postgres::notify`), delivered to listening
/// processes when the change commits. It fires on updates that set `status` only, so run-status
/// updates cost nothing. An id too long for a payload is sent as an empty one, which wakes every
/// waiter, rather than failing the resolution. SQLite cannot announce to other processes (they
/// poll): nothing to add.
fn resolution_notify(layout: &Layout) -> Vec<String> {
    let Some(schema) = &layout.schema else { return Vec::new() };
    let approvals = layout.table(&layout.approvals);
    let name = format!("\"{}_on_resolve\"", layout.approvals.as_str());
    let function = format!("{}.{name}", schema.quoted());
    let channel = string_literal(&notify::channel(layout));
    let pending = ApprovalStatus::Pending.as_str();
    vec![
        format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF TG_OP = 'UPDATE' THEN \
             IF OLD.status <> '{pending}' OR NEW.status = '{pending}' THEN RETURN NULL; END IF; \
             END IF; \
             PERFORM pg_notify({channel}, \
             CASE WHEN octet_length(OLD.id) < {MAX_NOTIFY_PAYLOAD} THEN OLD.id ELSE '' END); \
             RETURN NULL; END $$"
        ),
        format!(
            "CREATE TRIGGER {name} AFTER UPDATE OF status OR DELETE ON {approvals} \
             FOR EACH ROW EXECUTE FUNCTION {function}()"
        ),
    ]
}

/// `text` as an SQL string literal.
fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::TableNames;

    fn migrator() -> Migrator {
        Migrator::new(&Layout::new(Dialect::Sqlite, None, &TableNames::default()).unwrap())
    }

    #[test]
    fn pending_migrations_run_from_current_to_target() {
        let migrator = migrator();
        let versions = |current, target| -> Vec<i64> {
            migrator.pending(current, target).unwrap().iter().map(|m| m.version).collect()
        };
        assert_eq!(versions(0, SCHEMA_VERSION), [1, 2, 3, 4]);
        assert_eq!(versions(1, SCHEMA_VERSION), [2, 3, 4]);
        assert_eq!(versions(2, SCHEMA_VERSION), [3, 4]);
        assert_eq!(versions(3, SCHEMA_VERSION), [4]);
        assert_eq!(versions(0, 1), [1]);
        assert_eq!(versions(SCHEMA_VERSION, SCHEMA_VERSION), [] as [i64; 0]);
        assert_eq!(versions(2, 1), [] as [i64; 0]);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let err = migrator().pending(SCHEMA_VERSION + 1, SCHEMA_VERSION).unwrap_err();
        assert!(matches!(err, Error::SchemaTooNew { found, supported: SCHEMA_VERSION } if found == SCHEMA_VERSION + 1));
    }

    #[test]
    fn the_last_migration_is_the_schema_version() {
        assert_eq!(migrator().migrations.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn only_postgres_announces_resolutions() {
        let sqlite = migrator();
        let version = |migrator: &Migrator| {
            migrator.migrations.iter().find(|m| m.version == RESOLUTION_NOTIFY_VERSION).unwrap().statements.clone()
        };
        assert_eq!(version(&sqlite), Vec::<String>::new());

        let postgres = Migrator::new(&Layout::new(Dialect::Postgres, Some("app"), &TableNames::default()).unwrap());
        let statements = version(&postgres);
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("CREATE FUNCTION \"app\".\"kern_approvals_on_resolve\"()"));
        assert!(statements[0].contains("PERFORM pg_notify('app.kern_approvals', "), "{}", statements[0]);
        assert!(statements[1].contains("AFTER UPDATE OF status OR DELETE ON \"app\".\"kern_approvals\""));
    }

    #[test]
    fn string_literals_double_their_quotes() {
        assert_eq!(string_literal("app.kern_approvals"), "'app.kern_approvals'");
        assert_eq!(string_literal("it's"), "'it''s'");
    }
}
