//! Why a store could not be opened.
//!
//! kern's [`Error`] has no variant for a store's configuration, so these travel inside
//! [`Error::Database`]; callers that care can `downcast_ref::<OpenError>()` the source.

use std::path::PathBuf;

use kern_core::Error;

/// A store could not be opened: a bad name in its configuration, or an unreachable database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A table or schema name is not a plain identifier, so it is refused rather than spliced
    /// into SQL.
    #[error(
        "`{0}` is not a valid table or schema name: use 1 to 40 ASCII letters, digits or underscores, \
         not starting with a digit"
    )]
    InvalidName(String),
    /// The builder was not told where the database is.
    #[error("no database given: call `.{0}(..)` on the builder")]
    MissingTarget(&'static str),
    /// The SQLite file could not be created, opened or written (its schema, at first use).
    #[error("cannot open the SQLite database `{}`: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Postgres server could not be reached or refused the login. The URL is not repeated
    /// here: it may hold a password.
    #[error("cannot connect to Postgres: {0}")]
    Postgres(sqlx::Error),
    /// The database holds no kern tables of the names given, and the builder was told not to
    /// create them ([`create_tables(false)`](crate::SqliteDbBuilder::create_tables)): a
    /// mistyped schema or table name, which would otherwise open a new, empty store.
    #[error("no kern tables {tables} in this database: check the schema and table names")]
    NoTables {
        /// The tables looked for, as SQL names them.
        tables: String,
    },
    /// The tables were written by an older build, and the builder was told not to upgrade them
    /// ([`upgrade_tables(false)`](crate::SqliteDbBuilder::upgrade_tables)): a program that only
    /// reads and decides leaves the upgrade to the one that owns the schema.
    #[error(
        "kern tables {tables} are at schema version {found}, older than this build's {supported}: upgrade them first"
    )]
    OutOfDate {
        /// The tables, as SQL names them.
        tables: String,
        /// Their schema version.
        found: i64,
        /// The version this build works with.
        supported: i64,
    },
}

impl From<OpenError> for Error {
    fn from(err: OpenError) -> Self {
        Error::database(err)
    }
}
