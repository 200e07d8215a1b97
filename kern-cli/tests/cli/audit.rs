//! `kern audit`: verify the trail (against a checkpoint too), take a checkpoint, export the
//! trail as JSON lines or CSV.

use std::process::Stdio;

use sqlx::{Connection, Executor};

use crate::harness::{TestDb, kern_command};
use crate::seed::{self, Scene, each_scene};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_verifies_and_exports() {
    each_scene(|Scene { db, agent, .. }| async move {
        let (_, id) = seed::pause(&agent, "delete user 42", "user-1").await;
        db.kern(&["approvals", "approve", &id, "--as", "alice"]).ok();

        let verified = db.kern(&["audit", "verify", "--json"]).json();
        assert_eq!((verified["ok"].as_bool(), verified["rows"].as_u64()), (Some(true), Some(1)));
        assert!(db.kern(&["audit", "verify"]).ok().contains("trail intact"));

        let exported = db.kern(&["audit", "export", "--format", "jsonl"]);
        let events: Vec<serde_json::Value> =
            exported.ok().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
        // A decision as a principal is its vote, and the approval the vote makes.
        assert_eq!(kinds, ["created", "vote", "approved"]);
        assert_eq!(events[2]["principal"], "alice");

        let csv = db.kern(&["audit", "export", "--format", "csv"]);
        let lines: Vec<&str> = csv.ok().lines().collect();
        assert_eq!(lines[0], "seq,at,approval_id,run_id,index,kind,principal,data,prev_hash,hash");
        assert_eq!(lines.len(), 4, "{csv:?}");
        assert!(lines[3].contains(",approved,alice,"), "{csv:?}");

        let none = db.kern(&["audit", "export", "--since", "2999-01-01T00:00:00Z"]);
        assert_eq!(none.ok(), "");
        db.kern(&["audit", "export", "--format", "xml"]).fails(2);
        let csv_as_json = db.kern(&["audit", "export", "--format", "csv", "--json"]);
        assert!(csv_as_json.fails(2).contains("--format csv"), "{csv_as_json:?}");
        assert_eq!(csv_as_json.stdout, "", "nothing exported");

        // A reader that goes away (`| head`) ends the export quietly: nothing failed. But a key
        // whose token nobody read was issued for nothing: that is said.
        let closed = |args: &[&str]| {
            let mut child = kern_command()
                .args(db.flags())
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run kern");
            drop(child.stdout.take());
            let output = child.wait_with_output().expect("kern ends");
            (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
        };
        for args in [&["audit", "export"][..], &["approvals", "list"]] {
            assert_eq!(closed(args), (Some(0), String::new()), "{args:?}");
        }
        let (code, stderr) = closed(&["keys", "create", "--principal", "p", "--scopes", "admin"]);
        assert_eq!(code, Some(1));
        assert!(stderr.contains("revoke it"), "{stderr}");
    })
    .await;
}

/// Deletes event `index` of row `approval_id`, past the database's guards: what only the
/// database's owner can do.
async fn delete_event(db: &TestDb, approval_id: &str, index: u32) {
    as_owner(
        db,
        &[format!("DELETE FROM {{t:kern_approvals_events}} WHERE approval_id = '{approval_id}' AND idx = {index}")],
    )
    .await;
}

/// Removes row `approval_id` whole, with its votes and its chain of events, past the database's
/// guards.
async fn remove_row(db: &TestDb, approval_id: &str) {
    let statements = ["kern_approvals_votes", "kern_approvals_events"]
        .map(|table| format!("DELETE FROM {{t:{table}}} WHERE approval_id = '{approval_id}'"));
    let row = format!("DELETE FROM {{t:kern_approvals}} WHERE id = '{approval_id}'");
    as_owner(db, &[statements[0].clone(), statements[1].clone(), row]).await;
}

/// Runs `statements` on the database past the store, after dropping the triggers that refuse
/// deletes of rows, votes and events: `{t:name}` in a statement stands for table `name`.
async fn as_owner(db: &TestDb, statements: &[String]) {
    let guarded = ["kern_approvals", "kern_approvals_events", "kern_approvals_votes"];
    match db {
        TestDb::Sqlite(path) => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            for table in guarded {
                conn.execute(sqlx::raw_sql(&format!("DROP TRIGGER IF EXISTS \"{table}_no_delete\""))).await.unwrap();
            }
            for statement in statements {
                let sql = guarded.iter().rev().fold(statement.clone(), |sql, table| {
                    sql.replace(&format!("{{t:{table}}}"), &format!("\"{table}\""))
                });
                conn.execute(sqlx::raw_sql(&sql)).await.unwrap();
            }
        }
        TestDb::Postgres { url, schema } => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let qualified = |table: &str| format!("\"{schema}\".\"{table}\"");
            for table in guarded {
                let drop_guard = format!("DROP TRIGGER IF EXISTS \"{table}_no_delete\" ON {}", qualified(table));
                conn.execute(sqlx::raw_sql(&drop_guard)).await.unwrap();
            }
            for statement in statements {
                let sql = guarded
                    .iter()
                    .rev()
                    .fold(statement.clone(), |sql, table| sql.replace(&format!("{{t:{table}}}"), &qualified(table)));
                conn.execute(sqlx::raw_sql(&sql)).await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_kept_elsewhere_catches_a_row_removed_whole() {
    each_scene(|Scene { db, agent, .. }| async move {
        let (_, first) = seed::pause(&agent, "delete user 42", "user-1").await;
        db.kern(&["approvals", "approve", &first, "--as", "alice"]).ok();
        seed::pause(&agent, "delete user 43", "user-2").await;
        let checkpoint = db.kern(&["audit", "checkpoint"]).ok().trim().to_owned();
        let taken = db.kern(&["audit", "checkpoint", "--json"]).json();
        assert_eq!(taken["checkpoint"], checkpoint.as_str());
        assert_eq!(taken["events"], 4);

        // The trail grows past it: the checkpoint still holds.
        seed::pause(&agent, "delete user 44", "user-3").await;
        let holds = db.kern(&["audit", "verify", "--checkpoint", &checkpoint]);
        assert!(holds.ok().contains("and so does checkpoint"), "{holds:?}");

        // The first row removed whole, with its votes and its chain: every chain left holds, and
        // only the checkpoint tells.
        remove_row(&db, &first).await;
        db.kern(&["audit", "verify"]).ok();
        let broken = db.kern(&["audit", "verify", "--checkpoint", &checkpoint]);
        assert!(broken.fails(8).contains(&format!("not those checkpoint {checkpoint} was taken over")), "{broken:?}");
        let report = db.kern(&["audit", "verify", "--json", "--checkpoint", &checkpoint]);
        assert_eq!(report.code, 8, "{report:?}");
        db.kern(&["audit", "verify", "--checkpoint", "12:not-a-digest"]).fails(2);
        // A checkpoint past the trail's end names the event it misses.
        let beyond = format!("999{}", &checkpoint[checkpoint.find(':').unwrap()..]);
        let missing = db.kern(&["audit", "verify", "--checkpoint", &beyond]);
        assert!(missing.fails(8).contains("event 999, checkpoint"), "{missing:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_trail_fails_verification_naming_the_first_broken_link() {
    each_scene(|Scene { db, agent, .. }| async move {
        let (_, id) = seed::pause(&agent, "delete user 42", "user-1").await;
        db.kern(&["approvals", "approve", &id, "--as", "alice"]).ok();
        delete_event(&db, &id, 2).await;

        let broken = db.kern(&["audit", "verify"]);
        assert!(broken.fails(8).contains(&id), "{broken:?}");
        let report = db.kern(&["audit", "verify", "--json"]);
        assert_eq!(report.code, 8, "{report:?}");
        let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
        assert_eq!(report["ok"], false);
        let expected = format!("approval {id} event 2: event 2 is missing");
        assert_eq!(report["broken"].as_str(), Some(expected.as_str()), "{report}");
    })
    .await;
}
