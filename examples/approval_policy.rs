//! Who may approve: a payment needs two people from finance, never the one who asked for it; an
//! email may be reworded by the approver before it goes out; small payments need no one; and the
//! trail, a hash-chained log of every decision, is verified at the end.
//!
//! `cargo run --example approval_policy`

mod common;

use kern::prelude::*;
use kern::trail::TrailEvent;
use serde_json::json;

fn is_large(args: &PayVendorArgs) -> bool {
    args.amount > 1000
}

/// Pay a vendor. Large payments need two people from finance, and not the requester.
#[approval(approvers = ["finance"], quorum = 2, self_approval = false, when = is_large)]
#[tool(requires_confirmation)]
async fn pay_vendor(vendor: String, amount: u32) -> String {
    format!("Paid {amount} to {vendor}.")
}

/// Email a customer. The approver may reword it.
#[approval(allow_edit)]
#[tool(requires_confirmation)]
async fn email_customer(to: String, body: String) -> String {
    format!("Sent to {to}: {body}")
}

fn describe(events: &[TrailEvent]) -> String {
    events.iter().map(|event| format!("{} by {}", event.kind, event.principal)).collect::<Vec<_>>().join(", ")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("approval_policy");
    let db = SqliteDb::open(scratch.path()).await?;
    let model = common::model(
        ScriptedModel::new()
            .when_user_contains("large", Reply::call("pay_vendor", json!({"vendor": "acme", "amount": 5000})))
            .when_user_contains("small", Reply::call("pay_vendor", json!({"vendor": "acme", "amount": 20})))
            .when_user_contains("email", Reply::call("email_customer", json!({"to": "ada", "body": "Pay now."})))
            .after_tool("pay_vendor", Reply::text("Done."))
            .after_tool("email_customer", Reply::text("Sent.")),
    );
    let agent =
        Agent::builder().name("billing").model(model).tool(PayVendor).tool(EmailCustomer).db(db.clone()).build()?;

    // A small payment: its condition does not ask for approval; an audit row says so.
    let small = agent.run_with("pay the small invoice", RunOptions::default().user_id("alice")).await?;
    println!("small payment: run {} is {}", small.run_id, small.status);

    // A large one pauses; its row carries the policy in force.
    let run = agent.run_with("pay the large invoice", RunOptions::default().user_id("alice")).await?;
    let page = db.list_approvals(&ApprovalQuery::default().run_id(&run.run_id)).await?;
    let row = page.items.first().ok_or("the large payment waits for a row")?;
    println!("large payment: run {} is {}, policy {:?}", run.run_id, run.status, row.policy);

    let alice = Principal::new("alice").with_role("finance");
    match db.decide(&row.id, &alice, Decision::approve()).await {
        Err(refused) => println!("alice may not approve her own request: {refused}"),
        Ok(_) => return Err("self-approval should be refused".into()),
    }
    let bob = Principal::new("bob").with_role("finance");
    let carol = Principal::new("carol").with_role("finance");
    println!("bob approves: row is {}", db.decide(&row.id, &bob, Decision::approve()).await?.status);
    println!("carol approves: row is {}", db.decide(&row.id, &carol, Decision::approve()).await?.status);
    let done = agent.continue_run_by_id(&run.run_id).await?;
    println!("large payment: run {} is {}: {}", done.run_id, done.status, done.content.unwrap_or_default());
    println!("its trail: {}", describe(&db.trail(&row.id).await?));

    // An email, reworded by the approver before it goes out.
    let run = agent.run("email the customer").await?;
    let page = db.list_approvals(&ApprovalQuery::default().run_id(&run.run_id)).await?;
    let kinder = json!({"to": "ada", "body": "A gentle reminder: your invoice is due."});
    let row = page.items.first().ok_or("the email waits for a row")?;
    db.decide(&row.id, &Principal::new("dana"), Decision::approve().with_args(kinder)).await?;
    let done = agent.continue_run_by_id(&run.run_id).await?;
    let sent = done.tools.first().and_then(|call| call.result.clone()).unwrap_or_default();
    println!("email: run {} is {}: {sent}", done.run_id, done.status);

    let report = db.verify_trail().await?;
    println!("trail: {} events over {} rows, intact: {}", report.events, report.approvals, report.is_intact());
    if !report.is_intact() {
        return Err(format!("the trail is broken: {:?}", report.broken).into());
    }
    Ok(())
}
