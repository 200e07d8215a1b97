//! The versioned schema: an ordered list of migrations, applied at startup in one transaction.
//!
//! A database records, per set of kern tables, the version it is at. Opening it applies the
//! migrations after that version; a version newer than this build knows is refused, since this
//! build would misread the rows.

use kern_core::approval::{ApprovalStatus, ApprovalType, PauseType, SourceType, VoteKind};
use kern_core::run::RunStatus;
use kern_core::trail::{self, EventKind};
use kern_core::{Error, Result};
use sqlx::Connection;

use crate::codec::{self, APPROVAL_COLUMNS, EVENT_INSERT_COLUMNS};
use crate::driver::{ConnectionPool, Driver, Pools};
use crate::error::OpenError;
use crate::layout::{Ident, Layout};
use crate::stmt::Stmt;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 15;

/// The first version whose triggers keep a run's session row and its approval rows'
/// `run_status` in step as the run is saved.
const DERIVED_ROWS_VERSION: i64 = 3;

/// The first version whose approvals table announces resolutions where the database can
/// (Postgres' `NOTIFY`), so that waiters in other processes wake at once; a store on older
/// tables has its waiters poll.
pub(crate) const RESOLUTION_NOTIFY_VERSION: i64 = 4;

/// The first version whose JSON columns keep the text kern writes as it is, so that text inside
/// JSON may hold any character (Postgres' `jsonb` refuses NUL). On Postgres the upgrade rewrites
/// the runs and approvals tables, holding them locked while it does.
const VERBATIM_JSON_VERSION: i64 = 5;

/// The first version with the trail (each row's hash-chained events), votes and row policies,
/// and triggers that keep the trail append-only and resolved rows as they were decided. Its
/// migration starts the chain of every row already stored.
const TRAIL_VERSION: i64 = 6;

/// The first version with API keys, which a server signs requests in with.
const API_KEYS_VERSION: i64 = 7;

/// The first version whose trail announces its new events (Postgres), and whose runs are
/// indexed for the scans of workers.
pub(crate) const EVENT_NOTIFY_VERSION: i64 = 8;

/// The first version that keeps the number of pending rows as they change, so that counting
/// them reads a few rows instead of every pending row's index entry.
const PENDING_COUNT_VERSION: i64 = 9;

/// The first version whose commits leave alone what most of them need not write: the runs'
/// index of parents holds only the runs that have one, and the trail (SQLite) has no sequence
/// table to rewrite at each event.
const LEAN_WRITES_VERSION: i64 = 10;

/// The first version whose triggers (Postgres) let a session defer its announcements: builds of
/// version 11 had their connections note what to announce and send it once each commit was
/// done, since a commit that announces holds a lock of the whole database until it is on disk
/// (see `postgres::notify`). Sessions of such builds still do; this build's stores announce
/// their commits themselves from [`CLIENT_NOTIFY_VERSION`], and one pinned at 11 in its commits.
pub(crate) const DEFERRED_NOTIFY_VERSION: i64 = 11;

/// The first version whose store connections (Postgres) have their commits announced by the
/// store itself, after them, rather than by their triggers: a commit then runs no trigger's
/// bookkeeping and no statement after it, and the announcements of concurrent commits go out
/// together, as one statement (see `postgres::announce`). Other clients, and sessions of
/// version 11, announce as before.
pub(crate) const CLIENT_NOTIFY_VERSION: i64 = 12;

/// The first version whose tables (SQLite) check an enumerated column value by value rather
/// than against a list (see [`plain_checks`]).
const PLAIN_CHECKS_VERSION: i64 = 13;

/// The first version whose rows, votes and trail refuse what removes rows without a row's
/// `DELETE` trigger firing (see [`no_wholesale_removal`]).
const NO_WHOLESALE_REMOVAL_VERSION: i64 = 14;

/// The first version whose rows refuse any change of their call or policy, pending or not (see
/// [`fixed_calls`]).
const FIXED_CALLS_VERSION: i64 = 15;

/// One step of the schema.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) statements: Vec<String>,
    /// Whether the migration starts the trail of the rows already stored.
    starts_trails: bool,
    /// The tables it rebuilds after its statements, where the database has
    /// [`Driver::DEFINITIONS_OF`].
    rebuilds: Vec<Rebuild>,
}

/// A table rebuilt from its stored definition with some of its checks rewritten, keeping its
/// rows, indexes and triggers: SQLite cannot change a table's checks in place.
#[derive(Debug)]
struct Rebuild {
    /// The table's name, as the catalog knows it.
    name: Ident,
    /// The table, and the table it is rebuilt as before taking its name, as SQL names them.
    table: String,
    rebuilt: String,
    /// Each check's text as the table was created with it, and as it is rebuilt.
    checks: Vec<(String, String)>,
}

/// What opening a store may do to the database's tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Provision {
    /// Create them where there are none.
    pub(crate) create: bool,
    /// Upgrade those an older build wrote.
    pub(crate) upgrade: bool,
}

