// An audit approval records a human-in-the-loop step, so the tool must have one.
use kern::prelude::*;

#[approval(type = "audit")]
#[tool]
fn above() {}

#[tool(requires_confirmation = false)]
#[approval(type = "audit")]
fn below() {}

#[tool(log_approval)]
fn logged() {}

fn main() {}
