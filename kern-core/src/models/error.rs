//! Typed failures of model providers.

use std::time::Duration;

use super::Usage;

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The provider answered with an error status.
    #[error("{provider} answered HTTP {status}: {body}")]
    Status {
        /// Which provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The response body as the provider sent it, its first
        /// [`MAX_ERROR_BODY_BYTES`](super::MAX_ERROR_BODY_BYTES) only (then ending in `…`).
        body: String,
    },
    /// No answer in time.
    #[error("{provider} did not answer within {timeout:?}")]
    Timeout {
        /// Which provider.
        provider: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The connection failed.
    #[error("{provider} could not be reached: {reason}")]
    Transport {
        /// Which provider.
        provider: String,
        /// What went wrong.
        reason: String,
    },
    /// The answer was not in the provider's format.
    #[error("{provider} sent a malformed response: {reason}")]
    MalformedResponse {
        /// Which provider.
        provider: String,
        /// What did not parse.
        reason: String,
    },
    /// A streamed answer stopped before its end: the connection closed or failed after the
    /// answer had begun. What had arrived is discarded; the provider does not retry, as the
    /// pieces already handed out cannot be taken back, but a caller may ask again.
    #[error("{provider} stopped answering mid-stream: {reason}")]
    StreamInterrupted {
        /// Which provider.
        provider: String,
        /// How the stream ended.
        reason: String,
    },
    /// The provider reported an error inside a streamed answer that had begun with a success
    /// status (such as Anthropic's `overloaded_error` event). As with an interruption, what had
    /// arrived is discarded and the provider does not retry.
    #[error("{provider} reported an error mid-stream: {message}")]
    StreamError {
        /// Which provider.
        provider: String,
        /// The provider's kind of error and message, as it sent them.
        message: String,
        /// Whether the provider's kind of error says that asking again may succeed (it is
        /// overloaded, rate limited, or failed on its side), as the same error would have by its
        /// HTTP status before the answer began.
        transient: bool,
    },
    /// The provider ended its answer before it was complete: at its token limit, with the
    /// model's context window full, withheld by its filters, or refused by the model. The part
    /// it sent is not taken for a whole answer (a call cut short has no whole arguments), and
    /// asking the same again ends the same way.
    #[error("{provider} cut its answer short ({reason}){}", cut_short_advice(reason))]
    CutShort {
        /// Which provider.
        provider: String,
        /// Why, in the provider's words, such as ``finish_reason `length` ``.
        reason: String,
        /// The tokens the answer cost all the same, as the provider counted them (a run adds
        /// them to its usage).
        usage: Usage,
    },
    /// The request could not be built from the provider's settings, such as a base URL without
    /// `http://` or an API key that is no valid header value. Retrying cannot help; the
    /// configuration must change.
    #[error("{provider} is misconfigured: {reason}")]
    InvalidConfig {
        /// Which provider.
        provider: String,
        /// What is wrong.
        reason: String,
    },
    /// A scripted model had no rule for the conversation.
    #[error("scripted model has no reply for: {0}")]
    NoScriptedReply(String),
}

/// What the user of an answer cut short for `reason` may do about it. Only the provider's stop
/// reason is read: the rest of `reason` may be the model's own words (a refusal).
fn cut_short_advice(reason: &str) -> &'static str {
    match reason {
        "finish_reason `length`" | "stop_reason `max_tokens`" => ": raise `max_tokens`, it ran out of room",
        "stop_reason `model_context_window_exceeded`" => ": the conversation fills the model's context window",
        _ => "",
    }
}

impl ModelError {
    /// True for failures worth retrying: timeouts, connection errors (also in the middle of a
    /// stream), 408, 409 (a lock conflict on the provider's side), 429 and 5xx, as the
    /// providers' own clients retry them, and errors reported mid-stream whose kind says the
    /// same. A 429 that says the account's quota is spent (OpenAI's `insufficient_quota`) is
    /// not: it lasts until someone pays.
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::Status { status: 429, body, .. } => !body.contains("\"insufficient_quota\""),
            ModelError::Status { status, .. } => matches!(status, 408 | 409) || *status >= 500,
            ModelError::Timeout { .. } | ModelError::Transport { .. } | ModelError::StreamInterrupted { .. } => true,
            ModelError::StreamError { transient, .. } => *transient,
            ModelError::MalformedResponse { .. }
            | ModelError::CutShort { .. }
            | ModelError::InvalidConfig { .. }
            | ModelError::NoScriptedReply(_) => false,
        }
    }
}
