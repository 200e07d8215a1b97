//! The Anthropic provider on the wire.

use kern::models::{Anthropic, Message, Model, ModelRequest, ToolCall, Usage};
use serde_json::{Value, json};

use crate::server::{Answer, TestServer};
use crate::{FAST_RETRY, after_two_calls, weather_tool};

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