/// Everything needed to bring one store's tables to a version, in the SQL of one database.
#[derive(Debug)]
pub(crate) struct Migrator {
    /// Run first in the transaction: takes turns with other first opens, creates what holds
    /// the tables and the version table.
    setup: Vec<String>,
    /// Reads the version of `scope` (`$1`).
    pub(crate) read_version: String,
    /// Records the version (`$2`) of `scope` (`$1`).
    pub(crate) write_version: String,
    pub(crate) scope: String,
    /// The approvals, runs and sessions tables, as SQL names them: for the error of a
    /// database that has none.
    tables: String,
    migrations: Vec<Migration>,
    /// Reads every approval row, to start its trail.
    select_rows: String,
    /// Inserts one event.
    insert_event: String,
}

impl Migrator {
    pub(crate) fn new<DB: Driver>(layout: &Layout) -> Self {
        let versions = layout.version_table();
        let mut setup = DB::migration_setup(layout);
        let columns = format!("scope TEXT PRIMARY KEY NOT NULL, version {} NOT NULL", DB::INT_TYPE);
        setup.push(DB::create_missing_table(&versions, &columns));
        Migrator {
            setup,
            read_version: format!("SELECT version FROM {versions} WHERE scope = $1"),
            write_version: format!(
                "INSERT INTO {versions} (scope, version) VALUES ($1, $2) \
                 ON CONFLICT (scope) DO UPDATE SET version = excluded.version"
            ),
            scope: layout.scope(),
            tables: [&layout.approvals, &layout.runs, &layout.sessions].map(|table| layout.qualified(table)).join(", "),
            migrations: vec![
                Migration::new(1, tables::<DB>(layout)),
                Migration::new(2, indexes(layout)),
                Migration::new(DERIVED_ROWS_VERSION, derived_rows::<DB>(layout)),
                Migration::new(RESOLUTION_NOTIFY_VERSION, DB::announce_resolutions(layout)),
                Migration::new(VERBATIM_JSON_VERSION, DB::verbatim_json(layout)),
                Migration { starts_trails: true, ..Migration::new(TRAIL_VERSION, trail::<DB>(layout)) },
                Migration::new(API_KEYS_VERSION, api_keys::<DB>(layout)),
                Migration::new(EVENT_NOTIFY_VERSION, workers::<DB>(layout)),
                Migration::new(PENDING_COUNT_VERSION, pending_count::<DB>(layout)),
                Migration::new(LEAN_WRITES_VERSION, lean_writes::<DB>(layout)),
                Migration::new(DEFERRED_NOTIFY_VERSION, DB::defer_announcements(layout)),
                Migration::new(CLIENT_NOTIFY_VERSION, DB::client_announcements(layout)),
                Migration { rebuilds: plain_checks::<DB>(layout), ..Migration::new(PLAIN_CHECKS_VERSION, Vec::new()) },
                Migration::new(NO_WHOLESALE_REMOVAL_VERSION, no_wholesale_removal::<DB>(layout)),
                Migration::new(FIXED_CALLS_VERSION, fixed_calls::<DB>(layout)),
            ],
            select_rows: format!("SELECT {APPROVAL_COLUMNS} FROM {} ORDER BY id", layout.qualified(&layout.approvals)),
            insert_event: format!(
                "INSERT INTO {} ({EVENT_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                layout.qualified(&layout.events())
            ),
        }
    }

    /// Brings the tables to `target` (at most the build's version) in one transaction. Where
    /// there are none and `provision` may not create them, or they are older and it may not
    /// upgrade them, refuses, and the transaction's rollback leaves nothing of its setup behind.
    pub(crate) async fn apply<DB: Driver>(&self, pools: &Pools<DB>, target: i64, provision: Provision) -> Result<()> {
        // Tables already at the version wanted need nothing written: read first, outside any
        // transaction, so that opening an up-to-date store takes no write lock (a command that
        // only reads waits behind no writer, and opens a file it may not write).
        let read = Stmt::new(&self.read_version).bind(self.scope.as_str());
        if pools.read(read.clone(), codec::version).await.is_ok_and(|found| found.first() == Some(&target)) {
            return Ok(());
        }
        let mut conn = pools.writer.acquire_live().await?;
        let mut tx = conn.begin_with(DB::BEGIN_WRITE).await.map_err(Error::database)?;
        for sql in &self.setup {
            DB::execute_unprepared(&mut tx, sql).await?;
        }
        let current = DB::fetch(&mut tx, &read, codec::version).await?.pop().unwrap_or(0);
        if current == 0 && !provision.create {
            return Err(self.no_tables());
        }
        let pending = self.pending(current, target)?;
        if current != 0 && !pending.is_empty() && !provision.upgrade {
            return Err(OpenError::OutOfDate { tables: self.tables.clone(), found: current, supported: target }.into());
        }
        for migration in pending {
            for sql in &migration.statements {
                DB::execute_unprepared(&mut tx, sql).await?;
            }
            if migration.starts_trails {
                let rows = DB::fetch(&mut tx, &Stmt::new(&self.select_rows), codec::approval).await?;
                for event in rows.iter().flat_map(trail::opening_events) {
                    DB::execute(&mut tx, &codec::bind_event(Stmt::new(&self.insert_event), &event)).await?;
                }
            }
            if let Some(definitions_of) = DB::DEFINITIONS_OF {
                rebuild::<DB>(&mut tx, definitions_of, &migration.rebuilds).await?;
            }
            tracing::info!(version = migration.version, scope = %self.scope, "applied kern schema migration");
        }
        let version = pending.last().map_or(current, |m| m.version);
        if version != current {
            let write = Stmt::new(&self.write_version).bind(self.scope.as_str()).bind(version);
            DB::execute(&mut tx, &write).await?;
        }
        tx.commit().await.map_err(Error::database)
    }

