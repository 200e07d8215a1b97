//! The `/approvals` routes over the router: the reference's wire contract and status codes,
//! its faults fixed, and kern's additions.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use kern::db::Store;
use serde_json::{Value, json};

use crate::harness::App;

pub async fn a_row_reads_in_the_reference_shape(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (run_id, session_id, id) = app.paused_refund("alice").await;

    let row = app.send(Method::GET, &format!("/approvals/{id}"), Some(&app.reader), None).await;
    assert_eq!(row.status, StatusCode::OK);
    let body = &row.body;
    for key in [
        "id",
        "run_id",
        "session_id",
        "status",
        "source_type",
        "approval_type",
        "pause_type",
        "tool_name",
        "tool_args",
        "expires_at",
        "agent_id",
        "team_id",
        "workflow_id",
        "user_id",
        "schedule_id",
        "schedule_run_id",
        "source_name",
        "requirements",
        "context",
        "resolution_data",
        "resolved_by",
        "resolved_at",
        "created_at",
        "updated_at",
        "run_status",
    ] {
        assert!(body.get(key).is_some(), "every key is present: {key}");
    }
    assert_eq!(body["status"], "pending");
    assert_eq!(body["run_id"], run_id.as_str());
    assert_eq!(body["session_id"], session_id.as_str());
    assert_eq!(body["run_status"], "PAUSED");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["tool_args"], json!({"order_id": "A-1"}));
    assert_eq!(body["context"]["tool_names"], json!(["refund_order"]));
    assert!(body["created_at"].is_i64(), "epoch seconds");
    assert_eq!(body["requirements"][0]["tool_execution"]["requires_confirmation"], true);
    assert!(row.headers.get("etag").is_some());

    let status = app.send(Method::GET, &format!("/approvals/{id}/status"), Some(&app.reader), None).await;
    assert_eq!(
        status.body,
        json!({"approval_id": id, "status": "pending", "run_id": run_id, "resolved_at": null, "resolved_by": null})
    );
}

pub async fn a_missing_row_is_not_found(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    for (method, uri, body) in [
        (Method::GET, "/approvals/nope", None),
        (Method::GET, "/approvals/nope/status", None),
        (Method::GET, "/approvals/nope/trail", None),
        (Method::GET, "/approvals/nope/votes", None),
        (Method::POST, "/approvals/nope/resolve", Some(json!({"status": "approved"}))),
        (Method::POST, "/approvals/nope/cancel", None),
        // The reference answers 500 here.
        (Method::DELETE, "/approvals/nope", None),
    ] {
        let answer = app.send(method.clone(), uri, Some(&app.admin), body).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(answer.detail(), "Approval not found", "{method} {uri}");
        assert_eq!(answer.body["error_type"], "approval_not_found", "{method} {uri}");
    }
}

