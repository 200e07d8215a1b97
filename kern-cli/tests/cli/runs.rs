//! `kern runs`: list, show, cancel, recover.

use chrono::{TimeDelta, Utc};
use kern::prelude::*;
use kern::run::RunRecord;

use crate::seed::{self, Scene, each_scene};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_shown_and_cancelled() {
    each_scene(|Scene { db, store, agent }| async move {
        let (older, older_row) = seed::pause(&agent, "delete user 42", "user-1").await;
        let (newer, _) = seed::pause(&agent, "delete user 43", "user-2").await;

        let page = db.kern(&["runs", "list", "--json"]).json();
        let ids: Vec<&str> =
            page["items"].as_array().unwrap().iter().map(|run| run["run_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [newer.run_id.as_str(), older.run_id.as_str()]);
        let mine = db.kern(&["runs", "list", "--user", "user-1", "--status", "paused", "--json"]).json();
        assert_eq!(mine["items"][0]["run_id"], older.run_id.as_str());
        assert_eq!(mine["items"][0]["waiting_on"][0], older_row.as_str());
        let paged = db.kern(&["runs", "list", "--limit", "1", "--json"]).json();
        let cursor = paged["next_cursor"].as_str().unwrap().to_owned();
        let rest = db.kern(&["runs", "list", "--limit", "1", "--cursor", &cursor, "--json"]).json();
        assert_eq!(rest["items"][0]["run_id"], older.run_id.as_str());
        assert!(db.kern(&["runs", "list"]).ok().contains(&newer.run_id));

        let shown = db.kern(&["runs", "show", &older.run_id, "--json"]).json();
        assert_eq!((shown["status"].as_str(), shown["user_id"].as_str()), (Some("paused"), Some("user-1")));
        db.kern(&["runs", "show", "no-such-run"]).fails(4);

        db.kern(&["runs", "cancel", &older.run_id]).fails(2);
        let (paying, paying_row) = seed::pause(&agent, "pay acme", "user-1").await;
        let ineligible = db.kern(&["runs", "cancel", &paying.run_id, "--as", "alice"]);
        assert!(ineligible.fails(5).contains("finance"), "{ineligible:?}");
        assert_eq!(store.get_approval(&paying_row).await.unwrap().unwrap().status, ApprovalStatus::Pending);
        let by_finance = db.kern(&["runs", "cancel", &paying.run_id, "--as", "bob", "--role", "finance", "--json"]);
        assert_eq!(by_finance.json()["status"], "cancelled");
        let cancelled = db.kern(&["runs", "cancel", &older.run_id, "--as", "alice", "--json"]).json();
        assert_eq!(cancelled["status"], "cancelled");
        let row = store.get_approval(&older_row).await.unwrap().unwrap();
        assert_eq!((row.status, row.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("alice")));
        db.kern(&["runs", "cancel", &older.run_id, "--as", "alice"]).fails(3);
        db.kern(&["runs", "cancel", "no-such-run", "--as", "alice"]).fails(4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_continue_died_is_paused_again_for_the_next_continue() {
    each_scene(|Scene { db, store, agent }| async move {
        let (run, id) = seed::pause(&agent, "delete user 42", "user-1").await;
        store.decide(&id, &Principal::new("alice"), Decision::approve()).await.unwrap();
        // A continue claimed the run an hour ago and never finished.
        let claimed = store.claim_run(&run.run_id).await.unwrap();
        let abandoned = RunRecord { updated_at: Utc::now() - TimeDelta::hours(1), ..claimed };
        store.save_runs(std::slice::from_ref(&abandoned), &[], &[]).await.unwrap();

        db.kern(&["runs", "recover", &run.run_id]).fails(2);
        db.kern(&["runs", "recover", &run.run_id, "--stale-after", "soon"]).fails(2);
        // Shorter than a live continue's claim may go unrenewed.
        let hasty = db.kern(&["runs", "recover", &run.run_id, "--stale-after", "30s"]);
        assert!(hasty.fails(2).contains("too short"), "{hasty:?}");
        db.kern(&["runs", "recover", &run.run_id, "--stale-after", "2h"]).fails(3);
        let released = db.kern(&["runs", "recover", &run.run_id, "--stale-after", "10m", "--json"]).json();
        assert_eq!(released["status"], "paused");
        db.kern(&["runs", "recover", &run.run_id, "--stale-after", "10m"]).fails(3);
        db.kern(&["runs", "recover", "no-such-run", "--stale-after", "10m"]).fails(4);

        let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    })
    .await;
}
