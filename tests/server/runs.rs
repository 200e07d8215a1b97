//! The run routes over the router: the reference's form fields (and JSON), its run output, and
//! a continue gated by the stored rows whoever calls it.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use kern::db::Store;
use kern::prelude::*;
use kern::run::{RunRecord, RunStatus};
use serde_json::json;

use crate::harness::App;

pub async fn a_run_pauses_and_continues_once_its_row_is_approved(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let run = app
        .send(
            Method::POST,
            "/agents/ops/runs",
            Some(&app.alice),
            Some(json!("message=refund+order+A-1&stream=false&user_id=mallory")),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
    assert_eq!(run.body["status"], "PAUSED");
    assert_eq!(run.body["agent_id"], "ops");
    assert_eq!(run.body["agent_name"], "Ops Agent");
    assert_eq!(run.body["user_id"], "alice", "the authenticated principal, not the form's user");
    assert!(run.body.get("content").is_none(), "null keys are left out");
    let (run_id, session_id) = (run.body["run_id"].as_str().unwrap(), run.body["session_id"].as_str().unwrap());
    let row = run.body["tools"][0]["approval_id"].as_str().expect("the row's id is stamped on the tool").to_owned();

    let uri = format!("/agents/ops/runs/{run_id}/continue");
    let form = format!("session_id={session_id}&stream=false&tools=");
    let pending = app.send(Method::POST, &uri, Some(&app.alice), Some(json!(form))).await;
    assert_eq!(pending.status, StatusCode::BAD_REQUEST, "{:?}", pending.body);

    let approve = app
        .send(Method::POST, &format!("/approvals/{row}/resolve"), Some(&app.admin), Some(json!({"status": "approved"})))
        .await;
    assert_eq!(approve.status, StatusCode::OK);
    let done = app.send(Method::POST, &uri, Some(&app.alice), Some(json!(form))).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["status"], "COMPLETED");
    assert_eq!(done.body["tools"][0]["result"], "refunded order A-1");
    let approval = &done.body["metadata"]["approval"];
    assert_eq!((approval["id"].as_str(), approval["status"].as_str()), (Some(row.as_str()), Some("approved")));
    assert_eq!(approval["resolved_by"], "root", "the deciding row, as the reference's output carries it");

    // The reference's poll of a run, by its agent (and not by another, nor as a team's).
    let polled = app.send(Method::GET, &format!("/agents/ops/runs/{run_id}"), Some(&app.reader), None).await;
    assert_eq!((polled.status, &polled.body["status"]), (StatusCode::OK, &json!("COMPLETED")), "{:?}", polled.body);
    assert_eq!(polled.body["metadata"]["approval"]["id"], row.as_str());
    for elsewhere in [format!("/agents/other/runs/{run_id}"), format!("/teams/ops/runs/{run_id}")] {
        let refused = app.send(Method::GET, &elsewhere, Some(&app.reader), None).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{elsewhere}");
    }

    let again = app.send(Method::POST, &uri, Some(&app.alice), Some(json!(form))).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a finished run is not continued twice");
    let read = app.send(Method::GET, &format!("/runs/{run_id}"), Some(&app.reader), None).await;
    assert_eq!(read.body["status"], "COMPLETED");
    let row = app.send(Method::GET, &format!("/approvals/{row}"), Some(&app.reader), None).await;
    assert_eq!(row.body["run_status"], "COMPLETED");
}

pub async fn the_row_wins_over_the_callers_answers(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let run = app
        .send(
            Method::POST,
            "/agents/ops/runs",
            Some(&app.alice),
            Some(json!({"message": "refund order A-1", "stream": false})),
        )
        .await;
    let (run_id, session_id) = (run.body["run_id"].as_str().unwrap(), run.body["session_id"].as_str().unwrap());
    let mut tool = run.body["tools"][0].clone();
    tool["confirmed"] = json!(true);
    let body = json!({"session_id": session_id, "stream": false, "tools": [tool]});
    // The reference runs the tool here (its fault): the row is pending, so kern refuses.
    let refused =
        app.send(Method::POST, &format!("/agents/ops/runs/{run_id}/continue"), Some(&app.admin), Some(body)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:?}", refused.body);
    let read = app.send(Method::GET, &format!("/runs/{run_id}"), Some(&app.reader), None).await;
    assert_eq!(read.body["status"], "PAUSED", "the refused continue changed nothing");
    assert!(read.body["tools"][0]["result"].is_null(), "the tool did not run");
}

