use kern::prelude::*;

#[tool]
fn _2fa_reset() {}

#[tool]
fn self_() {}

fn main() {}
