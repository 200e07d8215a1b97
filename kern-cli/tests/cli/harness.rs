//! A fresh database for each test on each backend (a temporary SQLite file; a Postgres schema
//! of its own when `KERN_TEST_POSTGRES_URL` is set), and the `kern` binary run against it.

use std::future::Future;
use std::io::{BufRead, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kern::db::{PostgresDb, SqliteDb, Store};
use serde_json::Value;

/// The variable naming the Postgres server of the tests.
const POSTGRES_URL_VAR: &str = "KERN_TEST_POSTGRES_URL";

/// The variables `kern` reads, kept from the tests' environment so that only the flags count.
const KERN_VARS: [&str; 8] = [
    "KERN_LOG",
    "KERN_DATABASE_URL",
    "KERN_SERVER_URL",
    "KERN_API_KEY",
    "KERN_DATABASE_SCHEMA",
    "KERN_APPROVALS_TABLE",
    "KERN_RUNS_TABLE",
    "KERN_SESSIONS_TABLE",
];

/// A name no other test uses.
pub fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("kern_cli_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The `kern` binary with none of its variables set.
pub fn kern_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kern"));
    for var in KERN_VARS {
        command.env_remove(var);
    }
    command
}

/// How long a running `kern` may take to print its next line or to end: past it, the test fails
/// rather than hangs (a bound on a wait, not a timing asserted).
const PATIENCE: Duration = Duration::from_secs(60);

/// `kern` running until interrupted (`watch`, `serve`), its standard output read line by line.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Its standard error, read as it comes (a full pipe would stop it); taken once it ends.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts `kern <args>`.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Self {
        let mut child =
            kern_command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start kern");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut errors = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = errors.read_to_string(&mut text);
            text
        });
        Running { child, lines, stderr: Some(stderr) }
    }

    /// The next line it prints, as JSON.
    pub fn next_json(&mut self) -> Value {
        let line = self.lines.recv_timeout(PATIENCE).expect("a line before the end, within the patience");
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
    }

    /// Waits for it to end by itself: its exit code and what it wrote to standard error.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let code = self.exit_code();
        let stderr = self.stderr.take().expect("read once").join().expect("standard error read");
        (code, stderr)
    }

    /// Sends Ctrl-C (SIGINT) and returns the exit code it ends with.
    pub fn interrupt(self) -> Option<i32> {
        self.signal("INT")
    }

    /// Sends a process manager's stop (SIGTERM) and returns the exit code it ends with.
    pub fn terminate(self) -> Option<i32> {
        self.signal("TERM")
    }

    fn signal(mut self, name: &str) -> Option<i32> {
        let sent = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(sent.expect("run kill").success());
        self.exit_code()
    }

    /// Its exit code once it ends, within [`PATIENCE`]; past it, it is killed and the test fails.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for kern") {
                return status.code();
            }
            if Instant::now() >= deadline {
                panic!("kern did not end within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A test that fails while `kern` still runs leaves no process behind (holding its port and
/// database).
impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a run of the binary left.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn from(output: Output) -> Self {
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit code 0 and returns standard output.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }

    /// Asserts exit code 0 and returns the JSON on standard output.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {self:?}"))
    }

    /// Asserts `code`, and that standard error says why; returns that.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:?}");
        assert!(!self.stderr.trim().is_empty(), "no reason given: {self:?}");
        &self.stderr
    }
}

/// A database of one backend, fresh for one test.
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl TestDb {
    /// A fresh SQLite file, and a fresh Postgres schema when a server is configured.
    pub fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::Sqlite(std::env::temp_dir().join(format!("{}.db", unique_name())))];
        match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) => dbs.push(TestDb::Postgres { url, schema: unique_name() }),
            Err(_) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{POSTGRES_URL_VAR} is not set under CI: the Postgres variants must run"
                );
                eprintln!("skipping Postgres: {POSTGRES_URL_VAR} is not set");
            }
        }
        dbs
    }

    /// The flags that point `kern` at this database.
    pub fn flags(&self) -> Vec<String> {
        match self {
            TestDb::Sqlite(path) => vec!["--db".into(), format!("sqlite://{}", path.display())],
            TestDb::Postgres { url, schema } => vec!["--db".into(), url.clone(), "--schema".into(), schema.clone()],
        }
    }

    /// Runs `kern <args>` against this database.
    pub fn kern(&self, args: &[&str]) -> Ran {
        Self::kern_with(self.flags(), args)()
    }

    /// What runs `kern <flags> <args>`, as often as called.
    pub fn kern_with(flags: Vec<String>, args: &[&str]) -> impl Fn() -> Ran {
        let args: Vec<String> = flags.into_iter().chain(args.iter().map(|arg| arg.to_string())).collect();
        move || Ran::from(kern_command().args(&args).output().expect("run kern"))
    }

    /// Opens the store the binary works on.
    pub async fn open(&self) -> Box<dyn OpenDb> {
        match self {
            TestDb::Sqlite(path) => Box::new(SqliteDb::open(path).await.expect("open SQLite")),
            TestDb::Postgres { url, schema } => {
                Box::new(PostgresDb::builder().url(url).schema(schema).build().await.expect("open Postgres"))
            }
        }
    }

    /// Creates the tables as a build of schema `version` left them, and closes them.
    pub async fn create_at(&self, version: i64) {
        match self {
            TestDb::Sqlite(path) => {
                let db = SqliteDb::builder().db_file(path).__schema_version(version).build().await;
                db.expect("create SQLite").close().await;
            }
            TestDb::Postgres { url, schema } => {
                let db = PostgresDb::builder().url(url).schema(schema).__schema_version(version).build().await;
                db.expect("create Postgres").close().await;
            }
        }
    }

    /// Removes the database.
    async fn remove(&self) {
        match self {
            TestDb::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            TestDb::Postgres { url, schema } => PostgresDb::__drop_schema(url, schema).await.expect("drop the schema"),
        }
    }
}

/// A store the test holds, closed at the end.
pub trait OpenDb: Store {
    fn close(&self) -> kern::BoxFuture<'_, ()>;
    fn shared(&self) -> std::sync::Arc<dyn Store>;
}

impl OpenDb for SqliteDb {
    fn close(&self) -> kern::BoxFuture<'_, ()> {
        Box::pin(SqliteDb::close(self))
    }

    fn shared(&self) -> std::sync::Arc<dyn Store> {
        std::sync::Arc::new(self.clone())
    }
}

impl OpenDb for PostgresDb {
    fn close(&self) -> kern::BoxFuture<'_, ()> {
        Box::pin(PostgresDb::close(self))
    }

    fn shared(&self) -> std::sync::Arc<dyn Store> {
        std::sync::Arc::new(self.clone())
    }
}

/// Runs `case` on a fresh database of each backend, removing each afterwards, pass or fail.
pub async fn each_backend<F, Fut>(case: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for db in TestDb::all() {
        let outcome = tokio::spawn(case(db.clone())).await;
        db.remove().await;
        if let Err(err) = outcome {
            std::panic::resume_unwind(err.into_panic());
        }
    }
}
