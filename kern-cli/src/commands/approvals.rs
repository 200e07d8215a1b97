//! `kern approvals`: list, show and decide rows, and watch them as they are created and
//! decided. On a database a decision is made as `--as` under the row's policy
//! (`Store::decide`); through a server, as the API key's principal (`/resolve`, `/cancel`).

use std::time::Duration;

use chrono::Utc;
use kern_core::approval::{ApprovalQuery, ApprovalStatus, Decision};
use kern_core::follow::TrailReader;
use serde_json::{Map, Value, json};

use crate::cli::{ApprovalFilters, ApprovalsCommand, WatchArgs};
use crate::exit::{Failure, Outcome};
use crate::http::{Client, EventStream, segment};
use crate::interrupt::Interrupt;
use crate::output::{Colour, Output, Table, given, or_dash, plain, printable, time};
use crate::target::{Context, Target};
use crate::view::{ApprovalView, EventView, Page, WireApproval};

/// How often `watch` reads the trail of a database.
const POLL: Duration = Duration::from_millis(250);

/// How many events one read of the trail takes.
const BATCH: u32 = 256;

/// How long a watch waits before it opens a broken event stream again, at first; each failed
/// attempt doubles it, up to [`RECONNECT_AT_MOST`].
const RECONNECT_FIRST: Duration = Duration::from_secs(1);

/// The longest a watch waits between two attempts to open its event stream again.
const RECONNECT_AT_MOST: Duration = Duration::from_secs(30);

pub async fn run(command: ApprovalsCommand, ctx: &Context) -> Outcome {
    match command {
        ApprovalsCommand::List(filters) => list(ctx, &filters).await,
        ApprovalsCommand::Show { id } => {
            let row = match &ctx.target {
                Target::Database(db) => ApprovalView::from(
                    &db.store()
                        .get_approval(&id)
                        .await?
                        .ok_or_else(|| Failure::not_found(format!("approval `{id}` not found")))?,
                ),
                Target::Server(client) => wire_row(client.get(&format!("/approvals/{}", segment(&id)?), &[]).await?)?,
            };
            show(&ctx.out, &row)
        }
        ApprovalsCommand::Approve(args) => {
            let decision =
                Decision::Approve { note: args.note, values: args.values, result: args.result, args: args.args };
            decide(ctx, "approvals approve", &args.id, decision).await
        }
        ApprovalsCommand::Reject { id, note } => {
            decide(ctx, "approvals reject", &id, Decision::Reject { note: Some(note).filter(|n| !n.is_empty()) }).await
        }
        ApprovalsCommand::Cancel { id, note } => decide(ctx, "approvals cancel", &id, Decision::Cancel { note }).await,
        ApprovalsCommand::Watch(args) => watch(ctx, &args).await,
    }
}

fn wire_row(body: Value) -> Outcome<ApprovalView> {
    serde_json::from_value::<WireApproval>(body)
        .map(ApprovalView::from)
        .map_err(|err| Failure::error(format!("the server answered a row kern cannot read: {err}")))
}

