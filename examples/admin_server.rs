//! An admin's approvals server: an agent with gated tools (a confirmation, a user input, an
//! edit-allowed call), served over HTTP behind API keys, with the approvals inbox at `/` and a
//! worker beside it that continues each run the moment its rows are decided. Five users' runs
//! are paused before it starts; it prints an admin key once and the curl commands that list
//! the pending rows, resolve one and read its run (completed by the worker), then serves on
//! `KERN_ADDR` (127.0.0.1:7000 by default) until stopped. Open `/` in a browser and sign in
//! with the key to use the inbox.
//!
//! - `KERN_DB`: the SQLite file to use (a fresh one in the temporary directory by default;
//!   it is emptied first).
//! - `KERN_SEED_PENDING`: that many more pending rows, older than the five, to fill the inbox
//!   (synthetic rows without runs, as a busy inbox has).
//!
//! Once serving it prints `KERN_URL=<base URL>` and `KERN_TOKEN=<admin key>` on lines of their
//! own, for a program that starts it (the browser tests do).
//!
//! With `KERN_EXAMPLE_SMOKE` set (the examples test sets it), it serves on a free port instead
//! and makes those requests itself: a listing without the key (401), the listing with it, one
//! approval and one rejection, after which it waits for the worker to complete both runs; then
//! it exits.
//!
//! `cargo run --example admin_server`

mod common;

