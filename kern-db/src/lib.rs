//! The database stores of kern, on sqlx: [`SqliteDb`] (embedded, the default) and
//! [`PostgresDb`] (shared by many processes and machines).
//!
//! Both implement [`kern_core::store::Store`] with the semantics of the in-memory store, and
//! keep the same rows: a paused run's state and its approval rows are written in one
//! transaction; an admin's resolution is one conditional `UPDATE .. RETURNING`, so of many
//! concurrent resolutions exactly one wins; a continue claims its run with another. A process
//! waiting on a row (`Store::wait_for_resolution`) wakes when it is resolved: at once through the
//! same handle, through Postgres' `LISTEN`/`NOTIFY` from other processes, and by polling the
//! SQLite file.
//!
//! The schema is versioned ([`SCHEMA_VERSION`]): opening a database applies the migrations it
//! lacks, in one transaction, and refuses one written by a newer build. Table names are
//! configurable, so kern can share a database with an application.
//!
//! Timestamps are kept to the microsecond (SQLite: an integer count since the Unix epoch;
//! Postgres: `TIMESTAMPTZ`); finer digits of a written time are dropped.
//!
//! Cargo feature `test-support` (off by default), for benchmarks and tests: `commit_count` on
//! both handles (the durable commits a workload costs), and the hooks that stand up a database
//! as another build left it, make waiters read only when woken, or drop a Postgres test schema.

// The store semantics are written once, on the `Driver` seam (`driver`): `store` (the `Store`
// methods), `queries` and `schema` (their SQL), `codec` and `stmt` (rows and statements),
// `wake`, `lanes` (the connections, lent without sqlx's pool), and `handle` (what the public
// handles and builders share). Each database implements
// `Driver` in a folder of its own with the same files: `mod.rs` (the handle and how it opens),
// `builder.rs`, `driver.rs`, and its own parts (Postgres' `notify.rs`).
mod codec;
mod driver;
mod error;
mod handle;
mod lanes;
mod layout;
mod postgres;
mod queries;
mod schema;
mod sqlite;
mod stmt;
mod store;
mod wake;

pub use error::OpenError;
pub use postgres::{PostgresDb, PostgresDbBuilder};
pub use schema::SCHEMA_VERSION;
pub use sqlite::{SqliteDb, SqliteDbBuilder, Synchronous};
