use kern::prelude::*;

#[tool(name = "a", requires_confirmation, name = "b")]
fn tool_option() {}

#[approval(type = "required", type = "audit")]
#[tool]
fn approval_option() {}

#[approval]
#[approval(type = "audit")]
#[tool(requires_confirmation)]
fn approval_twice_above() {}

#[approval]
#[tool]
#[approval]
fn approval_above_and_below() {}

#[tool]
#[tool]
fn tool_twice() {}

fn main() {}
