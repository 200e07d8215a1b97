//! An in-memory [`Store`]: for tests, examples and single-process programs that need no
//! durability. Same semantics as the database stores, checked by the same test suite.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Store;
use super::backend::{ResolutionRules, ResolutionWaiters, check_save, check_update, stale_cutoff};
use crate::BoxFuture;
use crate::approval::{Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalUpdate};
use crate::error::{Error, Result};
use crate::run::{RunRecord, RunStatus};

/// A store that keeps everything in process memory. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryDb {
    inner: Arc<Mutex<Tables>>,
    /// Every write goes through a clone of this store, which wakes the rows' waiters: they
    /// never poll.
    waiters: Arc<ResolutionWaiters>,
}

#[derive(Debug, Default)]
struct Tables {
    runs: HashMap<String, RunRecord>,
    approvals: HashMap<String, Approval>,
}

impl MemoryDb {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied write: every method
        // validates first and mutates last, so the data stays usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Tables {
    /// The resolution of [`Store::update_approval`]: checked first, applied last. Under the
    /// lock the row cannot change between the two, and a row that passes the check is one the
    /// compare-and-set of a database store would match.
    fn resolve(&mut self, id: &str, update: ApprovalUpdate) -> Result<Approval> {
        let now = crate::now();
        ResolutionRules::new(id, &update, now).check(self.approvals.get(id))?;
        let row = self.approvals.get_mut(id).expect("checked above");
        row.status = update.status;
        row.resolved_by = update.resolved_by;
        row.resolved_at = Some(update.resolved_at.unwrap_or(now));
        row.resolution_data = update.resolution_data;
        row.updated_at = now;
        Ok(row.clone())
    }

    fn set_run_status(&mut self, run_id: &str, status: RunStatus) -> u64 {
        let mut changed = 0;
        for row in self.approvals.values_mut().filter(|a| a.run_id == run_id && a.run_status != status) {
            row.run_status = status;
            changed += 1;
        }
        changed
    }
}

impl Store for MemoryDb {
    fn save_runs<'a>(&'a self, runs: &'a [RunRecord], new_approvals: &'a [Approval]) -> BoxFuture<'a, Result<()>> {
        if let Err(err) = check_save(runs, new_approvals) {
            return ready(Err(err));
        }
        let mut tables = self.tables();
        let mut batch = HashSet::new();
        if let Some(dup) =
            new_approvals.iter().find(|a| tables.approvals.contains_key(&a.id) || !batch.insert(a.id.as_str()))
        {
            return ready(Err(Error::database(std::io::Error::other(format!("approval `{}` already exists", dup.id)))));
        }
        for approval in new_approvals {
            tables.approvals.insert(approval.id.clone(), approval.clone());
        }
        for run in runs {
            tables.runs.insert(run.run_id.clone(), run.clone());
            tables.set_run_status(&run.run_id, run.status);
        }
        ready(Ok(()))
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        ready(Ok(self.tables().runs.get(run_id).cloned()))
    }

    fn claim_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<RunRecord>> {
        let mut tables = self.tables();
        let result = match tables.runs.get_mut(run_id) {
            None => Err(Error::RunNotFound(run_id.to_owned())),
            Some(run) if run.status != RunStatus::Paused => {
                Err(Error::RunNotPaused { run_id: run_id.to_owned(), status: run.status })
            }
            Some(run) => {
                run.status = RunStatus::Running;
                run.updated_at = crate::now();
                Ok(run.clone())
            }
        };
        ready(result)
    }

    fn reclaim_run<'a>(&'a self, run_id: &'a str, stale_after: Duration) -> BoxFuture<'a, Result<RunRecord>> {
        let mut tables = self.tables();
        let now = crate::now();
        let cutoff = stale_cutoff(now, stale_after);
        let result = match tables.runs.get_mut(run_id) {
            None => Err(Error::RunNotFound(run_id.to_owned())),
            Some(run) if run.status == RunStatus::Running && cutoff.is_some_and(|cutoff| run.updated_at <= cutoff) => {
                run.updated_at = now;
                Ok(run.clone())
            }
            Some(run) => Err(Error::RunNotStale { run_id: run_id.to_owned(), status: run.status }),
        };
        ready(result)
    }

    fn session_runs<'a>(&'a self, session_id: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tables = self.tables();
        let mut runs: Vec<RunRecord> =
            tables.runs.values().filter(|r| r.session_id == session_id && r.parent_run_id.is_none()).cloned().collect();
        runs.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
        let skip = runs.len().saturating_sub(limit);
        ready(Ok(runs.split_off(skip)))
    }

    fn get_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>>> {
        ready(Ok(self.tables().approvals.get(id).cloned()))
    }

    fn list_approvals<'a>(&'a self, query: &'a ApprovalQuery) -> BoxFuture<'a, Result<ApprovalPage>> {
        let tables = self.tables();
        let mut items: Vec<Approval> = tables.approvals.values().filter(|a| query.matches(a)).cloned().collect();
        items.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let total = items.len() as u64;
        let offset = usize::try_from(query.offset()).unwrap_or(usize::MAX);
        let items = items.into_iter().skip(offset).take(query.effective_limit() as usize).collect();
        ready(Ok(ApprovalPage { items, total, unreadable: Vec::new() }))
    }

    fn update_approval<'a>(&'a self, id: &'a str, update: ApprovalUpdate) -> BoxFuture<'a, Result<Approval>> {
        let resolved = check_update(&update).and_then(|()| self.tables().resolve(id, update));
        if resolved.is_ok() {
            self.waiters.wake(id);
        }
        ready(resolved)
    }

    fn delete_approval<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        let deleted = self.tables().approvals.remove(id).is_some();
        if deleted {
            self.waiters.wake(id);
        }
        ready(Ok(deleted))
    }

    fn count_pending_approvals<'a>(&'a self, user_id: Option<&'a str>) -> BoxFuture<'a, Result<u64>> {
        let tables = self.tables();
        let count = tables
            .approvals
            .values()
            .filter(|a| a.status == ApprovalStatus::Pending && user_id.is_none_or(|u| a.user_id.as_deref() == Some(u)))
            .count();
        ready(Ok(count as u64))
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64>> {
        let mut expired = Vec::new();
        for row in self.tables().approvals.values_mut().filter(|a| a.is_expired_at(now)) {
            row.status = ApprovalStatus::Expired;
            row.updated_at = now;
            expired.push(row.id.clone());
        }
        for id in &expired {
            self.waiters.wake(id);
        }
        ready(Ok(expired.len() as u64))
    }

    fn wait_for_resolution<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Approval>> {
        let read = move || std::future::ready(Ok(self.tables().approvals.get(id).cloned()));
        Box::pin(async move { self.waiters.wait(id, timeout, || None, read).await })
    }
}
