//! Hostile input: what a store could not look up or read back is refused before anything is
//! written, text inside JSON comes back whatever it holds, a lookup by an id no row can have
//! finds nothing, one unreadable row does not take a listing down, and dead pooled connections
//! are replaced without failing the caller.

use std::sync::Arc;
use std::time::Duration;

use kern::Error;
use kern::approval::{
    Approval, ApprovalPolicy, ApprovalQuery, ApprovalStatus, ApprovalUpdate, Decision, OnExpire, PageCursor, PauseType,
    Principal,
};
use kern::db::{PostgresDb, SCHEMA_VERSION, Store};
use kern::keys::{ApiKey, Scope};
use kern::limits::{MAX_JSON_DEPTH, MAX_KEY_LEN};
use kern::models::Message;
use kern::run::{
    Delegation, MemberRef, MemberRun, RunRecord, RunRequirement, RunStatus, ToolCallStatus, ToolExecution,
};
use serde_json::{Map, Value, json};

use crate::fixtures::{
    approval, create, create_all, execution, external_approval, ids, now, run, seconds, stored, user_input_approval,
    with_policy,
};
use crate::harness::{Backend, Options, SqlTarget};

/// A value nesting exactly `depth` levels, arrays and objects in turn.
fn nested(depth: usize) -> Value {
    (1..depth).fold(json!("leaf"), |inner, level| if level % 2 == 0 { json!([inner]) } else { json!({ "k": inner }) })
}

/// A call of the run, with these arguments and this result.
fn call(tool_args: Value, result: Option<Value>) -> ToolExecution {
    ToolExecution {
        tool_call_id: "call-1".into(),
        tool_name: "lookup".into(),
        tool_args,
        status: ToolCallStatus::Succeeded,
        result,
        approval_id: None,
    }
}