pub async fn an_audit_call_runs_on_its_callers_answer_and_names_them_on_its_row(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    // Two answers to one call: which stands would be a guess, so neither does.
    let start = json!("message=escalate+ticket+T-1&stream=false");
    let run = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(start)).await;
    let (run_id, session_id) = (run.body["run_id"].as_str().unwrap(), run.body["session_id"].as_str().unwrap());
    let (mut no, mut yes) = (run.body["tools"][0].clone(), run.body["tools"][0].clone());
    (no["confirmed"], yes["confirmed"]) = (json!(false), json!(true));
    let body = json!({"session_id": session_id, "stream": false, "tools": [no, yes]});
    let twice =
        app.send(Method::POST, &format!("/agents/ops/runs/{run_id}/continue"), Some(&app.alice), Some(body)).await;
    assert_eq!(twice.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", twice.body);
    assert!(twice.detail().contains("is answered twice"), "{}", twice.detail());
    let read = app.send(Method::GET, &format!("/runs/{run_id}"), Some(&app.reader), None).await;
    assert_eq!(read.body["status"], "PAUSED", "the refused continue changed nothing");

    let refused = "The call to `escalate_ticket` was rejected by the user.";
    for (confirmed, status, result) in [(true, "approved", "escalated T-1"), (false, "rejected", refused)] {
        let start = json!("message=escalate+ticket+T-1&stream=false");
        let run = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(start)).await;
        assert_eq!(run.body["status"], "PAUSED", "{:?}", run.body);
        let (run_id, session_id) = (run.body["run_id"].as_str().unwrap(), run.body["session_id"].as_str().unwrap());
        let mut tool = run.body["tools"][0].clone();
        tool["confirmed"] = json!(confirmed);
        let body = json!({"session_id": session_id, "stream": false, "tools": [tool]});
        let done =
            app.send(Method::POST, &format!("/agents/ops/runs/{run_id}/continue"), Some(&app.alice), Some(body)).await;
        assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
        assert_eq!(done.body["status"], "COMPLETED");
        assert_eq!(done.body["tools"][0]["result"], result);

        let rows = app.send(Method::GET, &format!("/approvals?run_id={run_id}"), Some(&app.reader), None).await;
        let rows = rows.body["data"].as_array().expect("a page of rows").clone();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["approval_type"], "audit");
        assert_eq!(rows[0]["status"], status);
        assert_eq!(rows[0]["resolved_by"], "alice", "the caller who answered, as authenticated");
    }
}

pub async fn a_scoped_caller_runs_only_in_their_own_sessions(store: Arc<dyn Store>) {
    let app = App::with(store, |builder| builder.user_isolation(true)).await;
    let (_, bobs_session, _) = app.paused_refund("bob").await;
    let (_, alices_session, _) = app.paused_refund("alice").await;
    let into = |session: &str| json!(format!("message=hello&stream=false&session_id={session}"));

    let refused = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(into(&bobs_session))).await;
    assert_eq!((refused.status, refused.detail()), (StatusCode::NOT_FOUND, "Session not found"));
    let streamed = json!(format!("message=hello&session_id={bobs_session}"));
    let refused = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(streamed)).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "refused before any event");
    let bobs = app.send(Method::GET, &format!("/runs?session_id={bobs_session}"), Some(&app.admin), None).await;
    assert_eq!(bobs.body["data"].as_array().map(Vec::len), Some(1), "nothing ran in bob's session");

    let own = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(into(&alices_session))).await;
    assert_eq!((own.status, &own.body["session_id"]), (StatusCode::OK, &json!(alices_session)));
    let fresh = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(into("a-new-session"))).await;
    assert_eq!(fresh.status, StatusCode::OK, "a session nobody has used is the caller's");
    let admin = app.send(Method::POST, "/agents/ops/runs", Some(&app.admin), Some(into(&bobs_session))).await;
    assert_eq!(admin.status, StatusCode::OK, "admins are not scoped");
}

