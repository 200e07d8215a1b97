//! A worker: a paused run finishes by itself the moment its row is approved, here from another
//! process.
//!
//! The program pauses a run on a SQLite file, starts a worker for its agent, and then runs
//! itself again as a second process (`worker approve <db file> <row id>`), which plays the
//! admin: it opens the same file and approves the row. The worker, woken by the decision,
//! continues the run; nobody calls `continue_run`. On Postgres the same holds across machines.
//!
//! `cargo run --example worker`

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use kern::prelude::*;
use kern::worker::RunOutcome;
use serde_json::json;

/// Ship a replacement part to a customer. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn ship_part(part: String, customer: String) -> String {
    format!("shipped {part} to {customer}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, db_file, row_id] = &args[..]
        && command == "approve"
    {
        return approve(Path::new(db_file), row_id).await;
    }

    let scratch = common::ExampleDb::new("worker");
    let db_file = scratch.path();
    let db = SqliteDb::open(db_file).await?;
    let script = ScriptedModel::new()
        .when_user_contains("pump", Reply::call("ship_part", json!({"part": "pump P-7", "customer": "acme"})))
        .after_tool("ship_part", Reply::text("Done: {result}"));
    let agent =
        Agent::builder().id("field-service").model(common::model(script)).tool(ShipPart).db(db.clone()).build()?;

    let worker = Worker::builder().store(db.clone()).agent(agent.clone()).build()?;
    let mut outcomes = worker.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let working = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));

    let run = agent.run("Acme's pump failed, send a new pump").await?;
    let row_id = run.requirements.first().and_then(|r| r.approval_id.clone()).ok_or("the call waits for a row")?;
    println!("run {} is {}; row {row_id} waits for an admin", run.run_id, run.status);

    // The admin, in another process.
    let approved_at = Instant::now();
    let admin = std::process::Command::new(std::env::current_exe()?)
        .args(["approve", &db_file.display().to_string(), &row_id])
        .status()?;
    if !admin.success() {
        return Err("the admin process failed".into());
    }

    let outcome = async {
        loop {
            match outcomes.recv().await {
                Ok(RunOutcome::Continued(output)) if output.run_id == run.run_id => return Ok(output),
                Ok(RunOutcome::Failed { run_id, error }) if run_id == run.run_id => return Err(error.to_string()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(30), outcome)
        .await
        .map_err(|_| "the worker did not continue the run within 30 s")??;
    println!(
        "the worker continued run {} {} ms after the approval: {}: {}",
        finished.run_id,
        approved_at.elapsed().as_millis(),
        finished.status,
        finished.content.as_deref().unwrap_or_default()
    );
    if finished.status != RunStatus::Completed {
        return Err(format!("expected the run to complete, it is {}", finished.status).into());
    }

    // A graceful stop: the worker finishes what it holds, then returns.
    let _ = stop.send(());
    working.await??;
    Ok(())
}

/// The admin's process: approves `row_id` in the database file `db_file`.
async fn approve(db_file: &Path, row_id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let db = SqliteDb::open(db_file).await?;
    let row = db.update_approval(row_id, ApprovalUpdate::approve("ops-lead")).await?;
    println!("[admin process {}] {} row {} for {}", std::process::id(), row.status, row.id, row.tool_name);
    Ok(())
}
