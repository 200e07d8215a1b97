//! The connections of a store, handed out without sqlx's pool.
//!
//! sqlx's pool pings a connection each time it takes one back (and, by default, again before
//! handing it out), from a spawned task: a round trip per store call, as costly as a statement.
//! For SQLite each ping is a hand-off to the connection's thread, and the single writer stays
//! busy until it ends; for Postgres it is a round trip to the server, which under load costs
//! both sides as much as the statement itself. These lanes hand connections out and take them
//! back with no round trip at all. A connection that may be gone is checked only where it
//! matters, by the driver (see `ConnectionPool::acquire_live`), and one found dead is discarded.
//! Where the lanes recycle their connections ([`Recycling`]), one past its time is closed as
//! the next caller comes, and another opened when needed.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kern_core::{Error, Result};
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a caller waits for a free connection before it gets an error, as with sqlx's pool.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Up to `size` connections of type `C`, opened on first need. Clones share them.
pub(crate) struct Lanes<C: Connection> {
    inner: Arc<Inner<C>>,
}

impl<C: Connection> Clone for Lanes<C> {
    fn clone(&self) -> Self {
        Lanes { inner: self.inner.clone() }
    }
}

impl<C: Connection> fmt::Debug for Lanes<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lanes")
            .field("available", &self.inner.permits.available_permits())
            .field("idle", &self.inner.idle().len())
            .field("kept_open", &self.inner.keep_open)
            .finish_non_exhaustive()
    }
}

struct Inner<C: Connection> {
    options: C::Options,
    /// One permit per connection that may exist; closed when the lanes close.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle<C>>>,
    /// True for a database that lives in its one connection (SQLite's in-memory database): it
    /// is never closed before the lanes are.
    keep_open: bool,
    /// How long a caller waits for a connection: for a free one, and for a new one to open.
    timeout: Duration,
    /// The most connections open at once.
    size: usize,
    /// When connections are closed for others, if ever.
    recycling: Option<Recycling>,
}

/// When the lanes close a connection to open another in its place: a server's session gathers
/// caches as it lives, and a failover, or a pooler in front of the server, wants sessions to end
/// now and then. Checked as callers come: a connection past its time is closed then, not lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recycling {
    /// The longest a connection is kept open.
    pub(crate) max_lifetime: Duration,
    /// The longest a connection is kept idle.
    pub(crate) idle_timeout: Duration,
}

/// A connection waiting to be lent.
struct Idle<C> {
    conn: C,
    /// Left inside a transaction by a caller that stopped waiting: rolled back before it is
    /// lent again (only a resident connection, which is never closed, comes back so).
    in_transaction: bool,
    /// When it was opened.
    opened: Instant,
    /// When it came back.
    since: Instant,
}

impl Recycling {
    /// True when `idle` has been open or idle too long at `now`.
    fn is_spent<C>(&self, idle: &Idle<C>, now: Instant) -> bool {
        now.duration_since(idle.opened) >= self.max_lifetime || now.duration_since(idle.since) >= self.idle_timeout
    }
}

impl<C: Connection> Lanes<C> {
    /// Lanes of up to `size` connections opened with `options`, a caller waiting at most
    /// `timeout` for one, closing connections past `recycling`'s times if given.
    pub(crate) fn new(options: C::Options, size: usize, timeout: Duration, recycling: Option<Recycling>) -> Self {
        Lanes::build(options, size, timeout, false, recycling)
    }

    fn build(
        options: C::Options,
        size: usize,
        timeout: Duration,
        keep_open: bool,
        recycling: Option<Recycling>,
    ) -> Self {
        let inner = Inner {
            options,
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::with_capacity(size)),
            keep_open,
            timeout,
            size,
            recycling,
        };
        Lanes { inner: Arc::new(inner) }
    }

    /// The most connections open at once.
    pub(crate) fn size(&self) -> usize {
        self.inner.size
    }

    /// Keeps `conn`, opened with the lanes' options, as an idle connection.
    pub(crate) fn adopt(&self, conn: C) {
        let now = Instant::now();
        self.inner.idle().push(Idle { conn, in_transaction: false, opened: now, since: now });
    }

    /// Refuses new callers, then closes the idle connections; connections in use close when
    /// they come back.
    pub(crate) async fn close(&self) {
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle());
        for idle in idle {
            let _ = idle.conn.close().await;
        }
    }
}

