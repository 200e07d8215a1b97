//! The agent loop and plain human-in-the-loop pauses (no admin approval involved).

use std::sync::Arc;

use kern::Error;
use kern::models::Message;
use kern::prelude::*;
use kern::run::RunOptions;
use kern::run::ToolCallStatus;
use kern::tools::{Hitl, ToolDefinition};
use serde_json::{Map, Value, json};

use crate::tools::*;

fn values(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

#[tokio::test]
async fn a_run_without_tools_answers_directly() {
    let model = ScriptedModel::new().when_user_contains("hello", Reply::text("Hi there"));
    let agent = Agent::builder().name("greeter").model(model).build().unwrap();
    let run = agent.run("hello").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.content.as_deref(), Some("Hi there"));
    assert!(run.tools.is_empty());
    assert!(run.usage.input_tokens > 0);
}

#[tokio::test]
async fn parallel_calls_run_concurrently() {
    let model = ScriptedModel::new().when_user_contains(
        "meet",
        Reply::calls([("rendezvous", json!({"who": "ann"})), ("rendezvous", json!({"who": "bob"}))]),
    );
    let agent = Agent::builder().model(model).tool(Rendezvous).build().unwrap();
    // Each call waits for the other, so they complete only if they overlap.
    let run = tokio::time::timeout(std::time::Duration::from_secs(30), agent.run("meet"))
        .await
        .expect("calls of one turn must run concurrently")
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.content.as_deref(), Some("Done. rendezvous: ann met; rendezvous: bob met"));
    assert_eq!(ran(&run.run_id).len(), 2);
}

#[tokio::test]
async fn an_unknown_tool_goes_back_to_the_model() {
    let model = ScriptedModel::new().when_user_contains("go", Reply::call("teleport", json!({})));
    let agent = Agent::builder().model(model).tool(Add).build().unwrap();
    let run = agent.run("go").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    assert_eq!(run.content.as_deref(), Some("Done. teleport: error: unknown tool `teleport`; available tools: add"));
}

#[tokio::test]
async fn malformed_and_mistyped_arguments_go_back_to_the_model() {
    let model = ScriptedModel::new()
        .when_user_contains("broken", Reply::raw_call("add", "{\"a\": 1,"))
        .when_user_contains("mistyped", Reply::call("add", json!({"a": "one", "b": 2})));
    let agent = Agent::builder().model(model).tool(Add).build().unwrap();

    let run = agent.run("broken").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    assert!(run.content.unwrap().contains("arguments are not valid JSON"));

    let run = agent.run("mistyped").await.unwrap();
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    assert!(run.content.unwrap().contains("invalid arguments"));
    assert!(ran(&run.run_id).is_empty());
}

#[tokio::test]
async fn a_failing_tool_does_not_end_the_run() {
    let model = ScriptedModel::new().when_user_contains("try", Reply::call("flaky", json!({})));
    let agent = Agent::builder().model(model).tool(Flaky).build().unwrap();
    let run = agent.run("try").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    assert_eq!(run.content.as_deref(), Some("Done. flaky: error: the service is down"));
}

/// Reboot the fleet. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn reboot_fleet() -> String {
    "rebooted".to_owned()
}

#[tokio::test]
async fn null_arguments_to_a_call_that_pauses_are_no_arguments() {
    let model = ScriptedModel::new().when_user_contains("reboot", Reply::raw_call("reboot_fleet", "null"));
    let agent = Agent::builder().model(model).tool(RebootFleet).db(MemoryDb::new()).build().unwrap();
    let run = agent.run("reboot everything").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused, "asked of a person, as `{{}}` would be: {:?}", run.tools);
    assert_eq!(run.requirements[0].tool_execution.tool_args, json!({}));
}

/// A model whose every answer is cut short at its token limit, having cost tokens.
struct CutShort;

impl kern::models::Model for CutShort {
    fn id(&self) -> &str {
        "cut-short"
    }

