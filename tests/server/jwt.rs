//! JWT bearer tokens (the `jwt` feature): HS256 and RS256 tokens sign callers in as their
//! `sub`, with the roles and scopes they carry; expiry, audience and signature are checked, and
//! API keys keep working beside them.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kern::db::Store;
use kern_server::{Auth, Jwt};
use serde_json::{Value, json};

use crate::harness::App;

/// A 2048-bit RSA key made for these tests only (PKCS#1 DER), and its public modulus.
const RSA_KEY: &[u8] = include_bytes!("jwt_test_key.der");
const RSA_MODULUS: &str = "5f8Kf55KV-O0cWx7Oq-xd_O1XlKpVtwPuZQQy1JgbkyRknLOFwyXubjoltkWRnAq9W_FirsWan9QoFZqYnaHac9QCHcqNPXvLMLvlLVc_WLaRc40tRUj20kL6zFFdx3MCXno63KpVqh51zhKsFCsdTxOCeNkACCP83pJuB_hWc2DdS21Ra4t5jRVJYqovFGjAxNLrmuXMGgti9jiUyAENUq6I_rM0PPmamKuVCw0G2d0MlQku-Gy21RxcrBE95v-aZo0MyDLYT-JexNq4SvF_syKtCwT5m743yqWeqmmjspRmtudtaelMv9Sa-zGJyJb0jyMrwxjGr3AE5jdY7kIrQ";

fn claims(sub: &str, scopes: &[&str], expires_in: i64, audience: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "roles": ["finance"], "scopes": scopes, "exp": now + expires_in, "aud": audience})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
}

pub async fn hs256_tokens_sign_callers_in_and_are_checked(store: Arc<dyn Store>) {
    let jwt = Jwt::hs256(b"test-secret").audience("kern");
    let app = App::with(store, |builder| builder.auth(Auth::jwt(jwt))).await;
    let (_, _, id) = app.paused_refund("alice").await;
    let writer =
        hs256(&claims("dave", &["approvals:read", "approvals:write", "other:scope"], 600, "kern"), b"test-secret");
    let listed = app.send(Method::GET, "/approvals", Some(&writer), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let resolved = app
        .send(Method::POST, &format!("/approvals/{id}/resolve"), Some(&writer), Some(json!({"status": "approved"})))
        .await;
    assert_eq!((resolved.status, resolved.body["resolved_by"].clone()), (StatusCode::OK, json!("dave")));

    // Its roles are the token's: `finance` may vote on a wire, no role may not.
    let (_, _, wire) = app.paused("wire 500", "zoe").await;
    let votes = format!("/approvals/{wire}/votes");
    let vote = app.send(Method::POST, &votes, Some(&writer), Some(json!({"decision": "approve"}))).await;
    assert_eq!(vote.status, StatusCode::ACCEPTED, "{:?}", vote.body);
    let mut roleless = claims("frank", &["approvals:read", "approvals:write"], 600, "kern");
    roleless["roles"] = json!([]);
    let roleless = hs256(&roleless, b"test-secret");
    let vote = app.send(Method::POST, &votes, Some(&roleless), Some(json!({"decision": "approve"}))).await;
    assert_eq!(vote.status, StatusCode::FORBIDDEN, "{:?}", vote.body);
    // Scopes also come as one space-separated `scope`, as identity providers send them.
    let mut spaced = claims("gina", &[], 600, "kern");
    spaced.as_object_mut().unwrap().remove("scopes");
    spaced["scope"] = json!("approvals:read approvals:write");
    let (_, _, third) = app.paused_refund("alice").await;
    let resolved = app
        .send(
            Method::POST,
            &format!("/approvals/{third}/resolve"),
            Some(&hs256(&spaced, b"test-secret")),
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!((resolved.status, resolved.body["resolved_by"].clone()), (StatusCode::OK, json!("gina")));

    let reader = hs256(&claims("erin", &["approvals:read"], 600, "kern"), b"test-secret");
    let (_, _, other) = app.paused_refund("alice").await;
    let refused = app
        .send(Method::POST, &format!("/approvals/{other}/resolve"), Some(&reader), Some(json!({"status": "approved"})))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let expired = hs256(&claims("dave", &["admin"], -600, "kern"), b"test-secret");
    let answer = app.send(Method::GET, "/approvals", Some(&expired), None).await;
    assert_eq!((answer.status, answer.detail()), (StatusCode::UNAUTHORIZED, "Token has expired"));
    let elsewhere = hs256(&claims("dave", &["admin"], 600, "billing"), b"test-secret");
    let answer = app.send(Method::GET, "/approvals", Some(&elsewhere), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.detail().starts_with("Invalid token audience"), "{}", answer.detail());
    let mut anywhere = claims("dave", &["admin"], 600, "kern");
    anywhere.as_object_mut().unwrap().remove("aud");
    let answer = app.send(Method::GET, "/approvals", Some(&hs256(&anywhere, b"test-secret")), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "a token for no audience is not one for kern");
    assert!(answer.detail().contains("aud"), "{}", answer.detail());
    let mut early = claims("dave", &["admin"], 1200, "kern");
    early["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
    let answer = app.send(Method::GET, "/approvals", Some(&hs256(&early, b"test-secret")), None).await;
    assert_eq!((answer.status, answer.detail()), (StatusCode::UNAUTHORIZED, "Token is not valid yet"));
    let forged = hs256(&claims("dave", &["admin"], 600, "kern"), b"guessed");
    let answer = app.send(Method::GET, "/approvals", Some(&forged), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.detail().starts_with("Invalid token: "), "{}", answer.detail());

    let key = app.send(Method::GET, "/approvals", Some(&app.reader), None).await;
    assert_eq!(key.status, StatusCode::OK, "API keys work beside JWTs");
}

pub async fn rs256_tokens_are_checked_with_the_public_key(store: Arc<dyn Store>) {
    let jwt = Jwt::rs256(RSA_MODULUS, "AQAB").expect("a public key");
    let app = App::with(store, |builder| builder.auth(Auth::jwt(jwt))).await;
    let rs256 = |claims: &Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_der(RSA_KEY)).unwrap()
    };
    let mut for_anyone = claims("dave", &["approvals:read"], 600, "");
    for_anyone.as_object_mut().unwrap().remove("aud");
    let answer = app.send(Method::GET, "/approvals/count", Some(&rs256(&for_anyone)), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    // A server with no audience of its own takes no token minted for an audience.
    let for_billing = claims("dave", &["approvals:read"], 600, "billing");
    let answer = app.send(Method::GET, "/approvals/count", Some(&rs256(&for_billing)), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
    assert!(answer.detail().starts_with("Invalid token audience"), "{}", answer.detail());
    let mut symmetric = claims("dave", &["admin"], 600, "");
    symmetric.as_object_mut().unwrap().remove("aud");
    let answer =
        app.send(Method::GET, "/approvals/count", Some(&hs256(&symmetric, RSA_MODULUS.as_bytes())), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "an HS256 token is not taken where RS256 is expected");
    assert!(answer.detail().starts_with("Invalid token: "), "refused for its algorithm: {}", answer.detail());
}
