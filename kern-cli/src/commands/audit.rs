//! `kern audit`: check every row's hash chain (and the whole trail against a checkpoint kept
//! elsewhere), print a checkpoint, and export the trail's events as JSON lines or CSV, with a
//! progress line on a terminal.

use chrono::{DateTime, SecondsFormat, Utc};
use kern_core::csv;
use kern_core::follow::{SETTLED_AGE, TrailReader};
use kern_core::trail::Checkpoint;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufWriter, Write};

use crate::cli::{AuditCommand, ExportFormat};
use crate::exit::{Code, Failure, Outcome};
use crate::output::{Colour, Progress};
use crate::target::{Context, Target};
use crate::view::EventView;

/// Events per read of an export.
const PAGE: u32 = 1000;

/// What the check found: the server's answer has the same shape.
#[derive(Debug, Serialize, Deserialize)]
struct Verified {
    ok: bool,
    rows: u64,
    events: u64,
    /// The first link that does not hold.
    broken: Option<String>,
    /// The checkpoint the trail was checked against, when it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
}

pub async fn run(command: AuditCommand, ctx: &Context) -> Outcome {
    match command {
        AuditCommand::Verify { checkpoint } => verify(ctx, checkpoint).await,
        AuditCommand::Checkpoint => checkpoint(ctx).await,
        AuditCommand::Export { format, since } => export(ctx, format, since).await,
    }
}

async fn verify(ctx: &Context, kept: Option<Checkpoint>) -> Outcome {
    let mut verified = match &ctx.target {
        Target::Database(db) => {
            let report = db.store().verify_trail().await?;
            let broken = report
                .broken
                .map(|link| format!("approval {} event {}: {}", link.approval_id, link.index, link.reason));
            Verified { ok: broken.is_none(), rows: report.approvals, events: report.events, broken, checkpoint: None }
        }
        Target::Server(client) => {
            // 409 is the server's answer for a broken trail: a finding, not a failed request.
            let answer = client.get_allowing("/audit/verify", StatusCode::CONFLICT).await?;
            let mut verified: Verified = serde_json::from_value(answer)
                .map_err(|err| Failure::error(format!("the server answered a check that cannot be read: {err}")))?;
            if !verified.ok && verified.broken.is_none() {
                verified.broken = Some("the server found it broken".to_owned());
            }
            verified
        }
    };
    if let Some(kept) = &kept
        && verified.broken.is_none()
    {
        let (found, _) = fold(ctx, Some(kept.seq)).await?;
        let differs = if found.seq != kept.seq {
            Some(format!(
                "event {}, checkpoint {kept}'s last, is not in the trail (its events up to it end at {}): events \
                 were removed, or the checkpoint is of another database",
                kept.seq, found.seq
            ))
        } else if found != *kept {
            Some(format!(
                "its events up to {} are not those checkpoint {kept} was taken over: they fold to {found}",
                kept.seq
            ))
        } else {
            None
        };
        match differs {
            Some(differs) => (verified.ok, verified.broken) = (false, Some(differs)),
            None => verified.checkpoint = Some(kept.to_string()),
        }
    }
    // A broken trail is a failure even when whoever read the JSON went away.
    let shown = if ctx.out.json { ctx.out.json_line(&verified) } else { Ok(()) };
    match verified.broken {
        Some(link) => Err(Failure::new(Code::TrailBroken, format!("the trail is broken: {link}"))),
        None if ctx.out.json => shown,
        None => ctx.out.line(&format!(
            "{}: {} rows, {} events, every chain holds{}",
            ctx.out.paint("trail intact", Some(Colour::Green)),
            verified.rows,
            verified.events,
            kept.map(|kept| format!(", and so does checkpoint {}", kept.seq)).unwrap_or_default()
        )),
    }
}

/// Prints the checkpoint of the trail as it stands, up to the first gap in its numbers that may
/// still fill (see [`fold`]).
async fn checkpoint(ctx: &Context) -> Outcome {
    let (checkpoint, events) = fold(ctx, None).await?;
    if ctx.out.json {
        let json = serde_json::json!({"checkpoint": checkpoint.to_string(), "seq": checkpoint.seq, "events": events});
        return ctx.out.json_line(&json);
    }
    ctx.out.line(&checkpoint.to_string())?;
    let _ = writeln!(std::io::stderr(), "over {events} events: keep it where the database's writers cannot reach");
    Ok(())
}

