//! The worker's counters: what it has done since it started, for logs and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a [`Worker`](super::Worker) keeps as it works, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct WorkerStats {
    continued: AtomicU64,
    recovered: AtomicU64,
    failed: AtomicU64,
    lost_claims: AtomicU64,
    expired: AtomicU64,
    in_flight: AtomicU64,
}

/// The counters of a [`WorkerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Decided runs continued.
    pub continued: u64,
    /// Runs left running by a dead process, taken over and resumed.
    pub recovered: u64,
    /// Continues and recoveries that failed.
    pub failed: u64,
    /// Runs this worker went to take and found changed: claimed first by another worker, no
    /// longer stale, taken over from it, or with a row pending again.
    pub lost_claims: u64,
    /// Approval rows the worker's sweeps marked expired.
    pub expired: u64,
    /// Continues and recoveries under way now.
    pub in_flight: u64,
}

impl WorkerStats {
    /// The counters now.
    pub fn snapshot(&self) -> WorkerCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WorkerCounts {
            continued: read(&self.continued),
            recovered: read(&self.recovered),
            failed: read(&self.failed),
            lost_claims: read(&self.lost_claims),
            expired: read(&self.expired),
            in_flight: read(&self.in_flight),
        }
    }

    pub(super) fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn add_continued(&self) {
        self.continued.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_recovered(&self) {
        self.recovered.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_lost_claim(&self) {
        self.lost_claims.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_expired(&self, rows: u64) {
        self.expired.fetch_add(rows, Ordering::Relaxed);
    }
}
