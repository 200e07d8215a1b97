// `allow_edit` is a flag, like the flags of `#[tool]`.
use kern::prelude::*;

#[approval(allow_edit = "yes")]
#[tool]
fn a_string(amount: u64) -> u64 {
    amount
}

#[tool]
#[approval(allow_edit(true))]
fn nested(amount: u64) -> u64 {
    amount
}

fn main() {}
