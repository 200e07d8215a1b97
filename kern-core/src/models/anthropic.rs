//! The Anthropic messages provider.
//!
//! Speaks `POST {base_url}/v1/messages`. Its shape differs from chat completions: the system
//! prompt is a top-level field, tool calls and tool results are content blocks, and tool results
//! travel in user messages.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{
    Endpoint, EnvVars, HttpTransport, Retries, StreamsOverHttp, endpoint_setters, quoted, stream_retrying,
};
use super::{Delta, Message, Model, ModelError, ModelRequest, ModelResponse, Role, ToolCall, ToolSchema, Usage};
use crate::BoxFuture;

/// A messages provider.
///
/// ```no_run
/// use kern_core::models::Anthropic;
///
/// let claude = Anthropic::new("claude-haiku-4-5").api_key("sk-ant-...");
/// # let _ = claude;
/// ```
#[derive(Clone)]
pub struct Anthropic {
    endpoint: Endpoint,
    max_tokens: u32,
}

impl Anthropic {
    /// Where Anthropic listens.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    /// The model [`from_env`](Self::from_env) picks when `KERN_ANTHROPIC_MODEL` is unset: the
    /// cheap, fast tier.
    pub const DEFAULT_MODEL: &'static str = "claude-haiku-4-5";
    /// The API requires a cap on every answer; this one leaves room for long answers.
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;
    /// The API version kern's wire format follows.
    const API_VERSION: &'static str = "2023-06-01";
    const ENV: EnvVars =
        EnvVars { api_key: "ANTHROPIC_API_KEY", base_url: "KERN_ANTHROPIC_BASE_URL", model: "KERN_ANTHROPIC_MODEL" };

    /// A provider for `model` on Anthropic, without an API key, a 120s timeout and the default
    /// [`RetryPolicy`](super::RetryPolicy).
    pub fn new(model: impl Into<String>) -> Self {
        let endpoint = Endpoint::new("anthropic", model.into(), Self::DEFAULT_BASE_URL);
        Anthropic { endpoint, max_tokens: Self::DEFAULT_MAX_TOKENS }
    }

    /// Configures from the environment, for examples that fall back to a scripted model:
    /// `ANTHROPIC_API_KEY`, `KERN_ANTHROPIC_BASE_URL` and `KERN_ANTHROPIC_MODEL` (default
    /// [`DEFAULT_MODEL`](Self::DEFAULT_MODEL)). `None` when neither a key nor a base URL is set.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let endpoint = Endpoint::from_vars(var, &Self::ENV, "anthropic", Self::DEFAULT_BASE_URL, Self::DEFAULT_MODEL)?;
        Some(Anthropic { endpoint, max_tokens: Self::DEFAULT_MAX_TOKENS })
    }

    endpoint_setters! {
        base_url: "The API root, such as `https://api.anthropic.com`; `/v1/messages` is appended.",
        api_key: "The key sent as `x-api-key`.",
    }

    /// The most tokens one answer may have (default [`DEFAULT_MAX_TOKENS`](Self::DEFAULT_MAX_TOKENS)).
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.endpoint.base_url)
    }

    fn body<'a>(&'a self, request: &ModelRequest<'a>) -> MessagesRequest<'a> {
        let system: Vec<&str> =
            request.messages.iter().filter(|m| m.role == Role::System).filter_map(|m| m.content.as_deref()).collect();
        MessagesRequest {
            model: &self.endpoint.model,
            max_tokens: self.max_tokens,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: turns(request.messages),
            tools: request.tools.iter().map(WireTool::from).collect(),
            temperature: self.endpoint.temperature,
            stream: false,
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let version = ("anthropic-version", Self::API_VERSION.to_owned());
        self.endpoint.api_key.iter().map(|key| ("x-api-key", key.clone())).chain([version]).collect()
    }
}

/// Shows everything but the API key.
impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic").field("endpoint", &self.endpoint).field("max_tokens", &self.max_tokens).finish()
    }
}

