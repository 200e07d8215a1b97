//! A run as it happens: the [`RunEvent`]s of [`Agent::run_stream`](crate::agent::Agent::run_stream)
//! and its kin, and the sink the engine sends them to.
//!
//! Events are observation, not state: the loop's steps still return what to persist, and the
//! engine reports along the way to the sink of the task it runs on (a task-local value), so
//! that the blocking calls and the streaming ones run the very same code. Without a listener a
//! report costs one task-local lookup and nothing is built.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::approval::Approval;
use crate::error::{Error, Result};
use crate::run::{RunOutput, RunStatus, ToolCallStatus};

/// Something that happened in a run, in the order it happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent {
    /// A new run began.
    RunStarted {
        /// The run.
        run_id: String,
        /// Its session.
        session_id: String,
    },
    /// A paused run was claimed and resumes.
    RunContinued {
        /// The run.
        run_id: String,
        /// Its session.
        session_id: String,
    },
    /// A piece of the model's answer.
    ContentDelta {
        /// The run answering (a team's member run for a member's answer).
        run_id: String,
        /// The text, to append to what came before.
        text: String,
    },
    /// A piece of the reasoning the model shows before it answers, where the provider sends it.
    ReasoningDelta {
        /// The run answering.
        run_id: String,
        /// The text, to append to what came before.
        text: String,
    },
    /// A tool call starts running.
    ToolCallStarted {
        /// The run making the call.
        run_id: String,
        /// The call.
        tool_call_id: String,
        /// The tool's wire name.
        tool_name: String,
        /// The arguments it runs with (an approver's edit included).
        args: Value,
    },
    /// A tool call finished; its result (or error text) goes back to the model.
    ToolCallCompleted {
        /// The run that made the call.
        run_id: String,
        /// The call.
        tool_call_id: String,
        /// The tool's wire name.
        tool_name: String,
        /// `Succeeded` or `Failed`.
        status: ToolCallStatus,
        /// The result, or the error text.
        result: Value,
    },
    /// A gated call waits for an admin: its pending row is stored.
    ApprovalRequested(Box<Approval>),
    /// A team member began working on a delegated task, in a child run.
    MemberRunStarted {
        /// The team run.
        run_id: String,
        /// The member's run.
        member_run_id: String,
        /// The member agent.
        agent_id: String,
    },
    /// A paused member's child run resumes, as its team run is continued.
    MemberRunContinued {
        /// The team run.
        run_id: String,
        /// The member's run.
        member_run_id: String,
        /// The member agent.
        agent_id: String,
    },
    /// A member's child run stopped: completed, paused or failed.
    MemberRunFinished {
        /// The team run.
        run_id: String,
        /// The member's run.
        member_run_id: String,
        /// The member agent.
        agent_id: String,
        /// Where the member's run stands.
        status: RunStatus,
    },
    /// The run waits for people: the output lists what for (`requirements`). Last event.
    RunPaused(Box<RunOutput>),
    /// The run has its final answer. Last event.
    RunCompleted(Box<RunOutput>),
    /// The run was called off (a row expired under a policy that cancels it). Last event.
    RunCancelled(Box<RunOutput>),
    /// The run, or the call to start or continue it, failed. Last event.
    RunError {
        /// The run: the one continued, or the one started once it was reported started.
        run_id: Option<String>,
        /// Why.
        error: Error,
    },
}

impl RunEvent {
    /// The event that ends a stream whose run ended with `outcome`.
    fn last(run_id: Option<String>, outcome: Result<RunOutput>) -> Self {
        match outcome {
            Ok(output) => match output.status {
                RunStatus::Paused => RunEvent::RunPaused(Box::new(output)),
                RunStatus::Cancelled => RunEvent::RunCancelled(Box::new(output)),
                _ => RunEvent::RunCompleted(Box::new(output)),
            },
            Err(error) => RunEvent::RunError { run_id, error },
        }
    }

    /// True for the event that ends a stream.
    pub fn is_last(&self) -> bool {
        matches!(
            self,
            RunEvent::RunPaused(_) | RunEvent::RunCompleted(_) | RunEvent::RunCancelled(_) | RunEvent::RunError { .. }
        )
    }
}

/// The events of one run, ending with its outcome ([`RunEvent::is_last`]). Dropping it stops
/// the listening, not the run: the run goes on to the end and is stored as ever.
#[derive(Debug)]
pub struct RunStream {
    events: mpsc::UnboundedReceiver<RunEvent>,
}

