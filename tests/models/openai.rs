//! The OpenAI-compatible provider on the wire.

use std::sync::Arc;
use std::time::Duration;

use kern::models::{
    Message, Model, ModelError, ModelRequest, ModelResponse, OpenAiCompatible, RetryPolicy, ToolCall, Usage,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::server::{Answer, Piece, TestServer};
use crate::{FAST_RETRY, Received, after_two_calls, joined_text, stream_answer, stream_greeting, weather_tool};

/// The provider pointed at `server`, as a local OpenAI-compatible server would be configured.
pub fn model(server_url: &str) -> OpenAiCompatible {
    OpenAiCompatible::new("gpt-test").base_url(format!("{server_url}/v1")).api_key("sk-test").retry(FAST_RETRY)
}

/// A chat completion as OpenAI sends it, with this assistant message.
fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        "system_fingerprint": "fp_test",
    })
}

/// A final text answer.
pub fn text_answer(text: &str) -> Value {
    completion(json!({"role": "assistant", "content": text, "refusal": null}), "stop")
}

fn tool_calls_answer(calls: &[(&str, &str)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, city)| {
            json!({"id": id, "type": "function",
                   "function": {"name": "weather", "arguments": json!({"city": city}).to_string()}})
        })
        .collect();
    completion(json!({"role": "assistant", "content": null, "tool_calls": calls, "refusal": null}), "tool_calls")
}

#[tokio::test]
async fn answers_text_from_a_chat_completions_request() {
    let server = TestServer::start(vec![Answer::json(200, text_answer("Hello!"))]).await;
    let messages = [Message::system("Be brief."), Message::user("Hi")];

    let response = model(&server.url()).respond(ModelRequest { messages: &messages, tools: &[] }).await.unwrap();

    assert_eq!(response.message, Message::assistant("Hello!"));
    assert_eq!(response.usage, Usage { input_tokens: 42, output_tokens: 7 });
    let request = server.single_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-test",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        })
    );
}

#[tokio::test]
async fn sends_tool_schemas_and_results_and_reads_a_tool_call() {
    let server = TestServer::start(vec![Answer::json(200, tool_calls_answer(&[("call_c", "Oslo")]))]).await;
    let messages = after_two_calls();
    let tools = [weather_tool()];

    let model = model(&server.url()).temperature(0.0).max_tokens(256);
    let response = model.respond(ModelRequest { messages: &messages, tools: &tools }).await.unwrap();

    assert_eq!(response.message.content, None);
    assert_eq!(
        response.message.tool_calls,
        vec![ToolCall { id: "call_c".into(), name: "weather".into(), arguments: r#"{"city":"Oslo"}"#.into() }]
    );
    assert_eq!(
        server.single_request().body,
        json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    // Arguments that are no JSON object go back as `{}`, which local servers parse.
                    {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_b", "content": "error: arguments are not JSON"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "weather",
                "description": "Current weather of a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            }}],
            "temperature": 0.0,
            "max_tokens": 256,
        })
    );
}

#[tokio::test]
async fn reads_parallel_tool_calls() {
    let answer = tool_calls_answer(&[("call_1", "Paris"), ("call_2", "Rome"), ("call_3", "Oslo")]);
    let server = TestServer::start(vec![Answer::json(200, answer)]).await;
    let messages = [Message::user("Weather in Paris, Rome and Oslo?")];
    let tools = [weather_tool()];

    let response = model(&server.url()).respond(ModelRequest { messages: &messages, tools: &tools }).await.unwrap();

    let calls: Vec<(&str, &str)> =
        response.message.tool_calls.iter().map(|c| (c.id.as_str(), c.arguments.as_str())).collect();
    assert_eq!(
        calls,
        [("call_1", r#"{"city":"Paris"}"#), ("call_2", r#"{"city":"Rome"}"#), ("call_3", r#"{"city":"Oslo"}"#)]
    );
    assert!(response.message.tool_calls.iter().all(|c| c.name == "weather"));
}

#[tokio::test]
async fn a_local_server_gets_no_authorization_header() {
    let server = TestServer::start(vec![Answer::json(200, text_answer("Hi"))]).await;
    let model = OpenAiCompatible::new("llama3.1").base_url(server.url());

    let response = model.respond(ModelRequest { messages: &[Message::user("Hi")], tools: &[] }).await.unwrap();

    assert_eq!(response.message.content.as_deref(), Some("Hi"));
    let request = server.single_request();
    assert_eq!(request.path, "/chat/completions");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.body["model"], "llama3.1");
}

/// One server-sent event of a streamed chat completion.
fn sse(chunk: &Value) -> String {
    format!("data: {chunk}\n\n")
}

/// A chunk carrying this delta of the first choice.
fn chunk(delta: Value) -> Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}],
    })
}

