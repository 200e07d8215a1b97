//! The server benchmark: what the HTTP API costs an admin on top of the store, measured over
//! real HTTP on 127.0.0.1, on SQLite and on Postgres.
//!
//! - resolve: `POST /approvals/{id}/resolve` round trips per second at concurrency 1 and 32,
//!   each request deciding a distinct pending row, with p50/p99 latency; then the database's
//!   floor, the same decisions made directly through the store (`Store::decide`, what the route
//!   calls), and the ratio of the two. A request also signs its API key in and reads the row
//!   before deciding it: two reads the direct decision does not make.
//! - list: `GET /approvals?status=pending&limit=50` on a table of `KERN_BENCH_ROWS` rows (1%
//!   pending, after the upkeep a live database gets: `ANALYZE`, or `VACUUM (ANALYZE)` on
//!   Postgres), p50/p99, next to the same `list_approvals` made directly.
//!
//! The server runs in this process on a tokio runtime of its own; the client (reqwest, its
//! connections kept alive) on another.
//!
//! ```text
//! cargo bench --bench server                      # 1,000,000 rows, 2,000 resolves a figure
//! KERN_BENCH_ROWS=20000 KERN_BENCH_RESOLVES=1000 cargo bench --bench server
//! ```
//!
//! Postgres is measured when `KERN_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own that is dropped
//! afterwards; otherwise it is skipped with a message. Under `cargo test` (no `--bench`
//! argument) it runs a small smoke check instead, verifying the outcome and ignoring the
//! timings.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::stats::percentile;
use common::{Scratch, filler_id, filler_row, scratch_name};
use kern::keys::{ApiKey, Scope};
use kern::prelude::*;
use kern_server::{Auth, Server};
use serde_json::{Value, json};
use tokio::runtime::Handle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// How much each figure measures.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// Rows in the listed table (1% pending), besides the rows the resolves decide.
    rows: usize,
    /// Timed resolves for each concurrency, over HTTP and again directly.
    resolves: usize,
    /// Untimed resolves before each timed series, which open the connections.
    warmup: usize,
    /// Timed listings, over HTTP and again directly.
    lists: usize,
}

const CONCURRENCIES: [usize; 2] = [1, 32];

impl Options {
    /// The benchmark's figures: `KERN_BENCH_ROWS` rows (1,000,000 by default) and
    /// `KERN_BENCH_RESOLVES` resolves a figure (2,000 by default).
    fn from_env() -> Result<Self, BoxError> {
        let var = |name: &str, default: usize| -> Result<usize, BoxError> {
            match std::env::var(name) {
                Ok(text) => text.replace('_', "").parse().map_err(|e| format!("{name}={text}: {e}").into()),
                Err(_) => Ok(default),
            }
        };
        Ok(Options {
            rows: var("KERN_BENCH_ROWS", 1_000_000)?,
            resolves: var("KERN_BENCH_RESOLVES", 2_000)?,
            warmup: 64,
            lists: 1_000,
        })
    }

    /// The pending rows the resolves decide: a warm-up and a timed series for each
    /// concurrency, over HTTP and directly.
    fn seeded(&self) -> usize {
        CONCURRENCIES.len() * 2 * (self.warmup + self.resolves)
    }
}

/// The store under test and the database it works in.
struct Backend {
    kind: Kind,
    store: Arc<dyn Store>,
    scratch: Scratch,
}

impl Backend {
    /// Opens a fresh, empty store of `kind` (a new file or schema each time).
    async fn open(kind: Kind) -> Result<Backend, BoxError> {
        let name = scratch_name("server");
        Ok(match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let db = SqliteDb::builder().db_file(&path).build().await?;
                Backend { kind, store: Arc::new(db), scratch: Scratch::File(path) }
            }
            Kind::Postgres => {
                let url = postgres_url().ok_or("set KERN_TEST_POSTGRES_URL to benchmark Postgres")?;
                // Room for 32 requests at once, each holding one connection.
                let db = PostgresDb::builder().url(&url).schema(&name).max_connections(40).build().await?;
                Backend { kind, store: Arc::new(db), scratch: Scratch::Schema { url, schema: name } }
            }
        })
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }

    /// Deletes the benchmark's database file or Postgres schema.
    async fn remove(self) -> Result<(), BoxError> {
        drop(self.store);
        self.scratch.remove().await
    }
}

fn postgres_url() -> Option<String> {
    std::env::var("KERN_TEST_POSTGRES_URL").ok()
}

