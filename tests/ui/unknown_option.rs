use kern::prelude::*;

#[tool(require_confirmation)]
fn typo() {}

#[tool(colour = "red")]
fn unrelated() {}

#[approval(expires = "1h")]
#[tool]
fn approval_typo() {}

fn main() {}
