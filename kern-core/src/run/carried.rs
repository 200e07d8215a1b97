//! The runs, continues and recoveries this process carries on tasks of their own (so that a
//! caller that stops waiting cannot abandon one half-way), counted so that a process asked to
//! stop can let them be stored first: one cut off by the process's end is left `running`, for
//! a recovery that may run its approved calls again.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

static CARRIED: AtomicUsize = AtomicUsize::new(0);
static SETTLED: Notify = Notify::const_new();

/// How many runs, continues and recoveries this process is carrying now.
pub fn in_flight() -> usize {
    CARRIED.load(Ordering::Acquire)
}

/// Waits until this process carries no run, continue or recovery (those started meanwhile
/// included): what a server or worker asked to stop awaits before its process ends, with a
/// deadline of its own if it wants one.
pub async fn settled() {
    loop {
        let mut notified = std::pin::pin!(SETTLED.notified());
        // Registered before the count is read, so that the last one ending in between is heard.
        notified.as_mut().enable();
        if in_flight() == 0 {
            return;
        }
        notified.await;
    }
}

/// One run, continue or recovery carried, counted while it lives.
pub(crate) struct Carried(());

impl Carried {
    pub(crate) fn start() -> Self {
        CARRIED.fetch_add(1, Ordering::AcqRel);
        Carried(())
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        if CARRIED.fetch_sub(1, Ordering::AcqRel) == 1 {
            SETTLED.notify_waiters();
        }
    }
}