/// The field an [`Error::InvalidInput`] names; any other outcome fails the test.
fn refused_field<T: std::fmt::Debug>(result: kern::Result<T>) -> &'static str {
    match result {
        Err(Error::InvalidInput { field, .. }) => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// Asserts that saving `runs` and `rows` is refused naming `field`, and that none was written.
async fn assert_save_refused(store: &dyn Store, runs: &[RunRecord], rows: &[Approval], field: &str) {
    assert_eq!(refused_field(store.save_runs(runs, rows, &[]).await), field);
    for run in runs {
        assert_eq!(store.load_run(&run.run_id).await.unwrap(), None, "{field}: run `{}` written", run.run_id);
    }
    for row in rows {
        assert_eq!(store.get_approval(&row.id).await.unwrap(), None, "{field}: row `{}` written", row.id);
    }
}

pub async fn json_deeper_than_the_limit_is_refused_before_anything_is_written(store: Arc<dyn Store>) {
    let too_deep = || nested(MAX_JSON_DEPTH + 1);
    let paused = run("session-1");
    let row = approval(&paused.run_id);
    let mut deep_requirement = row.clone();
    deep_requirement.requirements[0].tool_execution.tool_args = too_deep();
    let cases = [
        (paused.clone(), Approval { tool_args: too_deep(), ..row.clone() }, "tool_args"),
        (paused.clone(), deep_requirement, "tool_args"),
        (paused.clone(), Approval { resolution_data: Some(too_deep()), ..row.clone() }, "resolution_data"),
        (RunRecord { tools: vec![call(too_deep(), None)], ..paused.clone() }, row.clone(), "tool_args"),
        (RunRecord { tools: vec![call(json!({}), Some(too_deep()))], ..paused.clone() }, row.clone(), "result"),
        (
            RunRecord { metadata: Map::from_iter([("trace".to_owned(), nested(MAX_JSON_DEPTH))]), ..paused.clone() },
            row.clone(),
            "metadata",
        ),
    ];
    for (run, row, field) in cases {
        assert_save_refused(&*store, &[run], &[row], field).await;
    }

    // What the issue saw: resolution data 200 deep, accepted, then unreadable. Refused now,
    // and the row stays pending and listed.
    let pending = [external_approval("run-2"), user_input_approval("run-2")];
    create_all(&*store, &pending).await;
    let deep_result = ApprovalUpdate::approve("admin").with_data(json!({ "result": nested(200) }));
    assert_eq!(refused_field(store.update_approval(&pending[0].id, deep_result).await), "resolution_data");
    let deep_values = ApprovalUpdate::approve("admin").with_data(json!({ "values": { "reason": too_deep() } }));
    assert_eq!(refused_field(store.update_approval(&pending[1].id, deep_values).await), "resolution_data");
    for row in &pending {
        assert_eq!(stored(&*store, &row.id).await, *row);
    }
    assert_eq!(store.list_approvals(&ApprovalQuery::default()).await.unwrap().total, 2);
}

pub async fn json_at_the_limit_round_trips(store: Arc<dyn Store>) {
    let deepest = || nested(MAX_JSON_DEPTH);
    let mut row = external_approval("run-0");
    row.tool_args = deepest();
    row.requirements[0].tool_execution.tool_args = deepest();
    row.requirements[0].external_result = Some(deepest());

    // Each value as deep as allowed, at the deepest place a run's state holds it.
    let member = MemberRef { agent_id: "member".into(), agent_name: None, run_id: "run-member".into() };
    let member_call = RunRequirement::new(call(deepest(), None), PauseType::UserInput, Some(deepest()));
    let mut paused = run("session-1");
    paused.tools = vec![call(deepest(), Some(deepest()))];
    paused.requirements[0].external_result = Some(deepest());
    paused.metadata = Map::from_iter([("trace".to_owned(), nested(MAX_JSON_DEPTH - 1))]);
    paused.approvals = vec![Approval { resolution_data: Some(deepest()), ..row.clone() }];
    paused.delegations = vec![Delegation {
        tool_call_id: "call-0".into(),
        runs: vec![MemberRun { member, status: RunStatus::Paused, content: None, requirements: vec![member_call] }],
    }];
    let row = Approval { run_id: paused.run_id.clone(), ..row };
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();

    assert_eq!(store.load_run(&paused.run_id).await.unwrap().as_ref(), Some(&paused));
    assert_eq!(store.session_runs("session-1", 5).await.unwrap(), [paused.clone()]);
    assert_eq!(stored(&*store, &row.id).await, row);
    assert_eq!(store.list_approvals(&ApprovalQuery::default()).await.unwrap().items, std::slice::from_ref(&row));

    let update = ApprovalUpdate::approve("admin").with_data(json!({ "result": nested(MAX_JSON_DEPTH - 1) }));
    let resolved = store.update_approval(&row.id, update.clone()).await.unwrap();
    assert_eq!(resolved.resolution_data, update.resolution_data);
    assert_eq!(stored(&*store, &row.id).await, resolved);

    let claimed = store.claim_run(&paused.run_id).await.unwrap();
    assert_eq!(claimed, RunRecord { status: RunStatus::Running, updated_at: claimed.updated_at, ..paused });
}

pub async fn a_decision_that_could_not_be_stored_is_refused_and_changes_nothing(store: Arc<dyn Store>) {
    let row = external_approval("run-1");
    create(&*store, &row).await;
    let admin = Principal::new("admin");
    // The result is within the limit, but the row's data wraps it a level deeper.
    let deep = Decision::approve().with_result(nested(MAX_JSON_DEPTH));
    assert_eq!(refused_field(store.decide(&row.id, &admin, deep).await), "resolution_data");
    // A vote's note is text, which Postgres cannot hold with a NUL in it.
    let nul = Decision::Reject { note: Some("before\u{0}after".into()) };
    assert_eq!(refused_field(store.decide(&row.id, &admin, nul).await), "note");
    assert_eq!(stored(&*store, &row.id).await, row, "a refusal changes nothing");
    assert!(store.votes(&row.id).await.unwrap().is_empty());

    let deepest = Decision::approve().with_result(nested(MAX_JSON_DEPTH - 1));
    let approved = store.decide(&row.id, &admin, deepest).await.unwrap();
    assert_eq!(approved.resolution_data, Some(json!({ "result": nested(MAX_JSON_DEPTH - 1) })));
}

pub async fn text_with_nul_inside_json_round_trips(store: Arc<dyn Store>) {
    let nul = "before\u{0}after";
    // Text that merely spells an escape stays that text.
    let spelled = "\\u0000 and \\\\u0000";
    let args = json!({ "path": nul, nul: [nul, spelled], "control": "\u{1}\u{1f}\u{7f}" });

    let mut paused = run("session-1");
    paused.input = nul.into();
    paused.messages.push(Message::user(nul));
    paused.tools = vec![call(args.clone(), Some(json!({ "output": nul })))];
    paused.requirements[0].tool_execution.tool_args = args.clone();
    paused.metadata = Map::from_iter([(nul.to_owned(), json!(spelled))]);
    let mut row = external_approval(&paused.run_id);
    row.tool_args = args.clone();
    row.requirements[0].tool_execution.tool_args = args.clone();
    let input_row = user_input_approval(&paused.run_id);
    store.save_runs(std::slice::from_ref(&paused), &[row.clone(), input_row.clone()], &[]).await.unwrap();

    assert_eq!(store.load_run(&paused.run_id).await.unwrap().as_ref(), Some(&paused));
    assert_eq!(store.session_runs("session-1", 5).await.unwrap(), [paused.clone()]);
    assert_eq!(stored(&*store, &row.id).await, row);

    // Resolution data, and a claim of the run whose state holds it all.
    let result = ApprovalUpdate::approve("admin").with_data(json!({ "result": args, "note": nul }));
    let resolved = store.update_approval(&row.id, result.clone()).await.unwrap();
    assert_eq!(resolved.resolution_data, result.resolution_data);
    assert_eq!(resolved.note(), Some(nul));
    let values = ApprovalUpdate::approve("admin").with_data(json!({ "values": { "reason": nul } }));
    let resolved_input = store.update_approval(&input_row.id, values).await.unwrap();
    assert_eq!(resolved_input.user_input_values().and_then(|v| v.get("reason")), Some(&json!(nul)));
    let page = store.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Approved)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.unreadable.is_empty());

    let claimed = store.claim_run(&paused.run_id).await.unwrap();
    assert_eq!(claimed, RunRecord { status: RunStatus::Running, updated_at: claimed.updated_at, ..paused.clone() });
    let done = RunRecord { status: RunStatus::Completed, content: Some(nul.into()), ..claimed };
    store.save_runs(std::slice::from_ref(&done), &[], &[]).await.unwrap();
    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(done));
}

/// A key `len` bytes long of two-byte characters (and one `x` when `len` is odd), so a limit
/// counted in characters rather than bytes would show.
fn key_of(len: usize) -> String {
    "é".repeat(len / 2) + &"x".repeat(len % 2)
}

