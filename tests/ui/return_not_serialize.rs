use kern::prelude::*;

struct Handle;

#[tool]
fn open(path: String) -> Handle {
    let _ = path;
    Handle
}

struct Plain;

#[tool]
fn fallible() -> Result<String, Plain> {
    Err(Plain)
}

fn main() {}
