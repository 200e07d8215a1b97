//! The approval policy `#[approval]` and `log_approval` put on a tool, in either attribute order:
//! its type and expiry, who may decide, and the `when` condition judged on a call's arguments.

use std::time::Duration;

use kern::approval::{ApprovalPolicy, OnExpire, approval};
use kern::tools::{Hitl, RunContext, Tool, ToolError, tool};
use serde_json::{Value, json};

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

#[approval(expires_in = "36500d")]
#[tool]
fn a_century() {}

#[test]
fn the_longest_expiry_the_macro_takes_is_the_one_agents_take() {
    let longest = Some(ApprovalPolicy::REQUIRED.expires_in(kern::approval::MAX_EXPIRES_IN));
    assert_eq!(ACentury.definition().approval, longest);
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

#[approval(approvers = ["finance", "ops"])]
#[tool]
fn by_role() {}

#[tool]
#[approval(approvers = ["finance"], quorum = 2)]
fn two_of_finance() {}

#[approval(quorum = 3)]
#[tool]
fn three_of_anyone() {}

#[approval(self_approval = false)]
#[tool]
fn not_by_self() {}

#[approval(self_approval = true)]
#[tool]
fn by_self_too() {}

#[approval(allow_edit)]
#[tool]
fn editable(amount: u64) -> u64 {
    amount
}

#[tool(requires_confirmation)]
#[approval(allow_edit = true)]
fn editable_true(amount: u64) -> u64 {
    amount
}

#[approval(allow_edit = false)]
#[tool]
fn not_editable(amount: u64) -> u64 {
    amount
}

#[approval(expires_in = "1h", on_expire = "cancel_run")]
#[tool]
fn expiry_cancels() {}

#[tool]
#[approval(on_expire = "reject", expires_in = "1h")]
fn expiry_rejects() {}

#[test]
fn who_may_decide() {
    assert_eq!(ByRole.definition().approval, Some(ApprovalPolicy::REQUIRED.approvers(["finance", "ops"])));
    assert_eq!(TwoOfFinance.definition().approval, Some(ApprovalPolicy::REQUIRED.approvers(["finance"]).quorum(2)));
    assert_eq!(ThreeOfAnyone.definition().approval, Some(ApprovalPolicy::REQUIRED.quorum(3)));
    assert_eq!(NotBySelf.definition().approval, Some(ApprovalPolicy::REQUIRED.self_approval(false)));
    assert_eq!(BySelfToo.definition().approval, Some(ApprovalPolicy::REQUIRED));
    for definition in [ByRole.definition(), TwoOfFinance.definition(), NotBySelf.definition()] {
        assert_eq!(definition.hitl, Hitl::Confirmation);
    }
}

#[test]
fn allow_edit_as_a_flag() {
    assert_eq!(Editable.definition().approval, Some(ApprovalPolicy::REQUIRED.allow_edit()));
    assert_eq!(EditableTrue.definition().approval, Some(ApprovalPolicy::REQUIRED.allow_edit()));
    assert_eq!(NotEditable.definition().approval, Some(ApprovalPolicy::REQUIRED));
}

#[test]
fn what_an_expiry_does() {
    let hour = ApprovalPolicy::REQUIRED.expires_in(Duration::from_secs(3600));
    assert_eq!(ExpiryCancels.definition().approval, Some(hour.clone().on_expire(OnExpire::CancelRun)));
    assert_eq!(ExpiryRejects.definition().approval, Some(hour.on_expire(OnExpire::Reject)));
}

/// Pay an amount into an account.
#[approval(when = over_limit)]
#[tool]
fn send_payment(
    /// In cents.
    amount: u64,
    account: String,
    note: Option<String>,
    ctx: &RunContext,
) -> String {
    format!("{amount} to {account} ({note:?}) for run {}", ctx.run_id)
}

/// Large payments need an admin; small ones run at once.
fn over_limit(args: &SendPaymentArgs) -> bool {
    args.amount > 10_000
}

mod rules {
    pub fn always(_: &super::ResetArgs) -> bool {
        true
    }
}

#[tool(requires_confirmation)]
#[approval(when = rules::always, quorum = 2)]
fn reset() {}

#[test]
fn when_is_no_part_of_the_policy() {
    assert_eq!(SendPayment.definition().approval, Some(ApprovalPolicy::REQUIRED));
    assert_eq!(SendPayment.definition().hitl, Hitl::Confirmation);
    assert_eq!(Reset.definition().approval, Some(ApprovalPolicy::REQUIRED.quorum(2)));
}

#[test]
fn needs_approval_is_the_conditions_answer() {
    assert_eq!(SendPayment.needs_approval(&json!({"amount": 20_000, "account": "acme"})), Ok(true));
    assert_eq!(SendPayment.needs_approval(&json!({"amount": 10_000, "account": "acme", "note": "rent"})), Ok(false));
    assert_eq!(SendPayment.needs_approval(&json!({"amount": 5, "account": "acme", "note": null})), Ok(false));
    // A tool without arguments takes `null` for `{}`, as its call does.
    assert_eq!(Reset.needs_approval(&Value::Null), Ok(true));
    assert_eq!(Reset.needs_approval(&json!({})), Ok(true));
}

#[test]
fn without_when_every_call_needs_approval() {
    assert_eq!(ByRole.needs_approval(&json!({})), Ok(true));
    assert_eq!(Editable.needs_approval(&json!({"amount": 1})), Ok(true));
    // Not even read: arguments the call would refuse are the call's to refuse.
    assert_eq!(Editable.needs_approval(&json!("not arguments")), Ok(true));
}

#[tokio::test]
async fn arguments_the_call_refuses_the_condition_refuses_alike() {
    let ctx = RunContext::default();
    for args in [
        json!({"amount": "many", "account": "acme"}),
        json!({"account": "acme"}),
        json!({"amount": 1, "account": "acme", "ctx": {}}),
        json!({"amount": 1, "account": "acme", "extra": true}),
        json!([1, "acme", null]),
        json!("pay"),
        Value::Null,
    ] {
        let refused = SendPayment.needs_approval(&args);
        assert!(matches!(refused, Err(ToolError::InvalidArguments(_))), "{args}: {refused:?}");
        assert_eq!(refused, SendPayment.call(&ctx, args.clone()).await.map(|_| true), "{args}");
    }
    assert_eq!(
        Reset.needs_approval(&json!({"force": true})),
        Err(ToolError::InvalidArguments("unknown field `force`, there are no fields".into()))
    );
}

#[test]
fn the_argument_struct_is_public_and_typed() {
    let args: SendPaymentArgs = serde_json::from_value(json!({"amount": 7, "account": "acme"})).unwrap();
    let copy = args.clone();
    assert_eq!(format!("{copy:?}"), r#"SendPaymentArgs { amount: 7, account: "acme", note: None }"#);
    let built = SendPaymentArgs { amount: 7, account: "acme".into(), note: Some("rent".into()) };
    assert!(!over_limit(&built));
    assert_eq!(format!("{:?}", ResetArgs {}), "ResetArgs");
}
