// A call a person fills in or carries out always needs that person: `when` cannot skip it.
use kern::prelude::*;

fn never(_: &UserInputArgs) -> bool {
    false
}

#[approval(when = never)]
#[tool(requires_user_input)]
fn user_input(amount: u64) -> u64 {
    amount
}

fn never_fields(_: &SomeFieldsArgs) -> bool {
    false
}

#[tool(user_input_fields = ["note"])]
#[approval(when = never_fields)]
fn some_fields(amount: u64, note: String) -> String {
    format!("{amount} {note}")
}

fn never_elsewhere(_: &ElsewhereArgs) -> bool {
    false
}

#[approval(type = "required", when = never_elsewhere)]
#[tool(external_execution)]
fn elsewhere() {}

fn main() {}
