//! The databases themselves: schema creation, re-opening, upgrades, table names, and the
//! errors of a store that cannot open.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kern::Error;
use kern::approval::{ApprovalQuery, ApprovalStatus, ApprovalUpdate};
use kern::db::{OpenError, PostgresDb, SCHEMA_VERSION, SqliteDb, Store};
use kern::keys::{ApiKey, Scope};
use kern::run::RunStatus;
use kern::trail::EventKind;

use crate::fixtures::{approval, create, ids, run, stored};
use crate::harness::{Options, SqlTarget, unique_name};

pub async fn an_empty_database_gets_the_current_schema(target: SqlTarget) {
    assert_ne!(target.sqlite_file_exists(), Some(true));
    let db = target.open(Options::default()).await.unwrap();
    assert_ne!(target.sqlite_file_exists(), Some(false));
    assert_eq!(db.schema_version().await, SCHEMA_VERSION);
    // It holds conversations and decisions: its owner's alone, its WAL file too.
    #[cfg(unix)]
    if let SqlTarget::Sqlite(path) = &target {
        use std::os::unix::fs::PermissionsExt;
        for file in [path.clone(), PathBuf::from(format!("{}-wal", path.display()))] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
        }
    }

    let store = db.store();
    let paused = run("session-1");
    let row = approval(&paused.run_id);
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();
    assert_eq!(stored(&*store, &row.id).await, row);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap(), Some(paused));
    db.close().await;
}

pub async fn concurrent_first_opens_all_succeed(target: SqlTarget) {
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { target.open(Options::default()).await })
        })
        .collect();
    let mut dbs = Vec::new();
    for open in opens {
        dbs.push(open.await.unwrap().expect("every concurrent first open succeeds"));
    }
    let row = approval("run-1");
    create(&*dbs[0].store(), &row).await;
    for db in &dbs {
        assert_eq!(db.schema_version().await, SCHEMA_VERSION);
        assert_eq!(stored(&*db.store(), &row.id).await, row);
        db.close().await;
    }
}

pub async fn reopening_keeps_the_rows(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let paused = run("session-1");
    let row = approval(&paused.run_id);
    db.store().save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();
    db.close().await;

    let db = target.open(Options::default()).await.unwrap();
    assert_eq!(db.schema_version().await, SCHEMA_VERSION);
    let store = db.store();
    assert_eq!(stored(&*store, &row.id).await, row);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap(), Some(paused));
    db.close().await;
}

pub async fn an_older_schema_is_upgraded_keeping_its_rows_and_starting_their_trails(target: SqlTarget) {
    // The last version without the trail.
    let previous = 5;
    let old = target.open(Options::default().schema_version(previous)).await.unwrap();
    assert_eq!(old.schema_version().await, previous);
    old.close().await;
    // Rows as that version's builds wrote them: one pending, one approved.
    let columns = "id, run_id, session_id, status, approval_type, pause_type, source_type, tool_name, tool_args, \
                   tool_call_id, requirements, resolved_by, created_at, updated_at, run_status";
    target
        .raw(&format!(
            "INSERT INTO {{t:kern_approvals}} ({columns}) VALUES \
             ('old-1', 'run-old', 'session-old', 'pending', 'required', 'confirmation', 'agent', 'delete_user_data', \
              '{{\"user_id\": \"42\"}}', 'call-1', '[]', NULL, {{time}}, {{time}}, 'paused'), \
             ('old-2', 'run-old', 'session-old', 'approved', 'required', 'confirmation', 'agent', 'delete_user_data', \
              '{{\"user_id\": \"43\"}}', 'call-2', '[]', 'admin', {{time}}, {{time}}, 'paused')"
        ))
        .await
        .unwrap();

    let db = target.open(Options::default()).await.unwrap();
    assert_eq!(db.schema_version().await, SCHEMA_VERSION);
    let store = db.store();
    let (pending, approved) = (stored(&*store, "old-1").await, stored(&*store, "old-2").await);
    assert_eq!((pending.status, approved.status), (ApprovalStatus::Pending, ApprovalStatus::Approved));
    assert_eq!(pending.policy, None);
    let kinds = |events: Vec<kern::trail::TrailEvent>| events.into_iter().map(|event| event.kind).collect::<Vec<_>>();
    assert_eq!(kinds(store.trail("old-1").await.unwrap()), [EventKind::Created]);
    assert_eq!(kinds(store.trail("old-2").await.unwrap()), [EventKind::Created, EventKind::Approved]);
    assert!(store.verify_trail().await.unwrap().is_intact());

    // The upgraded rows go on as any other.
    store.update_approval("old-1", ApprovalUpdate::reject("admin")).await.unwrap();
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 0);
    assert_eq!(kinds(store.trail("old-1").await.unwrap()), [EventKind::Created, EventKind::Rejected]);
    let paused = run("session-2");
    let row = approval(&paused.run_id);
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();
    assert_eq!(stored(&*store, &row.id).await, row);
    assert!(store.verify_trail().await.unwrap().is_intact());
    db.close().await;
}