impl Model for Anthropic {
    fn id(&self) -> &str {
        self.endpoint.http.label()
    }

    fn respond<'a>(&'a self, request: ModelRequest<'a>) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let http = &self.endpoint.http;
            let answer: MessagesResponse = http.post_json(&self.url(), &self.headers(), &self.body(&request)).await?;
            if let Some(reason) = answer.stop_reason.as_deref().filter(|reason| CUT_SHORT.contains(reason)) {
                return Err(http.cut_short(format!("stop_reason `{reason}`"), answer.usage.into()));
            }
            Ok(answer.into_response())
        })
    }

    fn respond_streaming<'a>(
        &'a self,
        request: ModelRequest<'a>,
        deltas: &'a (dyn Fn(Delta<'_>) + Send + Sync),
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move { stream_retrying(self, &request, deltas).await })
    }
}

impl StreamsOverHttp for Anthropic {
    fn transport(&self) -> &HttpTransport {
        &self.endpoint.http
    }

    fn stream_once<'a>(
        &'a self,
        request: &'a ModelRequest<'a>,
        deltas: &'a (dyn Fn(Delta<'_>) + Send + Sync),
        retries: &'a mut Retries,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let http = &self.endpoint.http;
            let mut answer = StreamedAnswer::default();
            let body = MessagesRequest { stream: true, ..self.body(request) };
            http.post_events(&self.url(), &self.headers(), &body, retries, |event| {
                let event: StreamEvent = serde_json::from_str(&event.data)
                    .map_err(|err| http.malformed(format!("{err} in the stream event {}", quoted(&event.data))))?;
                match event {
                    StreamEvent::MessageStop => return Ok(ControlFlow::Break(())),
                    StreamEvent::Error { error } => {
                        let (message, transient) =
                            (quoted(&format!("{}: {}", error.r#type, error.message)), error.is_transient());
                        return Err(ModelError::StreamError { provider: http.label().to_owned(), message, transient });
                    }
                    event => answer.absorb(event, deltas),
                }
                Ok(ControlFlow::Continue(()))
            })
            .await?;
            if let Some(reason) = answer.stop_reason.as_deref().filter(|reason| CUT_SHORT.contains(reason)) {
                return Err(http.cut_short(format!("stop_reason `{reason}`"), answer.usage.into()));
            }
            answer.into_response().map_err(|reason| http.malformed(reason))
        })
    }
}

/// The `stop_reason`s of an answer that stopped before its end: the token limit, a refusal,
/// the model's context window full.
const CUT_SHORT: [&str; 3] = ["max_tokens", "refusal", "model_context_window_exceeded"];

/// The request body.
#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    /// Every system message, in order; the API has no system role in `messages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// One message on the wire: only two roles, content always as blocks.
#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: TurnRole,
    content: Vec<Block<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum TurnRole {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Value },
    ToolResult { tool_use_id: &'a str, content: &'a str },
}

/// The conversation as turns. Tool results become user turns, and consecutive messages of one
/// wire role merge into one turn: the API wants all results of a turn's calls in the next user
/// message. Empty text is left out, as the API refuses empty text blocks.
fn turns(messages: &[Message]) -> Vec<Turn<'_>> {
    let mut turns: Vec<Turn<'_>> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role {
            Role::System => continue,
            Role::User => (TurnRole::User, text_block(message).into_iter().collect()),
            Role::Assistant => {
                let calls = message.tool_calls.iter().map(|call| Block::ToolUse {
                    id: &call.id,
                    name: &call.name,
                    input: tool_input(&call.arguments),
                });
                (TurnRole::Assistant, text_block(message).into_iter().chain(calls).collect())
            }
            Role::Tool => {
                let result = Block::ToolResult {
                    tool_use_id: message.tool_call_id.as_deref().unwrap_or_default(),
                    content: message.content.as_deref().unwrap_or_default(),
                };
                (TurnRole::User, vec![result])
            }
        };
        match turns.last_mut() {
            _ if blocks.is_empty() => {}
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn { role, content: blocks }),
        }
    }
    turns
}

