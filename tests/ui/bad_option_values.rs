use kern::prelude::*;

#[tool(requires_confirmation = "yes", external_execution(true))]
fn flag_values() {}

#[tool(name = delete, description = 42)]
fn not_strings() {}

#[tool(name = "delete user")]
fn name_with_a_space() {}

#[tool(name = "x")]
#[approval(type = "audit" = "required")]
fn not_even_syntax() {}

#[approval(type = "audit", expires_in =)]
#[tool(requires_confirmation)]
fn cut_short() {}

fn main() {}
