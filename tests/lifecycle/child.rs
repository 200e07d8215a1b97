//! Child processes: this test binary run again, playing one part on a store its parent opened,
//! as another program sharing the database would.
//!
//! A module's child part is a test that does nothing unless [`role`] finds it was spawned as a
//! child; [`command`] runs that one test alone in the child, with the role and the store's
//! locator in its environment.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kern::prelude::*;
use sqlx::Connection as _;

use crate::backend::Backend;

/// The part a child plays; set in child processes only.
const ROLE_VAR: &str = "KERN_LIFECYCLE_CHILD";
/// How the child opens the parent's store: `kind`, `location` and `schema`, one a line.
const STORE_VAR: &str = "KERN_LIFECYCLE_STORE";

/// How long the server may take to end the sessions of a killed child.
const SESSIONS_END_WITHIN: Duration = Duration::from_secs(30);

/// The command that runs test `entry` (its full path, like `process::child_process_entry`) of
/// this binary as a child playing `role` on `backend`'s store.
pub fn command(entry: &str, role: &str, backend: &Backend) -> Command {
    let (kind, location, schema) = backend.locator().expect("a backend other processes can open");
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(STORE_VAR, format!("{kind}\n{location}\n{schema}"));
    command
}

/// In a child process, the part it plays and its parent's store; `None` in any other process.
///
/// A child's Postgres sessions carry the schema as their `application_name`, which tells them
/// from the parent's (see [`sessions_ended`]).
pub async fn role() -> Option<(String, Arc<dyn Store>)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let locator = std::env::var(STORE_VAR).expect("a child is told its store");
    let mut parts = locator.splitn(3, '\n');
    let (kind, location, schema) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
    let location = match kind {
        "postgres" => format!("{location}{}application_name={schema}", if location.contains('?') { '&' } else { '?' }),
        _ => location.to_owned(),
    };
    Some((role, Backend::open(kind, &location, schema).await))
}

/// Returns once the server holds no session of a child on `backend` any more: a killed child's
/// last statement has then committed or rolled back for good. A SQLite file needs no wait: once
/// the child is dead, nothing of it writes.
pub async fn sessions_ended(backend: &Backend) {
    let Some(("postgres", url, schema)) = backend.locator() else { return };
    let mut server = sqlx::PgConnection::connect(&url).await.expect("connect to the test server");
    let deadline = tokio::time::Instant::now() + SESSIONS_END_WITHIN;
    loop {
        let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&schema)
            .fetch_one(&mut server)
            .await
            .expect("read the server's sessions");
        if sessions == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{sessions} sessions of a killed child outlive it");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
