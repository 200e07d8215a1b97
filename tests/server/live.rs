//! A real server on 127.0.0.1 driven over HTTP: live events, concurrent decisions, the time
//! limit of a request, and the operations routes.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use kern::db::Store;
use kern::prelude::*;
use kern::run::RunRecord;
use kern_server::{Auth, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::harness::{App, agent, issue};

/// Serves `store` on a free port of 127.0.0.1; returns the base URL.
async fn serve(store: Arc<dyn Store>) -> String {
    let server = Server::builder().store(store.clone()).agent(agent(store)).auth(Auth::api_keys()).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener));
    base
}

/// Reads an event stream until `count` events have come: each as (id, event name, data).
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<(String, String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
            if let (Some(id), Some(event), Some(data)) = (field("id: "), field("event: "), field("data: ")) {
                events.push((id, event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

/// Reads an event stream until an event named `name` for run `run_id` comes; returns its data.
async fn read_run_event(response: &mut reqwest::Response, name: &str, run_id: &str) -> Value {
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{name} within 10 s"))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |prefix: &str| frame.lines().find_map(|l| l.strip_prefix(prefix)).map(str::to_owned);
            assert!(field("id: ").is_none() || !frame.contains("event: run."), "run events carry no id");
            if field("event: ").as_deref() == Some(name) {
                let data: Value = serde_json::from_str(&field("data: ").unwrap()).unwrap();
                if data["run_id"] == run_id {
                    return data;
                }
            }
        }
    }
}

pub async fn a_runs_status_changes_arrive_as_run_events(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let base = serve(store.clone()).await;
    let client = reqwest::Client::new();
    let mut stream = client.get(format!("{base}/events")).bearer_auth(&app.reader).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["cache-control"], "no-store", "over the stream's own `no-cache`");

    let (run_id, session_id, row) = app.paused_refund("alice").await;
    let paused = read_run_event(&mut stream, "run.paused", &run_id).await;
    assert_eq!((paused["status"].as_str(), paused["user_id"].as_str()), (Some("paused"), Some("alice")));
    assert_eq!(paused["agent_id"], "ops");

    let resolve = client
        .post(format!("{base}/approvals/{row}/resolve"))
        .bearer_auth(&app.admin)
        .json(&json!({"status": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resolve.status(), 200);
    let done = client
        .post(format!("{base}/agents/ops/runs/{run_id}/continue"))
        .bearer_auth(&app.alice)
        .form(&[("session_id", session_id.as_str()), ("stream", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let completed = read_run_event(&mut stream, "run.completed", &run_id).await;
    assert_eq!(completed["status"], "completed");
}

pub async fn runs_one_write_stamped_alike_all_arrive(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let base = serve(store.clone()).await;
    let (run_id, _, _) = app.paused_refund("alice").await;
    let template = store.load_run(&run_id).await.unwrap().unwrap();
    let mut stream =
        reqwest::Client::new().get(format!("{base}/events")).bearer_auth(&app.reader).send().await.unwrap();
    assert_eq!(stream.status(), 200);

    // More runs than the stream reads at once, stamped with one time, as one expiry sweep
    // stamps the runs it cancels.
    let at = chrono::Utc::now();
    let burst: Vec<RunRecord> = (0..300)
        .map(|n| RunRecord {
            run_id: format!("burst-{n:03}"),
            status: RunStatus::Cancelled,
            updated_at: at,
            ..template.clone()
        })
        .collect();
    store.save_runs(&burst, &[], &[]).await.unwrap();

    let mut missing: std::collections::BTreeSet<String> = burst.iter().map(|run| run.run_id.clone()).collect();
    let mut text = String::new();
    while !missing.is_empty() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("{} runs never arrived, such as {:?}", missing.len(), missing.first()))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: "))
                && frame.contains("event: run.cancelled")
            {
                let data: Value = serde_json::from_str(data).unwrap();
                missing.remove(data["run_id"].as_str().unwrap());
            }
        }
    }
}

pub async fn an_event_arrives_after_a_resolve_and_resumes_without_loss(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let base = serve(store.clone()).await;
    let client = reqwest::Client::new();
    let (_, _, first) = app.paused_refund("alice").await;

    let mut stream = client.get(format!("{base}/events")).bearer_auth(&app.reader).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    // It says first where it starts, with no event: a client that reconnects before any event
    // goes on from there.
    let start = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.unwrap().unwrap().unwrap();
    let position = store.last_event_seq().await.unwrap();
    assert!(String::from_utf8_lossy(&start).starts_with(&format!("id: {position}\n\n")), "{start:?}");
    // Another connection decides: the open stream hears of it.
    let resolved = client
        .post(format!("{base}/approvals/{first}/resolve"))
        .bearer_auth(&app.admin)
        .json(&json!({"status": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), 200);
    let events = read_events(&mut stream, 2).await;
    assert_eq!((events[0].1.as_str(), events[1].1.as_str()), ("approval.vote", "approval.approved"));
    assert_eq!(events[1].2["approval_id"], first.as_str());
    let last_seen = events[1].0.clone();
    drop(stream);

    // While no one listens, a row is created and rejected: a stream resumed from the last id
    // gets exactly those events.
    let (_, _, second) = app.paused_refund("bob").await;
    store
        .decide(&second, &kern::approval::Principal::new("root"), kern::approval::Decision::reject("no"))
        .await
        .unwrap();
    let mut resumed = client
        .get(format!("{base}/events"))
        .bearer_auth(&app.reader)
        .header("last-event-id", &last_seen)
        .send()
        .await
        .unwrap();
    let events = read_events(&mut resumed, 3).await;
    let names: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["approval.created", "approval.vote", "approval.rejected"]);
    assert!(events.iter().all(|e| e.2["approval_id"] == second.as_str()));
    let ids: Vec<i64> = events.iter().map(|e| e.0.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > last_seen.parse::<i64>().unwrap());

    // No event has a negative `seq`: such a place to start from is refused, not read as 0.
    let negative = client.get(format!("{base}/events?after=-5")).bearer_auth(&app.reader).send().await.unwrap();
    assert_eq!(negative.status(), 422);
    let negative = client
        .get(format!("{base}/events"))
        .bearer_auth(&app.reader)
        .header("last-event-id", "-1")
        .send()
        .await
        .unwrap();
    assert_eq!(negative.status(), 422);
}

/// A stream asks again as it goes whether its caller is signed in: revoking the key it was
/// opened with ends it.
pub async fn revoking_a_key_ends_its_event_streams(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let base = serve(store.clone()).await;
    let mut stream =
        reqwest::Client::new().get(format!("{base}/events")).bearer_auth(&app.reader).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    app.paused_refund("alice").await;
    assert_eq!(read_events(&mut stream, 1).await[0].1, "approval.created");

    let key_id = kern::keys::parse_token(&app.reader).unwrap().0.to_owned();
    store.revoke_api_key(&key_id).await.unwrap();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("the stream ends within 10 s of the key's revocation")
            .unwrap();
        if chunk.is_none() {
            break;
        }
    }
}

pub async fn concurrent_resolves_of_one_row_give_one_winner(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let base = serve(store).await;
    let (_, _, id) = app.paused_refund("alice").await;
    let client = reqwest::Client::new();
    let resolves = (0..64).map(|i| {
        let (client, url, token) = (client.clone(), format!("{base}/approvals/{id}/resolve"), app.admin.clone());
        tokio::spawn(async move {
            let status = if i % 2 == 0 { "approved" } else { "rejected" };
            client.post(url).bearer_auth(token).json(&json!({"status": status})).send().await.unwrap().status().as_u16()
        })
    });
    let mut codes = Vec::new();
    for resolve in resolves.collect::<Vec<_>>() {
        codes.push(resolve.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 63, "{codes:?}");
}

/// Take a nap: longer than the server below lets a request last.
#[tool]
async fn nap() -> String {
    tokio::time::sleep(Duration::from_millis(500)).await;
    "rested".to_owned()
}

/// A server whose agent `sleepy` naps through a request's time limit of 100 ms, and an admin's
/// token.
async fn sleepy_server(store: &Arc<dyn Store>) -> (kern_server::ServerBuilder, String) {
    let token = issue(store, "root", &[], &[kern::keys::Scope::Admin]).await;
    let model = ScriptedModel::new()
        .when_user_contains("nap", Reply::call("nap", json!({})))
        .after_tool("nap", Reply::text("Done: {result}"));
    let sleepy = Agent::builder().id("sleepy").model(model).tool(Nap).db(store.clone()).build().unwrap();
    let builder = Server::builder()
        .store(store.clone())
        .agent(sleepy)
        .auth(Auth::api_keys())
        .request_timeout(Duration::from_millis(100));
    (builder, token)
}

/// A server asked to stop ends its event streams, and returns only once the run a request
/// started (answered 504, and going on) is stored.
pub async fn a_server_asked_to_stop_stores_the_runs_under_way_first(store: Arc<dyn Store>) {
    let (builder, token) = sleepy_server(&store).await;
    let server = builder.build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_until(listener, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let mut events = client.get(format!("{base}/events")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let started = client
        .post(format!("{base}/agents/sleepy/runs"))
        .bearer_auth(&token)
        .form(&[("message", "take a nap"), ("stream", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 504, "the run goes on past its request");
    stop.send(()).unwrap();

    // The stream ends (or its connection does), rather than hold the server up forever.
    let ended = async { while let Ok(Some(_)) = events.chunk().await {} };
    tokio::time::timeout(Duration::from_secs(10), ended).await.expect("the event stream ends");
    tokio::time::timeout(Duration::from_secs(60), serving).await.expect("the server stops").unwrap().unwrap();
    let runs = store.list_runs(&kern::run::RunQuery::default().agent_id("sleepy")).await.unwrap().items;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Completed, "stored before the server returned");
}

/// A request that outlasts the server's time limit is answered 504 in the body every error
/// has, and the run it started goes on and is stored.
pub async fn a_request_past_the_time_limit_is_answered_504_and_its_run_goes_on(store: Arc<dyn Store>) {
    let (builder, token) = sleepy_server(&store).await;
    let server = builder.body_timeout(Duration::from_millis(50)).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener));

    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{base}/agents/sleepy/runs"))
        .bearer_auth(&token)
        .form(&[("message", "take a nap"), ("stream", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 504);
    let body: Value = answer.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("goes on"), "{body}");
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("status=\"504\""), "a request cut short is counted: {metrics}");
    let completed = async {
        loop {
            let page = store.list_runs(&kern::run::RunQuery::default().agent_id("sleepy")).await.unwrap();
            if page.items.first().is_some_and(|run| run.status == RunStatus::Completed) {
                return page.items[0].content.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let content = tokio::time::timeout(Duration::from_secs(60), completed).await.expect("the run is stored completed");
    assert_eq!(content.as_deref(), Some("Done: nap: rested"));

    // A body that stops arriving is answered 408 at the body's time limit, before the request's
    // own: on the sign-in form, which reads its body with no credential; elsewhere the caller
    // is refused first, and the body never read.
    let stalled = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nkey=kern_"
        )
    };
    let sign_in = answer_to(&base, &stalled("/ui/sign-in"), "did not arrive").await;
    assert!(sign_in.starts_with("HTTP/1.1 408"), "{sign_in}");
    assert!(sign_in.contains("the request body did not arrive within 50 ms"), "{sign_in}");
    let resolve = answer_to(&base, &stalled("/approvals/x/resolve"), "detail").await;
    assert!(resolve.starts_with("HTTP/1.1 401"), "{resolve}");
}

/// What the server at `base` answers to the raw HTTP `request`, read until it holds `until` (or
/// the connection closes).
async fn answer_to(base: &str, request: &str, until: &str) -> String {
    let mut connection = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = vec![0; 4096];
    while !String::from_utf8_lossy(&answer).contains(until) {
        let read = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut chunk)).await.expect("an answer");
        match read.unwrap() {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Let go by the test that holds it.
static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Returns once the test lets it go.
#[tool]
async fn hold_on() -> String {
    RELEASE.notified().await;
    "released".to_owned()
}

/// A streamed run's events leave as they happen: the call's start arrives while the call is
/// still held, and the rest once it is let go. A server that sent the events at the end would
/// never send the first while the call waits.
#[tokio::test]
async fn a_streamed_run_sends_each_event_as_it_happens() {
    let store: Arc<dyn Store> = Arc::new(kern::db::MemoryDb::new());
    let token = issue(&store, "root", &[], &[kern::keys::Scope::Admin]).await;
    let model = ScriptedModel::new()
        .when_user_contains("hold", Reply::call("hold_on", json!({})))
        .after_tool("hold_on", Reply::text("Done: {result}"));
    let held = Agent::builder().id("held").model(model).tool(HoldOn).db(store.clone()).build().unwrap();
    let server = Server::builder().store(store.clone()).agent(held).auth(Auth::api_keys()).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener));

    let client = reqwest::Client::new();
    let mut response = client
        .post(format!("{base}/agents/held/runs"))
        .bearer_auth(&token)
        .form(&[("message", "hold on")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let mut read_until = async |name: &str, text: &mut String| {
        while !text.contains(&format!("event: {name}\n")) {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .unwrap_or_else(|_| panic!("{name} within 10 s: {text}"))
                .unwrap()
                .expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until("ToolCallStarted", &mut text).await;
    assert!(text.contains("event: RunStarted\n"), "{text}");
    assert!(!text.contains("ToolCallCompleted"), "the call is still held: {text}");
    RELEASE.notify_one();
    read_until("RunCompleted", &mut text).await;
    assert!(text.contains(r#""content":"Done: hold_on: released""#), "{text}");
}

pub async fn operations_routes_answer(store: Arc<dyn Store>) {
    let token = issue(&store, "root", &[], &[kern::keys::Scope::Admin]).await;
    let base = serve(store.clone()).await;
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let answer = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
    let openapi: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (path, method) in [
        ("/approvals/{approval_id}/resolve", "post"),
        ("/runs/{run_id}/cancel", "post"),
        ("/runs/{run_id}/release", "post"),
        ("/audit/events", "get"),
        ("/agents/{agent_id}/runs/{run_id}", "get"),
        ("/teams/{team_id}/runs/{run_id}", "get"),
        ("/config", "get"),
    ] {
        assert!(openapi["paths"][path][method].is_object(), "{method} {path}");
    }
    let listed = client.get(format!("{base}/approvals")).bearer_auth(&token).send().await.unwrap();
    assert!(listed.headers().contains_key("x-request-id"));
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kern_approvals_pending 0"));
    assert!(metrics.contains("route=\"/approvals\",status=\"200\""));
    let unknown = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    // Through the router: over a socket the server may close the connection before a client
    // has finished writing what it refuses.
    let app = App::new(store.clone()).await;
    let big = json!({"status": "approved", "resolved_by": " ".repeat(2 * 1024 * 1024)});
    let refused = app.send(Method::POST, "/approvals/x/resolve", Some(&app.admin), Some(big.clone())).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    // What the reference's client reads first.
    let config = app.send(Method::GET, "/config", Some(&app.reader), None).await;
    assert_eq!(config.status, StatusCode::OK, "{:?}", config.body);
    assert_eq!(config.body["agents"], json!([{"id": "ops", "name": "Ops Agent"}]));
    for list in ["databases", "teams", "workflows", "interfaces"] {
        assert!(config.body[list].is_array(), "{list}: {:?}", config.body);
    }
    assert_eq!(app.send(Method::GET, "/config", None, None).await.status, StatusCode::UNAUTHORIZED);
    let slashed = app.send(Method::GET, "/approvals/count/", Some(&app.reader), None).await;
    assert_eq!(slashed.status, StatusCode::OK, "a trailing slash is dropped: {:?}", slashed.body);
    assert!(slashed.body["count"].is_u64(), "{:?}", slashed.body);
    // Announced by its length, as clients send it, and to the run routes: the same answer.
    let length = (big.to_string().len()).to_string();
    let announced = [("content-length", length.as_str())];
    for uri in ["/approvals/x/resolve", "/agents/ops/runs"] {
        let refused = app.send_with(Method::POST, uri, Some(&app.admin), &announced, Some(big.clone())).await;
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {:?}", refused.body);
        assert!(refused.detail().contains("larger than the limit"), "{uri}: {:?}", refused.body);
    }

    // An open server answers requests addressed to loopback, not those a rebound name sends.
    let open = Server::builder().store(store.clone()).auth(Auth::open_on_loopback("me")).build().unwrap();
    let loopback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", loopback.local_addr().unwrap());
    tokio::spawn(open.serve(loopback));
    let client = reqwest::Client::new();
    let local = client.get(format!("{base}/approvals/count")).send().await.unwrap();
    assert_eq!(local.status(), 200);
    let rebound = client.get(format!("{base}/approvals/count")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(rebound.status(), 403);
    // The inbox answers its refusal as a page.
    let page = client.get(format!("{base}/")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    // On every route, those that take no credential included.
    for open_route in ["/metrics", "/readyz", "/openapi.json"] {
        assert_eq!(client.get(format!("{base}{open_route}")).send().await.unwrap().status(), 200, "{open_route}");
        let rebound = client.get(format!("{base}{open_route}")).header("host", "evil.example").send().await.unwrap();
        assert_eq!(rebound.status(), 403, "{open_route}");
    }
    // Nor those a proxy on the same machine passes on, from loopback under a loopback name.
    for header in ["forwarded", "x-forwarded-for", "X-Real-IP", "via"] {
        let proxied =
            client.post(format!("{base}/approvals/x/cancel")).header(header, "203.0.113.7").send().await.unwrap();
        assert_eq!(proxied.status(), 403, "{header}");
        let detail = proxied.json::<Value>().await.unwrap()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains("passed on by a proxy"), "{header}: {detail}");
    }
    // Nor writes that a page of another site posts from the admin's own browser.
    let cancel = format!("{base}/approvals/x/cancel");
    let cross = client.post(&cancel).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(client.post(&cancel).header("origin", &base).send().await.unwrap().status(), 404, "its own page");
    assert_eq!(client.post(&cancel).send().await.unwrap().status(), 404, "a client that is no browser");

    // An open server refuses to start on an address other than loopback.
    let open = Server::builder().store(store).auth(Auth::open_on_loopback("me")).build().unwrap();
    let everywhere = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = open.serve(everywhere).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(matches!(
        Server::builder().store(kern::db::MemoryDb::new()).build().err(),
        Some(kern_server::BuildError::NoAuth)
    ));
}
