//! For implementing [`Store`](super::Store): what every store shares, so that each keeps the
//! same semantics without writing them again. Programs that only use a store need none of it.
//!
//! - [`check_save`] and [`check_update`]: what a store refuses to write (keys it could not
//!   look up, JSON it could not read back), before it writes anything.
//! - [`ResolutionRules`]: which updates may resolve which rows, what resolution data each pause
//!   type takes, and the error that says why an update did not apply.
//! - [`DecisionRules`]: who may decide a row under its policy, when votes make a quorum, and
//!   what a decision leaves on the row, in the votes and on the trail
//!   ([`crate::trail`] hashes the events).
//! - [`ResolutionWaiters`]: the wait behind [`Store::wait_for_resolution`](super::Store::wait_for_resolution),
//!   and the wake-ups a store sends it after its writes.
//! - [`TrailSignal`]: the wait behind [`Store::wait_for_events`](super::Store::wait_for_events),
//!   and the signal a store sends it after its writes.
//! - [`stale_cutoff`]: the bound of [`Store::reclaim_run`](super::Store::reclaim_run)'s
//!   compare-and-set.

mod decision;
mod input;
mod resolution;
mod signal;
mod wait;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

pub use decision::{DecisionEffect, DecisionRules, check_eligible};
pub use input::{check_api_key, check_save, check_update};
pub use resolution::ResolutionRules;
pub use signal::TrailSignal;
pub use wait::ResolutionWaiters;

/// How often the default [`Store::wait_for_resolution`](super::Store::wait_for_resolution) reads
/// the row again. A store that knows of no resolution as it happens can only poll; a quarter
/// second is less than a person waiting on an admin notices, and keeps a waiter to four reads a
/// second where each read may cross the network.
pub const RESOLUTION_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The latest `updated_at` at which a `running` run counts as abandoned at `now`, for
/// [`Store::reclaim_run`](super::Store::reclaim_run): `now - stale_after`, or `None` when that
/// reaches back before the Unix epoch. kern stamps runs with the clock, so none was written
/// then; and every database can compare a bound from the epoch on.
pub fn stale_cutoff(now: DateTime<Utc>, stale_after: Duration) -> Option<DateTime<Utc>> {
    let cutoff = now.checked_sub_signed(TimeDelta::from_std(stale_after).ok()?)?;
    (cutoff >= DateTime::UNIX_EPOCH).then_some(cutoff)
}
