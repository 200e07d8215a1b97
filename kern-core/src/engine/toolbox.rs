//! The tools of one agent or team, indexed by wire name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::models::ToolSchema;
use crate::tools::{Tool, ToolDefinition};

/// Tools with their definitions computed once, and the schemas the model is shown.
#[derive(Clone, Default)]
pub(crate) struct Toolbox {
    by_name: HashMap<String, (Arc<dyn Tool>, ToolDefinition)>,
    schemas: Vec<ToolSchema>,
}

impl Toolbox {
    /// Indexes `tools`; two tools with one name are an error.
    pub(crate) fn new(tools: Vec<Arc<dyn Tool>>) -> Result<Self> {
        let mut toolbox = Toolbox::default();
        for tool in tools {
            let definition = tool.definition();
            if toolbox.by_name.contains_key(&definition.name) {
                return Err(Error::DuplicateTool(definition.name));
            }
            toolbox.schemas.push(ToolSchema {
                name: definition.name.clone(),
                description: definition.description.clone(),
                parameters: definition.parameters.clone(),
            });
            toolbox.by_name.insert(definition.name.clone(), (tool, definition));
        }
        Ok(toolbox)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&(Arc<dyn Tool>, ToolDefinition)> {
        self.by_name.get(name)
    }

    pub(crate) fn schemas(&self) -> &[ToolSchema] {
        &self.schemas
    }

    /// The first tool that needs a database to hold its approval rows.
    pub(crate) fn first_requiring_approval(&self) -> Option<&str> {
        self.schemas.iter().map(|s| s.name.as_str()).find(|name| self.by_name[*name].1.requires_approval())
    }

    /// How long a pending approval row of the tool stays valid.
    pub(crate) fn expires_in(&self, name: &str) -> Option<chrono::Duration> {
        let policy = self.by_name.get(name)?.1.approval?;
        chrono::Duration::from_std(policy.expires_in?).ok()
    }

    /// The names of all tools, for telling a model which exist.
    pub(crate) fn names(&self) -> String {
        self.schemas.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
