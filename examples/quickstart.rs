//! Quick start: an agent pauses on a tool that needs admin approval, an admin approves the
//! pending row, and the run resumes by its id.
//!
//! `cargo run --example quickstart`

mod common;

use kern::Utc;
use kern::prelude::*;
use serde_json::json;

/// Permanently delete all data for a user. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
async fn delete_user_data(user_id: String) -> String {
    format!("All data for user {user_id} has been deleted.")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("quickstart");
    let db = SqliteDb::builder().db_file(scratch.path()).approvals_table("approvals").build().await?;
    let model = common::model(
        ScriptedModel::new().when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"}))),
    );
    let agent = Agent::builder().name("privacy-agent").model(model).tool(DeleteUserData).db(db.clone()).build()?;

    // 1. The pause: the run stops at the protected tool and a pending row is written.
    let run = agent.run("Please delete all data for user 42").await?;
    println!("run {} is {}", run.run_id, run.status);
    if run.status != RunStatus::Paused {
        return Err(format!("expected the run to pause, it is {}", run.status).into());
    }

    // 2. The admin lists pending approvals and approves one, compare-and-set on `pending`.
    let page = db.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending)).await?;
    let approval = page.items.first().ok_or("the paused run has a pending row")?;
    println!(
        "pending: {} asks to call {} with {} (approval {})",
        agent.id(),
        approval.tool_name,
        approval.tool_args,
        approval.id
    );
    let approval = db
        .update_approval(
            &approval.id,
            ApprovalUpdate {
                expected_status: Some(ApprovalStatus::Pending),
                status: ApprovalStatus::Approved,
                resolved_by: Some("admin_user_id".into()),
                resolved_at: Some(Utc::now()),
                resolution_data: None,
            },
        )
        .await?;
    println!("approval {} is {} by {}", approval.id, approval.status, approval.resolved_by.as_deref().unwrap_or("?"));

    // 3. The run resumes: kern checks the row, runs the tool, and the model answers.
    let run = agent.continue_run(&run.run_id, run.requirements).await?;
    println!("run {} is {}: {}", run.run_id, run.status, run.content.unwrap_or_default());
    Ok(())
}
