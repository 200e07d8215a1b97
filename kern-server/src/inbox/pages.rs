//! The inbox's pages: the pending rows with their filters and keyset pages, one row with
//! everything needed to decide it, the history of decided rows (and its export), and a run.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use kern_core::approval::{Approval, ApprovalQuery, ApprovalStatus, ListOrder, PageCursor, PauseType, Vote, VoteKind};
use kern_core::follow::TrailReader;
use kern_core::keys::Scope;
use kern_core::models::Message;
use kern_core::run::{RunRecord, RunStatus};
use kern_core::trail::{BrokenLink, TrailEvent, verify_row};
use serde::Deserialize;
use serde_json::Value;

use super::forms::{PagePath, PageQuery, edit_fields, input_fields, plain, type_of};
use super::page::{PageError, PageResult, render};
use super::runner::Runner;
use super::viewer::Viewer;
use super::views::{
    ArgView, Choice, Deadline, DetailPage, DiffView, Filters, HistoryPage, HistoryRow, InboxPage, KeptText, PolicyView,
    ResolutionView, RowView, RowsFragment, RunPage, RunRowView, TrailView, TurnView, VoteView,
};
use crate::auth::Caller;
use crate::routes::approvals::visible_row;
use crate::state::AppState;
use crate::wire::approval::{ApprovalResponse, etag};

/// Rows on a page.
const PAGE_SIZE: u32 = 50;

/// Rows an export reads, encodes and sends at a time.
const EXPORT_PAGE: u32 = 1000;

/// How many of the last turns of a conversation a page shows.
const TURNS: usize = 6;

const PAUSES: &[Choice] = &[
    Choice { value: "", label: "any pause" },
    Choice { value: "confirmation", label: "confirmation" },
    Choice { value: "user_input", label: "user input" },
    Choice { value: "external_execution", label: "external execution" },
];

const AGES: &[Choice] = &[
    Choice { value: "", label: "any age" },
    Choice { value: "5m", label: "older than 5 min" },
    Choice { value: "1h", label: "older than 1 hour" },
    Choice { value: "1d", label: "older than 1 day" },
];

const EXPIRINGS: &[Choice] = &[
    Choice { value: "", label: "any expiry" },
    Choice { value: "15m", label: "expiring within 15 min" },
    Choice { value: "1h", label: "expiring within 1 hour" },
    Choice { value: "1d", label: "expiring within 1 day" },
];

const ORDERS: &[Choice] = &[
    Choice { value: "", label: "newest first" },
    Choice { value: "expiring_soonest", label: "expiring soonest first" },
];

const OUTCOMES: &[Choice] = &[
    Choice { value: "approved", label: "approved" },
    Choice { value: "rejected", label: "rejected" },
    Choice { value: "cancelled", label: "cancelled" },
    Choice { value: "expired", label: "expired" },
];

/// The query string of the inbox.
#[derive(Debug, Default, Deserialize)]
pub struct InboxParams {
    #[serde(default)]
    tool: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    pause: String,
    #[serde(default)]
    age: String,
    #[serde(default)]
    expiring: String,
    #[serde(default)]
    order: String,
    cursor: Option<String>,
}

impl InboxParams {
    fn filters(&self) -> Filters {
        Filters {
            tool: self.tool.clone(),
            agent: self.agent.clone(),
            team: self.team.clone(),
            user: self.user.clone(),
            pause: self.pause.clone(),
            age: self.age.clone(),
            expiring: self.expiring.clone(),
            order: self.order.clone(),
        }
    }

    /// The filters as a query string, without the cursor.
    fn query(&self) -> String {
        let pairs = [
            ("tool", &self.tool),
            ("agent", &self.agent),
            ("team", &self.team),
            ("user", &self.user),
            ("pause", &self.pause),
            ("age", &self.age),
            ("expiring", &self.expiring),
            ("order", &self.order),
        ];
        query_string(&pairs)
    }