    /// The refusal of a database without this store's tables, where none may be created.
    pub(crate) fn no_tables(&self) -> Error {
        OpenError::NoTables { tables: self.tables.clone() }.into()
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

impl Migration {
    fn new(version: i64, statements: Vec<String>) -> Self {
        Migration { version, statements, starts_trails: false, rebuilds: Vec::new() }
    }
}

/// Rebuilds each table of `rebuilds` as its stored definition with its checks rewritten, its
/// rows copied over, then puts back the indexes and triggers that went with each. These come
/// back once every table is rebuilt: a trigger that names a table still being rebuilt (the runs'
/// names the approvals) would fail the rename that brings that table back.
async fn rebuild<DB: Driver>(conn: &mut DB::Connection, definitions_of: &str, rebuilds: &[Rebuild]) -> Result<()> {
    let mut dependents = Vec::new();
    for Rebuild { name, table, rebuilt, checks } in rebuilds {
        let unexpected = |what: &str| Error::Corrupt(format!("table {table} is not as kern created it: {what}"));
        let read = Stmt::new(definitions_of).bind(name.as_str());
        let mut definitions =
            DB::fetch(conn, &read, |row| Ok((row.text("type")?, row.text("sql")?))).await?.into_iter();
        let (_, definition) =
            definitions.next().filter(|(kind, _)| kind == "table").ok_or_else(|| unexpected("no definition"))?;
        let mut columns = definition
            .strip_prefix(&format!("CREATE TABLE {table}"))
            .ok_or_else(|| unexpected("its definition names another table"))?
            .to_owned();
        for (stored, plain) in checks {
            if !columns.contains(stored.as_str()) {
                return Err(unexpected(&format!("no `{stored}`")));
            }
            columns = columns.replace(stored.as_str(), plain);
        }
        for sql in [
            format!("CREATE TABLE {rebuilt}{columns}"),
            format!("INSERT INTO {rebuilt} SELECT * FROM {table}"),
            format!("DROP TABLE {table}"),
            format!("ALTER TABLE {rebuilt} RENAME TO {}", name.quoted()),
        ] {
            DB::execute_unprepared(conn, &sql).await?;
        }
        dependents.extend(definitions.map(|(_, sql)| sql));
    }
    for sql in &dependents {
        DB::execute_unprepared(conn, sql).await?;
    }
    Ok(())
}

/// `column TEXT NOT NULL CHECK (column IN (..every value..))`.
fn enum_column(column: &str, values: &[&str]) -> String {
    let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    format!("{column} TEXT NOT NULL CHECK ({column} IN ({}))", list.join(", "))
}

/// `column TEXT NOT NULL CHECK (column = 'a' OR column = 'b' ..)`: what [`enum_column`] checks,
/// a value at a time.
fn plain_enum_column(column: &str, values: &[&str]) -> String {
    let tests: Vec<String> = values.iter().map(|v| format!("{column} = '{v}'")).collect();
    format!("{column} TEXT NOT NULL CHECK ({})", tests.join(" OR "))
}

/// Version 14: the approval rows, their votes and their trail refuse what would remove rows
/// past the triggers that keep them append-only (see
/// [`Driver::refusing_wholesale_removal`]): `TRUNCATE` on Postgres, which fires no row's
/// trigger; on SQLite `INSERT OR REPLACE`, which deletes the row it replaces unseen, so that a
/// decided row or an event could be rewritten in place.
fn no_wholesale_removal<DB: Driver>(layout: &Layout) -> Vec<String> {
    let message = "kern: approval rows, their votes and their trail are never removed or replaced";
    let (events, votes) = (layout.events(), layout.votes());
    let tables: [(&Ident, &[&[&str]]); 3] = [
        (&layout.approvals, &[&["id"]]),
        (&events, &[&["seq"], &["approval_id", "idx"]]),
        (&votes, &[&["approval_id", "principal"]]),
    ];
    let mut statements: Vec<String> = tables
        .into_iter()
        .flat_map(|(table, keys)| {
            DB::refusing_wholesale_removal(layout, table, &table.suffixed("_no_removal"), keys, message)
        })
        .collect();
    // A pending row may change, but never its id: SQLite's `UPDATE OR REPLACE` would delete
    // the row whose id it took, unseen. (Events and votes refuse every update already.)
    let name = layout.approvals.suffixed("_keeps_id");
    let moved = DB::differs("id");
    statements.extend(DB::refusing_trigger(layout, &layout.approvals, &name, "UPDATE", Some(&moved), message));
    statements
}

/// Version 15: a row's call and policy never change, not even while it is pending. Only the
/// trail's check caught an edit of a pending row's call, and nothing an edit of what is not in
/// the created event's digest: the source's name, and `principals_only`, the one guard of the
/// trusted resolution against deciding a row that needs its principals' votes. kern writes
/// these columns only when it inserts a row.
fn fixed_calls<DB: Driver>(layout: &Layout) -> Vec<String> {
    let fixed = [
        "run_id",
        "session_id",
        "approval_type",
        "pause_type",
        "source_type",
        "source_name",
        "agent_id",
        "team_id",
        "user_id",
        "tool_name",
        "tool_args",
        "tool_call_id",
        "requirements",
        "created_at",
        "expires_at",
        "policy",
        "principals_only",
    ];
    let changes: Vec<String> = fixed.iter().map(|column| DB::differs(column)).collect();
    let message = "kern: an approval row keeps the call and the policy it was created with";
    let name = layout.approvals.suffixed("_fixed_call");
    // Fired only by a statement that sets one of them, which none of kern's does: its updates
    // pay nothing for the guard.
    let event = format!("UPDATE OF {}", fixed.join(", "));
    DB::refusing_trigger(layout, &layout.approvals, &name, &event, Some(&changes.join(" OR ")), message)
}

/// Version 13: checks of enumerated columns that cost nothing to run. SQLite checks a column
/// against a list of more than two values by building a table of the list, at every statement
/// that writes the column: each write of a run, a row or an event built one to four, about a
/// third of the database's work in an approve cycle. A test a value at a time builds nothing.
/// The runs, approvals and trail tables are rebuilt, their rows copied, in the upgrade's
/// transaction. Nothing changes where such checks cost nothing (Postgres).
fn plain_checks<DB: Driver>(layout: &Layout) -> Vec<Rebuild> {
    if DB::DEFINITIONS_OF.is_none() {
        return Vec::new();
    }
    let check = |column: &str, values: &[&str]| (enum_column(column, values), plain_enum_column(column, values));
    let rebuild = |name: &Ident, checks| Rebuild {
        name: name.clone(),
        table: layout.qualified(name),
        rebuilt: layout.qualified(&name.suffixed("_rebuilt")),
        checks,
    };
    vec![
        rebuild(&layout.runs, vec![check("status", RunStatus::TEXTS)]),
        rebuild(
            &layout.approvals,
            vec![
                check("status", ApprovalStatus::TEXTS),
                check("approval_type", ApprovalType::TEXTS),
                check("pause_type", PauseType::TEXTS),
                check("source_type", SourceType::TEXTS),
                check("run_status", RunStatus::TEXTS),
            ],
        ),
        rebuild(&layout.events(), vec![check("kind", EventKind::TEXTS)]),
    ]
}

/// Version 1: the tables.
fn tables<DB: Driver>(layout: &Layout) -> Vec<String> {
    let (time, json, key, table_options) = (DB::TIME_TYPE, DB::JSON_TYPE, DB::KEY_TYPE, DB::TABLE_OPTIONS);
    let run_status = |column: &str| enum_column(column, RunStatus::TEXTS);
    let sessions = layout.qualified(&layout.sessions);
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
            runs = layout.qualified(&layout.runs),
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
            approvals = layout.qualified(&layout.approvals),
            status = enum_column("status", ApprovalStatus::TEXTS),
            approval_type = enum_column("approval_type", ApprovalType::TEXTS),
            pause_type = enum_column("pause_type", PauseType::TEXTS),
            source_type = enum_column("source_type", SourceType::TEXTS),
            run_status = run_status("run_status"),
        ),
    ]
}

