// A required approval pauses for an admin's confirmation: turning confirmation off contradicts it.
use kern::prelude::*;

#[approval]
#[tool(requires_confirmation = false)]
fn refund(order_id: String) -> String {
    order_id
}

fn main() {}