/// The text of a message as a block, unless it is empty or only white space: the API refuses
/// such a block ("text content blocks must contain non-whitespace text").
fn text_block(message: &Message) -> Option<Block<'_>> {
    message.content.as_deref().filter(|text| !text.trim().is_empty()).map(|text| Block::Text { text })
}

/// The `input` object of a `tool_use` block. Arguments the model wrote that are no JSON object
/// are sent as `{}`: the API refuses anything else, and the tool's error for them already went
/// back to the model as the call's result.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => Value::Object(Default::default()),
    }
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

impl<'a> From<&'a ToolSchema> for WireTool<'a> {
    fn from(tool: &'a ToolSchema) -> Self {
        WireTool { name: &tool.name, description: &tool.description, input_schema: &tool.parameters }
    }
}

/// The parts of the answer kern reads.
#[derive(Debug, Deserialize)]
struct MessagesResponse {
    content: Vec<AnswerBlock>,
    usage: AnswerUsage,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnswerBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking and server-tool blocks: nothing kern acts on.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct AnswerUsage {
    input_tokens: u64,
    output_tokens: u64,
}

impl From<AnswerUsage> for Usage {
    fn from(usage: AnswerUsage) -> Self {
        Usage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens }
    }
}

impl MessagesResponse {
    /// The blocks as one assistant message: text blocks joined (the API splits text freely,
    /// e.g. around citations), each `tool_use` a call with its input as JSON text.
    fn into_response(self) -> ModelResponse {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in self.content {
            match block {
                AnswerBlock::Text { text: part } => text.push_str(&part),
                AnswerBlock::ToolUse { id, name, input } => {
                    tool_calls.push(ToolCall { id, name, arguments: input.to_string() })
                }
                AnswerBlock::Other => {}
            }
        }
        let message = Message {
            role: Role::Assistant,
            content: (!text.is_empty()).then_some(text),
            tool_calls,
            tool_call_id: None,
            name: None,
        };
        ModelResponse { message, usage: self.usage.into() }
    }
}

/// What a `message_delta` says of the whole answer.
#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// One event of a streamed answer, read by its `type` (the SSE event name repeats it).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartedBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    /// Counts so far: they grow over the answer, the last is the answer's. It also says why
    /// the answer stops.
    MessageDelta {
        usage: StreamedUsage,
        #[serde(default)]
        delta: MessageDeltaBody,
    },
    MessageStop,
    Error {
        error: StreamedError,
    },
    /// `ping`, `content_block_stop` and event types added later: nothing to read.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct StartedMessage {
    usage: StreamedUsage,
}

#[derive(Debug, Default, Deserialize)]
struct StreamedUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl From<StreamedUsage> for AnswerUsage {
    fn from(usage: StreamedUsage) -> Self {
        AnswerUsage {
            input_tokens: usage.input_tokens.unwrap_or_default(),
            output_tokens: usage.output_tokens.unwrap_or_default(),
        }
    }
}