/// Version 2: indexes for the queries the product makes.
fn indexes(layout: &Layout) -> Vec<String> {
    let index = |table: &Ident, suffix: &str, columns: &str| {
        format!("CREATE INDEX {} ON {} ({columns})", table.suffixed(suffix).quoted(), layout.qualified(table))
    };
    vec![
        // The admin's inbox: pending rows newest first (and any other status filter).
        index(&layout.approvals, "_status_idx", "status, created_at DESC, id DESC"),
        // Continue and save_runs: the rows of a run.
        index(&layout.approvals, "_run_idx", "run_id"),
        // A user's pending rows (count_pending_approvals, user filters).
        index(&layout.approvals, "_user_idx", "user_id, status"),
        // session_runs: the latest runs of a session.
        index(&layout.runs, "_session_idx", "session_id, created_at"),
    ]
}

/// Version 3: a trigger keeps what a saved run implies: its session row exists (and keeps the
/// session's first ids and latest update) and its approval rows carry its status. Saves write
/// runs with `INSERT .. ON CONFLICT DO UPDATE`, which fires `BEFORE INSERT` triggers on both
/// databases even when the row exists; a claim is a plain `UPDATE` and fires nothing, so the
/// derived rows follow saves only, as in the memory store. A save is then one statement per
/// run instead of three.
fn derived_rows<DB: Driver>(layout: &Layout) -> Vec<String> {
    let session =
        ["session_id", "user_id", "agent_id", "team_id", "created_at", "updated_at"].map(|c| format!("NEW.{c}"));
    let body = format!(
        "{}; {};",
        upsert_session::<DB>(layout, session.each_ref().map(String::as_str)),
        set_run_status(layout, "NEW.run_id", "NEW.status")
    );
    DB::before_insert_trigger(layout, &layout.runs, &layout.runs.suffixed("_on_save"), &body)
}

