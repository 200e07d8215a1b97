//! `kern migrate`: opening the database brings it to the current schema; this says which
//! version it now has.

use serde_json::json;

use crate::exit::Outcome;
use crate::target::Context;

pub async fn run(ctx: &Context) -> Outcome {
    let version = ctx.database("migrate")?.schema_version().await?;
    if ctx.out.json {
        ctx.out.json_line(&json!({"schema_version": version}))
    } else {
        ctx.out.line(&format!("schema version {version}: up to date"))
    }
}
