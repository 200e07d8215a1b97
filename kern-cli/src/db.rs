//! A direct connection: the database a `--db` URL names, opened (and so brought to the current
//! schema) with the table names the application gave kern.

use std::sync::Arc;
use std::time::Duration;

use kern_core::Error;
use kern_core::store::Store;
use kern_db::{OpenError, PostgresDb, SqliteDb};

use crate::cli::Tables;
use crate::exit::{Failure, Outcome};

/// How long to wait for a Postgres server before giving up: a terminal user wants an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open database.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqliteDb),
    Postgres(PostgresDb),
}

/// `builder` (of either database: they share the table settings, not a trait) with the table
/// names `tables` gives.
macro_rules! with_tables {
    ($builder:expr, $tables:expr) => {{
        let (mut builder, tables) = ($builder, $tables);
        if let Some(name) = &tables.approvals_table {
            builder = builder.approvals_table(name);
        }
        if let Some(name) = &tables.runs_table {
            builder = builder.runs_table(name);
        }
        if let Some(name) = &tables.sessions_table {
            builder = builder.sessions_table(name);
        }
        builder
    }};
}

/// What a `--db` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location<'a> {
    SqliteFile(&'a str),
    Postgres(&'a str),
}

fn locate(url: &str) -> Outcome<Location<'_>> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err(Failure::usage("the SQLite URL names no file: use sqlite://app.db"));
        }
        return Ok(Location::SqliteFile(path));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url));
    }
    Err(Failure::usage(
        "the database URL must start with sqlite:// or postgres:// (such as sqlite://app.db or \
         postgres://user@host/database)",
    ))
}

impl Database {
    /// Opens the database at `url`. A SQLite file, a schema or tables that do not exist are
    /// created, and tables an older build wrote upgraded, only when `provision` says so
    /// (`migrate`, `serve`): for any other command they are a mistyped path or name, or tables
    /// the application that owns them has yet to upgrade (an older build of it would refuse
    /// them upgraded).
    pub async fn open(url: &str, tables: &Tables, provision: bool) -> Outcome<Self> {
        match locate(url)? {
            Location::SqliteFile(path) => {
                if tables.schema.is_some() {
                    return Err(Failure::usage("--schema is for Postgres; a SQLite file has none"));
                }
                if !provision && !std::path::Path::new(path).exists() {
                    return Err(Failure::usage(format!(
                        "no SQLite database at `{path}`: check the path, or create it with `kern migrate`"
                    )));
                }
                let builder = SqliteDb::builder().db_file(path).create_tables(provision).upgrade_tables(provision);
                let builder = with_tables!(builder, tables);
                Ok(Database::Sqlite(builder.build().await.map_err(opening)?))
            }
            Location::Postgres(url) => {
                let mut builder = PostgresDb::builder()
                    .url(url)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .create_tables(provision)
                    .upgrade_tables(provision);
                if let Some(schema) = &tables.schema {
                    builder = builder.schema(schema);
                }
                Ok(Database::Postgres(with_tables!(builder, tables).build().await.map_err(opening)?))
            }
        }
    }

    /// The store, to share.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(db) => Arc::new(db.clone()),
            Database::Postgres(db) => Arc::new(db.clone()),
        }
    }

    /// The schema version of the tables.
    pub async fn schema_version(&self) -> Outcome<i64> {
        Ok(match self {
            Database::Sqlite(db) => db.schema_version().await?,
            Database::Postgres(db) => db.schema_version().await?,
        })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(db) => db.close().await,
            Database::Postgres(db) => db.close().await,
        }
    }
}

/// Why a database did not open: a database without the tables named is a usage error, most
/// likely a mistyped `--schema` or table name, and says how to create them if they are wanted;
/// so are tables an older build wrote, which `kern migrate` upgrades.
fn opening(err: Error) -> Failure {
    match &err {
        Error::Database(source) => match source.downcast_ref() {
            Some(OpenError::NoTables { .. }) => {
                Failure::usage(format!("{source}, or create the tables with `kern migrate`"))
            }
            Some(OpenError::OutOfDate { .. }) => Failure::usage(format!("{source} with `kern migrate`")),
            _ => err.into(),
        },
        _ => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_sqlite_file_or_a_postgres_server() {
        assert_eq!(locate("sqlite://app.db"), Ok(Location::SqliteFile("app.db")));
        assert_eq!(locate("sqlite:///var/kern/app.db"), Ok(Location::SqliteFile("/var/kern/app.db")));
        assert_eq!(locate("sqlite:app.db"), Ok(Location::SqliteFile("app.db")));
        assert_eq!(locate("postgres://u@h/db"), Ok(Location::Postgres("postgres://u@h/db")));
        assert_eq!(locate("postgresql://u@h/db"), Ok(Location::Postgres("postgresql://u@h/db")));
        for bad in ["app.db", "mysql://h/db", "sqlite://"] {
            assert_eq!(locate(bad).map_err(|err| err.code), Err(crate::exit::Code::Usage), "{bad}");
        }
    }
}
