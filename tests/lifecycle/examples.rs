//! Every example runs offline to the end and exits 0.
//!
//! `cargo test` builds the examples next to this test binary; each is run as a user would,
//! without a model provider configured, so the scripted model answers. `KERN_EXAMPLE_SMOKE`
//! makes `admin_server` drive its own server over HTTP and exit instead of serving until
//! stopped; the other examples ignore it.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: &[&str] = &[
    "quickstart",
    "approval_list_and_resolve",
    "approval_user_input",
    "approval_external_execution",
    "audit_approval",
    "team_approval",
    "approval_policy",
    "admin_server",
    "worker",
    "streaming",
];

/// How long an example may take: each finishes in seconds, and one that hangs fails the test
/// rather than holding it up for good.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `command` to its end and returns what it wrote, or an error once `limit` has passed (the
/// process killed).
fn run_within(mut command: Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Err(std::io::Error::other(format!("still running after {limit:?}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() })
}

/// Reads `pipe` to its end on a thread of its own, as the process writes, so that a full pipe
/// cannot stall it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    deps.parent().unwrap().join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn every_example_runs_to_completion() {
    for name in EXAMPLES {
        let binary = example_binary(name);
        assert!(binary.exists(), "{} is not built: run the tests with `cargo test`", binary.display());
        let mut command = Command::new(&binary);
        command.env_remove("OPENAI_API_KEY").env_remove("KERN_OPENAI_BASE_URL").env("KERN_EXAMPLE_SMOKE", "1");
        let output = run_within(command, LIMIT).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("completed"), "{name} did not complete a run:\n{stdout}");
    }
}
