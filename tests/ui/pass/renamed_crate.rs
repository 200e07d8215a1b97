//! A crate that knows kern under another name, as after `renamed_kern = { package = "kern", .. }`
//! in Cargo.toml: `crate = ".."` on either attribute points the generated code there.
#![deny(warnings, missing_docs)]

extern crate kern as renamed_kern;

use renamed_kern::approval::{ApprovalPolicy, approval};
use renamed_kern::tools::{Hitl, RunContext, Tool, tool};

/// On `#[tool]`, as a relative path.
#[tool(crate = "renamed_kern")]
pub async fn on_tool(
    /// Who asks.
    user: String,
    ctx: &RunContext,
) -> Result<String, std::io::Error> {
    Ok(format!("{user} {}", ctx.run_id))
}

/// On an `#[approval]` above `#[tool]`, as an absolute path.
#[approval(crate = "::renamed_kern", expires_in = "1h")]
#[tool(requires_user_input)]
pub fn on_approval_above(amount: u32) -> u32 {
    amount
}

/// On an `#[approval]` below `#[tool]`.
#[renamed_kern::tools::tool(requires_confirmation)]
#[renamed_kern::approval::approval(type = "audit", crate = "renamed_kern")]
pub fn on_approval_below() {}

/// The same path on both.
#[approval(crate = "renamed_kern")]
#[tool(external_execution, crate = "renamed_kern")]
pub fn on_both(path: Option<String>) -> Option<String> {
    path
}

fn main() {
    assert_eq!(OnTool.definition().parameters["required"][0], "user");
    assert_eq!(OnApprovalAbove.definition().hitl, Hitl::UserInput { fields: vec!["amount".into()] });
    assert_eq!(
        OnApprovalAbove.definition().approval,
        Some(ApprovalPolicy::REQUIRED.expires_in(std::time::Duration::from_secs(3600)))
    );
    assert_eq!(OnApprovalBelow.definition().approval, Some(ApprovalPolicy::AUDIT));
    assert_eq!(OnBoth.definition().approval, Some(ApprovalPolicy::REQUIRED));
    assert_eq!(on_both(None), None);
}
