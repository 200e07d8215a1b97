use kern::prelude::*;

#[tool(require_confirmation)]
fn typo() {}

#[tool(colour = "red")]
fn unrelated() {}

#[approval(expires = "1h")]
#[tool]
fn approval_typo() {}

#[tool(requires_confirmation, expires_in = "1h")]
fn approvals_option_on_tool() {}

#[approval(requires_confirmation)]
#[tool]
fn tools_option_on_approval() {}

fn main() {}
