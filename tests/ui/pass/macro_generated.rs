//! Tools declared by a `macro_rules!` macro (types then arrive wrapped in invisible groups).
#![deny(warnings)]

use kern::prelude::*;

macro_rules! echo_tool {
    ($name:ident, $ty:ty, $ctx:ty) => {
        /// Echoes its argument.
        #[tool]
        fn $name(value: $ty, ctx: &$ctx) -> $ty {
            let _ = ctx;
            value
        }
    };
}

echo_tool!(echo_u8, u8, RunContext);
echo_tool!(echo_text, String, RunContext);

fn main() {
    assert_eq!(EchoU8.definition().parameters["properties"]["value"]["type"], "integer");
    assert_eq!(EchoText.definition().parameters["properties"]["value"]["type"], "string");
}
