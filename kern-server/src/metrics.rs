//! The server's Prometheus metrics, kept in atomics and written out in the text format on
//! each scrape: request latency by route, time from a row's creation to its decision,
//! conflicts, expiries, and run outcomes. The pending count is read from the store at scrape,
//! and the counters of a worker running beside the server (if one was given) at scrape too.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kern_core::approval::Approval;
use kern_core::run::RunStatus;
use kern_core::worker::WorkerStats;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Upper bounds of the time-to-decision buckets, in seconds (a second to a day).
const DECISION_BUCKETS: [f64; 8] = [1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0];

/// Every metric of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), Histogram>>,
    decisions: Mutex<Histogram>,
    conflicts: AtomicU64,
    expired: AtomicU64,
    runs: Mutex<BTreeMap<&'static str, u64>>,
    worker: Option<Arc<WorkerStats>>,
}

/// A cumulative histogram: counts per bucket, their sum and count.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len()];
        }
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in bounds.iter().enumerate() {
            let count = self.buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// A request to `route` (its matched path) answered `status` after `elapsed`.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        if status == 409 {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.requests)
            .entry((route.to_owned(), status))
            .or_default()
            .observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
    }

    /// A row this server decided, `waited` after it was created.
    pub fn decision(&self, waited: Duration) {
        lock(&self.decisions).observe(&DECISION_BUCKETS, waited.as_secs_f64());
    }

    /// `row`, as a decision here left it: counted with the time it waited, if it is resolved.
    pub fn decided(&self, row: &Approval) {
        if let Some(resolved_at) = row.resolved_at {
            self.decision((resolved_at - row.created_at).to_std().unwrap_or_default());
        }
    }

    /// Rows an expiry sweep marked expired.
    pub fn expired(&self, rows: u64) {
        self.expired.fetch_add(rows, Ordering::Relaxed);
    }

    /// Metrics that also report the counters of `worker`.
    pub fn with_worker(worker: Arc<WorkerStats>) -> Self {
        Metrics { worker: Some(worker), ..Metrics::default() }
    }

    /// A run or continue this server carried out ended in `status`.
    pub fn run(&self, status: RunStatus) {
        *lock(&self.runs).entry(status.as_str()).or_default() += 1;
    }

    /// The text exposition, with `pending` rows in the store.
    pub fn render(&self, pending: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP kern_approvals_pending Approval rows waiting for a decision.\n");
        out.push_str("# TYPE kern_approvals_pending gauge\n");
        let _ = writeln!(out, "kern_approvals_pending {pending}");
        out.push_str("# HELP kern_approval_decision_seconds Time from a row's creation to its decision here.\n");
        out.push_str("# TYPE kern_approval_decision_seconds histogram\n");
        lock(&self.decisions).write(&mut out, "kern_approval_decision_seconds", "", &DECISION_BUCKETS);
        out.push_str("# HELP kern_conflicts_total Requests answered 409 Conflict.\n");
        out.push_str("# TYPE kern_conflicts_total counter\n");
        let _ = writeln!(out, "kern_conflicts_total {}", self.conflicts.load(Ordering::Relaxed));
        out.push_str("# HELP kern_approvals_expired_total Rows this server's sweep marked expired.\n");
        out.push_str("# TYPE kern_approvals_expired_total counter\n");
        let _ = writeln!(out, "kern_approvals_expired_total {}", self.expired.load(Ordering::Relaxed));
        out.push_str("# HELP kern_runs_total Runs and continues this server carried out, by outcome.\n");
        out.push_str("# TYPE kern_runs_total counter\n");
        for (status, count) in lock(&self.runs).iter() {
            let _ = writeln!(out, "kern_runs_total{{status=\"{status}\"}} {count}");
        }
        out.push_str("# HELP kern_http_request_duration_seconds Request latency by route and status.\n");
        out.push_str("# TYPE kern_http_request_duration_seconds histogram\n");
        for ((route, status), histogram) in lock(&self.requests).iter() {
            let labels = format!("route=\"{}\",status=\"{status}\"", route.replace('"', "'"));
            histogram.write(&mut out, "kern_http_request_duration_seconds", &labels, &LATENCY_BUCKETS);
        }
        if let Some(worker) = &self.worker {
            let counts = worker.snapshot();
            out.push_str("# HELP kern_worker_runs_total Runs the worker took up, by what became of them.\n");
            out.push_str("# TYPE kern_worker_runs_total counter\n");
            for (outcome, count) in [
                ("continued", counts.continued),
                ("recovered", counts.recovered),
                ("failed", counts.failed),
                ("lost_claim", counts.lost_claims),
            ] {
                let _ = writeln!(out, "kern_worker_runs_total{{outcome=\"{outcome}\"}} {count}");
            }
            out.push_str("# HELP kern_worker_approvals_expired_total Rows the worker's sweeps marked expired.\n");
            out.push_str("# TYPE kern_worker_approvals_expired_total counter\n");
            let _ = writeln!(out, "kern_worker_approvals_expired_total {}", counts.expired);
            out.push_str("# HELP kern_worker_in_flight Continues and recoveries under way.\n");
            out.push_str("# TYPE kern_worker_in_flight gauge\n");
            let _ = writeln!(out, "kern_worker_in_flight {}", counts.in_flight);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_what_was_observed() {
        let metrics = Metrics::default();
        metrics.request("/approvals", 200, Duration::from_millis(3));
        metrics.request("/approvals/{approval_id}/resolve", 409, Duration::from_millis(1));
        metrics.decision(Duration::from_secs(30));
        metrics.run(RunStatus::Paused);
        let text = metrics.render(4);
        assert!(text.contains("kern_approvals_pending 4\n"));
        assert!(text.contains("kern_conflicts_total 1\n"));
        assert!(text.contains("kern_runs_total{status=\"paused\"} 1\n"));
        assert!(text.contains("kern_approval_decision_seconds_bucket{le=\"60\"} 1\n"));
        assert!(text.contains("kern_approval_decision_seconds_bucket{le=\"10\"} 0\n"));
        assert!(text.contains(
            "kern_http_request_duration_seconds_bucket{route=\"/approvals\",status=\"200\",le=\"0.005\"} 1\n"
        ));
        assert!(!text.contains("kern_worker"), "no worker, no worker metrics");
    }

    #[test]
    fn a_worker_adds_its_counters_to_the_exposition() {
        let worker = Arc::new(WorkerStats::default());
        let text = Metrics::with_worker(worker).render(0);
        assert!(text.contains("kern_worker_runs_total{outcome=\"continued\"} 0\n"));
        assert!(text.contains("kern_worker_in_flight 0\n"));
    }
}