use kern::Utc;
use kern::keys::{ApiKey, Scope};
use kern::prelude::*;
use kern::run::RunOptions;
use kern::worker::Worker;
use kern_server::{Auth, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Refund an order. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn refund_order(order_id: String, amount_cents: u64) -> String {
    format!("refunded {amount_cents} cents on order {order_id}")
}

/// Permanently delete all data for a user. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
async fn delete_user_data(user_id: String) -> String {
    format!("All data for user {user_id} has been deleted.")
}

/// Raise a customer's card limit. The approver may lower the amount.
#[approval(allow_edit)]
#[tool(requires_confirmation)]
fn raise_card_limit(customer: String, limit_eur: u32) -> String {
    format!("the card limit of {customer} is now {limit_eur} EUR")
}

/// Extend a customer's free trial. The admin decides by how many days.
#[approval]
#[tool(user_input_fields = ["days"])]
fn extend_trial(customer: String, days: u32) -> String {
    format!("the trial of {customer} is extended by {days} days")
}

/// A run paused before the server starts, as the admin will find it.
struct Paused {
    user: &'static str,
    run_id: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::var_os("KERN_EXAMPLE_SMOKE").is_some();
    // A file the caller names is its to keep. A smoke run's own goes when it ends; a server
    // stopped with Ctrl-C ends without cleaning up, so it reuses one file, emptied each start.
    let scratch = common::ExampleDb::new("admin_server");
    let db_path = match std::env::var_os("KERN_DB") {
        Some(path) => common::emptied(std::path::PathBuf::from(path)),
        None if smoke => scratch.path().to_owned(),
        None => common::emptied(std::env::temp_dir().join("kern-example-admin_server.db")),
    };
    let db = SqliteDb::open(db_path).await?;
    let script = ScriptedModel::new()
        .when_user_contains("A-100", Reply::call("refund_order", json!({"order_id": "A-100", "amount_cents": 1999})))
        .when_user_contains("B-200", Reply::call("refund_order", json!({"order_id": "B-200", "amount_cents": 250000})))
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "carol"})))
        .when_user_contains("limit", Reply::call("raise_card_limit", json!({"customer": "dave", "limit_eur": 5000})))
        .when_user_contains("trial", Reply::call("extend_trial", json!({"customer": "erin"})));
    let agent = Agent::builder()
        .id("support-agent")
        .name("support-agent")
        .model(common::model(script))
        .tool(RefundOrder)
        .tool(DeleteUserData)
        .tool(RaiseCardLimit)
        .tool(ExtendTrial)
        .db(db.clone())
        .build()?;

    let seeded = seed_pending(&db).await?;
    let mut paused = Vec::new();
    for (user, message) in [
        ("alice", "Refund order A-100"),
        ("bob", "Refund order B-200"),
        ("carol", "Please delete all my data"),
        ("dave", "Please raise my card limit"),
        ("erin", "Can you extend my trial?"),
    ] {
        let run = agent.run_with(message, RunOptions::default().user_id(user)).await?;
        println!("{user}: run {} is {}", run.run_id, run.status);
        if run.status != RunStatus::Paused {
            return Err(format!("expected {user}'s run to pause, it is {}", run.status).into());
        }
        paused.push(Paused { user, run_id: run.run_id });
    }

    // The secret is shown once: the store keeps only its hash.
    let issued = ApiKey::issue("admin", vec!["ops".into()], vec![Scope::Admin]);
    db.save_api_key(&issued.key).await?;
    // The worker continues each run once its rows are decided: no continue call is needed.
    let worker = Worker::builder().store(db.clone()).agent(agent.clone()).build()?;
    let server = Server::builder()
        .store(db.clone())
        .agent(agent.clone())
        .auth(Auth::api_keys())
        .worker_stats(worker.stats())
        .build()?;
    tokio::spawn(worker.run(std::future::pending()));

    let addr = if smoke {
        "127.0.0.1:0".to_owned()
    } else {
        std::env::var("KERN_ADDR").unwrap_or_else(|_| "127.0.0.1:7000".into())
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let first = db
        .list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending).run_id(paused[0].run_id.as_str()))
        .await?;
    let row_id = &first.items.first().ok_or("a paused run has a pending row")?.id;

    println!("\nadmin API key (shown once):\n  export KERN_TOKEN={}", issued.token);
    println!("\nlist the pending approvals:");
    println!("  curl -s -H \"Authorization: Bearer $KERN_TOKEN\" '{base}/approvals?status=pending&limit=50'");
    println!("approve {}'s request:", paused[0].user);
    println!(
        "  curl -s -H \"Authorization: Bearer $KERN_TOKEN\" -H 'Content-Type: application/json' \
         -d '{{\"status\":\"approved\"}}' {base}/approvals/{row_id}/resolve"
    );
    println!("read {}'s run, which the worker completes once the row is approved:", paused[0].user);
    println!("  curl -s -H \"Authorization: Bearer $KERN_TOKEN\" {base}/runs/{}", paused[0].run_id);

    if !smoke {
        println!("\nthe inbox: open {base}/ and sign in with the key ({seeded} more pending rows seeded)");
        println!("serving on {base} (Ctrl-C to stop)");
        println!("KERN_URL={base}\nKERN_TOKEN={}", issued.token);
        server.serve(listener).await?;
        return Ok(());
    }
    tokio::spawn(server.serve(listener));
    drive(&base, &issued.token, &paused).await
}

/// Writes `KERN_SEED_PENDING` pending rows, older than the example's own (in batches of
/// 5,000, one transaction each); answers how many.
async fn seed_pending(db: &SqliteDb) -> Result<usize, Box<dyn std::error::Error>> {
    const BATCH: usize = 5_000;
    let count: usize = match std::env::var("KERN_SEED_PENDING") {
        Ok(text) => text.parse().map_err(|_| format!("KERN_SEED_PENDING must be a count, not `{text}`"))?,
        Err(_) => 0,
    };
    let oldest = Utc::now() - chrono::Duration::hours(1);
    let mut written = 0;
    while written < count {
        let batch: Vec<Approval> = (written..count.min(written + BATCH))
            .map(|i| {
                let created_at = oldest - chrono::Duration::seconds(i as i64);
                Approval {
                    id: format!("{:08x}-0000-7000-8000-{:012x}", i / 65_536, i),
                    run_id: format!("seeded-run-{i}"),
                    session_id: format!("seeded-session-{i}"),
                    status: ApprovalStatus::Pending,
                    approval_type: ApprovalType::Required,
                    pause_type: PauseType::Confirmation,
                    source_type: SourceType::Agent,
                    source_name: Some("support-agent".into()),
                    agent_id: Some("support-agent".into()),
                    team_id: None,
                    user_id: Some(format!("user-{}", i % 500)),
                    tool_name: "refund_order".into(),
                    tool_args: json!({"order_id": format!("S-{i}"), "amount_cents": 100 + i % 9_000}),
                    tool_call_id: format!("call_{i}"),
                    requirements: Vec::new(),
                    resolution_data: None,
                    resolved_by: None,
                    resolved_at: None,
                    created_at,
                    updated_at: created_at,
                    expires_at: None,
                    run_status: RunStatus::Paused,
                    policy: None,
                }
            })
            .collect();
        written += batch.len();
        db.save_runs(&[], &batch, &[]).await?;
    }
    Ok(count)
}