/// The last chunk before `[DONE]`, with `stream_options.include_usage`: usage, no choice.
fn usage_chunk() -> Value {
    json!({
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-test",
        "choices": [],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    })
}

fn text_piece(text: &str) -> Piece {
    Piece::text(&sse(&chunk(json!({"content": text}))))
}

/// The pieces of a complete streamed text answer after `body`: usage, then `[DONE]`.
fn ending(mut body: Vec<Piece>) -> Vec<Piece> {
    body.push(Piece::text(&sse(&usage_chunk())));
    body.push(Piece::text("data: [DONE]\n\n"));
    body
}

/// What [`OpenAiCompatible::respond`] makes of `answer`: a streamed answer must equal it.
async fn unstreamed(answer: Value, request: ModelRequest<'_>) -> ModelResponse {
    let server = TestServer::start(vec![Answer::json(200, answer)]).await;
    model(&server.url()).respond(request).await.unwrap()
}

#[tokio::test]
async fn streams_text_deltas_as_they_arrive() {
    let first_delta = Arc::new(Notify::new());
    let mut pieces = vec![Piece::text(&sse(&chunk(json!({"role": "assistant", "content": ""})))), text_piece("Hel")];
    // The rest is written only once the first delta reached the caller.
    pieces.push(Piece::WaitFor(Arc::clone(&first_delta)));
    pieces.extend([text_piece("lo"), text_piece(" world!")]);
    pieces.push(Piece::text(&sse(&json!({"id": "chatcmpl-123", "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))));
    let server = TestServer::start(vec![Answer::stream(ending(pieces))]).await;
    let messages = [Message::system("Be brief."), Message::user("Hi")];
    let request = ModelRequest { messages: &messages, tools: &[] };

    let model = model(&server.url()).timeout(Duration::from_secs(10));
    let (answer, received) = stream_answer(&model, request, || first_delta.notify_one()).await;

    let answer = answer.unwrap();
    assert_eq!(received, ["Hel", "lo", " world!"].map(|text| Received::Text(text.into())));
    assert_eq!(answer.message.content.as_deref(), Some(joined_text(&received).as_str()));
    assert_eq!(answer, unstreamed(text_answer("Hello world!"), request).await);
    assert_eq!(answer.usage, Usage { input_tokens: 42, output_tokens: 7 });
    let request = server.single_request();
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-test",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[tokio::test]
async fn reasoning_is_streamed_apart_from_the_answer() {
    let pieces = ending(vec![
        Piece::text(&sse(&chunk(json!({"reasoning_content": "The user greets"})))),
        Piece::text(&sse(&chunk(json!({"reasoning": ", so greet back."})))),
        // A server that names a piece both ways shows it once.
        Piece::text(&sse(&chunk(json!({"reasoning_content": " Briefly.", "reasoning": " Briefly."})))),
        text_piece("Hi!"),
    ]);
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    assert_eq!(
        received,
        [
            Received::Reasoning("The user greets".into()),
            Received::Reasoning(", so greet back.".into()),
            Received::Reasoning(" Briefly.".into()),
            Received::Text("Hi!".into()),
        ]
    );
    assert_eq!(answer.unwrap().message, Message::assistant("Hi!"));
}

#[tokio::test]
async fn parallel_tool_calls_are_assembled_from_interleaved_fragments() {
    let call = |index: usize, id: &str| {
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                               "function": {"name": "weather", "arguments": ""}}]})
    };
    let fragment =
        |index: usize, arguments: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]});
    let pieces = ending(
        [
            chunk(json!({"role": "assistant", "content": null})),
            chunk(call(0, "call_1")),
            chunk(fragment(0, "{\"ci")),
            chunk(call(1, "call_2")),
            chunk(fragment(1, "{\"city\":")),
            chunk(fragment(0, "ty\":\"Par")),
            chunk(fragment(1, "\"Rome\"}")),
            chunk(fragment(0, "is\"}")),
        ]
        .iter()
        .map(|chunk| Piece::text(&sse(chunk)))
        .collect(),
    );
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;
    let messages = [Message::user("Weather in Paris and Rome?")];
    let tools = [weather_tool()];
    let request = ModelRequest { messages: &messages, tools: &tools };

    let (answer, received) = stream_answer(&model(&server.url()), request, || {}).await;

    let answer = answer.unwrap();
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(answer.message.content, None);
    assert_eq!(
        answer.message.tool_calls,
        vec![
            ToolCall { id: "call_1".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
            ToolCall { id: "call_2".into(), name: "weather".into(), arguments: r#"{"city":"Rome"}"#.into() },
        ]
    );
    assert_eq!(answer, unstreamed(tool_calls_answer(&[("call_1", "Paris"), ("call_2", "Rome")]), request).await);
    assert!(server.single_request().body["tools"].is_array());
}

#[tokio::test]
async fn a_character_split_between_writes_arrives_whole() {
    let event = sse(&chunk(json!({"content": "Café 👋"})));
    let pieces = ending(Piece::split_inside_characters(&event));
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    assert_eq!(received, [Received::Text("Café 👋".into())]);
    assert_eq!(answer.unwrap().message.content.as_deref(), Some("Café 👋"));
}

#[tokio::test]
async fn a_stream_cut_midway_is_an_interruption_and_not_retried() {
    let server = TestServer::start(vec![Answer::cut_stream(vec![text_piece("Hel"), text_piece("lo")])]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    assert!(matches!(answer, Err(ModelError::StreamInterrupted { .. })), "{answer:?}");
    assert_eq!(joined_text(&received), "Hello");
    assert_eq!(server.requests().len(), 1, "a stream that began is not asked again");
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error_not_a_whole_answer() {
    let cut_call = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "weather", "arguments": "{\"city\": \"Par"}}]});
    let mut last = chunk(json!({"content": "lo"}));
    last["choices"][0]["finish_reason"] = json!("length");
    let server = TestServer::start(vec![
        Answer::json(200, completion(cut_call, "length")),
        Answer::json(200, completion(json!({"role": "assistant", "content": null}), "content_filter")),
        Answer::stream(ending(vec![text_piece("Hel"), Piece::text(&sse(&last))])),
    ])
    .await;
    let model = model(&server.url());
    let request = ModelRequest { messages: &[Message::user("Hi")], tools: &[] };

    for reason in ["length", "content_filter"] {
        let ran_out = reason == "length";
        let err = model.respond(request).await.unwrap_err();
        let (provider, reason) = ("openai:gpt-test".into(), format!("finish_reason `{reason}`"));
        let usage = Usage { input_tokens: 42, output_tokens: 7 };
        assert_eq!(err, ModelError::CutShort { provider, reason, usage }, "what it cost is counted");
        assert!(!err.is_transient(), "{err}");
        assert_eq!(err.to_string().contains("raise `max_tokens`"), ran_out, "advice that fits: {err}");
    }
    let (answer, received) = stream_greeting(&model).await;
    let Err(ModelError::CutShort { usage, .. }) = answer else { panic!("{answer:?}") };
    assert_eq!(usage, Usage { input_tokens: 42, output_tokens: 7 }, "the stream's count, which came after");
    assert_eq!(joined_text(&received), "Hello", "what arrived was shown as it came");
    assert_eq!(server.requests().len(), 3, "none is asked again");
}

