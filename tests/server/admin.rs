//! The admin routes of the `kern` command: API keys (`/keys`, admins only), the listing of
//! runs (`GET /runs`), cancelling and releasing a run, the trail read in pages, and a worker's
//! counters on `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{TimeDelta, Utc};
use kern::db::Store;
use kern::prelude::*;
use kern::run::RunRecord;
use serde_json::json;

use crate::harness::App;

pub async fn admins_issue_list_and_revoke_keys(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let new_key = json!({"principal": "dave", "roles": ["finance"], "scopes": ["approvals:read"]});
    for (method, uri, body) in [
        (Method::GET, "/keys", None),
        (Method::POST, "/keys", Some(new_key.clone())),
        (Method::DELETE, "/keys/k", None),
    ] {
        let refused = app.send(method.clone(), uri, Some(&app.alice), body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {uri}: {:?}", refused.body);
    }
    assert_eq!(app.send(Method::GET, "/keys", None, None).await.status, StatusCode::UNAUTHORIZED);

    let issued = app.send(Method::POST, "/keys", Some(&app.admin), Some(new_key)).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    assert_eq!((issued.body["principal"].as_str(), issued.body["roles"][0].as_str()), (Some("dave"), Some("finance")));
    let (id, token) = (issued.body["id"].as_str().unwrap(), issued.body["token"].as_str().unwrap());
    assert_eq!(app.send(Method::GET, "/approvals", Some(token), None).await.status, StatusCode::OK, "the key signs in");

    let listed = app.send(Method::GET, "/keys", Some(&app.admin), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(listed.body.as_array().unwrap().iter().any(|key| key["id"] == id && key["revoked_at"].is_null()));
    let (_, secret) = kern::keys::parse_token(token).expect("a kern token");
    assert!(!listed.body.to_string().contains(secret), "a listing never shows a secret");
    assert!(!listed.body.to_string().contains("kern_"), "nor a token");

    for bad in [
        json!({"principal": "eve", "scopes": ["root"]}),
        json!({"principal": "eve", "scopes": []}),
        json!({"principal": " ", "scopes": ["admin"]}),
        json!({"principal": "eve", "role": ["finance"], "scopes": ["approvals:write"]}),
    ] {
        let refused = app.send(Method::POST, "/keys", Some(&app.admin), Some(bad)).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    }

    let revoked = app.send(Method::DELETE, &format!("/keys/{id}"), Some(&app.admin), None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_i64(), "{:?}", revoked.body);
    assert_eq!(app.send(Method::GET, "/approvals", Some(token), None).await.status, StatusCode::UNAUTHORIZED);
    let missing = app.send(Method::DELETE, "/keys/no-such-key", Some(&app.admin), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

pub async fn runs_are_listed_newest_first_by_filter_and_page(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (older, _, older_row) = app.paused_refund("alice").await;
    let (newer, _, _) = app.paused_refund("bob").await;

    let listed = app.send(Method::GET, "/runs", Some(&app.reader), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let ids: Vec<&str> =
        listed.body["data"].as_array().unwrap().iter().map(|run| run["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newer.as_str(), older.as_str()]);
    assert_eq!(listed.body["data"][1]["status"], "PAUSED");
    assert_eq!(listed.body["data"][1]["waiting_on"][0], older_row.as_str());

    let alices = app.send(Method::GET, "/runs?user_id=alice&status=paused", Some(&app.reader), None).await;
    assert_eq!(alices.body["data"].as_array().unwrap().len(), 1, "{:?}", alices.body);
    let done = app.send(Method::GET, "/runs?status=COMPLETED", Some(&app.reader), None).await;
    assert!(done.body["data"].as_array().unwrap().is_empty());

    let first = app.send(Method::GET, "/runs?limit=1", Some(&app.reader), None).await;
    let cursor = first.body["next_cursor"].as_str().expect("a full page names the next").to_owned();
    let second = app.send(Method::GET, &format!("/runs?limit=1&cursor={cursor}"), Some(&app.reader), None).await;
    assert_eq!(second.body["data"][0]["run_id"], older.as_str());

    for bad in ["/runs?status=done", "/runs?limit=0", "/runs?cursor=x", "/runs?cursor=-300000000000000000.x"] {
        assert_eq!(
            app.send(Method::GET, bad, Some(&app.reader), None).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    assert_eq!(app.send(Method::GET, "/runs", None, None).await.status, StatusCode::UNAUTHORIZED);
}

pub async fn runs_are_cancelled_and_released_by_who_may(store: Arc<dyn Store>) {
    let app = App::with(store.clone(), |builder| builder.stale_after(Duration::from_secs(600))).await;
    let (run, _, row) = app.paused_refund("alice").await;
    let cancel = format!("/runs/{run}/cancel");
    let refused = app.send(Method::POST, &cancel, Some(&app.reader), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "cancelling decides rows: {:?}", refused.body);
    assert_eq!(app.send(Method::POST, &cancel, None, None).await.status, StatusCode::UNAUTHORIZED);
    let cancelled = app.send(Method::POST, &cancel, Some(&app.bob), None).await;
    assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (StatusCode::OK, Some("CANCELLED")));
    let stored = store.get_approval(&row).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("bob")));
    // The row it withdrew is a decision made here, in the metrics too.
    let metrics = app.send(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.body.as_str().unwrap();
    assert!(metrics.contains("kern_approval_decision_seconds_count 1\n"), "{metrics}");
    let again = app.send(Method::POST, &cancel, Some(&app.bob), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    // Cancelling a run decides its rows: a row only finance may decide is cancelled by finance.
    let (wire, _, wire_row) = app.paused("wire 500", "dave").await;
    let cancel_wire = format!("/runs/{wire}/cancel");
    let ineligible = app.send(Method::POST, &cancel_wire, Some(&app.alice), None).await;
    assert_eq!(ineligible.status, StatusCode::FORBIDDEN, "{:?}", ineligible.body);
    assert!(ineligible.detail().contains("finance"), "{:?}", ineligible.body);
    assert_eq!(store.load_run(&wire).await.unwrap().unwrap().status, RunStatus::Paused, "a refusal changes nothing");
    assert_eq!(store.get_approval(&wire_row).await.unwrap().unwrap().status, ApprovalStatus::Pending);
    let by_finance = app.send(Method::POST, &cancel_wire, Some(&app.carol), None).await;
    assert_eq!(by_finance.status, StatusCode::OK, "{:?}", by_finance.body);
    let stored = store.get_approval(&wire_row).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("carol")));
    let missing = app.send(Method::POST, "/runs/no-such-run/cancel", Some(&app.bob), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.detail().contains("no-such-run"), "{:?}", missing.body);

    // A run a continue claimed an hour ago and never finished.
    let (stuck, _, row) = app.paused_refund("alice").await;
    store.decide(&row, &Principal::new("root"), Decision::approve()).await.unwrap();
    let claimed = store.claim_run(&stuck).await.unwrap();
    let abandoned = RunRecord { updated_at: Utc::now() - TimeDelta::hours(1), ..claimed };
    store.save_runs(std::slice::from_ref(&abandoned), &[], &[]).await.unwrap();
    let release = format!("/runs/{stuck}/release");
    let refused = app.send(Method::POST, &release, Some(&app.reader), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    for (body, why) in [
        (json!({"stale_after_seconds": 60}), "at least 600"),
        (json!({"stale_after_seconds": -1}), "body cannot be read"),
        (json!("x"), "body cannot be read"),
        (json!({"stale_after": 600}), "unknown field"),
    ] {
        let refused = app.send(Method::POST, &release, Some(&app.alice), Some(body)).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
        assert!(refused.detail().contains(why), "{:?}", refused.body);
    }
    let early = app.send(Method::POST, &release, Some(&app.alice), Some(json!({"stale_after_seconds": 7200}))).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "not running that long: {:?}", early.body);
    assert_eq!(store.load_run(&stuck).await.unwrap().unwrap().status, RunStatus::Running, "a refusal changes nothing");
    let released = app.send(Method::POST, &release, Some(&app.alice), None).await;
    assert_eq!((released.status, released.body["status"].as_str()), (StatusCode::OK, Some("PAUSED")));
    let again = app.send(Method::POST, &release, Some(&app.alice), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let missing = app.send(Method::POST, "/runs/no-such-run/release", Some(&app.alice), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let done = app.agent.continue_run(&stuck, Vec::new()).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "the next continue takes the released run");

    // Under isolation a run's rows are decided by admins only, and others' runs are not there.
    let isolated = App::with(store.clone(), |builder| builder.user_isolation(true)).await;
    let (alices, _, _) = isolated.paused_refund("alice").await;
    let (bobs, _, _) = isolated.paused_refund("bob").await;
    let own = isolated.send(Method::POST, &format!("/runs/{alices}/cancel"), Some(&isolated.alice), None).await;
    assert_eq!(own.status, StatusCode::NOT_FOUND, "{:?}", own.body);
    let others = isolated.send(Method::POST, &format!("/runs/{bobs}/release"), Some(&isolated.alice), None).await;
    assert_eq!(others.status, StatusCode::NOT_FOUND, "{:?}", others.body);
    let admin = isolated.send(Method::POST, &format!("/runs/{alices}/cancel"), Some(&isolated.admin), None).await;
    assert_eq!(admin.status, StatusCode::OK, "{:?}", admin.body);
}

pub async fn the_trail_is_read_in_pages_by_admins(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    for user in ["alice", "bob", "carol"] {
        let (_, _, row) = app.paused_refund(user).await;
        store.update_approval(&row, ApprovalUpdate::approve("root")).await.unwrap();
    }
    let whole = store.events_after(0, 1000).await.unwrap();
    assert_eq!(whole.len(), 6, "created and approved, three times");

    let (mut after, mut read, mut sizes) = (0, Vec::new(), Vec::new());
    loop {
        let page = app.send(Method::GET, &format!("/audit/events?after={after}&limit=4"), Some(&app.admin), None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        assert_eq!(page.body["last_seq"], whole.last().unwrap().seq);
        let events = page.body["data"].as_array().unwrap().clone();
        let Some(last) = events.last() else { break };
        after = last["seq"].as_i64().unwrap();
        sizes.push(events.len());
        read.extend(events);
    }
    assert_eq!(sizes, [4, 2], "pages of at most `limit` events");
    let seqs: Vec<i64> = read.iter().map(|event| event["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, whole.iter().map(|event| event.seq).collect::<Vec<_>>());
    assert_eq!(read[0]["kind"], "created");
    assert_eq!(read[0]["hash"], whole[0].hash.as_str());

    for bad in ["/audit/events?after=-1", "/audit/events?limit=0", "/audit/events?limit=1001", "/audit/events?after=x"]
    {
        assert_eq!(app.send(Method::GET, bad, Some(&app.admin), None).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(app.send(Method::GET, "/audit/events", Some(&app.alice), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send(Method::GET, "/audit/events", None, None).await.status, StatusCode::UNAUTHORIZED);
}

/// A worker's counters, handed to the server, are read at each scrape of `/metrics`.
pub async fn a_workers_counts_are_scraped_with_the_metrics(store: Arc<dyn Store>) {
    let worker = kern::worker::Worker::builder()
        .store(store.clone())
        .agent(crate::harness::agent(store.clone()))
        .build()
        .unwrap();
    let stats = worker.stats();
    let mut outcomes = worker.subscribe();
    let app = App::with(store, |builder| builder.worker_stats(stats)).await;
    let scrape = async || app.send(Method::GET, "/metrics", None, None).await.body.as_str().unwrap().to_owned();
    assert!(scrape().await.contains("kern_worker_runs_total{outcome=\"continued\"} 0\n"));

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move { stopped.await.unwrap_or_default() }));
    let (run_id, _, row) = app.paused_refund("alice").await;
    let approve = json!({"status": "approved"});
    let approved = app.send(Method::POST, &format!("/approvals/{row}/resolve"), Some(&app.admin), Some(approve)).await;
    assert_eq!(approved.status, StatusCode::OK);
    let outcome = tokio::time::timeout(Duration::from_secs(30), outcomes.recv()).await.expect("an outcome").unwrap();
    let kern::worker::RunOutcome::Continued(output) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output.run_id, run_id);
    assert!(scrape().await.contains("kern_worker_runs_total{outcome=\"continued\"} 1\n"), "{}", scrape().await);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