    /// The store query of these filters, for `caller`.
    fn store_query(&self, caller: &Caller, now: DateTime<Utc>) -> PageResult<ApprovalQuery> {
        let mut query = ApprovalQuery::default().status(ApprovalStatus::Pending).limit(PAGE_SIZE);
        query.tool_name = given(&self.tool);
        query.agent_id = given(&self.agent);
        query.team_id = given(&self.team);
        query.user_id = caller.own_user().map(str::to_owned).or_else(|| given(&self.user));
        query.pause_type = given(&self.pause)
            .map(|pause| pause.parse::<PauseType>())
            .transpose()
            .map_err(|err| unprocessable(format!("pause type: {err}")))?;
        query.created_before = span(&self.age)?.map(|age| now - age);
        query.expires_before = span(&self.expiring)?.map(|within| now + within);
        query.order = given(&self.order)
            .map(|order| order.parse::<ListOrder>())
            .transpose()
            .map_err(|err| unprocessable(format!("order: {err}")))?
            .unwrap_or_default();
        query.after = cursor(self.cursor.as_deref())?;
        Ok(query)
    }
}

fn given(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn unprocessable(message: impl Into<String>) -> PageError {
    PageError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// A span of the filters' choices: `5m`, `15m`, `1h`, `1d`.
fn span(text: &str) -> PageResult<Option<chrono::Duration>> {
    Ok(Some(match text {
        "" => return Ok(None),
        "5m" => chrono::Duration::minutes(5),
        "15m" => chrono::Duration::minutes(15),
        "1h" => chrono::Duration::hours(1),
        "1d" => chrono::Duration::days(1),
        other => return Err(unprocessable(format!("`{other}` is not one of the filter's spans"))),
    }))
}

fn cursor(text: Option<&str>) -> PageResult<Option<PageCursor>> {
    text.filter(|text| !text.is_empty())
        .map(|text| text.parse::<PageCursor>().map_err(|err| unprocessable(err.to_string())))
        .transpose()
}

/// `name=value&...` of the pairs with a value.
fn query_string(pairs: &[(&str, &String)]) -> String {
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `path?query` with `cursor` added.
fn page_url(path: &str, query: &str, cursor: &str) -> String {
    let sep = if query.is_empty() { "" } else { "&" };
    format!("{path}?{query}{sep}cursor={}", encode(cursor))
}

/// A time as the pages show it (and as their `datetime` attributes take it).
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An argument's value as the page shows it, exact and readable: JSON, indented where it
/// nests; a text over several lines as its lines (the type column says it is a string).
fn shown_value(value: &Value) -> String {
    match value {
        Value::String(text) if text.contains('\n') => text.clone(),
        Value::Array(_) | Value::Object(_) => serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()),
        _ => value.to_string(),
    }
}

/// When a pending row expires, as the pages show it.
fn deadline(at: DateTime<Utc>) -> Deadline {
    Deadline { shown: time(at), rfc3339: at.to_rfc3339() }
}

fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..=9 => "just now".to_owned(),
        10..=59 => format!("{seconds}s ago"),
        60..=3599 => format!("{}m ago", seconds / 60),
        3600..=86_399 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// `text` cut to `max` characters.
fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Who made a row's call: the agent, or the team and its member.
fn source(row: &Approval) -> String {
    let agent = row.agent_id.as_deref().or(row.source_name.as_deref()).unwrap_or("?");
    match &row.team_id {
        Some(team) if row.agent_id.is_some() => format!("{team} › {agent}"),
        Some(team) => team.clone(),
        None => agent.to_owned(),
    }
}

/// The most characters of a row's arguments the list shows.
const LISTED_ARGS: usize = 120;

fn row_view(row: &Approval, now: DateTime<Utc>) -> RowView {
    let args = row.tool_args.to_string();
    RowView {
        id: row.id.clone(),
        tool: row.tool_name.clone(),
        // Approved from the list only when the list shows the whole call.
        quick: row.pause_type == PauseType::Confirmation && args.chars().count() <= LISTED_ARGS,
        args: short(&args, LISTED_ARGS),
        user: row.user_id.clone().unwrap_or_else(|| "—".into()),
        source: source(row),
        pause: row.pause_type.to_string(),
        age: age(row.created_at, now),
        created_at: time(row.created_at),
        expires_at: row.expires_at.map(deadline),
        etag: etag(row),
    }
}

/// A page of pending rows for `params`.
struct Pending {
    rows: Vec<RowView>,
    total: u64,
    next: Option<String>,
}

/// Where a page's live updates start (`/events?after=`), read before the page's rows: before an
/// event that had its `seq` and commits after the rows were read, which a start after the last
/// `seq` would never show ([`TrailReader::from_now`]). A few events the page already shows may
/// come again, which only refreshes it; none is missed.
async fn live_from(state: &AppState) -> PageResult<i64> {
    Ok(TrailReader::from_now(&*state.store).await?.position())
}

async fn pending(state: &AppState, viewer: &Viewer, params: &InboxParams) -> PageResult<Pending> {
    viewer.caller.require(Scope::ApprovalsRead)?;
    let now = Utc::now();
    let query = params.store_query(&viewer.caller, now)?;
    let page = state.store.list_approvals(&query).await?;
    Ok(Pending {
        rows: page.items.iter().map(|row| row_view(row, now)).collect(),
        total: page.total,
        next: page.next_cursor.map(|cursor| page_url("/", &params.query(), &cursor.to_string())),
    })
}

/// `GET /`: the pending rows.
pub async fn inbox(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<InboxParams>,
) -> PageResult {
    let after = live_from(&state).await?;
    let page = pending(&state, &viewer, &params).await?;
    let filters = params.query();
    let first =
        params.cursor.as_ref().map(|_| if filters.is_empty() { "/".to_owned() } else { format!("/?{filters}") });
    let query = page_query(&params);
    Ok(render(
        StatusCode::OK,
        &InboxPage {
            chrome: viewer.chrome("inbox"),
            filters: params.filters(),
            pauses: PAUSES,
            ages: AGES,
            expirings: EXPIRINGS,
            orders: ORDERS,
            rows: page.rows,
            total: page.total,
            csrf: viewer.csrf,
            next: page.next,
            first,
            query,
            after,
        },
    ))
}

/// The query string of the page of rows `params` asks for: its filters and its cursor.
fn page_query(params: &InboxParams) -> String {
    let filters = params.query();
    match &params.cursor {
        Some(cursor) => page_url("", &filters, cursor).trim_start_matches('?').to_owned(),
        None => filters,
    }
}

/// `GET /ui/rows`: the list alone, for the live refresh.
pub async fn rows(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<InboxParams>,
) -> PageResult {
    let page = pending(&state, &viewer, &params).await?;
    let fragment = RowsFragment { rows: page.rows, total: page.total, csrf: viewer.csrf, query: page_query(&params) };
    Ok(render(StatusCode::OK, &fragment))
}

/// `GET /ui/approvals/{id}`.
pub async fn detail(State(state): State<AppState>, viewer: Viewer, PagePath(id): PagePath<String>) -> PageResult {
    Ok(render(StatusCode::OK, &detail_page(&state, &viewer, &id, None).await?))
}

fn turns(messages: &[Message]) -> Vec<TurnView> {
    let start = messages.len().saturating_sub(TURNS);
    messages[start..]
        .iter()
        .map(|message| {
            let mut text = message.content.clone().unwrap_or_default();
            for call in &message.tool_calls {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("calls {}({})", call.name, short(&call.arguments, 300)));
            }
            let role = match &message.name {
                Some(name) => format!("{} {name}", message.role),
                None => message.role.to_string(),
            };
            TurnView { kind: message.role.to_string(), role, text: short(&text, 1000) }
        })
        .collect()
}

/// Row `row`'s votes and trail, and whether they hold against it.
async fn read_trail(
    state: &AppState,
    row: &Approval,
) -> PageResult<(Vec<Vote>, Vec<TrailEvent>, Result<(), BrokenLink>)> {
    let votes = state.store.votes(&row.id).await?;
    let events = state.store.trail(&row.id).await?;
    let verdict = verify_row(row, &events, &votes);
    Ok((votes, events, verdict))
}

/// The page of row `id`, with what a refused decision said (`error`).
pub async fn detail_page(state: &AppState, viewer: &Viewer, id: &str, error: Option<String>) -> PageResult<DetailPage> {
    viewer.caller.require(Scope::ApprovalsRead)?;
    let after = live_from(state).await?;
    let row = visible_row(state, &viewer.caller, id).await?;
    let status = row.status_at(Utc::now());
    let pending = status == ApprovalStatus::Pending;
    let definition = Runner::tool_definition(state, &row);
    let input_schema = row.requirement().and_then(|requirement| requirement.user_input_schema.clone());
    // The schema the row was paused with, as its edits are read by; the tool's definition for
    // a row that stored none.
    let parameters = row
        .policy
        .as_ref()
        .and_then(|policy| policy.parameters.clone())
        .or_else(|| definition.as_ref().map(|definition| definition.parameters.clone()));
    let prop = |name: &str| {
        [parameters.as_ref(), input_schema.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|schema| schema.get("properties")?.get(name).cloned())
    };
    let args = row
        .tool_args
        .as_object()
        .map(|args| {
            args.iter()
                .map(|(name, value)| {
                    let schema = prop(name).unwrap_or(Value::Null);
                    ArgView {
                        name: name.clone(),
                        value: shown_value(value),
                        kind: type_of(&schema).to_owned(),
                        description: schema.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    }
                })
                .collect()
        })
        // Arguments that are no object (a tool without a schema may be called so) are shown
        // whole rather than as an empty table.
        .unwrap_or_else(|| {
            let kind = match &row.tool_args {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                _ => "null",
            };
            let whole = shown_value(&row.tool_args);
            vec![ArgView { name: "(all)".into(), value: whole, kind: kind.into(), description: String::new() }]
        });
    let run = state.store.load_run(&row.run_id).await?;
    let (votes, events, verdict) = match read_trail(state, &row).await? {
        // A vote or decision committed between the reads of the row, its votes and its trail
        // looks like tampering in that moment only: read once more before saying so.
        (_, _, Err(_)) => match state.store.get_approval(id).await? {
            Some(now) => read_trail(state, &now).await?,
            None => read_trail(state, &row).await?,
        },
        held => held,
    };
    let (trail_status, trail_intact) = match verdict {
        Ok(()) => ("verified".to_owned(), true),
        Err(broken) => (format!("broken at event {}: {}", broken.index, broken.reason), false),
    };
    // The fields of the schema the row was paused with, which its edits are read and checked
    // against: the tool's definition may have changed since.
    // Edits are approvals of a confirmation: a row that waits for values or a result is
    // approved with those, on its own form.
    let editable = pending && row.pause_type == PauseType::Confirmation;
    let edits = match row.policy.as_ref().filter(|policy| policy.allow_edit && editable) {
        Some(policy) => policy.parameters.as_ref().map(|parameters| edit_fields(parameters, &row.tool_args)),
        None => None,
    }
    .unwrap_or_default();
    Ok(DetailPage {
        chrome: viewer.chrome("inbox"),
        id: row.id.clone(),
        etag: etag(&row),
        status: status.to_string(),
        tool: row.tool_name.clone(),
        description: definition.map(|definition| definition.description).unwrap_or_default(),
        args,
        user: row.user_id.clone().unwrap_or_else(|| "—".into()),
        path: match &row.team_id {
            Some(_) => format!("team {}", source(&row)),
            None => format!("agent {}", source(&row)),
        },
        pause: row.pause_type.to_string(),
        created_at: time(row.created_at),
        expires_at: row.expires_at.filter(|_| pending).map(deadline),
        run_id: row.run_id.clone(),
        run_status: run.as_ref().map_or(row.run_status, |run| run.status).to_string(),
        turns: run.as_ref().map(|run| turns(&run.messages)).unwrap_or_default(),
        policy: row.policy.as_ref().map(|policy| PolicyView {
            approvers: if policy.approvers.is_empty() { "anyone".to_owned() } else { policy.approvers.join(", ") },
            quorum: policy.quorum,
            self_approval: policy.self_approval,
            allow_edit: policy.allow_edit,
            on_expire: policy.on_expire.to_string(),
        }),
        votes: votes
            .iter()
            .map(|vote| VoteView {
                who: vote.principal.clone(),
                kind: vote.kind.to_string(),
                note: vote.note.clone().unwrap_or_default(),
                at: time(vote.at),
            })
            .collect(),
        pending,
        inputs: match (&input_schema, row.pause_type) {
            (Some(schema), PauseType::UserInput) if pending => input_fields(schema),
            _ => Vec::new(),
        },
        edits,
        external: row.pause_type == PauseType::ExternalExecution,
        resolution: (!pending).then(|| resolution(&row, status)),
        trail: events
            .iter()
            .map(|event| TrailView {
                seq: event.seq,
                kind: event.kind.to_string(),
                principal: event.principal.clone(),
                at: time(event.at),
            })
            .collect(),
        trail_status,
        trail_intact,
        error,
        kept: KeptText::default(),
        progress: row.policy.as_ref().filter(|policy| pending && policy.quorum > 1).map(|policy| {
            // Approvals of the call as asked: an edit starts a count of its own, shown in the votes.
            let so_far = votes.iter().filter(|vote| vote.kind == VoteKind::Approve && vote.args.is_none()).count();
            let needed = usize::try_from(policy.quorum).unwrap_or(usize::MAX).saturating_sub(so_far);
            format!("{so_far} of {} approvals of the call as asked; {needed} more needed", policy.quorum)
        }),
        viewer_vote: votes.iter().find(|vote| pending && vote.principal == viewer.caller.principal.id).map(|vote| {
            let side = if vote.kind == VoteKind::Approve { "for" } else { "against" };
            format!("You voted {side} this call at {}: a principal votes once.", time(vote.at))
        }),
        after,
    })
}

/// How a decided row was decided, with the arguments an approver changed.
fn resolution(row: &Approval, status: ApprovalStatus) -> ResolutionView {
    let mut data = row.resolution_data.clone().and_then(|data| data.as_object().cloned()).unwrap_or_default();
    data.remove("note");
    data.remove("args");
    let diff = match (row.edited_args().and_then(Value::as_object), row.tool_args.as_object()) {
        (Some(after), Some(before)) => {
            let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .filter(|name| before.get(*name) != after.get(*name))
                .map(|name| DiffView {
                    name: name.clone(),
                    before: before.get(name).map(plain).unwrap_or_else(|| "—".into()),
                    after: after.get(name).map(plain).unwrap_or_else(|| "—".into()),
                })
                .collect()
        }
        _ => Vec::new(),
    };
    ResolutionView {
        status: status.to_string(),
        by: row.resolved_by.clone().unwrap_or_else(|| "—".into()),
        at: row.resolved_at.map(time).unwrap_or_default(),
        note: row.note().unwrap_or_default().to_owned(),
        data: if data.is_empty() { String::new() } else { Value::Object(data).to_string() },
        diff,
    }
}

/// The query string of the history.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    user: String,
    cursor: Option<String>,
    #[serde(default)]
    format: String,
}

