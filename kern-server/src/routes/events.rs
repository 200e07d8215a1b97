//! `GET /events`: Server-Sent Events fed from the trail. Each event of a row's trail
//! (created, vote, approved, rejected, edited, expired, cancelled, executed, failed) is sent as
//! `event: approval.<kind>` with its `seq` as the SSE id, so a client that reconnects with
//! `Last-Event-ID` resumes where it stopped without loss. A stream sleeps in
//! [`Store::wait_for_events`](kern_core::store::Store::wait_for_events), which the store wakes
//! as the trail grows: at once for this process's writes, by `LISTEN/NOTIFY` on Postgres for
//! any process's, and within a tenth of a second on SQLite.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use kern_core::keys::Scope;
use kern_core::trail::TrailEvent;
use serde::Deserialize;
use tokio::time::Instant;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::wire::approval::TrailEventResponse;

/// The longest a stream sleeps without reading the trail: a bound on a wake-up lost, not the
/// usual delay.
const WAKE_AT_LEAST_EVERY: Duration = Duration::from_secs(15);

/// How often a stream waiting on a gap in the `seq`s reads again.
const GAP_RECHECK: Duration = Duration::from_millis(50);

/// How long a stream waits after the store failed to answer.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How many events one read takes.
const BATCH: u32 = 256;

/// How long a missing `seq` is waited for before it counts as never coming: on Postgres a
/// `seq` is taken before its transaction commits (so a later one may be seen first) and a
/// rolled-back transaction leaves its `seq` unused.
const GAP_WAIT: Duration = Duration::from_secs(2);

/// How many rows' visibility a stream remembers before it starts over.
const VISIBLE_MEMORY: usize = 10_000;

/// The query string of `GET /events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Start after this event (as `Last-Event-ID` does); 0 replays the whole trail. Without
    /// either, the stream starts with what happens next.
    pub after: Option<i64>,
}

/// The live event stream.
#[utoipa::path(get, path = "/events", tag = "events", params(EventParams, ("Last-Event-ID" = Option<i64>, Header)),
    responses((status = 200, content_type = "text/event-stream",
        description = "`event: approval.<kind>`, `id: <seq>`, `data:` the trail event as JSON"),
        (status = 401, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(params): QueryParams<EventParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
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
    let cursor = match resume.or(params.after) {
        Some(after) => after.max(0),
        None => state.store.last_event_seq().await?,
    };
    let feed = Feed { state, caller, cursor, ready: VecDeque::new(), gap: None, visible: HashMap::new() };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One client's place in the trail.
struct Feed {
    state: AppState,
    caller: Caller,
    /// The `seq` of the last event taken.
    cursor: i64,
    ready: VecDeque<TrailEvent>,
    /// When the `seq` after the cursor was first found missing.
    gap: Option<Instant>,
    /// Whether the caller sees each row met so far (under isolation).
    visible: HashMap<String, bool>,
}

impl Feed {
    /// The next event the caller may see, waiting for one.
    async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return frame(&event);
            }
            match self.state.store.events_after(self.cursor, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    self.take(events).await;
                    if !self.ready.is_empty() {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "the event stream could not read the trail");
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                    continue;
                }
            }
            if self.gap.is_some() {
                // The trail is past the cursor already: a wait would return at once.
                tokio::time::sleep(GAP_RECHECK).await;
            } else if let Err(err) = self.state.store.wait_for_events(self.cursor, WAKE_AT_LEAST_EVERY).await {
                tracing::warn!(error = %err, "the event stream could not follow the trail");
                tokio::time::sleep(RETRY_AFTER_FAILURE).await;
            }
        }
    }

    /// Takes `events` (in `seq` order) up to the first gap that may still fill.
    async fn take(&mut self, events: Vec<TrailEvent>) {
        for event in events {
            if event.seq != self.cursor + 1 {
                let since = *self.gap.get_or_insert_with(Instant::now);
                if since.elapsed() < GAP_WAIT {
                    return;
                }
            }
            self.gap = None;
            self.cursor = event.seq;
            if self.sees(&event).await {
                self.ready.push_back(event);
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
        let seen =
            matches!(self.state.store.get_approval(&event.approval_id).await, Ok(Some(row)) if self.caller.sees(&row));
        if self.visible.len() >= VISIBLE_MEMORY {
            self.visible.clear();
        }
        self.visible.insert(event.approval_id.clone(), seen);
        seen
    }
}

fn frame(event: &TrailEvent) -> Event {
    let data = serde_json::to_string(&TrailEventResponse::from(event)).unwrap_or_default();
    Event::default().id(event.seq.to_string()).event(format!("approval.{}", event.kind)).data(data)
}
