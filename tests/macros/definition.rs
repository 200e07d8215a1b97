//! What `Tool::definition` says about a `#[tool]` function: name, description, the JSON Schema
//! of its arguments, and its human-in-the-loop kind.

use kern::tools::{Hitl, RunContext, Tool, ToolDefinition, tool};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Permanently delete all data for a user.
///
/// Requires admin approval.
#[tool]
pub async fn delete_user_data(
    /// The user's id.
    user_id: String,
    /// Why the data goes, for the audit log.
    reason: Option<String>,
    ctx: &RunContext,
) -> String {
    format!("deleted {user_id} ({}) in run {}", reason.unwrap_or_default(), ctx.run_id)
}

#[test]
fn snapshot_of_a_documented_tool() {
    assert_eq!(
        DeleteUserData.definition(),
        ToolDefinition {
            name: "delete_user_data".into(),
            description: "Permanently delete all data for a user.\n\nRequires admin approval.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "user_id": {"type": "string", "description": "The user's id."},
                    "reason": {"type": ["string", "null"], "description": "Why the data goes, for the audit log."}
                },
                "required": ["user_id"],
                "additionalProperties": false
            }),
            user_input_schema: None,
            hitl: Hitl::None,
            approval: None,
        }
    );
}

#[test]
fn the_function_stays_callable_and_the_struct_is_a_plain_unit_struct() {
    let ctx = RunContext { run_id: "r1".into(), ..RunContext::default() };
    let out = block_on(delete_user_data("42".into(), None, &ctx));
    assert_eq!(out, "deleted 42 () in run r1");

    fn plain_unit_struct<T: std::fmt::Debug + Clone + Copy + Default + Send + Sync + 'static>() {}
    plain_unit_struct::<DeleteUserData>();
    assert_eq!(format!("{DeleteUserData:?}"), "DeleteUserData");
    // Agents hold tools as trait objects.
    let boxed: Box<dyn Tool> = Box::new(DeleteUserData);
    assert_eq!(boxed.definition().name, "delete_user_data");
}

/// Polls a future that never waits (the tools here do not), without a runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(future)
}

/// The doc comment loses to `description`.
#[tool(name = "lookup-v2", description = "Look a word up.")]
fn look_up(word: String) -> String {
    word
}

#[tool]
fn undocumented() {}

///   Indented first line.
///
///       kept relative indentation
///
#[tool]
fn indented_docs() {}

/// Documented partly by a macro,
#[doc = concat!("  ", "as `include_str!` would. ")]
///
#[tool]
fn doc_from_a_macro() {}

#[test]
fn name_and_description() {
    let definition = LookUp.definition();
    assert_eq!(definition.name, "lookup-v2");
    assert_eq!(definition.description, "Look a word up.");

    assert_eq!(Undocumented.definition().name, "undocumented");
    assert_eq!(Undocumented.definition().description, "");
    assert_eq!(IndentedDocs.definition().description, "Indented first line.\n\n    kept relative indentation");
    assert_eq!(DocFromAMacro.definition().description, "Documented partly by a macro,\n  as `include_str!` would.");
}

#[test]
fn a_tool_without_arguments_has_an_empty_object_schema() {
    assert_eq!(
        Undocumented.definition().parameters,
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    );
}

/// How urgent a ticket is.
#[derive(Debug, Deserialize, JsonSchema, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    High,
}

/// Where to send it.
#[derive(Debug, Deserialize, JsonSchema, PartialEq, serde::Serialize)]
pub struct Address {
    /// Street and number.
    pub street: String,
    pub zip: u32,
}

/// Open a support ticket.
#[tool]
fn open_ticket(title: String, priority: Priority, tags: Vec<String>, address: Option<Address>, count: u8) -> bool {
    !title.is_empty() && priority == Priority::High && tags.len() == usize::from(count) && address.is_none()
}

#[test]
fn snapshot_of_nested_and_numeric_types() {
    assert_eq!(
        OpenTicket.definition().parameters,
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "high"], "description": "How urgent a ticket is."},
                "tags": {"type": "array", "items": {"type": "string"}},
                "address": {
                    "type": ["object", "null"],
                    "description": "Where to send it.",
                    "properties": {
                        "street": {"type": "string", "description": "Street and number."},
                        "zip": {"type": "integer", "format": "uint32", "minimum": 0}
                    },
                    "required": ["street", "zip"]
                },
                "count": {"type": "integer", "format": "uint8", "minimum": 0, "maximum": 255}
            },
            "required": ["title", "priority", "tags", "count"],
            "additionalProperties": false
        })
    );
}