/// Upserts the session of a run from `values`, SQL expressions for its session_id, user_id,
/// agent_id, team_id, created_at and updated_at (`NEW.column` in the trigger). A session keeps
/// the first ids it was given and its latest update. (No alias for the target table: SQLite
/// refuses one in a trigger.)
fn upsert_session<DB: Driver>(layout: &Layout, values: [&str; 6]) -> String {
    let sessions = layout.qualified(&layout.sessions);
    let greatest = DB::GREATEST;
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

/// Version 6: the trail, votes and row policies. Events and votes are never changed or deleted,
/// approval rows are never deleted, and a resolved row keeps its decision and its call: only its
/// `run_status` (kept in step with its run) and `updated_at` change.
fn trail<DB: Driver>(layout: &Layout) -> Vec<String> {
    let (time, json, key, int, table_options) =
        (DB::TIME_TYPE, DB::VERBATIM_JSON_TYPE, DB::KEY_TYPE, DB::INT_TYPE, DB::TABLE_OPTIONS);
    let approvals = layout.qualified(&layout.approvals);
    let (events, votes) = (layout.events(), layout.votes());
    // A pending row past its expiry is no longer pending: the inbox's index carries the
    // expiry, so that listing and counting pending rows still read the index alone.
    let inbox = layout.approvals.suffixed("_inbox_idx");
    let mut statements = vec![
        format!("DROP INDEX {}", layout.qualified(&layout.approvals.suffixed("_status_idx"))),
        format!("CREATE INDEX {} ON {approvals} (status, created_at DESC, id DESC, expires_at)", inbox.quoted()),
        format!("ALTER TABLE {approvals} ADD COLUMN policy {json}"),
        format!("ALTER TABLE {approvals} ADD COLUMN principals_only {int} NOT NULL DEFAULT 0"),
        events_table::<DB>(&layout.qualified(&events), DB::SERIAL_KEY),
        format!(
            "CREATE TABLE {} (
                approval_id {key} NOT NULL,
                principal TEXT NOT NULL,
                roles {json} NOT NULL,
                {kind},
                note TEXT,
                args {json},
                at {time} NOT NULL,
                PRIMARY KEY (approval_id, principal)
            ){table_options}",
            layout.qualified(&votes),
            kind = enum_column("kind", VoteKind::TEXTS),
        ),
    ];
    statements.extend(append_only::<DB>(layout, &events, "trail events"));
    statements.extend(append_only::<DB>(layout, &votes, "votes"));
    let message = "kern: approval rows are never deleted: cancel a pending row instead";
    let name = layout.approvals.suffixed("_no_delete");
    statements.extend(DB::refusing_trigger(layout, &layout.approvals, &name, "DELETE", None, message));
    let decided = [
        "status",
        "resolved_by",
        "resolved_at",
        "resolution_data",
        "run_id",
        "session_id",
        "approval_type",
        "pause_type",
        "tool_name",
        "tool_args",
        "tool_call_id",
        "requirements",
        "user_id",
        "created_at",
        "expires_at",
        "policy",
    ];
    let changes: Vec<String> = decided.iter().map(|column| DB::differs(column)).collect();
    let pending = ApprovalStatus::Pending.as_str();
    let condition = format!("OLD.status <> '{pending}' AND ({})", changes.join(" OR "));
    let message = "kern: a resolved approval row keeps its decision";
    let name = layout.approvals.suffixed("_resolved");
    statements.extend(DB::refusing_trigger(layout, &layout.approvals, &name, "UPDATE", Some(&condition), message));
    statements
}

/// The trail's table, under the qualified name `name`, keyed by `serial`.
fn events_table<DB: Driver>(name: &str, serial: &str) -> String {
    let (time, json, key, int, table_options) =
        (DB::TIME_TYPE, DB::VERBATIM_JSON_TYPE, DB::KEY_TYPE, DB::INT_TYPE, DB::TABLE_OPTIONS);
    format!(
        "CREATE TABLE {name} (
            seq {serial},
            approval_id {key} NOT NULL,
            run_id {key} NOT NULL,
            idx {int} NOT NULL,
            {kind},
            principal TEXT NOT NULL,
            at {time} NOT NULL,
            data {json} NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            UNIQUE (approval_id, idx)
        ){table_options}",
        kind = enum_column("kind", EventKind::TEXTS),
    )
}

