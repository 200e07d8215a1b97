use kern::prelude::*;

extern crate kern as renamed_kern;

#[approval(crate = "renamed_kern")]
#[tool(crate = "kern")]
fn approval_above() {}

#[tool(requires_confirmation, crate = "::kern")]
#[approval(type = "audit", crate = "kern")]
fn approval_below() {}

fn main() {}
