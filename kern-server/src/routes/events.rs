//! `GET /events`: Server-Sent Events fed from the trail and the runs. Each event of a row's
//! trail (created, vote, approved, rejected, edited, expired, cancelled, executed, failed) is
//! sent as `event: approval.<kind>` with its `seq` as the SSE id, so a client that reconnects
//! with `Last-Event-ID` resumes where it stopped without loss (an event that commits after a
//! later one is waited for, up to [`GAP_WAIT`](kern_core::follow::GAP_WAIT); see
//! [`TrailReader`]). The runs written from about the stream's start on (member runs included)
//! are sent as `event: run.<status>` each time their status is found changed, without an id:
//! two changes between two reads show as the latter, and a run's status is read again at will
//! (`GET /runs/{run_id}`), so a reconnecting client is not replayed the ones it missed. A stream sleeps in
//! [`Store::wait_for_events`](kern_core::store::Store::wait_for_events), which the store wakes
//! as the trail grows: at once for this process's writes, by `LISTEN/NOTIFY` on Postgres for
//! any process's, and within a tenth of a second on SQLite.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use kern_core::approval::PageCursor;
use kern_core::follow::{GAP_RECHECK, TrailReader};
use kern_core::keys::Scope;
use kern_core::run::{RunRecord, RunStatus};
use kern_core::trail::TrailEvent;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::wire::approval::TrailEventResponse;

/// The longest a stream sleeps without reading the trail and the runs: a bound on a wake-up
/// lost, and on the delay of a run's change made by another process on SQLite (its store reads
/// only the trail's growth; Postgres announces runs' changes too).
const WAKE_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// How often a stream asks again whether its caller is still signed in (see
/// [`Caller::still_signed_in`]): a revoked key, a closed session or an expired token ends the
/// stream within about this long.
const CREDENTIAL_RECHECK: Duration = Duration::from_secs(1);

/// How long a stream goes on while its caller cannot be checked (the database away).
const CREDENTIAL_PATIENCE: Duration = Duration::from_secs(60);

/// How long a stream waits after the store failed to answer.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How many events one read takes.
const BATCH: u32 = 256;

/// How many rows' visibility a stream remembers before it starts over.
const VISIBLE_MEMORY: usize = 10_000;

/// How many runs' last status a stream remembers before it starts over (a run whose status it
/// forgot may be sent twice).
const RUN_MEMORY: usize = 10_000;

/// How far back a stream reads runs again: a run's `updated_at` is taken before its write
/// commits, so a write may become visible after a later one.
const RUN_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// How many changed runs one read takes.
const RUN_BATCH: u32 = 256;

/// The query string of `GET /events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Start after this event (as `Last-Event-ID` does); 0 replays the whole trail. Without
    /// either, the stream starts with what commits next, an event whose `seq` was taken before
    /// the stream started included.
    pub after: Option<i64>,
}

/// The live event stream.
#[utoipa::path(get, path = "/events", tag = "events", params(EventParams, ("Last-Event-ID" = Option<i64>, Header)),
    responses((status = 200, content_type = "text/event-stream",
        description = "`event: approval.<kind>`, `id: <seq>`, `data:` the trail event as JSON; \
            `event: run.<status>`, `data:` the run's ids and status, spelled in lower case as in the \
            event's name (`paused`), where run bodies spell it in upper case (`PAUSED`)"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(params): QueryParams<EventParams>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Scope::ApprovalsRead)?;
    let resume = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::unprocessable("`Last-Event-ID` must be the id of an event"))
        })
        .transpose()?;
    let trail = match resume.or(params.after) {
        Some(after) if after < 0 => {
            return Err(ApiError::unprocessable("`after` and `Last-Event-ID` must be an event's `seq`: 0 or more"));
        }
        Some(after) => TrailReader::after(after),
        None => TrailReader::from_now(&*state.store).await?,
    };
    let runs = RunFollower { since: kern_core::now(), read_on: None, last: HashMap::new() };
    let checked = Instant::now();
    // The place the stream starts from, as an id with no event: a client that reconnects with
    // `Last-Event-ID` (an `EventSource` does) misses nothing of what came before its first event.
    let ready = VecDeque::from([Event::default().id(trail.position().to_string())]);
    let feed = Feed { state, caller, checked, trail, ready, visible: HashMap::new(), runs };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let stopping = feed.state.stopping.clone();
        let event = tokio::select! {
            event = feed.next() => event?,
            () = stopped(stopping) => return None,
        };
        Some((Ok::<_, Infallible>(event), feed))
    });
    // Over the `no-cache` the stream is answered with: the inbox reads it with its cookie.
    Ok(([(CACHE_CONTROL, "no-store")], Sse::new(stream).keep_alive(KeepAlive::default())))
}

