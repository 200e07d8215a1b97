//! The inbox's pages and forms through the router: sign-in by API key and its cookie, the
//! headers every page carries, CSRF and origin checks on forms (behind a proxy, from the public
//! origin the server is told), decisions through the API's path (conflicts included), scopes, a
//! revoked key signing its session out, and the session reading (never writing) the API, and a
//! stuck run recovered.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use kern::db::Store;
use kern::run::RunRecord;
use serde_json::{Value, json};

use crate::harness::{Answer, App, MEMO_BODY};

/// Posts the sign-in form with `key`, as a browser does once it has read the form (its token
/// and the form's cookie), with `headers` besides.
async fn post_sign_in(app: &App, key: &str, headers: &[(&str, &str)]) -> Answer {
    let form = app.send(Method::GET, "/ui/sign-in", None, None).await;
    let cookie = form.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let body = Value::String(format!("key={key}&csrf={}", csrf_of(&form)));
    let mut headers = headers.to_vec();
    headers.push(("cookie", &cookie));
    app.send_with(Method::POST, "/ui/sign-in", None, &headers, Some(body)).await
}

/// Signs in with `token`: the session cookie (`kern_session=...`) and the page's CSRF token.
async fn sign_in(app: &App, token: &str) -> (String, String) {
    let answer = post_sign_in(app, token, &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{:?}", answer.body);
    let cookie = answer.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "the session cookie is {attribute}: {cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = app.send_with(Method::GET, "/", None, &[("cookie", &session)], None).await;
    assert_eq!(page.status, StatusCode::OK);
    (session, csrf_of(&page))
}

fn html(answer: &Answer) -> &str {
    answer.body.as_str().unwrap_or_default()
}

fn csrf_of(page: &Answer) -> String {
    let (_, rest) = html(page).split_once("name=\"csrf\" value=\"").expect("a form with a CSRF token");
    rest.split('"').next().unwrap().to_owned()
}

async fn row_status(app: &App, id: &str) -> Value {
    let row = app.send(Method::GET, &format!("/approvals/{id}"), Some(&app.admin), None).await;
    row.body["status"].clone()
}

pub async fn signing_in_opens_a_session_whose_forms_are_guarded(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, _, row) = app.paused_refund("dave").await;

    let anonymous = app.send(Method::GET, "/", None, None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers["location"], "/ui/sign-in");
    let wrong = post_sign_in(&app, "kern_nobody_secret", &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(html(&wrong).contains("signs nobody in"));
    // The sign-in form carries a token of its own too: without its cookie, or with another
    // token, a form posted by another site's page signs nobody in.
    let form = Value::String(format!("key={}&csrf=guessed", app.admin));
    let forged =
        app.send_with(Method::POST, "/ui/sign-in", None, &[("cookie", "kern_sign_in=other")], Some(form)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.headers.get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("kern_session=")));
    let bare = app.send(Method::POST, "/ui/sign-in", None, Some(Value::String(format!("key={}", app.admin)))).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    // The form's cookie is kept to the form, and a browser keeps its token across loads: a
    // sign-in page loaded in another tab leaves this one's form valid.
    let form = app.send(Method::GET, "/ui/sign-in", None, None).await;
    let cookie = form.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui/sign-in"] {
        assert!(cookie.contains(attribute), "the sign-in cookie is {attribute}: {cookie}");
    }
    let sent = cookie.split(';').next().unwrap().to_owned();
    let again = app.send_with(Method::GET, "/ui/sign-in", None, &[("cookie", &sent)], None).await;
    assert_eq!(csrf_of(&again), csrf_of(&form));
    let body = Value::String(format!("key={}&csrf={}", app.admin, csrf_of(&form)));
    let signed_in = app.send_with(Method::POST, "/ui/sign-in", None, &[("cookie", &sent)], Some(body)).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let spent = signed_in.headers.get_all("set-cookie").iter().map(|c| c.to_str().unwrap()).collect::<Vec<_>>();
    assert!(spent.iter().any(|c| c.starts_with("kern_sign_in=;") && c.contains("Max-Age=0")), "{spent:?}");

    let (session, csrf) = sign_in(&app, &app.admin).await;
    let inbox = app.send_with(Method::GET, "/", None, &[("cookie", &session)], None).await;
    let policy = inbox.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(html(&inbox).contains(&format!("/ui/approvals/{row}")), "the pending row is listed");
    let listed_etag = format!("name=\"etag\" value=\"&#34;{row}-");
    assert!(html(&inbox).contains(&listed_etag), "an approval from the list names the row as listed");

    let decide = format!("/ui/approvals/{row}");
    let cookie = [("cookie", session.as_str())];
    let without = app.send_with(Method::POST, &decide, None, &cookie, Some(json!("action=approve"))).await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert!(html(&without).contains("security token"));
    let forged = app.send_with(Method::POST, &decide, None, &cookie, Some(json!("action=approve&csrf=00"))).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let form = format!("action=approve&csrf={csrf}");
    let elsewhere = [("cookie", session.as_str()), ("origin", "https://evil.example"), ("host", "kern.local")];
    let cross = app.send_with(Method::POST, &decide, None, &elsewhere, Some(Value::String(form.clone()))).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(row_status(&app, &row).await, "pending", "a refused form changes nothing");

    // A decision made on a view of the row older than the row is refused.
    let detail = app.send_with(Method::GET, &decide, None, &cookie, None).await;
    let (_, rest) = html(&detail).split_once("name=\"etag\" value=\"").expect("the decision forms carry the ETag");
    assert!(rest.starts_with(&format!("&#34;{row}-")), "{}", &rest[..40]);
    let stale = format!("{form}&etag=%22{row}-1%22");
    let outdated = app.send_with(Method::POST, &decide, None, &cookie, Some(Value::String(stale))).await;
    assert_eq!(outdated.status, StatusCode::PRECONDITION_FAILED);
    assert!(html(&outdated).contains("changed since you opened it"));
    assert_eq!(row_status(&app, &row).await, "pending");
    let mangled = format!("action=reject&note=%FF&csrf={csrf}");
    let mangled = app.send_with(Method::POST, &decide, None, &cookie, Some(Value::String(mangled))).await;
    assert_eq!(mangled.status, StatusCode::UNPROCESSABLE_ENTITY, "a note that is not UTF-8 is not stored mangled");
    assert!(html(&mangled).contains("`note` is not valid UTF-8"), "{}", html(&mangled));
    assert_eq!(row_status(&app, &row).await, "pending");

    let approved = app.send_with(Method::POST, &decide, None, &cookie, Some(Value::String(form.clone()))).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    let row_now = app.send(Method::GET, &format!("/approvals/{row}"), Some(&app.admin), None).await;
    assert_eq!(
        (row_now.body["status"].as_str(), row_now.body["resolved_by"].as_str()),
        (Some("approved"), Some("root"))
    );
    let again = app.send_with(Method::POST, &decide, None, &cookie, Some(Value::String(form.clone()))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(html(&again).contains("already approved by you at"), "a second press: {}", html(&again));
    // Someone else first: named.
    let (_, _, other) = app.paused_refund("dave").await;
    let resolve = format!("/approvals/{other}/resolve");
    let by_bob = app.send(Method::POST, &resolve, Some(&app.bob), Some(json!({"status": "approved"}))).await;
    assert_eq!(by_bob.status, StatusCode::OK);
    let late_form = Some(Value::String(form));
    let late = app.send_with(Method::POST, &format!("/ui/approvals/{other}"), None, &cookie, late_form).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert!(html(&late).contains("already approved by bob at"), "{}", html(&late));

    let key_id = kern::keys::parse_token(&app.admin).unwrap().0.to_owned();
    store.revoke_api_key(&key_id).await.unwrap();
    let revoked = app.send_with(Method::GET, "/", None, &cookie, None).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "a revoked key signs its session out");
}

