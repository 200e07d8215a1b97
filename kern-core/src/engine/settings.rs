//! What agents and teams are configured with: one struct, and the setters both builders share.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::limits;
use crate::models::{Model, ToolSchema};
use crate::store::{MemoryDb, Store};
use crate::tools::Tool;

use super::toolbox::Toolbox;

/// How many tool-call rounds a run may take unless configured otherwise.
pub const DEFAULT_MAX_ROUNDS: usize = 10;

/// How many calls one model turn may make unless configured otherwise. Models call a few
/// tools at once; a turn of hundreds is a model gone wrong, and each gated call costs a
/// person's decision and a row.
pub const DEFAULT_MAX_CALLS_PER_TURN: usize = 32;

/// The configuration common to an agent and a team's leader.
#[derive(Default)]
pub(crate) struct Settings {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) instructions: Option<String>,
    pub(crate) model: Option<Arc<dyn Model>>,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) db: Option<Arc<dyn Store>>,
    pub(crate) max_rounds: Option<usize>,
    pub(crate) max_calls_per_turn: Option<usize>,
    pub(crate) history_runs: usize,
}

/// Settings checked and ready to build a runner from.
pub(crate) struct Checked {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) instructions: Option<String>,
    pub(crate) model: Arc<dyn Model>,
    pub(crate) tools: Toolbox,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) max_rounds: usize,
    pub(crate) max_calls_per_turn: usize,
    pub(crate) history_runs: usize,
}

impl Checked {
    /// The same settings with built-in tools (a leader's delegation) shown to the model; their
    /// names must not clash with the configured tools'.
    pub(crate) fn with_builtins(mut self, schemas: Vec<ToolSchema>) -> Result<Self> {
        self.tools = self.tools.with_builtins(schemas)?;
        Ok(self)
    }
}

impl Settings {
    /// Checks what every builder checks: a model ([`Error::NoModel`]), unique tool names
    /// ([`Error::DuplicateTool`]), and a db when a tool with an approval, required or audit
    /// (its own, or `gated_elsewhere`, a member's), would need one for its rows
    /// ([`Error::ApprovalNeedsDb`]): an implicit in-memory store would lose them.
    /// The id defaults to the name, else `fallback_id`; the store to a fresh in-memory one.
    pub(crate) fn check(self, fallback_id: &str, gated_elsewhere: Option<&str>) -> Result<Checked> {
        let model = self.model.ok_or(Error::NoModel)?;
        let tools = Toolbox::new(self.tools)?;
        if let (None, Some(tool)) = (&self.db, tools.first_with_approval().or(gated_elsewhere)) {
            return Err(Error::ApprovalNeedsDb { tool: tool.to_owned() });
        }
        let id = self.id.or_else(|| self.name.clone()).unwrap_or_else(|| fallback_id.to_owned());
        limits::check_name("id", &id)?;
        if let Some(name) = &self.name {
            limits::check_name("name", name)?;
        }
        Ok(Checked {
            id,
            name: self.name,
            instructions: self.instructions,
            model,
            tools,
            store: self.db.unwrap_or_else(|| Arc::new(MemoryDb::new())),
            max_rounds: self.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS),
            max_calls_per_turn: self.max_calls_per_turn.unwrap_or(DEFAULT_MAX_CALLS_PER_TURN),
            history_runs: self.history_runs,
        })
    }
}

/// The setters of [`Settings`], for a builder with a `settings` field; `$who` names what is
/// built ("agent", "team") in the docs.
macro_rules! settings_setters {
    ($who:literal) => {
        #[doc = concat!("The ", $who, "'s id (default: its name, else `\"", $who, "\"`), recorded on runs and")]
        /// approval rows. Keep it stable across processes.
        pub fn id(mut self, id: impl Into<String>) -> Self {
            self.settings.id = Some(id.into());
            self
        }

        #[doc = concat!("The ", $who, "'s name.")]
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.settings.name = Some(name.into());
            self
        }

        /// The system prompt.
        pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
            self.settings.instructions = Some(instructions.into());
            self
        }

        /// The model (required). Pass an `Arc` to share one model.
        pub fn model(mut self, model: impl $crate::models::Model) -> Self {
            self.settings.model = Some(::std::sync::Arc::new(model));
            self
        }

        #[doc = concat!("Adds a tool the ", $who, " calls.")]
        pub fn tool(mut self, tool: impl $crate::tools::Tool) -> Self {
            self.settings.tools.push(::std::sync::Arc::new(tool));
            self
        }

        /// Adds tools already behind `Arc`s.
        pub fn tools(mut self, tools: impl IntoIterator<Item = ::std::sync::Arc<dyn $crate::tools::Tool>>) -> Self {
            self.settings.tools.extend(tools);
            self
        }

        /// Where runs and approval rows are stored. Required for tools with `#[approval]`;
        /// without it runs are kept in memory.
        pub fn db(mut self, db: impl $crate::store::Store) -> Self {
            self.settings.db = Some(::std::sync::Arc::new(db));
            self
        }

        /// The most tool-call rounds a run may take (default [`DEFAULT_MAX_ROUNDS`](crate::agent::DEFAULT_MAX_ROUNDS)).
        pub fn max_rounds(mut self, max_rounds: usize) -> Self {
            self.settings.max_rounds = Some(max_rounds);
            self
        }

        /// The most tool calls one model turn may make (default
        /// [`DEFAULT_MAX_CALLS_PER_TURN`](crate::agent::DEFAULT_MAX_CALLS_PER_TURN)); the calls
        /// past it do not run and the model is told so.
        pub fn max_calls_per_turn(mut self, max_calls: usize) -> Self {
            self.settings.max_calls_per_turn = Some(max_calls);
            self
        }

        /// How many earlier runs of the session the model sees (default 0): the latest that
        /// completed, made by this agent or team for the same user.
        pub fn history_runs(mut self, runs: usize) -> Self {
            self.settings.history_runs = runs;
            self
        }
    };
}
pub(crate) use settings_setters;