async fn list(ctx: &Context, filters: &ApprovalFilters) -> Outcome {
    // Rows about to expire are the pending ones, unless another status is asked for.
    let status = filters.status.or(filters.expiring.map(|_| ApprovalStatus::Pending));
    let expires_before = filters.expiring;
    let page = match &ctx.target {
        Target::Database(db) => {
            let query = ApprovalQuery {
                status,
                tool_name: filters.tool.clone(),
                agent_id: filters.owner.agent.clone(),
                team_id: filters.owner.team.clone(),
                user_id: filters.owner.user.clone(),
                run_id: filters.run.clone(),
                created_after: filters.since,
                created_before: filters.until,
                expires_before,
                after: filters.page.cursor.clone(),
                limit: Some(filters.page.limit),
                ..ApprovalQuery::default()
            };
            let page = db.store().list_approvals(&query).await?;
            for row in &page.unreadable {
                ctx.out.warn(&format!("row {} cannot be read: {}", row.id, row.reason));
            }
            Page {
                items: page.items.iter().map(ApprovalView::from).collect(),
                next_cursor: page.next_cursor.map(|cursor| cursor.to_string()),
            }
        }
        Target::Server(client) => {
            let mut query: Vec<(&str, String)> = vec![("limit", filters.page.limit.to_string())];
            let texts = [
                ("status", status.map(|s| s.to_string())),
                ("tool_name", filters.tool.clone()),
                ("agent_id", filters.owner.agent.clone()),
                ("team_id", filters.owner.team.clone()),
                ("user_id", filters.owner.user.clone()),
                ("run_id", filters.run.clone()),
                ("created_after", filters.since.map(|at| at.to_rfc3339())),
                ("created_before", filters.until.map(|at| at.to_rfc3339())),
                ("expiring_before", expires_before.map(|at| at.to_rfc3339())),
                ("cursor", filters.page.cursor.as_ref().map(ToString::to_string)),
            ];
            query.extend(texts.into_iter().filter_map(|(key, value)| value.map(|value| (key, value))));
            let body = client.get("/approvals", &query).await?;
            let rows = body.get("data").and_then(Value::as_array).cloned();
            let rows = rows.ok_or_else(|| Failure::error("the server answered a listing without `data`"))?;
            let unreadable = body.pointer("/meta/unreadable").and_then(Value::as_array).into_iter().flatten();
            for id in unreadable.filter_map(Value::as_str) {
                ctx.out.warn(&format!("row {id} cannot be read: the server's log says why"));
            }
            Page {
                items: rows.into_iter().map(wire_row).collect::<Outcome<_>>()?,
                next_cursor: body.pointer("/meta/next_cursor").and_then(Value::as_str).map(str::to_owned),
            }
        }
    };
    if ctx.out.json {
        return ctx.out.json_line(&page);
    }
    let mut table = Table::new(&["ID", "STATUS", "TOOL", "USER", "AGENT/TEAM", "RUN", "CREATED", "EXPIRES"]);
    for row in &page.items {
        let runner = row.agent_id.as_deref().or(row.team_id.as_deref());
        table.row(vec![
            plain(&row.id),
            (row.status.clone(), Colour::of_status(&row.status)),
            plain(&row.tool_name),
            plain(or_dash(row.user_id.as_deref())),
            plain(or_dash(runner)),
            plain(&row.run_id),
            plain(time(row.created_at)),
            plain(or_dash(row.expires_at.map(time).as_deref())),
        ]);
    }
    // Times as the first page took them: a relative `--since 2h` or `--expiring 30m` would have
    // moved on.
    let at =
        |time: Option<chrono::DateTime<Utc>>| time.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let args = given(&[
        ("status", filters.status.map(|status| status.to_string())),
        ("tool", filters.tool.clone()),
        ("agent", filters.owner.agent.clone()),
        ("team", filters.owner.team.clone()),
        ("user", filters.owner.user.clone()),
        ("run", filters.run.clone()),
        ("since", at(filters.since)),
        ("until", at(filters.until)),
        ("expiring", at(filters.expiring)),
        ("limit", Some(filters.page.limit.to_string())),
    ]);
    ctx.out.page(&table, "no rows", &args, page.next_cursor.as_deref())
}

fn show(out: &Output, row: &ApprovalView) -> Outcome {
    if out.json {
        return out.json_line(row);
    }
    let text = |value: &Option<Value>| value.as_ref().map_or("-".to_owned(), Value::to_string);
    out.fields(&[
        ("id", row.id.clone(), None),
        ("status", row.status.clone(), Colour::of_status(&row.status)),
        ("tool", row.tool_name.clone(), Some(Colour::Bold)),
        ("args", row.tool_args.to_string(), None),
        ("pause", format!("{} ({})", row.pause_type, row.approval_type), None),
        ("run", format!("{} ({})", row.run_id, row.run_status), None),
        ("session", row.session_id.clone(), None),
        ("source", format!("{} {}", row.source_type, or_dash(row.source_name.as_deref())), None),
        ("agent", or_dash(row.agent_id.as_deref()), None),
        ("team", or_dash(row.team_id.as_deref()), None),
        ("user", or_dash(row.user_id.as_deref()), None),
        ("created", time(row.created_at), None),
        ("expires", or_dash(row.expires_at.map(time).as_deref()), None),
        ("resolved by", or_dash(row.resolved_by.as_deref()), None),
        ("resolved", or_dash(row.resolved_at.map(time).as_deref()), None),
        ("resolution", text(&row.resolution_data), None),
        ("policy", text(&row.policy), None),
    ])
}

/// Decides row `id`: on a database as `--as`, through a server as the key's principal.
async fn decide(ctx: &Context, command: &str, id: &str, decision: Decision) -> Outcome {
    let row = match &ctx.target {
        Target::Database(db) => {
            let principal = ctx.principal(command)?;
            ApprovalView::from(&db.store().decide(id, principal, decision).await?)
        }
        Target::Server(client) => wire_row(decide_over(client, id, decision).await?)?,
    };
    if ctx.out.json {
        return ctx.out.json_line(&row);
    }
    let verdict = match row.status.as_str() {
        "pending" => "vote recorded; the row waits for more approvals".to_owned(),
        status => format!("{status} by {}", or_dash(row.resolved_by.as_deref())),
    };
    let verdict = ctx.out.paint(&printable(&verdict), Colour::of_status(&row.status));
    ctx.out.line(&format!("{} {}: {verdict}", printable(&row.tool_name), printable(&row.id)))
}

