//! `kern approvals`: list, show, approve, reject, cancel, watch; the decisions carry `--as`
//! and its roles onto the trail, and the run continues on them.

use kern::prelude::*;
use serde_json::Value;

use crate::harness::Running;
use crate::seed::{self, Scene, each_scene};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lists_and_approves_and_the_run_continues() {
    each_scene(|Scene { db, store, agent }| async move {
        let (run, id) = seed::pause(&agent, "delete user 42", "user-1").await;

        let page = db.kern(&["approvals", "list", "--status", "pending", "--json"]).json();
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
        assert_eq!(page["items"][0]["id"], id.as_str());
        assert_eq!(page["items"][0]["tool_name"], "delete_user_data");
        assert_eq!(page["next_cursor"], Value::Null);
        let human = db.kern(&["approvals", "list"]);
        assert_eq!(human.code, 0, "{human:?}");
        assert!(human.stdout.starts_with("ID"), "{human:?}");
        assert!(human.stdout.contains(&id) && human.stdout.contains("pending"), "{human:?}");

        let shown = db.kern(&["approvals", "show", &id, "--json"]).json();
        assert_eq!((shown["status"].as_str(), shown["user_id"].as_str()), (Some("pending"), Some("user-1")));

        let approved = db.kern(&["approvals", "approve", &id, "--as", "alice", "--note", "checked", "--json"]).json();
        assert_eq!(approved["status"], "approved");
        assert_eq!(approved["resolved_by"], "alice");
        assert_eq!(approved["resolution_data"]["note"], "checked");
        let trail = store.trail(&id).await.unwrap();
        assert_eq!(trail.last().map(|event| event.principal.as_str()), Some("alice"));

        let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");

        // A second decision finds the row decided; an unknown row is not found.
        let again = db.kern(&["approvals", "approve", &id, "--as", "bob"]);
        assert!(again.fails(3).contains("approved"), "{again:?}");
        db.kern(&["approvals", "reject", "no-such-row", "--as", "bob", "--note", "no"]).fails(4);
        db.kern(&["approvals", "show", "no-such-row"]).fails(4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_needs_a_principal_and_the_policy_decides_who() {
    each_scene(|Scene { db, store, agent }| async move {
        let (_, id) = seed::pause(&agent, "pay acme", "user-1").await;

        let anonymous = db.kern(&["approvals", "approve", &id]);
        assert!(anonymous.fails(2).contains("--as"), "{anonymous:?}");
        let refused = db.kern(&["approvals", "approve", &id, "--as", "bob"]);
        assert!(refused.fails(5).contains("finance"), "{refused:?}");
        assert_eq!(store.get_approval(&id).await.unwrap().unwrap().status, ApprovalStatus::Pending);

        let approved = db.kern(&["approvals", "approve", &id, "--as", "bob", "--role", "finance", "--json"]).json();
        assert_eq!((approved["status"].as_str(), approved["resolved_by"].as_str()), (Some("approved"), Some("bob")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_carries_values_a_result_or_edited_arguments() {
    each_scene(|Scene { db, store, agent }| async move {
        let (refund, refund_row) = seed::pause(&agent, "refund c-7", "user-1").await;
        let (_, migration_row) = seed::pause(&agent, "migrate the users table", "user-1").await;
        let (_, email_row) = seed::pause(&agent, "email c-7", "user-1").await;
        let approve = |id: &str, flag: &str, value: &str| {
            db.kern(&["approvals", "approve", id, "--as", "alice", flag, value, "--json"])
        };

        // Values that do not fit the call are refused and change nothing.
        approve(&refund_row, "--values", r#"{"amount_eur": "a lot"}"#).fails(1);
        assert_eq!(store.get_approval(&refund_row).await.unwrap().unwrap().status, ApprovalStatus::Pending);
        let row = approve(&refund_row, "--values", r#"{"amount_eur": 30}"#).json();
        assert_eq!(row["resolution_data"]["values"]["amount_eur"], 30, "{row}");
        let done = agent.continue_run(&refund.run_id, refund.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
        assert!(done.content.unwrap_or_default().contains("refunded 30 EUR"));

        let row = approve(&migration_row, "--result", r#""applied at 09:00""#).json();
        assert_eq!(row["resolution_data"]["result"], "applied at 09:00", "{row}");

        // Only a tool that allows edits takes edited arguments.
        let (_, deletion_row) = seed::pause(&agent, "delete user 42", "user-1").await;
        approve(&deletion_row, "--args", r#"{"user_id": "43"}"#).fails(5);
        let row = approve(&email_row, "--args", r#"{"to": "c-7", "body": "Hello"}"#).json();
        assert_eq!(
            (row["status"].as_str(), row["resolution_data"]["args"]["body"].as_str()),
            (Some("approved"), Some("Hello"))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_rejected_and_cancelled_and_filtered() {
    each_scene(|Scene { db, agent, .. }| async move {
        let (rejected_run, rejected) = seed::pause(&agent, "delete user 42", "user-1").await;
        let (_, cancelled) = seed::pause(&agent, "delete user 43", "user-2").await;
        let (_, pending) = seed::pause(&agent, "pay acme", "user-2").await;

        db.kern(&["approvals", "reject", &rejected, "--as", "alice"]).fails(2);
        let row = db.kern(&["approvals", "reject", &rejected, "--as", "alice", "--note", "not today", "--json"]).json();
        assert_eq!(
            (row["status"].as_str(), row["resolution_data"]["note"].as_str()),
            (Some("rejected"), Some("not today"))
        );
        let row = db.kern(&["approvals", "cancel", &cancelled, "--as", "alice", "--json"]).json();
        assert_eq!((row["status"].as_str(), row["resolved_by"].as_str()), (Some("cancelled"), Some("alice")));
        db.kern(&["approvals", "cancel", &cancelled, "--as", "alice"]).fails(3);

        let ids = |args: &[&str]| {
            let mut all = vec!["approvals", "list", "--json"];
            all.extend_from_slice(args);
            let page = db.kern(&all).json();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&["--status", "pending"]), [pending.as_str()]);
        assert_eq!(ids(&["--tool", "pay_vendor"]), [pending.as_str()]);
        assert_eq!(ids(&["--run", &rejected_run.run_id]), [rejected.as_str()]);
        assert_eq!(ids(&["--user", "user-2"]), [pending.as_str(), cancelled.as_str()]);
        assert_eq!(ids(&["--agent", agent.id()]).len(), 3);
        assert!(ids(&["--team", "no-such-team"]).is_empty());
        assert_eq!(ids(&["--since", "1h"]).len(), 3);
        assert!(ids(&["--until", "1h"]).is_empty());
        assert!(ids(&["--expiring", "1h"]).is_empty());
        assert!(ids(&["--expiring", "2999-01-01T00:00:00Z"]).is_empty(), "a row without an expiry never expires");
        db.kern(&["approvals", "list", "--expiring", "soon"]).fails(2);
        // A time past the years a store keeps is refused here, as a server refuses it.
        let ancient = db.kern(&["approvals", "list", "--since", "0000-06-01T00:00:00Z"]);
        assert!(ancient.fails(2).contains("past the years kern keeps"), "{ancient:?}");

        // Keyset paging visits every row once, newest first.
        let first = db.kern(&["approvals", "list", "--limit", "2", "--json"]).json();
        let first_ids: Vec<&str> =
            first["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(first_ids, [pending.as_str(), cancelled.as_str()]);
        let cursor = first["next_cursor"].as_str().expect("a full page names the next").to_owned();
        let rest = ids(&["--limit", "2", "--cursor", &cursor]);
        assert_eq!(rest, [rejected.as_str()]);
        let last = db.kern(&["approvals", "list", "--limit", "2", "--cursor", &cursor, "--json"]).json();
        assert!(last["next_cursor"].is_null(), "the last page names no next: {last}");
        // Said for people, the next page keeps the filters, its times as the first page took them.
        let text = db.kern(&["approvals", "list", "--limit", "1", "--since", "1h", "--user", "user-2"]).ok().to_owned();
        let hint = text.lines().find_map(|line| line.strip_prefix("more: ")).expect("a full page says how to go on");
        assert!(hint.starts_with("--user user-2 --since 20") && hint.contains("--limit 1 --cursor "), "{hint}");
        db.kern(&["approvals", "list", "--cursor", "not-a-cursor"]).fails(2);
        db.kern(&["approvals", "list", "--status", "done"]).fails(2);
        db.kern(&["approvals", "approve", &pending, "--as", "bob", "--role", "finance", "--values", "[1]"]).fails(2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_rows_as_they_are_created_and_decided_until_interrupted() {
    each_scene(|Scene { db, agent, .. }| async move {
        let (_, id) = seed::pause(&agent, "delete user 42", "user-1").await;

        let mut watch = Running::start(
            db.flags().into_iter().chain(["approvals", "watch", "--after", "0", "--json"].map(String::from)),
        );
        let created = watch.next_json();
        assert_eq!((created["kind"].as_str(), created["approval_id"].as_str()), (Some("created"), Some(id.as_str())));

        db.kern(&["approvals", "approve", &id, "--as", "alice"]).ok();
        let approved = watch.next_json();
        assert_eq!((approved["kind"].as_str(), approved["principal"].as_str()), (Some("approved"), Some("alice")));
        assert_eq!(watch.interrupt(), Some(0), "Ctrl-C ends the watch cleanly");
    })
    .await;
}
