//! The schema check at both of its gates: a model's arguments that break a tool's schema go back
//! to the model at pause time, before any approval row is written, and an admin's user-input
//! values that break it are refused at resolve time, the row staying pending. Numbers are judged
//! as the tool's serde deserializer judges them, so nothing approved fails when it runs.

use std::sync::Arc;

use chrono::Utc;
use kern::Error;
use kern::approval::ApprovalPolicy;
use kern::prelude::*;
use kern::run::ToolCallStatus;
use kern::tools::{Hitl, ToolDefinition, ToolError};
use serde_json::{Map, Value, json};

use crate::backend::Backend;
use crate::on_every_backend;

/// The fields of the form tools: one per keyword under test.
fn form_properties() -> Value {
    json!({
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "name": {"type": "string", "minLength": 2, "maxLength": 8},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3, "uniqueItems": true},
        "amount": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 5},
        "when": {"type": "string", "format": "date-time"},
        "target": {"oneOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "pattern": "^10\\."}]},
        "count": {"type": "integer", "format": "uint32"}
    })
}

/// Values that fit every field of [`form_properties`].
fn fitting_form() -> Map<String, Value> {
    let form = json!({
        "code": "ABC",
        "name": "ann",
        "tags": ["a", "b"],
        "amount": 10,
        "when": "2024-05-01T10:00:00Z",
        "target": "192.168.0.1",
        "count": 4_294_967_295_u32
    });
    form.as_object().cloned().expect("an object")
}

/// The form with one field broken, the path the error must name, and what it must say.
fn broken_forms() -> Vec<(Map<String, Value>, &'static str, &'static str)> {
    let one_broken = |field: &str, value: Value| {
        let mut form = fitting_form();
        form.insert(field.to_owned(), value);
        form
    };
    vec![
        (one_broken("code", json!("abc")), "$.code", "does not match"),
        (one_broken("name", json!("a")), "$.name", "is shorter than 2 characters"),
        (one_broken("name", json!("a-long-name")), "$.name", "is longer than 8 characters"),
        (one_broken("tags", json!([])), "$.tags", "has less than 1 item"),
        (one_broken("tags", json!(["a", "b", "c", "d"])), "$.tags", "has more than 3 items"),
        (one_broken("tags", json!(["a", "a"])), "$.tags", "has non-unique elements"),
        (one_broken("amount", json!(0)), "$.amount", "less than or equal to the minimum of 0"),
        (one_broken("amount", json!(7)), "$.amount", "is not a multiple of 5"),
        (one_broken("when", json!("tomorrow at noon")), "$.when", "is not a \"date-time\""),
        (one_broken("target", json!("10.0.0.1")), "$.target", "more than one of the schemas listed in the 'oneOf'"),
        (one_broken("count", json!(4_294_967_296_u64)), "$.count", "out of range for uint32"),
        (one_broken("count", json!(1.0)), "$.count", "expected integer, found 1.0"),
    ]
}

/// Fills in a form; an admin confirms each call. The model supplies every field.
struct FillForm;

impl Tool for FillForm {
    fn definition(&self) -> ToolDefinition {
        let schema = json!({
            "type": "object",
            "properties": form_properties(),
            "required": fitting_form().keys().collect::<Vec<_>>(),
            "additionalProperties": false
        });
        ToolDefinition::new("fill_form", "Fill in a form.", schema, Hitl::Confirmation, Some(ApprovalPolicy::REQUIRED))
    }

    fn call<'a>(&'a self, _: &'a RunContext, args: Value) -> kern::BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move { Ok(json!(format!("filed {args}"))) })
    }
}

/// Files a ticket; the model names it and an admin fills in the whole form.
struct FileTicket;

impl Tool for FileTicket {
    fn definition(&self) -> ToolDefinition {
        let mut properties = form_properties();
        properties["ticket"] = json!({"type": "string"});
        let fields: Vec<String> = fitting_form().keys().cloned().collect();
        let mut required = fields.clone();
        required.push("ticket".to_owned());
        let schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false
        });
        let hitl = Hitl::UserInput { fields };
        ToolDefinition::new("file_ticket", "File a ticket.", schema, hitl, Some(ApprovalPolicy::REQUIRED))
    }

    fn call<'a>(&'a self, _: &'a RunContext, args: Value) -> kern::BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move { Ok(json!(format!("filed {}", args["ticket"]))) })
    }
}

/// Reserve `n` slots; the admin decides how many to hold.
#[approval]
#[tool(user_input_fields = ["count"])]
fn reserve(n: i64, count: u32) -> String {
    format!("reserved {n}, holding {count}")
}

fn agent(store: Arc<dyn Store>, reply: Reply) -> Agent {
    let model = ScriptedModel::new().when_user_contains("go", reply);
    Agent::builder().model(model).tool(FillForm).tool(FileTicket).tool(Reserve).db(store).build().unwrap()
}

async fn rows(store: &dyn Store, run_id: &str) -> Vec<Approval> {
    store.list_approvals(&ApprovalQuery::default().run_id(run_id)).await.unwrap().items
}

