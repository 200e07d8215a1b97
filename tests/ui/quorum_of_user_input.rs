// A quorum approves a call as it stands: a call completed by one approver's values or result
// cannot have one, and a call that does not run here has no arguments worth editing.
use kern::prelude::*;

#[approval(quorum = 2)]
#[tool(requires_user_input)]
fn transfer(to: String, amount: u64) -> String {
    format!("{amount} to {to}")
}

#[approval(quorum = 3)]
#[tool(external_execution)]
fn deploy(service: String) -> String {
    service
}

#[approval(allow_edit)]
#[tool(external_execution)]
fn restart(service: String) -> String {
    service
}

fn main() {}
