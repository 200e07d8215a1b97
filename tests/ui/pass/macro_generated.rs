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

fn always(_: &ForgetArgs) -> bool {
    true
}

// Option values passed on as `literal` and `path` fragments arrive in invisible groups too.
macro_rules! gated_tool {
    ($name:literal, $expiry:literal, $when:path) => {
        /// Forgets a user.
        #[tool(name = $name, requires_confirmation)]
        #[approval(expires_in = $expiry, when = $when)]
        fn forget(user: String) -> String {
            user
        }
    };
}

gated_tool!("forget_user", "1h", always);

fn main() {
    assert_eq!(EchoU8.definition().parameters["properties"]["value"]["type"], "integer");
    assert_eq!(EchoText.definition().parameters["properties"]["value"]["type"], "string");
    let forget = Forget.definition();
    assert_eq!(forget.name, "forget_user");
    let expiry = forget.approval.and_then(|policy| policy.expires_in);
    assert_eq!(expiry, Some(std::time::Duration::from_secs(3600)));
}