pub async fn run_routes_refuse_what_they_cannot_run(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let unknown =
        app.send(Method::POST, "/agents/nobody/runs", Some(&app.alice), Some(json!("message=hi&stream=false"))).await;
    assert_eq!((unknown.status, unknown.detail()), (StatusCode::NOT_FOUND, "Agent not found"));
    let team = app.send(Method::POST, "/teams/nobody/runs", Some(&app.alice), Some(json!("message=hi"))).await;
    assert_eq!((team.status, team.detail()), (StatusCode::NOT_FOUND, "Team not found"));
    let no_message = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(json!("stream=false"))).await;
    assert_eq!((no_message.status, no_message.detail()), (StatusCode::UNPROCESSABLE_ENTITY, "`message` is required"));
    // A body sent with no type is read as the form: here, an empty one.
    let untyped = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), None).await;
    assert_eq!((untyped.status, untyped.detail()), (StatusCode::UNPROCESSABLE_ENTITY, "`message` is required"));
    let text = app
        .send_with(Method::POST, "/agents/ops/runs", Some(&app.alice), &[("content-type", "text/plain")], None)
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Multipart, as a browser's `FormData` sends it: its text parts are the fields, a file refused.
    let multipart = [("content-type", "multipart/form-data; boundary=kern")];
    let part = |name: &str, extra: &str, value: &str| {
        format!("--kern\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n{value}\r\n")
    };
    let form = format!("{}{}--kern--\r\n", part("message", "", "hello"), part("stream", "", "false"));
    let run = app.send_with(Method::POST, "/agents/ops/runs", Some(&app.alice), &multipart, Some(json!(form))).await;
    assert_eq!((run.status, &run.body["status"]), (StatusCode::OK, &json!("COMPLETED")), "{:?}", run.body);
    let file = format!("{}{}--kern--\r\n", part("message", "", "hi"), part("files", "; filename=\"a.txt\"", "x"));
    let file = app.send_with(Method::POST, "/agents/ops/runs", Some(&app.alice), &multipart, Some(json!(file))).await;
    assert_eq!(file.status, StatusCode::BAD_REQUEST, "{:?}", file.body);
    assert!(file.detail().starts_with("Unsupported file type"), "{:?}", file.body);
    let reader = app.send(Method::POST, "/agents/ops/runs", Some(&app.reader), Some(json!("message=hi"))).await;
    assert_eq!(reader.status, StatusCode::FORBIDDEN);
    // Media types are read whatever their case.
    let shouting = [("content-type", "Application/X-WWW-Form-URLEncoded")];
    let form = json!("message=hi&stream=false");
    let shouted = app.send_with(Method::POST, "/agents/ops/runs", Some(&app.alice), &shouting, Some(form)).await;
    assert_eq!((shouted.status, &shouted.body["status"]), (StatusCode::OK, &json!("COMPLETED")), "{:?}", shouted.body);
    // Text that is not UTF-8 once decoded is refused, not read as U+FFFD (where `%FE` and `%FF`
    // would name one session), and no run starts.
    let before = app.send(Method::GET, "/runs", Some(&app.admin), None).await.body["data"].as_array().unwrap().len();
    for form in ["message=%FF%FE&stream=false", "message=hi&session_id=%C0&stream=false"] {
        let mangled = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(json!(form))).await;
        assert_eq!(mangled.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {:?}", mangled.body);
        assert!(mangled.detail().contains("is not valid UTF-8"), "{form}: {}", mangled.detail());
    }
    let after = app.send(Method::GET, "/runs", Some(&app.admin), None).await.body["data"].as_array().unwrap().len();
    assert_eq!(after, before, "no run started");
    let query = app.send(Method::GET, "/approvals?user_id=%FF", Some(&app.reader), None).await;
    assert_eq!((query.status, query.detail()), (StatusCode::UNPROCESSABLE_ENTITY, "`user_id` is not valid UTF-8"));
    // Path and method errors answer in the body every error has.
    let path = app.send(Method::GET, "/approvals/%FF", Some(&app.reader), None).await;
    assert_eq!(path.status, StatusCode::BAD_REQUEST);
    assert!(path.detail().contains("Invalid UTF-8"), "{:?}", path.body);
    let method = app.send(Method::PUT, "/approvals/x", Some(&app.admin), None).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(method.detail().starts_with("Method Not Allowed"), "{:?}", method.body);
    assert!(method.headers.contains_key("allow"), "{:?}", method.headers);
    // What the reference's fields ask for and kern does not do is refused, not ignored.
    let background = json!("message=hi&stream=false&background=true");
    let background = app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(background)).await;
    assert_eq!(background.status, StatusCode::BAD_REQUEST, "{:?}", background.body);

    let (run_id, session_id, _) = app.paused_refund("alice").await;
    let uri = format!("/agents/ops/runs/{run_id}/continue");
    let no_session = app.send(Method::POST, &uri, Some(&app.alice), Some(json!("stream=false"))).await;
    assert_eq!(
        (no_session.status, no_session.detail()),
        (StatusCode::BAD_REQUEST, "session_id is required for this action")
    );
    let bad_json = app
        .send(Method::POST, &uri, Some(&app.alice), Some(json!(format!("session_id={session_id}&tools=%5B1"))))
        .await;
    assert_eq!((bad_json.status, bad_json.detail()), (StatusCode::BAD_REQUEST, "Invalid JSON in tools field"));
    let missing =
        app.send(Method::POST, "/agents/ops/runs/nope/continue", Some(&app.alice), Some(json!("session_id=s"))).await;
    assert_eq!((missing.status, missing.detail()), (StatusCode::NOT_FOUND, "No runs found for run ID nope"));
    let wrong_session = app.send(Method::POST, &uri, Some(&app.alice), Some(json!("session_id=other"))).await;
    assert_eq!(wrong_session.status, StatusCode::NOT_FOUND);
    let elsewhere = json!(format!("session_id={session_id}&stream=false&continue_from=last_user"));
    let elsewhere = app.send(Method::POST, &uri, Some(&app.alice), Some(elsewhere)).await;
    assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST, "{:?}", elsewhere.body);
    assert!(elsewhere.detail().starts_with("Invalid continue_from"), "{:?}", elsewhere.body);
    let polled = app.send(Method::GET, &format!("/runs/{run_id}"), Some(&app.reader), None).await;
    assert_eq!(polled.body["status"], "PAUSED", "a refused continue changes nothing");
}

