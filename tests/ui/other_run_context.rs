use kern::prelude::*;

mod mine {
    pub struct RunContext;
}

// Matched by name, so a different `RunContext` fails at the type checker, at that parameter.
#[tool]
fn wrong_context(n: u8, ctx: &mine::RunContext) -> u8 {
    let _ = ctx;
    n
}

fn main() {}
