//! API keys: what is saved comes back, listed oldest first; a revocation keeps its first time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kern::Error;
use kern::db::Store;
use kern::keys::{ApiKey, Scope};

use crate::fixtures::{now, seconds};
use crate::harness::unique_name;

/// A key of `principal` issued at `created_at`, with a fresh id.
fn key(principal: &str, created_at: DateTime<Utc>) -> ApiKey {
    let issued = ApiKey::issue(principal, vec!["ops".into(), "oncall".into()], vec![Scope::ApprovalsRead]);
    ApiKey { id: unique_name(), created_at, ..issued.key }
}

pub async fn keys_are_saved_read_and_listed_oldest_first(store: Arc<dyn Store>) {
    assert!(store.api_keys().await.unwrap().is_empty());
    let t0 = now() - seconds(60);
    let newest = ApiKey { scopes: Scope::ALL.to_vec(), roles: Vec::new(), ..key("root", t0 + seconds(10)) };
    let oldest = key("alice", t0);
    // Two keys of the same time are listed by id.
    let (mut tie_a, mut tie_b) = (key("bob", t0 + seconds(5)), key("carol", t0 + seconds(5)));
    tie_a.id = format!("a-{}", tie_a.id);
    tie_b.id = format!("b-{}", tie_b.id);
    let revoked = ApiKey { revoked_at: Some(t0 + seconds(20)), ..key("dave", t0 + seconds(1)) };
    for saved in [&newest, &tie_b, &oldest, &revoked, &tie_a] {
        store.save_api_key(saved).await.unwrap();
    }

    assert_eq!(store.api_key(&newest.id).await.unwrap(), Some(newest.clone()));
    assert_eq!(store.api_key(&revoked.id).await.unwrap(), Some(revoked.clone()), "revoked keys are read too");
    assert_eq!(store.api_key("no-such-key").await.unwrap(), None);
    assert_eq!(store.api_keys().await.unwrap(), [oldest, revoked, tie_a, tie_b, newest]);
}

pub async fn a_revoked_key_keeps_its_first_revocation(store: Arc<dyn Store>) {
    let (revoked, kept) = (key("alice", now()), key("bob", now()));
    store.save_api_key(&revoked).await.unwrap();
    store.save_api_key(&kept).await.unwrap();

    let before = now();
    let first = store.revoke_api_key(&revoked.id).await.unwrap().expect("the key exists");
    let revoked_at = first.revoked_at.expect("revoked");
    assert!(revoked_at >= before && revoked_at <= now(), "revoked now: {revoked_at}");
    assert_eq!(first, ApiKey { revoked_at: Some(revoked_at), ..revoked.clone() });
    assert_eq!(store.api_key(&revoked.id).await.unwrap(), Some(first.clone()));

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(store.revoke_api_key(&revoked.id).await.unwrap(), Some(first.clone()), "the first time stays");
    assert_eq!(store.api_key(&revoked.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.api_key(&kept.id).await.unwrap(), Some(kept.clone()), "other keys are left alone");
    assert_eq!(store.revoke_api_key("no-such-key").await.unwrap(), None);
    assert_eq!(store.api_keys().await.unwrap().len(), 2);
}

pub async fn a_key_that_could_not_be_looked_up_is_refused_and_nothing_is_stored(store: Arc<dyn Store>) {
    let long = "k".repeat(kern::limits::MAX_KEY_LEN + 1);
    let refusals = [
        (ApiKey { principal: "ali\u{0}ce".into(), ..key("alice", now()) }, "api_key.principal"),
        (ApiKey { id: "id\u{0}nul".into(), ..key("alice", now()) }, "api_key.id"),
        (ApiKey { id: long, ..key("alice", now()) }, "api_key.id"),
        (ApiKey { roles: vec!["ops".into(), "r\u{0}le".into()], ..key("alice", now()) }, "api_key.roles"),
    ];
    for (refused, field) in refusals {
        let err = store.save_api_key(&refused).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: f, .. } if f == field), "{err:?}");
        assert_eq!(store.api_key(&refused.id).await.unwrap(), None);
    }
    assert!(store.api_keys().await.unwrap().is_empty(), "nothing is stored");
}

pub async fn a_taken_key_id_is_refused(store: Arc<dyn Store>) {
    let first = key("alice", now());
    store.save_api_key(&first).await.unwrap();
    let twin = ApiKey { principal: "mallory".into(), scopes: vec![Scope::Admin], ..first.clone() };
    let err = store.save_api_key(&twin).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(store.api_keys().await.unwrap(), [first]);
}
