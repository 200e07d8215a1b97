//! The OpenAI-compatible chat-completions provider.
//!
//! Speaks `POST {base_url}/chat/completions`, the dialect OpenAI, Ollama, vLLM, the llama.cpp
//! server and OpenRouter share.

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::http::{
    Endpoint, EnvVars, HttpTransport, Retries, StreamsOverHttp, endpoint_setters, quoted, stream_retrying,
};
use super::{Delta, Message, Model, ModelError, ModelRequest, ModelResponse, Role, ToolCall, ToolSchema, Usage};
use crate::BoxFuture;

/// A chat-completions provider.
///
/// ```no_run
/// use kern_core::models::OpenAiCompatible;
///
/// // OpenAI itself:
/// let openai = OpenAiCompatible::new("gpt-4o-mini").api_key("sk-...");
/// // A local Ollama, which needs no key:
/// let ollama = OpenAiCompatible::new("llama3.1").base_url("http://localhost:11434/v1");
/// # let _ = (openai, ollama);
/// ```
#[derive(Clone)]
pub struct OpenAiCompatible {
    endpoint: Endpoint,
    token_limit: Option<TokenLimit>,
}

/// The most tokens one answer may have, under the field that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenLimit {
    /// `max_tokens`, which OpenAI-compatible servers read.
    MaxTokens(u32),
    /// `max_completion_tokens`, OpenAI's own, which its reasoning models require.
    MaxCompletionTokens(u32),
}

impl OpenAiCompatible {
    /// Where OpenAI itself listens.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";
    /// The model [`from_env`](Self::from_env) picks when `KERN_OPENAI_MODEL` is unset: cheap and
    /// good at tool calls.
    pub const DEFAULT_MODEL: &'static str = "gpt-4o-mini";
    const ENV: EnvVars =
        EnvVars { api_key: "OPENAI_API_KEY", base_url: "KERN_OPENAI_BASE_URL", model: "KERN_OPENAI_MODEL" };

    /// A provider for `model` on OpenAI, without an API key, a 120s timeout and the default
    /// [`RetryPolicy`](super::RetryPolicy).
    pub fn new(model: impl Into<String>) -> Self {
        OpenAiCompatible { endpoint: Endpoint::new("openai", model.into(), Self::DEFAULT_BASE_URL), token_limit: None }
    }

    /// Configures from the environment, for examples that fall back to a scripted model:
    /// `OPENAI_API_KEY`, `KERN_OPENAI_BASE_URL` and `KERN_OPENAI_MODEL` (default
    /// [`DEFAULT_MODEL`](Self::DEFAULT_MODEL)). `None` when neither a key nor a base URL is set.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let endpoint = Endpoint::from_vars(var, &Self::ENV, "openai", Self::DEFAULT_BASE_URL, Self::DEFAULT_MODEL)?;
        Some(OpenAiCompatible { endpoint, token_limit: None })
    }

    endpoint_setters! {
        base_url: "The API root, such as `http://localhost:11434/v1`; `/chat/completions` is appended.",
        api_key: "The key sent as `Authorization: Bearer`. Local servers need none.",
    }

    /// The most tokens one answer may have, sent as `max_tokens`, which OpenAI-compatible
    /// servers (Ollama, vLLM, llama.cpp...) read; the server's default when unset. OpenAI's
    /// reasoning models refuse it: use [`max_completion_tokens`](Self::max_completion_tokens).
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.token_limit = Some(TokenLimit::MaxTokens(max_tokens));
        self
    }

    /// The most tokens one answer may have (reasoning included), sent as
    /// `max_completion_tokens`: OpenAI's own field, which its reasoning models require. Replaces
    /// [`max_tokens`](Self::max_tokens).
    pub fn max_completion_tokens(mut self, max_tokens: u32) -> Self {
        self.token_limit = Some(TokenLimit::MaxCompletionTokens(max_tokens));
        self
    }

    fn body<'a>(&'a self, request: &ModelRequest<'a>) -> ChatRequest<'a> {
        ChatRequest {
            model: &self.endpoint.model,
            messages: request.messages.iter().map(WireMessage::from).collect(),
            tools: request.tools.iter().map(WireTool::from).collect(),
            temperature: self.endpoint.temperature,
            max_tokens: match self.token_limit {
                Some(TokenLimit::MaxTokens(limit)) => Some(limit),
                _ => None,
            },
            max_completion_tokens: match self.token_limit {
                Some(TokenLimit::MaxCompletionTokens(limit)) => Some(limit),
                _ => None,
            },
            stream: false,
            stream_options: None,
        }
    }

    /// The request body asking for the answer as server-sent events, usage included.
    fn streaming_body<'a>(&'a self, request: &ModelRequest<'a>) -> ChatRequest<'a> {
        ChatRequest { stream: true, stream_options: Some(StreamOptions { include_usage: true }), ..self.body(request) }
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.endpoint.base_url)
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        self.endpoint.api_key.iter().map(|key| ("authorization", format!("Bearer {key}"))).collect()
    }
}

