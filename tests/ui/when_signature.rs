// The `when` function takes the tool's arguments by reference and returns a bool.
use kern::prelude::*;

#[approval(when = by_amount)]
#[tool]
fn wrong_argument(amount: u64) -> u64 {
    amount
}

fn by_amount(amount: &u64) -> bool {
    *amount > 100
}

#[approval(when = by_value)]
#[tool]
fn taken_by_value(amount: u64) -> u64 {
    amount
}

fn by_value(args: TakenByValueArgs) -> bool {
    args.amount > 100
}

#[tool]
#[approval(when = a_number)]
fn wrong_return(amount: u64) -> u64 {
    amount
}

fn a_number(args: &WrongReturnArgs) -> u64 {
    args.amount
}

#[approval(when = LIMIT)]
#[tool]
fn not_a_function(amount: u64) -> u64 {
    amount
}

const LIMIT: u64 = 100;

#[approval(when = no_such_function)]
#[tool]
fn missing(amount: u64) -> u64 {
    amount
}

fn main() {}
