//! A function whose PascalCase form names no struct: one that starts with a digit, or a keyword.

use kern::prelude::*;

#[tool]
fn _2fa_reset() {}

#[tool]
fn self_() {}

fn main() {}