/// Writes the listed table and the rows to resolve, 5,000 rows a transaction.
async fn fill(store: Arc<dyn Store>, rows: usize, seeded: usize) -> Result<(), BoxError> {
    const BATCH: usize = 5_000;
    let now = Utc::now();
    let total = rows + seeded;
    let mut written = 0;
    while written < total {
        let batch: Vec<Approval> =
            (written..total.min(written + BATCH)).map(|i| filler_row(i, i >= rows || i % 100 == 0, now)).collect();
        written += batch.len();
        store.save_runs(&[], &batch, &[]).await?;
    }
    Ok(())
}

/// The latencies of a series and how many operations a second it made.
struct Series {
    sorted: Vec<Duration>,
    per_s: f64,
}

impl Series {
    fn p50(&self) -> f64 {
        percentile(&self.sorted, 0.5)
    }

    fn p99(&self) -> f64 {
        percentile(&self.sorted, 0.99)
    }
}

/// Runs `op` once on each of `ids` from `concurrency` tasks spawned on `runtime`, each task
/// taking the next id until none is left, and times every call.
async fn drive<F, Fut>(runtime: &Handle, ids: &[String], concurrency: usize, op: F) -> Result<Series, BoxError>
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let ids: Arc<[String]> = ids.into();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (ids, next, op) = (ids.clone(), next.clone(), op.clone());
            runtime.spawn(async move {
                let mut timings = Vec::new();
                while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let t0 = Instant::now();
                    op(id.clone()).await?;
                    timings.push(t0.elapsed());
                }
                Ok::<_, BoxError>(timings)
            })
        })
        .collect();
    let mut sorted = Vec::with_capacity(ids.len());
    for task in tasks {
        sorted.extend(task.await??);
    }
    let per_s = sorted.len() as f64 / started.elapsed().as_secs_f64();
    sorted.sort();
    Ok(Series { sorted, per_s })
}

/// Resolves each of `ids` over HTTP: approved, as an admin's click sends it.
async fn http_resolves(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    concurrency: usize,
) -> Result<Series, BoxError> {
    let (client, base) = (client.clone(), base.to_owned());
    drive(&Handle::current(), ids, concurrency, move |id| {
        let request = client.post(format!("{base}/approvals/{id}/resolve")).json(&json!({"status": "approved"}));
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            if status != reqwest::StatusCode::OK {
                return Err(format!("resolve {id} answered {status}: {}", String::from_utf8_lossy(&body)).into());
            }
            Ok(())
        }
    })
    .await
}

/// Resolves each of `ids` through the store, on the server's runtime, as the route does.
async fn direct_resolves(
    server: &Handle,
    store: &Arc<dyn Store>,
    ids: &[String],
    concurrency: usize,
) -> Result<Series, BoxError> {
    let store = store.clone();
    let admin = Principal::new("bench-admin");
    drive(server, ids, concurrency, move |id| {
        let (store, admin) = (store.clone(), admin.clone());
        async move {
            store.decide(&id, &admin, Decision::approve()).await?;
            Ok(())
        }
    })
    .await
}

/// Times `lists` listings of the newest 50 pending rows over HTTP (the client reading the page
/// included), then as many directly, checking that each page holds what the table does.
async fn time_lists(
    client: &reqwest::Client,
    base: &str,
    server: &Handle,
    store: &Arc<dyn Store>,
    lists: usize,
    pending: u64,
) -> Result<(Series, Series), BoxError> {
    let expected = 50.min(pending) as usize;
    let url = format!("{base}/approvals?status=pending&limit=50");
    let ticks: Vec<String> = (0..lists).map(|i| i.to_string()).collect();
    let client = client.clone();
    let http = drive(&Handle::current(), &ticks, 1, move |_| {
        let request = client.get(&url);
        async move {
            let body = request.send().await?.error_for_status()?.bytes().await?;
            let page: Value = serde_json::from_slice(&body)?;
            let items = page["data"].as_array().map_or(0, Vec::len);
            if items != expected || page["meta"]["total_count"] != pending {
                return Err(format!("a listing of {items} rows, {} pending", page["meta"]["total_count"]).into());
            }
            Ok(())
        }
    })
    .await?;
    let store = store.clone();
    let direct = drive(server, &ticks, 1, move |_| {
        let store = store.clone();
        async move {
            let page =
                store.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending).limit(50)).await?;
            if page.items.len() != expected || page.total != pending {
                return Err(format!("a listing of {} rows, {} pending", page.items.len(), page.total).into());
            }
            Ok(())
        }
    })
    .await?;
    Ok((http, direct))
}

