use kern::prelude::*;

#[tool]
fn tuple((a, b): (i32, i32), _: u8, ref c: String, d @ 1..=9: u8) -> i32 {
    a + b + c.len() as i32 + i32::from(d)
}

fn main() {
    // The struct is still generated, so uses of it do not pile up more errors.
    let _ = Tuple;
}
