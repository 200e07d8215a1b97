//! The approval cycle benchmark: the phases of an admin-gated call, measured on kern, as the
//! reference system's own approval benchmark measures them.
//!
//! One cycle: run until the agent pauses on an `#[approval]` tool -> list pending rows ->
//! `update_approval` (approve or reject, compare-and-set on `pending`) -> `continue_run` to
//! completion. Audit mode confirms client-side instead of resolving a row.
//!
//! ```text
//! cargo bench --bench approval_cycle -- [--backend sqlite|postgres|memory] [--n N]
//!     [--concurrency C] [--mode approve|reject|audit] [--warmup W]
//! cargo bench --bench approval_cycle -- --scenario list [--rows 1000000] [--backend ..]
//! cargo bench --bench approval_cycle -- --scenario floor [--n N] [--backend sqlite|postgres]
//! cargo bench --bench approval_cycle -- --scenario store [--n N] [--concurrency C] [--backend ..]
//! ```
//!
//! It prints one line per phase (median and p99 in ms) and, last, one summary line. Under
//! `cargo test` (no `--bench` argument) it runs a small smoke check of every mode instead,
//! verifying the outcome and ignoring the timings.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::stats::percentile;
use common::{Scratch, filler_row, scratch_name};
use kern::prelude::*;
use kern::run::{RunOptions, RunQuery, RunRecord};
use kern::trail::{EventKind, Execution};
use serde_json::json;

static EXECUTED: AtomicU64 = AtomicU64::new(0);

/// Delete `count` records from `table`.
#[approval]
#[tool(requires_confirmation)]
fn delete_records(table: String, count: u32) -> String {
    EXECUTED.fetch_add(1, Ordering::Relaxed);
    format!("deleted {count} from {table}")
}

/// Delete `count` records from `table`.
#[tool(name = "delete_records", requires_confirmation, log_approval)]
fn delete_records_audited(table: String, count: u32) -> String {
    EXECUTED.fetch_add(1, Ordering::Relaxed);
    format!("deleted {count} from {table}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Approve,
    Reject,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    Memory,
}

#[derive(Debug, Clone)]
struct Options {
    kind: Kind,
    n: usize,
    warmup: usize,
    concurrency: usize,
    mode: Mode,
    scenario: Scenario,
}

/// What the program measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The approval cycle.
    Cycle,
    /// The admin's queries on a table of `rows` rows.
    List { rows: usize },
    /// What the database itself allows: a bare durable commit and a bare read, through sqlx.
    Floor,
    /// The store calls of the approve cycle alone, without the agent that makes them.
    Store,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kind: Kind::Sqlite,
            n: 2000,
            warmup: 20,
            concurrency: 1,
            mode: Mode::Approve,
            scenario: Scenario::Cycle,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn parse(args: &[String]) -> Result<Options, BoxError> {
    let mut options = Options::default();
    let mut scenario = "cycle".to_owned();
    let mut rows = 1_000_000;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bench" => {}
            "--backend" => {
                options.kind = match value()?.as_str() {
                    "sqlite" => Kind::Sqlite,
                    "postgres" => Kind::Postgres,
                    "memory" => Kind::Memory,
                    other => return Err(format!("unknown backend `{other}`: sqlite, postgres or memory").into()),
                }
            }
            "--mode" => {
                options.mode = match value()?.as_str() {
                    "approve" => Mode::Approve,
                    "reject" => Mode::Reject,
                    "audit" => Mode::Audit,
                    other => return Err(format!("unknown mode `{other}`: approve, reject or audit").into()),
                }
            }
            "--n" => options.n = value()?.parse()?,
            "--warmup" => options.warmup = value()?.parse()?,
            "--concurrency" => options.concurrency = value()?.parse::<usize>()?.max(1),
            "--rows" => rows = value()?.parse()?,
            "--scenario" => scenario = value()?.clone(),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    options.scenario = match scenario.as_str() {
        "cycle" => Scenario::Cycle,
        "list" => Scenario::List { rows },
        "floor" => Scenario::Floor,
        "store" => Scenario::Store,
        other => return Err(format!("unknown scenario `{other}`: cycle, list, floor or store").into()),
    };
    Ok(options)
}

/// The store under test, how to count its commits, and what to remove afterwards.
struct Backend {
    store: Arc<dyn Store>,
    commits: Box<dyn Fn() -> u64 + Send + Sync>,
    /// The database it works in; none for the memory store.
    scratch: Option<Scratch>,
}

impl Backend {
    /// Deletes the benchmark's database file or Postgres schema.
    async fn remove(self) -> Result<(), BoxError> {
        drop(self.store);
        match self.scratch {
            Some(scratch) => scratch.remove().await,
            None => Ok(()),
        }
    }

    /// What [`Backend::maintain`] does, as the benchmark reports it.
    fn maintenance(&self) -> &'static str {
        match self.scratch {
            None => "no maintenance (memory store)",
            Some(Scratch::File(_)) => "ANALYZE",
            Some(Scratch::Schema { .. }) => "VACUUM (ANALYZE) of the approvals table",
        }
    }

    /// The upkeep a live database gets on its own after a bulk write (see [`Scratch::maintain`]).
    async fn maintain(&self) -> Result<(), BoxError> {
        match &self.scratch {
            Some(scratch) => scratch.maintain().await,
            None => Ok(()),
        }
    }
}

