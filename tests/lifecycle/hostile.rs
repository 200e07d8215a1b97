//! Input from a broken model or a hostile caller: it gets a clear refusal, and nothing it does
//! poisons a row, strands a run or grows the store beyond what it sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kern::Error;
use kern::limits::{MAX_JSON_DEPTH, MAX_KEY_LEN};
use kern::prelude::*;
use kern::run::{RunOptions, ToolCallStatus};
use serde_json::{Map, Value, json};

use crate::backend::Backend;
use crate::on_every_backend;
use crate::tools::*;

on_every_backend!(
    a_turn_of_a_thousand_calls_is_bounded_and_each_row_holds_only_its_own_call,
    arguments_nested_too_deep_go_back_to_the_model,
    a_result_nested_too_deep_is_stored_as_its_text,
    a_user_or_session_kern_cannot_store_is_refused_before_the_run,
    answers_kern_cannot_store_are_refused_and_the_run_stays_paused,
    an_agent_whose_id_is_as_long_as_a_key_records_its_calls,
);

/// `[[..[1]..]]`, `depth` levels deep.
fn nested(depth: usize) -> Value {
    (1..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// Echo back a value nested `depth` levels deep.
#[tool]
fn deep_echo(depth: u32) -> Value {
    nested(depth as usize)
}

fn deep_agent(store: Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("deep args", Reply::call("delete_user_data", json!({ "user_id": nested(126) })))
        .when_user_contains("deep result", Reply::call("deep_echo", json!({ "depth": 200 })))
        .when_user_contains("delete", Reply::call("send_payment", json!({ "to": "acme" })))
        .after_tool("delete_user_data", Reply::text("done"))
        .after_tool("deep_echo", Reply::text("echoed"))
        .after_tool("send_payment", Reply::text("paid"));
    Agent::builder()
        .id("deep")
        .model(model)
        .tool(DeleteUserData)
        .tool(DeepEcho)
        .tool(SendPayment)
        .db(store)
        .build()
        .unwrap()
}

/// A model that calls the gated tool `calls` times in one turn, then answers.
fn flooding_agent(store: Arc<dyn Store>, calls: usize) -> Agent {
    let flood = (0..calls).map(|n| ("delete_user_data", json!({ "user_id": n.to_string() })));
    let model = ScriptedModel::new()
        .when_user_contains("flood", Reply::calls(flood))
        .after_tool("delete_user_data", Reply::text("done"));
    Agent::builder().id("flooded").model(model).tool(DeleteUserData).db(store).build().unwrap()
}

async fn a_turn_of_a_thousand_calls_is_bounded_and_each_row_holds_only_its_own_call(backend: Backend) {
    let store = backend.store();
    let agent = flooding_agent(store.clone(), 1000);
    let run = agent.run("flood").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);

    let limit = kern::agent::DEFAULT_MAX_CALLS_PER_TURN;
    assert_eq!(run.requirements.len(), limit);
    let refused: Vec<_> = run.tools.iter().filter(|call| call.status == ToolCallStatus::Failed).collect();
    assert_eq!(refused.len(), 1000 - limit);
    let told = refused[0].result.as_ref().and_then(|result| result.as_str()).unwrap();
    assert!(told.contains(&format!("at most {limit} tool calls")), "{told}");

    let rows = store.list_approvals(&ApprovalQuery::default().run_id(&run.run_id).limit(1000)).await.unwrap();
    assert_eq!(rows.total, limit as u64);
    for row in &rows.items {
        let [own] = row.requirements.as_slice() else { panic!("a row holds its own call only: {row:?}") };
        assert_eq!(own.tool_call_id(), row.tool_call_id);
        store.update_approval(&row.id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    }
    let done = agent.continue_run_by_id(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), limit);
    assert_eq!(done.approvals.len(), limit);
}

async fn arguments_nested_too_deep_go_back_to_the_model(backend: Backend) {
    let store = backend.store();
    let run = deep_agent(store.clone()).run("deep args").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let told = run.tools[0].result.as_ref().and_then(Value::as_str).unwrap();
    assert!(told.contains(&format!("more than the {MAX_JSON_DEPTH} allowed")), "{told}");
    let rows = store.list_approvals(&ApprovalQuery::default().run_id(&run.run_id)).await.unwrap();
    assert_eq!(rows.total, 0, "no admin is asked about a call that cannot run");
    assert!(store.load_run(&run.run_id).await.unwrap().is_some(), "the run reads back");
}

async fn a_result_nested_too_deep_is_stored_as_its_text(backend: Backend) {
    let store = backend.store();
    let run = deep_agent(store.clone()).run("deep result").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.tools[0].result, Some(Value::String(nested(200).to_string())));
    let stored = store.load_run(&run.run_id).await.unwrap().expect("the run reads back");
    assert_eq!(stored.tools, run.tools);
}