/// Completes once the server is asked to stop ([`Server::serve_until`]); never for a router the
/// application mounts, which nobody here stops.
///
/// [`Server::serve_until`]: crate::Server::serve_until
async fn stopped(mut stopping: watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One client's place in the trail.
struct Feed {
    state: AppState,
    caller: Caller,
    /// When the caller was last found signed in.
    checked: Instant,
    /// Where it stands in the trail, and the gaps in its `seq`s it waits on.
    trail: TrailReader,
    /// Frames ready to send, in order.
    ready: VecDeque<Event>,
    /// Whether the caller sees each row met so far (under isolation).
    visible: HashMap<String, bool>,
    runs: RunFollower,
}

/// Where a stream stands in the runs' changes.
struct RunFollower {
    /// The latest `updated_at` read.
    since: DateTime<Utc>,
    /// Where the next read goes on from, while reads come back full: the last run read,
    /// through a burst of writes or through the window a read looks back over, rather than
    /// from its start again (which would never reach the end of a window of more writes than a
    /// read takes, nor the runs past the first read's of one write that stamped them alike).
    read_on: Option<PageCursor>,
    /// The status last sent of each run.
    last: HashMap<String, RunStatus>,
}

impl RunFollower {
    /// Where the next read starts: a little before the latest write read, for writes that
    /// commit late, unless a burst is being read through.
    fn start(&self) -> PageCursor {
        self.read_on.clone().unwrap_or_else(|| PageCursor { at: self.since - RUN_LOOKBACK, id: String::new() })
    }

    /// Takes the runs read since the last time, each once per status it reaches; the frames of
    /// those `visible` lets through go to `ready`.
    fn take(&mut self, runs: Vec<RunRecord>, visible: impl Fn(&RunRecord) -> bool, ready: &mut VecDeque<Event>) {
        let full = runs.len() >= RUN_BATCH as usize;
        self.read_on =
            runs.last().filter(|_| full).map(|last| PageCursor { at: last.updated_at, id: last.run_id.clone() });
        for run in runs {
            self.since = self.since.max(run.updated_at);
            if self.last.get(&run.run_id) == Some(&run.status) {
                continue;
            }
            if self.last.len() >= RUN_MEMORY {
                self.last.clear();
            }
            self.last.insert(run.run_id.clone(), run.status);
            if visible(&run) {
                ready.push_back(run_frame(&run));
            }
        }
    }
}

impl Feed {
    /// The next event the caller may see, waiting for one; `None` once the caller is no
    /// longer signed in, which ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if !self.still_signed_in().await {
                return None;
            }
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            match self.state.store.runs_changed_after(&self.runs.start(), RUN_BATCH).await {
                Ok(runs) => {
                    let caller = &self.caller;
                    self.runs.take(runs, |run| caller.sees_user(run.user_id.as_deref()), &mut self.ready);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the event stream could not read the runs");
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                }
            }
            match self.trail.read(self.state.store.as_ref(), BATCH).await {
                Ok(events) => {
                    for event in events {
                        if self.sees(&event).await {
                            self.ready.push_back(frame(&event));
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the event stream could not read the trail");
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                    continue;
                }
            }
            // Frames of runs or of events are sent before any wait: the news that woke this
            // read came before the wait would start. A full read of runs is read on at once.
            if !self.ready.is_empty() || self.runs.read_on.is_some() {
                continue;
            }
            if !self.trail.held_back().is_empty() {
                // The trail is past the cursor already: a wait would return at once.
                tokio::time::sleep(GAP_RECHECK).await;
            } else if let Err(err) = self.state.store.wait_for_events(self.trail.position(), WAKE_AT_LEAST_EVERY).await
            {
                tracing::warn!(error = %err, "the event stream could not follow the trail");
                tokio::time::sleep(RETRY_AFTER_FAILURE).await;
            }
        }
    }

    /// False once the caller is found signed out, asked at most every
    /// [`CREDENTIAL_RECHECK`]. A failed check is no answer: the stream goes on, to ask again,
    /// for [`CREDENTIAL_PATIENCE`] after the last check that answered; past it, the stream ends
    /// (a client reconnects, and is signed in afresh).
    async fn still_signed_in(&mut self) -> bool {
        if self.checked.elapsed() < CREDENTIAL_RECHECK {
            return true;
        }
        match self.caller.still_signed_in(&self.state).await {
            Ok(true) => {
                self.checked = Instant::now();
                true
            }
            Ok(false) => false,
            Err(err) if self.checked.elapsed() < CREDENTIAL_PATIENCE => {
                tracing::warn!(error = %err.detail, "the event stream could not check its caller");
                true
            }
            Err(err) => {
                tracing::warn!(error = %err.detail, "the event stream could not check its caller for a minute: ending it");
                false
            }
        }
    }

    async fn sees(&mut self, event: &TrailEvent) -> bool {
        if self.caller.own_user().is_none() {
            return true;
        }
        if let Some(seen) = self.visible.get(&event.approval_id) {
            return *seen;
        }
        // The event is read past already: a failed read is tried again, not taken for a no.
        let row = loop {
            match self.state.store.get_approval(&event.approval_id).await {
                Ok(row) => break row,
                Err(err) => {
                    tracing::warn!(error = %err, "the event stream could not read a row it is to filter");
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                }
            }
        };
        let seen = row.is_some_and(|row| self.caller.sees(&row));
        if self.visible.len() >= VISIBLE_MEMORY {
            self.visible.clear();
        }
        self.visible.insert(event.approval_id.clone(), seen);
        seen
    }
}

/// A run's change of status: `event: run.<status>`, no id.
fn run_frame(run: &RunRecord) -> Event {
    let data = json!({
        "run_id": run.run_id,
        "session_id": run.session_id,
        "parent_run_id": run.parent_run_id,
        "agent_id": run.agent_id,
        "team_id": run.team_id,
        "user_id": run.user_id,
        "status": run.status,
        "updated_at": run.updated_at.timestamp(),
    });
    Event::default().event(format!("run.{}", run.status)).data(data.to_string())
}

fn frame(event: &TrailEvent) -> Event {
    let data = serde_json::to_string(&TrailEventResponse::from(event)).unwrap_or_default();
    Event::default().id(event.seq.to_string()).event(format!("approval.{}", event.kind)).data(data)
}
