use kern::prelude::*;

#[approval(type = "audit")]
#[tool(requires_confirmation, log_approval)]
fn above() {}

#[tool(requires_confirmation, log_approval = true)]
#[approval]
fn below() {}

fn main() {}