impl RunStream {
    /// Reads the stream to its end and returns the run's outcome, as the blocking call would
    /// have.
    pub async fn output(mut self) -> Result<RunOutput> {
        while let Some(event) = self.events.recv().await {
            match event {
                RunEvent::RunPaused(output) | RunEvent::RunCompleted(output) | RunEvent::RunCancelled(output) => {
                    return Ok(*output);
                }
                RunEvent::RunError { error, .. } => return Err(error),
                _ => {}
            }
        }
        Err(Error::Aborted("the run's task ended without an outcome".into()))
    }
}

impl Stream for RunStream {
    type Item = RunEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RunEvent>> {
        self.events.poll_recv(cx)
    }
}

/// Where the engine's reports go, on the task of a streamed run.
#[derive(Debug)]
struct Sink {
    events: mpsc::UnboundedSender<RunEvent>,
    /// The run reported started, to name in the last event should the run fail.
    run_id: std::sync::Mutex<Option<String>>,
}

tokio::task_local! {
    static SINK: Arc<Sink>;
}

/// Runs `work` (a start, continue or recovery) on a task of its own that reports to a new
/// stream, which ends with the event of `work`'s outcome. `run_id` names the run in that event
/// when `work` fails before the run exists.
pub(crate) fn stream<F>(run_id: Option<String>, work: F) -> RunStream
where
    F: Future<Output = Result<RunOutput>> + Send + 'static,
{
    let (sender, events) = mpsc::unbounded_channel();
    let sink = Arc::new(Sink { events: sender, run_id: std::sync::Mutex::new(run_id) });
    let last = sink.clone();
    tokio::spawn(SINK.scope(sink, async move {
        let outcome = work.await;
        let started = last.run_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let run_id = outcome.as_ref().ok().map(|output| output.run_id.clone()).or(started);
        // A listener that left is no reason to stop: the run is stored either way.
        let _ = last.events.send(RunEvent::last(run_id, outcome));
    }));
    RunStream { events }
}

/// Reports the event `make` builds, if the current task is listened to.
pub(crate) fn emit(make: impl FnOnce() -> RunEvent) {
    let _ = SINK.try_with(|sink| {
        let event = make();
        if let RunEvent::RunStarted { run_id, .. } = &event {
            *sink.run_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(run_id.clone());
        }
        sink.events.send(event)
    });
}

/// True when the current task's run is listened to: then the model is asked to stream.
pub(crate) fn listening() -> bool {
    SINK.try_with(|sink| !sink.events.is_closed()).unwrap_or(false)
}

/// `work`, reporting to the current task's sink when it runs on another task.
pub(crate) fn carried<F: Future + Send + 'static>(work: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
where
    F::Output: Send,
{
    match SINK.try_with(Clone::clone) {
        Ok(sink) => Box::pin(SINK.scope(sink, work)),
        Err(_) => Box::pin(work),
    }
}

/// The streaming calls of a handle (`Agent`, `Team`) over its blocking ones, written once for
/// both; `$what` names the handle in the docs.
macro_rules! stream_methods {
    ($what:literal) => {
        #[doc = concat!("Runs the ", $what, " on `input` in a new session, reporting as it goes: a stream")]
        /// of [`RunEvent`](crate::events::RunEvent)s that ends with the run's outcome. The run is
        /// the one [`run`](Self::run) makes (the same code, stored the same way); only the model is
        /// asked to stream its answer. The run goes on, and is stored, if the stream is dropped.
        /// Call it within a tokio runtime: the run works on a task of its own.
        pub fn run_stream(&self, input: impl Into<String>) -> $crate::events::RunStream {
            self.run_stream_with(input, $crate::run::RunOptions::default())
        }

        /// [`run_stream`](Self::run_stream) for a user and/or in an existing session.
        pub fn run_stream_with(
            &self,
            input: impl Into<String>,
            options: $crate::run::RunOptions,
        ) -> $crate::events::RunStream {
            let (this, input) = (self.clone(), input.into());
            $crate::events::stream(None, async move { this.run_with(input, options).await })
        }

        /// Continues a paused run as [`continue_run`](Self::continue_run) does, reporting as it
        /// goes (see [`run_stream`](Self::run_stream)).
        pub fn continue_stream(
            &self,
            run_id: &str,
            requirements: Vec<$crate::run::RunRequirement>,
        ) -> $crate::events::RunStream {
            let (this, id) = (self.clone(), run_id.to_owned());
            $crate::events::stream(Some(id.clone()), async move { this.continue_run(&id, requirements).await })
        }
    };
}
pub(crate) use stream_methods;
