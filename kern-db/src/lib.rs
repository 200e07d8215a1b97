//! Placeholder: replaced by the real store crate.

/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteDb;

/// Postgres store.
#[derive(Debug, Clone)]
pub struct PostgresDb;
