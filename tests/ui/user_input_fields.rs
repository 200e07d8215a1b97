use kern::prelude::*;

#[tool(user_input_fields = ["amount", "reason"])]
fn no_such_argument(to: String, amount: u32) -> String {
    format!("{to} {amount}")
}

#[tool(user_input_fields = ["ctx", "to", "to"])]
fn context_and_twice(to: String, ctx: &RunContext) -> String {
    format!("{to} {}", ctx.run_id)
}

#[tool(user_input_fields = [])]
fn empty_list(to: String) -> String {
    to
}

#[tool(user_input_fields = [to, 1])]
fn not_strings(to: String) -> String {
    to
}

#[tool(user_input_fields = "to")]
fn not_a_list(to: String) -> String {
    to
}

#[tool(requires_user_input)]
fn nothing_to_fill_in(ctx: &RunContext) -> String {
    ctx.run_id.clone()
}

#[tool(requires_user_input = false, user_input_fields = ["to"])]
fn contradiction(to: String) -> String {
    to
}

fn main() {}
