// `self_approval` takes a bool, written out: it is on by default.
use kern::prelude::*;

#[approval(self_approval)]
#[tool]
fn bare() {}

#[approval(self_approval = "no")]
#[tool]
fn a_string() {}

#[tool]
#[approval(self_approval = 0)]
fn a_number() {}

fn main() {}
