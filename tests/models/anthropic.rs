//! The Anthropic provider on the wire.

use std::sync::Arc;
use std::time::Duration;

use kern::models::{Anthropic, Message, Model, ModelError, ModelRequest, ModelResponse, ToolCall, Usage};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::server::{Answer, Piece, TestServer};
use crate::{FAST_RETRY, Received, after_two_calls, joined_text, stream_answer, stream_greeting, weather_tool};

/// The provider pointed at `server_url`.
pub fn model(server_url: &str) -> Anthropic {
    Anthropic::new("claude-test").base_url(server_url).api_key("sk-ant-test").retry(FAST_RETRY)
}

/// A message as Anthropic sends it, with these content blocks.
fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_123",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 42, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    })
}

/// A final text answer.
pub fn text_answer(text: &str) -> Value {
    message(json!([{"type": "text", "text": text}]), "end_turn")
}

fn tool_use_answer(calls: &[(&str, &str)]) -> Value {
    let mut blocks = vec![json!({"type": "text", "text": "Let me check."})];
    blocks.extend(
        calls
            .iter()
            .map(|(id, city)| json!({"type": "tool_use", "id": id, "name": "weather", "input": {"city": city}})),
    );
    message(Value::Array(blocks), "tool_use")
}

#[tokio::test]
async fn answers_text_from_a_messages_request() {
    let server = TestServer::start(vec![Answer::json(200, text_answer("Hello!"))]).await;
    let messages = [Message::system("Be brief."), Message::user("Hi")];

    let response = model(&server.url()).respond(ModelRequest { messages: &messages, tools: &[] }).await.unwrap();

    assert_eq!(response.message, Message::assistant("Hello!"));
    assert_eq!(response.usage, Usage { input_tokens: 42, output_tokens: 7 });
    let request = server.single_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.body,
        json!({
            "model": "claude-test",
            "max_tokens": 4096,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        })
    );
}