/// The triggers that refuse to change or delete a row of `table` (holding `what`).
fn append_only<DB: Driver>(layout: &Layout, table: &Ident, what: &str) -> Vec<String> {
    let message = format!("kern: {what} are append-only");
    ["UPDATE", "DELETE"]
        .into_iter()
        .flat_map(|event| {
            let name = table.suffixed(&format!("_no_{}", event.to_lowercase()));
            DB::refusing_trigger(layout, table, &name, event, None, &message)
        })
        .collect()
}

/// Version 8: what workers and live streams need. The trail and the runs announce their changes
/// (Postgres), so that a worker or an event stream in any process wakes when something happens;
/// and the runs are indexed by status (the scans for decided and stale runs), by parent (a
/// team's members) and by time of writing (the runs a stream follows).
fn workers<DB: Driver>(layout: &Layout) -> Vec<String> {
    let index = |suffix: &str, columns: &str| {
        let runs = &layout.runs;
        format!("CREATE INDEX {} ON {} ({columns})", runs.suffixed(suffix).quoted(), layout.qualified(runs))
    };
    let mut statements = vec![
        index("_status_idx", "status, updated_at"),
        index("_parent_idx", "parent_run_id"),
        index("_updated_idx", "updated_at, run_id"),
    ];
    statements.extend(DB::announce_events(layout));
    statements
}

/// Version 9: the number of pending rows, kept in shards (rows `shard`, `n`) that sum to it:
/// a row inserted pending adds one, a row leaving `pending` takes one away (rows are never
/// deleted), each in the statement that makes the change. The rows still pending past their
/// expiry no longer count as pending; they are few (the expiry sweep decides them) and found by
/// an index of the pending rows' expiries, which the sweep also reads.
fn pending_count<DB: Driver>(layout: &Layout) -> Vec<String> {
    let (int, table_options) = (DB::INT_TYPE, DB::TABLE_OPTIONS);
    let approvals = layout.qualified(&layout.approvals);
    let counts = layout.qualified(&layout.pending_counts());
    let pending = ApprovalStatus::Pending.as_str();
    let add = |delta: i64| {
        format!(
            "INSERT INTO {counts} (shard, n) VALUES ({}, {delta}) \
             ON CONFLICT (shard) DO UPDATE SET n = {counts}.n + excluded.n;",
            DB::COUNT_SHARD
        )
    };
    // The rows are counted with writers held off until the triggers that keep the count exist:
    // a row written by an older build between the two would never be counted.
    let mut statements = DB::hold_writes(&approvals);
    statements.extend([
        format!("CREATE TABLE {counts} (shard {int} PRIMARY KEY NOT NULL, n {int} NOT NULL){table_options}"),
        format!("INSERT INTO {counts} (shard, n) SELECT 0, COUNT(*) FROM {approvals} WHERE status = '{pending}'"),
        format!(
            "CREATE INDEX {} ON {approvals} (expires_at) WHERE status = '{pending}' AND expires_at IS NOT NULL",
            layout.approvals.suffixed("_expiry_idx").quoted()
        ),
    ]);
    let table = &layout.approvals;
    statements.extend(DB::after_row_trigger(
        layout,
        table,
        &table.suffixed("_count_in"),
        "INSERT",
        &format!("NEW.status = '{pending}'"),
        &add(1),
    ));
    statements.extend(DB::after_row_trigger(
        layout,
        table,
        &table.suffixed("_count_out"),
        "UPDATE OF status",
        &format!("OLD.status = '{pending}' AND NEW.status <> '{pending}'"),
        &add(-1),
    ));
    statements
}

/// Version 10: fewer pages per commit. Most runs have no parent, so the runs' index of parents
/// keeps only those that have one (a team's members, which the scans look up by parent), and a
/// save of any other run leaves it alone; the index is rebuilt in the upgrade's transaction,
/// which holds the runs table meanwhile. Where the trail's key keeps a sequence that each
/// event's insert rewrites (SQLite's `AUTOINCREMENT`), the trail's table is rebuilt without
/// it: its rows move to a new table, which takes the old one's name and triggers. Their keys
/// stay as they were and go on growing: events are never deleted, so the largest key plus one
/// is the key the sequence would have given.
fn lean_writes<DB: Driver>(layout: &Layout) -> Vec<String> {
    let parents = layout.runs.suffixed("_parent_idx");
    let mut statements = vec![
        format!("DROP INDEX {}", layout.qualified(&parents)),
        format!(
            "CREATE INDEX {} ON {} (parent_run_id) WHERE parent_run_id IS NOT NULL",
            parents.quoted(),
            layout.qualified(&layout.runs)
        ),
    ];
    if let Some(serial) = DB::LEAN_SERIAL_KEY {
        let events = layout.events();
        let (old, new) = (layout.qualified(&events), layout.qualified(&events.suffixed("_rekeyed")));
        statements.extend([
            events_table::<DB>(&new, serial),
            format!("INSERT INTO {new} SELECT * FROM {old}"),
            format!("DROP TABLE {old}"),
            format!("ALTER TABLE {new} RENAME TO {}", events.quoted()),
        ]);
        statements.extend(append_only::<DB>(layout, &events, "trail events"));
    }
    statements
}

