//! Streaming runs: the events of a run as it happens, for agents and teams, through a pause and
//! its continue; the same run the blocking calls make; a dropped stream that leaves the run to
//! finish and be stored; and a listener that falls behind, whose text comes in fewer pieces.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use kern::events::{MAX_HELD_EVENTS, RunEvent, RunStream};
use kern::prelude::*;
use kern::run::ToolCallStatus;
use serde_json::json;

use crate::backend::Backend;
use crate::on_every_backend;

/// Book a meeting room. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn book_room(room: String) -> String {
    format!("booked {room}")
}

/// Look up the weather.
#[tool]
fn weather(city: String) -> String {
    format!("sunny in {city}")
}

fn agent(store: Arc<dyn Store>) -> Agent {
    let model = ScriptedModel::new()
        .when_user_contains("book", Reply::call("book_room", json!({ "room": "Ada" })))
        .when_user_contains("weather", Reply::call("weather", json!({ "city": "Oslo" })))
        .when_user_contains("hello", Reply::text("Hello there, how can I help?"))
        .when_user_contains("ghost", Reply::call("no_such_tool", json!({})))
        .after_tool("book_room", Reply::text("The room is yours: {result}"))
        .after_tool("weather", Reply::text("Today: {result}"));
    Agent::builder().id("assistant").model(model).tool(BookRoom).tool(Weather).db(store).build().unwrap()
}

/// Every event of `stream`, which must end with its last event.
async fn collect(stream: RunStream) -> Vec<RunEvent> {
    let events: Vec<RunEvent> = tokio::time::timeout(Duration::from_secs(60), stream.collect()).await.unwrap();
    assert!(events.last().is_some_and(RunEvent::is_last), "the stream ends with the outcome: {events:?}");
    assert_eq!(events.iter().filter(|e| e.is_last()).count(), 1);
    events
}

/// The text of the content deltas of run `run_id`, joined.
fn content(events: &[RunEvent], run_id: &str) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            RunEvent::ContentDelta { run_id: of, text } if of == run_id => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn outcome(events: &[RunEvent]) -> &RunOutput {
    match events.last() {
        Some(RunEvent::RunCompleted(output) | RunEvent::RunPaused(output) | RunEvent::RunCancelled(output)) => output,
        other => panic!("no output: {other:?}"),
    }
}

async fn an_answer_streams_word_by_word_and_is_the_runs_content(backend: Backend) {
    let agent = agent(backend.store());
    let events = collect(agent.run_stream("hello")).await;
    let output = outcome(&events);
    assert!(matches!(&events[0], RunEvent::RunStarted { run_id, .. } if run_id == &output.run_id));
    assert_eq!(output.status, RunStatus::Completed);
    let deltas = events.iter().filter(|e| matches!(e, RunEvent::ContentDelta { .. })).count();
    assert!(deltas > 1, "the answer came in pieces");
    assert_eq!(Some(content(&events, &output.run_id)), output.content);

    // The blocking call makes the same run.
    let blocking = agent.run("hello").await.unwrap();
    assert_eq!((blocking.status, &blocking.content), (output.status, &output.content));
    let stored = backend.store().load_run(&output.run_id).await.unwrap().unwrap();
    assert_eq!(stored.content, output.content);
}

async fn a_pause_and_its_continue_stream_every_step(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let events = collect(agent.run_stream("book a room")).await;
    let paused = outcome(&events).clone();
    assert_eq!(paused.status, RunStatus::Paused);
    let row_id = paused.requirements[0].approval_id.clone().unwrap();
    let requested: Vec<&Approval> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ApprovalRequested(row) => Some(&**row),
            _ => None,
        })
        .collect();
    assert_eq!(requested.len(), 1);
    assert_eq!((requested[0].id.as_str(), requested[0].tool_name.as_str()), (row_id.as_str(), "book_room"));
    assert!(!events.iter().any(|e| matches!(e, RunEvent::ToolCallStarted { .. })), "nothing ran before the decision");

    store.update_approval(&row_id, ApprovalUpdate::approve("admin-1")).await.unwrap();
    let events = collect(agent.continue_stream(&paused.run_id, Vec::new())).await;
    assert!(matches!(&events[0], RunEvent::RunContinued { run_id, .. } if run_id == &paused.run_id));
    let started = events.iter().position(|e| {
        matches!(e, RunEvent::ToolCallStarted { tool_name, args, .. }
        if tool_name == "book_room" && args == &json!({ "room": "Ada" }))
    });
    let completed = events.iter().position(|e| {
        matches!(e, RunEvent::ToolCallCompleted { status, result, .. }
        if *status == ToolCallStatus::Succeeded && result == &json!("booked Ada"))
    });
    let first_delta = events.iter().position(|e| matches!(e, RunEvent::ContentDelta { .. }));
    let (Some(started), Some(completed), Some(first_delta)) = (started, completed, first_delta) else {
        panic!("the call's start, its result and the answer are each streamed: {events:?}");
    };
    assert!(started < completed && completed < first_delta, "call, result, then the answer: {events:?}");
    let done = outcome(&events);
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(Some(content(&events, &done.run_id)), done.content);
}

