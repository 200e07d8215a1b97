//! The engine of kern: tools, models, the agent and team loops, runs, approvals, the store
//! trait with an in-memory store, and the worker that continues decided runs.
//!
//! Users reach everything here through the `kern` facade; this crate is split out so the
//! database backends (`kern-db`) can implement [`store::Store`] without a dependency cycle.

pub mod agent;
pub mod approval;
pub mod csv;
mod engine;
mod error;
pub mod events;
pub mod follow;
pub mod keys;
pub mod limits;
pub mod models;
pub mod run;
pub mod schema;
pub mod store;
pub mod team;
mod text_enum;
mod timestamp;
pub mod tools;
pub mod trail;
pub mod worker;

pub use error::{Error, Result};
pub use text_enum::ParseEnumError;

/// A boxed, sendable future: the return type of the object-safe async traits
/// ([`tools::Tool`], [`models::Model`], [`store::Store`]).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The current time at the microsecond precision every store keeps, so a timestamp reads
/// back exactly as it was written.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// A new time-ordered identifier (UUID v7), used for runs, sessions and approvals.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
