// `quorum` is a whole number of at least one.
use kern::prelude::*;

#[approval(quorum = "2")]
#[tool]
fn a_string() {}

#[approval(quorum)]
#[tool]
fn no_value() {}

#[approval(quorum = 0)]
#[tool]
fn zero() {}

#[tool]
#[approval(quorum = -1)]
fn negative() {}

#[approval(quorum = 1.5)]
#[tool]
fn fraction() {}

#[approval(quorum = 4294967296)]
#[tool]
fn too_large() {}

fn main() {}
