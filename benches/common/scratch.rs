//! The database a benchmark run works in, and removes after it, with the upkeep a live
//! database gets.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use kern::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A name no other run of a benchmark uses: for a database file or a Postgres schema.
pub fn scratch_name(tag: &str) -> String {
    static OPENED: AtomicU64 = AtomicU64::new(0);
    format!("kern_bench_{tag}_{}_{}", std::process::id(), OPENED.fetch_add(1, Ordering::Relaxed))
}

/// The database a benchmark works in, removed by [`Scratch::remove`].
pub enum Scratch {
    /// A SQLite file (with its WAL and shared-memory files).
    File(PathBuf),
    /// A Postgres schema.
    Schema { url: String, schema: String },
}

impl Scratch {
    /// Deletes the file or drops the schema; close the store on it first.
    pub async fn remove(self) -> Result<(), BoxError> {
        match self {
            Scratch::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Scratch::Schema { url, schema } => PostgresDb::__drop_schema(&url, &schema).await?,
        }
        Ok(())
    }

    /// The upkeep a live database gets on its own after a bulk write: Postgres's autovacuum
    /// marks the new pages all-visible (so counts read the index alone) and refreshes the
    /// planner's statistics; SQLite has only the statistics.
    pub async fn maintain(&self) -> Result<(), BoxError> {
        use sqlx::Connection;
        match self {
            Scratch::File(path) => {
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
                sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
                conn.close().await?;
            }
            Scratch::Schema { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(&format!("VACUUM (ANALYZE) \"{schema}\".\"kern_approvals\"")).execute(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }
}
