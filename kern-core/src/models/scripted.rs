//! A deterministic model for tests, examples and benchmarks.
//!
//! It decides from the conversation it is given, never from its own history, so one instance
//! serves any number of concurrent runs and a run continued in another process sees the same
//! behaviour.

use serde_json::Value;

use super::{Delta, Message, Model, ModelError, ModelRequest, ModelResponse, Role, ToolCall, Usage};
use crate::BoxFuture;

/// What the scripted model answers when a rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A final text answer. In a reply to tool results, `{result}` stands for the results.
    Text(String),
    /// Tool calls, made in one turn: `(tool name, raw JSON arguments)`.
    Calls(Vec<(String, String)>),
}

impl Reply {
    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text(text.into())
    }

    /// One tool call.
    pub fn call(name: impl Into<String>, args: Value) -> Self {
        Reply::Calls(vec![(name.into(), args.to_string())])
    }

    /// Several tool calls in one turn (parallel tool calls).
    pub fn calls<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Self {
        Reply::Calls(calls.into_iter().map(|(n, a)| (n.into(), a.to_string())).collect())
    }

    /// A tool call whose arguments are exactly this text, well-formed JSON or not.
    pub fn raw_call(name: impl Into<String>, raw_arguments: impl Into<String>) -> Self {
        Reply::Calls(vec![(name.into(), raw_arguments.into())])
    }
}

#[derive(Debug, Clone)]
enum Trigger {
    UserContains(String),
    AfterTool(String),
}

/// A model that follows a list of rules.
///
/// - When the conversation ends with the user's message, the first `when_user_contains` rule
///   whose text occurs in it fires; without one, the `otherwise` reply (an error by default).
/// - When it ends with tool results, the first `after_tool` rule naming one of those tools
///   fires; without one, it answers `Done. ` followed by each result.
///
/// ```
/// use kern_core::models::{Reply, ScriptedModel};
/// use serde_json::json;
///
/// let model = ScriptedModel::new()
///     .when_user_contains("delete", Reply::call("delete_user_data", json!({"user_id": "42"})))
///     .after_tool("delete_user_data", Reply::text("Deleted: {result}"));
/// # let _ = model;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScriptedModel {
    rules: Vec<(Trigger, Reply)>,
    otherwise: Option<Reply>,
}

impl ScriptedModel {
    /// A model with no rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replies `reply` to a user message containing `needle`.
    pub fn when_user_contains(mut self, needle: impl Into<String>, reply: Reply) -> Self {
        self.rules.push((Trigger::UserContains(needle.into()), reply));
        self
    }

    /// Replies `reply` to results of the tool `tool_name`.
    pub fn after_tool(mut self, tool_name: impl Into<String>, reply: Reply) -> Self {
        self.rules.push((Trigger::AfterTool(tool_name.into()), reply));
        self
    }

    /// Replies `reply` to a user message no rule matches.
    pub fn otherwise(mut self, reply: Reply) -> Self {
        self.otherwise = Some(reply);
        self
    }

    fn decide(&self, messages: &[Message]) -> Result<Message, ModelError> {
        let results: Vec<&Message> = messages.iter().rev().take_while(|m| m.role == Role::Tool).collect();
        let reply = if results.is_empty() {
            let last = messages.iter().rev().find(|m| m.role == Role::User);
            let text = last.and_then(|m| m.content.as_deref()).unwrap_or_default();
            self.rules
                .iter()
                .find_map(|(trigger, reply)| match trigger {
                    Trigger::UserContains(needle) if text.contains(needle.as_str()) => Some(reply.clone()),
                    _ => None,
                })
                .or_else(|| self.otherwise.clone())
                .ok_or_else(|| ModelError::NoScriptedReply(text.to_owned()))?
        } else {
            let summary = results
                .iter()
                .rev()
                .map(|m| format!("{}: {}", m.name.as_deref().unwrap_or("tool"), m.content.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            self.rules
                .iter()
                .find_map(|(trigger, reply)| match trigger {
                    Trigger::AfterTool(tool) if results.iter().any(|m| m.name.as_deref() == Some(tool)) => {
                        Some(reply.clone())
                    }
                    _ => None,
                })
                .map(|reply| match reply {
                    Reply::Text(text) => Reply::Text(text.replace("{result}", &summary)),
                    calls => calls,
                })
                .unwrap_or_else(|| Reply::Text(format!("Done. {summary}")))
        };
        Ok(match reply {
            Reply::Text(text) => Message::assistant(text),
            Reply::Calls(calls) => {
                let made = messages.iter().map(|m| m.tool_calls.len()).sum::<usize>();
                let tool_calls = calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, arguments))| ToolCall { id: format!("call_{}", made + i + 1), name, arguments })
                    .collect();
                Message { role: Role::Assistant, content: None, tool_calls, tool_call_id: None, name: None }
            }
        })
    }
}

fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

impl Model for ScriptedModel {
    fn id(&self) -> &str {
        "scripted"
    }

    fn respond<'a>(&'a self, request: ModelRequest<'a>) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let message = self.decide(request.messages)?;
            let input_tokens = request.messages.iter().filter_map(|m| m.content.as_deref()).map(estimate_tokens).sum();
            let output_tokens = message.content.as_deref().map(estimate_tokens).unwrap_or_default()
                + message.tool_calls.iter().map(|c| estimate_tokens(&c.arguments)).sum::<u64>();
            Ok(ModelResponse { message, usage: Usage { input_tokens, output_tokens } })
        })
    }

    /// Hands out the text a word at a time (each with the space before it), as a provider's
    /// stream would, so that streaming runs can be shown and tested offline.
    fn respond_streaming<'a>(
        &'a self,
        request: ModelRequest<'a>,
        deltas: &'a (dyn Fn(Delta<'_>) + Send + Sync),
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let response = self.respond(request).await?;
            for word in response.message.content.as_deref().unwrap_or_default().split_inclusive(' ') {
                deltas(Delta::Text(word));
                tokio::task::yield_now().await;
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> ScriptedModel {
        ScriptedModel::new()
            .when_user_contains("delete", Reply::call("delete", json!({"id": 1})))
            .after_tool("delete", Reply::text("Finished: {result}"))
    }

    #[test]
    fn calls_a_tool_for_a_matching_user_message() {
        let reply = model().decide(&[Message::user("please delete it")]).unwrap();
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall { id: "call_1".into(), name: "delete".into(), arguments: r#"{"id":1}"#.into() }]
        );
    }

    #[test]
    fn answers_tool_results_from_the_conversation_alone() {
        let mut messages = vec![Message::user("please delete it")];
        messages.push(model().decide(&messages).unwrap());
        messages.push(Message::tool_result("call_1", "delete", "gone"));
        let reply = model().decide(&messages).unwrap();
        assert_eq!(reply.content.as_deref(), Some("Finished: delete: gone"));
    }

    #[tokio::test]
    async fn a_streamed_answer_comes_a_word_at_a_time_and_joins_to_the_text() {
        let pieces = std::sync::Mutex::new(Vec::new());
        let collect = |delta: Delta<'_>| {
            if let Delta::Text(text) = delta {
                pieces.lock().unwrap().push(text.to_owned());
            }
        };
        let messages = [Message::user("hello there")];
        let model = ScriptedModel::new().otherwise(Reply::text("Hi, how can I help?"));
        let request = ModelRequest { messages: &messages, tools: &[] };
        let response = model.respond_streaming(request, &collect).await.unwrap();
        let pieces = pieces.into_inner().unwrap();
        assert_eq!(pieces, ["Hi, ", "how ", "can ", "I ", "help?"]);
        assert_eq!(Some(pieces.concat()), response.message.content);
    }

    #[test]
    fn without_a_rule_it_is_a_typed_error() {
        let err = model().decide(&[Message::user("hello")]).unwrap_err();
        assert_eq!(err, ModelError::NoScriptedReply("hello".into()));
    }
}
