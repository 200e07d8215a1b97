// One build reports every mistake in the options and the signature at once.
use kern::prelude::*;

#[approval(type = "sometimes", expires_in = "soon", ttl = "1h")]
#[tool]
fn approval_mistakes() {}

#[tool(requires_confirmaton, name = 7)]
fn tool_and_signature_mistakes((a, b): (u8, u8), _: String, c: &str) -> u8 {
    a + b + c.len() as u8
}

fn main() {}
