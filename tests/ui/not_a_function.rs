use kern::prelude::*;

#[tool]
struct Search;

#[tool]
fn PascalAlready() {}

fn main() {}