pub async fn listing_pages_and_filters(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    for user in ["alice", "bob", "alice"] {
        app.paused_refund(user).await;
    }
    let all = app.send(Method::GET, "/approvals?status=pending", Some(&app.reader), None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["meta"]["total_count"], 3);
    assert_eq!(all.body["meta"]["limit"], 100);
    assert_eq!(all.body["meta"]["search_time_ms"], 0.0);

    let alice = app.send(Method::GET, "/approvals?user_id=alice&tool_name=refund_order", Some(&app.reader), None).await;
    assert_eq!(alice.body["meta"]["total_count"], 2);

    let first = app.send(Method::GET, "/approvals?limit=2", Some(&app.reader), None).await;
    assert_eq!(first.body["meta"]["total_pages"], 2);
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["meta"]["next_cursor"].as_str().expect("a full page has a cursor").to_owned();
    // A cursor's page starts where the cursor points, whatever `page` says.
    let uri = format!("/approvals?limit=2&page=7&cursor={cursor}");
    let next = app.send(Method::GET, &uri, Some(&app.reader), None).await;
    assert_eq!(next.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(next.body["meta"]["page"], 1);
    assert_ne!(next.body["data"][0]["id"], first.body["data"][0]["id"]);
    assert_ne!(next.body["data"][0]["id"], first.body["data"][1]["id"]);
    assert!(next.body["meta"]["next_cursor"].is_null());

    let none = app.send(Method::GET, "/approvals?workflow_id=w", Some(&app.reader), None).await;
    assert_eq!(none.body["meta"]["total_count"], 0);
    // Source and pause types are matched as free text, as in the reference.
    for (filter, total) in [
        ("source_type=agent", 3),
        ("pause_type=confirmation", 3),
        ("source_type=workflow", 0),
        ("source_type=team", 0),
        ("pause_type=approval", 0),
    ] {
        let listed = app.send(Method::GET, &format!("/approvals?{filter}"), Some(&app.reader), None).await;
        assert_eq!(
            (listed.status, listed.body["meta"]["total_count"].as_u64()),
            (StatusCode::OK, Some(total)),
            "{filter}"
        );
    }
    let later = app.send(Method::GET, "/approvals?created_after=2999-01-01T00:00:00Z", Some(&app.reader), None).await;
    assert_eq!(later.body["meta"]["total_count"], 0);
    let expiring = app.send(Method::GET, "/approvals?expiring_before=4102444800", Some(&app.reader), None).await;
    assert_eq!(expiring.body["meta"]["total_count"], 0, "no row of this agent expires");
    let soonest = app.send(Method::GET, "/approvals?order=expiring_soonest", Some(&app.reader), None).await;
    assert_eq!(soonest.status, StatusCode::OK);
    assert_eq!(soonest.body["meta"]["total_count"], 0, "rows without an expiry are not listed by expiry");

    let count = app.send(Method::GET, "/approvals/count?user_id=alice", Some(&app.reader), None).await;
    assert_eq!(count.body, json!({"count": 2}));
}

pub async fn bad_parameters_are_refused_with_what_is_wrong(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    // A cursor naming an id no row could have.
    let long_id = format!("/approvals?cursor=1700000000000000.{}", "x".repeat(300));
    for (uri, names) in [
        (long_id.as_str(), "cursor"),
        ("/approvals?limit=0", "limit"),
        ("/approvals?limit=1001", "limit"),
        ("/approvals?page=0", "page"),
        ("/approvals?status=done", "status"),
        ("/approvals?approval_type=maybe", "approval_type"),
        ("/approvals?created_before=tomorrow", "created_before"),
        ("/approvals?cursor=garbage", "cursor"),
        // Times no database need hold (Postgres refuses this one): refused as given.
        ("/approvals?created_after=-300000000000", "created_after"),
        ("/approvals?created_before=300000000000", "created_before"),
        ("/approvals?cursor=-300000000000000000.x", "cursor"),
        ("/approvals?order=random", "order"),
    ] {
        let answer = app.send(Method::GET, uri, Some(&app.reader), None).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        assert!(answer.detail().contains(names), "{uri}: {}", answer.detail());
    }
    let (_, _, id) = app.paused_refund("alice").await;
    let uri = format!("/approvals/{id}/resolve");
    let bad_status = app.send(Method::POST, &uri, Some(&app.alice), Some(json!({"status": "maybe"}))).await;
    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = app.send(Method::POST, &uri, Some(&app.alice), Some(json!("status=approved"))).await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY, "the reference takes resolve as JSON only");
    let not_object = app
        .send(Method::POST, &uri, Some(&app.alice), Some(json!({"status": "approved", "resolution_data": [1]})))
        .await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
    let row = app.send(Method::GET, &format!("/approvals/{id}/status"), Some(&app.reader), None).await;
    assert_eq!(row.body["status"], "pending", "a refused decision changes nothing");
}

