//! A continue's hold on the run it claimed, kept while it resumes the run.
//!
//! A recovery takes a run for dead once it has stood `running`, unwritten, for `stale_after`.
//! A continue whose tools or model turns take longer than that is alive all the same, so it
//! renews its claim every [`RENEW_EVERY`] ([`Store::renew_claim`]). A renewal that finds the
//! run taken over (reclaimed, or released by an admin) tells the continue to start nothing more
//! (see [`taken_over`]) and not to store its outcome over the taker's; so does one made at the
//! end when a renewal failed. A continue that ends within [`RENEW_EVERY`] writes nothing more
//! than before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::store::Store;

/// How often a continue renews its claim: well under any `stale_after` worth setting.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(20);

tokio::task_local! {
    /// Set once the hold of the continue this task runs is found taken over.
    static TAKEN_OVER: Arc<AtomicBool>;
}

/// True when the continue this task runs has lost its run to another (which does its work
/// again): it starts no model turn and no tool more. False outside a continue.
pub(crate) fn taken_over() -> bool {
    TAKEN_OVER.try_with(|flag| flag.load(Ordering::Relaxed)).unwrap_or(false)
}

/// The claim on a run.
pub(crate) struct Hold<'s> {
    store: &'s dyn Store,
    run_id: &'s str,
    stamps: Mutex<Stamps>,
}

/// The run's stamps as this hold knows them.
#[derive(Debug, Clone)]
struct Stamps {
    /// The stamp the claim or its last renewal left.
    held_at: DateTime<Utc>,
    /// When that was.
    held_since: Instant,
    /// The stamps of renewals that failed since, after they were sent: one may have been
    /// written all the same, and then the run bears it rather than `held_at`.
    maybe: Vec<DateTime<Utc>>,
}

impl<'s> Hold<'s> {
    /// The claim on run `run_id` that left it stamped `held_at`.
    pub(crate) fn new(store: &'s dyn Store, run_id: &'s str, held_at: DateTime<Utc>) -> Self {
        let stamps = Stamps { held_at, held_since: Instant::now(), maybe: Vec::new() };
        Hold { store, run_id, stamps: Mutex::new(stamps) }
    }

    /// Runs `work` to its end while renewing the claim, and returns what it gave, or
    /// [`Error::RunTakenOver`] when the run was taken over meanwhile (then `work` finishes what
    /// it has under way and starts nothing more: see [`taken_over`]).
    pub(crate) async fn keep<T>(self, work: impl Future<Output = T>) -> Result<T> {
        let (done, taken) = (Notify::new(), Arc::new(AtomicBool::new(false)));
        // On the heap once: the run's work is a large future, which the wrappers below would
        // otherwise copy as each takes it.
        let work = Box::pin(work);
        let work = TAKEN_OVER.scope(Arc::clone(&taken), async {
            let output = work.await;
            done.notify_one();
            output
        });
        let (output, taken_over) = tokio::join!(work, self.renew_until(&done, &taken));
        if let Some(taken_over) = taken_over {
            return Err(taken_over);
        }
        let stamps = self.stamps();
        if !stamps.maybe.is_empty() || stamps.held_since.elapsed() >= RENEW_EVERY {
            // A renewal failed, or none was made for a while (the task was held up: a tool that
            // blocked it, a paused process): a recovery may have taken the run meanwhile.
            self.renew().await?;
        }
        Ok(output)
    }

    /// Renews the claim every [`RENEW_EVERY`] until `done` (a renewal under way is finished
    /// first) or until a renewal finds the run taken over, which it marks in `taken` and
    /// returns; a renewal that fails otherwise is tried again at the next.
    async fn renew_until(&self, done: &Notify, taken: &AtomicBool) -> Option<Error> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = done.notified() => return None,
            }
            match self.renew().await {
                Ok(()) => {}
                Err(error @ (Error::RunTakenOver { .. } | Error::RunNotFound(_))) => {
                    taken.store(true, Ordering::Relaxed);
                    return Some(error);
                }
                Err(error) => tracing::warn!(run_id = self.run_id, %error, "a continue could not renew its claim"),
            }
        }
    }

    /// Stamps the run anew, from the stamp it bears: the last one known, or one a failed
    /// renewal may have left.
    async fn renew(&self) -> Result<()> {
        let Stamps { held_at, maybe, .. } = self.stamps();
        let renewed_at = crate::now();
        let mut renewed = Err(Error::RunTakenOver { run_id: self.run_id.to_owned() });
        for stamp in std::iter::once(held_at).chain(maybe) {
            renewed = self.store.renew_claim(self.run_id, stamp, renewed_at).await;
            if !matches!(renewed, Err(Error::RunTakenOver { .. })) {
                break;
            }
        }
        let mut stamps = self.stamps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match renewed {
            Ok(()) => *stamps = Stamps { held_at: renewed_at, held_since: Instant::now(), maybe: Vec::new() },
            Err(Error::RunTakenOver { .. } | Error::RunNotFound(_)) => {}
            Err(_) => stamps.maybe.push(renewed_at),
        }
        renewed
    }

    fn stamps(&self) -> Stamps {
        self.stamps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
