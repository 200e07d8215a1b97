//! `kern migrate` and `kern serve`, and the usage errors every command shares.

use serde_json::Value;

use crate::harness::{Ran, Running, each_backend, kern_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_brings_the_database_to_the_current_schema() {
    each_backend(|db| async move {
        let migrated = db.kern(&["migrate", "--json"]).json();
        assert_eq!(migrated["schema_version"], kern::db::SCHEMA_VERSION);
        assert!(db.kern(&["migrate"]).ok().contains(&kern::db::SCHEMA_VERSION.to_string()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_http_until_interrupted() {
    each_backend(|db| async move {
        let mut serve = Running::start(
            db.flags()
                .into_iter()
                .chain(["serve", "--bind", "127.0.0.1:0", "--open", "admin", "--json"].map(String::from)),
        );
        let started = serve.next_json();
        let url = started["listening"].as_str().unwrap().to_owned();

        let health: Value = reqwest::get(format!("{url}/healthz")).await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "ok");
        let listed: Value = reqwest::get(format!("{url}/approvals")).await.unwrap().json().await.unwrap();
        assert_eq!(listed["meta"]["total_count"], 0);

        assert_eq!(serve.interrupt(), Some(0));

        db.kern(&["serve", "--bind", "0.0.0.0:0", "--open", "admin"]).fails(2);
        let refused = db.kern(&["serve", "--bind", "127.0.0.1:0", "--public-origin", "kern.example.com/inbox"]);
        assert!(refused.fails(2).contains("is not an origin"), "{refused:?}");
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
    let json = run(&["--json", "approvals"]);
    let error: Value = serde_json::from_str(json.fails(2)).expect("a JSON error");
    assert!(error["error"].as_str().unwrap().contains("subcommand"), "{error}");
    run(&["--server", "http://", "approvals", "list"]).fails(2);
    let help = run(&["--help"]);
    assert!(help.ok().contains("Exit codes:") && help.stdout.contains("lacks the scope"), "{help:?}");
}
