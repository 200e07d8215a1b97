use kern::prelude::*;

#[derive(serde::Deserialize)]
struct Order {
    id: u64,
}

struct NoTraits;

#[tool]
fn place(order: Order, note: NoTraits) -> u64 {
    let _ = note;
    order.id
}

fn main() {
    // Using the tool adds an error naming the argument type again.
    let _: &dyn Tool = &Place;
}
