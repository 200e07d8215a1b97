//! Input from a broken model or a hostile caller: it gets a clear refusal, and nothing it does
//! poisons a row, strands a run or grows the store beyond what it sent.

use std::sync::Arc;

use kern::prelude::*;
use kern::run::ToolCallStatus;
use serde_json::json;

use crate::backend::Backend;
use crate::on_every_backend;
use crate::tools::*;

on_every_backend!(a_turn_of_a_thousand_calls_is_bounded_and_each_row_holds_only_its_own_call);

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
