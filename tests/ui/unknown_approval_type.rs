use kern::prelude::*;

#[approval(type = "blocking")]
#[tool]
fn above() {}

#[tool(requires_confirmation)]
#[approval(type = required)]
fn below() {}

fn main() {}
