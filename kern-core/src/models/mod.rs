//! Models: the trait the loops talk to, the shipped providers and a scripted model.

mod anthropic;
mod error;
mod http;
mod openai;
mod scripted;
mod sse;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BoxFuture;

pub use anthropic::Anthropic;
pub use error::ModelError;
pub use http::{MAX_ANSWER_BYTES, MAX_ERROR_BODY_BYTES, MAX_STREAM_DURATION, RetryPolicy};
pub use openai::OpenAiCompatible;
pub use scripted::{Reply, ScriptedModel};

/// A chat model that can call tools.
///
/// Object-safe; agents hold models as `Arc<dyn Model>`, and one instance serves many
/// concurrent runs.
pub trait Model: Send + Sync + 'static {
    /// A short name for logs and spans, such as `openai:gpt-4o-mini`.
    fn id(&self) -> &str;

    /// Answers the conversation: text, tool calls, or both.
    fn respond<'a>(&'a self, request: ModelRequest<'a>) -> BoxFuture<'a, Result<ModelResponse, ModelError>>;

    /// Answers as [`respond`](Model::respond) does, handing each piece of text (and of
    /// reasoning, where the provider shows it) to `deltas` as it arrives, and then the whole
    /// answer. What `deltas` received, joined, is the answer's text.
    ///
    /// This default answers in one piece: a model that cannot stream still serves a streaming
    /// run. The shipped providers stream (server-sent events) and the scripted model hands out
    /// its text a word at a time.
    fn respond_streaming<'a>(
        &'a self,
        request: ModelRequest<'a>,
        deltas: &'a (dyn Fn(Delta<'_>) + Send + Sync),
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let response = self.respond(request).await?;
            if let Some(text) = response.message.content.as_deref().filter(|text| !text.is_empty()) {
                deltas(Delta::Text(text));
            }
            Ok(response)
        })
    }
}

/// A piece of an answer, as a streaming model produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta<'a> {
    /// Text of the answer.
    Text(&'a str),
    /// Reasoning the model shows before it answers (not part of the answer).
    Reasoning(&'a str),
}

impl<M: Model + ?Sized> Model for std::sync::Arc<M> {
    fn id(&self) -> &str {
        (**self).id()
    }

    fn respond<'a>(&'a self, request: ModelRequest<'a>) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        (**self).respond(request)
    }

    fn respond_streaming<'a>(
        &'a self,
        request: ModelRequest<'a>,
        deltas: &'a (dyn Fn(Delta<'_>) + Send + Sync),
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        (**self).respond_streaming(request, deltas)
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The person the agent works for.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        })
    }
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's id for the call; the tool's result refers to it.
    pub id: String,
    /// The tool's wire name.
    pub name: String,
    /// The arguments as the model wrote them: JSON text, possibly malformed.
    pub arguments: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// The text, if any.
    pub content: Option<String>,
    /// Tool calls, on assistant messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The tool's name, on tool messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    fn text(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: Some(content.into()), tool_calls: Vec::new(), tool_call_id: None, name: None }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::text(Role::User, content)
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text(Role::Assistant, content)
    }

    /// A tool's result for the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, name: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
            name: Some(name.into()),
        }
    }
}

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSchema {
    /// The wire name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the arguments the model supplies.
    pub parameters: Value,
}

/// What a model is asked.
#[derive(Debug, Clone, Copy)]
pub struct ModelRequest<'a> {
    /// The conversation, system prompt first when there is one.
    pub messages: &'a [Message],
    /// The tools the model may call.
    pub tools: &'a [ToolSchema],
}

/// What a model answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// The assistant message: text and/or tool calls.
    pub message: Message,
    /// Tokens spent.
    pub usage: Usage,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens read.
    pub input_tokens: u64,
    /// Tokens written.
    pub output_tokens: u64,
}

/// Totals saturate: a provider that reports absurd counts cannot make a sum overflow.
impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn usage_totals_saturate_rather_than_overflow() {
        let mut total = Usage { input_tokens: u64::MAX - 1, output_tokens: 5 };
        total += Usage { input_tokens: 10, output_tokens: u64::MAX };
        assert_eq!(total, Usage { input_tokens: u64::MAX, output_tokens: u64::MAX });
    }
}