/// The server's answer to `decision`: the row as it then stands.
async fn decide_over(client: &Client, id: &str, decision: Decision) -> Outcome<Value> {
    let (path, body) = match decision {
        Decision::Approve { note, mut values, result, args } => {
            // A user-input call's values given as the data itself are read first, so a note
            // alone would fill a value the call names `note`: with no values, it goes beside
            // an empty `values`, and stays the admin's.
            if note.is_some() && values.is_none() && waits_for_values(client, id).await? {
                values = Some(Map::new());
            }
            let data: Map<String, Value> = [
                ("note", note.map(Value::String)),
                ("values", values.map(Value::Object)),
                ("result", result),
                ("args", args),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
            .collect();
            ("resolve", json!({"status": "approved", "resolution_data": data}))
        }
        Decision::Reject { note } => ("resolve", json!({"status": "rejected", "resolution_data": {"note": note}})),
        Decision::Cancel { note } => ("cancel", json!({"note": note})),
    };
    client.post(&format!("/approvals/{}/{path}", segment(id)?), &body).await
}

/// Whether row `id` is a user-input call's, as the server shows it.
async fn waits_for_values(client: &Client, id: &str) -> Outcome<bool> {
    let row = client.get(&format!("/approvals/{}", segment(id)?), &[]).await?;
    Ok(row["pause_type"] == "user_input")
}

async fn watch(ctx: &Context, args: &WatchArgs) -> Outcome {
    let printing = |event: &EventView| -> Outcome {
        if !(args.all || event.creates_or_decides()) {
            return Ok(());
        }
        if ctx.out.json {
            return ctx.out.json_line(event);
        }
        let kind = ctx.out.paint(&format!("{:<9}", event.kind), Colour::of_status(&event.kind));
        // `#seq` is where `--after` takes a watch up again.
        ctx.out.line(&format!(
            "#{}  {}  {kind}  {}  run {}  by {}",
            event.seq,
            time(event.at),
            printable(&event.approval_id),
            printable(&event.run_id),
            printable(&event.principal)
        ))
    };
    let mut interrupt = Interrupt::listen()?;
    match &ctx.target {
        Target::Database(db) => {
            let store = db.store();
            // A gap in the `seq`s that may still fill holds the reader back until it fills or
            // has been waited for long enough: an event may commit after a later one, also one
            // that had its `seq` before the watch started.
            let mut trail = match args.after {
                Some(after) => TrailReader::after(after),
                None => tokio::select! {
                    reader = TrailReader::from_now(store.as_ref()) => reader?,
                    () = interrupt.received() => return Ok(()),
                },
            };
            loop {
                let events = tokio::select! {
                    events = trail.read(store.as_ref(), BATCH) => events?,
                    () = interrupt.received() => return Ok(()),
                };
                for event in events {
                    printing(&EventView::from(&event))?;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    () = interrupt.received() => return Ok(()),
                }
            }
        }
        Target::Server(client) => {
            // Where the watch stands: a stream that breaks off (a proxy's idle timeout, a server
            // restarting) is opened again after the last event shown, or before the first after
            // the place the server said the stream started from, so that none is missed.
            let mut after = args.after;
            let mut events = tokio::select! {
                events = client.events(after) => events?,
                () = interrupt.received() => return Ok(()),
            };
            loop {
                let next = tokio::select! {
                    next = events.next() => next,
                    () = interrupt.received() => return Ok(()),
                };
                let event = match next {
                    Ok(Some(event)) => event,
                    broken => {
                        let why =
                            broken.err().map_or_else(|| "the server ended it".to_owned(), |failure| failure.message);
                        ctx.out.warn(&format!("the event stream broke off ({why})"));
                        after = events.last_id().or(after);
                        match reopen(ctx, client, after, &mut interrupt).await? {
                            Some(reopened) => events = reopened,
                            None => return Ok(()),
                        }
                        continue;
                    }
                };
                // The stream also tells of runs (`run.<status>`): only the rows' events are watched.
                if !event.name.starts_with("approval.") {
                    continue;
                }
                let event: EventView = serde_json::from_str(&event.data)
                    .map_err(|err| Failure::error(format!("the server sent an event kern cannot read: {err}")))?;
                after = Some(event.seq);
                printing(&event)?;
            }
        }
    }
}

/// Opens the event stream again after event `after`, waiting longer between attempts that fail
/// for a reason that may pass (the server unreachable, say); one the server refuses (a revoked
/// key) ends the watch. `None` when interrupted meanwhile.
async fn reopen(
    ctx: &Context,
    client: &Client,
    after: Option<i64>,
    interrupt: &mut Interrupt,
) -> Outcome<Option<EventStream>> {
    let mut pause = RECONNECT_FIRST;
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = interrupt.received() => return Ok(None),
        }
        let opened = tokio::select! {
            opened = client.events(after) => opened,
            () = interrupt.received() => return Ok(None),
        };
        match opened {
            Ok(events) => return Ok(Some(events)),
            Err(failure) if failure.may_pass => {
                pause = (pause * 2).min(RECONNECT_AT_MOST);
                ctx.out.warn(&format!("{}; trying again in {}s", failure.message, pause.as_secs()));
            }
            Err(failure) => return Err(failure),
        }
    }
}
