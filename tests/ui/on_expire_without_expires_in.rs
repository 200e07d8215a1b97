// What an expiry does means nothing for an approval that never expires.
use kern::prelude::*;

#[approval(on_expire = "cancel_run")]
#[tool]
fn above() {}

#[tool(requires_confirmation)]
#[approval(type = "required", on_expire = "reject")]
fn below() {}

fn main() {}
