//! Waiting for the trail to grow (or the store to change): the loop behind every
//! [`Store::wait_for_events`](crate::store::Store::wait_for_events), and the signal a store
//! sends it.
//!
//! As with rows' waiters (see [`super::ResolutionWaiters`]), a signal carries no news, only
//! "read again": the waiter decides from the `seq` it reads, so a spurious signal costs a read
//! and a missed one is made up by the poll interval of stores that other processes write to.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::Result;

/// The tasks following a store's trail: a store signals after each write that may have
/// appended events. For store implementations; clones of a store share one.
#[derive(Debug, Default)]
pub struct TrailSignal {
    notify: Notify,
}

impl TrailSignal {
    /// No followers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every follower to read the trail's head again: after a write that may have
    /// appended events, or when signals may have been lost.
    pub fn appended(&self) {
        self.notify.notify_waiters();
    }

    /// Waits until `read_last` (the store's [`last_event_seq`](crate::store::Store::last_event_seq))
    /// reads past `after`, a signal comes, or `timeout` passes, and returns the last `seq` read.
    ///
    /// A signal ends the wait even when the trail has not grown: the store signals other
    /// changes too (a run's status), which a follower may want to read. `read_last` runs at
    /// first, after a signal, and, for stores that other processes write to without signalling
    /// this one, every `poll_interval` (asked before each read; `None`: every write signals).
    pub async fn wait<F, Fut>(
        &self,
        after: i64,
        timeout: Duration,
        poll_interval: impl Fn() -> Option<Duration>,
        mut read_last: F,
    ) -> Result<i64>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<i64>>,
    {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Registered before the read, so a signal from here on ends the sleep below.
            let signalled = self.notify.notified();
            tokio::pin!(signalled);
            signalled.as_mut().enable();
            let poll = poll_interval();
            let last = read_last().await?;
            let now = Instant::now();
            if last > after || deadline.is_some_and(|deadline| now >= deadline) {
                return Ok(last);
            }
            let wake_at = match (deadline, poll.and_then(|poll| now.checked_add(poll))) {
                (Some(deadline), Some(poll)) => Some(deadline.min(poll)),
                (deadline, poll) => deadline.or(poll),
            };
            let woken = match wake_at {
                Some(at) => tokio::time::timeout_at(at, signalled).await.is_ok(),
                None => {
                    signalled.await;
                    true
                }
            };
            if woken {
                return read_last().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_trail_already_past_the_mark_returns_at_once() {
        let signal = TrailSignal::new();
        let last = signal.wait(3, Duration::from_secs(60), || None, || async { Ok(5) }).await.unwrap();
        assert_eq!(last, 5);
    }

    #[tokio::test]
    async fn a_signal_ends_the_wait_with_the_head_as_it_stands() {
        let signal = Arc::new(TrailSignal::new());
        let head = Arc::new(AtomicI64::new(1));
        let waiter = |signal: Arc<TrailSignal>, head: Arc<AtomicI64>| {
            tokio::spawn(async move {
                let read = || {
                    let head = head.clone();
                    async move { Ok(head.load(Ordering::SeqCst)) }
                };
                signal.wait(1, Duration::from_secs(3600), || None, read).await
            })
        };
        // Signalled with nothing new (a run changed, say): it returns the same head.
        let unchanged = waiter(signal.clone(), head.clone());
        while !unchanged.is_finished() {
            tokio::task::yield_now().await;
            signal.appended();
        }
        assert_eq!(unchanged.await.unwrap().unwrap(), 1);
        // Signalled after the trail grew: the new head.
        let grown = waiter(signal.clone(), head.clone());
        tokio::task::yield_now().await;
        head.store(2, Ordering::SeqCst);
        while !grown.is_finished() {
            signal.appended();
            tokio::task::yield_now().await;
        }
        assert_eq!(grown.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn the_timeout_returns_the_head_as_it_stands() {
        let signal = TrailSignal::new();
        let last = signal.wait(7, Duration::from_millis(20), || None, || async { Ok(7) }).await.unwrap();
        assert_eq!(last, 7);
    }

    #[tokio::test]
    async fn without_signals_the_poll_interval_reads_again() {
        let signal = TrailSignal::new();
        let reads = AtomicI64::new(0);
        let read = || {
            let n = reads.fetch_add(1, Ordering::SeqCst);
            async move { Ok(if n >= 3 { 9 } else { 0 }) }
        };
        let last = signal.wait(0, Duration::from_secs(3600), || Some(Duration::from_millis(5)), read).await.unwrap();
        assert_eq!(last, 9);
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }
}
