//! What every example shares: the model to use and a fresh database file.

use std::path::PathBuf;
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

/// A database file for the example, emptied so each run starts from scratch.
pub fn fresh_db(name: &str) -> PathBuf {
    emptied(std::env::temp_dir().join(format!("kern-example-{name}.db")))
}

/// `path`, with the database file there (and its journal) removed.
pub fn emptied(path: PathBuf) -> PathBuf {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}
