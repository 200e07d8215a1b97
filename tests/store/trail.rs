//! The trail: every change of a row is an event of its hash chain, written with the change.

use std::sync::Arc;

use kern::Error;
use kern::approval::{ApprovalStatus, ApprovalType, ApprovalUpdate, Decision, Principal};
use kern::db::Store;
use kern::trail::{EventKind, GENESIS};

use crate::fixtures::{approval, create_all, execution, run};
use crate::harness::{Options, SqlTarget};

pub async fn every_change_is_on_the_trail_in_order_and_verifies(store: Arc<dyn Store>) {
    let paused = run("session-1");
    let (resolved, decided) = (approval(&paused.run_id), approval(&paused.run_id));
    store.save_runs(std::slice::from_ref(&paused), &[resolved.clone(), decided.clone()], &[]).await.unwrap();
    store.update_approval(&resolved.id, ApprovalUpdate::approve("admin")).await.unwrap();
    store.decide(&decided.id, &Principal::new("ops"), Decision::approve()).await.unwrap();
    let done = kern::run::RunRecord { status: kern::run::RunStatus::Completed, ..paused.clone() };
    let executions = [execution(&resolved, true), execution(&decided, false)];
    store.save_runs(std::slice::from_ref(&done), &[], &executions).await.unwrap();

    let trail = store.trail(&resolved.id).await.unwrap();
    let kinds: Vec<EventKind> = trail.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Approved, EventKind::Executed]);
    assert_eq!(trail[0].prev_hash, GENESIS);
    assert_eq!(trail[0].principal, "agent:agent-1");
    assert_eq!(trail[1].principal, "admin");
    for pair in trail.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].index, pair[0].index + 1);
        assert!(pair[1].seq > pair[0].seq);
        assert_eq!(pair[1].hash, pair[1].compute_hash());
    }
    let decided_trail = store.trail(&decided.id).await.unwrap();
    assert_eq!(decided_trail.last().unwrap().kind, EventKind::Failed);

    let report = store.verify_trail().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.approvals, report.events), (2, 7));
    assert!(store.trail("no-such-row").await.unwrap().is_empty());
}

pub async fn an_audit_row_opens_its_trail_with_its_decision(store: Arc<dyn Store>) {
    let mut audit = approval("run-1");
    audit.approval_type = ApprovalType::Audit;
    audit.status = ApprovalStatus::Rejected;
    audit.resolved_by = Some("reviewer".into());
    audit.resolved_at = Some(audit.created_at);
    create_all(&*store, std::slice::from_ref(&audit)).await;
    let trail = store.trail(&audit.id).await.unwrap();
    assert_eq!(trail.iter().map(|event| event.kind).collect::<Vec<_>>(), [EventKind::Created, EventKind::Rejected]);
    assert_eq!(trail[1].principal, "reviewer");
    assert!(store.verify_trail().await.unwrap().is_intact());
}

pub async fn an_execution_is_recorded_on_its_rows_run_and_its_keys_are_checked(store: Arc<dyn Store>) {
    let paused = run("session-1");
    let row = approval(&paused.run_id);
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]).await.unwrap();
    store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
    // An execution naming another run is recorded under its row's, as every event of the chain.
    let elsewhere = kern::trail::Execution { run_id: "another-run".into(), ..execution(&row, true) };
    let unreadable = kern::trail::Execution { principal: "agent\u{0}".into(), ..execution(&row, true) };
    let err = store.save_runs(&[], &[], std::slice::from_ref(&unreadable)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field: "execution.principal", .. }), "{err:?}");
    store.save_runs(&[], &[], &[elsewhere]).await.unwrap();
    let trail = store.trail(&row.id).await.unwrap();
    let kinds: Vec<EventKind> = trail.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Approved, EventKind::Executed], "the refused one wrote nothing");
    assert_eq!(trail.last().unwrap().run_id, row.run_id);
    assert!(store.verify_trail().await.unwrap().is_intact());
}

pub async fn an_execution_of_an_unknown_row_writes_nothing(store: Arc<dyn Store>) {
    let paused = run("session-1");
    let row = approval(&paused.run_id);
    let mut ghost = approval(&paused.run_id);
    ghost.id = "no-such-row".into();
    let err =
        store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[execution(&ghost, true)]).await;
    assert!(matches!(err, Err(Error::ApprovalNotFound(_))), "{err:?}");
    assert_eq!(store.get_approval(&row.id).await.unwrap(), None, "nothing of the batch is written");
    assert_eq!(store.load_run(&paused.run_id).await.unwrap(), None);
}