    fn respond<'a>(
        &'a self,
        _: kern::models::ModelRequest<'a>,
    ) -> kern::BoxFuture<'a, Result<kern::models::ModelResponse, kern::models::ModelError>> {
        let usage = kern::models::Usage { input_tokens: 10, output_tokens: 500 };
        let reason = "finish_reason `length`".to_owned();
        Box::pin(async move { Err(kern::models::ModelError::CutShort { provider: "cut-short".into(), reason, usage }) })
    }
}

#[tokio::test]
async fn an_answer_cut_short_still_counts_its_tokens() {
    let db = MemoryDb::new();
    let agent = Agent::builder().model(CutShort).db(db.clone()).build().unwrap();
    let err = agent.run("write a novel").await.unwrap_err();
    assert!(matches!(err, Error::Model(kern::models::ModelError::CutShort { .. })), "{err:?}");
    let runs = db.list_runs(&kern::run::RunQuery::default()).await.unwrap().items;
    assert_eq!(runs[0].status, RunStatus::Error);
    assert_eq!(runs[0].usage, kern::models::Usage { input_tokens: 10, output_tokens: 500 }, "billed all the same");
}

#[tokio::test]
async fn the_round_limit_stops_a_looping_model() {
    let db = MemoryDb::new();
    let model = ScriptedModel::new()
        .when_user_contains("loop", Reply::call("add", json!({"a": 1, "b": 1})))
        .after_tool("add", Reply::call("add", json!({"a": 1, "b": 1})));
    let agent = Agent::builder().model(model).tool(Add).db(db.clone()).max_rounds(3).build().unwrap();
    let err = agent.run("loop").await.unwrap_err();
    let Error::RoundLimit { run_id, rounds } = err else { panic!("expected RoundLimit, got {err:?}") };
    assert_eq!(rounds, 3);
    assert_eq!(ran(&run_id).len(), 3);
    let stored = db.load_run(&run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Error);
}

#[tokio::test]
async fn confirm_runs_the_paused_call() {
    let model =
        ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "web"})));
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let mut run = agent.run("restart web").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.requirements.len(), 1);
    assert_eq!(run.tools[0].status, ToolCallStatus::Paused);
    assert!(ran(&run.run_id).is_empty());

    run.requirements[0].confirm();
    assert!(run.requirements[0].is_resolved());
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.content.as_deref(), Some("Done. restart_service: restarted web"));
    assert_eq!(ran(&run.run_id).len(), 1);
}

#[tokio::test]
async fn reject_tells_the_model_with_the_note() {
    let model =
        ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "db"})));
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let mut run = agent.run("restart db").await.unwrap();
    run.requirements[0].reject("not during business hours");
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.tools[0].status, ToolCallStatus::Rejected);
    assert_eq!(
        done.content.as_deref(),
        Some(
            "Done. restart_service: The call to `restart_service` was rejected by the user: not during business hours"
        )
    );
    assert!(ran(&run.run_id).is_empty());
}

#[tokio::test]
async fn user_input_is_merged_into_the_arguments() {
    let model = ScriptedModel::new().when_user_contains("trip", Reply::call("book_trip", json!({"days": 3})));
    let agent = Agent::builder().model(model).tool(BookTrip).build().unwrap();
    let mut run = agent.run("book a trip").await.unwrap();
    let requirement = &mut run.requirements[0];
    assert_eq!(requirement.pause_type, PauseType::UserInput);
    assert_eq!(requirement.missing_user_input(), vec!["city".to_owned()]);
    requirement.provide_user_input(values(json!({"city": "Lisbon"})));
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id)[0].args, json!({"city": "Lisbon", "days": 3}));
}

#[tokio::test]
async fn user_input_that_does_not_fit_is_refused_and_the_run_stays_paused() {
    let model = ScriptedModel::new().when_user_contains("trip", Reply::call("book_trip", json!({"days": 3})));
    let agent = Agent::builder().model(model).tool(BookTrip).build().unwrap();
    let mut run = agent.run("book a trip").await.unwrap();
    run.requirements[0].provide_user_input(values(json!({"city": 42})));
    let err = agent.continue_run(&run.run_id, run.requirements.clone()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUserInput { .. }), "{err:?}");

    run.requirements[0].provide_user_input(values(json!({"city": "Porto"})));
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), 1);
}

