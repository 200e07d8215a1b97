// `when` takes the path of a function. The argument struct is still generated, so the
// conditions that name it add no errors of their own.
use kern::prelude::*;

#[approval(when = "over_limit")]
#[tool]
fn a_string(amount: u64) -> u64 {
    amount
}

fn over_limit(args: &AStringArgs) -> bool {
    args.amount > 100
}

#[approval(when = |args: &AClosureArgs| args.amount > 100)]
#[tool]
fn a_closure(amount: u64) -> u64 {
    amount
}

#[tool]
#[approval(when)]
fn no_value() {}

#[approval(when = "not a path")]
#[tool]
fn not_a_path() {}

#[approval(when = LIMIT > 100)]
#[tool]
fn an_expression() {}

fn main() {}
