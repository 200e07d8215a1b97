//! The Anthropic messages provider.

/// A messages provider.
#[derive(Debug, Clone)]
pub struct Anthropic;
