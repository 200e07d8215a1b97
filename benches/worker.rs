//! The worker benchmark: how long a decided run waits for its worker, and how many runs workers
//! complete per second.
//!
//! - latency: a worker in this process; one paused run at a time has its row approved, and the
//!   time from the approval's commit to the worker's outcome (the run continued and stored) is
//!   taken; p50/p99, on SQLite and on Postgres. It is what a user waits for once an admin has
//!   clicked, and holds the wake-up (in-process here) and a whole continue.
//! - throughput: paused runs on Postgres, every row approved while no worker runs; then 1, 2
//!   and 4 worker processes (this program again, `--worker`), each continuing 16 runs at a
//!   time, are told to start, and the runs completed per second from then to the last one.
//!
//! ```text
//! cargo bench --bench worker                      # 200 latency samples, 1,000 runs a throughput figure
//! KERN_BENCH_SAMPLES=50 KERN_BENCH_RUNS=400 cargo bench --bench worker
//! ```
//!
//! Postgres is measured when `KERN_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), in schemas of its own that are dropped
//! afterwards; otherwise it is skipped with a message. Under `cargo test` (no `--bench`
//! argument) it runs a small smoke check instead, verifying the outcome and ignoring the
//! timings.

#[path = "common/scratch.rs"]
mod scratch;
#[path = "common/stats.rs"]
mod stats;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kern::prelude::*;
use kern::worker::RunOutcome;
use scratch::{Scratch, scratch_name};
use serde_json::json;
use sqlx::Connection as _;
use stats::percentile;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one worker process continues at once.
const CONCURRENCY: usize = 16;

/// Apply a change to a record. Requires admin approval.
#[approval]
#[tool(requires_confirmation)]
fn apply_change(record: String) -> String {
    format!("changed {record}")
}

fn agent(store: Arc<dyn Store>) -> Result<Agent, BoxError> {
    let model = ScriptedModel::new()
        .when_user_contains("change", Reply::call("apply_change", json!({ "record": "r-1" })))
        .after_tool("apply_change", Reply::text("Done: {result}"));
    Ok(Agent::builder().id("bench-worker").model(model).tool(ApplyChange).db(store).build()?)
}

fn postgres_url() -> Option<String> {
    std::env::var("KERN_TEST_POSTGRES_URL").ok()
}

fn env_count(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(value) => Ok(value.parse().map_err(|_| format!("{name} must be a count, not {value:?}"))?),
        Err(_) => Ok(default),
    }
}

/// A fresh store on SQLite or, given a URL, on a Postgres schema of its own.
async fn open(postgres: Option<&str>) -> Result<(Arc<dyn Store>, Scratch), BoxError> {
    let name = scratch_name("worker");
    Ok(match postgres {
        None => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            let db = SqliteDb::builder().db_file(&path).build().await?;
            (Arc::new(db), Scratch::File(path))
        }
        Some(url) => {
            let db = PostgresDb::builder().url(url).schema(&name).max_connections(40).build().await?;
            (Arc::new(db), Scratch::Schema { url: url.to_owned(), schema: name })
        }
    })
}

/// `samples` approvals, one at a time, each timed from its commit to the worker's outcome.
async fn latency(postgres: Option<&str>, samples: usize) -> Result<Vec<Duration>, BoxError> {
    let (store, scratch) = open(postgres).await?;
    let agent = agent(store.clone())?;
    let worker = Worker::builder().store(store.clone()).agent(agent.clone()).build()?;
    let mut outcomes = worker.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let working = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let mut waits = Vec::with_capacity(samples);
    for _ in 0..samples {
        let run = agent.run("change the record").await?;
        let row = run.requirements[0].approval_id.clone().ok_or("the call has a row")?;
        // From the approve call: the store wakes its worker as the commit returns, before the
        // call itself returns (on Postgres it then waits for its announcement's round trip).
        let approved = Instant::now();
        store.update_approval(&row, ApprovalUpdate::approve("bench-admin")).await?;
        let done = match outcomes.recv().await? {
            RunOutcome::Continued(output) if output.run_id == run.run_id => output,
            other => return Err(format!("unexpected outcome {other:?}").into()),
        };
        waits.push(approved.elapsed());
        if done.status != RunStatus::Completed {
            return Err(format!("the run ended {}", done.status).into());
        }
    }
    let _ = stop.send(());
    working.await??;
    drop((agent, store));
    scratch.remove().await?;
    waits.sort();
    Ok(waits)
}

