//! Tools the lifecycle tests give their agents, and a log of every call that ran.

use std::sync::{LazyLock, Mutex};

use kern::prelude::*;
use serde_json::{Value, json};

/// One call that actually ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub tool: &'static str,
    pub args: Value,
    pub context: RunContext,
}

static RAN: LazyLock<Mutex<Vec<Ran>>> = LazyLock::new(Mutex::default);

/// Records that `tool` ran, for tools written in other test modules.
pub fn log_call(tool: &'static str, context: &RunContext, args: Value) {
    log(tool, context, args);
}

fn log(tool: &'static str, context: &RunContext, args: Value) {
    RAN.lock().unwrap().push(Ran { tool, args, context: context.clone() });
}

/// The calls that ran in `run_id`.
pub fn ran(run_id: &str) -> Vec<Ran> {
    RAN.lock().unwrap().iter().filter(|r| r.context.run_id == run_id).cloned().collect()
}

/// Permanently delete all data for a user. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
pub async fn delete_user_data(context: &RunContext, user_id: String) -> String {
    log("delete_user_data", context, json!({ "user_id": user_id }));
    format!("All data for user {user_id} has been deleted.")
}

/// Purge old logs; the approval expires after an hour.
#[approval(expires_in = "1h")]
#[tool(requires_confirmation)]
pub fn purge_logs(context: &RunContext, days: u32) -> String {
    log("purge_logs", context, json!({ "days": days }));
    format!("purged logs older than {days} days")
}

/// Send a payment; the admin decides the amount, and may add a note for the payee.
#[approval]
#[tool(user_input_fields = ["amount", "note"])]
pub fn send_payment(context: &RunContext, to: String, amount: u32, note: Option<String>) -> String {
    log("send_payment", context, json!({ "to": to, "amount": amount }));
    let note = note.map(|note| format!(" ({note})")).unwrap_or_default();
    format!("sent {amount} to {to}{note}")
}

/// Run a database migration; an operator runs it and reports the result.
#[approval]
#[tool(external_execution)]
pub fn run_migration(context: &RunContext, name: String) -> String {
    log("run_migration", context, json!({ "name": name }));
    format!("ran {name} in process")
}

/// Archive a table; audited, not blocking.
#[approval(type = "audit")]
#[tool(requires_confirmation)]
pub fn archive_records(context: &RunContext, table: String) -> String {
    log("archive_records", context, json!({ "table": table }));
    format!("archived {table}")
}

/// Set a discount code's percentage, which a person gives; audited, not blocking.
#[approval(type = "audit")]
#[tool(user_input_fields = ["percent"])]
pub fn set_discount(context: &RunContext, code: String, percent: u32) -> String {
    log("set_discount", context, json!({ "code": code, "percent": percent }));
    format!("{code} is {percent}% off")
}

/// Ship an order by the warehouse's own system, which hands the outcome back; audited.
#[approval(type = "audit")]
#[tool(external_execution)]
pub fn ship_order(order_id: String) -> String {
    order_id
}

/// Rotate a service's keys; audited through the tool flag.
#[tool(requires_confirmation, log_approval)]
pub fn rotate_keys(context: &RunContext, service: String) -> String {
    log("rotate_keys", context, json!({ "service": service }));
    format!("rotated keys of {service}")
}

/// Restart a service; the user confirms, no admin involved.
#[tool(requires_confirmation)]
pub fn restart_service(context: &RunContext, name: String) -> String {
    log("restart_service", context, json!({ "name": name }));
    format!("restarted {name}")
}

/// Book a trip; the user picks the city.
#[tool(user_input_fields = ["city"])]
pub fn book_trip(context: &RunContext, city: String, days: u32) -> String {
    log("book_trip", context, json!({ "city": city, "days": days }));
    format!("booked {days} days in {city}")
}

/// Ask a vendor; the answer comes from outside.
#[tool(external_execution)]
pub fn ask_vendor(context: &RunContext, question: String) -> String {
    log("ask_vendor", context, json!({ "question": question }));
    "should not run".to_owned()
}

/// Add two numbers.
#[tool]
pub fn add(context: &RunContext, a: i64, b: i64) -> i64 {
    log("add", context, json!({ "a": a, "b": b }));
    a + b
}

/// Always fails.
#[tool]
pub fn flaky(context: &RunContext) -> Result<String, String> {
    log("flaky", context, json!({}));
    Err("the service is down".to_owned())
}

/// Waits until a second call of it is running too, so it finishes only when calls overlap.
#[tool]
pub async fn rendezvous(context: &RunContext, who: String) -> String {
    static BARRIER: LazyLock<tokio::sync::Barrier> = LazyLock::new(|| tokio::sync::Barrier::new(2));
    BARRIER.wait().await;
    log("rendezvous", context, json!({ "who": who }));
    format!("{who} met")
}

