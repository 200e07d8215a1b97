//! What the tests find in the database: runs paused by an agent on a tool that needs an admin,
//! as an application leaves them.

use kern::prelude::*;
use serde_json::json;

/// Permanently delete all data for a user.
#[approval]
#[tool(requires_confirmation)]
async fn delete_user_data(user_id: String) -> String {
    format!("All data for user {user_id} has been deleted.")
}

/// Pay a vendor; only finance decides.
#[approval(approvers = ["finance"])]
#[tool(requires_confirmation)]
async fn pay_vendor(vendor: String, amount: u32) -> String {
    format!("Paid {vendor} {amount}.")
}

/// An agent on `store` whose runs pause on `delete_user_data` ("delete ...") and on
/// `pay_vendor` ("pay ...").
pub fn agent(store: std::sync::Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .when_user_contains("pay", Reply::call("pay_vendor", json!({"vendor": "acme", "amount": 1200})));
    Agent::builder()
        .name("ops")
        .model(model)
        .tool(DeleteUserData)
        .tool(PayVendor)
        .db(store)
        .build()
        .expect("build the agent")
}

/// Runs `agent` on `input` for user `user`; the run pauses and leaves one pending row.
pub async fn pause(agent: &Agent, input: &str, user: &str) -> (RunOutput, String) {
    let run = agent.run_with(input, RunOptions::default().user_id(user)).await.expect("run");
    assert_eq!(run.status, RunStatus::Paused, "{run:?}");
    let id = run.requirements[0].approval_id.clone().expect("a required approval has a row");
    (run, id)
}
