//! The `#[tool]` and `#[approval]` attribute macros of kern. Use them through the facade:
//! `kern::tools::tool` and `kern::approval::approval` (both in `kern::prelude`).
//!
//! Each expansion goes parse (`attr`: the attribute's options, `ast`: the function) ->
//! validate (`valid`: how the options combine) -> generate (`expand`). Mistakes are collected
//! as `syn::Error`s spanned at the offending token, so one build reports all of them.

mod ast;
mod attr;
mod errors;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Turns a function into a tool a model can call.
///
/// On `fn delete_user_data(..)`, sync or `async`, it generates a unit struct
/// `DeleteUserData` (PascalCase, with the function's visibility, deriving `Debug`, `Clone`,
/// `Copy` and `Default`) that implements `kern::tools::Tool`. The function itself stays as
/// written, so it can still be called and tested directly. The impl is
/// `#[automatically_derived]`, so lints about the function's own code (clippy's
/// `used_underscore_binding` on an argument named `_reason`, say) do not fire on it again.
///
/// The tool's definition holds:
/// - the wire name: the function's name, or `name = "..."`;
/// - the description: the function's doc comment (common indentation removed, ends trimmed),
///   or `description = "..."`;
/// - the JSON Schema of the arguments, with each argument's doc comment as its description;
///   `Option<T>` arguments are not required;
/// - the human-in-the-loop kind and the approval policy (see below).
///
/// Calling the tool deserializes the model's JSON object into the arguments, calls the
/// function (awaiting it when it is `async`) and serializes what it returns. Arguments that do
/// not fit (a wrong type, a missing or unknown field, not an object) give
/// `ToolError::InvalidArguments`, whose text goes back to the model; `null` stands for `{}`.
/// A sync function runs on the task that calls the tool, so keep it quick (or make it `async`
/// and move blocking work to `tokio::task::spawn_blocking`); an `async` one must be `Send`, as
/// agents run tools on a multi-threaded runtime.
///
/// # Arguments
///
/// - Any owned type implementing `serde::Deserialize` and `schemars::JsonSchema`: `String`,
///   numbers, `bool`, `Vec<T>`, `Option<T>`, your own types with both derives. Each becomes a
///   property named like the argument.
/// - `&RunContext` (any path ending in `RunContext`): not in the schema; kern passes the run's
///   context (run, session and user ids, and the approval id and an idempotency key when an
///   admin approved the call).
///
/// Not allowed, each a compile error saying what to write instead: `self`, patterns such as
/// `(a, b): (i32, i32)`, borrowed types such as `&str`, `impl Trait`, generic type parameters, `unsafe fn`,
/// `#[cfg]` on an argument, an argument type without the two traits.
///
/// # Return value
///
/// Any `serde::Serialize` value (or none, giving `null`). A return type whose last path segment
/// is `Result` (`Result<T, E>`, `std::io::Result<T>`, `anyhow::Result<T>`) is fallible: `Ok`
/// is serialized, `Err` (any `E: Display`) becomes `ToolError::Failed` with its text. The macro
/// sees only the name: an alias under another one (`type AppResult<T> = Result<T, AppError>`)
/// is a plain value, whose `Err` would be serialized as the call's result; write
/// `Result<T, AppError>` in the signature.
///
/// # Options
///
/// | Option | Meaning |
/// |---|---|
/// | `name = "..."` | Wire name (1 to 64 ASCII letters, digits, `_`, `-`). |
/// | `description = "..."` | Description, instead of the doc comment. |
/// | `requires_confirmation` | A person confirms or rejects each call. |
/// | `requires_user_input` | A person supplies every argument. |
/// | `user_input_fields = ["a", "b"]` | A person supplies these arguments (implies `requires_user_input`); the model's schema leaves them out. |
/// | `external_execution` | The call is carried out elsewhere and its result handed back. |
/// | `log_approval` | Audit approval: the same as `#[approval(type = "audit")]`. |
/// | `crate = "..."` | The path by which this crate reaches kern (see below). |
///
/// Flags may be written `flag`, `flag = true` or `flag = false`. At most one
/// human-in-the-loop kind (confirmation, user input, external execution) is allowed.
///
/// # Reaching kern under another path
///
/// The generated code names everything through `::kern`. A crate that depends on kern under
/// another name (`my_kern = { package = "kern", .. }` in `Cargo.toml`) or reaches it through
/// another crate's re-export says which path to use instead: `crate = "my_kern"`,
/// `crate = "::my_app::kern"` or `crate = "crate::reexports::kern"`, a module path as a
/// string, as with `#[serde(crate = "...")]`. It may be given on `#[tool]` or on its
/// `#[approval]`; when both give it, the paths must be the same. A value that is no path and
/// two different paths are compile errors; a path that does not resolve is reported at the
/// string.
///
/// ```
/// # mod my_app { pub use kern; }
/// // `my_app` re-exports kern (`pub use kern;`); this crate does not depend on kern itself.
/// use my_app::kern::tools::{Tool, tool};
///
/// #[tool(crate = "my_app::kern")]
/// fn ping() -> String {
///     "pong".to_owned()
/// }
///
/// assert_eq!(Ping.definition().name, "ping");
/// ```
///
/// # Example
///
/// ```
/// use kern::tools::{RunContext, Tool, tool};
///
/// /// Look up the weather in a city.
/// #[tool]
/// async fn weather(
///     /// The city's name, in English.
///     city: String,
///     /// Celsius unless set.
///     fahrenheit: Option<bool>,
///     ctx: &RunContext,
/// ) -> Result<String, std::io::Error> {
///     let unit = if fahrenheit == Some(true) { "F" } else { "C" };
///     Ok(format!("21 {unit} in {city} (run {})", ctx.run_id))
/// }
///
/// let definition = Weather.definition();
/// assert_eq!(definition.name, "weather");
/// assert_eq!(definition.description, "Look up the weather in a city.");
/// assert_eq!(definition.parameters["required"][0], "city");
/// ```
#[proc_macro_attribute]
pub fn tool(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::tool(args.into(), item.into()).into()
}

