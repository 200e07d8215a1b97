//! A run as it happens: the [`RunEvent`]s of [`Agent::run_stream`](crate::agent::Agent::run_stream)
//! and its kin, and the sink the engine sends them to.
//!
//! Events are observation, not state: the loop's steps still return what to persist, and the
//! engine reports along the way to the sink of the task it runs on (a task-local value), so
//! that the blocking calls and the streaming ones run the very same code. Without a listener a
//! report costs one task-local lookup and nothing is built.
//!
//! A run never waits for its listener: what the listener has not read yet is held for it, and
//! once [`MAX_HELD_EVENTS`] are held a new piece of text is added to the last held piece of the
//! same kind and run, found past other runs' pieces of text (a team's members may answer at
//! once) but never past another event. A listener that falls behind a model streaming its
//! answer then gets the same text in fewer, larger pieces (each run's in order; the pieces of
//! runs answering at once may come less interleaved than they were written), and what is held
//! grows with the text and the runs' steps, not with how finely the provider cut the text.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_util::{Stream, StreamExt as _};
use serde_json::Value;

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
    /// A tool call finished, or was settled without running (after no [`ToolCallStarted`]):
    /// rejected or expired, answered with a result given from outside, or refused before it
    /// ran. Its result (or error text) goes back to the model.
    ///
    /// [`ToolCallStarted`]: RunEvent::ToolCallStarted
    ToolCallCompleted {
        /// The run that made the call.
        run_id: String,
        /// The call.
        tool_call_id: String,
        /// The tool's wire name.
        tool_name: String,
        /// `Succeeded` or `Failed` for a call that ran or was refused before it ran;
        /// `Rejected` or `External` for one a decision settled.
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

    /// Adds `next` to this event when both are pieces of text of the same kind and run, or
    /// gives it back.
    fn absorb(&mut self, next: RunEvent) -> Option<RunEvent> {
        match (self, next) {
            (
                RunEvent::ContentDelta { run_id, text },
                RunEvent::ContentDelta { run_id: next_run_id, text: next_text },
            )
            | (
                RunEvent::ReasoningDelta { run_id, text },
                RunEvent::ReasoningDelta { run_id: next_run_id, text: next_text },
            ) if *run_id == next_run_id => {
                text.push_str(&next_text);
                None
            }
            (_, next) => Some(next),
        }
    }

    /// The run of a piece of text (of an answer or of reasoning); `None` for any other event.
    fn text_run(&self) -> Option<&str> {
        match self {
            RunEvent::ContentDelta { run_id, .. } | RunEvent::ReasoningDelta { run_id, .. } => Some(run_id),
            _ => None,
        }
    }
}

/// Adds `next` to the last held piece of text of its kind and run, looking back past pieces of
/// text of other runs only (a team's members may answer at once), never past another event, so
/// that each run's events keep their order; or gives it back.
fn absorb_into(held: &mut VecDeque<RunEvent>, mut next: RunEvent) -> Option<RunEvent> {
    for event in held.iter_mut().rev() {
        let passable = event.text_run().is_some_and(|run| Some(run) != next.text_run());
        match event.absorb(next) {
            None => return None,
            Some(given_back) => next = given_back,
        }
        if !passable {
            break;
        }
    }
    Some(next)
}

/// How many events a stream holds for its listener before each new piece of text is added to
/// the last held piece of its kind and run (see the module's docs).
pub const MAX_HELD_EVENTS: usize = 256;

/// What a run reported and its listener has not read yet, shared by the two.
#[derive(Debug, Default)]
struct Held {
    events: VecDeque<RunEvent>,
    /// No more events can come: every reporter of the run has ended.
    ended: bool,
    /// The listener dropped its stream.
    gone: bool,
    /// Wakes the listener waiting for the next event.
    waker: Option<Waker>,
}

/// [`Held`] behind its lock.
#[derive(Debug, Default)]
struct Queue(Mutex<Held>);

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Holds `event` for the listener, unless it is gone.
    fn push(&self, event: RunEvent) {
        let mut held = self.lock();
        if held.gone {
            return;
        }
        let event =
            if held.events.len() >= MAX_HELD_EVENTS { absorb_into(&mut held.events, event) } else { Some(event) };
        held.events.extend(event);
        wake(held);
    }

    /// No more events will come.
    fn end(&self) {
        let mut held = self.lock();
        held.ended = true;
        wake(held);
    }
}

/// Wakes the listener, if it waits, once `held` is unlocked.
fn wake(mut held: MutexGuard<'_, Held>) {
    if let Some(waker) = held.waker.take() {
        drop(held);
        waker.wake();
    }
}

/// The events of one run, ending with its outcome ([`RunEvent::is_last`]). Dropping it stops
/// the listening, not the run: the run goes on to the end and is stored as ever.
#[derive(Debug)]
pub struct RunStream {
    queue: Arc<Queue>,
}

