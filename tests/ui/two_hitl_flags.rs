// A tool pauses for one kind of human-in-the-loop step.
use kern::prelude::*;

#[tool(requires_confirmation, external_execution)]
fn two() {}

#[tool(user_input_fields = ["x"], requires_confirmation, external_execution = true)]
fn three(x: u8) -> u8 {
    x
}

// Together these two are one choice, but not with confirmation.
#[tool(requires_user_input, user_input_fields = ["x"], requires_confirmation)]
fn user_input_twice(x: u8) -> u8 {
    x
}

fn main() {}