/// Shows everything but the API key.
impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("endpoint", &self.endpoint)
            .field("token_limit", &self.token_limit)
            .finish()
    }
}

impl Model for OpenAiCompatible {
    fn id(&self) -> &str {
        self.endpoint.http.label()
    }

    fn respond<'a>(&'a self, request: ModelRequest<'a>) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let http = &self.endpoint.http;
            let answer: ChatResponse = http.post_json(&self.url(), &self.headers(), &self.body(&request)).await?;
            answer.into_whole(http)
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

impl StreamsOverHttp for OpenAiCompatible {
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
            let body = self.streaming_body(request);
            http.post_events(&self.url(), &self.headers(), &body, retries, |event| {
                if event.data.trim() == "[DONE]" {
                    return Ok(ControlFlow::Break(()));
                }
                let chunk: ChatChunk = serde_json::from_str(&event.data)
                    .map_err(|err| http.malformed(format!("{err} in the stream chunk {}", quoted(&event.data))))?;
                if let Some(error) = chunk.error {
                    return Err(ModelError::StreamError {
                        provider: http.label().to_owned(),
                        message: error_message(&error),
                        transient: error_is_transient(&error),
                    });
                }
                answer.absorb(chunk, deltas);
                Ok(ControlFlow::Continue(()))
            })
            .await?;
            answer.into_chat().map_err(|reason| http.malformed(reason))?.into_whole(http)
        })
    }
}

/// The `finish_reason`s of an answer that stopped before its end: the token limit, the filter.
const CUT_SHORT: [&str; 2] = ["length", "content_filter"];

/// The request body.
#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

