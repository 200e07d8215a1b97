use kern::prelude::*;

#[approval(expires_in = "24 hours")]
#[tool]
fn words() {}

#[tool]
#[approval(expires_in = "0s")]
fn zero() {}

#[approval(expires_in = 24h)]
#[tool]
fn unquoted() {}

#[approval(expires_in = "1.5h")]
#[tool]
fn fraction() {}

#[approval(expires_in = "36501d")]
#[tool]
fn past_a_century() {}

#[tool(requires_confirmation)]
#[approval(type = "audit", expires_in = "1h")]
fn audit_never_waits() {}

fn main() {}
