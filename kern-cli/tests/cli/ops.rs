//! `kern migrate` and `kern serve`, and the usage errors every command shares.

use serde_json::Value;

use crate::harness::{Ran, Running, TestDb, each_backend, kern_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_brings_the_database_to_the_current_schema() {
    each_backend(|db| async move {
        let migrated = db.kern(&["migrate", "--json"]).json();
        assert_eq!(migrated["schema_version"], kern::db::SCHEMA_VERSION);
        assert!(db.kern(&["migrate"]).ok().contains(&kern::db::SCHEMA_VERSION.to_string()));
    })
    .await;
}

/// Tables an older build wrote are upgraded by `migrate` (or `serve`): a command that
/// only reads or decides leaves them to the application that owns them, whose older build
/// would refuse them upgraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_migrate_upgrades_the_tables_an_older_build_wrote() {
    each_backend(|db| async move {
        db.create_at(9).await;
        for _ in 0..2 {
            let refused = db.kern(&["approvals", "list"]);
            let message = refused.fails(2);
            assert!(message.contains("schema version 9") && message.contains("kern migrate"), "{refused:?}");
        }
        db.kern(&["migrate"]).ok();
        db.kern(&["approvals", "list"]).ok();
    })
    .await;
}

/// A command that only reads or decides finds the tables it is pointed at, or says it found
/// none: it never creates a new, empty store under a mistyped name, where an admin would see
/// no rows and a worker would wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_schema_or_table_name_is_refused_not_created() {
    each_backend(|db| async move {
        db.kern(&["migrate"]).ok();
        let mut mistyped = vec![
            TestDb::kern_with(db.flags(), &["--approvals-table", "kern_aprovals", "approvals", "list"]),
            TestDb::kern_with(db.flags(), &["--runs-table", "kern_rns", "approvals", "list"]),
        ];
        if let TestDb::Postgres { url, .. } = &db {
            let flags = ["--db", url, "--schema", "kern_typo_schema"].map(String::from).to_vec();
            mistyped.push(TestDb::kern_with(flags, &["approvals", "list"]));
        }
        for run in mistyped {
            // Twice: had the first created the tables, the second would find them.
            for _ in 0..2 {
                let refused = run();
                let message = refused.fails(2);
                assert!(message.contains("no kern tables") && message.contains("kern migrate"), "{refused:?}");
            }
        }
        // The names it was pointed at, and `migrate` where the tables are wanted.
        db.kern(&["approvals", "list"]).ok();
        let second = [
            "--approvals-table",
            "second_approvals",
            "--runs-table",
            "second_runs",
            "--sessions-table",
            "second_sessions",
        ];
        db.kern(&[&second[..], &["migrate"]].concat()).ok();
        db.kern(&[&second[..], &["approvals", "list"]].concat()).ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_http_until_interrupted() {
    each_backend(|db| async move {
        let serving = || {
            Running::start(
                db.flags()
                    .into_iter()
                    .chain(["serve", "--bind", "127.0.0.1:0", "--open", "admin", "--json"].map(String::from)),
            )
        };
        let mut serve = serving();
        let started = serve.next_json();
        let url = started["listening"].as_str().unwrap().to_owned();

        let health: Value = reqwest::get(format!("{url}/healthz")).await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "ok");
        let listed: Value = reqwest::get(format!("{url}/approvals")).await.unwrap().json().await.unwrap();
        assert_eq!(listed["meta"]["total_count"], 0);

        assert_eq!(serve.interrupt(), Some(0));
        // A process manager's stop (SIGTERM) ends it as cleanly.
        let mut serve = serving();
        serve.next_json();
        assert_eq!(serve.terminate(), Some(0));

        db.kern(&["serve", "--bind", "0.0.0.0:0", "--open", "admin"]).fails(2);
        let refused = db.kern(&["serve", "--bind", "127.0.0.1:0", "--public-origin", "kern.example.com/inbox"]);
        assert!(refused.fails(2).contains("is not an origin"), "{refused:?}");
        let proxied = db.kern(&["serve", "--open", "admin", "--public-origin", "https://kern.example.com"]);
        assert!(proxied.fails(2).contains("cannot be used with"), "an open server behind a proxy: {proxied:?}");
    })
    .await;
}

#[test]
fn usage_errors_exit_2() {
    let run = |args: &[&str]| Ran::from(kern_command().args(args).output().unwrap());
    run(&["approvals", "list"]).fails(2);
    run(&["no-such-command"]).fails(2);
    run(&["--db", "mysql://host/db", "approvals", "list"]).fails(2);
    let missing = std::env::temp_dir().join("kern-no-such-database.db");
    let typo = format!("sqlite://{}", missing.display());
    assert!(run(&["--db", &typo, "approvals", "list"]).fails(2).contains("kern migrate"));
    assert!(!missing.exists(), "a mistyped path is not created");
    run(&["--db", "sqlite://x.db", "--server", "http://127.0.0.1:1", "approvals", "list"]).fails(2);
    let json = run(&["approvals", "list", "--json"]);
    let error: Value = serde_json::from_str(json.fails(2)).expect("a JSON error");
    assert_eq!(error["exit_code"], 2);
    // Clap's own refusals too, under --json.
    let json = run(&["approvals", "list", "--limit", "0", "--json"]);
    let error: Value = serde_json::from_str(json.fails(2)).expect("a JSON error");
    assert!(error["error"].as_str().unwrap().contains("--limit"), "{error}");
    let json = run(&["approvals", "reject", "some-row", "--json"]);
    let error: Value = serde_json::from_str(json.fails(2)).expect("a JSON error");
    assert!(error["error"].as_str().unwrap().ends_with("provided: --note <NOTE>"), "{error}");
    let json = run(&["--json", "approvals"]);
    let error: Value = serde_json::from_str(json.fails(2)).expect("a JSON error");
    assert!(error["error"].as_str().unwrap().contains("subcommand"), "{error}");
    run(&["--server", "http://", "approvals", "list"]).fails(2);
    for secret in ["https://ops:hunter2@kern.example.com", "https://kern.example.com/?api_key=hunter2"] {
        let refused = run(&["--server", secret, "approvals", "list"]);
        assert!(!refused.fails(2).contains("hunter2"), "a secret in the URL is not shown: {refused:?}");
    }
    let help = run(&["--help"]);
    assert!(help.ok().contains("Exit codes:") && help.stdout.contains("lacks the scope"), "{help:?}");
}
