use kern::prelude::*;

struct Service;

impl Service {
    #[tool]
    fn method(&self, id: u32) -> u32 {
        id
    }
}

fn main() {}
