//! How the waiters of a SQL store learn that their row may have been resolved.
//!
//! A resolution made through the waiter's own handle (any clone) wakes it at once: the store
//! wakes the row's waiters after each write. One made through another handle, in this process
//! or another, reaches it through a [`ResolutionFeed`] where the database carries announcements
//! (Postgres), which each handle's [`Announcer`] sends after its commits, and otherwise by
//! polling (SQLite, whose processes share nothing but the file).

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
/// to, which the feed's heartbeat finds within a minute), or when an [`Announcer`] fails to send
/// the announcement that follows a commit; this bounds the delay then, at a read a minute.
const RECHECK_INTERVAL_FEED_UP: Duration = Duration::from_secs(60);

/// The resolutions committed through any handle on a store's tables, announced as they happen.
pub(crate) trait ResolutionFeed: Debug + Send + Sync {
    /// True while the feed is up: every resolution committed from now on will wake its row's
    /// waiters (but for the losses [`RECHECK_INTERVAL_FEED_UP`] bounds). Starts the feed if it
    /// is not running; a feed that comes up or goes down wakes every waiter, to read again.
    fn is_live(&self) -> bool;

    /// Whether the feed also announces the trail's new events (see `Store::wait_for_events`):
    /// while it is live, followers of the trail need not poll either.
    fn announces_events(&self) -> bool;

    /// Stops the feed for good: the store is closing.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// What a commit resolved (or deleted), for the waiters of other handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// No row: the commit wrote runs, events or votes only.
    Nothing,
    /// These rows.
    Rows(Vec<String>),
    /// Rows the commit does not name: every waiter reads its row again.
    Any,
}

/// Tells other handles, in any process, of the commits made through this one, where the
/// database carries such news.
pub(crate) trait Announcer: Debug + Send + Sync {
    /// Announces a commit: that the trail or the runs changed, and which rows it `resolved`.
    /// Returns once the announcement is sent; one that fails is logged, not returned, since the
    /// commit stands (waiters find it at their next read, see [`RECHECK_INTERVAL_FEED_UP`]).
    fn committed(&self, resolved: Resolved) -> BoxFuture<'_, ()>;

    /// Sends what is left to send and stops for good: the store is closing.
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
