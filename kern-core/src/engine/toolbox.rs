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

    pub(crate) fn get(&self, name: &str) -> Option<&(Arc<dyn Tool>, ToolDefinition)> {
        self.by_name.get(name)
    }

    pub(crate) fn schemas(&self) -> &[ToolSchema] {
        &self.schemas
    }

    /// The first tool that needs a database to hold its approval rows.
    pub(crate) fn first_requiring_approval(&self) -> Option<&str> {
        self.by_name.values().map(|(_, d)| d).find(|d| d.requires_approval()).map(|d| d.name.as_str())
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