/// Panics when called.
#[tool]
pub fn explode(context: &RunContext) -> String {
    log("explode", context, json!({}));
    panic!("boom")
}

/// `restart_service` after an admin marked it as needing approval.
#[approval]
#[tool(name = "restart_service", requires_confirmation)]
pub fn restart_service_gated(context: &RunContext, name: String) -> String {
    log("restart_service", context, json!({ "name": name }));
    format!("restarted {name}")
}

/// A hand-written tool that declares a required approval but no HITL kind.
pub struct WipeDisk;

impl Tool for WipeDisk {
    fn definition(&self) -> kern::tools::ToolDefinition {
        let schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
        kern::tools::ToolDefinition::new(
            "wipe_disk",
            "Wipe the disk.",
            schema,
            kern::tools::Hitl::None,
            Some(kern::approval::ApprovalPolicy::REQUIRED),
        )
    }

    fn call<'a>(
        &'a self,
        context: &'a RunContext,
        _args: Value,
    ) -> kern::BoxFuture<'a, Result<Value, kern::tools::ToolError>> {
        Box::pin(async move {
            log("wipe_disk", context, json!({}));
            Ok(json!("wiped"))
        })
    }
}

/// A hand-written tool of whatever definition it is given: for the rules every definition is
/// held to, macro or not.
pub struct ByHand(pub kern::tools::ToolDefinition);

impl Tool for ByHand {
    fn definition(&self) -> kern::tools::ToolDefinition {
        self.0.clone()
    }

    fn call<'a>(
        &'a self,
        context: &'a RunContext,
        args: Value,
    ) -> kern::BoxFuture<'a, Result<Value, kern::tools::ToolError>> {
        log("by_hand", context, args);
        Box::pin(async { Ok(Value::Null) })
    }
}

/// A hand-written tool whose approval lapses the moment it is asked for, as a policy with a
/// zero expiry gives: its row is pending past its `expires_at` from the start.
pub struct FlushCache;

impl Tool for FlushCache {
    fn definition(&self) -> kern::tools::ToolDefinition {
        let schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
        let policy = kern::approval::ApprovalPolicy::REQUIRED.expires_in(std::time::Duration::ZERO);
        kern::tools::ToolDefinition::new(
            "flush_cache",
            "Flush the cache.",
            schema,
            kern::tools::Hitl::Confirmation,
            Some(policy),
        )
    }

    fn call<'a>(
        &'a self,
        context: &'a RunContext,
        _args: Value,
    ) -> kern::BoxFuture<'a, Result<Value, kern::tools::ToolError>> {
        Box::pin(async move {
            log("flush_cache", context, json!({}));
            Ok(json!("flushed"))
        })
    }
}

/// A hand-written tool that panics where a macro's cannot: as it is called, before it returns
/// its future, or (with an approval) in its approval condition.
pub enum Brittle {
    /// `brittle_call`: panics as it is called.
    Call,
    /// `brittle_condition`: needs approval, and its condition panics.
    Condition,
}

impl Tool for Brittle {
    fn definition(&self) -> kern::tools::ToolDefinition {
        let schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
        let (name, hitl, policy) = match self {
            Brittle::Call => ("brittle_call", kern::tools::Hitl::None, None),
            Brittle::Condition => {
                ("brittle_condition", kern::tools::Hitl::Confirmation, Some(kern::approval::ApprovalPolicy::REQUIRED))
            }
        };
        kern::tools::ToolDefinition::new(name, "Break.", schema, hitl, policy)
    }

    fn call<'a>(
        &'a self,
        _: &'a RunContext,
        _args: Value,
    ) -> kern::BoxFuture<'a, Result<Value, kern::tools::ToolError>> {
        panic!("snapped")
    }

    fn needs_approval(&self, _args: &Value) -> Result<bool, kern::tools::ToolError> {
        panic!("the condition snapped")
    }
}

/// Export every record: it takes 45 s (of a test's paused clock), longer than a continue's
/// claim goes unrenewed.
#[approval]
#[tool(requires_confirmation)]
pub async fn long_export(context: &RunContext) -> String {
    log("long_export", context, json!({}));
    tokio::time::sleep(std::time::Duration::from_secs(45)).await;
    "exported".to_owned()
}

/// Export the recent records: it takes 25 s (of a test's paused clock), past one renewal of a
/// continue's claim and short of the next.
#[approval]
#[tool(requires_confirmation)]
pub async fn recent_export(context: &RunContext) -> String {
    log("recent_export", context, json!({}));
    tokio::time::sleep(std::time::Duration::from_secs(25)).await;
    "exported".to_owned()
}
