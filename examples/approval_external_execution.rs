//! Approval with external execution: the admin carries out the action outside the agent and
//! hands back its result; the function itself never runs.
//!
//! `cargo run --example approval_external_execution`

mod common;

use kern::prelude::*;
use serde_json::json;

/// Apply a production database migration. An operator runs it by hand.
#[approval]
#[tool(external_execution)]
fn apply_migration(name: String) -> String {
    format!("{name} must be applied by an operator")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("external_execution");
    let db = SqliteDb::open(scratch.path()).await?;
    let script = ScriptedModel::new()
        .when_user_contains("migration", Reply::call("apply_migration", json!({"name": "2026_11_add_index"})));
    let agent =
        Agent::builder().name("dba-agent").model(common::model(script)).tool(ApplyMigration).db(db.clone()).build()?;

    let run = agent.run("Apply the pending migration").await?;
    let rows = db.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await?.items;
    let row = rows.into_iter().next().ok_or("the call waits for a row")?;
    println!("run is {}; {} waits for {} ({})", run.status, row.tool_name, row.pause_type, row.tool_args);

    let result = json!({"result": "migration 2026_11_add_index applied in 4.2 s"});
    db.update_approval(&row.id, ApprovalUpdate::approve("dba-on-call").with_data(result)).await?;
    let done = agent.continue_run(&run.run_id, run.requirements).await?;
    println!("run is {}: {}", done.status, done.content.unwrap_or_default());
    Ok(())
}