/// Opens a fresh, empty store of `kind` (a new file or schema each time).
async fn open(kind: Kind, tag: &str) -> Result<Backend, BoxError> {
    let name = scratch_name(tag);
    Ok(match kind {
        Kind::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            let db = SqliteDb::builder().db_file(&path).build().await?;
            let counter = db.clone();
            Backend {
                store: Arc::new(db),
                commits: Box::new(move || counter.commit_count()),
                scratch: Some(Scratch::File(path)),
            }
        }
        Kind::Postgres => {
            let url = std::env::var("KERN_TEST_POSTGRES_URL").map_err(
                |_| "set KERN_TEST_POSTGRES_URL to benchmark Postgres (e.g. postgres://postgres@127.0.0.1:5432/test)",
            )?;
            let db = PostgresDb::builder().url(&url).schema(&name).max_connections(40).build().await?;
            let counter = db.clone();
            let scratch = Some(Scratch::Schema { url, schema: name });
            Backend { store: Arc::new(db), commits: Box::new(move || counter.commit_count()), scratch }
        }
        Kind::Memory => Backend { store: Arc::new(MemoryDb::new()), commits: Box::new(|| 0), scratch: None },
    })
}

fn agent(store: Arc<dyn Store>, mode: Mode) -> Result<Agent, kern::Error> {
    let model = ScriptedModel::new()
        .when_user_contains("delete", Reply::call("delete_records", json!({"table": "users", "count": 3})))
        .after_tool("delete_records", Reply::text("Done: {result}"));
    let builder = Agent::builder().id("bench-agent").name("bench-agent").model(model).db(store);
    match mode {
        Mode::Audit => builder.tool(DeleteRecordsAudited),
        Mode::Approve | Mode::Reject => builder.tool(DeleteRecords),
    }
    .build()
}

const PHASES: [&str; 4] = ["run_until_pause", "list_pending", "update_approval", "continue_run"];
const AUDIT_PHASES: [&str; 4] = ["run_until_pause", "list_pending", "confirm_client_side", "continue_run"];

/// One cycle; returns the duration of each phase.
async fn cycle(agent: &Agent, store: &dyn Store, mode: Mode, session: String) -> Result<[Duration; 4], BoxError> {
    let t0 = Instant::now();
    let mut run =
        agent.run_with("please delete 3 user records", RunOptions::default().session_id(session).user_id("u1")).await?;
    if run.status != RunStatus::Paused {
        return Err(format!("run not paused: {} {:?}", run.status, run.content).into());
    }
    let t1 = Instant::now();
    let mine = pending_row_of(store, &run.run_id).await?;
    let t2 = Instant::now();
    match mode {
        Mode::Audit => {
            if mine.is_some() {
                return Err("an audit tool produced a pending row".into());
            }
            run.requirements[0].confirm();
            run.requirements[0].set_resolved_by("bench-admin");
        }
        Mode::Approve | Mode::Reject => {
            let row = mine.ok_or("no pending row for the run")?;
            let status = if mode == Mode::Approve { ApprovalStatus::Approved } else { ApprovalStatus::Rejected };
            store.update_approval(&row.id, resolution(status)).await?;
        }
    }
    let t3 = Instant::now();
    let requirements = if mode == Mode::Audit { run.requirements } else { Vec::new() };
    let done = agent.continue_run(&run.run_id, requirements).await?;
    if done.status != RunStatus::Completed {
        return Err(format!("continue ended {}: {:?}", done.status, done.content).into());
    }
    let t4 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2, t4 - t3])
}