async fn a_plain_tool_call_streams_its_start_and_result(backend: Backend) {
    let agent = agent(backend.store());
    let events = collect(agent.run_stream("what is the weather")).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            RunEvent::RunStarted { .. } => "started",
            RunEvent::ToolCallStarted { .. } => "call",
            RunEvent::ToolCallCompleted { .. } => "result",
            RunEvent::ContentDelta { .. } => "delta",
            RunEvent::RunCompleted(_) => "completed",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut deduped = kinds.clone();
    deduped.dedup();
    assert_eq!(deduped, ["started", "call", "result", "delta", "completed"]);

    // A call refused before it runs (no such tool) has no start, and its end is told.
    let events = collect(agent.run_stream("call the ghost")).await;
    assert!(!events.iter().any(|e| matches!(e, RunEvent::ToolCallStarted { .. })), "{events:?}");
    let refused = events.iter().find_map(|event| match event {
        RunEvent::ToolCallCompleted { tool_name, status, .. } => Some((tool_name.as_str(), *status)),
        _ => None,
    });
    assert_eq!(refused, Some(("no_such_tool", ToolCallStatus::Failed)), "{events:?}");
}

async fn a_dropped_stream_leaves_the_run_to_finish(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let paused = agent.run("book a room").await.unwrap();
    store
        .update_approval(paused.requirements[0].approval_id.as_deref().unwrap(), ApprovalUpdate::approve("a"))
        .await
        .unwrap();
    drop(agent.continue_stream(&paused.run_id, Vec::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = store.load_run(&paused.run_id).await.unwrap().unwrap().status;
        if status == RunStatus::Completed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the run was left {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener that reads nothing until its run is stored gets the whole answer all the same, in
/// no more pieces than a stream holds: the text that came after was added to the last piece.
async fn a_listener_that_falls_behind_gets_the_text_in_fewer_pieces(backend: Backend) {
    let store = backend.store();
    let words = 3 * MAX_HELD_EVENTS;
    let answer: String = (0..words).map(|n| format!("word{n} ")).collect();
    let model = ScriptedModel::new().when_user_contains("long", Reply::text(answer.trim_end()));
    let agent = Agent::builder().id("talker").model(model).db(store.clone()).build().unwrap();
    let stream = agent.run_stream_with("a long answer", RunOptions::default().session_id("lagging"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !store.session_runs("lagging", 1).await.unwrap().first().is_some_and(|run| run.status == RunStatus::Completed)
    {
        assert!(tokio::time::Instant::now() < deadline, "the run was not stored in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let events = collect(stream).await;
    let output = outcome(&events);
    assert_eq!(output.content.as_deref(), Some(answer.trim_end()));
    assert_eq!(Some(content(&events, &output.run_id)), output.content, "every word, in order");
    let pieces = events.iter().filter(|e| matches!(e, RunEvent::ContentDelta { .. })).count();
    assert!(pieces > 1 && pieces <= MAX_HELD_EVENTS, "{pieces} pieces for {words} words");
}

async fn a_failed_continue_ends_the_stream_with_its_error(backend: Backend) {
    let agent = agent(backend.store());
    let events = collect(agent.continue_stream("no-such-run", Vec::new())).await;
    assert!(matches!(
        &events[..],
        [RunEvent::RunError { run_id: Some(run_id), error: kern::Error::RunNotFound(_) }] if run_id == "no-such-run"
    ));
}

async fn a_streamed_continue_obeys_the_stored_row_whatever_the_caller_answers(backend: Backend) {
    let store = backend.store();
    let agent = agent(store.clone());
    let paused = agent.run("book a room").await.unwrap();
    let row_id = paused.requirements[0].approval_id.clone().unwrap();
    let mut confirmed = paused.requirements.clone();
    confirmed[0].confirm();

    // The row is pending: the caller's confirmation runs nothing.
    let events = collect(agent.continue_stream(&paused.run_id, confirmed.clone())).await;
    let [RunEvent::RunError { error: kern::Error::ApprovalPending { approval_id }, .. }] = &events[..] else {
        panic!("expected the pending row's refusal: {events:?}");
    };
    assert_eq!(approval_id, &row_id);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().unwrap().status, RunStatus::Paused);

    // The row is rejected: still nothing runs, and the run completes.
    store.update_approval(&row_id, ApprovalUpdate::reject("admin-1")).await.unwrap();
    let events = collect(agent.continue_stream(&paused.run_id, confirmed)).await;
    assert!(!events.iter().any(|e| matches!(e, RunEvent::ToolCallStarted { .. })), "{events:?}");
    // The stream tells how the call ended, though it never started.
    let settled = events.iter().find_map(|event| match event {
        RunEvent::ToolCallCompleted { status, result, .. } => Some((*status, result.clone())),
        _ => None,
    });
    let (status, result) = settled.unwrap_or_else(|| panic!("no end of the rejected call: {events:?}"));
    assert_eq!(status, ToolCallStatus::Rejected);
    assert!(result.as_str().unwrap().contains("rejected"), "{result}");
    let output = outcome(&events);
    assert_eq!(output.status, RunStatus::Completed);
    assert_eq!(output.tools[0].status, ToolCallStatus::Rejected);
}

async fn a_run_that_fails_once_started_names_itself_in_its_error(backend: Backend) {
    let agent = agent(backend.store());
    // No rule of the scripted model answers this: the model call fails.
    let events = collect(agent.run_stream("something nobody scripted")).await;
    let [RunEvent::RunStarted { run_id: started, .. }, RunEvent::RunError { run_id: Some(failed), error }] =
        &events[..]
    else {
        panic!("expected a start and an error: {events:?}");
    };
    assert_eq!(started, failed);
    assert!(matches!(error, kern::Error::Model(_)));
    let stored = backend.store().load_run(started).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Error);
}

async fn a_teams_members_stream_their_runs(backend: Backend) {
    let store = backend.store();
    let member = agent(store.clone());
    let leader = ScriptedModel::new()
        .when_user_contains(
            "ask",
            Reply::call("delegate_task_to_member", json!({ "member_id": "assistant", "task": "hello" })),
        )
        .after_tool("delegate_task_to_member", Reply::text("The member said: {result}"));
    let team = Team::builder().id("desk").model(leader).member(member).db(store).build().unwrap();
    let events = collect(team.run_stream("ask the assistant")).await;
    let output = outcome(&events);
    assert_eq!(output.status, RunStatus::Completed);
    let member_run = events.iter().find_map(|e| match e {
        RunEvent::MemberRunStarted { run_id, member_run_id, agent_id } if run_id == &output.run_id => {
            assert_eq!(agent_id, "assistant");
            Some(member_run_id.clone())
        }
        _ => None,
    });
    let member_run = member_run.expect("the member's run started");
    assert_eq!(content(&events, &member_run), "Hello there, how can I help?");
    assert!(events.iter().any(|e| matches!(e, RunEvent::MemberRunFinished { member_run_id, status, .. }
        if member_run_id == &member_run && *status == RunStatus::Completed)));
    assert_eq!(Some(content(&events, &output.run_id)), output.content);

    // The session's tokens: the team run's and its member's.
    let member_usage = backend.store().load_run(&member_run).await.unwrap().unwrap().usage;
    let spent = team.session_usage(&output.session_id).await.unwrap();
    assert!(member_usage.output_tokens > 0 && output.usage.output_tokens > 0);
    assert_eq!(spent.input_tokens, output.usage.input_tokens + member_usage.input_tokens);
    assert_eq!(spent.output_tokens, output.usage.output_tokens + member_usage.output_tokens);
}

async fn a_team_continue_streams_its_members_resumption(backend: Backend) {
    let store = backend.store();
    let member = agent(store.clone());
    let leader = ScriptedModel::new()
        .when_user_contains(
            "room",
            Reply::call("delegate_task_to_member", json!({ "member_id": "assistant", "task": "book a room" })),
        )
        .after_tool("delegate_task_to_member", Reply::text("Booked: {result}"));
    let team = Team::builder().id("desk").model(leader).member(member).db(store.clone()).build().unwrap();
    let paused = team.run("get me a room").await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    let row = paused.requirements[0].approval_id.clone().unwrap();
    store.update_approval(&row, ApprovalUpdate::approve("admin-1")).await.unwrap();

    let events = collect(team.continue_stream(&paused.run_id, Vec::new())).await;
    let member_run = events
        .iter()
        .find_map(|e| match e {
            RunEvent::MemberRunContinued { run_id, member_run_id, agent_id } if run_id == &paused.run_id => {
                assert_eq!(agent_id, "assistant");
                Some(member_run_id.clone())
            }
            _ => None,
        })
        .expect("the member's run resumes");
    assert!(events.iter().any(|e| matches!(e, RunEvent::ToolCallStarted { run_id, tool_name, .. }
        if run_id == &member_run && tool_name == "book_room")));
    assert_eq!(outcome(&events).status, RunStatus::Completed);
}

on_every_backend!(
    an_answer_streams_word_by_word_and_is_the_runs_content,
    a_pause_and_its_continue_stream_every_step,
    a_plain_tool_call_streams_its_start_and_result,
    a_dropped_stream_leaves_the_run_to_finish,
    a_listener_that_falls_behind_gets_the_text_in_fewer_pieces,
    a_failed_continue_ends_the_stream_with_its_error,
    a_streamed_continue_obeys_the_stored_row_whatever_the_caller_answers,
    a_run_that_fails_once_started_names_itself_in_its_error,
    a_teams_members_stream_their_runs,
    a_team_continue_streams_its_members_resumption,
    a_run_a_tool_starts_is_not_the_streams,
);

/// Asks another agent, the way a tool may run an agent of its own.
struct AskColleague(Agent);

impl Tool for AskColleague {
    fn definition(&self) -> kern::tools::ToolDefinition {
        let schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
        kern::tools::ToolDefinition::new("ask_colleague", "Ask a colleague.", schema, kern::tools::Hitl::None, None)
    }

    fn call<'a>(
        &'a self,
        _: &'a RunContext,
        _args: serde_json::Value,
    ) -> kern::BoxFuture<'a, Result<serde_json::Value, kern::tools::ToolError>> {
        Box::pin(async move {
            let answer = self.0.run("hello").await.map_err(|err| kern::tools::ToolError::Failed(err.to_string()))?;
            Ok(json!(answer.content))
        })
    }
}

/// A tool that runs another agent starts a run of its own: that run reports nothing on the
/// stream of the run that called the tool, which names only itself.
async fn a_run_a_tool_starts_is_not_the_streams(backend: Backend) {
    let colleague = agent(backend.store());
    let model = ScriptedModel::new()
        .when_user_contains("ask", Reply::call("ask_colleague", json!({})))
        .after_tool("ask_colleague", Reply::text("They said: {result}"));
    let asker = Agent::builder().id("asker").model(model).tool(AskColleague(colleague)).db(backend.store()).build();
    let events = collect(asker.unwrap().run_stream("ask around")).await;
    let output = outcome(&events);
    assert_eq!(output.status, RunStatus::Completed);
    let started: Vec<_> = events.iter().filter(|event| matches!(event, RunEvent::RunStarted { .. })).collect();
    assert_eq!(started.len(), 1, "{events:?}");
    assert!(events.iter().all(|event| match event {
        RunEvent::ContentDelta { run_id, .. } => run_id == &output.run_id,
        _ => true,
    }));
    assert!(output.content.as_deref().is_some_and(|text| text.contains("Hello there")), "{output:?}");
}