/// Fills the table, serves it, measures the resolves and the listing, and prints the figures.
async fn measure(server: Handle, backend: &Backend, options: Options, print: bool) -> Result<(), BoxError> {
    let store = backend.store.clone();
    let issued = ApiKey::issue("bench-admin", Vec::new(), vec![Scope::Admin]);
    let key = issued.key.clone();
    let started = Instant::now();
    let filled = store.clone();
    server
        .spawn(async move {
            filled.save_api_key(&key).await?;
            fill(filled, options.rows, options.seeded()).await
        })
        .await??;
    let fill_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    backend.scratch.maintain().await?;
    let maintain_s = started.elapsed().as_secs_f64();
    if print {
        println!(
            "server_fill backend={} rows={} seeded_pending={} fill_s={fill_s:.1} maintenance_s={maintain_s:.1}",
            backend.name(),
            options.rows,
            options.seeded()
        );
    }

    let app = Server::builder().store(store.clone()).auth(Auth::api_keys()).build()?;
    let listener = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0")).await??;
    let base = format!("http://{}", listener.local_addr()?);
    let serving = server.spawn(app.serve(listener));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", issued.token).parse()?);
    let client = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(64).build()?;

    let result = async {
        let mut ids = (options.rows..options.rows + options.seeded()).map(filler_id);
        for concurrency in CONCURRENCIES {
            let mut take = |n: usize| ids.by_ref().take(n).collect::<Vec<_>>();
            let (warm, timed) = (take(options.warmup), take(options.resolves));
            direct_resolves(&server, &store, &warm, concurrency).await?;
            let direct = direct_resolves(&server, &store, &timed, concurrency).await?;
            let (warm, timed) = (take(options.warmup), take(options.resolves));
            http_resolves(&client, &base, &warm, concurrency).await?;
            let http = http_resolves(&client, &base, &timed, concurrency).await?;
            if print {
                println!(
                    "server_resolve backend={} concurrency={concurrency} n={} http_per_s={:.1} http_p50_ms={:.3} http_p99_ms={:.3} \
                     direct_per_s={:.1} direct_p50_ms={:.3} direct_p99_ms={:.3} http_over_direct_per_s={:.2} http_over_direct_p50={:.2}",
                    backend.name(),
                    options.resolves,
                    http.per_s,
                    http.p50(),
                    http.p99(),
                    direct.per_s,
                    direct.p50(),
                    direct.p99(),
                    http.per_s / direct.per_s,
                    http.p50() / direct.p50(),
                );
            }
        }

        // Verification (not timed): every seeded row was decided, and only the table's own
        // rows are pending.
        let counted = store.clone();
        let pending = server.spawn(async move { counted.count_pending_approvals(None).await }).await??;
        let expected = options.rows.div_ceil(100) as u64;
        if pending != expected {
            return Err(format!("verification failed: {pending} pending rows, want {expected}").into());
        }

        // The resolves left dead index entries behind; the upkeep a live table gets clears them.
        backend.scratch.maintain().await?;
        let (http, direct) = time_lists(&client, &base, &server, &store, options.lists, pending).await?;
        if print {
            println!(
                "server_list backend={} rows={} list_newest_50_pending http_p50_ms={:.3} http_p99_ms={:.3} \
                 direct_p50_ms={:.3} direct_p99_ms={:.3}",
                backend.name(),
                options.rows + options.seeded(),
                http.p50(),
                http.p99(),
                direct.p50(),
                direct.p99(),
            );
        }
        Ok(())
    }
    .await;
    serving.abort();
    result
}

/// Measures one backend, with the server on a runtime of its own.
fn run(kind: Kind, options: Options, print: bool) -> Result<(), BoxError> {
    let server = tokio::runtime::Builder::new_multi_thread().thread_name("kern-server").enable_all().build()?;
    let client = tokio::runtime::Builder::new_multi_thread().thread_name("bench-client").enable_all().build()?;
    let backend = server.block_on(Backend::open(kind))?;
    let result = client.block_on(measure(server.handle().clone(), &backend, options, print));
    server.block_on(backend.remove())?;
    result
}

fn main() -> Result<(), BoxError> {
    let bench = std::env::args().skip(1).any(|a| a == "--bench");
    let options =
        if bench { Options::from_env()? } else { Options { rows: 1_000, resolves: 24, warmup: 4, lists: 10 } };
    let mut kinds = vec![Kind::Sqlite];
    match postgres_url() {
        Some(_) => kinds.push(Kind::Postgres),
        None => eprintln!("server bench: KERN_TEST_POSTGRES_URL is not set, so Postgres is skipped"),
    }
    for kind in &kinds {
        run(*kind, options, bench).map_err(|e| format!("{kind:?}: {e}"))?;
    }
    if !bench {
        println!("server smoke: {} passed, 0 failed", kinds.len());
    }
    Ok(())
}