#[tokio::test]
async fn an_external_result_is_fed_back_without_running_the_function() {
    let model =
        ScriptedModel::new().when_user_contains("vendor", Reply::call("ask_vendor", json!({"question": "price?"})));
    let agent = Agent::builder().model(model).tool(AskVendor).build().unwrap();
    let mut run = agent.run("ask the vendor").await.unwrap();
    run.requirements[0].set_external_execution_result("42 EUR");
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.tools[0].status, ToolCallStatus::External);
    assert_eq!(done.content.as_deref(), Some("Done. ask_vendor: 42 EUR"));
    assert!(ran(&run.run_id).is_empty());
}

#[tokio::test]
async fn unresolved_requirements_keep_the_run_paused() {
    let model = ScriptedModel::new().when_user_contains(
        "both",
        Reply::calls([("restart_service", json!({"name": "a"})), ("restart_service", json!({"name": "b"}))]),
    );
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let mut run = agent.run("restart both").await.unwrap();
    assert_eq!(run.requirements.len(), 2);

    let still = agent.continue_run(&run.run_id, vec![]).await.unwrap();
    assert_eq!(still.status, RunStatus::Paused);
    assert_eq!(still.requirements.len(), 2);

    run.requirements[0].confirm();
    let half = agent.continue_run(&run.run_id, vec![run.requirements[0].clone()]).await.unwrap();
    assert_eq!(half.status, RunStatus::Paused);
    assert_eq!(half.requirements.len(), 1);
    assert_eq!(ran(&run.run_id).len(), 1);

    let mut rest = half.requirements;
    rest[0].confirm();
    let done = agent.continue_run(&run.run_id, rest).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(ran(&run.run_id).len(), 2);
}

#[tokio::test]
async fn calls_that_need_nobody_run_before_the_pause() {
    let model = ScriptedModel::new().when_user_contains(
        "mixed",
        Reply::calls([("add", json!({"a": 2, "b": 3})), ("restart_service", json!({"name": "web"}))]),
    );
    let agent = Agent::builder().model(model).tool(Add).tool(RestartService).build().unwrap();
    let run = agent.run("mixed").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.tools[0].status, ToolCallStatus::Succeeded);
    assert_eq!(run.tools[0].result, Some(json!(5)));
    assert_eq!(ran(&run.run_id).len(), 1);
}

/// The model gets its calls' answers in the order it made the calls, though a refused call is
/// answered at once, one that runs once it has, and one that waits for a person after a pause.
#[tokio::test]
async fn the_answers_follow_the_order_of_the_calls() {
    let db = MemoryDb::new();
    let calls = [
        ("restart_service", json!({"name": "web"})),
        ("add", json!({"a": 2, "b": 3})),
        ("no_such_tool", json!({})),
        ("restart_service", json!({"name": "db"})),
    ];
    let model = ScriptedModel::new()
        .when_user_contains("mixed", Reply::calls(calls))
        .after_tool("restart_service", Reply::text("done"));
    let agent = Agent::builder().model(model).tool(Add).tool(RestartService).db(db.clone()).build().unwrap();
    let mut run = agent.run("mixed").await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    for requirement in &mut run.requirements {
        requirement.confirm();
    }
    let done = agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);

    let stored = db.load_run(&run.run_id).await.unwrap().unwrap();
    let turn = stored.messages.iter().position(|m| m.tool_calls.len() == 4).expect("the turn of four calls");
    let asked: Vec<&str> = stored.messages[turn].tool_calls.iter().map(|call| call.id.as_str()).collect();
    let answered: Vec<&str> =
        stored.messages[turn + 1..turn + 5].iter().filter_map(|m| m.tool_call_id.as_deref()).collect();
    assert_eq!(answered, asked);
}