/// A refusal comes with `finish_reason` `stop` and no content: it is no empty answer.
#[tokio::test]
async fn a_refusal_is_an_error_not_an_empty_answer() {
    let refused = json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
    let pieces = ending(vec![
        Piece::text(&sse(&chunk(json!({"role": "assistant", "content": null, "refusal": ""})))),
        Piece::text(&sse(&chunk(json!({"refusal": "I can't "})))),
        Piece::text(&sse(&chunk(json!({"refusal": "help with that."})))),
    ]);
    let server = TestServer::start(vec![Answer::json(200, completion(refused, "stop")), Answer::stream(pieces)]).await;
    let model = model(&server.url());

    let err = model.respond(ModelRequest { messages: &[Message::user("Hi")], tools: &[] }).await.unwrap_err();
    let ModelError::CutShort { reason, usage, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reason, "refusal: I can't help with that.");
    assert_eq!(*usage, Usage { input_tokens: 42, output_tokens: 7 }, "what it cost is counted");
    let (answer, received) = stream_greeting(&model).await;
    let Err(ModelError::CutShort { reason, .. }) = &answer else { panic!("{answer:?}") };
    assert_eq!(reason, "refusal: I can't help with that.", "the pieces joined");
    assert!(received.is_empty(), "a refusal is not shown as the answer's text: {received:?}");
}