pub async fn a_session_reads_the_api_but_never_writes_it(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (run, _, row) = app.paused_refund("dave").await;
    let (session, _) = sign_in(&app, &app.admin).await;
    let cookie = [("cookie", session.as_str())];
    let polled = app.send_with(Method::GET, &format!("/runs/{run}"), None, &cookie, None).await;
    assert_eq!(polled.status, StatusCode::OK);
    assert_eq!(polled.headers["cache-control"], "no-store", "an answer read with a cookie is kept from caches");
    // Only what the pages read: no keys, no whole trail, no listing.
    for unread in ["/keys", "/audit/events", "/audit/verify", "/approvals", "/runs"] {
        let refused = app.send_with(Method::GET, unread, None, &cookie, None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{unread}");
    }
    let resolve = format!("/approvals/{row}/resolve");
    let written = app.send_with(Method::POST, &resolve, None, &cookie, Some(json!({"status": "approved"}))).await;
    assert_eq!(written.status, StatusCode::UNAUTHORIZED);
    assert_eq!(row_status(&app, &row).await, "pending");

    // Signing in again from the same browser ends the session it held.
    let again = post_sign_in(&app, &app.admin, &cookie).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let held = app.send_with(Method::GET, &format!("/runs/{run}"), None, &cookie, None).await;
    assert_eq!(held.status, StatusCode::UNAUTHORIZED, "the session signed in over is over");
}

pub async fn behind_https_the_session_cookie_is_the_hosts_own(store: Arc<dyn Store>) {
    let app = App::with(store, |builder| builder.secure_cookies(true)).await;
    let set = post_sign_in(&app, &app.admin, &[]).await.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-kern_session=") && set.contains("; Secure") && set.contains("Path=/;"), "{set}");
    let (session, csrf) = sign_in(&app, &app.admin).await;
    assert!(session.starts_with("__Host-kern_session="), "{session}");
    let cookie = [("cookie", session.as_str())];
    assert_eq!(app.send_with(Method::GET, "/", None, &cookie, None).await.status, StatusCode::OK);
    // The same token under the plain name, as another site of the domain could plant one, is
    // not read.
    let planted = session.replacen("__Host-kern_session", "kern_session", 1);
    let page = app.send_with(Method::GET, "/", None, &[("cookie", planted.as_str())], None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "not signed in");
    // Signing out clears it under its own name.
    let out =
        app.send_with(Method::POST, "/ui/sign-out", None, &cookie, Some(Value::String(format!("csrf={csrf}")))).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("__Host-kern_session=;") && cleared.contains("; Secure"), "{cleared}");
}

