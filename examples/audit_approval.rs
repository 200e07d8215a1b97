//! Audit approval: the run pauses only for the ordinary confirmation; once it is answered an
//! audit row records who decided what. No admin has to act.
//!
//! `cargo run --example audit_approval`

mod common;

use kern::prelude::*;
use kern::run::RunOptions;
use serde_json::json;

/// Export a customer's data as a file.
#[approval(type = "audit")]
#[tool(requires_confirmation)]
fn export_customer_data(customer_id: String) -> String {
    format!("exported data of {customer_id} to export-{customer_id}.zip")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("audit");
    let db = SqliteDb::open(scratch.path()).await?;
    let script = ScriptedModel::new()
        .when_user_contains("export", Reply::call("export_customer_data", json!({"customer_id": "c-77"})));
    let agent = Agent::builder()
        .name("data-agent")
        .model(common::model(script))
        .tool(ExportCustomerData)
        .db(db.clone())
        .build()?;

    let mut run =
        agent.run_with("Please export the data of customer c-77", RunOptions::default().user_id("dana")).await?;
    let rows_now = db.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await?.total;
    println!("run is {} for confirmation; approval rows so far: {rows_now}", run.status);

    let requirement = run.requirements.first_mut().ok_or("the export waits for confirmation")?;
    requirement.confirm();
    requirement.set_resolved_by("dana");
    let done = agent.continue_run(&run.run_id, run.requirements).await?;
    println!("run is {}: {}", done.status, done.content.unwrap_or_default());

    let audit = db.list_approvals(&ApprovalQuery::default().approval_type(ApprovalType::Audit)).await?;
    for row in audit.items {
        println!(
            "audit: {} {} by {} for user {} ({})",
            row.tool_name,
            row.status,
            row.resolved_by.as_deref().unwrap_or("?"),
            row.user_id.as_deref().unwrap_or("?"),
            row.pause_type
        );
    }
    Ok(())
}
