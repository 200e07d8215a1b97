//! A ledger file that tools append each of their executions to, synced before they return, so
//! that the count outlives the process that ran them: how tests that kill processes, or run
//! several, check that each approved call ran as often as it should.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use kern::tools::RunContext;

use crate::backend::unique;

/// The ledger, removed when the test ends.
pub struct Ledger(pub PathBuf);

impl Ledger {
    pub fn new() -> Self {
        Ledger(std::env::temp_dir().join(unique("kern_ledger")))
    }

    /// Every execution recorded so far by call: its idempotency key and the process that ran it.
    pub fn executions(&self) -> HashMap<String, Vec<(String, u32)>> {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        let mut executions: HashMap<String, Vec<(String, u32)>> = HashMap::new();
        for line in text.lines() {
            let [call, key, pid] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("a torn line: {line:?}") };
            executions.entry(call.to_owned()).or_default().push((key.to_owned(), pid.parse().expect("a pid")));
        }
        executions
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Records the execution of the call of `context` in the ledger at `path`: a line with the
/// call, its idempotency key and this process, synced before it returns.
pub fn record(path: &Path, context: &RunContext) -> Result<(), String> {
    let key = context.idempotency_key.as_deref().unwrap_or("-");
    let line = format!("{} {key} {}\n", context.tool_call_id, std::process::id());
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| e.to_string())?;
    file.write_all(line.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| e.to_string())
}