pub async fn signing_out_ends_the_session_and_clears_its_cookie(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (session, csrf) = sign_in(&app, &app.admin).await;
    let cookie = [("cookie", session.as_str())];
    let forged = app.send_with(Method::POST, "/ui/sign-out", None, &cookie, Some(json!("csrf=00"))).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send_with(Method::GET, "/", None, &cookie, None).await.status, StatusCode::OK, "still signed in");

    // Posted from the inbox on an https page: the cookie is cleared `Secure`.
    let https = [("cookie", session.as_str()), ("origin", "https://kern.local"), ("host", "kern.local")];
    let form = Value::String(format!("csrf={csrf}"));
    let out = app.send_with(Method::POST, "/ui/sign-out", None, &https, Some(form)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.headers["location"], "/ui/sign-in");
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("kern_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert!(cleared.contains("; Secure"), "{cleared}");
    let after = app.send_with(Method::GET, "/", None, &cookie, None).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the session is over on the server, cookie or not");
}

pub async fn a_reader_looks_but_does_not_decide(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (run_id, _, row) = app.paused_refund("dave").await;
    let (session, csrf) = sign_in(&app, &app.reader).await;
    let cookie = [("cookie", session.as_str())];
    let detail = app.send_with(Method::GET, &format!("/ui/approvals/{row}"), None, &cookie, None).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(html(&detail).contains("Refund an order"), "the tool's description is shown");
    let form = Value::String(format!("action=reject&note=no&csrf={csrf}"));
    let refused = app.send_with(Method::POST, &format!("/ui/approvals/{row}"), None, &cookie, Some(form)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(html(&refused).contains("approvals:write"));
    assert_eq!(row_status(&app, &row).await, "pending");
    let run = app.send_with(Method::GET, &format!("/ui/runs/{run_id}"), None, &cookie, None).await;
    assert_eq!(run.status, StatusCode::OK);
    assert!(html(&run).contains("The run waits for 1 approval."));
}

pub async fn assets_are_served_from_the_binary(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let css = app.send(Method::GET, "/ui/assets/inbox.css", None, None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(css.headers["cache-control"].to_str().unwrap().contains("immutable"));
    let js = app.send(Method::GET, "/ui/assets/inbox.js", None, None).await;
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert!(html(&js).contains("EventSource"));
    let missing = app.send(Method::GET, "/ui/assets/nope.js", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

pub async fn a_run_left_running_is_recovered_from_its_page(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (run_id, _, row) = app.paused_refund("dave").await;
    let approve = json!({"status": "approved"});
    let approved = app.send(Method::POST, &format!("/approvals/{row}/resolve"), Some(&app.admin), Some(approve)).await;
    assert_eq!(approved.status, StatusCode::OK);
    let (session, csrf) = sign_in(&app, &app.admin).await;
    let cookie = [("cookie", session.as_str())];
    let page = format!("/ui/runs/{run_id}");

    let paused = app.send_with(Method::GET, &page, None, &cookie, None).await;
    assert!(html(&paused).contains("id=\"continue\""), "a paused run whose rows are decided can continue");
    assert!(!html(&paused).contains("id=\"recover\""));

    // A continue that claimed the run and died an hour ago: the run stays `running`.
    let claimed = store.claim_run(&run_id).await.unwrap();
    let abandoned = RunRecord { updated_at: claimed.updated_at - chrono::TimeDelta::hours(1), ..claimed };
    store.save_runs(&[abandoned], &[], &[]).await.unwrap();
    let stuck = app.send_with(Method::GET, &page, None, &cookie, None).await;
    assert!(html(&stuck).contains("id=\"recover\"") && !html(&stuck).contains("id=\"continue\""));
    let form = Value::String(format!("csrf={csrf}"));
    let recovered = app.send_with(Method::POST, &format!("{page}/recover"), None, &cookie, Some(form.clone())).await;
    assert_eq!(recovered.status, StatusCode::SEE_OTHER);
    let run = app.send(Method::GET, &format!("/runs/{run_id}"), Some(&app.admin), None).await;
    assert_eq!(run.body["status"], "COMPLETED");

    let again = app.send_with(Method::POST, &format!("{page}/continue"), None, &cookie, Some(form)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a completed run does not continue");
    assert!(html(&again).contains("The run could not go on"));
}

pub async fn a_cancelled_call_shows_in_the_history_and_its_exports(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, row) = app.paused_refund("dave").await;
    let (session, csrf) = sign_in(&app, &app.admin).await;
    let cookie = [("cookie", session.as_str())];
    let form = Value::String(format!("action=cancel&note=duplicate%20request&csrf={csrf}"));
    let cancelled = app.send_with(Method::POST, &format!("/ui/approvals/{row}"), None, &cookie, Some(form)).await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    assert_eq!(row_status(&app, &row).await, "cancelled");

    let detail = app.send_with(Method::GET, &format!("/ui/approvals/{row}"), None, &cookie, None).await;
    assert!(html(&detail).contains("duplicate request") && html(&detail).contains(">verified<"));
    let history = app.send_with(Method::GET, "/ui/history?status=cancelled", None, &cookie, None).await;
    assert!(html(&history).contains(&format!("/ui/approvals/{row}")));
    let jsonl =
        app.send_with(Method::GET, "/ui/history/export?format=jsonl&status=cancelled", None, &cookie, None).await;
    assert_eq!(jsonl.headers["content-type"], "application/x-ndjson; charset=utf-8");
    // One row: one line of JSON, which the harness reads as the body's JSON.
    assert_eq!((jsonl.body["id"].as_str(), jsonl.body["resolved_by"].as_str()), (Some(row.as_str()), Some("root")));
    let csv = app.send_with(Method::GET, "/ui/history/export?format=csv&status=cancelled", None, &cookie, None).await;
    assert_eq!(
        (csv.headers["cache-control"].to_str().unwrap(), csv.headers["x-content-type-options"].to_str().unwrap()),
        ("no-store", "nosniff")
    );
    let csv = html(&csv);
    assert!(csv.starts_with("id,status,tool_name,") && csv.contains(&row) && csv.contains("duplicate request"));
    let bad = app.send_with(Method::GET, "/ui/history/export?format=xml", None, &cookie, None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A filter named twice is the error page, not a bare 400.
    let twice = app.send_with(Method::GET, "/ui/history?status=approved&status=rejected", None, &cookie, None).await;
    assert_eq!(twice.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(twice.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html(&twice).contains("could not be read"), "{}", html(&twice));
}

pub async fn approving_from_the_list_returns_to_the_list(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, row) = app.paused_refund("dave").await;
    let (session, csrf) = sign_in(&app, &app.admin).await;
    let cookie = [("cookie", session.as_str())];
    // Back to the list as it was filtered; a `next` elsewhere is not followed.
    let rows = app.send_with(Method::GET, "/ui/rows?tool=refund_order", None, &cookie, None).await;
    assert!(html(&rows).contains("name=\"next\" value=\"/?tool=refund_order\""), "{}", html(&rows));
    let (_, _, elsewhere) = app.paused_refund("dave").await;
    let form = Value::String(format!("action=approve&next=%2F%2Fevil.example&csrf={csrf}"));
    let approved = app.send_with(Method::POST, &format!("/ui/approvals/{elsewhere}"), None, &cookie, Some(form)).await;
    assert_eq!(approved.headers["location"].to_str().unwrap(), format!("/ui/approvals/{elsewhere}"));
    let form = Value::String(format!("action=approve&next=%2F%3Ftool%3Drefund_order&csrf={csrf}"));
    let approved = app.send_with(Method::POST, &format!("/ui/approvals/{row}"), None, &cookie, Some(form)).await;
    let back = (approved.status, approved.headers["location"].to_str().unwrap());
    assert_eq!(back, (StatusCode::SEE_OTHER, "/?tool=refund_order"));
    assert_eq!(row_status(&app, &row).await, "approved");
    let rows = app.send_with(Method::GET, "/ui/rows", None, &cookie, None).await;
    assert!(html(&rows).contains("data-total=\"0\"") && html(&rows).contains("Nothing waits for you"));

    // A row whose policy allows no edit: edited arguments are refused, not dropped.
    let (_, _, row) = app.paused_refund("dave").await;
    let form = Value::String(format!("action=approve&note=checked+twice&arg.order_id=B-2&csrf={csrf}"));
    let refused = app.send_with(Method::POST, &format!("/ui/approvals/{row}"), None, &cookie, Some(form)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&refused).contains("cannot be edited"), "{}", html(&refused));
    assert!(html(&refused).contains("value=\"checked twice\""), "the note is kept for the next try");
    assert_eq!(row_status(&app, &row).await, "pending", "a refused decision changes nothing");

    // A row that allows edits: an argument its schema does not have is refused, not dropped.
    let (_, _, row) = app.paused("raise the limit", "dave").await;
    let uri = format!("/ui/approvals/{row}");
    let page = app.send_with(Method::GET, &uri, None, &cookie, None).await;
    assert!(html(&page).contains("name=\"arg.limit_eur\""), "the stored schema's fields are offered");
    let form = Value::String(format!("action=approve&arg.limit_eur=2000&arg.bogus=1&csrf={csrf}"));
    let refused = app.send_with(Method::POST, &uri, None, &cookie, Some(form)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&refused).contains("`bogus` is not an argument"), "{}", html(&refused));
    assert_eq!(row_status(&app, &row).await, "pending");
    let form = Value::String(format!("action=approve&arg.limit_eur=2000&csrf={csrf}"));
    let edited = app.send_with(Method::POST, &uri, None, &cookie, Some(form)).await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", html(&edited));
    let stored = app.send(Method::GET, &format!("/approvals/{row}"), Some(&app.admin), None).await;
    assert_eq!(stored.body["resolution_data"]["args"], json!({"limit_eur": 2000}));
}

pub async fn a_quorum_row_shows_how_far_it_has_come_and_who_voted(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, _, row) = app.paused("wire 500", "dave").await;
    let uri = format!("/ui/approvals/{row}");
    let votes = format!("/approvals/{row}/votes");
    let vote = app.send(Method::POST, &votes, Some(&app.bob), Some(json!({"decision": "approve"}))).await;
    assert_eq!(vote.status, StatusCode::ACCEPTED);

    let (session, _) = sign_in(&app, &app.bob).await;
    let page = app.send_with(Method::GET, &uri, None, &[("cookie", session.as_str())], None).await;
    let page = html(&page);
    assert!(page.contains("1 of 2 approvals of the call as asked; 1 more needed"), "{page}");
    assert!(page.contains("You voted for this call"), "the voter is told their vote is cast");
    assert!(!page.contains("id=\"approve-form\"") && !page.contains("value=\"reject\""), "a second vote is refused");

    let (session, _) = sign_in(&app, &app.carol).await;
    let page = app.send_with(Method::GET, &uri, None, &[("cookie", session.as_str())], None).await;
    let page = html(&page);
    assert!(page.contains("1 more needed") && page.contains("id=\"approve-form\""), "carol may still vote");
    assert!(!page.contains("You voted"));
    assert!(page.contains("Votes so far") && page.contains("<strong>bob</strong>"), "who voted is listed: {page}");
}

/// The form's text for `text`, every byte but letters and digits escaped.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

pub async fn an_edit_changes_only_what_the_approver_changed(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (session, csrf) = sign_in(&app, &app.admin).await;
    let cookie = [("cookie", session.as_str())];
    let (_, _, as_shown) = app.paused("send the memo", "dave").await;
    let (_, _, edited) = app.paused("send the memo", "dave").await;

    // Its arguments run past what the list shows: it is approved from its page only, where a
    // short confirmation is approved from the list too.
    let (_, _, refund) = app.paused_refund("dave").await;
    let rows = app.send_with(Method::GET, "/ui/rows", None, &cookie, None).await;
    let listed = |id: &str| {
        let li = html(&rows).split(&format!("data-id=\"{id}\"")).nth(1).expect("the row is listed");
        li.split("</li>").next().unwrap().to_owned()
    };
    assert!(listed(&refund).contains("name=\"etag\""), "{}", listed(&refund));
    assert!(!listed(&as_shown).contains("name=\"etag\""), "{}", listed(&as_shown));
    let page = app.send_with(Method::GET, &format!("/ui/approvals/{as_shown}"), None, &cookie, None).await;
    assert!(html(&page).contains("<textarea id=\"arg.body\""), "a text with line breaks keeps them");
    assert!(html(&page).contains("id=\"edit-form\""), "a confirmation that allows edits offers them");
    let priority = html(&page).split("name=\"arg.priority\"").nth(1).expect("the optional choice is offered");
    let priority = priority.split("</select>").next().unwrap();
    assert!(priority.contains("<option value=\"\" selected>(not set)</option>"), "left out, it stays so: {priority}");
    assert!(priority.contains("value=\"urgent\"") && !priority.contains("value=\"null\""), "{priority}");
    // A call that waits for values is approved with them, on its own form: no edit form.
    let (_, _, credit) = app.paused("credit for acme", "dave").await;
    let page = app.send_with(Method::GET, &format!("/ui/approvals/{credit}"), None, &cookie, None).await;
    assert!(html(&page).contains("name=\"input.amount\"") && !html(&page).contains("id=\"edit-form\""));
    assert!(html(&page).contains("aria-required=\"true\""), "a value the call needs is marked so");

    // Sent back as a browser sends what it showed: line breaks as CRLF, the amount as `10`.
    let body = encoded(&MEMO_BODY.replace('\n', "\r\n"));
    let form = |to: &str| {
        Value::String(format!("action=approve&arg.to={to}&arg.body={body}&arg.amount=10&arg.priority=&csrf={csrf}"))
    };
    let approved =
        app.send_with(Method::POST, &format!("/ui/approvals/{as_shown}"), None, &cookie, Some(form("ops"))).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", html(&approved));
    let stored = app.send(Method::GET, &format!("/approvals/{as_shown}"), Some(&app.admin), None).await;
    assert_eq!(stored.body["resolution_data"]["args"], Value::Null, "nothing was edited: {:?}", stored.body);

    let approved =
        app.send_with(Method::POST, &format!("/ui/approvals/{edited}"), None, &cookie, Some(form("finance"))).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", html(&approved));
    let stored = app.send(Method::GET, &format!("/approvals/{edited}"), Some(&app.admin), None).await;
    let args = json!({"to": "finance", "body": MEMO_BODY, "amount": 10});
    assert_eq!(stored.body["resolution_data"]["args"], args, "only the recipient changed");
}

/// Behind a proxy that passes requests on with a `Host` of its own, a form posted from the page
/// the browser shows (the public origin) is refused as from another site, unless the server was
/// told that origin; another site's form stays refused.
pub async fn forms_through_a_proxy_are_accepted_from_the_public_origin(store: Arc<dyn Store>) {
    let public = "https://kern.example.com";
    let proxied = [("origin", public), ("host", "127.0.0.1:7000")];
    let unaware = App::new(store.clone()).await;
    let refused = post_sign_in(&unaware, &unaware.admin, &proxied).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(html(&refused).contains("another site"));

    let told = App::with(store.clone(), |builder| builder.public_origin("https://Kern.Example.com/")).await;
    let signed_in = post_sign_in(&told, &told.admin, &proxied).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{:?}", signed_in.body);
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "an https origin keeps the cookie to https: {cookie}");
    let plain = post_sign_in(&unaware, &unaware.admin, &[]).await;
    assert!(!plain.headers["set-cookie"].to_str().unwrap().contains("Secure"), "plain http keeps it working");
    // A TLS proxy that keeps the Host: the browser's Origin says the page is https.
    let kept_host = [("origin", "https://kern.example.com"), ("host", "kern.example.com")];
    let signed_in = post_sign_in(&unaware, &unaware.admin, &kept_host).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{:?}", signed_in.body);
    let cookies: Vec<_> = signed_in.headers.get_all("set-cookie").iter().map(|c| c.to_str().unwrap()).collect();
    assert!(cookies.iter().all(|cookie| cookie.ends_with("; Secure")), "{cookies:?}");
    let elsewhere = [("origin", "https://evil.example"), ("host", "127.0.0.1:7000")];
    let forged = post_sign_in(&told, &told.admin, &elsewhere).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let builder = kern_server::Server::builder().store(store.clone()).auth(kern_server::Auth::api_keys());
    let Err(err) = builder.public_origin("kern.example.com").build() else { panic!("an origin without a scheme") };
    assert!(matches!(&err, kern_server::BuildError::InvalidPublicOrigin(_)), "{err:?}");
    assert!(err.to_string().contains("https://kern.example.com"), "the error shows how to write it: {err}");
    // A stale time under the claim's renewals would offer to recover continues still under way.
    let hasty = kern_server::Server::builder().store(store.clone()).auth(kern_server::Auth::api_keys());
    let Err(err) = hasty.stale_after(Duration::from_secs(59)).build() else { panic!("a stale time under a minute") };
    assert!(matches!(err, kern_server::BuildError::StaleAfterTooShort), "{err:?}");
    // Behind a proxy on the same host, every caller would arrive from loopback.
    let open = kern_server::Server::builder().store(store).auth(kern_server::Auth::open_on_loopback("me"));
    let Err(err) = open.public_origin(public).build() else { panic!("an open server behind a proxy") };
    assert!(matches!(err, kern_server::BuildError::OpenBehindProxy), "{err:?}");
}