pub async fn credentials_and_scopes_are_checked(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, _, id) = app.paused_refund("alice").await;
    let missing = app.send(Method::GET, "/approvals", None, None).await;
    assert_eq!((missing.status, missing.detail()), (StatusCode::UNAUTHORIZED, "Authorization header required"));
    for token in ["kern_nope_secret", "not-a-kern-token", &format!("{}x", app.admin)] {
        let bad = app.send(Method::GET, "/approvals", Some(token), None).await;
        assert_eq!((bad.status, bad.detail()), (StatusCode::UNAUTHORIZED, "Invalid authentication token"), "{token}");
    }
    let raw = app.send_with(Method::GET, "/approvals", None, &[("authorization", &app.reader)], None).await;
    assert_eq!(raw.status, StatusCode::OK, "a raw key without `Bearer` is accepted, as in the reference");
    let lower = format!("bearer {}", app.reader);
    let lower = app.send_with(Method::GET, "/approvals", None, &[("authorization", &lower)], None).await;
    assert_eq!(lower.status, StatusCode::OK, "the scheme's name is case-insensitive");

    let refused = app
        .send(Method::POST, &format!("/approvals/{id}/resolve"), Some(&app.reader), Some(json!({"status": "approved"})))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.detail(), "Insufficient permissions. Required scope(s): approvals:write");
    let delete = app.send(Method::DELETE, &format!("/approvals/{id}"), Some(&app.reader), None).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let verify = app.send(Method::GET, "/audit/verify", Some(&app.alice), None).await;
    assert_eq!(verify.status, StatusCode::FORBIDDEN);

    let key_id = kern::keys::parse_token(&app.reader).unwrap().0.to_owned();
    store.revoke_api_key(&key_id).await.unwrap();
    let revoked = app.send(Method::GET, "/approvals", Some(&app.reader), None).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "a revoked key stops working at once");
}

pub async fn resolve_decides_once_as_the_caller(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, id) = app.paused_refund("alice").await;
    let uri = format!("/approvals/{id}/resolve");
    // A field resolve does not take is refused, not dropped: `args` beside `resolution_data`
    // would approve the call unedited, a top-level `note` would be lost.
    for body in
        [json!({"status": "approved", "args": {"order_id": "A-2"}}), json!({"status": "rejected", "note": "no"})]
    {
        let refused = app.send(Method::POST, &uri, Some(&app.bob), Some(body.clone())).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(refused.detail().contains("unknown field"), "{body}: {}", refused.detail());
    }
    // A body of another type is refused; one that names no type is read as JSON, as the
    // reference reads it.
    let body = json!({"status": "approved", "resolved_by": "mallory", "resolution_data": {"note": "fine"}});
    let typed = |kind| [("content-type", kind)];
    let text = Some(Value::String(body.to_string()));
    let plain = app.send_with(Method::POST, &uri, Some(&app.bob), &typed("text/plain"), text.clone()).await;
    assert_eq!(plain.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", plain.body);
    let read = app.send(Method::GET, &format!("/approvals/{id}"), Some(&app.reader), None).await;
    assert_eq!(read.body["status"], "pending", "a refused resolve changes nothing");
    let resolved = app.send_with(Method::POST, &uri, Some(&app.bob), &typed(""), text).await;
    assert_eq!(resolved.status, StatusCode::OK);
    assert_eq!(resolved.body["status"], "approved");
    assert_eq!(resolved.body["resolved_by"], "bob", "the authenticated principal, not the body's");
    assert!(resolved.body["resolved_at"].is_i64());

    let again = app.send(Method::POST, &uri, Some(&app.alice), Some(json!({"status": "rejected"}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.detail(), "Approval is already 'approved' and cannot be resolved");
    assert_eq!(again.body["error_type"], "approval_conflict", "a name a client can branch on");

    let delete = app.send(Method::DELETE, &format!("/approvals/{id}"), Some(&app.admin), None).await;
    assert_eq!(delete.status, StatusCode::CONFLICT, "a decided row stays: the trail is append-only");

    let trail = app.send(Method::GET, &format!("/approvals/{id}/trail"), Some(&app.reader), None).await;
    let kinds: Vec<&str> = trail.body.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "vote", "approved"]);
    assert_eq!(trail.body[2]["principal"], "bob");
    let verify = app.send(Method::GET, "/audit/verify", Some(&app.admin), None).await;
    assert_eq!((verify.status, verify.body["ok"].clone()), (StatusCode::OK, json!(true)));
}