/// The trail's events folded into a checkpoint in order, and how many were folded: up to event
/// `until`, or when `None` up to the first gap in the numbers that is followed by an event
/// written less than [`SETTLED_AGE`] ago. Such a gap may still fill (on Postgres an event may
/// commit after one with a higher number), and a checkpoint past it would then fail for good.
async fn fold(ctx: &Context, until: Option<i64>) -> Outcome<(Checkpoint, u64)> {
    let settled = Utc::now() - SETTLED_AGE;
    let (mut checkpoint, mut folded, mut cursor) = (Checkpoint::default(), 0u64, 0);
    loop {
        let (events, _) = page(ctx, cursor).await?;
        let Some(tail) = events.last() else { break };
        cursor = tail.seq;
        for event in &events {
            let past_end = match until {
                Some(until) => event.seq > until,
                None => event.seq != checkpoint.seq + 1 && event.at > settled,
            };
            if past_end {
                return Ok((checkpoint, folded));
            }
            checkpoint.absorb(event.seq, &event.hash);
            folded += 1;
        }
        if until.is_some_and(|until| cursor >= until) {
            break;
        }
    }
    Ok((checkpoint, folded))
}

async fn export(ctx: &Context, format: ExportFormat, since: Option<DateTime<Utc>>) -> Outcome {
    if ctx.out.json && format == ExportFormat::Csv {
        return Err(Failure::usage("`--json` exports JSON lines: leave out `--format csv`"));
    }
    let mut progress = Progress::new();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = |result: std::io::Result<()>| result.map_err(|err| Failure::write(&err));
    if format == ExportFormat::Csv {
        let columns = ["seq", "at", "approval_id", "run_id", "index", "kind", "principal", "data", "prev_hash", "hash"];
        written(out.write_all(csv::record(columns).as_bytes()))?;
    }
    let (mut cursor, mut exported) = (0, 0u64);
    loop {
        let (events, last) = page(ctx, cursor).await?;
        let Some(tail) = events.last() else { break };
        cursor = tail.seq;
        for event in events.iter().filter(|event| since.is_none_or(|since| event.at >= since)) {
            let line = match format {
                ExportFormat::Jsonl => {
                    let json = serde_json::to_string(event)
                        .map_err(|err| Failure::error(format!("cannot encode event {}: {err}", event.seq)))?;
                    json + "\n"
                }
                ExportFormat::Csv => csv_line(event),
            };
            written(out.write_all(line.as_bytes()))?;
            exported += 1;
        }
        // The events are numbered in order: the last number tells how far along an export is.
        progress.update(u64::try_from(cursor.min(last)).unwrap_or(0), u64::try_from(last).unwrap_or(0), "events read");
    }
    written(out.flush())?;
    progress.finish();
    if !ctx.out.json {
        let _ = writeln!(std::io::stderr(), "exported {exported} events");
    }
    Ok(())
}

/// The events stored after event `after`, in order, and the `seq` of the latest one stored.
/// Empty only once the export has caught up: a gap in the `seq`s that may still fill is waited
/// for (by the server, when there is one), so that an event committing late is not passed over.
async fn page(ctx: &Context, after: i64) -> Outcome<(Vec<EventView>, i64)> {
    match &ctx.target {
        Target::Database(db) => {
            let store = db.store();
            let events = TrailReader::after(after).read_waiting(store.as_ref(), PAGE).await?;
            Ok((events.iter().map(EventView::from).collect(), store.last_event_seq().await?))
        }
        Target::Server(client) => {
            let query = [("after", after.to_string()), ("limit", PAGE.to_string())];
            let mut page = client.get("/audit/events", &query).await?;
            let data = page.get_mut("data").map(Value::take).unwrap_or_default();
            let events = serde_json::from_value(data)
                .map_err(|err| Failure::error(format!("the server answered events that cannot be read: {err}")))?;
            let last = page.get("last_seq").and_then(Value::as_i64);
            Ok((events, last.ok_or_else(|| Failure::error("the server answered a page of events without `last_seq`"))?))
        }
    }
}

/// An event as one CSV record (see [`csv::record`]).
fn csv_line(event: &EventView) -> String {
    let fields = [
        event.seq.to_string(),
        event.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        event.approval_id.clone(),
        event.run_id.clone(),
        event.index.to_string(),
        event.kind.clone(),
        event.principal.clone(),
        event.data.to_string(),
        event.prev_hash.clone(),
        event.hash.clone(),
    ];
    csv::record(fields.iter().map(String::as_str))
}