/// Asks a streamed answer to end with a chunk of usage; without it there is none.
#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// A message as sent. Tool messages carry only `tool_call_id`: OpenAI's schema has no `name`
/// on them and strict servers refuse unknown fields.
#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: Role,
    /// `null` only on an assistant message without text, which the API allows there alone.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> From<&'a Message> for WireMessage<'a> {
    fn from(message: &'a Message) -> Self {
        let content = match (message.role, message.content.as_deref()) {
            (Role::Assistant, content) => content,
            (_, content) => Some(content.unwrap_or_default()),
        };
        WireMessage {
            role: message.role,
            content,
            tool_calls: message.tool_calls.iter().map(WireToolCall::from).collect(),
            tool_call_id: match message.role {
                Role::Tool => Some(message.tool_call_id.as_deref().unwrap_or_default()),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    /// The raw JSON text as the model wrote it, when it is a JSON object (see [`arguments`]).
    arguments: &'a str,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(call: &'a ToolCall) -> Self {
        WireToolCall {
            id: &call.id,
            r#type: "function",
            function: WireFunctionCall { name: &call.name, arguments: arguments(&call.arguments) },
        }
    }
}

/// The `arguments` of a call sent back in the conversation: as the model wrote them when they
/// are a JSON object, else `{}`. Servers such as Ollama and llama.cpp refuse a conversation with
/// arguments they cannot parse, and the tool's error for them already went back to the model as
/// the call's result.
fn arguments(written: &str) -> &str {
    let is_object =
        written.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(written).is_ok();
    if is_object { written } else { "{}" }
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

impl<'a> From<&'a ToolSchema> for WireTool<'a> {
    fn from(tool: &'a ToolSchema) -> Self {
        WireTool {
            r#type: "function",
            function: WireFunction { name: &tool.name, description: &tool.description, parameters: &tool.parameters },
        }
    }
}

/// The parts of the answer kern reads.
#[derive(Debug, Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    /// Some compatible servers omit it; then nothing is counted.
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: AnswerMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<AnswerToolCall>>,
    /// Why the model declined to answer, in its words (with `finish_reason` `stop`).
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnswerToolCall {
    /// Some local servers leave it out; see [`ChatResponse::into_response`].
    #[serde(default, deserialize_with = "null_as_default")]
    id: String,
    function: AnswerFunction,
}

#[derive(Debug, Deserialize)]
struct AnswerFunction {
    name: String,
    /// A JSON string per the API; some servers send the object itself, or nothing for a call
    /// without arguments.
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Deserialize)]
struct ChatUsage {
    #[serde(default, deserialize_with = "null_as_default")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    completion_tokens: u64,
}

/// A field some compatible servers send as `null`: read as its default, as if left out.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The tokens an answer counted; none when the server sent no count.
fn counted(usage: Option<ChatUsage>) -> Usage {
    usage.map_or_else(Usage::default, |usage| Usage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
    })
}

impl ChatResponse {
    /// The answer as kern's response, unless it stopped before its end (its `finish_reason`
    /// says so, or the model refused) or is malformed.
    fn into_whole(self, http: &HttpTransport) -> Result<ModelResponse, ModelError> {
        let choice = self.choices.first();
        let finished = choice.and_then(|choice| choice.finish_reason.as_deref());
        let refusal = choice.and_then(|choice| choice.message.refusal.as_deref()).filter(|text| !text.is_empty());
        let short = match (finished.filter(|reason| CUT_SHORT.contains(reason)), refusal) {
            (Some(reason), _) => Some(format!("finish_reason `{reason}`")),
            (None, Some(refusal)) => Some(format!("refusal: {}", quoted(refusal))),
            (None, None) => None,
        };
        match short {
            Some(reason) => Err(http.cut_short(reason, counted(self.usage))),
            None => self.into_response().map_err(|reason| http.malformed(reason)),
        }
    }

    /// The first choice as kern's assistant message. Empty text counts as none, and a call
    /// without an id gets `call_{n}` so its result can still refer to it.
    fn into_response(self) -> Result<ModelResponse, String> {
        let choice = self.choices.into_iter().next().ok_or("`choices` is empty")?;
        let tool_calls = choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, call)| ToolCall {
                id: if call.id.is_empty() { format!("call_{i}") } else { call.id },
                name: call.function.name,
                arguments: match call.function.arguments {
                    Value::String(text) => text,
                    Value::Null => "{}".to_owned(),
                    object => object.to_string(),
                },
            })
            .collect();
        let message = Message {
            role: Role::Assistant,
            content: choice.message.content.filter(|text| !text.is_empty()),
            tool_calls,
            tool_call_id: None,
            name: None,
        };
        Ok(ModelResponse { message, usage: counted(self.usage) })
    }
}

/// One chunk of a streamed answer: a piece of the first choice, the usage at the end, or an
/// error the server met mid-answer.
#[derive(Debug, Deserialize)]
struct ChatChunk {
    #[serde(default, deserialize_with = "null_as_default")]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default, deserialize_with = "null_as_default")]
    delta: ChunkDelta,
    /// Set on the answer's last chunk of text or calls.
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    /// Reasoning as DeepSeek and vLLM name it.
    #[serde(default)]
    reasoning_content: Option<String>,
    /// Reasoning as Ollama and OpenRouter name it.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChunkToolCall>>,
    /// A piece of the model's refusal.
    #[serde(default)]
    refusal: Option<String>,
}