impl From<StreamedUsage> for Usage {
    fn from(usage: StreamedUsage) -> Self {
        AnswerUsage::from(usage).into()
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartedBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    /// `input` is `{}` here; the input arrives as JSON text in `input_json_delta`s.
    ToolUse { id: String, name: String, input: Value },
    /// Thinking (whose text comes in deltas) and server-tool blocks.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    /// Signatures and citations: nothing kern acts on.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct StreamedError {
    r#type: String,
    message: String,
}

impl StreamedError {
    /// Whether asking again may succeed: Anthropic's kinds for an overloaded service, a failure
    /// on its side and a rate limit (HTTP 529, 500 and 429 before an answer begins).
    fn is_transient(&self) -> bool {
        matches!(self.r#type.as_str(), "overloaded_error" | "api_error" | "rate_limit_error")
    }
}

/// The blocks and counts of a streamed answer gathered so far.
#[derive(Debug, Default)]
struct StreamedAnswer {
    /// Blocks by their index in the answer.
    blocks: BTreeMap<usize, StreamedBlock>,
    usage: StreamedUsage,
    stop_reason: Option<String>,
}

#[derive(Debug)]
enum StreamedBlock {
    Text(String),
    /// A tool call: the input from the start event, then the JSON text of its deltas.
    ToolUse {
        id: String,
        name: String,
        input: Value,
        json: String,
    },
}

impl StreamedAnswer {
    /// Adds an event, handing its text and thinking to `deltas`.
    fn absorb(&mut self, event: StreamEvent, deltas: &(dyn Fn(Delta<'_>) + Send + Sync)) {
        match event {
            StreamEvent::MessageStart { message } => self.usage = message.usage,
            StreamEvent::MessageDelta { usage, delta } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.usage.input_tokens = usage.input_tokens.or(self.usage.input_tokens);
                self.usage.output_tokens = usage.output_tokens.or(self.usage.output_tokens);
            }
            StreamEvent::ContentBlockStart { index, content_block: StartedBlock::Text { text } } => {
                if !text.is_empty() {
                    deltas(Delta::Text(&text));
                }
                self.blocks.insert(index, StreamedBlock::Text(text));
            }
            StreamEvent::ContentBlockStart { index, content_block: StartedBlock::ToolUse { id, name, input } } => {
                self.blocks.insert(index, StreamedBlock::ToolUse { id, name, input, json: String::new() });
            }
            StreamEvent::ContentBlockDelta { index, delta } => match (self.blocks.get_mut(&index), delta) {
                (Some(StreamedBlock::Text(text)), BlockDelta::TextDelta { text: piece }) => {
                    deltas(Delta::Text(&piece));
                    text.push_str(&piece);
                }
                (Some(StreamedBlock::ToolUse { json, .. }), BlockDelta::InputJsonDelta { partial_json }) => {
                    json.push_str(&partial_json);
                }
                (_, BlockDelta::ThinkingDelta { thinking }) => deltas(Delta::Reasoning(&thinking)),
                _ => {}
            },
            _ => {}
        }
    }

    /// The whole answer, as [`MessagesResponse::into_response`] reads the same answer
    /// unstreamed; a tool call's JSON text that does not parse is malformed.
    fn into_response(self) -> Result<ModelResponse, String> {
        let content = self
            .blocks
            .into_values()
            .map(|block| match block {
                StreamedBlock::Text(text) => Ok(AnswerBlock::Text { text }),
                StreamedBlock::ToolUse { id, name, input, json } if json.trim().is_empty() => {
                    Ok(AnswerBlock::ToolUse { id, name, input })
                }
                StreamedBlock::ToolUse { id, name, json, .. } => match serde_json::from_str(&json) {
                    Ok(input) => Ok(AnswerBlock::ToolUse { id, name, input }),
                    Err(err) => Err(format!("the input of tool call {id} is no JSON ({err}): {}", quoted(&json))),
                },
            })
            .collect::<Result<_, _>>()?;
        let usage = AnswerUsage::from(self.usage);
        Ok(MessagesResponse { content, usage, stop_reason: self.stop_reason }.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body_json(model: &Anthropic, messages: &[Message], tools: &[ToolSchema]) -> Value {
        serde_json::to_value(model.body(&ModelRequest { messages, tools })).unwrap()
    }

    #[test]
    fn request_has_the_messages_shape() {
        let messages = vec![
            Message::system("Be brief."),
            Message::user("Weather in Paris and Rome?"),
            Message {
                role: Role::Assistant,
                content: Some("Checking both.".into()),
                tool_calls: vec![
                    ToolCall { id: "toolu_a".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
                    ToolCall { id: "toolu_b".into(), name: "weather".into(), arguments: "{not json".into() },
                ],
                tool_call_id: None,
                name: None,
            },
            Message::tool_result("toolu_a", "weather", "sunny"),
            Message::tool_result("toolu_b", "weather", "error: bad arguments"),
        ];
        let tools = vec![ToolSchema {
            name: "weather".into(),
            description: "Current weather of a city.".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }];
        let model = Anthropic::new("claude-test").temperature(0.5);
        assert_eq!(
            body_json(&model, &messages, &tools),
            json!({
                "model": "claude-test",
                "max_tokens": 4096,
                "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking both."},
                        {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
                        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "error: bad arguments"},
                    ]},
                ],
                "tools": [{
                    "name": "weather",
                    "description": "Current weather of a city.",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }],
                "temperature": 0.5,
            })
        );
    }

