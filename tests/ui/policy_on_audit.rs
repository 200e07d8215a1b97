// An audit row records a decision already made: who may decide it and when it is needed are
// for required approvals only.
use kern::prelude::*;

fn always(_: &EveryOptionArgs) -> bool {
    true
}

#[approval(
    type = "audit",
    approvers = ["finance"],
    quorum = 2,
    self_approval = false,
    allow_edit,
    expires_in = "1h",
    on_expire = "cancel_run",
    when = always,
)]
#[tool(requires_confirmation)]
fn every_option(amount: u64) -> u64 {
    amount
}

#[tool(requires_confirmation)]
#[approval(allow_edit = false, type = "audit")]
fn switched_off() {}

fn main() {}
