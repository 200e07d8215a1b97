//! The connections of a SQLite store, handed out without sqlx's pool.
//!
//! sqlx's pool pings a connection each time it takes one back (and, by default, again before
//! handing it out), from a spawned task: for SQLite each ping is a round trip to the
//! connection's thread, as costly as a statement, and the single writer stays busy until it
//! ends. A connection to a local file cannot go stale, so these lanes hand connections out and
//! take them back with no round trip at all.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kern_core::{BoxFuture, Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Sqlite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::driver::ConnectionPool;

/// How long a caller waits for a free connection before it gets an error, as with sqlx's pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Up to `size` connections to one database, opened on first need. Clones share them.
#[derive(Debug, Clone)]
pub(crate) struct Lanes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: SqliteConnectOptions,
    /// One permit per connection that may exist; closed when the lanes close.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<SqliteConnection>>,
    /// True for an in-memory database: its one connection is the database, so it is never
    /// closed before the lanes are.
    keep_open: bool,
}

impl Lanes {
    /// Lanes of up to `size` connections to a file.
    pub(crate) fn file(options: SqliteConnectOptions, size: usize) -> Self {
        Lanes::new(options, size, false)
    }

    /// The one connection of an in-memory database, opened now: each connection to `:memory:`
    /// is a database of its own.
    pub(crate) async fn memory(options: SqliteConnectOptions) -> Result<Self> {
        let lanes = Lanes::new(options, 1, true);
        drop(lanes.acquire_lane().await?);
        Ok(lanes)
    }

    fn new(options: SqliteConnectOptions, size: usize, keep_open: bool) -> Self {
        let inner = Inner {
            options,
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::with_capacity(size)),
            keep_open,
        };
        Lanes { inner: Arc::new(inner) }
    }

    /// Whether a connection may be closed to roll back what it began (see
    /// [`Lane::discard_on_drop`]).
    pub(crate) fn can_discard(&self) -> bool {
        !self.inner.keep_open
    }

    /// A connection: an idle one, or a new one if none is idle and fewer than `size` are open;
    /// otherwise waits for one to come back.
    pub(crate) async fn acquire_lane(&self) -> Result<Lane> {
        let waited = tokio::time::timeout(ACQUIRE_TIMEOUT, self.inner.permits.clone().acquire_owned()).await;
        let permit = waited.map_err(|_| Error::database(sqlx::Error::PoolTimedOut))?;
        let permit = permit.map_err(|_| Error::database(sqlx::Error::PoolClosed))?;
        let idle = self.inner.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => SqliteConnection::connect_with(&self.inner.options).await.map_err(Error::database)?,
        };
        Ok(Lane { conn: Some(conn), discard: false, lanes: self.inner.clone(), _permit: permit })
    }
}

impl Inner {
    fn idle(&self) -> MutexGuard<'_, Vec<SqliteConnection>> {
        // Only pushes and pops happen under the lock: a panic cannot leave the list half-done.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ConnectionPool<Sqlite> for Lanes {
    type Conn = Lane;

    fn acquire(&self) -> BoxFuture<'_, Result<Lane>> {
        Box::pin(self.acquire_lane())
    }

    /// Any connection: a SQLite connection is a handle on a file in this process, which no
    /// server or link can take away.
    fn acquire_live(&self) -> BoxFuture<'_, Result<Lane>> {
        Box::pin(self.acquire_lane())
    }

    /// Refuses new callers, then closes the idle connections; connections in use close when
    /// they come back.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.permits.close();
            let idle = std::mem::take(&mut *self.inner.idle());
            for conn in idle {
                let _ = conn.close().await;
            }
        })
    }
}

/// A connection lent out by [`Lanes`]; it goes back when dropped.
#[derive(Debug)]
pub(crate) struct Lane {
    conn: Option<SqliteConnection>,
    discard: bool,
    lanes: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Lane {
    /// Whether the connection may be closed to roll back what it began.
    pub(crate) fn can_discard(&self) -> bool {
        !self.lanes.keep_open
    }

    /// Whether dropping the lane closes the connection instead of taking it back: closing
    /// rolls back a transaction the connection may have left open, and the lanes open a new
    /// connection when next needed. Only for lanes that [`can_discard`](Lanes::can_discard).
    pub(crate) fn discard_on_drop(&mut self, discard: bool) {
        self.discard = discard;
    }
}

impl Deref for Lane {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Lane {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Dropping a connection ends its thread, which closes it.
        if !self.discard && !self.lanes.permits.is_closed() {
            self.lanes.idle().push(conn);
        }
    }
}