impl HistoryParams {
    fn outcome(&self) -> PageResult<ApprovalStatus> {
        match self.status.as_str() {
            "" => Ok(ApprovalStatus::Approved),
            text => match text.parse::<ApprovalStatus>() {
                Ok(ApprovalStatus::Pending) | Err(_) => {
                    Err(unprocessable(format!("`{text}` is not an outcome: approved, rejected, cancelled or expired")))
                }
                Ok(status) => Ok(status),
            },
        }
    }

    fn query(&self, outcome: ApprovalStatus) -> String {
        let status = outcome.to_string();
        query_string(&[("status", &status), ("tool", &self.tool), ("user", &self.user)])
    }

    fn store_query(&self, caller: &Caller, limit: u32) -> PageResult<ApprovalQuery> {
        let mut query = ApprovalQuery::default().status(self.outcome()?).limit(limit);
        query.tool_name = given(&self.tool);
        query.user_id = caller.own_user().map(str::to_owned).or_else(|| given(&self.user));
        query.after = cursor(self.cursor.as_deref())?;
        Ok(query)
    }
}

/// `GET /ui/history`: decided rows, newest first.
pub async fn history(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<HistoryParams>,
) -> PageResult {
    viewer.caller.require(Scope::ApprovalsRead)?;
    let outcome = params.outcome()?;
    let page = state.store.list_approvals(&params.store_query(&viewer.caller, PAGE_SIZE)?).await?;
    let query = params.query(outcome);
    Ok(render(
        StatusCode::OK,
        &HistoryPage {
            chrome: viewer.chrome("history"),
            status: outcome.to_string(),
            statuses: OUTCOMES,
            tool: params.tool.clone(),
            user: params.user.clone(),
            rows: page
                .items
                .iter()
                .map(|row| HistoryRow {
                    id: row.id.clone(),
                    tool: row.tool_name.clone(),
                    user: row.user_id.clone().unwrap_or_else(|| "—".into()),
                    status: row.status.to_string(),
                    by: row.resolved_by.clone().unwrap_or_else(|| "—".into()),
                    at: row.resolved_at.map(time).unwrap_or_default(),
                    note: row.note().unwrap_or_default().to_owned(),
                    run_id: row.run_id.clone(),
                })
                .collect(),
            total: page.total,
            next: page.next_cursor.map(|cursor| page_url("/ui/history", &query, &cursor.to_string())),
            first: params.cursor.as_ref().map(|_| format!("/ui/history?{query}")),
            query,
        },
    ))
}