pub async fn keys_beyond_the_limits_are_refused_before_anything_is_written(store: Arc<dyn Store>) {
    type SetKey = fn(&mut RunRecord, &mut Approval, String);
    let cases: [(&str, SetKey); 16] = [
        ("id", |_, row, key| row.id = key),
        ("run_id", |_, row, key| row.run_id = key),
        ("session_id", |_, row, key| row.session_id = key),
        ("source_name", |_, row, key| row.source_name = Some(key)),
        ("agent_id", |_, row, key| row.agent_id = Some(key)),
        ("team_id", |_, row, key| row.team_id = Some(key)),
        ("user_id", |_, row, key| row.user_id = Some(key)),
        ("tool_name", |_, row, key| row.tool_name = key),
        ("tool_call_id", |_, row, key| row.tool_call_id = key),
        ("resolved_by", |_, row, key| row.resolved_by = Some(key)),
        ("run_id", |run, _, key| run.run_id = key),
        ("session_id", |run, _, key| run.session_id = key),
        ("user_id", |run, _, key| run.user_id = Some(key)),
        ("agent_id", |run, _, key| run.agent_id = Some(key)),
        ("team_id", |run, _, key| run.team_id = Some(key)),
        ("parent_run_id", |run, _, key| run.parent_run_id = Some(key)),
    ];
    for (field, set) in cases {
        for key in ["with\u{0}nul".to_owned(), key_of(MAX_KEY_LEN + 1), "k".repeat(10 * 1024)] {
            let (mut paused, mut row) = (run("session-1"), approval("run-1"));
            set(&mut paused, &mut row, key);
            // The checks run before the store is touched: nothing of the batch is written.
            let (keep_run, keep_row) = (run("session-1"), approval("run-1"));
            assert_eq!(
                refused_field(store.save_runs(&[keep_run.clone(), paused], &[keep_row.clone(), row], &[]).await),
                field
            );
            assert_eq!(store.load_run(&keep_run.run_id).await.unwrap(), None);
            assert_eq!(store.get_approval(&keep_row.id).await.unwrap(), None);
        }
    }

    let row = approval("run-1");
    create(&*store, &row).await;
    // A resolver is a name given anew: no control character either, on every path (a note-only
    // approval of a confirmation, or a rejection, is stored without reading the row first).
    for resolver in ["admin\u{0}", &key_of(MAX_KEY_LEN + 1), "admin\u{1b}[2J"] {
        assert_eq!(
            refused_field(store.update_approval(&row.id, ApprovalUpdate::approve(resolver)).await),
            "resolved_by"
        );
        assert_eq!(
            refused_field(store.update_approval(&row.id, ApprovalUpdate::reject(resolver)).await),
            "resolved_by"
        );
    }
    assert_eq!(stored(&*store, &row.id).await, row);
}

pub async fn keys_at_the_limit_round_trip(store: Arc<dyn Store>) {
    let key = |tag: char| format!("{tag}{}", key_of(MAX_KEY_LEN - 1));
    let paused = RunRecord {
        run_id: key('r'),
        session_id: key('s'),
        user_id: Some(key('u')),
        agent_id: Some(key('a')),
        team_id: Some(key('t')),
        ..run("unused")
    };
    let row = Approval {
        id: key('i'),
        run_id: paused.run_id.clone(),
        session_id: paused.session_id.clone(),
        source_name: Some(key('n')),
        agent_id: paused.agent_id.clone(),
        team_id: paused.team_id.clone(),
        user_id: paused.user_id.clone(),
        tool_name: key('o'),
        tool_call_id: key('c'),
        ..approval("unused")
    };
    assert_eq!(row.id.len(), MAX_KEY_LEN);
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();

    assert_eq!(store.load_run(&paused.run_id).await.unwrap().as_ref(), Some(&paused));
    assert_eq!(store.session_runs(&paused.session_id, 5).await.unwrap(), std::slice::from_ref(&paused));
    assert_eq!(stored(&*store, &row.id).await, row);
    let query = ApprovalQuery::default()
        .user_id(key('u'))
        .agent_id(key('a'))
        .team_id(key('t'))
        .run_id(key('r'))
        .session_id(key('s'));
    assert_eq!(ids(&store.list_approvals(&query).await.unwrap().items), std::slice::from_ref(&row.id));
    assert_eq!(store.count_pending_approvals(Some(&key('u'))).await.unwrap(), 1);
    let resolved = store.update_approval(&row.id, ApprovalUpdate::approve(key('b'))).await.unwrap();
    assert_eq!(resolved.resolved_by, Some(key('b')));
    assert_eq!(store.claim_run(&paused.run_id).await.unwrap().status, RunStatus::Running);
    let err = store.delete_approval(&row.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { ref id, .. } if *id == row.id), "{err:?}");
}

pub async fn a_lookup_by_an_id_no_row_can_have_finds_nothing(store: Arc<dyn Store>) {
    // Rows to find, so that finding nothing is the store's answer and not an empty table's.
    let paused = run("session-1");
    store.save_runs(std::slice::from_ref(&paused), &[approval(&paused.run_id)], &[]).await.unwrap();

    for id in ["with\u{0}nul".to_owned(), key_of(MAX_KEY_LEN + 1), "k".repeat(10 * 1024)] {
        assert_eq!(store.load_run(&id).await.unwrap(), None);
        assert!(matches!(store.claim_run(&id).await, Err(Error::RunNotFound(found)) if found == id));
        assert!(matches!(store.reclaim_run(&id, Duration::ZERO).await, Err(Error::RunNotFound(found)) if found == id));
        assert!(store.session_runs(&id, 5).await.unwrap().is_empty());
        assert_eq!(store.get_approval(&id).await.unwrap(), None);
        let update = store.update_approval(&id, ApprovalUpdate::approve("admin")).await;
        assert!(matches!(&update, Err(Error::ApprovalNotFound(found)) if *found == id), "{update:?}");
        assert!(!store.delete_approval(&id).await.unwrap());
        assert_eq!(store.count_pending_approvals(Some(&id)).await.unwrap(), 0);
        let wait = store.wait_for_resolution(&id, Duration::from_millis(10)).await;
        assert!(matches!(&wait, Err(Error::ApprovalNotFound(found)) if *found == id), "{wait:?}");
        assert_eq!(store.api_key(&id).await.unwrap(), None);
        assert_eq!(store.revoke_api_key(&id).await.unwrap(), None);
        for query in [
            ApprovalQuery::default().user_id(id.as_str()),
            ApprovalQuery::default().agent_id(id.as_str()),
            ApprovalQuery::default().team_id(id.as_str()),
            ApprovalQuery::default().run_id(id.as_str()),
            ApprovalQuery::default().session_id(id.as_str()),
            ApprovalQuery::default().tool_name(id.as_str()),
        ] {
            let page = store.list_approvals(&query).await.unwrap();
            assert!(page.items.is_empty() && page.unreadable.is_empty() && page.total == 0, "{page:?}");
        }
    }
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 1);
}

