//! Team approvals, three patterns: the tool on the team, on a member agent, and on both.
//!
//! `cargo run --example team_approval`

mod common;

use kern::prelude::*;
use serde_json::json;

/// Close a customer's account. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn close_account(customer_id: String) -> String {
    format!("account {customer_id} closed")
}

/// Issue a refund. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn issue_refund(customer_id: String, amount_cents: u64) -> String {
    format!("refunded {amount_cents} cents to {customer_id}")
}

fn billing_agent(db: &SqliteDb) -> Result<Agent, kern::Error> {
    let script = ScriptedModel::new()
        .when_user_contains("refund", Reply::call("issue_refund", json!({"customer_id": "c-9", "amount_cents": 4500})));
    Agent::builder().id("billing").name("Billing").model(common::model(script)).tool(IssueRefund).db(db.clone()).build()
}

fn team(db: &SqliteDb) -> Result<Team, kern::Error> {
    let delegate = json!({"member_id": "billing", "task": "refund customer c-9"});
    let script = ScriptedModel::new()
        .when_user_contains(
            "both",
            Reply::calls([
                ("close_account", json!({"customer_id": "c-9"})),
                ("delegate_task_to_member", delegate.clone()),
            ]),
        )
        .when_user_contains("close", Reply::call("close_account", json!({"customer_id": "c-9"})))
        .when_user_contains("refund", Reply::call("delegate_task_to_member", delegate));
    Team::builder()
        .id("support")
        .name("Support")
        .model(common::model(script))
        .member(billing_agent(db)?)
        .tool(CloseAccount)
        .db(db.clone())
        .build()
}

/// Runs `input` on the team, approves every pending row the run left, and continues it.
async fn pattern(team: &Team, db: &SqliteDb, title: &str, input: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("== {title}");
    let run = team.run(input).await?;
    println!("team run is {} with {} requirement(s)", run.status, run.requirements.len());
    for requirement in &run.requirements {
        let Some(id) = &requirement.approval_id else { continue };
        let row = db.get_approval(id).await?.ok_or("row missing")?;
        let owner = match &requirement.member {
            Some(member) => format!("member {} (run {})", member.agent_id, member.run_id),
            None => "the team".to_owned(),
        };
        println!(
            "  row {} for {} by {owner}: source {} team {:?}",
            row.id, row.tool_name, row.source_type, row.team_id
        );
        db.update_approval(id, ApprovalUpdate::approve("admin")).await?;
    }
    let done = team.continue_run(&run.run_id, run.requirements).await?;
    println!("team run is {}: {}", done.status, done.content.unwrap_or_default());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = common::ExampleDb::new("team");
    let db = SqliteDb::open(scratch.path()).await?;
    let team = team(&db)?;
    pattern(&team, &db, "1. tool on the team", "close the account of c-9").await?;
    pattern(&team, &db, "2. tool on a member", "refund c-9").await?;
    pattern(&team, &db, "3. tools on both", "both: close and refund c-9").await?;
    Ok(())
}
