//! A run's events in the reference's SSE framing: `event: <Name>` and one line of JSON that
//! repeats the name as `event`, with the run's common keys (`created_at`, `agent_id` or
//! `team_id`, `run_id`, `session_id`, `nested_depth`). A team's own events take the `Team`
//! prefix; its members' come unprefixed, with their own run ids and `parent_run_id`. A continue's
//! frames carry `event_index`.

use std::collections::HashMap;

use axum::response::sse::Event;
use kern_core::events::RunEvent;
use kern_core::run::{RunStatus, ToolCallStatus};
use serde_json::{Map, Value, json};

use super::run::Runner;

/// Frames the events of one streamed run.
#[derive(Debug)]
pub struct Framer {
    /// `Team` for a team's own events.
    prefix: &'static str,
    /// `agent_id` and `agent_name`, or `team_id`.
    owner: Map<String, Value>,
    /// The run streamed, once known.
    run_id: Option<String>,
    session_id: Option<String>,
    /// The agent of each member run met so far.
    members: HashMap<String, String>,
    /// The index of the next frame of a continue; `None` for a new run's stream.
    index: Option<u64>,
}

impl Framer {
    /// A framer for a run of `runner`; `continued` for a continue's stream.
    pub fn new(runner: Runner<'_>, continued: bool) -> Self {
        let (prefix, owner) = match runner {
            Runner::Agent(id, name) => ("", object(json!({"agent_id": id, "agent_name": name}))),
            Runner::Team(id) => ("Team", object(json!({"team_id": id}))),
            Runner::Unnamed => ("", Map::new()),
        };
        let index = continued.then_some(0);
        Framer { prefix, owner, run_id: None, session_id: None, members: HashMap::new(), index }
    }

    /// The frame of `event`, except the last (see [`last`](Self::last)); `None` for events
    /// the reference has no frame for.
    pub fn frame(&mut self, event: &RunEvent) -> Option<Event> {
        let (name, member, mut data) = match event {
            RunEvent::RunStarted { run_id, session_id } | RunEvent::RunContinued { run_id, session_id } => {
                self.run_id = Some(run_id.clone());
                self.session_id = Some(session_id.clone());
                let name = if matches!(event, RunEvent::RunStarted { .. }) { "RunStarted" } else { "RunContinued" };
                (name, None, Map::new())
            }
            RunEvent::ContentDelta { run_id, text } => {
                ("RunContent", self.member(run_id), object(json!({"content": text, "content_type": "str"})))
            }
            RunEvent::ReasoningDelta { run_id, text } => {
                ("RunContent", self.member(run_id), object(json!({"reasoning_content": text, "content_type": "str"})))
            }
            RunEvent::ToolCallStarted { run_id, tool_call_id, tool_name, args } => {
                let tool = json!({"tool_call_id": tool_call_id, "tool_name": tool_name, "tool_args": args});
                ("ToolCallStarted", self.member(run_id), object(json!({"tool": tool})))
            }
            RunEvent::ToolCallCompleted { run_id, tool_call_id, tool_name, status, result } => {
                // As the reference marks a call that failed or was rejected (`tool_call_error`),
                // with kern's own word for how it ended.
                let error = matches!(status, ToolCallStatus::Failed | ToolCallStatus::Rejected);
                let tool = json!({"tool_call_id": tool_call_id, "tool_name": tool_name, "result": result,
                    "tool_call_error": error, "status": status.as_str()});
                ("ToolCallCompleted", self.member(run_id), object(json!({"tool": tool, "content": result})))
            }
            RunEvent::MemberRunStarted { member_run_id, agent_id, .. }
            | RunEvent::MemberRunContinued { member_run_id, agent_id, .. } => {
                self.members.insert(member_run_id.clone(), agent_id.clone());
                let name =
                    if matches!(event, RunEvent::MemberRunStarted { .. }) { "RunStarted" } else { "RunContinued" };
                (name, Some((member_run_id.clone(), agent_id.clone())), Map::new())
            }
            RunEvent::MemberRunFinished { member_run_id, agent_id, status, .. } => {
                let name = match status {
                    RunStatus::Paused => "RunPaused",
                    RunStatus::Completed => "RunCompleted",
                    RunStatus::Cancelled => "RunCancelled",
                    RunStatus::Error | RunStatus::Running => "RunError",
                };
                (name, Some((member_run_id.clone(), agent_id.clone())), Map::new())
            }
            _ => return None,
        };
        let name = match member {
            Some((run_id, agent_id)) => {
                data.insert("run_id".into(), json!(run_id));
                data.insert("agent_id".into(), json!(agent_id));
                data.insert("parent_run_id".into(), json!(self.run_id));
                name.to_owned()
            }
            None => self.own(name, &mut data),
        };
        Some(self.finish(&name, data))
    }

    /// The frame of the last event: `name` (`RunPaused`, `RunCompleted`, ...) with the run's
    /// output `body`, or of an error.
    pub fn last(&mut self, name: &str, body: &Value) -> Event {
        let mut data = body.as_object().cloned().unwrap_or_default();
        // The reference's completed run reports its token counts; no other frame does.
        if name != "RunCompleted" {
            data.remove("metrics");
        }
        let name = self.own(name, &mut data);
        self.finish(&name, data)
    }

    /// The frame of a run that failed with `message`.
    pub fn error(&mut self, error_type: &str, message: &str) -> Event {
        let mut data = object(json!({"content": message, "error_type": error_type}));
        let name = self.own("RunError", &mut data);
        self.finish(&name, data)
    }

    /// The member run and agent of `run_id`, unless it is the run streamed.
    fn member(&self, run_id: &str) -> Option<(String, String)> {
        (self.run_id.as_deref() != Some(run_id))
            .then(|| (run_id.to_owned(), self.members.get(run_id).cloned().unwrap_or_default()))
    }

    /// Names an event of the run streamed and gives it the run's keys.
    fn own(&self, name: &str, data: &mut Map<String, Value>) -> String {
        data.entry("run_id").or_insert_with(|| json!(self.run_id));
        data.entry("session_id").or_insert_with(|| json!(self.session_id));
        data.extend(self.owner.clone());
        format!("{}{name}", self.prefix)
    }

    fn finish(&mut self, name: &str, mut data: Map<String, Value>) -> Event {
        data.insert("event".into(), json!(name));
        data.insert("created_at".into(), json!(kern_core::now().timestamp()));
        data.insert("nested_depth".into(), json!(0));
        if let Some(index) = &mut self.index {
            data.insert("event_index".into(), json!(*index));
            *index += 1;
        }
        data.retain(|_, value| !value.is_null());
        Event::default().event(name).data(Value::Object(data).to_string())
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
