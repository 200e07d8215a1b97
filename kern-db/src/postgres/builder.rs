//! How a [`PostgresDb`](super::PostgresDb) is configured: the server, its connections, and the
//! schema and names of its tables.

use std::fmt;
use std::time::Duration;

use crate::handle::builder;
use crate::layout::TableNames;

/// Configures and opens a [`PostgresDb`](super::PostgresDb).
#[derive(Clone)]
#[must_use = "call .build().await to connect"]
pub struct PostgresDbBuilder {
    pub(super) url: Option<String>,
    pub(super) max_connections: u32,
    pub(super) connect_timeout: Duration,
    pub(super) max_lifetime: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) schema: String,
    pub(super) tables: TableNames,
    pub(super) create_tables: bool,
    pub(super) upgrade_tables: bool,
    pub(super) schema_version: Option<i64>,
    #[cfg(any(test, feature = "test-support"))]
    pub(super) poll_every: Option<Duration>,
}

impl Default for PostgresDbBuilder {
    fn default() -> Self {
        PostgresDbBuilder {
            url: None,
            max_connections: 10,
            connect_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(30 * 60),
            idle_timeout: Duration::from_secs(10 * 60),
            schema: "public".into(),
            tables: TableNames::default(),
            create_tables: true,
            upgrade_tables: true,
            schema_version: None,
            #[cfg(any(test, feature = "test-support"))]
            poll_every: None,
        }
    }
}

/// Leaves the URL out: it may hold a password.
impl fmt::Debug for PostgresDbBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDbBuilder")
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("schema", &self.schema)
            .field("tables", &self.tables)
            .field("create_tables", &self.create_tables)
            .field("upgrade_tables", &self.upgrade_tables)
            .finish_non_exhaustive()
    }
}

builder!(PostgresDbBuilder);

impl PostgresDbBuilder {
    /// The server and database: `postgres://user:password@host:port/database`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The most connections the store opens (default 10).
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// How long to wait for a connection (default 30 s): at startup, where an unreachable
    /// server is retried until then, and later whenever all connections are busy.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest a connection is kept open (default 30 minutes): then it is closed, as the
    /// next call comes, and another opened when needed. The server's session gathers caches as
    /// it lives, and a failover or a pooler in front of the server wants sessions to end.
    /// `Duration::MAX` keeps connections however long they live.
    pub fn max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime;
        self
    }

    /// The longest a connection is kept idle (default 10 minutes): a store busy for a moment
    /// gives back, as the next call comes, the sessions it no longer needs. `Duration::MAX`
    /// keeps idle connections.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// The schema the tables live in (default `public`); created if missing, unless the
    /// builder may not [create tables](Self::create_tables).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }
}