#[tokio::test]
async fn a_stream_that_ends_before_done_is_an_interruption() {
    let pieces = vec![text_piece("Hello"), Piece::text(&sse(&usage_chunk()))];
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, _) = stream_greeting(&model(&server.url())).await;

    assert!(matches!(answer, Err(ModelError::StreamInterrupted { .. })), "{answer:?}");
}

#[tokio::test]
async fn a_stream_closed_right_after_done_without_a_blank_line_is_whole() {
    let pieces = vec![text_piece("Hello"), Piece::text(&sse(&usage_chunk())), Piece::text("data: [DONE]\n")];
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, _) = stream_greeting(&model(&server.url())).await;

    assert_eq!(answer.unwrap().message, Message::assistant("Hello"));
}

#[tokio::test]
async fn an_error_chunk_is_a_stream_error() {
    let error = json!({"error": {"message": "The server had an error", "type": "server_error", "code": null}});
    let pieces = vec![text_piece("Hel"), Piece::text(&sse(&error)), text_piece("lo")];
    let server = TestServer::start(vec![Answer::stream(pieces)]).await;

    let (answer, _) = stream_greeting(&model(&server.url())).await;

    let Err(ModelError::StreamError { provider, message, transient }) = answer else { panic!("{answer:?}") };
    assert_eq!(provider, "openai:gpt-test");
    assert_eq!(message, "server_error: The server had an error");
    assert!(transient, "a server error may pass when asked again");
}

#[tokio::test]
async fn failures_before_the_stream_begins_are_retried() {
    let server =
        TestServer::start(vec![Answer::raw(503, "overloaded"), Answer::stream(ending(vec![text_piece("Hi")]))]).await;

    let (answer, received) = stream_greeting(&model(&server.url())).await;

    assert_eq!(answer.unwrap().message, Message::assistant("Hi"));
    assert_eq!(received, [Received::Text("Hi".into())]);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
}

/// The timeout bounds each wait of a stream, not the whole of it: an answer that keeps coming
/// is read to its end however long it takes.
#[tokio::test]
async fn a_stream_longer_than_the_timeout_that_keeps_coming_is_read_whole() {
    let mut pieces = Vec::new();
    for _ in 0..8 {
        pieces.extend([text_piece("la "), Piece::Pause(Duration::from_millis(150))]);
    }
    let server = TestServer::start(vec![Answer::stream(ending(pieces))]).await;

    let model = model(&server.url()).retry(RetryPolicy::NONE).timeout(Duration::from_millis(600));
    let (answer, received) = stream_greeting(&model).await;

    assert_eq!(answer.expect("the whole answer").message.content.as_deref(), Some(&*"la ".repeat(8)));
    assert_eq!(joined_text(&received), "la ".repeat(8));
}

#[tokio::test]
async fn the_timeout_bounds_the_stream() {
    let never = Arc::new(Notify::new());
    let server = TestServer::start(vec![Answer::stream(vec![text_piece("Hel"), Piece::WaitFor(never)])]).await;

    let model = model(&server.url()).retry(RetryPolicy::NONE).timeout(Duration::from_millis(300));
    let (answer, received) = stream_greeting(&model).await;

    assert!(matches!(answer, Err(ModelError::Timeout { .. })), "{answer:?}");
    assert_eq!(received, [Received::Text("Hel".into())]);
}