pub async fn an_unreadable_row_is_named_and_the_listing_goes_on(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let t0 = now() - seconds(10);
    // Oldest first; the listing gives them newest first.
    let rows: Vec<Approval> = (0..4)
        .map(|n| Approval { created_at: t0 + seconds(n), updated_at: t0 + seconds(n), ..approval("run-1") })
        .collect();
    create_all(&*store, &rows).await;

    // Rows kern did not write: data too deep to read back, and requirements of the wrong shape
    // (written past the guard that keeps a row's call as it was created).
    target.drop_trigger("kern_approvals", "kern_approvals_fixed_call").await;
    let approvals = target.table("kern_approvals");
    let deep = nested(200).to_string();
    target.execute_raw(&format!("UPDATE {approvals} SET resolution_data = '{deep}' WHERE id = '{}'", rows[1].id)).await;
    target.execute_raw(&format!("UPDATE {approvals} SET requirements = '\"none\"' WHERE id = '{}'", rows[2].id)).await;

    for query in [ApprovalQuery::default(), ApprovalQuery::default().status(ApprovalStatus::Pending)] {
        let page = store.list_approvals(&query).await.unwrap();
        assert_eq!(ids(&page.items), [rows[3].id.clone(), rows[0].id.clone()]);
        let unreadable: Vec<&str> = page.unreadable.iter().map(|row| row.id.as_str()).collect();
        assert_eq!(unreadable, [rows[2].id.as_str(), rows[1].id.as_str()]);
        assert!(page.unreadable.iter().all(|row| row.reason.contains("corrupt stored data")), "{page:?}");
        assert_eq!(page.total, 4);
    }
    // Paged, each page names its own.
    let second = store.list_approvals(&ApprovalQuery::default().limit(2).page(2)).await.unwrap();
    assert_eq!(ids(&second.items), [rows[0].id.clone()]);
    assert_eq!(second.unreadable.len(), 1);
    assert_eq!(second.total, 4);
    // Paged by cursor, a page whose last row cannot be read still goes on after it.
    let first = store.list_approvals(&ApprovalQuery::default().limit(2)).await.unwrap();
    assert_eq!((ids(&first.items), first.unreadable[0].id.as_str()), (vec![rows[3].id.clone()], rows[2].id.as_str()));
    let cursor = first.next_cursor.expect("a full page has a cursor");
    assert_eq!(cursor, ApprovalQuery::default().cursor_after(&rows[2]));
    let after = store.list_approvals(&ApprovalQuery::default().limit(2).after(cursor)).await.unwrap();
    assert_eq!((ids(&after.items), after.unreadable[0].id.as_str()), (vec![rows[0].id.clone()], rows[1].id.as_str()));
    assert_eq!(after.total, 4);

    // Read alone, a damaged row says so; the others go on as ever.
    for bad in &rows[1..3] {
        let err = store.get_approval(&bad.id).await.unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    }
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 4);
    store.update_approval(&rows[0].id, ApprovalUpdate::approve("admin")).await.unwrap();
    db.close().await;
}

/// A time past those kern reads (Postgres takes `-infinity` in any `timestamptz`, SQLite any
/// number of microseconds) makes its row unreadable, named so by listings and passed over by the sweep: reading it must not panic.
pub async fn a_time_kern_cannot_read_makes_a_row_unreadable_not_a_panic(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let (endless, plain) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[endless.clone(), plain.clone()]).await;
    target.drop_trigger("kern_approvals", "kern_approvals_fixed_call").await;
    let approvals = target.table("kern_approvals");
    // Past chrono's range at both ends (SQLite keeps any 64-bit count of microseconds).
    let (endless_time, created_time) = match target {
        SqlTarget::Sqlite(_) => (i64::MIN.to_string(), i64::MAX.to_string()),
        SqlTarget::Postgres { .. } => ("'-infinity'".to_owned(), "'infinity'".to_owned()),
    };
    let set =
        |column: &str, time: &str| format!("UPDATE {approvals} SET {column} = {time} WHERE id = '{}'", endless.id);
    target.execute_raw(&set("expires_at", &endless_time)).await;
    target.execute_raw(&set("created_at", &created_time)).await;

    let page = store.list_approvals(&ApprovalQuery::default()).await.unwrap();
    assert_eq!((ids(&page.items), page.unreadable.len()), (vec![plain.id.clone()], 1));
    assert_eq!(page.unreadable[0].id, endless.id);
    store.expire_approvals(now()).await.expect("the sweep goes on past it");
    let err = store.get_approval(&endless.id).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    db.close().await;
}