/// Raw identifiers are JSON properties without `r#`.
#[tool]
fn r#match(r#type: String) -> String {
    r#type
}

#[test]
fn raw_identifiers() {
    let definition = Match.definition();
    assert_eq!(definition.name, "match");
    assert_eq!(definition.parameters["properties"], json!({"type": {"type": "string"}}));
}

/// An argument the function ignores, named `_like_this`. The generated impl passes it on by
/// name, which clippy's `used_underscore_binding` would report at the argument were the impl not
/// `#[automatically_derived]`; the deny makes `cargo clippy` check that.
#[deny(clippy::used_underscore_binding)]
mod ignored_argument {
    use kern::tools::tool;

    #[tool]
    pub(super) fn acknowledge(_reason: String) -> bool {
        true
    }
}

#[test]
fn an_ignored_argument_keeps_its_name() {
    let definition = ignored_argument::Acknowledge.definition();
    assert_eq!(definition.parameters["properties"], json!({"_reason": {"type": "string"}}));
    assert!(ignored_argument::acknowledge(String::new()));
}

#[tool(requires_confirmation)]
fn confirm_bare() {}

#[tool(requires_confirmation = true)]
fn confirm_true() {}

#[tool(requires_confirmation = false)]
fn confirm_false() {}

#[tool(external_execution)]
fn run_elsewhere(command: String) -> String {
    command
}

#[test]
fn flags() {
    assert_eq!(ConfirmBare.definition().hitl, Hitl::Confirmation);
    assert_eq!(ConfirmTrue.definition().hitl, Hitl::Confirmation);
    assert_eq!(ConfirmFalse.definition().hitl, Hitl::None);
    assert_eq!(RunElsewhere.definition().hitl, Hitl::ExternalExecution);
    assert_eq!(RunElsewhere.definition().user_input_schema, None);
}

/// Send money.
#[tool(user_input_fields = ["amount", "note"])]
fn send_money(
    /// Who gets it.
    to: String,
    /// In cents.
    amount: u64,
    note: Option<String>,
    _ctx: &RunContext,
) -> String {
    format!("{amount} to {to} ({})", note.unwrap_or_default())
}

#[test]
fn user_input_fields_are_split_off_the_models_schema() {
    let definition = SendMoney.definition();
    assert_eq!(definition.hitl, Hitl::UserInput { fields: vec!["amount".into(), "note".into()] });
    assert_eq!(
        definition.parameters,
        json!({
            "type": "object",
            "properties": {"to": {"type": "string", "description": "Who gets it."}},
            "required": ["to"],
            "additionalProperties": false
        })
    );
    assert_eq!(
        definition.user_input_schema,
        Some(json!({
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "format": "uint64", "minimum": 0, "description": "In cents."},
                "note": {"type": ["string", "null"]}
            },
            "required": ["amount"],
            "additionalProperties": false
        }))
    );
}

#[tool(requires_user_input)]
fn ask_everything(name: String, ctx: &RunContext, age: u8) -> String {
    format!("{name} {age} {}", ctx.run_id)
}

#[tool(requires_user_input, user_input_fields = ["age"])]
fn ask_age(name: String, age: u8) -> String {
    format!("{name} {age}")
}

#[test]
fn requires_user_input_alone_means_every_argument_but_the_context() {
    let definition = AskEverything.definition();
    assert_eq!(definition.hitl, Hitl::UserInput { fields: vec!["name".into(), "age".into()] });
    assert_eq!(definition.parameters["properties"], json!({}));
    assert_eq!(definition.user_input_schema.unwrap()["required"], json!(["name", "age"]));

    // Together with `user_input_fields`, the list decides.
    let definition = AskAge.definition();
    assert_eq!(definition.hitl, Hitl::UserInput { fields: vec!["age".into()] });
    assert_eq!(definition.parameters["required"], json!(["name"]));
}

mod nested {
    use kern::tools::tool;

    /// Visible in the parent module, like the function.
    #[tool]
    pub(super) fn in_a_module() {}
}

#[test]
fn the_struct_has_the_functions_visibility() {
    assert_eq!(nested::InAModule.definition().name, "in_a_module");
    nested::in_a_module();
}

#[test]
fn a_tool_inside_a_function_body() {
    /// Local.
    #[tool]
    fn local(n: i32) -> i32 {
        n
    }
    assert_eq!(Local.definition().description, "Local.");
    assert_eq!(local(3), 3);
}