pub async fn the_database_refuses_to_rewrite_the_trail(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let (pending, decided, voted) = (approval("run-1"), approval("run-1"), approval("run-1"));
    create_all(&*store, &[pending.clone(), decided.clone(), voted.clone()]).await;
    store.update_approval(&decided.id, ApprovalUpdate::approve("admin")).await.unwrap();
    store.decide(&voted.id, &Principal::new("olga"), Decision::approve()).await.unwrap();

    for tampering in [
        "UPDATE {t:kern_approvals_events} SET principal = 'mallory'".to_owned(),
        "DELETE FROM {t:kern_approvals_events}".to_owned(),
        format!("DELETE FROM {{t:kern_approvals}} WHERE id = '{}'", pending.id),
        format!("UPDATE {{t:kern_approvals}} SET status = 'rejected' WHERE id = '{}'", decided.id),
        format!("UPDATE {{t:kern_approvals}} SET resolved_by = 'mallory' WHERE id = '{}'", decided.id),
        format!("UPDATE {{t:kern_approvals}} SET tool_args = '{{}}' WHERE id = '{}'", decided.id),
        format!("UPDATE {{t:kern_approvals}} SET id = 'moved' WHERE id = '{}'", pending.id),
        // Nor a pending row's call or policy: who may decide it is fixed when it is created.
        format!("UPDATE {{t:kern_approvals}} SET principals_only = 1 - principals_only WHERE id = '{}'", pending.id),
        format!("UPDATE {{t:kern_approvals}} SET tool_args = '{{}}' WHERE id = '{}'", pending.id),
        format!("UPDATE {{t:kern_approvals}} SET source_name = 'mallory' WHERE id = '{}'", pending.id),
        format!("UPDATE {{t:kern_approvals}} SET source_name = 'mallory' WHERE id = '{}'", decided.id),
        format!("UPDATE {{t:kern_approvals}} SET agent_id = 'mallory' WHERE id = '{}'", decided.id),
    ] {
        let err = target.raw(&tampering).await.expect_err(&tampering);
        assert!(err.to_string().contains("kern:"), "{tampering}: {err}");
    }
    // Nor removed wholesale, past the triggers of rows: Postgres' TRUNCATE fires none, and
    // SQLite's INSERT OR REPLACE deletes the row it replaces unseen.
    let wholesale = match &target {
        SqlTarget::Postgres { .. } => ["kern_approvals_events", "kern_approvals_votes", "kern_approvals"]
            .map(|table| format!("TRUNCATE {{t:{table}}} CASCADE"))
            .to_vec(),
        SqlTarget::Sqlite(_) => vec![
            format!(
                "INSERT OR REPLACE INTO {{t:kern_approvals}} SELECT * FROM {{t:kern_approvals}} WHERE id = '{}'",
                decided.id
            ),
            "INSERT OR REPLACE INTO {t:kern_approvals_events} SELECT * FROM {t:kern_approvals_events}".to_owned(),
            "INSERT OR REPLACE INTO {t:kern_approvals_votes} SELECT * FROM {t:kern_approvals_votes}".to_owned(),
            format!("UPDATE OR REPLACE {{t:kern_approvals}} SET id = '{}' WHERE id = '{}'", decided.id, pending.id),
        ],
    };
    for tampering in wholesale {
        let err = target.raw(&tampering).await.expect_err(&tampering);
        assert!(err.to_string().contains("kern:"), "{tampering}: {err}");
    }
    // A second event at a place of the chain already taken (a writer that read the same head)
    // is refused: a chain never forks.
    let fork = format!(
        "INSERT INTO {{t:kern_approvals_events}} (approval_id, run_id, idx, kind, principal, at, data, prev_hash, hash) \
         SELECT approval_id, run_id, idx, kind, 'mallory', at, data, prev_hash, hash FROM {{t:kern_approvals_events}} \
         WHERE approval_id = '{}'",
        decided.id
    );
    let err = target.raw(&fork).await.expect_err("a forking event");
    let refusal = err.to_string().to_lowercase();
    assert!(refusal.contains("unique") || refusal.contains("kern:"), "{err}");
    // What a resolved row may still change: the status of its run, kept in step.
    let follow = format!("UPDATE {{t:kern_approvals}} SET run_status = 'completed' WHERE id = '{}'", decided.id);
    target.raw(&follow).await.unwrap();
    assert!(store.verify_trail().await.unwrap().is_intact());
    db.close().await;
}