/// A run whose state this build cannot read (written by a newer one, or altered by hand) is
/// passed over by the listings workers and live streams page through, which go on past it: failing the page
/// would stop every worker's continues, or recoveries, at that run for good.
pub async fn an_unreadable_run_holds_up_no_listing_of_runs(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let decided: Vec<RunRecord> = (0..3).map(|_| run("session-1")).collect();
    let mut sorted = decided.clone();
    sorted.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let hour_ago = now() - seconds(3600);
    let stale: Vec<RunRecord> = (0..3)
        .map(|n| RunRecord { status: RunStatus::Running, updated_at: hour_ago + seconds(n), ..run("session-1") })
        .collect();
    for paused in &decided {
        let row = approval(&paused.run_id);
        store.save_runs(std::slice::from_ref(paused), std::slice::from_ref(&row), &[]).await.unwrap();
        store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
    }
    store.save_runs(&stale, &[], &[]).await.unwrap();
    let runs = target.table("kern_runs");
    for damaged in [&sorted[0].run_id, &stale[0].run_id] {
        target.execute_raw(&format!("UPDATE {runs} SET state = '{{\"x\": 1}}' WHERE run_id = '{damaged}'")).await;
    }

    let listed = store.decided_runs(None, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|run| run.run_id.as_str()).collect();
    assert_eq!(ids, [sorted[1].run_id.as_str(), sorted[2].run_id.as_str()]);
    let first = store.decided_runs(None, 1).await.unwrap();
    assert_eq!(first[0].run_id, sorted[1].run_id, "a page of one goes on past the run it cannot read");
    let stale_after = Duration::from_secs(1800);
    let listed = store.stale_runs(stale_after, None, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|run| run.run_id.as_str()).collect();
    assert_eq!(ids, [stale[1].run_id.as_str(), stale[2].run_id.as_str()]);
    assert_eq!(store.stale_runs(stale_after, None, 1).await.unwrap()[0].run_id, stale[1].run_id);
    // Live streams follow runs' changes past them too.
    let from_start = PageCursor { at: hour_ago - seconds(1), id: String::new() };
    let changed = store.runs_changed_after(&from_start, 100).await.unwrap();
    assert_eq!(changed.len(), 4, "every run but the two that cannot be read");
    assert!(changed.iter().all(|run| run.run_id != sorted[0].run_id && run.run_id != stale[0].run_id));
    // A run whose time cannot be read either: passed over by the listing in id order; one in
    // the order of that time ends at it, as nothing after it can be placed.
    let endless = match target {
        SqlTarget::Sqlite(_) => i64::MAX.to_string(),
        SqlTarget::Postgres { .. } => "'infinity'".to_owned(),
    };
    let timeless = format!("UPDATE {runs} SET updated_at = {endless} WHERE run_id = '{}'", sorted[2].run_id);
    target.execute_raw(&timeless).await;
    let listed = store.decided_runs(None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|run| run.run_id.as_str()).collect::<Vec<_>>(), [sorted[1].run_id.as_str()]);
    store.runs_changed_after(&from_start, 100).await.expect("the listing ends at the run, without failing");
    db.close().await;
}

/// The expiry sweep goes on past a row this build cannot read (it stays pending: its policy is
/// unknown), and the trail check names that row as its broken link rather than failing whole.
pub async fn an_unreadable_row_holds_up_neither_the_expiry_sweep_nor_the_trail_check(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let overdue = |row: Approval| Approval { expires_at: Some(now() - seconds(5)), ..row };
    let (readable, damaged) = (overdue(approval("run-1")), overdue(approval("run-1")));
    create_all(&*store, &[readable.clone(), damaged.clone()]).await;
    // A row whose expiry cancels its run, beside another row of that run that cannot be read.
    let paused = run("session-1");
    let cancelling = ApprovalPolicy::REQUIRED.on_expire(OnExpire::CancelRun);
    let cancelling = overdue(with_policy(approval(&paused.run_id), cancelling));
    let sibling = approval(&paused.run_id);
    store.save_runs(std::slice::from_ref(&paused), &[cancelling.clone(), sibling.clone()], &[]).await.unwrap();
    target.drop_trigger("kern_approvals", "kern_approvals_fixed_call").await;
    let approvals = target.table("kern_approvals");
    for id in [&damaged.id, &sibling.id] {
        target.execute_raw(&format!("UPDATE {approvals} SET requirements = '\"none\"' WHERE id = '{id}'")).await;
    }

    assert_eq!(store.expire_approvals(now()).await.unwrap(), 2);
    assert_eq!(stored(&*store, &cancelling.id).await.status, ApprovalStatus::Expired);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().unwrap().status, RunStatus::Paused, "left as it is");
    assert_eq!(stored(&*store, &readable.id).await.status, ApprovalStatus::Expired);
    let kinds: Vec<_> = store.trail(&readable.id).await.unwrap().into_iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [kern::trail::EventKind::Created, kern::trail::EventKind::Expired]);

    let report = store.verify_trail().await.unwrap();
    let broken = report.broken.expect("the damaged row is named");
    assert_eq!(broken.approval_id, damaged.id);
    assert!(broken.reason.starts_with("the row cannot be read"), "{broken:?}");
    db.close().await;
}

/// A resolution the database cannot take (here, its store closed) is a database error, told
/// apart from "not found" and "conflict", and the row stays as it was.
pub async fn a_resolution_the_database_cannot_take_is_a_database_error(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let row = approval("run-1");
    create(&*db.store(), &row).await;
    db.close().await;
    let err = db.store().update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    let reopened = target.open(Options::default()).await.unwrap();
    assert_eq!(stored(&*reopened.store(), &row.id).await, row, "nothing changed");
    reopened.close().await;
}