#[tokio::test]
async fn sends_tool_schemas_and_results_and_reads_a_tool_call() {
    let server = TestServer::start(vec![Answer::json(200, tool_use_answer(&[("toolu_c", "Oslo")]))]).await;
    let messages = after_two_calls();
    let tools = [weather_tool()];

    let model = model(&server.url()).max_tokens(256);
    let response = model.respond(ModelRequest { messages: &messages, tools: &tools }).await.unwrap();

    assert_eq!(response.message.content.as_deref(), Some("Let me check."));
    assert_eq!(
        response.message.tool_calls,
        vec![ToolCall { id: "toolu_c".into(), name: "weather".into(), arguments: r#"{"city":"Oslo"}"#.into() }]
    );
    assert_eq!(
        server.single_request().body,
        json!({
            "model": "claude-test",
            "max_tokens": 256,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_b", "name": "weather", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "call_b", "content": "error: arguments are not JSON"},
                ]},
            ],
            "tools": [{
                "name": "weather",
                "description": "Current weather of a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            }],
        })
    );
}

#[tokio::test]
async fn reads_parallel_tool_calls() {
    let answer = tool_use_answer(&[("toolu_1", "Paris"), ("toolu_2", "Rome"), ("toolu_3", "Oslo")]);
    let server = TestServer::start(vec![Answer::json(200, answer)]).await;
    let messages = [Message::user("Weather in Paris, Rome and Oslo?")];
    let tools = [weather_tool()];

    let response = model(&server.url()).respond(ModelRequest { messages: &messages, tools: &tools }).await.unwrap();

    let calls: Vec<(&str, &str)> =
        response.message.tool_calls.iter().map(|c| (c.id.as_str(), c.arguments.as_str())).collect();
    assert_eq!(
        calls,
        [("toolu_1", r#"{"city":"Paris"}"#), ("toolu_2", r#"{"city":"Rome"}"#), ("toolu_3", r#"{"city":"Oslo"}"#)]
    );
    assert!(response.message.tool_calls.iter().all(|c| c.name == "weather"));
}

/// One server-sent event of a streamed message, named by its type as Anthropic sends it.
fn sse(data: &Value) -> String {
    format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap())
}

fn event(data: Value) -> Piece {
    Piece::text(&sse(&data))
}

fn message_start() -> Piece {
    event(json!({"type": "message_start", "message": {
        "id": "msg_123", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 42, "output_tokens": 1},
    }}))
}

fn block_start(index: usize, block: Value) -> Piece {
    event(json!({"type": "content_block_start", "index": index, "content_block": block}))
}

fn block_delta(index: usize, delta: Value) -> Piece {
    event(json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

fn text_delta(index: usize, text: &str) -> Piece {
    block_delta(index, json!({"type": "text_delta", "text": text}))
}

fn block_stop(index: usize) -> Piece {
    event(json!({"type": "content_block_stop", "index": index}))
}

/// The events after the content blocks: the final count, then the end.
fn message_end(stop_reason: &str) -> [Piece; 2] {
    [
        event(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                     "usage": {"output_tokens": 7}})),
        event(json!({"type": "message_stop"})),
    ]
}

/// What [`Anthropic::respond`] makes of `answer`: a streamed answer must equal it.
async fn unstreamed(answer: Value, request: ModelRequest<'_>) -> ModelResponse {
    let server = TestServer::start(vec![Answer::json(200, answer)]).await;
    model(&server.url()).respond(request).await.unwrap()
}

#[tokio::test]
async fn streams_text_and_thinking_deltas_as_they_arrive() {
    let first_delta = Arc::new(Notify::new());
    let mut pieces = vec![
        message_start(),
        block_start(0, json!({"type": "thinking", "thinking": ""})),
        block_delta(0, json!({"type": "thinking_delta", "thinking": "A greeting."})),
        // The rest is written only once the first delta reached the caller.
        Piece::WaitFor(Arc::clone(&first_delta)),
        block_delta(0, json!({"type": "signature_delta", "signature": "sig"})),
        block_stop(0),
        block_start(1, json!({"type": "text", "text": ""})),
        text_delta(1, "Hel"),
        event(json!({"type": "ping"})),
        text_delta(1, "lo"),
        block_stop(1),
        block_start(2, json!({"type": "text", "text": ""})),
        text_delta(2, " there!"),
        block_stop(2),
    ];
    pieces.extend(message_end("end_turn"));
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;
    let messages = [Message::system("Be brief."), Message::user("Hi")];
    let request = ModelRequest { messages: &messages, tools: &[] };

    let model = model(&server.url()).timeout(Duration::from_secs(10));
    let (answer, received) = stream_answer(&model, request, || first_delta.notify_one()).await;

    let answer = answer.unwrap();
    assert_eq!(
        received,
        [
            Received::Reasoning("A greeting.".into()),
            Received::Text("Hel".into()),
            Received::Text("lo".into()),
            Received::Text(" there!".into()),
        ]
    );
    assert_eq!(answer.message.content.as_deref(), Some(joined_text(&received).as_str()));
    assert_eq!(answer, unstreamed(text_answer("Hello there!"), request).await);
    assert_eq!(answer.usage, Usage { input_tokens: 42, output_tokens: 7 });
    let request = server.single_request();
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(
        request.body,
        json!({
            "model": "claude-test",
            "max_tokens": 4096,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "stream": true,
        })
    );
}

#[tokio::test]
async fn tool_input_is_assembled_from_json_deltas() {
    let tool_use = |id: &str| json!({"type": "tool_use", "id": id, "name": "weather", "input": {}});
    let json_delta =
        |index: usize, partial: &str| block_delta(index, json!({"type": "input_json_delta", "partial_json": partial}));
    let mut pieces = vec![
        message_start(),
        block_start(0, json!({"type": "text", "text": ""})),
        text_delta(0, "Let me check."),
        block_stop(0),
        block_start(1, tool_use("toolu_1")),
        json_delta(1, ""),
        json_delta(1, "{\"ci"),
        json_delta(1, "ty\": \"Par"),
        json_delta(1, "is\"}"),
        block_stop(1),
        block_start(2, tool_use("toolu_2")),
        json_delta(2, "{\"city\":"),
        json_delta(2, " \"Rome\"}"),
        block_stop(2),
    ];
    pieces.extend(message_end("tool_use"));
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;
    let messages = [Message::user("Weather in Paris and Rome?")];
    let tools = [weather_tool()];
    let request = ModelRequest { messages: &messages, tools: &tools };

    let (answer, received) = stream_answer(&model(&server.url()), request, || {}).await;

    let answer = answer.unwrap();
    assert_eq!(received, [Received::Text("Let me check.".into())]);
    assert_eq!(
        answer.message.tool_calls,
        vec![
            ToolCall { id: "toolu_1".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
            ToolCall { id: "toolu_2".into(), name: "weather".into(), arguments: r#"{"city":"Rome"}"#.into() },
        ]
    );
    assert_eq!(answer, unstreamed(tool_use_answer(&[("toolu_1", "Paris"), ("toolu_2", "Rome")]), request).await);
}

#[tokio::test]
async fn a_tool_call_without_input_deltas_keeps_its_start_input() {
    let mut pieces = vec![
        message_start(),
        block_start(0, json!({"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}})),
        block_stop(0),
    ];
    pieces.extend(message_end("tool_use"));
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let request = ModelRequest { messages: &[Message::user("Time?")], tools: &[] };
    let (answer, _) = stream_answer(&model(&server.url()), request, || {}).await;

    let answer = answer.unwrap();
    assert_eq!(answer.message.content, None);
    assert_eq!(
        answer.message.tool_calls,
        vec![ToolCall { id: "toolu_1".into(), name: "now".into(), arguments: "{}".into() }]
    );
}

#[tokio::test]
async fn a_character_split_between_writes_arrives_whole() {
    let delta = sse(&json!({"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Café 👋"}}));
    let mut pieces = vec![message_start(), block_start(0, json!({"type": "text", "text": ""}))];
    pieces.extend(Piece::split_inside_characters(&delta));
    pieces.push(block_stop(0));
    pieces.extend(message_end("end_turn"));
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    assert_eq!(received, [Received::Text("Café 👋".into())]);
    assert_eq!(answer.unwrap().message.content.as_deref(), Some("Café 👋"));
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error_not_a_whole_answer() {
    let cut_call = json!([{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}]);
    let mut pieces = vec![
        message_start(),
        block_start(0, json!({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}})),
        block_delta(0, json!({"type": "input_json_delta", "partial_json": "{\"city\": \"Par"})),
        block_stop(0),
    ];
    pieces.extend(message_end("max_tokens"));
    let server = TestServer::start(vec![
        Answer::json(200, message(cut_call, "max_tokens")),
        Answer::json(200, message(json!([]), "refusal")),
        Answer::json(
            200,
            message(json!([{"type": "text", "text": "The weather in"}]), "model_context_window_exceeded"),
        ),
        Answer::stream(pieces),
    ])
    .await;
    let model = model(&server.url());
    let request = ModelRequest { messages: &[Message::user("Weather in Paris?")], tools: &[] };

    for reason in ["max_tokens", "refusal", "model_context_window_exceeded"] {
        let err = model.respond(request).await.unwrap_err();
        let (provider, reason) = ("anthropic:claude-test".to_owned(), format!("stop_reason `{reason}`"));
        let usage = Usage { input_tokens: 42, output_tokens: 7 };
        assert_eq!(err, ModelError::CutShort { provider, reason, usage }, "what it cost is counted");
    }
    let (answer, _) = stream_answer(&model, request, || {}).await;
    let Err(ModelError::CutShort { reason, usage, .. }) = &answer else { panic!("{answer:?}") };
    assert_eq!(reason, "stop_reason `max_tokens`", "said as such, not as a call whose input is no JSON");
    assert_eq!(*usage, Usage { input_tokens: 42, output_tokens: 7 }, "counted as the stream went");
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_an_interruption() {
    let pieces = vec![message_start(), block_start(0, json!({"type": "text", "text": ""})), text_delta(0, "Hel")];
    let server = TestServer::start(vec![Answer::cut_stream(pieces)]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    let Err(ModelError::StreamInterrupted { provider, .. }) = answer else { panic!("{answer:?}") };
    assert_eq!(provider, "anthropic:claude-test");
    assert_eq!(received, [Received::Text("Hel".into())]);
    assert_eq!(server.requests().len(), 1, "a stream that began is not asked again");
}

#[tokio::test]
async fn an_error_event_is_a_stream_error() {
    let pieces = vec![
        message_start(),
        block_start(0, json!({"type": "text", "text": ""})),
        text_delta(0, "Hel"),
        event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ];
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, _) = stream_greeting(&model(&server.url())).await;

    let Err(ModelError::StreamError { provider, message, transient }) = answer else { panic!("{answer:?}") };
    assert_eq!(provider, "anthropic:claude-test");
    assert_eq!(message, "overloaded_error: Overloaded");
    assert!(transient, "an overloaded service may answer when asked again");
}

/// An overloaded service that says so as its stream begins, before any of the answer, is asked
/// again: nothing was handed on. (Once text is out, the error is final: see above.)
#[tokio::test]
async fn an_overloaded_stream_before_any_text_is_asked_again() {
    let overloaded = vec![
        message_start(),
        event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ];
    let mut answered = vec![message_start(), block_start(0, json!({"type": "text", "text": ""}))];
    answered.push(text_delta(0, "Hello"));
    answered.push(block_stop(0));
    answered.extend(message_end("end_turn"));
    let server = TestServer::start(vec![Answer::stream(overloaded), Answer::stream(answered)]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    assert_eq!(answer.unwrap().message.content.as_deref(), Some("Hello"));
    assert_eq!(received, [Received::Text("Hello".into())]);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_stream_asked_again_shares_the_transports_retries() {
    let overloaded = || {
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        Answer::stream(vec![message_start(), event(error)])
    };
    let unavailable = || Answer::json(503, json!({"type": "error", "error": {"type": "api_error", "message": "busy"}}));
    let mut answered = vec![message_start(), block_start(0, json!({"type": "text", "text": ""}))];
    answered.push(text_delta(0, "Hello"));
    answered.push(block_stop(0));
    answered.extend(message_end("end_turn"));
    let answers =
        vec![unavailable(), overloaded(), unavailable(), overloaded(), unavailable(), Answer::stream(answered)];
    let server = TestServer::start(answers).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    let Err(ModelError::Status { status: 503, .. }) = answer else { panic!("{answer:?}") };
    assert!(received.is_empty());
    assert_eq!(server.requests().len(), 3, "two retries in all, as the policy allows, not two for each layer");
}

#[tokio::test]
async fn an_error_event_of_a_lasting_kind_is_not_transient() {
    let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}});
    let pieces = vec![message_start(), event(error)];
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, _) = stream_greeting(&model(&server.url())).await;

    let Err(err @ ModelError::StreamError { .. }) = answer else { panic!("{answer:?}") };
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(server.requests().len(), 1, "a stream that began is not asked again");
}