/// The columns of the CSV export.
const CSV_COLUMNS: &[&str] = &[
    "id",
    "status",
    "tool_name",
    "tool_args",
    "user_id",
    "agent_id",
    "team_id",
    "run_id",
    "created_at",
    "resolved_by",
    "resolved_at",
    "note",
];

/// A decided row as one CSV record, in [`CSV_COLUMNS`] order.
fn csv_line(row: &Approval) -> String {
    let fields = [
        row.id.clone(),
        row.status.to_string(),
        row.tool_name.clone(),
        row.tool_args.to_string(),
        row.user_id.clone().unwrap_or_default(),
        row.agent_id.clone().unwrap_or_default(),
        row.team_id.clone().unwrap_or_default(),
        row.run_id.clone(),
        row.created_at.to_rfc3339(),
        row.resolved_by.clone().unwrap_or_default(),
        row.resolved_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
        row.note().unwrap_or_default().to_owned(),
    ];
    kern_core::csv::record(fields.iter().map(String::as_str))
}

/// `GET /ui/history/export?format=csv|jsonl`: every decided row of the history's filters, as
/// CSV or as JSON lines in the API's shape. Sent a page of rows at a time, so that an export
/// of any size holds one page in memory; the first page is read before the answer starts, so
/// that a store that cannot answer gets its error page. A later failure cuts the download
/// short, which the browser reports as failed.
pub async fn export(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<HistoryParams>,
) -> PageResult {
    viewer.caller.require(Scope::ApprovalsRead)?;
    let csv = match params.format.as_str() {
        "csv" => true,
        "jsonl" => false,
        other => return Err(unprocessable(format!("`{other}` is not an export format: csv or jsonl"))),
    };
    let outcome = params.outcome()?;
    let mut query = params.store_query(&viewer.caller, EXPORT_PAGE)?;
    let first = state.store.list_approvals(&query).await?;
    let mut head = if csv { kern_core::csv::record(CSV_COLUMNS.iter().copied()) } else { String::new() };
    head.push_str(&export_lines(&first.items, csv));
    let next = first.next_cursor.map(|next| {
        query.after = Some(next);
        query
    });
    let rest = futures_util::stream::unfold(next, move |query| {
        let state = state.clone();
        async move {
            let mut query = query?;
            match state.store.list_approvals(&query).await {
                Ok(page) => {
                    let lines = export_lines(&page.items, csv);
                    let next = page.next_cursor.map(|next| {
                        query.after = Some(next);
                        query
                    });
                    Some((Ok(lines), next))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "an export was cut short: the store failed");
                    Some((Err(std::io::Error::other(err)), None))
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::once(async { Ok(head) }).chain(rest));
    let (content_type, extension) =
        if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/x-ndjson; charset=utf-8", "jsonl") };
    let disposition = format!("attachment; filename=\"approvals-{outcome}.{extension}\"");
    let headers = [
        (CONTENT_TYPE, content_type.to_owned()),
        (CONTENT_DISPOSITION, disposition),
        (CACHE_CONTROL, "no-store".to_owned()),
        (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, body).into_response())
}

/// The export's lines of `rows`.
fn export_lines(rows: &[Approval], csv: bool) -> String {
    let mut lines = String::new();
    for row in rows {
        if csv {
            lines.push_str(&csv_line(row));
        } else {
            lines.push_str(&serde_json::to_string(&ApprovalResponse::from(row)).unwrap_or_default());
            lines.push('\n');
        }
    }
    lines
}

/// `GET /ui/runs/{run_id}`.
pub async fn run(State(state): State<AppState>, viewer: Viewer, PagePath(run_id): PagePath<String>) -> PageResult {
    Ok(render(StatusCode::OK, &run_page(&state, &viewer, &run_id, None).await?))
}

/// A run the caller may see.
pub async fn visible_run(state: &AppState, caller: &Caller, run_id: &str) -> PageResult<RunRecord> {
    match state.store.load_run(run_id).await? {
        Some(record) if caller.sees_user(record.user_id.as_deref()) => Ok(record),
        _ => Err(PageError::new(StatusCode::NOT_FOUND, format!("No run has the id {run_id}."))),
    }
}

/// The page of run `run_id`, with what a refused continue or recovery said.
pub async fn run_page(state: &AppState, viewer: &Viewer, run_id: &str, error: Option<String>) -> PageResult<RunPage> {
    viewer.caller.require(Scope::ApprovalsRead)?;
    let record = visible_run(state, &viewer.caller, run_id).await?;
    let now = Utc::now();
    let rows = state.store.list_approvals(&ApprovalQuery::default().run_id(run_id).limit(100)).await?.items;
    // The rows it waits on, its members' included; a paused call without a row waits on its
    // caller, which a continue from here cannot answer.
    let mut waiting_rows = 0;
    for id in record.waiting_on() {
        let row = state.store.get_approval(&id).await?;
        waiting_rows += usize::from(row.is_none_or(|row| row.status_at(now) == ApprovalStatus::Pending));
    }
    let runner = Runner::of_run(state, &record);
    let paused = record.status == RunStatus::Paused;
    let may_run = viewer.caller.require(Scope::RunsWrite).is_ok();
    let can_continue = paused && may_run && runner.is_some() && waiting_rows == 0 && record.waits_only_on_rows();
    let stale = (now - record.updated_at).to_std().is_ok_and(|running| running > state.stale_after);
    let can_recover = record.status == RunStatus::Running && may_run && stale && runner.is_some();
    let waiting = match (paused, waiting_rows, &runner) {
        (true, 0, None) => {
            Some("This server does not run this run's agent: its own process or a worker continues it.".to_owned())
        }
        (true, 1, _) => Some("The run waits for 1 approval.".to_owned()),
        (true, waiting, _) if waiting > 1 => Some(format!("The run waits for {waiting} approvals.")),
        _ => None,
    };
    Ok(RunPage {
        chrome: viewer.chrome("run"),
        run_id: record.run_id.clone(),
        status: record.status.to_string(),
        runner: match (&record.agent_id, &record.team_id) {
            (Some(agent), Some(team)) => format!("agent {agent} of team {team}"),
            (Some(agent), None) => format!("agent {agent}"),
            (None, team) => format!("team {}", team.as_deref().unwrap_or("?")),
        },
        user: record.user_id.clone().unwrap_or_else(|| "—".into()),
        input: record.input.clone(),
        content: record.content.clone().unwrap_or_default(),
        updated_at: time(record.updated_at),
        turns: turns(&record.messages),
        rows: rows
            .iter()
            .map(|row| RunRowView {
                id: row.id.clone(),
                tool: row.tool_name.clone(),
                status: row.status_at(now).to_string(),
            })
            .collect(),
        parent: record.parent_run_id.clone(),
        can_continue,
        can_recover,
        waiting,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        let tool = "refund order".to_owned();
        let empty = String::new();
        assert_eq!(query_string(&[("tool", &tool), ("user", &empty)]), "tool=refund%20order");
        assert_eq!(page_url("/", "", "c1"), "/?cursor=c1");
    }

    #[test]
    fn long_text_is_cut_on_a_character() {
        assert_eq!(short("ééé", 2), "éé…");
        assert_eq!(short("ab", 2), "ab");
    }
}
