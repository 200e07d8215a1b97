//! kern's approvals and runs over HTTP: the reference's `/approvals` routes with its wire
//! contract, its run and continue routes, and kern's additions (votes, cancel, trail, keyset
//! cursors, live events, OpenAPI, health and metrics), behind API keys; and at `/` the
//! approvals inbox, where an admin signs in with an API key and decides rows in a browser.
//!
//! ```no_run
//! # async fn example(db: kern_core::store::MemoryDb, agent: kern_core::agent::Agent) -> Result<(), Box<dyn std::error::Error>> {
//! use kern_server::{Auth, Server};
//!
//! let server = Server::builder().store(db).agent(agent).auth(Auth::api_keys()).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7000").await?;
//! server.serve(listener).await?;
//! # Ok(()) }
//! ```
//!
//! Or mount [`Server::into_router`] in an axum app of your own.

mod auth;
mod error;
mod extract;
mod idempotency;
mod inbox;
#[cfg(feature = "jwt")]
mod jwt;
mod metrics;
mod openapi;
mod origin;
mod routes;
mod server;
mod session;
mod state;
mod wire;

pub use auth::{Auth, Caller};
pub use error::{ApiError, ErrorBody};
#[cfg(feature = "jwt")]
pub use jwt::{Jwt, JwtKeyError};
pub use openapi::document as openapi;
pub use origin::{InvalidOrigin, PublicOrigin};
pub use server::{BuildError, Server, ServerBuilder};
