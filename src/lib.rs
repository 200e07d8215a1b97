//! kern: LLM agents whose risky tool calls stop and wait for an admin.
//!
//! Mark a function `#[tool(requires_confirmation)]` and `#[approval]`, give it to an
//! [`Agent`](agent::Agent) or a [`Team`](team::Team), and a call to it pauses the run and writes a
//! pending approval row; once an admin has approved or rejected the row, `continue_run` resumes
//! the run by its id, from any process that shares the database.
//!
//! This crate only re-exports: the engine is `kern-core`, the macros `kern-macros`, the
//! database stores `kern-db`.

/// Tools: the [`tool`](tools::tool) attribute and the [`Tool`](tools::Tool) trait it implements.
pub mod tools {
    pub use kern_core::schema;
    pub use kern_core::tools::*;
    /// Makes a function a tool a model can call: a unit struct named after it in PascalCase
    /// implements [`Tool`].
    ///
    /// ```
    /// use kern::tools::{RunContext, Tool, ToolError, tool};
    /// use serde_json::json;
    ///
    /// /// Add two numbers.
    /// #[tool]
    /// fn add(
    ///     /// The first number.
    ///     a: i64,
    ///     b: i64,
    /// ) -> i64 {
    ///     a + b
    /// }
    ///
    /// let definition = Add.definition();
    /// assert_eq!(definition.name, "add");
    /// assert_eq!(definition.description, "Add two numbers.");
    /// assert_eq!(
    ///     definition.parameters,
    ///     json!({
    ///         "type": "object",
    ///         "properties": {
    ///             "a": {"type": "integer", "format": "int64", "description": "The first number."},
    ///             "b": {"type": "integer", "format": "int64"}
    ///         },
    ///         "required": ["a", "b"],
    ///         "additionalProperties": false
    ///     })
    /// );
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // What an agent does with the model's arguments:
    /// let ctx = RunContext::default();
    /// assert_eq!(Add.call(&ctx, json!({"a": 2, "b": 40})).await, Ok(json!(42)));
    /// let wrong = Add.call(&ctx, json!({"a": "2", "b": 40})).await;
    /// assert!(matches!(wrong, Err(ToolError::InvalidArguments(_))));
    /// # });
    ///
    /// // The function is still an ordinary function.
    /// assert_eq!(add(1, 2), 3);
    /// ```
    pub use kern_macros::tool;
}

/// Approvals: the [`approval`](approval::approval) attribute, rows, queries and updates.
pub mod approval {
    pub use kern_core::approval::*;
    /// Puts a `#[tool]` behind an admin's decision, stored as an approval row.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use kern::approval::{ApprovalPolicy, approval};
    /// use kern::tools::{Hitl, Tool, tool};
    ///
    /// /// Permanently delete all data for a user.
    /// #[approval(expires_in = "24h")] // required: the run waits for an admin
    /// #[tool(requires_confirmation)]
    /// async fn delete_user_data(user_id: String) -> String {
    ///     format!("deleted {user_id}")
    /// }
    ///
    /// /// Send an invoice. A person confirms; the decision is recorded.
    /// #[tool(requires_confirmation)]
    /// #[approval(type = "audit")] // below `#[tool]` works as well
    /// fn send_invoice(invoice_id: u64) -> String {
    ///     format!("sent {invoice_id}")
    /// }
    ///
    /// let delete = DeleteUserData.definition();
    /// assert!(delete.requires_approval());
    /// assert_eq!(delete.hitl, Hitl::Confirmation);
    /// assert_eq!(delete.approval, Some(ApprovalPolicy::REQUIRED.expires_in(Duration::from_secs(24 * 60 * 60))));
    ///
    /// let invoice = SendInvoice.definition();
    /// assert!(invoice.is_audited() && !invoice.requires_approval());
    /// assert_eq!(invoice.approval, Some(ApprovalPolicy::AUDIT));
    /// ```
    pub use kern_macros::approval;
}

/// Agents: a model, tools and a store, run in a loop.
pub mod agent {
    pub use kern_core::agent::*;
}

/// Teams: a leader model delegating to member agents.
pub mod team {
    pub use kern_core::team::*;
}

/// Runs: statuses, outputs, paused requirements and persisted state.
pub mod run {
    pub use kern_core::run::*;
}

/// The trail: the hash-chained log of what happened to each approval row, its check, and a
/// reader that follows it in `seq` order without passing an event that commits late.
pub mod trail {
    pub use kern_core::follow::*;
    pub use kern_core::trail::*;
}

/// API keys: how a program or an admin proves to a kern server who it is.
pub mod keys {
    pub use kern_core::keys::*;
}

/// Streaming: a run's events as they happen ([`Agent::run_stream`](agent::Agent::run_stream)).
pub mod events {
    pub use kern_core::events::*;
}

/// Workers: paused runs continue by themselves once every gated call is decided.
pub mod worker {
    pub use kern_core::worker::*;
}

/// Models: the trait, the OpenAI-compatible and Anthropic providers, and a scripted model.
pub mod models {
    pub use kern_core::models::*;
}

/// Stores: the trait, the in-memory store, and the SQLite and Postgres stores.
///
/// To write a store of your own, implement [`Store`](db::Store) with the helpers of
/// `kern_core::store::backend`.
pub mod db {
    pub use kern_core::store::{MemoryDb, Store};
    pub use kern_db::{
        OpenError, PostgresDb, PostgresDbBuilder, SCHEMA_VERSION, SqliteDb, SqliteDbBuilder, Synchronous,
    };
}

/// The approvals and runs HTTP API (the `server` feature): `kern::server::Server::builder()`.
#[cfg(feature = "server")]
pub use kern_server as server;

/// The time types the public API takes and returns (`resolved_at`, `created_before`, ...), so
/// callers need no `chrono` dependency of their own.
pub use chrono::{DateTime, Utc};
pub use kern_core::{BoxFuture, Error, ParseEnumError, Result, limits};

/// The names most programs need: `use kern::prelude::*;`.
///
/// kern's error type stays out of it, as `kern::Error`: glob-imported, it would shadow
/// `std::error::Error` in the `Box<dyn Error>` many programs return.
pub mod prelude {
    pub use crate::agent::Agent;
    pub use crate::approval::{
        Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalType, ApprovalUpdate, Decision, PauseType,
        Principal, SourceType, approval,
    };
    pub use crate::db::{MemoryDb, PostgresDb, SqliteDb, Store};
    pub use crate::models::{Model, Reply, ScriptedModel};
    pub use crate::run::{RunOptions, RunOutput, RunRequirement, RunStatus};
    pub use crate::team::Team;
    pub use crate::tools::{RunContext, Tool, tool};
    pub use crate::worker::Worker;
}

/// What code generated by the macros refers to, so users need no dependencies of their own.
#[doc(hidden)]
pub mod __private {
    pub use kern_core::BoxFuture;
    pub use schemars;
    pub use serde;
    pub use serde_json;
}
