//! A continue's hold on the run it claimed, kept while it resumes the run.
//!
//! A recovery takes a run for dead once it has stood `running`, unwritten, for `stale_after`.
//! A continue whose tools or model turns take longer than that is alive all the same, so it
//! renews its claim every [`RENEW_EVERY`] ([`Store::renew_claim`]). A renewal that finds the
//! run taken over (reclaimed, or released by an admin) tells the continue not to store its
//! outcome over the taker's; so does one made at the end when the renewals have failed for a
//! while. A continue that ends within [`RENEW_EVERY`] writes nothing more than before.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::store::Store;

/// How often a continue renews its claim: well under any `stale_after` worth setting.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(20);

/// How long renewals may fail before the continue asks once more, at its end, whether it still
/// holds the run.
const UNRENEWED_AT_MOST: Duration = Duration::from_secs(40);

/// The claim on a run.
pub(crate) struct Hold<'s> {
    store: &'s dyn Store,
    run_id: &'s str,
    /// The run's stamp as the claim or its last renewal left it, and when that was.
    last: Mutex<(DateTime<Utc>, Instant)>,
}

impl<'s> Hold<'s> {
    /// The claim on run `run_id` that left it stamped `held_at`.
    pub(crate) fn new(store: &'s dyn Store, run_id: &'s str, held_at: DateTime<Utc>) -> Self {
        Hold { store, run_id, last: Mutex::new((held_at, Instant::now())) }
    }

    /// Runs `work` to its end while renewing the claim, and returns what it gave, or
    /// [`Error::RunTakenOver`] when the run was taken over meanwhile (then `work` still runs
    /// to its end, as a tool under way is not stopped half-way).
    pub(crate) async fn keep<T>(self, work: impl Future<Output = T>) -> Result<T> {
        let done = Notify::new();
        let work = async {
            let output = work.await;
            done.notify_one();
            output
        };
        let (output, taken_over) = tokio::join!(work, self.renew_until(&done));
        if let Some(taken_over) = taken_over {
            return Err(taken_over);
        }
        if self.last().1.elapsed() >= UNRENEWED_AT_MOST {
            // The renewals failed for a while: a recovery may have taken the run meanwhile.
            self.renew().await?;
        }
        Ok(output)
    }

    /// Renews the claim every [`RENEW_EVERY`] until `done` (a renewal under way is finished
    /// first) or until a renewal finds the run taken over, which it returns; a renewal that
    /// fails otherwise is tried again at the next.
    async fn renew_until(&self, done: &Notify) -> Option<Error> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = done.notified() => return None,
            }
            match self.renew().await {
                Ok(()) => {}
                Err(error @ (Error::RunTakenOver { .. } | Error::RunNotFound(_))) => return Some(error),
                Err(error) => tracing::warn!(run_id = self.run_id, %error, "a continue could not renew its claim"),
            }
        }
    }

    async fn renew(&self) -> Result<()> {
        let renewed_at = self.store.renew_claim(self.run_id, self.last().0).await?;
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (renewed_at, Instant::now());
        Ok(())
    }

    fn last(&self) -> (DateTime<Utc>, Instant) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
