// `approvers` is a non-empty list of distinct, non-empty roles with no blanks around them.
use kern::prelude::*;

#[approval(approvers = "finance")]
#[tool]
fn not_a_list() {}

#[approval(approvers)]
#[tool]
fn no_value() {}

#[approval(approvers = [])]
#[tool]
fn empty_list() {}

#[tool]
#[approval(approvers = [finance, 1])]
fn not_strings() {}

#[approval(approvers = ["finance", ""])]
#[tool]
fn empty_role() {}

#[approval(approvers = ["finance", "ops", "finance"])]
#[tool]
fn repeated_role() {}

#[approval(approvers = [" finance"])]
#[tool]
fn padded_role() {}

fn main() {}