/// The admin's look at the inbox for the row of run `run_id`: the newest page of pending rows,
/// and, when the row is not on it (under concurrency the page may hold other runs' rows only),
/// the pending rows of the run.
async fn pending_row_of(store: &dyn Store, run_id: &str) -> Result<Option<Approval>, BoxError> {
    let pending = store.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending)).await?;
    if let Some(row) = pending.items.into_iter().find(|row| row.run_id == run_id) {
        return Ok(Some(row));
    }
    let query = ApprovalQuery::default().status(ApprovalStatus::Pending).run_id(run_id);
    Ok(store.list_approvals(&query).await?.items.pop())
}

/// The admin's decision of a pending row.
fn resolution(status: ApprovalStatus) -> ApprovalUpdate {
    ApprovalUpdate {
        expected_status: Some(ApprovalStatus::Pending),
        status,
        resolved_by: Some("bench-admin".into()),
        resolved_at: Some(Utc::now()),
        resolution_data: None,
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn backend_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => "sqlite",
        Kind::Postgres => "postgres",
        Kind::Memory => "memory",
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Approve => "approve",
        Mode::Reject => "reject",
        Mode::Audit => "audit",
    }
}

/// Runs `warmup + n` cycles over `concurrency` tasks, verifies the outcome, prints the figures.
async fn run_cycles(options: &Options, print: bool) -> Result<(), BoxError> {
    let backend = open(options.kind, mode_name(options.mode)).await?;
    let result = measure_cycles(options, &backend, print).await;
    backend.remove().await?;
    result
}

async fn measure_cycles(options: &Options, backend: &Backend, print: bool) -> Result<(), BoxError> {
    let agent = agent(backend.store.clone(), options.mode)?;
    let executed_before = EXECUTED.load(Ordering::Relaxed);
    for i in 0..options.warmup {
        cycle(&agent, &*backend.store, options.mode, format!("warmup-{i}")).await?;
    }
    let commits_before = (backend.commits)();
    let (store, mode) = (backend.store.clone(), options.mode);
    let (samples, wall) = time_cycles(options, move |task, i| {
        let (agent, store) = (agent.clone(), store.clone());
        async move { cycle(&agent, &*store, mode, format!("s{task}-{i}")).await }
    })
    .await?;
    let commits = (backend.commits)() - commits_before;

    // Verification (not timed): every measured cycle left what it should.
    let total = options.warmup + options.n;
    let (status, kind) = match options.mode {
        Mode::Approve => (ApprovalStatus::Approved, ApprovalType::Required),
        Mode::Reject => (ApprovalStatus::Rejected, ApprovalType::Required),
        Mode::Audit => (ApprovalStatus::Approved, ApprovalType::Audit),
    };
    let query = ApprovalQuery::default().status(status).approval_type(kind).limit(1);
    let rows = backend.store.list_approvals(&query).await?.total;
    let pending = backend.store.count_pending_approvals(None).await?;
    let executed = EXECUTED.load(Ordering::Relaxed) - executed_before;
    let expected_executions = if options.mode == Mode::Reject { 0 } else { total as u64 };
    if rows != total as u64 || pending != 0 || executed != expected_executions || samples.len() != options.n {
        return Err(format!(
            "verification failed: {rows} {status} rows (want {total}), {pending} pending (want 0), \
             tool ran {executed} times (want {expected_executions}), {} cycles measured (want {})",
            samples.len(),
            options.n
        )
        .into());
    }
    if !print {
        return Ok(());
    }

    let cycles = print_phases(if options.mode == Mode::Audit { &AUDIT_PHASES } else { &PHASES }, &samples);
    println!("verified: {rows} {status} {kind} rows, 0 pending, tool ran {executed} times, {} runs completed", total);
    println!(
        "approval_cycle backend={} mode={} {} peak_rss_mib={:.1}",
        backend_name(options.kind),
        mode_name(options.mode),
        throughput(options, wall, &cycles, commits),
        peak_rss_mib(),
    );
    Ok(())
}

