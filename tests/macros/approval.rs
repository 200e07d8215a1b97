//! The approval policy `#[approval]` and `log_approval` put on a tool, in either attribute order.

use std::time::Duration;

use kern::approval::{ApprovalPolicy, approval};
use kern::tools::{Hitl, Tool, tool};

#[approval]
#[tool]
fn above_bare() {}

#[tool]
#[approval]
fn below_bare() {}

#[test]
fn bare_approval_is_required_and_implies_confirmation() {
    for definition in [AboveBare.definition(), BelowBare.definition()] {
        assert_eq!(definition.approval, Some(ApprovalPolicy::REQUIRED));
        assert_eq!(definition.hitl, Hitl::Confirmation);
        assert!(definition.requires_approval());
        assert!(!definition.is_audited());
    }
}

#[approval(type = "required")]
#[tool(requires_user_input)]
fn above_required(amount: u32) -> u32 {
    amount
}

#[tool(external_execution)]
#[approval(type = "required")]
fn below_required() {}

#[test]
fn required_keeps_the_tools_own_hitl_kind() {
    assert_eq!(AboveRequired.definition().approval, Some(ApprovalPolicy::REQUIRED));
    assert_eq!(AboveRequired.definition().hitl, Hitl::UserInput { fields: vec!["amount".into()] });
    assert_eq!(BelowRequired.definition().approval, Some(ApprovalPolicy::REQUIRED));
    assert_eq!(BelowRequired.definition().hitl, Hitl::ExternalExecution);
}

#[approval(type = "audit")]
#[tool(requires_confirmation)]
fn above_audit() {}

#[tool(requires_confirmation)]
#[approval(type = "audit")]
fn below_audit() {}

#[tool(user_input_fields = ["note"], log_approval)]
fn logged(note: String) -> String {
    note
}

#[tool(requires_confirmation, log_approval = true)]
fn logged_true() {}

#[tool(requires_confirmation, log_approval = false)]
fn not_logged() {}

#[test]
fn audit_from_the_attribute_or_log_approval() {
    for definition in [AboveAudit.definition(), BelowAudit.definition(), LoggedTrue.definition()] {
        assert_eq!(definition.approval, Some(ApprovalPolicy::AUDIT));
        assert_eq!(definition.hitl, Hitl::Confirmation);
        assert!(definition.is_audited());
        assert!(!definition.requires_approval());
    }
    assert_eq!(Logged.definition().approval, Some(ApprovalPolicy::AUDIT));
    assert_eq!(Logged.definition().hitl, Hitl::UserInput { fields: vec!["note".into()] });
    assert_eq!(NotLogged.definition().approval, None);
}

#[approval(expires_in = "30s")]
#[tool]
fn seconds() {}

#[tool]
#[approval(expires_in = "15m")]
fn minutes() {}

#[approval(type = "required", expires_in = "24h")]
#[tool(requires_confirmation)]
fn hours() {}

#[tool(requires_confirmation)]
#[approval(expires_in = "7d", type = "required")]
fn days() {}

#[test]
fn expires_in_in_every_unit_and_order() {
    let policy = |seconds| Some(ApprovalPolicy::REQUIRED.expires_in(Duration::from_secs(seconds)));
    assert_eq!(Seconds.definition().approval, policy(30));
    assert_eq!(Minutes.definition().approval, policy(15 * 60));
    assert_eq!(Hours.definition().approval, policy(24 * 60 * 60));
    assert_eq!(Days.definition().approval, policy(7 * 24 * 60 * 60));
}

/// Full paths work as well as imported names.
#[kern::approval::approval(type = "audit")]
#[kern::tools::tool(external_execution)]
fn full_paths() {}

#[kern::tools::tool(requires_confirmation)]
#[kern::approval::approval(expires_in = "1h")]
fn full_paths_below() {}

#[test]
fn attributes_by_full_path() {
    assert_eq!(FullPaths.definition().approval, Some(ApprovalPolicy::AUDIT));
    assert_eq!(FullPaths.definition().hitl, Hitl::ExternalExecution);
    assert_eq!(FullPaths.definition().description, "Full paths work as well as imported names.");
    assert_eq!(
        FullPathsBelow.definition().approval,
        Some(ApprovalPolicy::REQUIRED.expires_in(Duration::from_secs(3600)))
    );
}
