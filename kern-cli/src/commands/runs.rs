//! `kern runs`: list and show runs, cancel a paused one, and hand one whose continue died back
//! to the next continue (`recover`).

use kern_core::run::RunQuery;
use serde_json::{Value, json};

use crate::cli::{RunFilters, RunsCommand};
use crate::exit::{Failure, Outcome};
use crate::http::segment;
use crate::output::{Colour, Table, given, or_dash, plain, printable, time};
use crate::target::{Context, Target};
use crate::view::{Page, RunView};

pub async fn run(command: RunsCommand, ctx: &Context) -> Outcome {
    match command {
        RunsCommand::List(filters) => list(ctx, &filters).await,
        RunsCommand::Show { id } => {
            let run = match &ctx.target {
                Target::Database(db) => RunView::from(
                    &db.store()
                        .load_run(&id)
                        .await?
                        .ok_or_else(|| Failure::not_found(format!("run `{id}` not found")))?,
                ),
                Target::Server(client) => {
                    RunView::from_wire(&client.get(&format!("/runs/{}", segment(&id)?), &[]).await?)?
                }
            };
            show(ctx, &run)
        }
        RunsCommand::Cancel { id } => {
            let (run, by) = match &ctx.target {
                Target::Database(db) => {
                    let principal = ctx.principal("runs cancel")?;
                    (RunView::from(&db.store().cancel_run_as(&id, principal).await?), Some(principal.id.as_str()))
                }
                Target::Server(client) => {
                    let cancelled = client.post(&format!("/runs/{}/cancel", segment(&id)?), &json!({})).await?;
                    (RunView::from_wire(&cancelled)?, None)
                }
            };
            if ctx.out.json {
                return ctx.out.json_line(&run);
            }
            let by = by.map(|principal| format!(" by {}", printable(principal))).unwrap_or_default();
            ctx.out.line(&format!("run {} cancelled{by}, with every row it waited on", printable(&run.run_id)))
        }
        RunsCommand::Recover { id, stale_after } => {
            let run = match &ctx.target {
                Target::Database(db) => RunView::from(&db.store().release_stale_run(&id, stale_after).await?),
                Target::Server(client) => {
                    let body = json!({ "stale_after_seconds": stale_after.as_secs() });
                    RunView::from_wire(&client.post(&format!("/runs/{}/release", segment(&id)?), &body).await?)?
                }
            };
            if ctx.out.json {
                return ctx.out.json_line(&run);
            }
            ctx.out.line(&format!(
                "run {} was left running for longer than {}: it is paused again, and the next continue (the \
                 application's, or a worker's) takes it and decides its calls from their rows",
                printable(&run.run_id),
                duration_text(stale_after)
            ))
        }
    }
}

/// A duration as `--stale-after` takes it: in the largest unit that divides it.
fn duration_text(duration: std::time::Duration) -> String {
    match duration.as_secs() {
        seconds if seconds > 0 && seconds % 3600 == 0 => format!("{}h", seconds / 3600),
        seconds if seconds > 0 && seconds % 60 == 0 => format!("{}m", seconds / 60),
        seconds => format!("{seconds}s"),
    }
}

async fn list(ctx: &Context, filters: &RunFilters) -> Outcome {
    let page = match &ctx.target {
        Target::Database(db) => {
            let query = RunQuery {
                status: filters.status,
                agent_id: filters.owner.agent.clone(),
                team_id: filters.owner.team.clone(),
                user_id: filters.owner.user.clone(),
                session_id: filters.session.clone(),
                members: filters.members,
                after: filters.page.cursor.clone(),
                limit: Some(filters.page.limit),
            };
            let page = db.store().list_runs(&query).await?;
            Page {
                items: page.items.iter().map(RunView::from).collect(),
                next_cursor: page.next_cursor.map(|cursor| cursor.to_string()),
            }
        }
        Target::Server(client) => {
            let texts = [
                ("status", filters.status.map(|status| status.to_string())),
                ("agent_id", filters.owner.agent.clone()),
                ("team_id", filters.owner.team.clone()),
                ("user_id", filters.owner.user.clone()),
                ("session_id", filters.session.clone()),
                ("members", filters.members.then(|| "true".to_owned())),
                ("limit", Some(filters.page.limit.to_string())),
                ("cursor", filters.page.cursor.as_ref().map(ToString::to_string)),
            ];
            let query: Vec<(&str, String)> =
                texts.into_iter().filter_map(|(key, value)| value.map(|value| (key, value))).collect();
            let body = client.get("/runs", &query).await?;
            let runs = body.get("data").and_then(Value::as_array);
            let runs = runs.ok_or_else(|| Failure::error("the server answered a listing without `data`"))?;
            Page {
                items: runs.iter().map(RunView::from_wire).collect::<Outcome<_>>()?,
                next_cursor: body.get("next_cursor").and_then(Value::as_str).map(str::to_owned),
            }
        }
    };
    if ctx.out.json {
        return ctx.out.json_line(&page);
    }
    let mut table = Table::new(&["RUN", "STATUS", "AGENT/TEAM", "USER", "SESSION", "WAITING ON", "CREATED", "UPDATED"]);
    for run in &page.items {
        table.row(vec![
            plain(&run.run_id),
            (run.status.clone(), Colour::of_status(&run.status)),
            plain(or_dash(run.agent_id.as_deref().or(run.team_id.as_deref()))),
            plain(or_dash(run.user_id.as_deref())),
            plain(&run.session_id),
            plain(run.waiting_on.len().to_string()),
            plain(or_dash(run.created_at.map(time).as_deref())),
            plain(or_dash(run.updated_at.map(time).as_deref())),
        ]);
    }
    let mut args = given(&[
        ("status", filters.status.map(|status| status.to_string())),
        ("agent", filters.owner.agent.clone()),
        ("team", filters.owner.team.clone()),
        ("user", filters.owner.user.clone()),
        ("session", filters.session.clone()),
        ("limit", Some(filters.page.limit.to_string())),
    ]);
    if filters.members {
        args.push("--members".to_owned());
    }
    ctx.out.page(&table, "no runs", &args, page.next_cursor.as_deref())
}

fn show(ctx: &Context, run: &RunView) -> Outcome {
    if ctx.out.json {
        return ctx.out.json_line(run);
    }
    ctx.out.fields(&[
        ("run", run.run_id.clone(), None),
        ("status", run.status.clone(), Colour::of_status(&run.status)),
        ("session", run.session_id.clone(), None),
        ("agent", or_dash(run.agent_id.as_deref()), None),
        ("team", or_dash(run.team_id.as_deref()), None),
        ("team run", or_dash(run.parent_run_id.as_deref()), None),
        ("user", or_dash(run.user_id.as_deref()), None),
        ("waiting on", if run.waiting_on.is_empty() { "-".to_owned() } else { run.waiting_on.join(", ") }, None),
        ("answer", or_dash(run.content.as_deref()), None),
        ("created", or_dash(run.created_at.map(time).as_deref()), None),
        ("updated", or_dash(run.updated_at.map(time).as_deref()), None),
    ])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration_text;

    #[test]
    fn durations_read_as_they_were_given() {
        assert_eq!(duration_text(Duration::from_secs(600)), "10m");
        assert_eq!(duration_text(Duration::from_secs(7200)), "2h");
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }
}
