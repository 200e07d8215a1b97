//! Agents (in progress).

/// An agent.
#[derive(Debug)]
pub struct Agent;