/// What an admin does with the printed commands, over real HTTP, plus a rejection with a note
/// for the model; the other three users' rows are left pending.
async fn drive(base: &str, token: &str, paused: &[Paused]) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let pending_url = format!("{base}/approvals?status=pending&limit=50");

    let refused = client.get(&pending_url).send().await?;
    println!("\nGET /approvals without the key: {}", refused.status());
    if refused.status() != StatusCode::UNAUTHORIZED {
        return Err(format!("a request without the key got {}", refused.status()).into());
    }

    let list: Value = checked(client.get(&pending_url).bearer_auth(token).send().await?).await?;
    println!("GET /approvals with the key: {} pending", list["meta"]["total_count"]);
    let rows = list["data"].as_array().ok_or("a listing has `data`")?;
    for row in rows {
        println!(
            "  {} for {}: {} {}",
            text(&row["id"]),
            text(&row["user_id"]),
            text(&row["tool_name"]),
            row["tool_args"]
        );
    }

    let decisions =
        [json!({"status": "approved"}), json!({"status": "rejected", "resolution_data": {"note": "over $1,000"}})];
    for (run, decision) in paused.iter().zip(decisions) {
        let row = rows.iter().find(|row| row["run_id"] == run.run_id.as_str()).ok_or("each paused run is listed")?;
        let url = format!("{base}/approvals/{}/resolve", text(&row["id"]));
        let resolved: Value = checked(client.post(url).bearer_auth(token).json(&decision).send().await?).await?;
        println!(
            "POST resolve {}'s row: {} by {}",
            run.user,
            text(&resolved["status"]),
            text(&resolved["resolved_by"])
        );
    }

    let mut completed = 0;
    for run in &paused[..2] {
        let done = completed_run(&client, base, token, &run.run_id).await?;
        println!("{}'s run, continued by the worker: {}: {}", run.user, text(&done["status"]), text(&done["content"]));
        completed += 1;
    }

    let count: Value = checked(client.get(format!("{base}/approvals/count")).bearer_auth(token).send().await?).await?;
    println!("{completed} runs completed over HTTP; {} approvals still pending", count["count"]);
    Ok(())
}

/// Run `run_id` once the worker has completed it (`GET /runs/{run_id}`, read until it is).
async fn completed_run(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    run_id: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    let url = format!("{base}/runs/{run_id}");
    for _ in 0..600 {
        let run: Value = checked(client.get(&url).bearer_auth(token).send().await?).await?;
        if run["status"] == "COMPLETED" {
            return Ok(run);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(format!("run {run_id} was not completed within a minute").into())
}

/// The JSON body of a successful response, or an error naming the status and the body.
async fn checked(response: reqwest::Response) -> Result<Value, Box<dyn std::error::Error>> {
    let status = response.status();
    if !status.is_success() {
        let path = response.url().path().to_owned();
        return Err(format!("{path} answered {status}: {}", response.text().await?).into());
    }
    Ok(response.json().await?)
}

/// A string field of a response, unquoted for printing.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}
