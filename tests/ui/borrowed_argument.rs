use kern::prelude::*;

#[tool]
fn borrowed(name: &str, tags: Vec<&'static str>, items: std::borrow::Cow<'static, [u8]>) -> usize {
    name.len() + tags.len() + items.len()
}

#[tool]
fn context_by_value(ctx: RunContext) -> String {
    ctx.run_id
}

#[tool]
fn context_mut(ctx: &mut RunContext) -> String {
    ctx.run_id.clone()
}

fn main() {}