/// The summary's figures of `options.n` cycles that took `wall` in all, `cycles` each (sorted)
/// and `commits` together, as `key=value` pairs.
fn throughput(options: &Options, wall: Duration, cycles: &[Duration], commits: u64) -> String {
    format!(
        "n={} concurrency={} cycles_per_s={:.1} p50_ms={:.3} p99_ms={:.3} commits_per_cycle={:.2}",
        options.n,
        options.concurrency,
        options.n as f64 / wall.as_secs_f64(),
        percentile(cycles, 0.5),
        percentile(cycles, 0.99),
        commits as f64 / options.n as f64,
    )
}

/// Runs `options.n` cycles over `options.concurrency` tasks, each task its share one after
/// another: `cycle(task, i)` is the `i`th cycle of task `task`, and returns how long each of its
/// phases took. Returns every cycle's phases and how long they all took.
async fn time_cycles<F, C>(options: &Options, cycle: F) -> Result<(Vec<[Duration; 4]>, Duration), BoxError>
where
    F: Fn(usize, usize) -> C + Clone + Send + 'static,
    C: Future<Output = Result<[Duration; 4], BoxError>> + Send + 'static,
{
    let started = Instant::now();
    let per_task = options.n.div_ceil(options.concurrency);
    let tasks: Vec<_> = (0..options.concurrency)
        .map(|task| {
            let cycle = cycle.clone();
            let count = per_task.min(options.n.saturating_sub(task * per_task));
            tokio::spawn(async move {
                let mut phases = Vec::with_capacity(count);
                for i in 0..count {
                    phases.push(cycle(task, i).await?);
                }
                Ok::<_, BoxError>(phases)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(options.n);
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok((samples, started.elapsed()))
}

/// Prints the median and p99 of each phase named in `names` and of whole cycles; returns the
/// cycles' durations, sorted.
fn print_phases(names: &[&str; 4], samples: &[[Duration; 4]]) -> Vec<Duration> {
    for (index, name) in names.iter().enumerate() {
        let mut durations: Vec<Duration> = samples.iter().map(|s| s[index]).collect();
        durations.sort();
        println!(
            "phase {name:<20} median_ms={:.3} p99_ms={:.3}",
            percentile(&durations, 0.5),
            percentile(&durations, 0.99)
        );
    }
    let mut cycles: Vec<Duration> = samples.iter().map(|s| s.iter().sum()).collect();
    cycles.sort();
    println!(
        "phase {:<20} median_ms={:.3} p99_ms={:.3}",
        "full_cycle",
        percentile(&cycles, 0.5),
        percentile(&cycles, 0.99)
    );
    cycles
}

/// The records of one approve cycle made by the agent, as the store holds them: the store
/// scenario writes them again, under keys of its own, in each of its cycles.
struct Templates {
    paused: RunRecord,
    row: Approval,
    completed: RunRecord,
    execution: Execution,
}

impl Templates {
    /// Makes one approve cycle with the agent and reads back what it stored.
    async fn record(store: Arc<dyn Store>) -> Result<Self, BoxError> {
        let agent = agent(store.clone(), Mode::Approve)?;
        let options = RunOptions::default().session_id("template").user_id("u1");
        let run = agent.run_with("please delete 3 user records", options).await?;
        let paused = store.load_run(&run.run_id).await?.ok_or("the paused run was not stored")?;
        let row = pending_row_of(&*store, &run.run_id).await?.ok_or("no pending row for the run")?;
        store.update_approval(&row.id, resolution(ApprovalStatus::Approved)).await?;
        agent.continue_run(&run.run_id, Vec::new()).await?;
        let completed = store.load_run(&run.run_id).await?.ok_or("the completed run was not stored")?;
        let trail = store.trail(&row.id).await?;
        let executed = trail.iter().find(|event| event.kind == EventKind::Executed).ok_or("no executed event")?;
        let result_digest = executed.data.get("result_digest").and_then(|digest| digest.as_str());
        let execution = Execution {
            approval_id: row.id.clone(),
            run_id: run.run_id.clone(),
            tool_call_id: row.tool_call_id.clone(),
            principal: executed.principal.clone(),
            succeeded: true,
            result_digest: result_digest.ok_or("the executed event has no result digest")?.to_owned(),
            recovered: false,
        };
        Ok(Templates { paused, row, completed, execution })
    }

    /// The records of the cycle keyed `key`, written now.
    fn keyed(&self, key: &str) -> (RunRecord, Approval, RunRecord, Execution) {
        let (run_id, session_id, now) = (format!("run-{key}"), format!("session-{key}"), Utc::now());
        let run = |template: &RunRecord| RunRecord {
            run_id: run_id.clone(),
            session_id: session_id.clone(),
            created_at: now,
            updated_at: now,
            ..template.clone()
        };
        let row = Approval {
            id: format!("row-{key}"),
            run_id: run_id.clone(),
            session_id: session_id.clone(),
            created_at: now,
            updated_at: now,
            ..self.row.clone()
        };
        let execution = Execution { approval_id: row.id.clone(), run_id: run_id.clone(), ..self.execution.clone() };
        (run(&self.paused), row, run(&self.completed), execution)
    }
}

const STORE_PHASES: [&str; 4] = ["save_paused_run", "list_pending", "update_approval", "continue_calls"];

/// The store calls of the approve cycle, in the order the agent makes them, with the records of
/// one cycle the agent made: what the store costs without the agent, its model, its gate and
/// its loop. Measured beside the floor and the cycle, it shows whether the gap between them is
/// in the store's calls or in what makes them.
async fn run_store_calls(options: &Options, print: bool) -> Result<(), BoxError> {
    let backend = open(options.kind, "store").await?;
    let result = measure_store_calls(options, &backend, print).await;
    backend.remove().await?;
    result
}

async fn measure_store_calls(options: &Options, backend: &Backend, print: bool) -> Result<(), BoxError> {
    let templates = Arc::new(Templates::record(backend.store.clone()).await?);
    for i in 0..options.warmup {
        store_cycle(&*backend.store, &templates, &format!("warmup-{i}")).await?;
    }
    let commits_before = (backend.commits)();
    let store = backend.store.clone();
    let (samples, wall) = time_cycles(options, move |task, i| {
        let (store, templates) = (store.clone(), templates.clone());
        async move { store_cycle(&*store, &templates, &format!("s{task}-{i}")).await }
    })
    .await?;
    let commits = (backend.commits)() - commits_before;

    // Verification (not timed): every cycle left an approved row, a chain that holds, and no run
    // short of its end.
    let total = 1 + options.warmup + options.n;
    let query = ApprovalQuery::default().status(ApprovalStatus::Approved).limit(1);
    let rows = backend.store.list_approvals(&query).await?.total;
    let pending = backend.store.count_pending_approvals(None).await?;
    let trail = backend.store.verify_trail().await?;
    let mut unfinished = 0;
    for status in [RunStatus::Paused, RunStatus::Running] {
        unfinished += backend.store.list_runs(&RunQuery::default().status(status).limit(1)).await?.items.len();
    }
    if rows != total as u64 || pending != 0 || !trail.is_intact() || trail.events != 3 * total as u64 || unfinished != 0
    {
        return Err(format!(
            "verification failed: {rows} approved rows (want {total}), {pending} pending (want 0), \
             {} events (want {}), broken link: {:?}, runs paused or running: {unfinished} (want 0)",
            trail.events,
            3 * total,
            trail.broken
        )
        .into());
    }
    if !print {
        return Ok(());
    }
    let cycles = print_phases(&STORE_PHASES, &samples);
    println!(
        "verified: {rows} approved rows, 0 pending, {} events in chains that hold, no run unfinished",
        trail.events
    );
    println!(
        "approval_cycle_store backend={} {}",
        backend_name(options.kind),
        throughput(options, wall, &cycles, commits)
    );
    Ok(())
}

/// One cycle of store calls keyed `key`; returns the duration of each phase.
async fn store_cycle(store: &dyn Store, templates: &Templates, key: &str) -> Result<[Duration; 4], BoxError> {
    let (paused, row, completed, execution) = templates.keyed(key);
    let (run_id, row_id) = (paused.run_id.clone(), row.id.clone());
    let t0 = Instant::now();
    store.save_runs(&[paused], &[row], &[]).await?;
    let t1 = Instant::now();
    pending_row_of(store, &run_id).await?.ok_or("no pending row for the run")?;
    let t2 = Instant::now();
    store.update_approval(&row_id, resolution(ApprovalStatus::Approved)).await?;
    let t3 = Instant::now();
    store.load_run(&run_id).await?.ok_or("the run was not stored")?;
    store.get_approval(&row_id).await?.ok_or("the row was not stored")?;
    store.claim_run(&run_id).await?;
    store.save_runs(&[completed], &[], &[execution]).await?;
    let t4 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2, t4 - t3])
}

/// Fills the table with `rows` rows (1% pending) and times the admin's two queries, first on
/// the table as the fill left it, then as a live table stands once (auto)vacuum has been by.
async fn run_list(options: &Options, rows: usize, print: bool) -> Result<(), BoxError> {
    let backend = open(options.kind, "list").await?;
    let result = measure_list(options, &backend, rows, print).await;
    backend.remove().await?;
    result
}

async fn measure_list(options: &Options, backend: &Backend, rows: usize, print: bool) -> Result<(), BoxError> {
    const BATCH: usize = 5_000;
    let now = Utc::now();
    let mut written = 0;
    let fill_started = Instant::now();
    while written < rows {
        let batch: Vec<Approval> =
            (written..rows.min(written + BATCH)).map(|i| filler_row(i, i % 100 == 0, now)).collect();
        written += batch.len();
        backend.store.save_runs(&[], &batch, &[]).await?;
    }
    let fill = fill_started.elapsed();
    let fresh = time_queries(options, &*backend.store, rows).await?;
    let maintenance_started = Instant::now();
    backend.maintain().await?;
    let maintenance = maintenance_started.elapsed();
    let maintained = time_queries(options, &*backend.store, rows).await?;
    if !print {
        return Ok(());
    }
    println!("filled {rows} rows in {:.1} s", fill.as_secs_f64());
    println!("phase just_filled  {fresh}");
    println!("{} in {:.1} s", backend.maintenance(), maintenance.as_secs_f64());
    println!("approval_list backend={} rows={rows} {maintained}", backend_name(options.kind));
    Ok(())
}

/// Times listing the newest 50 pending rows and counting the pending rows, verifying both;
/// returns the figures as `key=value` pairs.
async fn time_queries(options: &Options, store: &dyn Store, rows: usize) -> Result<String, BoxError> {
    let pending_query = ApprovalQuery::default().status(ApprovalStatus::Pending).limit(50);
    let (mut list, mut count) = (Vec::new(), Vec::new());
    for _ in 0..options.n.clamp(1, 2_000) {
        let t0 = Instant::now();
        let page = store.list_approvals(&pending_query).await?;
        let t1 = Instant::now();
        let pending = store.count_pending_approvals(None).await?;
        let t2 = Instant::now();
        if page.items.len() != 50.min(rows.div_ceil(100)) || pending != rows.div_ceil(100) as u64 {
            return Err(format!("verification failed: page of {}, {pending} pending", page.items.len()).into());
        }
        list.push(t1 - t0);
        count.push(t2 - t1);
    }
    list.sort();
    count.sort();
    Ok(format!(
        "list_newest_50_pending_p50_ms={:.3} p99_ms={:.3} count_pending_p50_ms={:.3} p99_ms={:.3}",
        percentile(&list, 0.5),
        percentile(&list, 0.99),
        percentile(&count, 0.5),
        percentile(&count, 0.99),
    ))
}

/// Times what no cycle can go below on the store's own database: a durable one-row commit
/// and a one-row read, one prepared statement each through sqlx, with the store's settings,
/// from `--concurrency` connections at once. A cycle makes 4 commits (pause, resolve, claim,
/// finish) and 4 reads (history, the admin's list, the run and its row): a quarter of the
/// commit-and-read pairs per second is the most cycles per second the database allows.
async fn run_floor(options: &Options, print: bool) -> Result<(), BoxError> {
    let backend = open(options.kind, "floor").await?;
    let timed = match &backend.scratch {
        None => Err("the floor scenario measures a database: --backend sqlite or postgres".into()),
        Some(Scratch::File(path)) => {
            let connect = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10));
            let create = "CREATE TABLE floor_probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)";
            time_floor::<sqlx::SqliteConnection>(connect, create, options).await
        }
        Some(Scratch::Schema { url, schema }) => {
            let connect = url.parse::<sqlx::postgres::PgConnectOptions>()?.options([("search_path", schema.as_str())]);
            let create =
                "CREATE TABLE floor_probe (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note TEXT NOT NULL)";
            time_floor::<sqlx::PgConnection>(connect, create, options).await
        }
    };
    backend.remove().await?;
    let Floor { mut commits, mut reads, pairs_per_s } = timed?;
    if !print {
        return Ok(());
    }
    commits.sort();
    reads.sort();
    println!(
        "phase durable_commit       median_ms={:.3} p99_ms={:.3}",
        percentile(&commits, 0.5),
        percentile(&commits, 0.99)
    );
    println!(
        "phase read                 median_ms={:.3} p99_ms={:.3}",
        percentile(&reads, 0.5),
        percentile(&reads, 0.99)
    );
    println!(
        "approval_cycle_floor backend={} n={} concurrency={} commit_read_pairs_per_s={pairs_per_s:.1} max_cycles_per_s={:.1}",
        backend_name(options.kind),
        options.n,
        options.concurrency,
        pairs_per_s / 4.0
    );
    Ok(())
}