#[tokio::test]
async fn continuing_a_run_that_is_not_paused_names_its_status() {
    let model = ScriptedModel::new().when_user_contains("hi", Reply::text("hello"));
    let agent = Agent::builder().model(model).build().unwrap();
    let run = agent.run("hi").await.unwrap();
    let err = agent.continue_run(&run.run_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::RunNotPaused { status: RunStatus::Completed, .. }), "{err:?}");
    assert!(err.to_string().contains("completed"));
    let err = agent.continue_run("no-such-run", vec![]).await.unwrap_err();
    assert!(matches!(err, Error::RunNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn a_requirement_for_no_paused_call_is_refused() {
    let model =
        ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "x"})));
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let run = agent.run("restart").await.unwrap();
    let mut forged = run.requirements[0].clone();
    forged.tool_execution.tool_call_id = "call_999".into();
    forged.confirm();
    let err = agent.continue_run(&run.run_id, vec![forged]).await.unwrap_err();
    assert!(matches!(err, Error::UnknownRequirement { .. }), "{err:?}");
}

#[tokio::test]
async fn two_answers_to_one_call_are_refused() {
    let model =
        ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "x"})));
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let run = agent.run("restart").await.unwrap();
    let (mut refused, mut confirmed) = (run.requirements[0].clone(), run.requirements[0].clone());
    refused.reject("no");
    confirmed.confirm();
    let err = agent.continue_run(&run.run_id, vec![refused, confirmed.clone()]).await.unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateAnswer { tool_call_id, .. } if *tool_call_id == run.tools[0].tool_call_id),
        "{err:?}"
    );
    let done = agent.continue_run(&run.run_id, vec![confirmed]).await;
    assert_eq!(done.unwrap().status, RunStatus::Completed, "the refusal changed nothing");
}

#[tokio::test]
async fn the_caller_cannot_change_the_arguments_of_a_paused_call() {
    let model =
        ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "web"})));
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let mut run = agent.run("restart").await.unwrap();
    run.requirements[0].tool_execution.tool_args = json!({"name": "everything"});
    run.requirements[0].confirm();
    agent.continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(ran(&run.run_id)[0].args, json!({"name": "web"}));
}

#[tokio::test]
async fn a_fresh_agent_on_the_same_store_continues_the_run() {
    let db = MemoryDb::new();
    let build = || {
        let model =
            ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "web"})));
        Agent::builder().model(model).tool(RestartService).db(db.clone()).build().unwrap()
    };
    let mut run = build().run("restart").await.unwrap();
    run.requirements[0].confirm();
    let done = build().continue_run(&run.run_id, run.requirements).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
}

#[tokio::test]
async fn earlier_runs_of_the_session_are_history() {
    let db = MemoryDb::new();
    let model = ScriptedModel::new()
        .when_user_contains("my name is", Reply::text("Nice to meet you"))
        .when_user_contains("who am i", Reply::text("(answer)"));
    let build = |id: &str| Agent::builder().id(id).model(model.clone()).db(db.clone()).history_runs(5).build().unwrap();
    let (agent, other_agent) = (build("concierge"), build("auditor"));
    let of = |user: &str| RunOptions::default().session_id("s-history").user_id(user);
    let first = agent.run_with("my name is Ada", of("ada")).await.unwrap();
    // The same session, but another user's turn, and another agent's: neither is this conversation.
    agent.run_with("my name is Bob", of("bob")).await.unwrap();
    other_agent.run_with("my name is Eve", of("ada")).await.unwrap();
    let second = agent.run_with("who am i", of("ada")).await.unwrap();
    let stored = db.load_run(&second.run_id).await.unwrap().unwrap();
    assert_eq!(
        stored.messages,
        [
            Message::user("my name is Ada"),
            Message::assistant("Nice to meet you"),
            Message::user("who am i"),
            Message::assistant("(answer)")
        ]
    );
    assert_eq!(first.session_id, second.session_id);
}

