//! Typed failures of model providers.

use std::time::Duration;

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
        /// The response body, as the provider sent it.
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

impl ModelError {
    /// True for failures worth retrying: timeouts, connection errors, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::Status { status, .. } => *status == 429 || *status >= 500,
            ModelError::Timeout { .. } | ModelError::Transport { .. } => true,
            ModelError::MalformedResponse { .. }
            | ModelError::InvalidConfig { .. }
            | ModelError::NoScriptedReply(_) => false,
        }
    }
}