impl<C> Lanes<C>
where
    C: Connection + 'static,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    /// The one connection of a database that lives in it, opened now and never closed before
    /// the lanes are.
    pub(crate) async fn resident(options: C::Options) -> Result<Self> {
        let lanes = Lanes::build(options, 1, ACQUIRE_TIMEOUT, true, None);
        drop(lanes.acquire_lane().await?);
        Ok(lanes)
    }

    /// A connection: an idle one, or a new one if none is idle and fewer than `size` are open;
    /// otherwise waits for one to come back.
    pub(crate) async fn acquire_lane(&self) -> Result<Lane<C>> {
        let timeout = self.inner.timeout;
        let waited = tokio::time::timeout(timeout, self.inner.permits.clone().acquire_owned()).await;
        let permit = waited.map_err(|_| Error::database(sqlx::Error::PoolTimedOut))?;
        let permit = permit.map_err(|_| Error::database(sqlx::Error::PoolClosed))?;
        let (conn, in_transaction, opened) = match self.inner.take_idle() {
            Some(Idle { conn, in_transaction, opened, .. }) => (conn, in_transaction, opened),
            None => (self.inner.connect().await?, false, Instant::now()),
        };
        // Lent before the rollback, so that a caller who stops waiting during it leaves the
        // connection marked, not dropped.
        let mut lane = Lane {
            conn: Some(conn),
            opened,
            discard: false,
            in_transaction,
            lanes: self.inner.clone(),
            _permit: permit,
        };
        if in_transaction {
            // It fails only when nothing is left to roll back (sqlx may have done it).
            if let Err(err) = lane.execute(sqlx::raw_sql("ROLLBACK")).await {
                tracing::debug!(error = %err, "an abandoned transaction had already ended");
            }
            lane.in_transaction = false;
        }
        Ok(lane)
    }
}

impl<C: Connection> Inner<C> {
    /// A new connection, within the lanes' timeout.
    async fn connect(&self) -> Result<C> {
        tokio::time::timeout(self.timeout, self.options.connect())
            .await
            .map_err(|_| Error::database(sqlx::Error::PoolTimedOut))?
            .map_err(Error::database)
    }

    /// The connection that came back last, once the idle ones past their time are taken out
    /// and closed on a task of their own: the caller waits for no goodbye.
    fn take_idle(&self) -> Option<Idle<C>>
    where
        C: 'static,
    {
        let mut idle = self.idle();
        if let Some(recycling) = &self.recycling {
            let now = Instant::now();
            let mut n = 0;
            while n < idle.len() {
                if recycling.is_spent(&idle[n], now) {
                    let spent = idle.remove(n).conn;
                    tokio::spawn(async move {
                        if let Err(err) = spent.close().await {
                            tracing::debug!(error = %err, "a recycled connection did not close cleanly");
                        }
                    });
                } else {
                    n += 1;
                }
            }
        }
        idle.pop()
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle<C>>> {
        // Only pushes, pops and removals happen under the lock: a panic cannot leave the list
        // half-done.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connection lent out by [`Lanes`]; it goes back when dropped.
pub(crate) struct Lane<C: Connection> {
    conn: Option<C>,
    opened: Instant,
    discard: bool,
    /// Inside a transaction begun outside sqlx (see [`Lane::set_in_transaction`]).
    in_transaction: bool,
    lanes: Arc<Inner<C>>,
    _permit: OwnedSemaphorePermit,
}

impl<C: Connection> fmt::Debug for Lane<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane").field("discard", &self.discard).finish_non_exhaustive()
    }
}

impl<C: Connection> Lane<C> {
    /// Makes dropping the lane close the connection instead of taking it back: for one found
    /// dead; the lanes open a new connection when next needed. A resident connection is kept.
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }

    /// Marks the connection as inside a transaction that its driver began and will end with
    /// plain `COMMIT` or `ROLLBACK`, unknown to sqlx. Dropped so marked (its caller stopped
    /// waiting), the connection is closed, which rolls the transaction back, or, where it
    /// cannot be, rolled back before it is lent again.
    pub(crate) fn set_in_transaction(&mut self, in_transaction: bool) {
        self.in_transaction = in_transaction;
    }

    /// Closes the connection and opens another in its place: for one found dead.
    pub(crate) async fn reconnect(&mut self) -> Result<()> {
        let fresh = self.lanes.connect().await?;
        self.conn = Some(fresh);
        self.opened = Instant::now();
        Ok(())
    }
}

impl<C: Connection> Deref for Lane<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl<C: Connection> DerefMut for Lane<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl<C: Connection> Drop for Lane<C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Dropping a connection closes it (SQLite's ends its thread; Postgres' its socket).
        let discard = (self.discard || self.in_transaction) && !self.lanes.keep_open;
        if !discard && !self.lanes.permits.is_closed() {
            let (in_transaction, opened) = (self.in_transaction, self.opened);
            self.lanes.idle().push(Idle { conn, in_transaction, opened, since: Instant::now() });
        }
    }
}