/// A model that counts how often it was asked, and answers in a word.
#[derive(Default)]
struct Counting(AtomicUsize);

impl kern::models::Model for Counting {
    fn id(&self) -> &str {
        "counting"
    }

    fn respond<'a>(
        &'a self,
        _: kern::models::ModelRequest<'a>,
    ) -> kern::BoxFuture<'a, Result<kern::models::ModelResponse, kern::models::ModelError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let message = kern::models::Message::assistant("done");
        Box::pin(async { Ok(kern::models::ModelResponse { message, usage: kern::models::Usage::default() }) })
    }
}

async fn a_user_or_session_kern_cannot_store_is_refused_before_the_run(backend: Backend) {
    let store = backend.store();
    let model = Arc::new(Counting::default());
    let agent = Agent::builder().id("careful").model(model.clone()).db(store.clone()).build().unwrap();
    let long = "u".repeat(MAX_KEY_LEN + 1);
    for (options, field) in [
        (RunOptions::default().user_id(long.as_str()), "user_id"),
        (RunOptions::default().user_id("ali\0ce"), "user_id"),
        (RunOptions::default().user_id("ali\u{1b}ce"), "user_id"),
        (RunOptions::default().session_id("s\u{1b}[3A"), "session_id"),
        (RunOptions::default().session_id(long.as_str()), "session_id"),
    ] {
        let err = agent.run_with("hello", options).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: f, .. } if f == field), "{err:?}");
    }
    assert_eq!(model.0.load(Ordering::SeqCst), 0, "the model was never asked");
    let runs = store.list_runs(&kern::run::RunQuery::default()).await.unwrap();
    assert!(runs.items.is_empty(), "nothing was stored");
}

/// The principal of an executed call is `agent:<id>`: longer than a key when the id is as long as
/// one, and stored all the same, after the call ran.
async fn an_agent_whose_id_is_as_long_as_a_key_records_its_calls(backend: Backend) {
    let store = backend.store();
    let id = "a".repeat(MAX_KEY_LEN);
    let model =
        ScriptedModel::new().when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "7"})));
    let agent = Agent::builder().id(id.as_str()).model(model).tool(DeleteUserData).db(store.clone()).build().unwrap();
    let paused = agent.run("delete user 7").await.unwrap();
    let row = paused.requirements[0].approval_id.clone().unwrap();
    store.update_approval(&row, ApprovalUpdate::approve("admin-1")).await.unwrap();
    let done = agent.continue_run(&paused.run_id, vec![]).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let executed = store.trail(&row).await.unwrap().pop().unwrap();
    assert_eq!((executed.kind, executed.principal), (kern::trail::EventKind::Executed, format!("agent:{id}")));
}

async fn answers_kern_cannot_store_are_refused_and_the_run_stays_paused(backend: Backend) {
    let store = backend.store();
    let agent = deep_agent(store.clone());
    let run = agent.run("delete it").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);

    // A value too deep, and one at the limit, which the values' object holds a level deeper.
    for depth in [MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH] {
        let mut deep = run.requirements.clone();
        deep[0].provide_user_input(Map::from_iter([("amount".to_owned(), nested(depth))]));
        let err = agent.continue_run(&run.run_id, deep).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "user_input", .. }), "{depth}: {err:?}");
    }

    let mut nul = run.requirements.clone();
    nul[0].set_resolved_by("admin\0");
    let err = agent.continue_run(&run.run_id, nul).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field: "resolved_by", .. }), "{err:?}");

    assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert!(ran(&run.run_id).is_empty());
}
