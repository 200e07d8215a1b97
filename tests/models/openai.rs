//! The OpenAI-compatible provider on the wire.

use kern::models::{Message, Model, ModelRequest, OpenAiCompatible, ToolCall, Usage};
use serde_json::{Value, json};

use crate::server::{Answer, TestServer};
use crate::{FAST_RETRY, after_two_calls, weather_tool};

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
                    {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{city: Rome"}},
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
