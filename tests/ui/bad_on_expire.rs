// `on_expire` is "reject" or "cancel_run".
use kern::prelude::*;

#[approval(expires_in = "1h", on_expire = "cancel")]
#[tool]
fn unknown_value() {}

#[approval(expires_in = "1h", on_expire = reject)]
#[tool]
fn not_a_string() {}

#[tool]
#[approval(on_expire, expires_in = "1h")]
fn no_value() {}

fn main() {}
