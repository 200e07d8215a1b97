// A path that does not resolve is reported by rustc at the `crate` string; the derives on the
// generated argument struct then fail too, so their helper attributes go unrecognised.
use kern::prelude::*;

#[tool(crate = "not_kern")]
fn not_a_crate() {}

#[approval(crate = "crate::kern")]
#[tool]
fn not_reexported() {}

fn main() {}
