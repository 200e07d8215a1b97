use kern::prelude::*;

#[tool]
fn generic<T: serde::de::DeserializeOwned, const N: usize>(value: T) -> usize {
    let _ = value;
    N
}

#[tool]
unsafe fn dangerous(n: u8) -> u8 {
    n
}

#[tool]
fn opaque(value: impl Into<String>) -> String {
    value.into()
}

#[tool]
fn nested(value: Option<impl Into<String>>) -> String {
    value.map(Into::into).unwrap_or_default()
}

fn main() {}