/// The frames of a streamed run and continue, in order and numbered (that each is sent as it
/// happens is `live::a_streamed_run_sends_each_event_as_it_happens`'s, over a socket).
pub async fn a_streamed_run_answers_its_events_in_order_and_numbered(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    // `stream` omitted means true, as in the reference.
    let run =
        app.send(Method::POST, "/agents/ops/runs", Some(&app.alice), Some(json!("message=refund+order+A-1"))).await;
    assert_eq!(run.status, StatusCode::OK);
    assert!(run.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = run.body.as_str().expect("an event stream");
    let names: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("event: ")).collect();
    assert_eq!(names, ["RunStarted", "RunPaused"]);
    let paused = text.lines().filter_map(|line| line.strip_prefix("data: ")).nth(1).unwrap();
    let paused: serde_json::Value = serde_json::from_str(paused).unwrap();
    assert_eq!(paused["event"], "RunPaused");
    assert!(paused["tools"][0]["approval_id"].is_string());

    // A refused continue is answered with its status before any event, as without `stream`.
    let (run_id, session_id) = (paused["run_id"].as_str().unwrap(), paused["session_id"].as_str().unwrap());
    let uri = format!("/agents/ops/runs/{run_id}/continue");
    let form = json!(format!("session_id={session_id}"));
    let early = app.send(Method::POST, &uri, Some(&app.alice), Some(form.clone())).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST, "the row is still pending");

    let row = paused["tools"][0]["approval_id"].as_str().unwrap();
    let approve = app
        .send(Method::POST, &format!("/approvals/{row}/resolve"), Some(&app.admin), Some(json!({"status": "approved"})))
        .await;
    assert_eq!(approve.status, StatusCode::OK);
    let done = app.send(Method::POST, &uri, Some(&app.alice), Some(form)).await;
    assert_eq!(done.status, StatusCode::OK);
    let text = done.body.as_str().expect("an event stream");
    let frames: Vec<serde_json::Value> =
        text.lines().filter_map(|line| line.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let mut names: Vec<&str> = frames.iter().map(|frame| frame["event"].as_str().unwrap()).collect();
    // The answer's text comes in as many pieces as the model sends: every other frame once.
    names.dedup_by(|next, last| next == last && *last == "RunContent");
    assert_eq!(names, ["RunContinued", "ToolCallStarted", "ToolCallCompleted", "RunContent", "RunCompleted"]);
    let indexes: Vec<u64> = frames.iter().map(|frame| frame["event_index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..frames.len() as u64).collect::<Vec<_>>(), "a continue numbers its frames");
    assert_eq!(frames[1]["tool"]["tool_name"], "refund_order");
    assert_eq!(
        (frames[2]["tool"]["status"].as_str(), frames[2]["tool"]["tool_call_error"].as_bool()),
        (Some("succeeded"), Some(false))
    );
    let streamed: String =
        frames.iter().filter(|f| f["event"] == "RunContent").map(|f| f["content"].as_str().unwrap()).collect();
    let completed = frames.last().unwrap();
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(completed["content"].as_str(), Some(streamed.as_str()), "the pieces make the answer");
    assert!(completed["metrics"]["output_tokens"].as_u64().is_some_and(|tokens| tokens > 0));
    assert_eq!(done.headers["content-type"], "text/event-stream; charset=utf-8");
    assert!(frames.iter().all(|f| f["run_id"] == run_id && f["agent_id"] == "ops"));
}

/// A team's run and its member's, as a team writes them: each names the team over HTTP, the
/// member its team run too, in a run's output and in the listing; a run that names neither
/// shows neither.
/// A team whose member `ops` (the harness's agent) refunds orders when the leader asks it.
fn support_team(store: Arc<dyn Store>) -> Team {
    let delegate = json!({"member_id": "ops", "task": "refund order A-1"});
    let leader = ScriptedModel::new()
        .when_user_contains("refund", Reply::call("delegate_task_to_member", delegate))
        .after_tool("delegate_task_to_member", Reply::text("The member says: {result}"));
    let member = crate::harness::agent(store.clone());
    Team::builder().id("support").model(leader).member(member).db(store).build().expect("build the team")
}

pub async fn a_team_run_continues_over_http_only_once_its_members_row_is_approved(store: Arc<dyn Store>) {
    let app = App::with(store.clone(), |builder| builder.team(support_team(store))).await;
    let start = json!("message=refund+order+A-1&stream=false");
    let run = app.send(Method::POST, "/teams/support/runs", Some(&app.alice), Some(start)).await;
    assert_eq!((run.status, &run.body["status"]), (StatusCode::OK, &json!("PAUSED")), "{:?}", run.body);
    let (run_id, session_id) = (run.body["run_id"].as_str().unwrap(), run.body["session_id"].as_str().unwrap());
    let row =
        run.body["requirements"][0]["tool_execution"]["approval_id"].as_str().expect("the member's row").to_owned();
    let uri = format!("/teams/support/runs/{run_id}/continue");
    // Every requirement, the team's and its member's, says when it was made, as the reference's
    // do (ISO 8601).
    let member_requirement = &run.body["member_responses"][0]["requirements"][0];
    for requirement in [&run.body["requirements"][0], member_requirement] {
        let created = requirement["created_at"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{requirement:?}");
    }

    // The caller confirms the member's call; its row is pending: refused, nothing changes.
    let mut answer = run.body["requirements"][0].clone();
    answer["confirmation"] = json!(true);
    let confirmed = json!({"session_id": session_id, "stream": false, "requirements": [answer]});
    let refused = app.send(Method::POST, &uri, Some(&app.alice), Some(confirmed)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:?}", refused.body);
    let polled = app.send(Method::GET, &format!("/teams/support/runs/{run_id}"), Some(&app.reader), None).await;
    assert_eq!(polled.body["status"], "PAUSED", "{:?}", polled.body);

    let resolve = json!({"status": "approved"});
    let approved = app.send(Method::POST, &format!("/approvals/{row}/resolve"), Some(&app.admin), Some(resolve)).await;
    assert_eq!(approved.status, StatusCode::OK);
    let form = json!(format!("session_id={session_id}&stream=false&requirements="));
    let done = app.send(Method::POST, &uri, Some(&app.alice), Some(form)).await;
    assert_eq!((done.status, &done.body["status"]), (StatusCode::OK, &json!("COMPLETED")), "{:?}", done.body);
    let member = &done.body["member_responses"][0];
    assert_eq!(member["tools"][0]["result"], "refunded order A-1", "{:?}", done.body);
}

pub async fn a_team_members_run_names_its_team(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (paused, _, _) = app.paused_refund("alice").await;
    let base = store.load_run(&paused).await.unwrap().unwrap();
    let done = |run: RunRecord| RunRecord {
        status: RunStatus::Completed,
        requirements: Vec::new(),
        approvals: Vec::new(),
        content: Some("done".into()),
        ..run
    };
    let team = done(RunRecord {
        run_id: "team-run-1".into(),
        agent_id: None,
        team_id: Some("support".into()),
        member_run_ids: vec!["member-run-1".into()],
        ..base.clone()
    });
    let member = done(RunRecord {
        run_id: "member-run-1".into(),
        team_id: Some("support".into()),
        parent_run_id: Some("team-run-1".into()),
        ..base.clone()
    });
    // Written outside kern, naming neither.
    let unnamed = done(RunRecord { run_id: "unnamed-run-1".into(), agent_id: None, ..base.clone() });
    store.save_runs(&[team, member, unnamed], &[], &[]).await.unwrap();

    let shown = app.send(Method::GET, "/runs/member-run-1", Some(&app.admin), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    assert_eq!(
        (&shown.body["agent_id"], &shown.body["team_id"], &shown.body["parent_run_id"]),
        (&json!(base.agent_id), &json!("support"), &json!("team-run-1"))
    );
    let shown = app.send(Method::GET, "/runs/team-run-1", Some(&app.admin), None).await;
    assert_eq!((shown.body.get("agent_id"), &shown.body["team_id"]), (None, &json!("support")), "{:?}", shown.body);
    let shown = app.send(Method::GET, "/runs/unnamed-run-1", Some(&app.admin), None).await;
    assert_eq!((shown.body.get("agent_id"), shown.body.get("team_id")), (None, None), "{:?}", shown.body);

    let listed = app.send(Method::GET, "/runs?team_id=support&members=true", Some(&app.admin), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let teams: Vec<(&str, &str, Option<&str>)> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| (run["run_id"].as_str().unwrap(), run["team_id"].as_str().unwrap(), run["parent_run_id"].as_str()))
        .collect();
    assert_eq!(teams.len(), 2, "{teams:?}");
    assert!(teams.contains(&("member-run-1", "support", Some("team-run-1"))), "{teams:?}");
    assert!(teams.contains(&("team-run-1", "support", None)), "{teams:?}");
}