/// Version 7: the API keys. The trail's events need no index for the feed that follows them
/// (`events_after`): their `seq` is the key of their table.
fn api_keys<DB: Driver>(layout: &Layout) -> Vec<String> {
    let (time, json, key, table_options) = (DB::TIME_TYPE, DB::VERBATIM_JSON_TYPE, DB::KEY_TYPE, DB::TABLE_OPTIONS);
    vec![format!(
        "CREATE TABLE {} (
            id {key} PRIMARY KEY NOT NULL,
            principal TEXT NOT NULL,
            roles {json} NOT NULL,
            scopes {json} NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at {time} NOT NULL,
            revoked_at {time}
        ){table_options}",
        layout.qualified(&layout.api_keys())
    )]
}

/// Sets the `run_status` of the rows of run `run_id` to `status` (SQL expressions, as for
/// [`upsert_session`]), touching only rows that differ.
fn set_run_status(layout: &Layout, run_id: &str, status: &str) -> String {
    format!(
        "UPDATE {} SET run_status = {status} WHERE run_id = {run_id} AND run_status <> {status}",
        layout.qualified(&layout.approvals)
    )
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    use super::*;
    use crate::layout::TableNames;

    fn migrator() -> Migrator {
        Migrator::new::<Sqlite>(&Layout::new(None, &TableNames::default()).unwrap())
    }

    #[test]
    fn pending_migrations_run_from_current_to_target() {
        let migrator = migrator();
        let versions = |current, target| -> Vec<i64> {
            migrator.pending(current, target).unwrap().iter().map(|m| m.version).collect()
        };
        assert_eq!(versions(0, SCHEMA_VERSION), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(1, SCHEMA_VERSION), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(2, SCHEMA_VERSION), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(3, SCHEMA_VERSION), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(4, SCHEMA_VERSION), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(5, SCHEMA_VERSION), [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(6, SCHEMA_VERSION), [7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(7, SCHEMA_VERSION), [8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(8, SCHEMA_VERSION), [9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(9, SCHEMA_VERSION), [10, 11, 12, 13, 14, 15]);
        assert_eq!(versions(10, SCHEMA_VERSION), [11, 12, 13, 14, 15]);
        assert_eq!(versions(11, SCHEMA_VERSION), [12, 13, 14, 15]);
        assert_eq!(versions(12, SCHEMA_VERSION), [13, 14, 15]);
        assert_eq!(versions(13, SCHEMA_VERSION), [14, 15]);
        assert_eq!(versions(14, SCHEMA_VERSION), [15]);
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

        let postgres = Migrator::new::<Postgres>(&Layout::new(Some("app"), &TableNames::default()).unwrap());
        let statements = version(&postgres);
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("CREATE FUNCTION \"app\".\"kern_approvals_on_resolve\"()"));
        assert!(statements[0].contains("PERFORM pg_notify('app.kern_approvals', "), "{}", statements[0]);
        assert!(statements[1].contains("AFTER UPDATE OF status OR DELETE ON \"app\".\"kern_approvals\""));
    }

    #[test]
    fn version_11_lets_postgres_sessions_defer_their_announcements() {
        let statements = |migrator: Migrator| {
            migrator.migrations.into_iter().find(|m| m.version == DEFERRED_NOTIFY_VERSION).unwrap().statements
        };
        assert_eq!(statements(migrator()), Vec::<String>::new());

        let postgres =
            statements(Migrator::new::<Postgres>(&Layout::new(Some("app"), &TableNames::default()).unwrap()));
        assert_eq!(postgres.len(), 3);
        let replaced = [
            ("\"app\".\"kern_approvals_on_resolve\"()", "pg_notify('app.kern_approvals', "),
            ("\"app\".\"kern_approvals_events_on_insert\"()", "pg_notify('app.kern_approvals_events', '')"),
        ];
        for (statement, (function, notify)) in postgres.iter().zip(replaced) {
            assert!(statement.starts_with(&format!("CREATE OR REPLACE FUNCTION {function}")), "{statement}");
            // Both ways: notes where the transaction defers, announcements where it does not.
            assert!(statement.contains("current_setting('kern.defer_announcements', true)"), "{statement}");
            assert!(statement.contains("set_config(") && statement.contains(notify), "{statement}");
        }
        assert!(postgres[2].starts_with("CREATE FUNCTION \"app\".\"kern_approvals_announce\"() RETURNS void"));
        assert!(postgres[2].contains("pg_notify('app.kern_approvals', id)"), "{}", postgres[2]);
        assert!(postgres[2].contains("pg_notify('app.kern_approvals_events', '')"), "{}", postgres[2]);
    }

    #[test]
    fn version_12_lets_the_store_announce_its_own_commits_on_postgres() {
        let statements = |migrator: Migrator| {
            migrator.migrations.into_iter().find(|m| m.version == CLIENT_NOTIFY_VERSION).unwrap().statements
        };
        assert_eq!(statements(migrator()), Vec::<String>::new());

        let layout = Layout::new(Some("app"), &TableNames::default()).unwrap();
        let postgres = statements(Migrator::new::<Postgres>(&layout));
        let deferred = statements_of(&Migrator::new::<Postgres>(&layout), DEFERRED_NOTIFY_VERSION);
        assert_eq!(postgres.len(), 2);
        let returns =
            "BEGIN IF current_setting('kern.defer_announcements', true) = 'client' THEN RETURN NULL; END IF; ";
        for (statement, of_11) in postgres.iter().zip(&deferred) {
            // Version 11's function, which first returns in a session whose store announces.
            assert!(statement.contains(returns), "{statement}");
            assert_eq!(statement.replacen(returns, "BEGIN ", 1), *of_11);
        }
    }

    #[test]
    fn version_9_counts_the_pending_rows_with_writers_held_off_on_postgres() {
        let postgres = Migrator::new::<Postgres>(&Layout::new(Some("app"), &TableNames::default()).unwrap());
        let statements = statements_of(&postgres, PENDING_COUNT_VERSION);
        assert_eq!(statements[0], "LOCK TABLE \"app\".\"kern_approvals\" IN SHARE ROW EXCLUSIVE MODE");
        assert!(statements[2].contains("COUNT(*)"), "{}", statements[2]);
        // SQLite's write transaction shuts every other writer out already.
        assert!(statements_of(&migrator(), PENDING_COUNT_VERSION)[0].starts_with("CREATE TABLE"));
    }

    fn statements_of(migrator: &Migrator, version: i64) -> Vec<String> {
        migrator.migrations.iter().find(|m| m.version == version).unwrap().statements.clone()
    }

    #[test]
    fn version_10_indexes_parents_only_where_runs_have_one_and_rekeys_the_trail_on_sqlite_only() {
        let statements = |migrator: Migrator| {
            migrator.migrations.into_iter().find(|m| m.version == LEAN_WRITES_VERSION).unwrap().statements
        };
        let parent_index = [
            "DROP INDEX \"kern_runs_parent_idx\"",
            "CREATE INDEX \"kern_runs_parent_idx\" ON \"kern_runs\" (parent_run_id) \
             WHERE parent_run_id IS NOT NULL",
        ];
        let sqlite = statements(migrator());
        assert_eq!(sqlite[..2], parent_index);
        let (old, new) = ("\"kern_approvals_events\"", "\"kern_approvals_events_rekeyed\"");
        assert!(sqlite[2].starts_with(&format!("CREATE TABLE {new} (")), "{}", sqlite[2]);
        assert!(sqlite[2].contains("seq INTEGER PRIMARY KEY,") && !sqlite[2].contains("AUTOINCREMENT"));
        assert_eq!(
            sqlite[3..6],
            [
                format!("INSERT INTO {new} SELECT * FROM {old}"),
                format!("DROP TABLE {old}"),
                format!("ALTER TABLE {new} RENAME TO \"kern_approvals_events\""),
            ]
        );
        let triggers = &sqlite[6..];
        assert_eq!(triggers.len(), 2);
        assert!(triggers[0].contains("\"kern_approvals_events_no_update\" BEFORE UPDATE ON"), "{}", triggers[0]);
        assert!(triggers[1].contains("\"kern_approvals_events_no_delete\" BEFORE DELETE ON"), "{}", triggers[1]);

        let postgres = Migrator::new::<Postgres>(&Layout::new(Some("app"), &TableNames::default()).unwrap());
        assert_eq!(
            statements(postgres),
            [
                "DROP INDEX \"app\".\"kern_runs_parent_idx\"",
                "CREATE INDEX \"kern_runs_parent_idx\" ON \"app\".\"kern_runs\" (parent_run_id) \
             WHERE parent_run_id IS NOT NULL",
            ]
        );
    }

    #[test]
    fn only_postgres_changes_its_json_columns() {
        let statements = |migrator: Migrator| {
            migrator.migrations.into_iter().find(|m| m.version == VERBATIM_JSON_VERSION).unwrap().statements
        };
        assert_eq!(statements(migrator()), Vec::<String>::new());
        let postgres = Migrator::new::<Postgres>(&Layout::new(Some("app"), &TableNames::default()).unwrap());
        assert_eq!(
            statements(postgres),
            [
                "ALTER TABLE \"app\".\"kern_runs\" ALTER COLUMN state TYPE JSON",
                "ALTER TABLE \"app\".\"kern_approvals\" ALTER COLUMN tool_args TYPE JSON, \
                 ALTER COLUMN requirements TYPE JSON, ALTER COLUMN resolution_data TYPE JSON",
            ]
        );
    }
}