pub async fn each_write_is_one_commit_and_reads_none(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let paused = run("session-1");
    let rows = [approval(&paused.run_id), approval(&paused.run_id)];
    let commits = |expected: u64, start: u64, step: &str| assert_eq!(db.commit_count() - start, expected, "{step}");

    let start = db.commit_count();
    store.save_runs(std::slice::from_ref(&paused), &rows, &[]).await.unwrap();
    commits(1, start, "a pause: the run, its session and two rows");
    store.list_approvals(&ApprovalQuery::default()).await.unwrap();
    store.load_run(&paused.run_id).await.unwrap();
    store.count_pending_approvals(None).await.unwrap();
    commits(1, start, "reads");
    store.update_approval(&rows[0].id, ApprovalUpdate::approve("admin")).await.unwrap();
    commits(2, start, "a resolution");
    let mut claimed = store.claim_run(&paused.run_id).await.unwrap();
    commits(3, start, "a claim");
    claimed.status = RunStatus::Completed;
    store.save_runs(std::slice::from_ref(&claimed), &[], &[]).await.unwrap();
    commits(4, start, "a finished run");
    let (team, member) = (run("session-2"), run("session-2"));
    store.save_runs(&[team, member.clone()], &[approval(&member.run_id)], &[]).await.unwrap();
    commits(5, start, "a team's pause: two runs and a row");
    let key = ApiKey::issue("admin", Vec::new(), vec![Scope::Admin]).key;
    store.save_api_key(&key).await.unwrap();
    commits(6, start, "an API key");
    store.revoke_api_key(&key.id).await.unwrap();
    commits(7, start, "a revocation");
    store.api_key(&key.id).await.unwrap();
    store.api_keys().await.unwrap();
    store.events_after(0, 100).await.unwrap();
    commits(7, start, "reads of keys and events");
    db.close().await;
}

pub async fn a_newer_schema_is_refused(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    db.set_schema_version(SCHEMA_VERSION + 1).await;
    db.close().await;

    let err = target.open(Options::default()).await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
}

pub async fn stores_with_different_table_names_do_not_share_rows(target: SqlTarget) {
    let first =
        target.open(Options::default().tables(["first_approvals", "first_runs", "first_sessions"])).await.unwrap();
    let second = target.open(Options::default().tables(["Second", "second_runs", "second_sessions"])).await.unwrap();
    let (a, b) = (first.store(), second.store());
    let paused = run("session-1");
    let row_a = approval(&paused.run_id);
    let row_b = approval("run-b");
    a.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row_a), &[]).await.unwrap();
    create(&*b, &row_b).await;

    assert_eq!(ids(&a.list_approvals(&ApprovalQuery::default()).await.unwrap().items), [row_a.id.as_str()]);
    assert_eq!(ids(&b.list_approvals(&ApprovalQuery::default()).await.unwrap().items), [row_b.id.as_str()]);
    assert_eq!(b.get_approval(&row_a.id).await.unwrap(), None);
    assert_eq!(b.load_run(&paused.run_id).await.unwrap(), None);
    assert_eq!(a.count_pending_approvals(None).await.unwrap(), 1);
    assert_eq!(second.schema_version().await, SCHEMA_VERSION);

    // A store with the default names has tables of its own, still empty.
    let default = target.open(Options::default()).await.unwrap();
    assert_eq!(default.store().list_approvals(&ApprovalQuery::default()).await.unwrap().total, 0);
    for db in [first, second, default] {
        db.close().await;
    }
}

