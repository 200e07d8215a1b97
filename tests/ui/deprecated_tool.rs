//! A deprecated tool's struct is deprecated too: handing the tool to an agent warns there.
#![deny(deprecated)]

use kern::prelude::*;

/// Search the old index.
#[deprecated(note = "use `search_v2`")]
#[tool]
fn search(query: String) -> String {
    query
}

fn main() {
    let _ = Agent::builder().tool(Search);
}
