//! The HTTP model providers against a real HTTP server on loopback that answers in each
//! provider's wire format: what they send, what they read, and how they fail and retry.

mod anthropic;
mod failures;
mod openai;
mod server;

use std::sync::Mutex;
use std::time::Duration;

use kern::models::{
    Delta, Message, Model, ModelError, ModelRequest, ModelResponse, RetryPolicy, Role, ToolCall, ToolSchema,
};
use serde_json::json;

/// Retries quickly, so tests of retrying do not wait for the default backoff.
const FAST_RETRY: RetryPolicy = RetryPolicy { max_retries: 2, initial_backoff: Duration::from_millis(1) };

fn weather_tool() -> ToolSchema {
    ToolSchema {
        name: "weather".into(),
        description: "Current weather of a city.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }),
    }
}

/// A conversation that ends with the results of two parallel calls, the second with arguments
/// that are no JSON.
fn after_two_calls() -> Vec<Message> {
    vec![
        Message::system("Be brief."),
        Message::user("Weather in Paris and Rome?"),
        Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![
                ToolCall { id: "call_a".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
                ToolCall { id: "call_b".into(), name: "weather".into(), arguments: "{city: Rome".into() },
            ],
            tool_call_id: None,
            name: None,
        },
        Message::tool_result("call_a", "weather", "sunny"),
        Message::tool_result("call_b", "weather", "error: arguments are not JSON"),
    ]
}

/// A delta as a streaming model handed it out, kept.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Received {
    Text(String),
    Reasoning(String),
}

/// Asks `model` for a streamed answer; `on_delta` sees each delta as it arrives (to let a
/// scripted server go on, say). Returns the answer and every delta, in order.
async fn stream_answer(
    model: &dyn Model,
    request: ModelRequest<'_>,
    on_delta: impl Fn() + Send + Sync,
) -> (Result<ModelResponse, ModelError>, Vec<Received>) {
    let received = Mutex::new(Vec::new());
    let deltas = |delta: Delta<'_>| {
        received.lock().unwrap().push(match delta {
            Delta::Text(text) => Received::Text(text.to_owned()),
            Delta::Reasoning(text) => Received::Reasoning(text.to_owned()),
        });
        on_delta();
    };
    let answer = model.respond_streaming(request, &deltas).await;
    (answer, received.into_inner().unwrap())
}

/// Streams the answer to a lone "Hi".
async fn stream_greeting(model: &dyn Model) -> (Result<ModelResponse, ModelError>, Vec<Received>) {
    stream_answer(model, ModelRequest { messages: &[Message::user("Hi")], tools: &[] }, || {}).await
}

/// The text of the text deltas, joined.
fn joined_text(received: &[Received]) -> String {
    received
        .iter()
        .filter_map(|delta| match delta {
            Received::Text(text) => Some(text.as_str()),
            Received::Reasoning(_) => None,
        })
        .collect()
}
