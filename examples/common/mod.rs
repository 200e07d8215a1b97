//! What every example shares: the model to use and a database file of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kern::models::{Model, OpenAiCompatible, ScriptedModel};

/// The OpenAI-compatible provider when `OPENAI_API_KEY` or `KERN_OPENAI_BASE_URL` is set,
/// otherwise `script`, so the example runs offline and the same every time.
pub fn model(script: ScriptedModel) -> Arc<dyn Model> {
    match OpenAiCompatible::from_env() {
        Some(provider) => {
            println!("(using {})", provider.id());
            Arc::new(provider)
        }
        None => Arc::new(script),
    }
}

/// A database file for one run of the example: new (its name carries the process id, so that
/// two runs at once keep apart) and removed, with its journal, when the example ends.
pub struct ExampleDb(PathBuf);

impl ExampleDb {
    /// The file of example `name`.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("kern-example-{name}-{}.db", std::process::id()));
        ExampleDb(emptied(path))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ExampleDb {
    fn drop(&mut self) {
        emptied(self.0.clone());
    }
}

/// `path`, with the database file there (and its journal) removed.
pub fn emptied(path: PathBuf) -> PathBuf {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}