pub async fn verifying_names_an_edited_row(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let (edited, intact) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[edited.clone(), intact.clone()]).await;
    // Only someone who can drop the database's guard edits a row's call.
    target.drop_trigger("kern_approvals", "kern_approvals_fixed_call").await;
    let edit =
        format!("UPDATE {{t:kern_approvals}} SET tool_args = '{{\"user_id\": \"666\"}}' WHERE id = '{}'", edited.id);
    target.raw(&edit).await.unwrap();

    let broken = store.verify_trail().await.unwrap().broken.expect("the edit is reported");
    assert_eq!((broken.approval_id.as_str(), broken.index), (edited.id.as_str(), 1));
    assert!(broken.reason.contains("differs from the one its created event recorded"), "{}", broken.reason);
    db.close().await;
}

pub async fn verifying_names_a_vote_no_event_records(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let row = approval("run-1");
    create_all(&*store, std::slice::from_ref(&row)).await;
    store.decide(&row.id, &Principal::new("olga"), Decision::approve()).await.unwrap();
    let pending = approval("run-1");
    create_all(&*store, std::slice::from_ref(&pending)).await;
    // A vote written past kern, which would count towards a quorum: the votes table takes inserts.
    let forged = format!(
        "INSERT INTO {{t:kern_approvals_votes}} (approval_id, principal, roles, kind, note, args, at) \
         VALUES ('{}', 'mallory', '[]', 'approve', NULL, NULL, {{time}})",
        pending.id
    );
    target.raw(&forged).await.unwrap();

    let broken = store.verify_trail().await.unwrap().broken.expect("the forged vote is reported");
    assert_eq!(broken.approval_id, pending.id);
    assert!(broken.reason.contains("approve vote of mallory is stored, but no event"), "{}", broken.reason);
    db.close().await;
}

pub async fn verifying_names_a_deleted_event(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let row = approval("run-1");
    create_all(&*store, std::slice::from_ref(&row)).await;
    store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
    // Only someone who can drop the database's guard deletes an event.
    target.drop_trigger("kern_approvals_events", "kern_approvals_events_no_delete").await;
    target
        .raw(&format!("DELETE FROM {{t:kern_approvals_events}} WHERE approval_id = '{}' AND idx = 2", row.id))
        .await
        .unwrap();

    let broken = store.verify_trail().await.unwrap().broken.expect("the deletion is reported");
    assert_eq!(broken.approval_id, row.id);
    assert!(broken.reason.contains("no event of its chain resolved it"), "{}", broken.reason);
    db.close().await;
}

/// An event rewritten in place (its principal, or its link to the one before) is named by its
/// place in its chain: the hashes are what makes the trail tamper-evident.
pub async fn verifying_names_an_altered_event(target: SqlTarget) {
    let db = target.open(Options::default()).await.unwrap();
    let store = db.store();
    let (renamed, relinked) = (approval("run-1"), approval("run-2"));
    create_all(&*store, &[renamed.clone(), relinked.clone()]).await;
    for row in [&renamed, &relinked] {
        store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
    }
    // Only someone who can drop the database's guard rewrites an event.
    target.drop_trigger("kern_approvals_events", "kern_approvals_events_no_update").await;
    let events = "{t:kern_approvals_events}";
    let rename = format!("UPDATE {events} SET principal = 'mallory' WHERE approval_id = '{}' AND idx = 2", renamed.id);
    target.raw(&rename).await.unwrap();
    let broken = store.verify_trail().await.unwrap().broken.expect("the rewritten event is reported");
    assert_eq!((broken.approval_id.as_str(), broken.index), (renamed.id.as_str(), 2));
    assert!(broken.reason.contains("does not match its hash"), "{}", broken.reason);

    // Put back, the trail verifies; an event linked elsewhere is named for its link.
    let restore = format!("UPDATE {events} SET principal = 'admin' WHERE approval_id = '{}' AND idx = 2", renamed.id);
    target.raw(&restore).await.unwrap();
    assert!(store.verify_trail().await.unwrap().is_intact());
    let relink = format!("UPDATE {events} SET prev_hash = hash WHERE approval_id = '{}' AND idx = 2", relinked.id);
    target.raw(&relink).await.unwrap();
    let broken = store.verify_trail().await.unwrap().broken.expect("the relinked event is reported");
    assert_eq!((broken.approval_id.as_str(), broken.index), (relinked.id.as_str(), 2));
    assert!(broken.reason.contains("prev_hash differs"), "{}", broken.reason);
    db.close().await;
}
