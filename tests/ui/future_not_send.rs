use std::rc::Rc;

use kern::prelude::*;

async fn pause() {}

// Agents run tools on a multi-threaded runtime, so an async tool's future must be `Send`.
#[tool]
async fn holds_an_rc(n: u32) -> u32 {
    let shared = Rc::new(n);
    pause().await;
    *shared
}

fn main() {}