/// Runs one call the model makes and checks it went back to the model as `path: ...message...`
/// without anyone being asked.
async fn refused_at_pause_time(store: &Arc<dyn Store>, reply: Reply, path: &str, message: &str) {
    let run = agent(store.clone(), reply).run("go").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{path}: nobody is asked about a call that cannot run");
    assert!(run.requirements.is_empty(), "{path}");
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed, "{path}");
    let content = run.content.unwrap();
    assert!(content.contains(&format!("invalid arguments: {path}: ")), "{content}");
    assert!(content.contains(message), "{path} should say {message:?}: {content}");
    assert!(rows(&**store, &run.run_id).await.is_empty(), "{path}: no approval row for a refused call");
}

/// Pauses the model's call and returns the run and its one pending row.
async fn paused(store: &Arc<dyn Store>, reply: Reply) -> (Agent, RunOutput, Approval) {
    let agent = agent(store.clone(), reply);
    let run = agent.run("go").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let mut rows = rows(&**store, &run.run_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = rows.remove(0);
    assert_eq!(row.status, ApprovalStatus::Pending);
    (agent, run, row)
}

fn approve_with(values: Value) -> ApprovalUpdate {
    ApprovalUpdate {
        expected_status: Some(ApprovalStatus::Pending),
        status: ApprovalStatus::Approved,
        resolved_by: Some("admin-1".into()),
        resolved_at: Some(Utc::now()),
        resolution_data: Some(json!({ "values": values })),
    }
}

/// Approves `row` with `values` and checks the store refused them, naming `path`.
async fn refused_at_resolve_time(store: &dyn Store, row: &Approval, values: Value, path: &str, message: &str) {
    let err = store.update_approval(&row.id, approve_with(values.clone())).await.unwrap_err();
    let Error::InvalidResolution { id, reason } = &err else { panic!("{values}: {err:?}") };
    assert_eq!(id, &row.id);
    assert!(reason.starts_with(&format!("{path}: ")), "{values}: {reason}");
    assert!(reason.contains(message), "{path} should say {message:?}: {reason}");
}

on_every_backend!(
    arguments_breaking_any_keyword_go_back_to_the_model_at_pause_time,
    values_breaking_any_keyword_are_refused_at_resolve_time,
    model_numbers_an_i64_cannot_hold_go_back_to_the_model,
    admin_numbers_a_u32_cannot_hold_are_refused_and_the_row_stays_pending,
);

async fn arguments_breaking_any_keyword_go_back_to_the_model_at_pause_time(backend: Backend) {
    let store = backend.store();
    for (form, path, message) in broken_forms() {
        refused_at_pause_time(&store, Reply::call("fill_form", Value::Object(form)), path, message).await;
    }
    // The fitting form pauses for the admin, so the refusals above are the schema's doing.
    paused(&store, Reply::call("fill_form", Value::Object(fitting_form()))).await;
}

async fn values_breaking_any_keyword_are_refused_at_resolve_time(backend: Backend) {
    let store = backend.store();
    let (agent, run, row) = paused(&store, Reply::call("file_ticket", json!({"ticket": "T-1"}))).await;
    assert_eq!(row.pause_type, PauseType::UserInput);
    for (form, path, message) in broken_forms() {
        refused_at_resolve_time(&*store, &row, Value::Object(form), path, message).await;
    }
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().status, ApprovalStatus::Pending);

    store.update_approval(&row.id, approve_with(Value::Object(fitting_form()))).await.unwrap();
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.content.as_deref(), Some("Done. file_ticket: filed \"T-1\""));
}

async fn model_numbers_an_i64_cannot_hold_go_back_to_the_model(backend: Backend) {
    let store = backend.store();
    for (n, message) in [
        ("1.0", "expected integer, found 1.0"),
        ("1e20", "expected integer, found 1e"),
        ("-0.5", "expected integer, found -0.5"),
        ("9223372036854775808", "out of range for int64"),
        ("-9223372036854775809", "expected integer"),
    ] {
        let reply = Reply::raw_call("reserve", format!("{{\"n\": {n}}}"));
        refused_at_pause_time(&store, reply, "$.n", message).await;
    }
    let (agent, run, row) = paused(&store, Reply::raw_call("reserve", "{\"n\": -9223372036854775808}")).await;
    store.update_approval(&row.id, approve_with(json!({"count": 0}))).await.unwrap();
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.content.as_deref(), Some("Done. reserve: reserved -9223372036854775808, holding 0"));
}

async fn admin_numbers_a_u32_cannot_hold_are_refused_and_the_row_stays_pending(backend: Backend) {
    let store = backend.store();
    let (agent, run, row) = paused(&store, Reply::call("reserve", json!({"n": 3}))).await;
    for (count, message) in [
        ("4294967296", "out of range for uint32"),
        ("1e10", "expected integer, found 1"),
        ("1.0", "expected integer, found 1.0"),
        ("-1", "-1 is less than the minimum of 0"),
        ("\"7\"", "expected integer, found string"),
    ] {
        let values: Value = serde_json::from_str(&format!("{{\"count\": {count}}}")).unwrap();
        refused_at_resolve_time(&*store, &row, values, "$.count", message).await;
    }
    assert_eq!(store.get_approval(&row.id).await.unwrap().unwrap().status, ApprovalStatus::Pending);

    store.update_approval(&row.id, approve_with(json!({"count": u32::MAX}))).await.unwrap();
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.content.as_deref(), Some("Done. reserve: reserved 3, holding 4294967295"));
}