/// Checking the trail reads one snapshot and waits for no writer, nor does opening a store
/// whose tables are up to date: on SQLite, another process's write transaction under way does
/// not hold them up.
pub async fn checking_the_trail_waits_for_no_writer(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    create(&*store, &approval("run-1")).await;
    let held = match &target {
        SqlTarget::Sqlite(path) => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("take the write lock");
            Some(conn)
        }
        SqlTarget::Postgres { .. } => None,
    };
    // Checked while the lock is held: a check that waited for the writer would fail, busy,
    // once the time a writer waits for the lock (10 s) is up.
    let report = store.verify_trail().await.expect("the check is not held up by the writer");
    assert_eq!((report.approvals, report.events), (1, 1));
    assert!(report.is_intact(), "{report:?}");
    // Nor is opening tables that are up to date, which writes nothing.
    let reopened = target.open(Options::default().existing_tables_only()).await.expect("opened beside the writer");
    reopened.close().await;
    drop(held);
    db.close().await;
}

/// A decision that waits for the database (another process holds the write lock, or the row)
/// is judged when it is made: past the row's expiry by then, it is refused, and the row stays
/// expired rather than approved after a continue may already have taken it for expired.
pub async fn a_decision_that_waited_past_the_expiry_is_refused(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let expires_at = now() + chrono::TimeDelta::milliseconds(800);
    let row = with_policy(
        Approval { expires_at: Some(expires_at), ..approval("run-1") },
        ApprovalPolicy::REQUIRED.quorum(1).self_approval(false),
    );
    create(&*store, &row).await;
    let held: Box<dyn std::any::Any + Send> = match &target {
        SqlTarget::Sqlite(path) => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("take the write lock");
            Box::new(conn)
        }
        SqlTarget::Postgres { url, .. } => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            let lock = format!("SELECT id FROM {} WHERE id = $1 FOR UPDATE", target.table("kern_approvals"));
            sqlx::query(&lock).bind(&row.id).execute(&mut conn).await.expect("lock the row");
            Box::new(conn)
        }
    };
    let deciding = {
        let (store, id) = (store.clone(), row.id.clone());
        tokio::spawn(async move { store.decide(&id, &Principal::new("olga"), Decision::approve()).await })
    };
    // Asked for before the expiry, it waits past it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!deciding.is_finished(), "the decision waits on the row's lock");
    drop(held);
    let err = deciding.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ApprovalConflict { actual: ApprovalStatus::Expired, .. }), "{err:?}");
    assert_eq!(stored(&*store, &row.id).await.status, ApprovalStatus::Expired);
    db.close().await;
}

