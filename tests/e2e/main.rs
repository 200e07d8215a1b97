//! The inbox in a browser: starts the `admin_server` example on 127.0.0.1 with a fresh,
//! seeded SQLite database and runs `tests/e2e/inbox.mjs` against it (playwright-core driving
//! the system's Chromium, no browser download), which must exit 0. Screenshots go to
//! `target/e2e-screenshots/`.
//!
//! Needs Node.js 20+, `npm ci` in `tests/e2e`, and Chromium at `/usr/bin/chromium` (or
//! `CHROMIUM`). Without them the test says so and passes, unless `CI` is set: then it fails.
//! `.ci/run` installs Chromium and runs `npm ci`; Node.js 20+ must already be present.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Pending rows seeded besides the example's own: more than a page, so that paging shows.
const SEEDED_ROWS: &str = "120";

/// `target/<profile>/deps/<this test>` -> `target/<profile>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent().and_then(Path::parent).expect("the test binary is under target/<profile>/deps").to_path_buf()
}

/// What is missing to run the browser test, if anything.
fn missing(e2e: &Path, chromium: &str) -> Option<String> {
    let node = Command::new("node").arg("--version").output().ok().filter(|output| output.status.success());
    if node.is_none() {
        return Some("Node.js is not installed (apt-get install nodejs)".into());
    }
    if !e2e.join("node_modules/playwright-core").is_dir() {
        return Some("playwright-core is not installed: run `npm ci` in tests/e2e".into());
    }
    if !Path::new(chromium).exists() {
        return Some(format!("no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)"));
    }
    None
}

/// The example's process, ended when the test ends however it ends.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_admin_uses_the_inbox_in_a_browser() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if let Some(why) = missing(&e2e, &chromium) {
        assert!(std::env::var_os("CI").is_none(), "the browser test cannot run: {why}");
        eprintln!("skipping the browser test: {why}");
        return;
    }
    let profile = profile_dir();
    let example = profile.join("examples").join(format!("admin_server{}", std::env::consts::EXE_SUFFIX));
    assert!(example.exists(), "{} is not built: run the tests with `cargo test`", example.display());
    let db = std::env::temp_dir().join(format!("kern-e2e-{}.db", std::process::id()));
    let mut child = Command::new(&example)
        .env_remove("OPENAI_API_KEY")
        .env_remove("KERN_OPENAI_BASE_URL")
        .env_remove("KERN_EXAMPLE_SMOKE")
        .env("KERN_ADDR", "127.0.0.1:0")
        .env("KERN_DB", &db)
        .env("KERN_SEED_PENDING", SEEDED_ROWS)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", example.display()));
    let stdout = child.stdout.take().expect("the example's stdout");
    let served = Served(child);

    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let line = lines.next().and_then(Result::ok).expect("the example exited before it served");
        if let Some(value) = line.strip_prefix("KERN_URL=") {
            url = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("KERN_TOKEN=") {
            token = Some(value.to_owned());
        }
    }
    // The example prints nothing more; the pipe is drained all the same.
    std::thread::spawn(move || lines.for_each(drop));

    let screenshots = profile.parent().unwrap_or(&profile).join("e2e-screenshots");
    let output = Command::new("node")
        .arg("inbox.mjs")
        .current_dir(&e2e)
        .env("KERN_URL", url.unwrap_or_default())
        .env("KERN_TOKEN", token.unwrap_or_default())
        .env("KERN_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    drop(served);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
}