/// A user-input call's values may stand at the top level of `resolution_data`, as the
/// reference sends them; one named as a key kern reads (`note`) is still the call's value.
pub async fn a_user_input_value_named_as_a_key_is_the_calls(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (run_id, _, id) = app.paused("credit for acme", "alice").await;
    let uri = format!("/approvals/{id}/resolve");
    // Under `values`, they are only there: a top-level `note` is the admin's, another key refused.
    let twice = json!({"status": "approved", "resolution_data": {"amount": 5, "values": {"amount": 5, "note": "hi"}}});
    let refused = app.send(Method::POST, &uri, Some(&app.bob), Some(twice)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    assert!(refused.detail().contains("(amount)"), "{}", refused.detail());

    let flat = json!({"status": "approved", "resolution_data": {"amount": 5, "note": "welcome back"}});
    let resolved = app.send(Method::POST, &uri, Some(&app.bob), Some(flat)).await;
    assert_eq!(resolved.status, StatusCode::OK, "{:?}", resolved.body);
    assert_eq!(resolved.body["resolution_data"], json!({"values": {"amount": 5, "note": "welcome back"}}));
    let row = store.get_approval(&id).await.unwrap().expect("the row");
    assert_eq!(row.note(), None, "the admin wrote no note");
    let done = app.agent.continue_run(&run_id, Vec::new()).await.expect("continue");
    assert_eq!(done.tools[0].result, Some(json!("5 for acme: welcome back")), "{done:?}");

    // Beside values under `values`, a top-level `note` is the admin's.
    let (_, _, other) = app.paused("credit for acme", "alice").await;
    let wrapped = json!({"values": {"amount": 7, "note": "hi"}, "note": "checked"});
    let body = json!({"status": "approved", "resolution_data": wrapped});
    let resolved = app.send(Method::POST, &format!("/approvals/{other}/resolve"), Some(&app.bob), Some(body)).await;
    assert_eq!(resolved.status, StatusCode::OK, "{:?}", resolved.body);
    assert_eq!(resolved.body["resolution_data"], wrapped);
    let row = store.get_approval(&other).await.unwrap().expect("the row");
    assert_eq!(row.note(), Some("checked"));
}

pub async fn a_policy_decides_through_votes(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, id) = app.paused("wire 500", "dave").await;
    let uri = format!("/approvals/{id}/votes");
    let outsider = app.send(Method::POST, &uri, Some(&app.alice), Some(json!({"decision": "approve"}))).await;
    assert_eq!(outsider.status, StatusCode::FORBIDDEN, "alice lacks the finance role: {}", outsider.detail());
    let resolve = app
        .send(Method::POST, &format!("/approvals/{id}/resolve"), Some(&app.alice), Some(json!({"status": "approved"})))
        .await;
    assert_eq!(resolve.status, StatusCode::FORBIDDEN, "resolve obeys the policy too");

    let edited_no = json!({"decision": "reject", "args": {"amount": 1}});
    let edited_no = app.send(Method::POST, &uri, Some(&app.bob), Some(edited_no)).await;
    assert_eq!(edited_no.status, StatusCode::UNPROCESSABLE_ENTITY, "a rejection carries a note only");
    assert!(edited_no.detail().contains("a rejection carries a `note` only"), "{}", edited_no.detail());

    let read = app.send(Method::GET, &format!("/approvals/{id}"), Some(&app.reader), None).await;
    let before = read.headers["etag"].to_str().unwrap().to_owned();
    let first = app.send(Method::POST, &uri, Some(&app.bob), Some(json!({"decision": "approve", "note": "ok"}))).await;
    assert_eq!((first.status, first.body["status"].clone()), (StatusCode::ACCEPTED, json!("pending")));
    // A vote that does not decide changes the row all the same: a decision on what it was
    // before is refused.
    let resolve = format!("/approvals/{id}/resolve");
    let if_match = [("if-match", before.as_str())];
    let body = Some(json!({"status": "approved"}));
    let stale = app.send_with(Method::POST, &resolve, Some(&app.carol), &if_match, body).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{:?}", stale.body);
    let twice = app.send(Method::POST, &uri, Some(&app.bob), Some(json!({"decision": "approve"}))).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "one vote a principal");
    let second = app.send(Method::POST, &uri, Some(&app.carol), Some(json!({"decision": "approve"}))).await;
    assert_eq!((second.status, second.body["status"].clone()), (StatusCode::OK, json!("approved")));

    let votes = app.send(Method::GET, &uri, Some(&app.reader), None).await;
    let voters: Vec<&str> =
        votes.body["votes"].as_array().unwrap().iter().map(|v| v["principal"].as_str().unwrap()).collect();
    assert_eq!(voters, ["bob", "carol"]);
    let bad = app.send(Method::POST, &uri, Some(&app.bob), Some(json!({"decision": "maybe"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn cancel_and_delete_withdraw_a_pending_row(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, cancelled) = app.paused_refund("alice").await;
    let answer = app
        .send(
            Method::POST,
            &format!("/approvals/{cancelled}/cancel"),
            Some(&app.alice),
            Some(json!({"note": "not needed"})),
        )
        .await;
    assert_eq!((answer.status, answer.body["status"].clone()), (StatusCode::OK, json!("cancelled")));

    let (_, _, deleted) = app.paused_refund("alice").await;
    let answer = app.send(Method::DELETE, &format!("/approvals/{deleted}"), Some(&app.alice), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let row = app.send(Method::GET, &format!("/approvals/{deleted}"), Some(&app.reader), None).await;
    assert_eq!(row.body["status"], "cancelled", "withdrawn, not removed");
    let trail = app.send(Method::GET, &format!("/approvals/{deleted}/trail"), Some(&app.reader), None).await;
    assert_eq!(
        (trail.body[1]["kind"].as_str(), trail.body[1]["principal"].as_str()),
        (Some("cancelled"), Some("alice"))
    );

    // A delete is a decision like any other: only whom the row's policy names may make it.
    let (_, _, wire) = app.paused("wire 500", "dave").await;
    let uri = format!("/approvals/{wire}");
    let refused = app.send(Method::DELETE, &uri, Some(&app.alice), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert!(refused.detail().contains("finance"), "{}", refused.detail());
    let row = app.send(Method::GET, &uri, Some(&app.reader), None).await;
    assert_eq!(row.body["status"], "pending", "a refusal changes nothing");
    assert_eq!(app.send(Method::DELETE, &uri, Some(&app.carol), None).await.status, StatusCode::NO_CONTENT);

    // A body field kern's own routes do not know is refused, not dropped.
    let (_, _, misspelt) = app.paused_refund("alice").await;
    let body = json!({"decision": "approve", "arg": {"order_id": "B-2"}});
    let refused = app.send(Method::POST, &format!("/approvals/{misspelt}/votes"), Some(&app.alice), Some(body)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    let body = json!({"note": "fine", "arg": {"amount": 1}});
    let refused = app.send(Method::POST, &format!("/approvals/{misspelt}/cancel"), Some(&app.alice), Some(body)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    assert!(refused.detail().contains("arg"), "{}", refused.detail());
}

pub async fn if_match_and_idempotency_key_guard_a_resolve(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, id) = app.paused_refund("alice").await;
    let uri = format!("/approvals/{id}/resolve");
    // An If-Match with no tag in it matches no row: refused, not let through unchecked.
    let empty = [("if-match", "")];
    let empty = app.send_with(Method::POST, &uri, Some(&app.alice), &empty, Some(json!({"status": "approved"}))).await;
    assert_eq!(empty.status, StatusCode::PRECONDITION_FAILED, "{:?}", empty.body);
    let stale = [("idempotency-key", "retry-0"), ("if-match", "\"old\"")];
    let stale = app.send_with(Method::POST, &uri, Some(&app.alice), &stale, Some(json!({"status": "approved"}))).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let etag = app.send(Method::GET, &format!("/approvals/{id}"), Some(&app.reader), None).await.headers["etag"]
        .to_str()
        .unwrap()
        .to_owned();

    // The condition is part of the request: the key of the stale one, sent with the row's ETag
    // now, is told to change rather than given the kept 412 as if the row had moved again.
    let tags = format!("\"old\", {etag}");
    let reused = [("idempotency-key", "retry-0"), ("if-match", tags.as_str())];
    let reused =
        app.send_with(Method::POST, &uri, Some(&app.alice), &reused, Some(json!({"status": "approved"}))).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reused.body);
    assert!(reused.detail().contains("first used with another request"), "{}", reused.detail());
    // If-Match takes a list: one of its tags matching is enough.
    let key = [("idempotency-key", "retry-1"), ("if-match", tags.as_str())];
    let first = app.send_with(Method::POST, &uri, Some(&app.alice), &key, Some(json!({"status": "approved"}))).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let repeat = app.send_with(Method::POST, &uri, Some(&app.alice), &key, Some(json!({"status": "approved"}))).await;
    assert_eq!(repeat.status, StatusCode::OK, "a repeated key gets the first answer, not a 409");
    assert_eq!(repeat.body, first.body);
    assert_eq!(repeat.headers.get("etag"), first.headers.get("etag"), "a replay carries the row's ETag");
    assert!(first.headers.get("etag").is_some());
    let changed = app.send_with(Method::POST, &uri, Some(&app.alice), &key, Some(json!({"status": "rejected"}))).await;
    assert_eq!(changed.status, StatusCode::UNPROCESSABLE_ENTITY, "the key was used with another request");
    assert!(changed.detail().contains("Idempotency-Key"), "{}", changed.detail());
    let long = "k".repeat(256);
    let long = app
        .send_with(
            Method::POST,
            &uri,
            Some(&app.alice),
            &[("idempotency-key", &long)],
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let empty = app
        .send_with(
            Method::POST,
            &uri,
            Some(&app.alice),
            &[("idempotency-key", "")],
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let other = app
        .send_with(
            Method::POST,
            &uri,
            Some(&app.alice),
            &[("idempotency-key", "retry-2")],
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
}

pub async fn isolation_hides_other_users_rows(store: Arc<dyn Store>) {
    let app = App::with(store, |builder| builder.user_isolation(true)).await;
    let (bobs_run, bobs_session, bobs) = app.paused_refund("bob").await;
    let (alices_run, _, alices) = app.paused_refund("alice").await;

    let hidden = app.send(Method::GET, &format!("/approvals/{bobs}"), Some(&app.alice), None).await;
    assert_eq!((hidden.status, hidden.detail()), (StatusCode::NOT_FOUND, "Approval not found"));
    let own = app.send(Method::GET, &format!("/approvals/{alices}"), Some(&app.alice), None).await;
    assert_eq!(own.status, StatusCode::OK);
    // Every other way to a row or run of bob's is closed to alice as if it did not exist.
    for (method, uri) in [
        (Method::GET, format!("/approvals/{bobs}/status")),
        (Method::GET, format!("/approvals/{bobs}/trail")),
        (Method::GET, format!("/approvals/{bobs}/votes")),
        (Method::DELETE, format!("/approvals/{bobs}")),
        (Method::GET, format!("/runs/{bobs_run}")),
        (Method::GET, format!("/agents/ops/runs/{bobs_run}")),
    ] {
        let answer = app.send(method.clone(), &uri, Some(&app.alice), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {uri}: {:?}", answer.body);
    }
    let form = json!(format!("session_id={bobs_session}&stream=false"));
    let continued =
        app.send(Method::POST, &format!("/agents/ops/runs/{bobs_run}/continue"), Some(&app.alice), Some(form)).await;
    assert_eq!(continued.status, StatusCode::NOT_FOUND, "{:?}", continued.body);
    let count = app.send(Method::GET, "/approvals/count", Some(&app.alice), None).await;
    assert_eq!(count.body, json!({"count": 1}), "her own row alone");
    let runs = app.send(Method::GET, "/runs", Some(&app.alice), None).await;
    let listed: Vec<&str> =
        runs.body["data"].as_array().unwrap().iter().filter_map(|run| run["run_id"].as_str()).collect();
    assert_eq!(listed, [alices_run.as_str()]);
    assert_eq!(
        app.send(Method::GET, &format!("/approvals/{bobs}"), Some(&app.admin), None).await.status,
        StatusCode::OK
    );
    let listed = app.send(Method::GET, "/approvals?user_id=bob", Some(&app.alice), None).await;
    assert_eq!(listed.body["meta"]["total_count"], 1, "the query's user is replaced by the caller's");
    assert_eq!(listed.body["data"][0]["id"], alices.as_str());
    let resolve = app
        .send(
            Method::POST,
            &format!("/approvals/{alices}/resolve"),
            Some(&app.alice),
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(resolve.status, StatusCode::NOT_FOUND, "under isolation only admins decide");
    let admin = app
        .send(
            Method::POST,
            &format!("/approvals/{bobs}/resolve"),
            Some(&app.admin),
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(admin.status, StatusCode::OK);
}