/// The expiry sweep reads overdue rows without locking them: a row approved while the sweep
/// waits for it (on Postgres, whose read does not wait for the decision under way) no longer
/// cancels its run.
pub async fn a_row_decided_while_the_sweep_waits_does_not_cancel_its_run(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let paused = run("session-1");
    let policy = ApprovalPolicy::REQUIRED.on_expire(OnExpire::CancelRun);
    let row = Approval { expires_at: Some(now() + seconds(30)), ..with_policy(approval(&paused.run_id), policy) };
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();
    let approve = format!(
        "UPDATE {} SET status = 'approved', resolved_by = 'olga' WHERE id = $1",
        target.table("kern_approvals")
    );
    // The decision, under way: its row locked (Postgres) or the database's write lock (SQLite).
    let mut deciding: Box<dyn std::any::Any + Send> = match &target {
        SqlTarget::Sqlite(path) => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
            sqlx::query(&approve).bind(&row.id).execute(&mut conn).await.unwrap();
            Box::new(conn)
        }
        SqlTarget::Postgres { url, .. } => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query(&approve).bind(&row.id).execute(&mut conn).await.unwrap();
            Box::new(conn)
        }
    };
    // A sweep that takes the row for overdue, as one a minute later would.
    let sweeping = {
        let store = store.clone();
        tokio::spawn(async move { store.expire_approvals(now() + seconds(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sweeping.is_finished(), "the sweep waits on the decision under way");
    if let Some(conn) = deciding.downcast_mut::<sqlx::SqliteConnection>() {
        sqlx::query("COMMIT").execute(conn).await.unwrap();
    }
    if let Some(conn) = deciding.downcast_mut::<sqlx::PgConnection>() {
        sqlx::query("COMMIT").execute(conn).await.unwrap();
    }
    assert_eq!(sweeping.await.unwrap().unwrap(), 0, "nothing was due once the decision committed");
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().unwrap().status, RunStatus::Paused);
    assert_eq!(stored(&*store, &row.id).await.status, ApprovalStatus::Approved);
    db.close().await;
}

/// A caller that stops waiting at any point of a resolution (its transaction begun, its row
/// updated, its event written, its commit sent) leaves each row pending or resolved with its
/// event, never half of it, and the store taking writes: the abandoned connection is closed, or
/// (SQLite in memory) rolled back before it is lent again.
pub async fn an_abandoned_resolution_leaves_each_row_whole_and_the_store_usable(store: Arc<dyn Store>) {
    let rows: Vec<Approval> = (0..48).map(|_| approval("run-1")).collect();
    create_all(&*store, &rows).await;
    for (n, row) in rows.iter().enumerate() {
        let give_up = async {
            for _ in 0..n % 12 {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            biased;
            _ = store.update_approval(&row.id, ApprovalUpdate::approve("admin")) => {}
            () = give_up => {}
        }
    }
    let approved = ApprovalQuery::default().status(ApprovalStatus::Approved);
    let resolved = store.list_approvals(&approved).await.unwrap().total;
    assert_eq!(resolved + store.count_pending_approvals(None).await.unwrap(), 48);
    assert!(store.verify_trail().await.unwrap().is_intact());
    for row in &rows {
        if stored(&*store, &row.id).await.status == ApprovalStatus::Pending {
            store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
        }
    }
    assert_eq!(store.list_approvals(&approved).await.unwrap().total, 48);
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 0);
    assert!(store.verify_trail().await.unwrap().is_intact());
}

/// The first schema version with the trail: rows of older ones have none until they upgrade.
const FIRST_TRAIL_VERSION: i64 = 6;

/// Tables of each older schema version, so that one database holds a store of each.
const OLDER_TABLES: [[&str; 3]; 14] = [
    ["v1_approvals", "v1_runs", "v1_sessions"],
    ["v2_approvals", "v2_runs", "v2_sessions"],
    ["v3_approvals", "v3_runs", "v3_sessions"],
    ["v4_approvals", "v4_runs", "v4_sessions"],
    ["v5_approvals", "v5_runs", "v5_sessions"],
    ["v6_approvals", "v6_runs", "v6_sessions"],
    ["v7_approvals", "v7_runs", "v7_sessions"],
    ["v8_approvals", "v8_runs", "v8_sessions"],
    ["v9_approvals", "v9_runs", "v9_sessions"],
    ["v10_approvals", "v10_runs", "v10_sessions"],
    ["v11_approvals", "v11_runs", "v11_sessions"],
    ["v12_approvals", "v12_runs", "v12_sessions"],
    ["v13_approvals", "v13_runs", "v13_sessions"],
    ["v14_approvals", "v14_runs", "v14_sessions"],
];

pub async fn an_upgrade_from_every_version_keeps_the_rows_and_takes_nul_inside_json(target: SqlTarget) {
    assert_eq!(OLDER_TABLES.len() as i64, SCHEMA_VERSION - 1, "a store of every older version");
    for (version, tables) in (1..).zip(OLDER_TABLES) {
        let old = target.open(Options::default().tables(tables).schema_version(version)).await.unwrap();
        // Rows as that version's builds wrote them.
        let ids = [format!("{}-pending", tables[0]), format!("{}-external", tables[0])];
        if version >= FIRST_TRAIL_VERSION {
            // With their trails, which this build writes as those builds did.
            let rows = [
                Approval { id: ids[0].clone(), ..approval("run-old") },
                Approval { id: ids[1].clone(), ..external_approval("run-old") },
            ];
            create_all(&*old.store(), &rows).await;
            old.close().await;
        } else {
            old.close().await;
            let columns = "id, run_id, session_id, status, approval_type, pause_type, source_type, tool_name, \
                           tool_args, tool_call_id, requirements, created_at, updated_at, run_status";
            let insert = format!(
                "INSERT INTO {{t:{}}} ({columns}) VALUES \
                 ('{}', 'run-old', 'session-old', 'pending', 'required', 'confirmation', 'agent', \
                  'delete_user_data', '{{\"user_id\": \"42\"}}', 'call-1', '[]', {{time}}, {{time}}, 'paused'), \
                 ('{}', 'run-old', 'session-old', 'pending', 'required', 'external_execution', 'agent', \
                  'delete_user_data', '{{\"user_id\": \"43\"}}', 'call-2', '[]', {{time}}, {{time}}, 'paused')",
                tables[0], ids[0], ids[1]
            );
            target.raw(&insert).await.unwrap();
        }

        let db = target.open(Options::default().tables(tables)).await.unwrap();
        assert_eq!(db.schema_version().await, SCHEMA_VERSION, "from version {version}");
        let store = db.store();
        for id in &ids {
            let row = stored(&*store, id).await;
            assert_eq!(
                (row.status, row.run_id.as_str()),
                (ApprovalStatus::Pending, "run-old"),
                "from version {version}"
            );
        }
        // The pending count starts from the rows the upgrade found, and follows them.
        let inbox = ApprovalQuery::default().status(ApprovalStatus::Pending);
        assert_eq!(store.count_pending_approvals(None).await.unwrap(), 2, "from version {version}");
        assert_eq!(store.list_approvals(&inbox).await.unwrap().total, 2, "from version {version}");
        let nul = json!({ "result": "a\u{0}b" });
        let resolved = store.update_approval(&ids[1], ApprovalUpdate::approve("admin").with_data(nul.clone())).await;
        assert_eq!(resolved.unwrap().resolution_data, Some(nul.clone()), "from version {version}");
        assert_eq!(store.count_pending_approvals(None).await.unwrap(), 1, "from version {version}");
        // The trail goes on where it was: a new event is numbered after those stored before.
        let chain = store.trail(&ids[1]).await.unwrap();
        assert!(chain.windows(2).all(|pair| pair[0].seq < pair[1].seq), "from version {version}: {chain:?}");
        assert_eq!(chain.last().map(|event| event.seq), Some(store.last_event_seq().await.unwrap()));
        let next = RunRecord { input: "a\u{0}b".into(), ..run("session-2") };
        let next_row = Approval { tool_args: nul, ..approval(&next.run_id) };
        store.save_runs(std::slice::from_ref(&next), std::slice::from_ref(&next_row), &[]).await.unwrap();
        assert_eq!(store.load_run(&next.run_id).await.unwrap(), Some(next));
        assert_eq!(stored(&*store, &next_row.id).await, next_row);
        assert!(store.verify_trail().await.unwrap().is_intact(), "from version {version}");
        let key = ApiKey::issue("admin", vec!["ops".into()], vec![Scope::Admin]).key;
        store.save_api_key(&key).await.unwrap();
        assert_eq!(store.api_keys().await.unwrap(), [key], "from version {version}");
        db.close().await;
    }
}

/// Ends every session of `application_name` from another connection, as an administrator or a
/// failover would, and waits until they are gone; returns how many there were.
async fn kill_sessions(url: &str, application_name: &str) -> usize {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect to Postgres");
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_all(&mut admin)
        .await
        .expect("find the sessions");
    // A statement of its own: within one, Postgres may call the function before it filters.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM unnest($1::int4[]) AS pid")
        .bind(&pids)
        .execute(&mut admin)
        .await
        .expect("terminate the sessions");
    let gone = async {
        loop {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&pids)
                .fetch_one(&mut admin)
                .await
                .expect("count the sessions left");
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone).await.expect("the terminated sessions end");
    admin.close().await.expect("close the connection");
    pids.len()
}

/// Has `store` open several pooled connections, then ends them all: none it holds is alive.
async fn kill_pooled(store: &dyn Store, url: &str, application_name: &str) {
    let count = || store.count_pending_approvals(None);
    let _ = tokio::join!(count(), count(), count(), count());
    assert!(kill_sessions(url, application_name).await >= 1, "the store had sessions to end");
}

/// A role that may read and write kern's tables, and create nothing, opens a store on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_with_the_rights_to_the_tables_alone() {
    Backend::Postgres
        .run_sql(|target| async move {
            let SqlTarget::Postgres { url, schema } = &target else { unreachable!("a Postgres target") };
            PostgresDb::builder()
                .url(url)
                .schema(schema)
                .build()
                .await
                .expect("the owner creates the tables")
                .close()
                .await;
            let role = format!("{schema}_user");
            for sql in [
                format!("CREATE ROLE \"{role}\" LOGIN"),
                format!("GRANT USAGE ON SCHEMA \"{schema}\" TO \"{role}\""),
                format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{schema}\" TO \"{role}\""),
                format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO \"{role}\""),
            ] {
                target.execute_raw(&sql).await;
            }
            let mut as_role = reqwest::Url::parse(url).expect("the test database's URL");
            as_role.set_username(&role).expect("a URL with a user");
            let opened = PostgresDb::builder().url(as_role.as_str()).schema(schema).create_tables(false).build().await;
            let used = match opened {
                Ok(db) => {
                    let counted = db.count_pending_approvals(None).await;
                    db.close().await;
                    counted.map(drop)
                }
                Err(err) => Err(err),
            };
            for sql in [format!("DROP OWNED BY \"{role}\""), format!("DROP ROLE \"{role}\"")] {
                target.execute_raw(&sql).await;
            }
            used.expect("a role that may only read and write the tables opens the store and reads it");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_connections_are_replaced_without_failing_the_caller() {
    Backend::Postgres
        .run_sql(|target| async move {
            let SqlTarget::Postgres { url, schema } = &target else { unreachable!("a Postgres target") };
            // The store's sessions carry the schema's name, so only they are ended.
            let separator = if url.contains('?') { '&' } else { '?' };
            let named = format!("{url}{separator}application_name={schema}");
            let db = PostgresDb::builder().url(named).schema(schema).build().await.unwrap();
            let store: Arc<dyn Store> = Arc::new(db.clone());
            let kill = || kill_pooled(&*store, url, schema);
            for round in 0..3 {
                let session = format!("session-{round}");
                let paused = run(&session);
                let (row, spare) = (approval(&paused.run_id), approval(&paused.run_id));
                kill().await;
                store
                    .save_runs(std::slice::from_ref(&paused), &[row.clone(), spare.clone()], &[])
                    .await
                    .expect("save_runs");
                kill().await;
                assert_eq!(store.load_run(&paused.run_id).await.expect("load_run"), Some(paused.clone()));
                kill().await;
                assert_eq!(store.get_approval(&row.id).await.expect("get_approval"), Some(row.clone()));
                kill().await;
                let page = store.list_approvals(&ApprovalQuery::default().run_id(paused.run_id.as_str())).await;
                assert_eq!(page.expect("list_approvals").items.len(), 2);
                kill().await;
                assert_eq!(store.count_pending_approvals(Some("user-1")).await.expect("count_pending_approvals"), 2);
                kill().await;
                assert_eq!(store.session_runs(&session, 5).await.expect("session_runs"), std::slice::from_ref(&paused));
                kill().await;
                let approved = store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await;
                let approved = approved.expect("update_approval");
                assert_eq!(approved.status, ApprovalStatus::Approved);
                kill().await;
                let waited = store.wait_for_resolution(&row.id, Duration::from_secs(5)).await;
                assert_eq!(waited.expect("wait_for_resolution").status, ApprovalStatus::Approved);
                kill().await;
                let claimed = store.claim_run(&paused.run_id).await.expect("claim_run");
                kill().await;
                store.reclaim_run(&paused.run_id, Duration::ZERO).await.expect("reclaim_run");
                kill().await;
                let done = RunRecord { status: RunStatus::Completed, ..claimed };
                // Its executed call's event is chained on a head read on the writer's connection.
                let executed = [execution(&approved, true)];
                store.save_runs(std::slice::from_ref(&done), &[], &executed).await.expect("save_runs of the outcome");
                kill().await;
                assert_eq!(store.expire_approvals(now()).await.expect("expire_approvals"), 0);
                kill().await;
                assert!(store.delete_approval(&spare.id).await.expect("delete_approval"));
            }
            db.close().await;
        })
        .await;
}