/// Runs completed per second by `workers` processes, with `runs` runs decided before they start.
async fn throughput(url: &str, runs: usize, workers: usize) -> Result<f64, BoxError> {
    let (store, scratch) = open(Some(url)).await?;
    let Scratch::Schema { schema, .. } = &scratch else { unreachable!("open gives a schema for a URL") };
    let agent = agent(store.clone())?;
    for _ in 0..runs {
        let run = agent.run("change the record").await?;
        let row = run.requirements[0].approval_id.as_deref().ok_or("the call has a row")?;
        store.update_approval(row, ApprovalUpdate::approve("bench-admin")).await?;
    }
    scratch.maintain().await?;

    let mut children = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["--worker", url, schema])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("the worker's stdout")?;
        let ready = BufReader::new(stdout).lines().next_line().await?;
        if ready.as_deref() != Some("ready") {
            return Err(format!("a worker process did not start: {ready:?}").into());
        }
        children.push(child);
    }
    let started = Instant::now();
    for child in &mut children {
        child.stdin.as_mut().ok_or("the worker's stdin")?.write_all(b"go\n").await?;
    }
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let count = format!("SELECT COUNT(*) FROM \"{schema}\".\"kern_runs\" WHERE status = 'completed'");
    loop {
        let completed: i64 = sqlx::query_scalar(&count).fetch_one(&mut conn).await?;
        if completed as usize >= runs {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("{completed} of {runs} runs completed in ten minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    conn.close().await?;
    drop(children);
    drop((agent, store));
    scratch.remove().await?;
    Ok(runs as f64 / elapsed.as_secs_f64())
}

/// A worker process: opens `schema` at `url`, says `ready`, starts on `go`, works until killed.
async fn worker_process(url: &str, schema: &str) -> Result<(), BoxError> {
    let db = PostgresDb::builder().url(url).schema(schema).max_connections(20).build().await?;
    let store: Arc<dyn Store> = Arc::new(db);
    let worker = Worker::builder().store(store.clone()).agent(agent(store)?).concurrency(CONCURRENCY).build()?;
    println!("ready");
    let go = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await?;
    go?;
    worker.run(std::future::pending()).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url, schema] = &args[..]
        && flag == "--worker"
    {
        return worker_process(url, schema).await;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let samples = if bench { env_count("KERN_BENCH_SAMPLES", 200)? } else { 5 };
    let runs = if bench { env_count("KERN_BENCH_RUNS", 1_000)? } else { 20 };
    let url = postgres_url();
    if url.is_none() {
        eprintln!("worker bench: KERN_TEST_POSTGRES_URL is not set, so Postgres is skipped");
    }

    let mut checked = 0;
    for (name, postgres) in [("sqlite", None), ("postgres", url.as_deref())] {
        if name == "postgres" && postgres.is_none() {
            continue;
        }
        let waits = latency(postgres, samples).await.map_err(|e| format!("{name} latency: {e}"))?;
        checked += 1;
        if bench {
            println!(
                "worker {name:<8} approve call to completion ({samples} runs): p50 {:.2} ms, p99 {:.2} ms",
                percentile(&waits, 0.5),
                percentile(&waits, 0.99)
            );
        }
    }
    if let Some(url) = url.as_deref() {
        let counts: &[usize] = if bench { &[1, 2, 4] } else { &[2] };
        for &workers in counts {
            let per_s = throughput(url, runs, workers).await.map_err(|e| format!("{workers} workers: {e}"))?;
            checked += 1;
            if bench {
                println!("worker postgres {workers} process(es), {runs} decided runs: {per_s:.1} runs/s");
            }
        }
    }
    if !bench {
        println!("worker smoke: {checked} passed, 0 failed");
    }
    Ok(())
}