#[test]
fn build_refuses_bad_configurations() {
    let err = Agent::builder().tool(Add).build().unwrap_err();
    assert!(matches!(err, Error::NoModel), "{err:?}");
    let err = Agent::builder().model(ScriptedModel::new()).tool(Add).tool(Add).build().unwrap_err();
    assert!(matches!(err, Error::DuplicateTool(ref name) if name == "add"), "{err:?}");
    let err = Agent::builder().model(ScriptedModel::new()).tool(DeleteUserData).build().unwrap_err();
    assert!(matches!(err, Error::ApprovalNeedsDb { ref tool } if tool == "delete_user_data"), "{err:?}");
    assert!(err.to_string().contains(".db("));
    // Audit rows need a db too: kept in an implicit in-memory store, they would be lost.
    let err = Agent::builder().model(ScriptedModel::new()).tool(ArchiveRecords).build().unwrap_err();
    assert!(matches!(err, Error::ApprovalNeedsDb { ref tool } if tool == "archive_records"), "{err:?}");
    assert!(Agent::builder().model(ScriptedModel::new()).tool(ArchiveRecords).db(MemoryDb::new()).build().is_ok());
}

#[tokio::test]
async fn a_panicking_tool_is_a_failed_call() {
    let model = ScriptedModel::new().when_user_contains("boom", Reply::call("explode", json!({})));
    let agent = Agent::builder().model(model).tool(Explode).build().unwrap();
    let run = agent.run("boom").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    assert_eq!(run.content.as_deref(), Some("Done. explode: error: the tool panicked: boom"));
}

/// A tool that panics as it is called, or whose approval condition panics, fails its own call
/// only: the run and the other calls of its turn go on.
#[tokio::test]
async fn a_tool_panicking_as_it_is_called_or_in_its_condition_fails_only_its_call() {
    let calls = [("brittle_call", json!({})), ("brittle_condition", json!({})), ("add", json!({"a": 1, "b": 2}))];
    let model = ScriptedModel::new().when_user_contains("snap", Reply::calls(calls));
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let agent = Agent::builder()
        .model(model)
        .tool(Brittle::Call)
        .tool(Brittle::Condition)
        .tool(Add)
        .db(store.clone())
        .build()
        .unwrap();
    let run = agent.run("snap").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let statuses: Vec<_> = run.tools.iter().map(|tool| tool.status).collect();
    assert_eq!(statuses, [ToolCallStatus::Failed, ToolCallStatus::Failed, ToolCallStatus::Succeeded]);
    let results: Vec<String> = run.tools.iter().map(|tool| tool.result.clone().unwrap().to_string()).collect();
    assert!(results[0].contains("the tool panicked: snapped"), "{results:?}");
    assert!(results[1].contains("approval condition panicked: the condition snapped"), "{results:?}");
    let rows = store.list_approvals(&ApprovalQuery::default().run_id(&run.run_id)).await.unwrap();
    assert_eq!(rows.total, 0, "a call whose condition failed asks nobody");
}

/// A model that panics: when asked anything, or, with a script, once it is given a tool's
/// result (answering by the script until then).
struct Panicking(Option<ScriptedModel>);

impl kern::models::Model for Panicking {
    fn id(&self) -> &str {
        "panicking"
    }

    fn respond<'a>(
        &'a self,
        request: kern::models::ModelRequest<'a>,
    ) -> kern::BoxFuture<'a, Result<kern::models::ModelResponse, kern::models::ModelError>> {
        match &self.0 {
            Some(script) if !request.messages.iter().any(|message| message.role == kern::models::Role::Tool) => {
                script.respond(request)
            }
            _ => Box::pin(async { panic!("the model fell over") }),
        }
    }
}

#[tokio::test]
async fn a_run_whose_model_panics_is_stored_as_failed() {
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let agent = Agent::builder().id("fragile").model(Panicking(None)).db(store.clone()).build().unwrap();
    let err = agent.run("hello").await.unwrap_err();
    assert!(matches!(err, Error::Aborted(ref why) if why.contains("the model fell over")), "{err:?}");
    let runs = store.list_runs(&kern::run::RunQuery::default()).await.unwrap();
    assert_eq!(runs.items.len(), 1, "the run is stored");
    assert_eq!(runs.items[0].status, RunStatus::Error);
}

