//! Every example runs offline to the end and exits 0.
//!
//! `cargo test` builds the examples next to this test binary; each is run as a user would,
//! without a model provider configured, so the scripted model answers. `KERN_EXAMPLE_SMOKE`
//! makes `admin_server` drive its own server over HTTP and exit instead of serving until
//! stopped; the other examples ignore it.

use std::path::PathBuf;
use std::process::Command;

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
        let output = Command::new(&binary)
            .env_remove("OPENAI_API_KEY")
            .env_remove("KERN_OPENAI_BASE_URL")
            .env("KERN_EXAMPLE_SMOKE", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("completed"), "{name} did not complete a run:\n{stdout}");
    }
}
