//! The tools of one agent or team, indexed by wire name.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::approval::{MAX_EXPIRES_IN, RowPolicy, unfit_policy};
use crate::error::{Error, Result};
use crate::models::ToolSchema;
use crate::schema::Validator;
use crate::tools::{Hitl, Tool, ToolDefinition};

/// Tools with their definitions computed once, and the schemas the model is shown.
#[derive(Clone, Default)]
pub(crate) struct Toolbox {
    by_name: HashMap<String, ToolEntry>,
    schemas: Vec<ToolSchema>,
}

/// One tool, its definition, and (for a tool whose calls wait for a person) its arguments'
/// schema compiled once: such a call's arguments are checked before anyone is asked.
#[derive(Clone)]
pub(crate) struct ToolEntry {
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) definition: ToolDefinition,
    pub(crate) parameters: Option<Validator>,
}

/// Applies the rules `#[approval]` enforces at compile time to any definition, hand-written
/// ones included, so an approval policy can never fail open: a required approval without a
/// HITL kind pauses for confirmation; an audit approval needs a HITL interaction to record; a
/// quorum approves only calls as they stand (confirmations), and edits only calls that run here;
/// approvers are distinct roles, each a name with no blanks around it (roles match exactly, so
/// `" finance"` would let nobody decide); an expiry is at most [`MAX_EXPIRES_IN`], or its rows
/// could get none.
fn gate_rules(mut definition: ToolDefinition) -> Result<ToolDefinition> {
    let refuse = |reason: &str| Error::InvalidTool { tool: definition.name.clone(), reason: reason.to_owned() };
    if let Some(reason) = unfit_for_models(&definition) {
        return Err(refuse(&reason));
    }
    let (quorum, allow_edit) = definition.approval.as_ref().map_or((1, false), |p| (p.quorum, p.allow_edit));
    if let Some(reason) = definition.hitl.pause_type().and_then(|pause| unfit_policy(pause, quorum, allow_edit)) {
        return Err(refuse(reason));
    }
    let approvers = definition.approval.as_ref().map(|policy| policy.approvers.as_slice()).unwrap_or_default();
    if approvers.iter().any(|role| role.is_empty() || role.trim() != role) {
        return Err(refuse("an approver's role is a name with no blanks around it, like `finance`"));
    }
    if approvers.iter().enumerate().any(|(at, role)| approvers[..at].contains(role)) {
        return Err(refuse("a role is listed twice among its approvers: list it once"));
    }
    if definition.approval.as_ref().and_then(|policy| policy.expires_in).is_some_and(|ttl| ttl > MAX_EXPIRES_IN) {
        let days = MAX_EXPIRES_IN.as_secs() / 86_400;
        return Err(refuse(&format!("its expiry is longer than a row can wait ({days}d): leave it out for no expiry")));
    }
    if definition.hitl == Hitl::None {
        if definition.requires_approval() {
            definition.hitl = Hitl::Confirmation;
        } else if definition.is_audited() {
            return Err(Error::InvalidTool {
                tool: definition.name,
                reason: "an audit approval records a human decision: give the tool a HITL kind \
                         (confirmation, user input or external execution)"
                    .into(),
            });
        }
    }
    Ok(definition)
}

/// Why model APIs would refuse a definition as `#[tool]` never writes one, or `None` when they
/// take it: a name of 1 to 64 ASCII letters, digits, `_` and `-`; parameters that are the JSON
/// Schema of an object; and user-input fields that are some of them. Checked once, at build,
/// rather than failing every request the agent makes (or asking a person for nothing).
fn unfit_for_models(definition: &ToolDefinition) -> Option<String> {
    let name = &definition.name;
    let fit = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-';
    if !(1..=64).contains(&name.len()) || !name.bytes().all(fit) {
        return Some("model APIs take tool names of 1 to 64 ASCII letters, digits, `_` and `-`".to_owned());
    }
    if definition.parameters.get("type").and_then(Value::as_str) != Some("object") {
        return Some("its parameters must be the JSON Schema of an object (`\"type\": \"object\"`)".to_owned());
    }
    let Hitl::UserInput { fields } = &definition.hitl else { return None };
    if fields.is_empty() {
        return Some("it asks for user input but names no field: list the arguments a person fills in".to_owned());
    }
    let Some(asked) = definition.user_input_schema.as_ref().and_then(|schema| schema.get("properties")) else {
        return Some(
            "it asks for user input but has no user-input schema: build it with `ToolDefinition::new`".to_owned(),
        );
    };
    fields
        .iter()
        .find(|field| asked.get(field.as_str()).is_none())
        .map(|field| format!("user-input field `{field}` is none of its parameters"))
}

impl Toolbox {
    /// Indexes `tools`; two tools with one name are an error.
    pub(crate) fn new(tools: Vec<Arc<dyn Tool>>) -> Result<Self> {
        let mut toolbox = Toolbox::default();
        for tool in tools {
            let definition = gate_rules(tool.definition())?;
            if toolbox.by_name.contains_key(&definition.name) {
                return Err(Error::DuplicateTool(definition.name));
            }
            toolbox.schemas.push(ToolSchema {
                name: definition.name.clone(),
                description: definition.description.clone(),
                parameters: definition.parameters.clone(),
            });
            let parameters = match definition.hitl.pause_type() {
                Some(_) => Some(Validator::new(&definition.parameters).map_err(|reason| Error::InvalidTool {
                    tool: definition.name.clone(),
                    reason: format!("its parameters cannot be checked: {reason}"),
                })?),
                None => None,
            };
            toolbox.by_name.insert(definition.name.clone(), ToolEntry { tool, definition, parameters });
        }
        Ok(toolbox)
    }

    /// Adds schemas of built-in tools that the loop carries out itself (a leader's
    /// delegation); their names must not clash with the user's tools.
    pub(crate) fn with_builtins(mut self, schemas: Vec<ToolSchema>) -> Result<Self> {
        for schema in schemas {
            if self.by_name.contains_key(&schema.name) || self.schemas.iter().any(|s| s.name == schema.name) {
                return Err(Error::DuplicateTool(schema.name));
            }
            self.schemas.push(schema);
        }
        Ok(self)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&ToolEntry> {
        self.by_name.get(name)
    }

    pub(crate) fn schemas(&self) -> &[ToolSchema] {
        &self.schemas
    }

    /// The first tool with an approval, required or audit: it writes approval rows, which
    /// need a database.
    pub(crate) fn first_with_approval(&self) -> Option<&str> {
        self.schemas
            .iter()
            .filter_map(|schema| self.by_name.get(&schema.name))
            .map(|entry| &entry.definition)
            .find(|definition| definition.approval.is_some())
            .map(|definition| definition.name.as_str())
    }

    /// True when calls of `name` need an admin's approval under the tool's current definition.
    pub(crate) fn requires_approval(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|entry| entry.definition.requires_approval())
    }

    /// The policy a new row of the tool is opened under, copied from its `#[approval]`.
    pub(crate) fn row_policy(&self, name: &str) -> Option<RowPolicy> {
        let definition = &self.by_name.get(name)?.definition;
        Some(definition.approval.as_ref()?.row_policy(&definition.parameters))
    }

    /// How long a pending approval row of the tool stays valid.
    pub(crate) fn expires_in(&self, name: &str) -> Option<chrono::Duration> {
        let policy = self.by_name.get(name)?.definition.approval.as_ref()?;
        chrono::Duration::from_std(policy.expires_in?).ok()
    }

    /// The names of all tools, for telling a model which exist.
    pub(crate) fn names(&self) -> String {
        self.schemas.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
