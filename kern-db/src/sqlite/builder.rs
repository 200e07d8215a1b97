//! How a [`SqliteDb`](super::SqliteDb) is configured: where the database is, its table names and
//! how durable its commits are.

use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteSynchronous;

use crate::handle::builder;
use crate::layout::TableNames;

/// How hard SQLite works to keep a committed write through a power loss (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// Never syncs: fastest, a power loss can corrupt the file.
    Off,
    /// In WAL mode, the last commits can be lost on power loss, never corrupted.
    Normal,
    /// Every commit is on disk before it returns: an approval, once acknowledged, stays.
    #[default]
    Full,
    /// Like `Full`, and also syncs the directory.
    Extra,
}

impl From<Synchronous> for SqliteSynchronous {
    fn from(value: Synchronous) -> Self {
        match value {
            Synchronous::Off => SqliteSynchronous::Off,
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Extra => SqliteSynchronous::Extra,
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone)]
pub(super) enum Target {
    File(PathBuf),
    Memory,
}

impl Target {
    /// The path as it appears in errors.
    pub(super) fn path(&self) -> &Path {
        match self {
            Target::File(path) => path,
            Target::Memory => Path::new(":memory:"),
        }
    }
}

/// Configures and opens a [`SqliteDb`](super::SqliteDb).
#[derive(Debug, Clone)]
#[must_use = "call .build().await to open the database"]
pub struct SqliteDbBuilder {
    pub(super) target: Option<Target>,
    pub(super) tables: TableNames,
    pub(super) synchronous: Synchronous,
    pub(super) create_tables: bool,
    pub(super) upgrade_tables: bool,
    pub(super) schema_version: Option<i64>,
    #[cfg(any(test, feature = "test-support"))]
    pub(super) poll_every: Option<std::time::Duration>,
}

impl Default for SqliteDbBuilder {
    fn default() -> Self {
        SqliteDbBuilder {
            target: None,
            tables: TableNames::default(),
            synchronous: Synchronous::default(),
            create_tables: true,
            upgrade_tables: true,
            schema_version: None,
            #[cfg(any(test, feature = "test-support"))]
            poll_every: None,
        }
    }
}

builder!(SqliteDbBuilder);

impl SqliteDbBuilder {
    /// The database file; created if missing (readable by its owner alone, on Unix), unless the
    /// builder may not [create tables](Self::create_tables).
    pub fn db_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.target = Some(Target::File(path.into()));
        self
    }

    /// A private database in memory instead of a file.
    pub fn in_memory(mut self) -> Self {
        self.target = Some(Target::Memory);
        self
    }

    /// Durability of commits (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
}
