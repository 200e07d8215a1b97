use kern::prelude::*;

#[tool(crate = "my kern")]
fn space_in_the_path() {}

#[tool(crate = "")]
fn empty() {}

#[tool(crate = "kern::")]
fn trailing_colons() {}

#[tool(crate = "kern<T>")]
fn generic_arguments() {}

#[tool(crate = ::my_app::kern)]
fn unquoted() {}

#[tool(crate)]
fn no_value() {}

#[approval(crate = 1)]
#[tool]
fn not_a_string_on_the_approval_above() {}

#[tool]
#[approval(crate = "::")]
fn no_segment_on_the_approval_below() {}

#[approval(crate = "type")]
fn approval_without_a_tool() {}

#[tool(crate = "kern", crate = "kern")]
fn given_twice() {}

fn main() {}