/// Asserts that `opened` failed for want of tables, naming the approvals table it looked for.
fn assert_no_tables<T: std::fmt::Debug>(opened: Result<T, Error>, approvals: &str) {
    let err = opened.unwrap_err();
    let Error::Database(source) = &err else { panic!("{err:?}") };
    assert!(
        matches!(source.downcast_ref(), Some(OpenError::NoTables { tables }) if tables.contains(approvals)),
        "{err:?}"
    );
}

pub async fn a_store_that_may_not_create_tables_opens_only_tables_that_exist(target: SqlTarget) {
    let existing = || Options::default().existing_tables_only();
    match &target {
        SqlTarget::Sqlite(path) => {
            // No file is no database: refused as a file that cannot be opened, and not created.
            let err = target.open(existing()).await.unwrap_err();
            let Error::Database(source) = &err else { panic!("{err:?}") };
            assert!(matches!(source.downcast_ref(), Some(OpenError::Sqlite { path: p, .. }) if p == path), "{err:?}");
            assert!(!path.exists(), "no SQLite file is created");
            // An empty file is a database without tables.
            std::fs::File::create(path).unwrap();
        }
        SqlTarget::Postgres { .. } => {}
    }
    // Twice: had the first refusal created anything, the second would open it.
    for _ in 0..2 {
        assert_no_tables(target.open(existing()).await, "kern_approvals");
    }
    match &target {
        SqlTarget::Sqlite(path) => {
            // Not even switched to WAL: the file is as it was.
            assert_eq!(std::fs::metadata(path).unwrap().len(), 0, "the refused file is untouched");
            assert!(!Path::new(&format!("{}-wal", path.display())).exists());
        }
        SqlTarget::Postgres { .. } => {
            let probe = target.raw("CREATE TABLE {t:probe} (x INTEGER)").await;
            assert!(probe.is_err(), "the Postgres schema was not created");
        }
    }

    // Tables an older build wrote are left as they are by a store told not to upgrade them,
    // which refuses them; upgraded otherwise, and then open as they are.
    target.open(Options::default().schema_version(5)).await.unwrap().close().await;
    for _ in 0..2 {
        let err = target.open(existing().not_upgraded()).await.unwrap_err();
        let Error::Database(source) = &err else { panic!("{err:?}") };
        let refused = matches!(source.downcast_ref(), Some(OpenError::OutOfDate { found: 5, supported, .. }) if *supported == SCHEMA_VERSION);
        assert!(refused, "{err:?}");
    }
    let db = target.open(existing()).await.unwrap();
    assert_eq!(db.schema_version().await, SCHEMA_VERSION);
    let row = approval("run-1");
    create(&*db.store(), &row).await;
    db.close().await;
    let db = target.open(existing().not_upgraded()).await.unwrap();
    assert_eq!(stored(&*db.store(), &row.id).await, row);
    db.close().await;

    // Other names in the same database are not the tables it holds.
    let other = existing().tables(["other_approvals", "kern_runs", "kern_sessions"]);
    assert_no_tables(target.open(other).await, "other_approvals");
}

pub async fn a_bad_table_name_is_refused(target: SqlTarget) {
    for tables in [
        ["kern_approvals; DROP TABLE kern_runs", "runs", "sessions"],
        ["approvals", "runs\"", "sessions"],
        ["approvals", "runs", ""],
    ] {
        let err = target.open(Options::default().tables(tables)).await.unwrap_err();
        let Error::Database(source) = &err else { panic!("{err:?}") };
        let bad = tables.iter().find(|name| name.contains([';', '"']) || name.is_empty()).unwrap();
        assert!(matches!(source.downcast_ref(), Some(OpenError::InvalidName(name)) if name == bad), "{err:?}");
    }
}