/// A piece of a tool call: the first carries the id and name, the arguments come in fragments.
#[derive(Debug, Deserialize)]
struct ChunkToolCall {
    /// Which call of the answer the piece belongs to; servers that leave it out send each call
    /// whole, in order.
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChunkFunction>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkFunction {
    #[serde(default)]
    name: Option<String>,
    /// A fragment of JSON text; some servers send the arguments whole, as an object.
    #[serde(default)]
    arguments: Value,
}

/// The pieces of a streamed answer gathered so far.
#[derive(Debug, Default)]
struct StreamedAnswer {
    /// Whether any chunk carried a choice: an answer without one is as malformed as a
    /// response with empty `choices`.
    chosen: bool,
    content: String,
    /// The calls, in the order they began.
    tool_calls: Vec<StreamedCall>,
    /// Where in `tool_calls` stands the call each index of the provider's names: the latest
    /// begun under it, as some servers (Ollama) send every call whole under index 0.
    slots: HashMap<usize, usize>,
    usage: Option<ChatUsage>,
    finish_reason: Option<String>,
    /// The model's refusal, kept from the listener: it is no answer.
    refusal: String,
}

#[derive(Debug, Default)]
struct StreamedCall {
    id: String,
    name: String,
    /// `None` until a fragment arrives, as `arguments` is absent from a whole answer.
    arguments: Option<String>,
}

impl StreamedAnswer {
    /// Adds a chunk, handing its text and reasoning to `deltas`.
    fn absorb(&mut self, chunk: ChatChunk, deltas: &(dyn Fn(Delta<'_>) + Send + Sync)) {
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.into_iter().next() else { return };
        self.chosen = true;
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
        let delta = choice.delta;
        // One of the two names: a server that fills both with the same text would show it twice.
        let reasoning = delta.reasoning_content.filter(|text| !text.is_empty()).or(delta.reasoning);
        if let Some(reasoning) = reasoning.filter(|text| !text.is_empty()) {
            deltas(Delta::Reasoning(&reasoning));
        }
        if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
            deltas(Delta::Text(&text));
            self.content.push_str(&text);
        }
        if let Some(refusal) = delta.refusal {
            self.refusal.push_str(&refusal);
        }
        for piece in delta.tool_calls.unwrap_or_default() {
            let id = piece.id.filter(|id| !id.is_empty());
            let function = piece.function.unwrap_or_default();
            let name = function.name.as_deref().filter(|name| !name.is_empty());
            let call = self.call_of(piece.index, id.as_deref(), name.is_some());
            if let Some(id) = id {
                call.id = id;
            }
            if let Some(name) = function.name.filter(|name| !name.is_empty()) {
                call.name = name;
            }
            match function.arguments {
                Value::Null => {}
                Value::String(fragment) => call.arguments.get_or_insert_default().push_str(&fragment),
                whole => call.arguments.get_or_insert_default().push_str(&whole.to_string()),
            }
        }
    }

    /// The call a piece under `index` with `id` belongs to: the one begun under that index,
    /// unless the piece begins another call there (it names another id and, `named`, a tool,
    /// while the call begun has one: servers that send every call whole under index 0; a
    /// changing id alone, which some servers send with every fragment, begins nothing); a new
    /// one for a piece without an index (servers that leave it out send each call whole).
    fn call_of(&mut self, index: Option<usize>, id: Option<&str>, named: bool) -> &mut StreamedCall {
        let begun = index.and_then(|index| self.slots.get(&index)).copied();
        let slot = match begun {
            Some(slot)
                if !named
                    || self.tool_calls[slot].name.is_empty()
                    || id.is_none_or(|id| self.tool_calls[slot].id.is_empty() || self.tool_calls[slot].id == id) =>
            {
                slot
            }
            _ => {
                self.tool_calls.push(StreamedCall::default());
                let slot = self.tool_calls.len() - 1;
                if let Some(index) = index {
                    self.slots.insert(index, slot);
                }
                slot
            }
        };
        &mut self.tool_calls[slot]
    }

    /// The answer as the same answer unstreamed reads.
    fn into_chat(self) -> Result<ChatResponse, String> {
        if !self.chosen {
            return Err("the stream carried no choice".to_owned());
        }
        let tool_calls = self
            .tool_calls
            .into_iter()
            .map(|call| AnswerToolCall {
                id: call.id,
                function: AnswerFunction {
                    name: call.name,
                    arguments: call.arguments.map_or(Value::Null, Value::String),
                },
            })
            .collect();
        let refusal = Some(self.refusal).filter(|text| !text.is_empty());
        let message = AnswerMessage { content: Some(self.content), tool_calls: Some(tool_calls), refusal };
        let choices = vec![Choice { message, finish_reason: self.finish_reason }];
        Ok(ChatResponse { choices, usage: self.usage })
    }
}

/// An error object's message, with its type when it has one; the whole object otherwise. As
/// quoted: it is the server's text.
fn error_message(error: &Value) -> String {
    quoted(&match (error["type"].as_str(), error["message"].as_str()) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (None, Some(message)) => message.to_owned(),
        _ => error.to_string(),
    })
}

/// Whether an error object says that asking again may succeed: a failure on the server's side,
/// or a rate limit.
fn error_is_transient(error: &Value) -> bool {
    error["type"].as_str() == Some("server_error") || error["code"].as_str() == Some("rate_limit_exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_errors_and_rate_limits_are_worth_asking_again_and_other_errors_are_not() {
        let server = json!({"type": "server_error", "message": "The server had an error", "code": null});
        let limited = json!({"type": "tokens", "message": "Rate limit reached", "code": "rate_limit_exceeded"});
        let invalid = json!({"type": "invalid_request_error", "message": "bad", "code": "context_length_exceeded"});
        assert!(error_is_transient(&server));
        assert!(error_is_transient(&limited));
        assert!(!error_is_transient(&invalid));
    }

    fn conversation() -> Vec<Message> {
        vec![
            Message::system("Be brief."),
            Message::user("Weather in Paris and Rome?"),
            Message {
                role: Role::Assistant,
                content: None,
                tool_calls: vec![
                    ToolCall { id: "call_a".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
                    ToolCall { id: "call_b".into(), name: "weather".into(), arguments: "{not json".into() },
                ],
                tool_call_id: None,
                name: None,
            },
            Message::tool_result("call_a", "weather", "sunny"),
            Message::tool_result("call_b", "weather", "error: bad arguments"),
        ]
    }

    fn tools() -> Vec<ToolSchema> {
        vec![ToolSchema {
            name: "weather".into(),
            description: "Current weather of a city.".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }]
    }

    fn body_json(model: &OpenAiCompatible, messages: &[Message], tools: &[ToolSchema]) -> Value {
        serde_json::to_value(model.body(&ModelRequest { messages, tools })).unwrap()
    }

    #[test]
    fn request_has_the_chat_completions_shape() {
        let model = OpenAiCompatible::new("gpt-test").temperature(0.5).max_tokens(100);
        assert_eq!(
            body_json(&model, &conversation(), &tools()),
            json!({
                "model": "gpt-test",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Paris and Rome?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_a", "type": "function",
                         "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_b", "type": "function",
                         "function": {"name": "weather", "arguments": "{}"}},
                    ]},
                    {"role": "tool", "content": "sunny", "tool_call_id": "call_a"},
                    {"role": "tool", "content": "error: bad arguments", "tool_call_id": "call_b"},
                ],
                "tools": [{"type": "function", "function": {
                    "name": "weather",
                    "description": "Current weather of a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                }}],
                "temperature": 0.5,
                "max_tokens": 100,
            })
        );
    }

    #[test]
    fn only_arguments_that_are_a_json_object_are_sent_back_as_written() {
        assert_eq!(arguments(r#" {"city": "Paris"}"#), r#" {"city": "Paris"}"#);
        for unparsable in ["", "{not json", "[1, 2]", "null", r#"{"a": 1} trailing"#] {
            assert_eq!(arguments(unparsable), "{}", "{unparsable:?}");
        }
    }

    #[test]
    fn the_token_limit_goes_under_the_field_asked_for() {
        let body = |model: OpenAiCompatible| body_json(&model, &[Message::user("hi")], &[]);
        let reasoning = body(OpenAiCompatible::new("o3").max_tokens(50).max_completion_tokens(200));
        assert_eq!((reasoning.get("max_tokens"), &reasoning["max_completion_tokens"]), (None, &json!(200)));
        let compatible = body(OpenAiCompatible::new("llama3.1").max_completion_tokens(200).max_tokens(50));
        assert_eq!((&compatible["max_tokens"], compatible.get("max_completion_tokens")), (&json!(50), None));
    }

    #[test]
    fn unset_options_and_no_tools_are_left_out() {
        let model = OpenAiCompatible::new("gpt-test");
        assert_eq!(
            body_json(&model, &[Message::user("hi")], &[]),
            json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    fn parse(answer: Value) -> Result<ModelResponse, String> {
        serde_json::from_value::<ChatResponse>(answer).unwrap().into_response()
    }

    #[test]
    fn parses_text_and_usage() {
        let response = parse(json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }))
        .unwrap();
        assert_eq!(response.message, Message::assistant("Hello!"));
        assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 3 });
    }

    #[test]
    fn parses_parallel_tool_calls_with_null_content() {
        let response = parse(json!({
            "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10},
        }))
        .unwrap();
        assert_eq!(response.message.content, None);
        assert_eq!(
            response.message.tool_calls,
            vec![
                ToolCall { id: "call_1".into(), name: "weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
                ToolCall { id: "call_2".into(), name: "weather".into(), arguments: r#"{"city":"Rome"}"#.into() },
            ]
        );
    }

    #[test]
    fn tolerates_what_local_servers_leave_out() {
        let response = parse(json!({
            "choices": [{"message": {"content": "", "tool_calls": [
                {"function": {"name": "now", "arguments": {"tz": "UTC"}}},
                {"function": {"name": "ping"}},
            ]}}],
        }))
        .unwrap();
        assert_eq!(response.message.content, None);
        assert_eq!(
            response.message.tool_calls,
            vec![
                ToolCall { id: "call_0".into(), name: "now".into(), arguments: r#"{"tz":"UTC"}"#.into() },
                ToolCall { id: "call_1".into(), name: "ping".into(), arguments: "{}".into() },
            ]
        );
        assert_eq!(response.usage, Usage::default());
        // Or send them as `null`.
        let response = parse(json!({
            "choices": [{"message": {"content": null, "tool_calls": [{"id": null, "function": {"name": "ping"}}]}}],
            "usage": {"prompt_tokens": null, "completion_tokens": 3},
        }))
        .unwrap();
        assert_eq!(response.message.tool_calls[0].id, "call_0");
        assert_eq!(response.usage, Usage { input_tokens: 0, output_tokens: 3 });
        let chunk: ChatChunk = serde_json::from_value(json!({"choices": null, "usage": null})).unwrap();
        assert!(chunk.choices.is_empty());
        let chunk: ChatChunk = serde_json::from_value(json!({"choices": [{"delta": null}]})).unwrap();
        assert_eq!(chunk.choices[0].delta.content, None);
    }

    #[test]
    fn no_choice_is_malformed() {
        assert_eq!(parse(json!({"choices": []})).unwrap_err(), "`choices` is empty");
    }

    #[test]
    fn from_env_needs_a_key_or_a_base_url() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(OpenAiCompatible::from_vars(vars(&[])).is_none());
        assert!(OpenAiCompatible::from_vars(vars(&[("OPENAI_API_KEY", "  ")])).is_none());

        let openai = OpenAiCompatible::from_vars(vars(&[("OPENAI_API_KEY", "sk-test\n")])).unwrap();
        assert_eq!(openai.id(), "openai:gpt-4o-mini");
        assert_eq!(openai.endpoint.base_url, OpenAiCompatible::DEFAULT_BASE_URL);
        assert_eq!(openai.headers(), vec![("authorization", "Bearer sk-test".to_owned())]);

        let local = OpenAiCompatible::from_vars(vars(&[
            ("KERN_OPENAI_BASE_URL", "http://localhost:11434/v1/"),
            ("KERN_OPENAI_MODEL", "llama3.1"),
        ]))
        .unwrap();
        assert_eq!(local.id(), "openai:llama3.1");
        assert_eq!(local.endpoint.base_url, "http://localhost:11434/v1");
        assert!(local.headers().is_empty());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let debug = format!("{:?}", OpenAiCompatible::new("m").api_key("sk-secret"));
        assert!(!debug.contains("sk-secret"), "{debug}");
    }

    fn streamed(chunks: Vec<Value>) -> (Result<ModelResponse, String>, Vec<String>) {
        let received = std::sync::Mutex::new(Vec::new());
        let deltas = |delta: Delta<'_>| received.lock().unwrap().push(format!("{delta:?}"));
        let mut answer = StreamedAnswer::default();
        for chunk in chunks {
            answer.absorb(serde_json::from_value(chunk).unwrap(), &deltas);
        }
        (answer.into_chat().and_then(ChatResponse::into_response), received.into_inner().unwrap())
    }

    #[test]
    fn streamed_calls_without_an_index_follow_one_another() {
        let (response, received) = streamed(vec![
            json!({"choices": [{"delta": {"role": "assistant", "content": null, "tool_calls": null}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"function": {"name": "now", "arguments": {"tz": "UTC"}}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"function": {"name": "ping"}}]}}]}),
        ]);
        assert!(received.is_empty());
        assert_eq!(
            response.unwrap().message.tool_calls,
            vec![
                ToolCall { id: "call_0".into(), name: "now".into(), arguments: r#"{"tz":"UTC"}"#.into() },
                ToolCall { id: "call_1".into(), name: "ping".into(), arguments: "{}".into() },
            ]
        );
    }

    #[test]
    fn calls_sent_whole_under_one_index_stay_apart() {
        let call = |id: &str, city: &str| {
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": id,
                "function": {"name": "weather", "arguments": json!({"city": city}).to_string()}}]}}]})
        };
        let (response, _) = streamed(vec![call("call_a", "Paris"), call("call_b", "Rome")]);
        let calls: Vec<(String, String)> =
            response.unwrap().message.tool_calls.into_iter().map(|call| (call.id, call.arguments)).collect();
        assert_eq!(
            calls,
            [
                ("call_a".to_owned(), r#"{"city":"Paris"}"#.to_owned()),
                ("call_b".to_owned(), r#"{"city":"Rome"}"#.to_owned())
            ]
        );
    }

    #[test]
    fn an_id_that_changes_between_fragments_begins_no_call() {
        let fragment = |id: &str, name: Option<&str>, arguments: &str| {
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": id,
                "function": {"name": name, "arguments": arguments}}]}}]})
        };
        let (response, _) = streamed(vec![
            fragment("call_a", Some("weather"), ""),
            fragment("call_b", None, "{\"city\":"),
            fragment("call_c", None, "\"Oslo\"}"),
        ]);
        let calls = response.unwrap().message.tool_calls;
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!((calls[0].name.as_str(), calls[0].arguments.as_str()), ("weather", r#"{"city":"Oslo"}"#));
    }

    #[test]
    fn a_stream_without_a_choice_is_malformed() {
        let (response, _) = streamed(vec![json!({"choices": [], "usage": {"prompt_tokens": 1}})]);
        assert_eq!(response.unwrap_err(), "the stream carried no choice");
    }
}