/// The timings of the floor scenario.
struct Floor {
    commits: Vec<Duration>,
    reads: Vec<Duration>,
    pairs_per_s: f64,
}

/// Creates the probe table with `create`, then times `options.n` one-row inserts (each its own
/// commit) and as many one-row reads, spread over `options.concurrency` connections.
async fn time_floor<C>(connect: C::Options, create: &str, options: &Options) -> Result<Floor, BoxError>
where
    C: sqlx::Connection + 'static,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, C::Database>,
{
    let mut conn = C::connect_with(&connect).await?;
    sqlx::raw_sql(create).execute(&mut conn).await?;
    sqlx::query("INSERT INTO floor_probe (note) VALUES ('probe')").execute(&mut conn).await?;
    let per_task = options.n.div_ceil(options.concurrency).max(1);
    // Connected before the clock starts: the floor is the commits and reads, not the opening.
    let mut connections = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        connections.push(C::connect_with(&connect).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut timings = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t0 = Instant::now();
                    sqlx::query("INSERT INTO floor_probe (note) VALUES ('probe')").execute(&mut conn).await?;
                    let t1 = Instant::now();
                    sqlx::query("SELECT note FROM floor_probe WHERE id = 1").fetch_one(&mut conn).await?;
                    timings.push((t1 - t0, t1.elapsed()));
                }
                Ok::<_, sqlx::Error>(timings)
            })
        })
        .collect();
    let mut floor = Floor { commits: Vec::new(), reads: Vec::new(), pairs_per_s: 0.0 };
    for task in tasks {
        let (commits, reads): (Vec<_>, Vec<_>) = task.await??.into_iter().unzip();
        floor.commits.extend(commits);
        floor.reads.extend(reads);
    }
    floor.pairs_per_s = floor.commits.len() as f64 / started.elapsed().as_secs_f64();
    Ok(floor)
}