    #[test]
    fn system_messages_join_and_empty_text_is_dropped() {
        let messages = vec![
            Message::system("One."),
            Message::system("Two."),
            Message::user("hi"),
            Message::assistant(""),
            Message::user("again"),
        ];
        let model = Anthropic::new("claude-test").max_tokens(10);
        assert_eq!(
            body_json(&model, &messages, &[]),
            json!({
                "model": "claude-test",
                "max_tokens": 10,
                "system": "One.\n\nTwo.",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "text", "text": "again"},
                ]}],
            })
        );
    }

    #[test]
    fn text_of_white_space_only_is_left_out() {
        assert!(text_block(&Message::assistant(" \n\t")).is_none());
        assert!(text_block(&Message::user("")).is_none());
        assert!(text_block(&Message::user(" hi ")).is_some());
    }

    #[test]
    fn only_json_objects_become_tool_input() {
        assert_eq!(tool_input(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(tool_input("[1, 2]"), json!({}));
        assert_eq!(tool_input(""), json!({}));
    }

    fn parse(answer: Value) -> ModelResponse {
        serde_json::from_value::<MessagesResponse>(answer).unwrap().into_response()
    }

    #[test]
    fn parses_text_and_usage() {
        let response = parse(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there!"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 3},
        }));
        assert_eq!(response.message, Message::assistant("Hello there!"));
        assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 3 });
    }

    #[test]
    fn parses_parallel_tool_use_and_skips_unknown_blocks() {
        let response = parse(json!({
            "content": [
                {"type": "thinking", "thinking": "two cities", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 20, "output_tokens": 10},
        }));
        assert_eq!(response.message.content, None);
        assert_eq!(
            response.message.tool_calls,
            vec![
                ToolCall { id: "toolu_1".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
                ToolCall { id: "toolu_2".into(), name: "weather".into(), arguments: r#"{"city":"Rome"}"#.into() },
            ]
        );
    }

    #[test]
    fn headers_carry_the_key_and_version() {
        let model = Anthropic::new("m").api_key("sk-ant");
        assert_eq!(
            model.headers(),
            vec![("x-api-key", "sk-ant".to_owned()), ("anthropic-version", "2023-06-01".to_owned())]
        );
        assert!(!format!("{model:?}").contains("sk-ant"));
    }

    #[test]
    fn from_env_needs_a_key_or_a_base_url() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(Anthropic::from_vars(vars(&[])).is_none());
        let model = Anthropic::from_vars(vars(&[("ANTHROPIC_API_KEY", "sk-ant")])).unwrap();
        assert_eq!(model.id(), "anthropic:claude-haiku-4-5");
        assert_eq!(model.endpoint.base_url, Anthropic::DEFAULT_BASE_URL);
        let proxied = Anthropic::from_vars(vars(&[
            ("KERN_ANTHROPIC_BASE_URL", "http://proxy.local/"),
            ("KERN_ANTHROPIC_MODEL", "claude-x"),
        ]))
        .unwrap();
        assert_eq!(proxied.id(), "anthropic:claude-x");
        assert_eq!(proxied.endpoint.base_url, "http://proxy.local");
        assert_eq!(proxied.headers(), vec![("anthropic-version", "2023-06-01".to_owned())]);
    }
}