#[tokio::test]
async fn a_continue_whose_model_panics_is_stored_as_failed_with_the_tool_it_ran() {
    let store: Arc<dyn Store> = Arc::new(MemoryDb::new());
    let model =
        ScriptedModel::new().when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})));
    let agent = Agent::builder()
        .id("fragile")
        .model(Panicking(Some(model)))
        .tool(DeleteUserData)
        .db(store.clone())
        .build()
        .unwrap();
    let paused = agent.run("delete user 42").await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    let row_id = paused.requirements[0].approval_id.clone().expect("a gated call has its row");
    store.update_approval(&row_id, ApprovalUpdate::approve("admin")).await.unwrap();
    let err = agent.continue_run(&paused.run_id, Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Aborted(ref why) if why.contains("the model fell over")), "{err:?}");
    // The approved tool ran before the model fell over: the failed run says so, and so does the
    // row's trail.
    let stored = store.load_run(&paused.run_id).await.unwrap().expect("the run is stored");
    assert_eq!(stored.status, RunStatus::Error);
    assert_eq!(stored.tools[0].status, ToolCallStatus::Succeeded, "{:?}", stored.tools);
    assert!(stored.requirements.is_empty(), "nothing waits on a failed run");
    let trail = store.trail(&row_id).await.unwrap();
    assert_eq!(trail.last().map(|event| event.kind), Some(kern::trail::EventKind::Executed), "{trail:?}");
    assert!(store.verify_trail().await.unwrap().is_intact());
}

#[tokio::test]
async fn a_paused_call_with_bad_arguments_goes_back_to_the_model_instead() {
    let model = ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": 7})));
    let agent = Agent::builder().model(model).tool(RestartService).build().unwrap();
    let run = agent.run("restart").await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "nobody is asked to confirm a call that cannot run");
    assert!(run.requirements.is_empty());
    assert_eq!(run.tools[0].status, ToolCallStatus::Failed);
    assert!(run.content.unwrap().contains("invalid arguments: $.name: expected string"));
}

#[tokio::test]
async fn call_ids_are_unique_across_turns() {
    let model = ScriptedModel::new()
        .when_user_contains("twice", Reply::call("add", json!({"a": 1, "b": 1})))
        .after_tool("add", Reply::call("flaky", json!({})));
    let agent = Agent::builder().model(model).tool(Add).tool(Flaky).build().unwrap();
    let run = agent.run("twice").await.unwrap();
    assert_eq!(run.tools.len(), 2);
    assert_ne!(run.tools[0].tool_call_id, run.tools[1].tool_call_id);
    assert_eq!(run.tools[0].status, ToolCallStatus::Succeeded, "the second call did not overwrite the first");
}

#[tokio::test]
async fn only_the_agent_that_started_a_run_continues_it() {
    let db = MemoryDb::new();
    let build = |id: &str| {
        let model =
            ScriptedModel::new().when_user_contains("restart", Reply::call("restart_service", json!({"name": "web"})));
        Agent::builder().id(id).model(model).tool(RestartService).db(db.clone()).build().unwrap()
    };
    let mut run = build("ops").run("restart").await.unwrap();
    run.requirements[0].confirm();
    let err = build("intruder").continue_run(&run.run_id, run.requirements.clone()).await.unwrap_err();
    assert!(matches!(err, Error::ForeignRun { ref owner, .. } if owner == "agent `ops`"), "{err:?}");
    assert!(ran(&run.run_id).is_empty());
    assert_eq!(build("ops").continue_run(&run.run_id, run.requirements).await.unwrap().status, RunStatus::Completed);
}