/// Asserts that opening `path` fails with an error that names it.
async fn assert_open_fails_naming(path: &Path) {
    let err = SqliteDb::open(path).await.unwrap_err();
    let Error::Database(source) = &err else { panic!("{err:?}") };
    assert!(matches!(source.downcast_ref(), Some(OpenError::Sqlite { path: p, .. }) if p == path), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn sqlite_a_file_that_cannot_be_created_is_a_clear_error() {
    assert_open_fails_naming(&std::env::temp_dir().join(unique_name()).join("kern.db")).await;
    assert_open_fails_naming(Path::new("/proc/kern-test.db")).await;
}

#[tokio::test]
async fn sqlite_a_file_that_is_not_a_database_is_a_clear_error() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    std::fs::write(&path, "not a database, just text ".repeat(400)).unwrap();
    assert_open_fails_naming(&path).await;
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn sqlite_a_file_that_cannot_be_written_is_a_clear_error() {
    // Tests run as root, which writes through file modes but not through the immutable flag.
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    std::fs::write(&path, "").unwrap();
    let chattr = |flag| Command::new("chattr").arg(flag).arg(&path).status().is_ok_and(|s| s.success());
    if chattr("+i") {
        assert_open_fails_naming(&path).await;
        assert!(chattr("-i"));
    } else {
        eprintln!("skipping the unwritable-file case: `chattr +i` is not available here");
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn sqlite_a_builder_without_a_file_is_refused() {
    let err = SqliteDb::builder().build().await.unwrap_err();
    let Error::Database(source) = &err else { panic!("{err:?}") };
    assert!(matches!(source.downcast_ref(), Some(OpenError::MissingTarget(_))), "{err:?}");
}

#[tokio::test]
async fn sqlite_durability_is_configurable() {
    use kern::db::Synchronous;
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let db = SqliteDb::builder().db_file(&path).synchronous(Synchronous::Normal).build().await.unwrap();
    create(&db, &approval("run-1")).await;
    db.close().await;
    let db = SqliteDb::open(&path).await.unwrap();
    assert_eq!(db.count_pending_approvals(None).await.unwrap(), 1);
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn sqlite_schema_10_keys_the_trail_without_a_sequence_and_numbers_on_from_the_stored_events() {
    use sqlx::Connection;
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let query = |sql: &'static str| {
        let path = path.clone();
        async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            let answer: Option<String> = sqlx::query_scalar(sql).fetch_optional(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            answer
        }
    };
    let definition = "SELECT sql FROM sqlite_master WHERE name = 'kern_approvals_events'";
    let old = SqliteDb::builder().db_file(&path).__schema_version(9).build().await.unwrap();
    let (first, second) = (approval("run-1"), approval("run-2"));
    create(&old, &first).await;
    old.update_approval(&first.id, ApprovalUpdate::approve("admin")).await.unwrap();
    let last_before = old.last_event_seq().await.unwrap();
    old.close().await;
    assert!(query(definition).await.unwrap().contains("AUTOINCREMENT"), "version 9 keys the trail so");

    let db = SqliteDb::open(&path).await.unwrap();
    assert!(!query(definition).await.unwrap().contains("AUTOINCREMENT"));
    let sequence = "SELECT name FROM sqlite_sequence WHERE name = 'kern_approvals_events'";
    assert_eq!(query(sequence).await, None, "the trail has no sequence left to rewrite");
    assert_eq!(db.last_event_seq().await.unwrap(), last_before, "the stored events keep their keys");
    assert!(db.verify_trail().await.unwrap().is_intact());
    create(&db, &second).await;
    let next = db.events_after(last_before, 10).await.unwrap();
    assert_eq!(next.iter().map(|event| event.seq).collect::<Vec<_>>(), [last_before + 1]);
    let rewrite = sqlx::query("UPDATE kern_approvals_events SET principal = 'mallory'");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let refused = rewrite.execute(&mut conn).await.unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    conn.close().await.unwrap();
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn postgres_an_unreachable_server_is_a_clear_error_without_the_password() {
    let url = "postgres://kern:s3cret@127.0.0.1:1/kern";
    let err = PostgresDb::builder().url(url).connect_timeout(Duration::from_millis(300)).build().await.unwrap_err();
    let Error::Database(source) = &err else { panic!("{err:?}") };
    assert!(matches!(source.downcast_ref(), Some(OpenError::Postgres(_))), "{err:?}");
    assert!(err.to_string().starts_with("database error: cannot connect to Postgres"), "{err}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// A "file" that would be each connection's own database is refused, and nothing is created
/// under its name.
#[tokio::test]
async fn a_sqlite_path_that_names_no_file_is_refused() {
    for name in ["", ":memory:", "file::memory:?cache=shared"] {
        let err = SqliteDb::builder().db_file(name).build().await.unwrap_err();
        assert!(err.to_string().contains("names no file"), "{name}: {err}");
        assert!(name.is_empty() || !Path::new(name).exists(), "{name} was created");
    }
}
