//! Streaming: a run's events as they happen. The answer prints as the model writes it, the run
//! pauses on a gated call, an admin approves, and the continue streams the call, its result and
//! the rest of the answer.
//!
//! `cargo run --example streaming`

mod common;

use std::io::Write as _;

use futures_util::StreamExt as _;
use kern::events::{RunEvent, RunStream};
use kern::prelude::*;
use serde_json::json;

/// Restart a service in production. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn restart_service(name: String) -> String {
    format!("{name} restarted, healthy after 4 s")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("streaming");
    let db = SqliteDb::open(scratch.path()).await?;
    let script = ScriptedModel::new()
        .when_user_contains("slow", Reply::call("restart_service", json!({"name": "checkout"})))
        .when_user_contains("hello", Reply::text("Hello! I keep an eye on the services and restart them when asked."))
        .after_tool("restart_service", Reply::text("Restarted as asked. Result: {result}"));
    let agent = Agent::builder().id("sre").model(common::model(script)).tool(RestartService).db(db.clone()).build()?;

    println!("> hello");
    print_events(agent.run_stream("hello")).await?;

    println!("\n> checkout is slow, please restart it");
    let paused = print_events(agent.run_stream("checkout is slow, please restart it")).await?;
    let row = paused.requirements.first().and_then(|r| r.approval_id.clone()).ok_or("the call waits for a row")?;
    db.update_approval(&row, ApprovalUpdate::approve("oncall-lead")).await?;
    println!("[admin] approved row {row}");

    let done = print_events(agent.continue_stream(&paused.run_id, Vec::new())).await?;
    if done.status != RunStatus::Completed {
        return Err(format!("expected the run to complete, it is {}", done.status).into());
    }
    println!("tokens this session: {:?}", agent.session_usage(&done.session_id).await?);
    Ok(())
}

/// Prints each event as it arrives; returns the run's outcome.
async fn print_events(mut events: RunStream) -> Result<RunOutput, Box<dyn std::error::Error>> {
    while let Some(event) = events.next().await {
        match event {
            RunEvent::RunStarted { run_id, .. } => println!("[run {run_id} started]"),
            RunEvent::RunContinued { run_id, .. } => println!("[run {run_id} continues]"),
            RunEvent::ContentDelta { text, .. } => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            RunEvent::ToolCallStarted { tool_name, args, .. } => println!("[calling {tool_name} {args}]"),
            RunEvent::ToolCallCompleted { tool_name, status, result, .. } => {
                println!("[{tool_name} {status}: {result}]");
            }
            RunEvent::ApprovalRequested(row) => println!("[{} waits for an admin: row {}]", row.tool_name, row.id),
            RunEvent::RunPaused(output) => {
                println!("[paused: {} call(s) wait]", output.requirements.len());
                return Ok(*output);
            }
            RunEvent::RunCompleted(output) | RunEvent::RunCancelled(output) => {
                println!("\n[{}]", output.status);
                return Ok(*output);
            }
            RunEvent::RunError { error, .. } => return Err(error.into()),
            _ => {}
        }
    }
    Err("the stream ended without an outcome".into())
}
