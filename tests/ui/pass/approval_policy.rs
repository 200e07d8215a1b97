//! Every `#[approval]` option together on public tools, under `deny(warnings, missing_docs)`: the
//! generated policy, argument struct and condition must not warn.
#![deny(warnings, missing_docs)]

use std::time::Duration;

use kern::approval::{ApprovalPolicy, OnExpire};
use kern::tools::{Hitl, Tool};
use serde_json::json;

/// Payments.
pub mod payments {
    use kern::prelude::*;
    use kern::tools::ToolDefinition;

    /// A currency: neither `Clone` nor `Debug`, so the argument struct holding it is neither.
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    pub struct Currency(pub String);

    /// Pay an amount into an account.
    #[approval(
        approvers = ["finance", "ops"],
        quorum = 2,
        self_approval = false,
        allow_edit,
        expires_in = "30m",
        on_expire = "cancel_run",
        when = rules::large,
    )]
    #[tool(requires_confirmation)]
    pub async fn send_payment(
        /// In cents.
        amount: u64,
        account: String,
        currency: Currency,
        ctx: &RunContext,
    ) -> Result<String, std::io::Error> {
        Ok(format!("{amount} {} to {account} for {}", currency.0, ctx.run_id))
    }

    /// The conditions, in a module of their own.
    pub mod rules {
        /// Large payments need approval.
        pub fn large(args: &super::SendPaymentArgs) -> bool {
            args.amount >= 100_000 || args.currency.0 != "EUR"
        }
    }

    /// A condition given on an `#[approval]` written below `#[tool]`, on a private tool, as an
    /// associated function of its argument struct.
    #[tool]
    #[approval(when = RefundArgs::weekend, expires_in = "1d", on_expire = "reject", allow_edit = false)]
    fn refund(order: u64) -> u64 {
        order
    }

    /// Why the private tool is there.
    pub fn refund_definition() -> ToolDefinition {
        let _ = refund(1);
        Refund.definition()
    }

    impl RefundArgs {
        fn weekend(args: &RefundArgs) -> bool {
            args.order % 7 < 2
        }
    }
}

fn main() {
    let definition = payments::SendPayment.definition();
    assert_eq!(definition.hitl, Hitl::Confirmation);
    assert_eq!(
        definition.approval,
        Some(
            ApprovalPolicy::REQUIRED
                .approvers(["finance", "ops"])
                .quorum(2)
                .self_approval(false)
                .allow_edit()
                .expires_in(Duration::from_secs(30 * 60))
                .on_expire(OnExpire::CancelRun)
        )
    );
    let args = json!({"amount": 100_000, "account": "acme", "currency": "EUR"});
    assert_eq!(payments::SendPayment.needs_approval(&args), Ok(true));
    let small =
        payments::SendPaymentArgs { amount: 5, account: "acme".into(), currency: payments::Currency("EUR".into()) };
    assert!(!payments::rules::large(&small));
    assert_eq!(
        payments::refund_definition().approval,
        Some(ApprovalPolicy::REQUIRED.expires_in(Duration::from_secs(86_400)))
    );
}
