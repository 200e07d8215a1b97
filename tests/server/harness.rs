//! A served app on a fresh store of each backend: an agent with a gated tool on that store,
//! the server's router, API keys of several scopes, and a client that sends requests to the
//! router (no socket) or to a real server on 127.0.0.1.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kern::db::{MemoryDb, PostgresDb, SqliteDb, Store};
use kern::keys::{ApiKey, Scope};
use kern::prelude::*;
use kern_server::{Auth, Server};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The variable naming the Postgres server of the tests.
const POSTGRES_URL_VAR: &str = "KERN_TEST_POSTGRES_URL";

/// Refund an order. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
pub fn refund_order(order_id: String) -> String {
    format!("refunded order {order_id}")
}

/// Wire money. Two of the finance team approve it.
#[approval(approvers = ["finance"], quorum = 2)]
#[tool(requires_confirmation)]
pub fn wire_money(amount: u64) -> String {
    format!("wired {amount}")
}

/// Raise a card's limit. An admin may approve another limit than the one asked.
#[approval(allow_edit)]
#[tool(requires_confirmation)]
pub fn raise_limit(limit_eur: u64) -> String {
    format!("limit {limit_eur}")
}

/// The body of the memo the model sends: lines, and longer than the inbox's list shows.
pub const MEMO_BODY: &str = "Dear ops,\nthe quarterly figures are attached: please read them before Friday's review \
     and tell finance what you would change.\nThanks";

/// How soon a memo goes out.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    Urgent,
}

/// Send a memo. An admin may approve it with edits.
#[approval(allow_edit)]
#[tool(requires_confirmation)]
pub fn send_memo(to: String, body: String, amount: f64, priority: Option<Priority>) -> String {
    let urgently = if matches!(priority, Some(Priority::Urgent)) { " (urgent)" } else { "" };
    format!("sent {amount} to {to}{urgently}: {body}")
}

/// Grant a customer credit: a person gives the amount and a note for the customer, an admin
/// may edit the call.
#[approval(allow_edit)]
#[tool(user_input_fields = ["amount", "note"])]
pub fn grant_credit(customer: String, amount: u64, note: String) -> String {
    format!("{amount} for {customer}: {note}")
}

/// Escalate a ticket. Whoever runs the agent confirms it; an audit row records their answer.
#[approval(type = "audit")]
#[tool(requires_confirmation)]
pub fn escalate_ticket(ticket: String) -> String {
    format!("escalated {ticket}")
}

/// A store implementation under test.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

impl Backend {
    /// Runs `case` on an empty store of this backend; a SQL database is removed afterwards.
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = unique_name();
        match self {
            Backend::Memory => case(Arc::new(MemoryDb::new())).await,
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let db = SqliteDb::open(&path).await.expect("open SQLite");
                let outcome = tokio::spawn(case(Arc::new(db.clone()))).await;
                db.close().await;
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                outcome.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
            }
            Backend::Postgres => {
                let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "{POSTGRES_URL_VAR} is not set under CI: the Postgres variants must run"
                    );
                    eprintln!("skipping a Postgres server test: {POSTGRES_URL_VAR} is not set");
                    return;
                };
                let db = PostgresDb::builder().url(&url).schema(&name).build().await.expect("connect to Postgres");
                let outcome = tokio::spawn(case(Arc::new(db.clone()))).await;
                db.close().await;
                PostgresDb::__drop_schema(&url, &name).await.expect("drop the test schema");
                outcome.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
            }
        }
    }
}

fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("kern_server_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The agent every case serves: `refund <order>` pauses on a row anyone may decide, `wire
/// <amount>` on a row two principals of the `finance` role decide, `escalate` on its caller's
/// confirmation alone, which an audit row records, `limit` and `memo` on rows approved with
/// edits or as they are.
pub fn agent(store: Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("refund", Reply::call("refund_order", json!({"order_id": "A-1"})))
        .when_user_contains("wire", Reply::call("wire_money", json!({"amount": 500})))
        .when_user_contains("limit", Reply::call("raise_limit", json!({"limit_eur": 5000})))
        .when_user_contains("escalate", Reply::call("escalate_ticket", json!({"ticket": "T-1"})))
        .when_user_contains("memo", Reply::call("send_memo", json!({"to": "ops", "body": MEMO_BODY, "amount": 10})))
        .when_user_contains("credit", Reply::call("grant_credit", json!({"customer": "acme"})))
        .otherwise(Reply::text("nothing to do"));
    Agent::builder()
        .id("ops")
        .name("Ops Agent")
        .model(model)
        .tool(RefundOrder)
        .tool(WireMoney)
        .tool(RaiseLimit)
        .tool(EscalateTicket)
        .tool(SendMemo)
        .tool(GrantCredit)
        .db(store)
        .build()
        .expect("build the agent")
}

/// A served store, with a token of each kind of caller.
pub struct App {
    pub agent: Agent,
    pub router: Router,
    /// Every scope.
    pub admin: String,
    /// `approvals:read` only.
    pub reader: String,
    /// `approvals:read`, `approvals:write` and `runs:write`, principal `alice`.
    pub alice: String,
    /// As alice, principal `bob` of role `finance`.
    pub bob: String,
    /// As alice, principal `carol` of role `finance`.
    pub carol: String,
}

impl App {
    /// Serves `store` with API keys.
    pub async fn new(store: Arc<dyn Store>) -> App {
        Self::with(store, |builder| builder).await
    }

    /// Serves `store` with API keys and the builder settings `configure` adds.
    pub async fn with(
        store: Arc<dyn Store>,
        configure: impl FnOnce(kern_server::ServerBuilder) -> kern_server::ServerBuilder,
    ) -> App {
        let agent = agent(store.clone());
        let builder = Server::builder().store(store.clone()).agent(agent.clone()).auth(Auth::api_keys());
        let router = configure(builder).build().expect("build the server").into_router();
        let writer = [Scope::ApprovalsRead, Scope::ApprovalsWrite, Scope::RunsWrite, Scope::ApprovalsDelete];
        App {
            admin: issue(&store, "root", &[], &[Scope::Admin]).await,
            reader: issue(&store, "reader", &[], &[Scope::ApprovalsRead]).await,
            alice: issue(&store, "alice", &[], &writer).await,
            bob: issue(&store, "bob", &["finance"], &writer).await,
            carol: issue(&store, "carol", &["finance"], &writer).await,
            agent,
            router,
        }
    }

    /// Sends a request to the router; `body` goes as JSON unless it is a string, which goes
    /// as a form.
    pub async fn send(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        send(&self.router, method, uri, token, &[], body).await
    }

    /// `send` with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        send(&self.router, method, uri, token, headers, body).await
    }

    /// A run of the agent paused on a `refund` row, for `user`: (run id, session id, row id).
    pub async fn paused_refund(&self, user: &str) -> (String, String, String) {
        self.paused("refund order A-1", user).await
    }

    /// A run of the agent paused on the row of `message`'s call, for `user`.
    pub async fn paused(&self, message: &str, user: &str) -> (String, String, String) {
        let run = self.agent.run_with(message, RunOptions::default().user_id(user)).await.expect("run");
        assert_eq!(run.status, RunStatus::Paused);
        let row = run.requirements[0].approval_id.clone().expect("a row");
        (run.run_id, run.session_id, row)
    }
}

/// Stores a key for `principal` and returns its token.
pub async fn issue(store: &Arc<dyn Store>, principal: &str, roles: &[&str], scopes: &[Scope]) -> String {
    let issued = ApiKey::issue(principal, roles.iter().map(|r| (*r).to_owned()).collect(), scopes.to_vec());
    store.save_api_key(&issued.key).await.expect("save the key");
    issued.token
}

/// A response: its status, headers and body (JSON when it is JSON, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `detail` of an error body.
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}

/// Sends a request to `router`.
pub async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        None => request.body(Body::empty()),
        // A form, urlencoded unless the headers name another type.
        Some(Value::String(form)) if headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) => {
            request.body(Body::from(form))
        }
        Some(Value::String(form)) => {
            request.header("content-type", "application/x-www-form-urlencoded").body(Body::from(form))
        }
        Some(json) => request.header("content-type", "application/json").body(Body::from(json.to_string())),
    }
    .expect("a request");
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("read the body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer { status: parts.status, headers: parts.headers, body }
}