#[test]
fn a_definition_models_or_its_policy_cannot_honour_is_refused_at_build() {
    use kern::approval::ApprovalPolicy;

    let schema = json!({"type": "object", "properties": {"to": {"type": "string"}, "amount": {"type": "integer"}}});
    let build = |hitl: Hitl, policy: ApprovalPolicy| {
        let definition = ToolDefinition::new("transfer", "Transfer money.", schema.clone(), hitl, Some(policy));
        Agent::builder().model(ScriptedModel::new()).tool(ByHand(definition)).db(MemoryDb::new()).build()
    };
    let input = || Hitl::UserInput { fields: vec!["amount".into()] };
    for (hitl, policy, why) in [
        (input(), ApprovalPolicy::REQUIRED.quorum(2), "a quorum"),
        (Hitl::ExternalExecution, ApprovalPolicy::REQUIRED.quorum(2), "a quorum"),
        (Hitl::ExternalExecution, ApprovalPolicy::REQUIRED.allow_edit(), "edited arguments"),
        // Roles match exactly: a blank or padded one lets nobody decide.
        (Hitl::Confirmation, ApprovalPolicy::REQUIRED.approvers(["finance", ""]), "no blanks around it"),
        (Hitl::Confirmation, ApprovalPolicy::REQUIRED.approvers([" finance"]), "no blanks around it"),
        (Hitl::Confirmation, ApprovalPolicy::REQUIRED.approvers(["ops", "ops"]), "listed twice"),
    ] {
        let err = build(hitl, policy).unwrap_err();
        assert!(matches!(err, Error::InvalidTool { ref reason, .. } if reason.contains(why)), "{err:?}");
    }
    build(Hitl::Confirmation, ApprovalPolicy::REQUIRED.quorum(2).allow_edit()).expect("a confirmation may have both");
    // What model APIs would refuse at every request, or a person asked for nothing, is refused
    // at build.
    let by_hand = |name: &str, schema: Value, hitl: Hitl| {
        let definition = ToolDefinition::new(name, "Transfer money.", schema, hitl, Some(ApprovalPolicy::REQUIRED));
        Agent::builder().model(ScriptedModel::new()).tool(ByHand(definition)).db(MemoryDb::new()).build()
    };
    for (name, schema, hitl, why) in [
        ("send money", schema.clone(), Hitl::Confirmation, "1 to 64 ASCII letters"),
        ("", schema.clone(), Hitl::Confirmation, "1 to 64 ASCII letters"),
        ("transfer", json!({}), Hitl::Confirmation, "the JSON Schema of an object"),
        ("transfer", schema.clone(), Hitl::UserInput { fields: vec!["amt".into()] }, "`amt` is none of its parameters"),
        ("transfer", schema.clone(), Hitl::UserInput { fields: vec![] }, "names no field"),
    ] {
        let err = by_hand(name, schema, hitl).unwrap_err();
        assert!(matches!(err, Error::InvalidTool { ref reason, .. } if reason.contains(why)), "{name}: {err:?}");
    }
    // An expiry no store could reckon would leave the row without one.
    let forever =
        ApprovalPolicy::REQUIRED.expires_in(kern::approval::MAX_EXPIRES_IN + std::time::Duration::from_secs(1));
    let err = build(Hitl::Confirmation, forever).unwrap_err();
    assert!(matches!(err, Error::InvalidTool { ref reason, .. } if reason.contains("longer than a row can wait")));
    build(Hitl::Confirmation, ApprovalPolicy::REQUIRED.expires_in(kern::approval::MAX_EXPIRES_IN))
        .expect("the longest");
    build(input(), ApprovalPolicy::REQUIRED.allow_edit()).expect("edits of a call that runs here");
}

#[test]
fn an_audit_tool_without_a_hitl_kind_is_refused() {
    let schema = json!({"type": "object", "properties": {}});
    let policy = Some(kern::approval::ApprovalPolicy::AUDIT);
    let silent = ToolDefinition::new("silent_audit", "Audit nothing.", schema, Hitl::None, policy);
    let err = Agent::builder().model(ScriptedModel::new()).tool(ByHand(silent)).build().unwrap_err();
    assert!(matches!(err, Error::InvalidTool { ref tool, .. } if tool == "silent_audit"), "{err:?}");
}
