//! The full lifecycle for several users at once: runs pause, an admin lists what is pending,
//! approves some requests and rejects others with a note, and every run completes. Each paused
//! run waits for its row (`wait_for_resolution`) and continues the moment the admin decides, as
//! a worker would in a process of its own.
//!
//! `cargo run --example approval_list_and_resolve`

mod common;

use std::time::Duration;

use kern::prelude::*;
use kern::run::RunOptions;
use serde_json::json;

/// Refund an order. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn refund_order(order_id: String, amount_cents: u64) -> String {
    format!("refunded {amount_cents} cents on order {order_id}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("list_and_resolve");
    let db = SqliteDb::open(scratch.path()).await?;
    let script = ScriptedModel::new()
        .when_user_contains("A-100", Reply::call("refund_order", json!({"order_id": "A-100", "amount_cents": 1999})))
        .when_user_contains("B-200", Reply::call("refund_order", json!({"order_id": "B-200", "amount_cents": 250000})))
        .when_user_contains("C-300", Reply::call("refund_order", json!({"order_id": "C-300", "amount_cents": 500})));
    let agent =
        Agent::builder().name("support-agent").model(common::model(script)).tool(RefundOrder).db(db.clone()).build()?;

    let mut workers = Vec::new();
    for (user, order) in [("alice", "A-100"), ("bob", "B-200"), ("carol", "C-300")] {
        let run = agent.run_with(format!("Refund order {order}"), RunOptions::default().user_id(user)).await?;
        println!("{user}: run {} is {}", run.run_id, run.status);
        let requirement = run.requirements.first().ok_or("the model called no gated tool")?;
        let row_id = requirement.approval_id.clone().ok_or("a required approval has a row")?;
        let (agent, db) = (agent.clone(), db.clone());
        workers.push(tokio::spawn(async move {
            // Still pending after a minute, the continue says so (`Error::ApprovalPending`).
            db.wait_for_resolution(&row_id, Duration::from_secs(60)).await?;
            agent.continue_run(&run.run_id, run.requirements).await
        }));
    }

    let pending = db.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending)).await?;
    println!("{} pending approvals (alice has {})", pending.total, db.count_pending_approvals(Some("alice")).await?);
    for row in &pending.items {
        let amount = row.tool_args["amount_cents"].as_u64().unwrap_or(0);
        let update = if amount > 100_000 {
            ApprovalUpdate::reject("admin").with_data(json!({"note": "refunds over $1,000 need a manager"}))
        } else {
            ApprovalUpdate::approve("admin")
        };
        let row = db.update_approval(&row.id, update).await?;
        println!("{} for {}: {}", row.tool_args["order_id"], row.user_id.as_deref().unwrap_or("?"), row.status);
    }

    for worker in workers {
        let done = worker.await??;
        println!("run {} is {}: {}", done.run_id, done.status, done.content.unwrap_or_default());
    }
    println!("{} approvals still pending", db.count_pending_approvals(None).await?);
    Ok(())
}
