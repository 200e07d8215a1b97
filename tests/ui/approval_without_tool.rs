use kern::prelude::*;

#[approval]
fn forgot_the_tool() {}

#[approval(type = "audit")]
struct NotAFunction;

fn main() {}