/// Puts a `#[tool]` behind an admin's decision, recorded as an approval row in the database.
///
/// - `#[approval]` or `#[approval(type = "required")]`: blocking. A call pauses the run and
///   writes a pending row; the run continues once an admin has approved or rejected it. When
///   the tool has no human-in-the-loop option, `requires_confirmation` is implied.
/// - `#[approval(type = "audit")]`: non-blocking. The tool's own human-in-the-loop step
///   (which it must have: `requires_confirmation`, `requires_user_input`, `user_input_fields`
///   or `external_execution`) decides, and a row records the outcome. `log_approval` on
///   `#[tool]` means the same; write one or the other.
///
/// It goes on the same function as `#[tool]`, above or below it, and hands its options to
/// `#[tool]`, which generates the code and reports mistakes in both.
///
/// # Options
///
/// A required approval may say who decides and what happens when; the tool's definition then
/// carries them in its `ApprovalPolicy`.
///
/// | Option | Meaning |
/// |---|---|
/// | `type = "required"` or `"audit"` | Blocking (the default) or audit, as above. |
/// | `approvers = ["finance", "ops"]` | Only principals holding one of these roles may decide (by default any may). |
/// | `quorum = 2` | That many distinct eligible principals must approve (default 1); one eligible rejection rejects. |
/// | `self_approval = false` | The user the run acts for may not decide their own call (by default they may). |
/// | `allow_edit` | An approver may change the call's arguments when approving. A flag: `allow_edit = true` and `= false` work too. |
/// | `expires_in = "30s"`, `"15m"`, `"24h"`, `"7d"` | A pending row not decided in time expires and the tool does not run. |
/// | `on_expire = "reject"` or `"cancel_run"` | What an expiry does: the call is refused and the run goes on (the default), or the whole run is cancelled. Needs `expires_in`. |
/// | `when = path::to::function` | The call needs the approval only when this function says so (see below). |
/// | `crate = "..."` | The path by which this crate reaches kern, as on `#[tool]` (see "Reaching kern under another path" there); when both attributes give it, the paths must be the same. |
///
/// Everything but `type` and `crate` is for required approvals only: an audit row records a
/// decision already made. The values are checked at compile time, each mistake a compile error
/// that says what to write instead: an unknown `type` or option, an option given twice, an
/// empty, repeated or non-string role, a quorum below 1, a `self_approval` that is no bool, a
/// malformed `expires_in`, an `on_expire` without `expires_in`, a `when` that is no path, a
/// `crate` that is no path, and a `crate` that differs from the one on `#[tool]`.
///
/// # Deciding per call: `when`
///
/// `when` names a function `fn(&Args) -> bool` over the tool's arguments, where `Args` is a
/// struct generated for the tool: on `fn send_payment(..)`, `SendPaymentArgs` (the tool
/// struct's name followed by `Args`), with the function's visibility and one public field per
/// argument the model supplies (a `&RunContext` is not one), documented by the argument's doc
/// comment. It implements `serde::Deserialize` as the tool reads its arguments, and `Debug` and
/// `Clone` when every argument type does. The struct is generated only for tools with `when`.
///
/// The tool's `Tool::needs_approval` reads the model's arguments into it (arguments the call
/// would refuse give the same `ToolError::InvalidArguments`) and returns the function's answer.
/// A function of another type is a type error at the path. `when` needs a confirmation, the
/// kind a bare required approval implies: a user-input or external-execution call always needs
/// a person.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use kern::approval::{ApprovalPolicy, OnExpire, approval};
/// use kern::tools::{Hitl, Tool, tool};
/// use serde_json::json;
///
/// /// Pay an amount into an account.
/// #[approval(
///     approvers = ["finance"],
///     quorum = 2,
///     self_approval = false,
///     expires_in = "24h",
///     on_expire = "cancel_run",
///     when = large,
/// )]
/// #[tool]
/// fn send_payment(
///     /// In cents.
///     amount: u64,
///     account: String,
/// ) -> String {
///     format!("paid {amount} into {account}")
/// }
///
/// /// Payments from 1000.00 up wait for two people from finance, neither of them the
/// /// requester; smaller ones run at once.
/// fn large(args: &SendPaymentArgs) -> bool {
///     args.amount >= 100_000
/// }
///
/// let definition = SendPayment.definition();
/// assert_eq!(definition.hitl, Hitl::Confirmation);
/// let policy = ApprovalPolicy::REQUIRED
///     .approvers(["finance"])
///     .quorum(2)
///     .self_approval(false)
///     .expires_in(Duration::from_secs(24 * 60 * 60))
///     .on_expire(OnExpire::CancelRun);
/// assert_eq!(definition.approval, Some(policy));
/// assert_eq!(SendPayment.needs_approval(&json!({"amount": 250_000, "account": "acme"})), Ok(true));
/// assert_eq!(SendPayment.needs_approval(&json!({"amount": 499, "account": "acme"})), Ok(false));
/// ```
#[proc_macro_attribute]
pub fn approval(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::approval(args.into(), item.into()).into()
}
