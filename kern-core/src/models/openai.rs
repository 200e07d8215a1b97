//! The OpenAI-compatible chat-completions provider.

/// A chat-completions provider.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible;
