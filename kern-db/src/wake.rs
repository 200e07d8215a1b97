//! How the waiters of a SQL store learn that their row may have been resolved.
//!
//! A resolution made through the waiter's own handle (any clone) wakes it at once: the store
//! wakes the row's waiters after each write. One made through another handle, in this process
//! or another, reaches it through a [`ResolutionFeed`] where the database announces commits
//! (Postgres), and otherwise by polling (SQLite, whose processes share nothing but the file).

use std::fmt::Debug;
use std::time::Duration;

use kern_core::BoxFuture;

/// How often a waiter reads its row when nothing announces other handles' resolutions. A read
/// by key from a local file takes microseconds, so a tenth of a second keeps the delay below
/// what a person notices at a negligible cost.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a waiter reads its row while its store's feed is down. The reads cross the network
/// to a server that may be struggling (a lost connection often means a restart or an overload),
/// so they are rarer than [`POLL_INTERVAL`]'s.
const POLL_INTERVAL_FEED_DOWN: Duration = Duration::from_secs(1);

/// How often a waiter reads its row while its store's feed is up. A feed loses announcements
/// only on a connection that died with no sign (a half-open TCP link shows nothing until written
/// to), or when a writer's link fails between its commit and the announcement that follows it
/// (see `postgres::notify`); this bounds the delay then, at a read a minute.
const RECHECK_INTERVAL_FEED_UP: Duration = Duration::from_secs(60);

/// The resolutions committed through any handle on a store's tables, announced as they happen.
pub(crate) trait ResolutionFeed: Debug + Send + Sync {
    /// True while the feed is up: every resolution committed from now on will wake its row's
    /// waiters (but for the losses [`RECHECK_INTERVAL_FEED_UP`] bounds). Starts the feed if it is not running; a feed that comes up or goes down wakes
    /// every waiter, to read again.
    fn is_live(&self) -> bool;

    /// Whether the feed also announces the trail's new events (see `Store::wait_for_events`):
    /// while it is live, followers of the trail need not poll either.
    fn announces_events(&self) -> bool;

    /// Stops the feed for good: the store is closing.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// How long a follower of the trail may go without reading its head when nothing wakes it: as
/// long as a waiter's row, when the feed announces events too, and otherwise as if there were
/// no feed.
pub(crate) fn event_poll_interval(feed: Option<&dyn ResolutionFeed>) -> Duration {
    poll_interval(feed.filter(|feed| feed.announces_events()))
}

/// How long a waiter's pending row may go unread when nothing wakes it, asked before each read.
pub(crate) fn poll_interval(feed: Option<&dyn ResolutionFeed>) -> Duration {
    match feed {
        None => POLL_INTERVAL,
        Some(feed) if feed.is_live() => RECHECK_INTERVAL_FEED_UP,
        Some(_) => POLL_INTERVAL_FEED_DOWN,
    }
}
