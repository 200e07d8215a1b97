//! What the tests find in the database: runs paused by an agent on a tool that needs an admin,
//! as an application leaves them.

use std::future::Future;
use std::sync::Arc;

use kern::prelude::*;
use serde_json::json;

use crate::harness::{OpenDb, TestDb, each_backend};

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

/// Refund a customer. The admin decides the amount.
#[approval]
#[tool(user_input_fields = ["amount_eur"])]
fn refund(customer: String, amount_eur: u32) -> String {
    format!("refunded {amount_eur} EUR to {customer}")
}

/// Tag a customer's account; a person may add a note to the tag.
#[approval]
#[tool(user_input_fields = ["note"])]
fn tag_account(customer: String, note: Option<String>) -> String {
    format!("tagged {customer}: {}", note.unwrap_or_default())
}

/// Apply a production database migration. An operator runs it by hand.
#[approval]
#[tool(external_execution)]
fn apply_migration(name: String) -> String {
    format!("{name} must be applied by an operator")
}

/// Email a customer. The approver may reword it.
#[approval(allow_edit)]
#[tool(requires_confirmation)]
async fn email_customer(to: String, body: String) -> String {
    format!("Sent to {to}: {body}")
}

/// An agent on `store` whose runs pause on `delete_user_data` ("delete ..."), `pay_vendor`
/// ("pay ..."), `refund` ("refund ..."), `tag_account` ("tag ..."), `apply_migration`
/// ("migrate ...") and `email_customer` ("email ...").
pub fn agent(store: std::sync::Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
        .when_user_contains("pay", Reply::call("pay_vendor", json!({"vendor": "acme", "amount": 1200})))
        .when_user_contains("refund", Reply::call("refund", json!({"customer": "c-7"})))
        .when_user_contains("tag", Reply::call("tag_account", json!({"customer": "c-7"})))
        .when_user_contains("migrate", Reply::call("apply_migration", json!({"name": "0042_users"})))
        .when_user_contains("email", Reply::call("email_customer", json!({"to": "c-7", "body": "hi"})));
    Agent::builder()
        .name("ops")
        .model(model)
        .tool(DeleteUserData)
        .tool(PayVendor)
        .tool(Refund)
        .tool(TagAccount)
        .tool(ApplyMigration)
        .tool(EmailCustomer)
        .db(store)
        .build()
        .expect("build the agent")
}

/// Where most tests start: a fresh database, the store on it and the agent.
pub struct Scene {
    pub db: TestDb,
    pub store: Arc<dyn OpenDb>,
    pub agent: Agent,
}

/// Runs `case` on a fresh [`Scene`] of each backend, closing the store afterwards.
pub async fn each_scene<F, Fut>(case: F)
where
    F: Fn(Scene) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    each_backend(move |db| {
        let case = case.clone();
        async move {
            let store: Arc<dyn OpenDb> = db.open().await.into();
            let agent = agent(store.shared());
            case(Scene { db, store: store.clone(), agent }).await;
            store.close().await;
        }
    })
    .await
}

/// Runs `agent` on `input` for user `user`; the run pauses and leaves one pending row.
pub async fn pause(agent: &Agent, input: &str, user: &str) -> (RunOutput, String) {
    let run = agent.run_with(input, RunOptions::default().user_id(user)).await.expect("run");
    assert_eq!(run.status, RunStatus::Paused, "{run:?}");
    let id = run.requirements[0].approval_id.clone().expect("a required approval has a row");
    (run, id)
}
