//! Approval with user input: the admin supplies the value the model may not choose (the
//! amount), and a payload that does not fit the tool is refused while the row stays pending.
//!
//! `cargo run --example approval_user_input`

mod common;

use kern::prelude::*;
use serde_json::json;

/// Send a payment to a vendor. The admin decides the amount.
#[approval]
#[tool(user_input_fields = ["amount_eur"])]
fn pay_vendor(vendor: String, amount_eur: u32) -> String {
    format!("paid {amount_eur} EUR to {vendor}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("user_input");
    let db = SqliteDb::open(scratch.path()).await?;
    let script = ScriptedModel::new().when_user_contains("pay", Reply::call("pay_vendor", json!({"vendor": "ACME"})));
    let agent =
        Agent::builder().name("finance-agent").model(common::model(script)).tool(PayVendor).db(db.clone()).build()?;

    let run = agent.run("Please pay ACME for the October invoice").await?;
    let rows = db.list_approvals(&ApprovalQuery::default().run_id(run.run_id.as_str())).await?.items;
    let row = rows.into_iter().next().ok_or("the payment waits for a row")?;
    let schema = row.requirement().and_then(|r| r.user_input_schema.clone()).unwrap_or_default();
    println!("run is {}; the admin must supply: {schema}", run.status);

    let refused = db
        .update_approval(&row.id, ApprovalUpdate::approve("cfo").with_data(json!({"values": {"amount_eur": "a lot"}})))
        .await;
    println!("a payload that does not fit: {}", refused.err().map(|e| e.to_string()).unwrap_or_default());

    db.update_approval(&row.id, ApprovalUpdate::approve("cfo").with_data(json!({"values": {"amount_eur": 1200}})))
        .await?;
    let done = agent.continue_run(&run.run_id, run.requirements).await?;
    println!("run is {}: {}", done.status, done.content.unwrap_or_default());
    Ok(())
}