impl RunStream {
    /// Reads the stream to its end and returns the run's outcome, as the blocking call would
    /// have.
    pub async fn output(mut self) -> Result<RunOutput> {
        while let Some(event) = self.next().await {
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

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RunEvent>> {
        let mut held = self.queue.lock();
        if let Some(event) = held.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if held.ended {
            return Poll::Ready(None);
        }
        held.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for RunStream {
    /// What was held goes, and nothing more is.
    fn drop(&mut self) {
        let mut held = self.queue.lock();
        held.gone = true;
        held.events.clear();
    }
}

/// Where the engine's reports go, on the task of a streamed run. The stream ends when the last
/// reporter is dropped: once the run's outcome is reported, or should its task end without one.
#[derive(Debug)]
struct Sink {
    queue: Arc<Queue>,
    /// The run reported started, to name in the last event should the run fail.
    run_id: Mutex<Option<String>>,
    /// Whether the stream's own run has been carried to its task (see [`carried`]).
    carried: AtomicBool,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.queue.end();
    }
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
    let queue = Arc::new(Queue::default());
    let sink = Arc::new(Sink { queue: queue.clone(), run_id: Mutex::new(run_id), carried: AtomicBool::new(false) });
    let last = sink.clone();
    tokio::spawn(SINK.scope(sink, async move {
        let outcome = work.await;
        let started = last.run_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let run_id = outcome.as_ref().ok().map(|output| output.run_id.clone()).or(started);
        // A listener that left is no reason to stop: the run is stored either way.
        last.queue.push(RunEvent::last(run_id, outcome));
    }));
    RunStream { queue }
}

/// Reports the event `make` builds, if the current task is listened to.
pub(crate) fn emit(make: impl FnOnce() -> RunEvent) {
    let _ = SINK.try_with(|sink| {
        let event = make();
        if let RunEvent::RunStarted { run_id, .. } = &event {
            *sink.run_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(run_id.clone());
        }
        sink.queue.push(event);
    });
}

/// True when the current task's run is listened to: then the model is asked to stream.
pub(crate) fn listening() -> bool {
    SINK.try_with(|sink| !sink.queue.lock().gone).unwrap_or(false)
}

/// `work`, reporting to the current task's sink when it runs on another task: the stream's own
/// run, the first work carried from it. A run started inside that one (a tool that runs another
/// agent) is not the stream's: it reports nowhere, and its model is not asked to stream.
pub(crate) fn carried<F: Future + Send + 'static>(work: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
where
    F::Output: Send,
{
    match SINK.try_with(Clone::clone) {
        Ok(sink) if !sink.carried.swap(true, Ordering::Relaxed) => Box::pin(SINK.scope(sink, work)),
        _ => Box::pin(work),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn content(run_id: &str, text: &str) -> RunEvent {
        RunEvent::ContentDelta { run_id: run_id.into(), text: text.into() }
    }

    #[test]
    fn only_pieces_of_text_of_the_same_kind_and_run_join() {
        let mut held = content("run-1", "Hello");
        assert!(held.absorb(content("run-1", ", world")).is_none());
        assert!(matches!(&held, RunEvent::ContentDelta { text, .. } if text == "Hello, world"));
        assert!(held.absorb(content("member-run", "!")).is_some(), "another run's text");
        let reasoning = RunEvent::ReasoningDelta { run_id: "run-1".into(), text: "hmm".into() };
        assert!(held.absorb(reasoning).is_some(), "reasoning is not the answer");
        let mut started = RunEvent::RunStarted { run_id: "run-1".into(), session_id: "s".into() };
        assert!(started.absorb(content("run-1", "!")).is_some(), "only text joins text");
    }

    #[tokio::test]
    async fn a_stream_holds_no_more_events_than_its_bound_for_a_listener_behind() {
        let queue = Arc::new(Queue::default());
        let stream = RunStream { queue: queue.clone() };
        queue.push(RunEvent::RunStarted { run_id: "run-1".into(), session_id: "s".into() });
        for n in 0..10 * MAX_HELD_EVENTS {
            queue.push(content("run-1", &format!("{n} ")));
        }
        assert_eq!(queue.lock().events.len(), MAX_HELD_EVENTS);
        queue.end();
        let events: Vec<RunEvent> = stream.collect().await;
        let expected: String = (0..10 * MAX_HELD_EVENTS).map(|n| format!("{n} ")).collect();
        assert_eq!(answer_of(&events, "run-1"), expected);
    }

    /// The text of run `run_id`'s answer in `events`, joined.
    fn answer_of(events: &[RunEvent], run_id: &str) -> String {
        events
            .iter()
            .filter_map(|event| match event {
                RunEvent::ContentDelta { run_id: of, text } if of == run_id => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn members_answering_at_once_are_held_within_the_bound_each_in_order() {
        let queue = Arc::new(Queue::default());
        let stream = RunStream { queue: queue.clone() };
        let words = 10 * MAX_HELD_EVENTS;
        for n in 0..words {
            queue.push(content("member-a", &format!("a{n} ")));
            queue.push(content("member-b", &format!("b{n} ")));
            if n == words / 2 {
                let tool = RunEvent::ToolCallStarted {
                    run_id: "member-a".into(),
                    tool_call_id: "call-1".into(),
                    tool_name: "lookup".into(),
                    args: Value::Null,
                };
                queue.push(tool);
            }
        }
        // Past the bound, only the tool call and the piece of each member after it were added.
        assert!(queue.lock().events.len() <= MAX_HELD_EVENTS + 3, "{}", queue.lock().events.len());
        queue.end();
        let events: Vec<RunEvent> = stream.collect().await;
        for member in ["a", "b"] {
            let expected: String = (0..words).map(|n| format!("{member}{n} ")).collect();
            assert_eq!(answer_of(&events, &format!("member-{member}")), expected, "member {member}");
        }
        let tool_at = events.iter().position(|event| matches!(event, RunEvent::ToolCallStarted { .. })).unwrap();
        let before: String = answer_of(&events[..tool_at], "member-a");
        assert_eq!(before, (0..=words / 2).map(|n| format!("a{n} ")).collect::<String>(), "a's text keeps its place");
    }
}
