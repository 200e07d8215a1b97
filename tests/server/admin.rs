//! The admin routes of the `kern` command: API keys (`/keys`, admins only) and the listing of
//! runs (`GET /runs`).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use kern::db::Store;
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
    assert!(!listed.body.to_string().contains("secret") && !listed.body.to_string().contains("kern_"));

    for bad in [json!({"principal": "eve", "scopes": ["root"]}), json!({"principal": "eve", "scopes": []})] {
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

    for bad in ["/runs?status=done", "/runs?limit=0", "/runs?cursor=x"] {
        assert_eq!(
            app.send(Method::GET, bad, Some(&app.reader), None).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    assert_eq!(app.send(Method::GET, "/runs", None, None).await.status, StatusCode::UNAUTHORIZED);
}