/// Under `cargo test`: every mode on every configured backend, small, verified, quiet.
async fn smoke() -> Result<(), BoxError> {
    let mut kinds = vec![Kind::Memory, Kind::Sqlite];
    match std::env::var("KERN_TEST_POSTGRES_URL") {
        Ok(_) => kinds.push(Kind::Postgres),
        Err(_) => eprintln!("approval_cycle smoke: KERN_TEST_POSTGRES_URL is not set, so Postgres is skipped"),
    }
    let mut checks = 0;
    for kind in kinds {
        for mode in [Mode::Approve, Mode::Reject, Mode::Audit] {
            for concurrency in [1, 4] {
                let options = Options { kind, n: 24, warmup: 2, concurrency, mode, scenario: Scenario::Cycle };
                run_cycles(&options, false).await.map_err(|e| format!("{kind:?} {mode:?} x{concurrency}: {e}"))?;
                checks += 1;
            }
        }
        let options = Options { kind, n: 5, ..Options::default() };
        run_list(&options, 1_000, false).await.map_err(|e| format!("{kind:?} list: {e}"))?;
        checks += 1;
        if kind != Kind::Memory {
            run_floor(&options, false).await.map_err(|e| format!("{kind:?} floor: {e}"))?;
            checks += 1;
        }
        for concurrency in [1, 4] {
            let options = Options { kind, n: 24, warmup: 2, concurrency, ..Options::default() };
            run_store_calls(&options, false).await.map_err(|e| format!("{kind:?} store x{concurrency}: {e}"))?;
            checks += 1;
        }
    }
    println!("approval_cycle smoke: {checks} passed, 0 failed");
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if !args.iter().any(|a| a == "--bench") {
        return runtime.block_on(smoke());
    }
    let options = parse(&args)?;
    runtime.block_on(async {
        match options.scenario {
            Scenario::Cycle => run_cycles(&options, true).await,
            Scenario::List { rows } => run_list(&options, rows, true).await,
            Scenario::Floor => run_floor(&options, true).await,
            Scenario::Store => run_store_calls(&options, true).await,
        }
    })
}
