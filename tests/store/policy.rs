//! Deciding as a principal: policies, votes, quorum, edits, cancellation, and expiry enforced
//! without a caller.

use std::sync::Arc;

use kern::Error;
use kern::approval::{
    ApprovalPolicy, ApprovalQuery, ApprovalStatus, ApprovalUpdate, Decision, OnExpire, Principal, VoteKind,
};
use kern::db::Store;
use kern::run::{RunRecord, RunStatus};
use kern::trail::EventKind;
use serde_json::json;

use crate::fixtures::{
    approval, create, create_all, external_approval, now, run, seconds, stored, user_input_approval, with_policy,
};

fn finance(id: &str) -> Principal {
    Principal::new(id).with_role("finance")
}

fn kinds(events: &[kern::trail::TrailEvent]) -> Vec<EventKind> {
    events.iter().map(|event| event.kind).collect()
}

pub async fn a_row_with_a_policy_is_decided_only_by_eligible_principals(store: Arc<dyn Store>) {
    let row = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.approvers(["finance", "ops"]));
    create(&*store, &row).await;

    let err = store.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap_err();
    assert!(matches!(err, Error::DecideAsPrincipal { ref id } if *id == row.id), "{err:?}");
    // Nor withdrawn without a principal: its policy names who may cancel it.
    let err = store.delete_approval(&row.id).await.unwrap_err();
    assert!(matches!(err, Error::DecideAsPrincipal { ref id } if *id == row.id), "{err:?}");
    let err = store.decide(&row.id, &Principal::new("mallory").with_role("sales"), Decision::approve()).await;
    let err = err.unwrap_err();
    assert!(matches!(err, Error::NotEligible { ref principal, .. } if principal == "mallory"), "{err:?}");
    assert!(err.to_string().contains("finance, ops"), "{err}");
    assert_eq!(stored(&*store, &row.id).await.status, ApprovalStatus::Pending, "a refusal changes nothing");
    assert!(store.votes(&row.id).await.unwrap().is_empty());

    let approved = store.decide(&row.id, &Principal::new("olga").with_role("ops"), Decision::approve()).await.unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.resolved_by.as_deref(), Some("olga"));
    assert_eq!(approved, stored(&*store, &row.id).await);
    let votes = store.votes(&row.id).await.unwrap();
    assert_eq!((votes.len(), votes[0].principal.as_str(), votes[0].kind), (1, "olga", VoteKind::Approve));
}

pub async fn a_quorum_of_distinct_approvers_approves(store: Arc<dyn Store>) {
    let row = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.approvers(["finance"]).quorum(2));
    create(&*store, &row).await;

    let first = store.decide(&row.id, &finance("fay"), Decision::approve()).await.unwrap();
    assert_eq!(first.status, ApprovalStatus::Pending, "one vote of two");
    assert!(first.updated_at > row.updated_at, "a vote changes the row it does not decide");
    assert_eq!(stored(&*store, &row.id).await, first);
    let err = store.decide(&row.id, &finance("fay"), Decision::approve()).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateVote { ref principal, .. } if principal == "fay"), "{err:?}");
    let second = store.decide(&row.id, &finance("finn"), Decision::approve()).await.unwrap();
    assert_eq!(second.status, ApprovalStatus::Approved);
    assert_eq!(second.resolved_by.as_deref(), Some("finn"));
    assert_eq!(store.votes(&row.id).await.unwrap().len(), 2);
    let err = store.decide(&row.id, &finance("fred"), Decision::approve()).await.unwrap_err();
    assert!(matches!(err, Error::ApprovalConflict { actual: ApprovalStatus::Approved, .. }), "{err:?}");
    let trail = store.trail(&row.id).await.unwrap();
    assert_eq!(kinds(&trail), [EventKind::Created, EventKind::Vote, EventKind::Vote, EventKind::Approved]);
}

pub async fn a_principal_hands_over_values_and_results(store: Arc<dyn Store>) {
    let ops = || ApprovalPolicy::REQUIRED.approvers(["ops"]);
    let (asked, external) =
        (with_policy(user_input_approval("run-1"), ops()), with_policy(external_approval("run-1"), ops()));
    create_all(&*store, &[asked.clone(), external.clone()]).await;
    let olga = Principal::new("olga").with_role("ops");

    let wrong = json!({ "reason": 42 }).as_object().cloned().unwrap();
    let err = store.decide(&asked.id, &olga, Decision::approve().with_values(wrong)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidResolution { ref id, .. } if *id == asked.id), "{err:?}");
    assert_eq!(stored(&*store, &asked.id).await, asked, "a refused decision changes nothing");

    let values = json!({ "reason": "asked" }).as_object().cloned().unwrap();
    let answered = store.decide(&asked.id, &olga, Decision::approve().with_values(values)).await.unwrap();
    assert_eq!(answered.status, ApprovalStatus::Approved);
    assert_eq!(answered.resolution_data, Some(json!({ "values": { "reason": "asked" } })));
    let done = store.decide(&external.id, &olga, Decision::approve().with_result(json!({ "rows": 3 }))).await.unwrap();
    assert_eq!(done.resolution_data, Some(json!({ "result": { "rows": 3 } })));
    assert_eq!(stored(&*store, &external.id).await, done);
    // Values and results belong to an approval: a rejection keeps only its note.
    assert_eq!(Decision::reject("no").with_values(serde_json::Map::new()), Decision::reject("no"));
}

pub async fn a_row_whose_policy_its_call_cannot_honour_is_refused(store: Arc<dyn Store>) {
    for (row, reason) in [
        (with_policy(user_input_approval("run-1"), ApprovalPolicy::REQUIRED.quorum(2)), "a quorum"),
        (with_policy(external_approval("run-1"), ApprovalPolicy::REQUIRED.quorum(2)), "a quorum"),
        (with_policy(external_approval("run-1"), ApprovalPolicy::REQUIRED.allow_edit()), "does not run here"),
    ] {
        let err = store.save_runs(&[], std::slice::from_ref(&row), &[]).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidInput { field: "policy", reason: r } if r.contains(reason)), "{err:?}");
        assert!(store.get_approval(&row.id).await.unwrap().is_none(), "nothing is written");
    }
    // The same policies suit a confirmation.
    let both = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.quorum(2).allow_edit());
    create(&*store, &both).await;
}

pub async fn one_eligible_rejection_rejects(store: Arc<dyn Store>) {
    let row = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.approvers(["finance"]).quorum(3));
    create(&*store, &row).await;
    store.decide(&row.id, &finance("fay"), Decision::approve()).await.unwrap();
    let rejected = store.decide(&row.id, &finance("finn"), Decision::reject("over budget")).await.unwrap();
    assert_eq!(rejected.status, ApprovalStatus::Rejected);
    assert_eq!(rejected.note(), Some("over budget"));
    assert_eq!(rejected.resolved_by.as_deref(), Some("finn"));
}

pub async fn the_runs_user_may_not_decide_where_the_policy_forbids_it(store: Arc<dyn Store>) {
    let forbidding = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.self_approval(false));
    let allowing = approval("run-1");
    create_all(&*store, &[forbidding.clone(), allowing.clone()]).await;
    let requester = Principal::new(forbidding.user_id.clone().unwrap());
    let err = store.decide(&forbidding.id, &requester, Decision::approve()).await.unwrap_err();
    assert!(matches!(err, Error::NotEligible { ref reason, .. } if reason.contains("their own call")), "{err:?}");
    assert_eq!(stored(&*store, &forbidding.id).await.status, ApprovalStatus::Pending, "a refusal changes nothing");
    assert!(store.votes(&forbidding.id).await.unwrap().is_empty(), "nor is a vote counted");
    assert_eq!(
        store.decide(&allowing.id, &requester, Decision::approve()).await.unwrap().status,
        ApprovalStatus::Approved
    );
}

pub async fn of_64_concurrent_voters_exactly_the_quorum_is_counted(store: Arc<dyn Store>) {
    let row = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.approvers(["finance"]).quorum(3));
    create(&*store, &row).await;
    // All start together, so that their reads of the row race their writes.
    let start = Arc::new(tokio::sync::Barrier::new(64));
    let voters = (0..64).map(|n| {
        let (store, id, start) = (store.clone(), row.id.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            store.decide(&id, &finance(&format!("voter-{n}")), Decision::approve()).await
        })
    });
    let mut outcomes = Vec::new();
    for voter in voters.collect::<Vec<_>>() {
        outcomes.push(voter.await.unwrap());
    }
    let counted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(counted, 3, "exactly the quorum is counted");
    for refused in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
        assert!(matches!(refused, Error::ApprovalConflict { actual: ApprovalStatus::Approved, .. }), "{refused:?}");
    }
    let approvals = outcomes.iter().flatten().filter(|row| row.status == ApprovalStatus::Approved).count();
    assert_eq!(approvals, 1, "one vote completes the quorum");
    assert_eq!(store.votes(&row.id).await.unwrap().len(), 3);
    let trail = store.trail(&row.id).await.unwrap();
    assert_eq!(trail.iter().filter(|event| event.kind == EventKind::Approved).count(), 1);
    assert!(store.verify_trail().await.unwrap().is_intact());
}

pub async fn edits_need_allow_edit_and_must_fit_the_schema(store: Arc<dyn Store>) {
    let fixed = approval("run-1");
    let editable = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.allow_edit());
    create_all(&*store, &[fixed.clone(), editable.clone()]).await;
    let admin = Principal::new("admin");

    let edit = Decision::approve().with_args(json!({ "user_id": "43" }));
    let err = store.decide(&fixed.id, &admin, edit.clone()).await.unwrap_err();
    assert!(matches!(err, Error::EditNotAllowed { .. }), "{err:?}");
    let too_long = Decision::approve().with_args(json!({ "user_id": "123456789" }));
    let err = store.decide(&editable.id, &admin, too_long).await.unwrap_err();
    assert!(matches!(err, Error::InvalidResolution { ref reason, .. } if reason.contains("user_id")), "{err:?}");
    assert_eq!(stored(&*store, &editable.id).await.status, ApprovalStatus::Pending);

    let approved = store.decide(&editable.id, &admin, edit).await.unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.tool_args, json!({ "user_id": "42" }), "the row keeps the model's arguments");
    assert_eq!(approved.edited_args(), Some(&json!({ "user_id": "43" })));
    let trail = store.trail(&editable.id).await.unwrap();
    let edited = trail.iter().find(|event| event.kind == EventKind::Edited).expect("an edited event");
    assert_eq!(edited.data, json!({ "from": { "user_id": "42" }, "to": { "user_id": "43" } }));
}

pub async fn a_quorum_counts_approvals_of_the_same_arguments(store: Arc<dyn Store>) {
    let row = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.quorum(2).allow_edit());
    create(&*store, &row).await;
    let edit = || Decision::approve().with_args(json!({ "user_id": "43" }));
    assert_eq!(store.decide(&row.id, &Principal::new("ann"), edit()).await.unwrap().status, ApprovalStatus::Pending);
    let plain = store.decide(&row.id, &Principal::new("ben"), Decision::approve()).await.unwrap();
    assert_eq!(plain.status, ApprovalStatus::Pending, "an approval of the model's arguments is not one of the edit");
    let approved = store.decide(&row.id, &Principal::new("cat"), edit()).await.unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.edited_args(), Some(&json!({ "user_id": "43" })));

    // The model's own arguments given back count with the approvals of the call as it is.
    let row = with_policy(approval("run-2"), ApprovalPolicy::REQUIRED.quorum(2).allow_edit());
    create(&*store, &row).await;
    let as_is = Decision::approve().with_args(row.tool_args.clone());
    assert_eq!(store.decide(&row.id, &Principal::new("ann"), as_is).await.unwrap().status, ApprovalStatus::Pending);
    let approved = store.decide(&row.id, &Principal::new("ben"), Decision::approve()).await.unwrap();
    assert_eq!((approved.status, approved.edited_args()), (ApprovalStatus::Approved, None));
    assert!(!kinds(&store.trail(&row.id).await.unwrap()).contains(&EventKind::Edited), "nothing was edited");
}

pub async fn an_eligible_principal_cancels_a_pending_row(store: Arc<dyn Store>) {
    let row = with_policy(approval("run-1"), ApprovalPolicy::REQUIRED.approvers(["finance"]));
    create(&*store, &row).await;
    let err = store.decide(&row.id, &Principal::new("outsider"), Decision::cancel()).await.unwrap_err();
    assert!(matches!(err, Error::NotEligible { .. }), "{err:?}");
    let cancelled = store.decide(&row.id, &finance("fay"), Decision::cancel()).await.unwrap();
    assert_eq!((cancelled.status, cancelled.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("fay")));
    assert_eq!(kinds(&store.trail(&row.id).await.unwrap()), [EventKind::Created, EventKind::Cancelled]);
}

pub async fn every_resolution_names_who_made_it(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    for status in [ApprovalStatus::Approved, ApprovalStatus::Rejected, ApprovalStatus::Cancelled] {
        let anonymous = ApprovalUpdate { resolved_by: None, status, ..ApprovalUpdate::approve("nobody") };
        let err = store.update_approval(&row.id, anonymous).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "resolved_by", .. }), "{status}: {err:?}");
    }
    assert_eq!(stored(&*store, &row.id).await.status, ApprovalStatus::Pending);
    store.update_approval(&row.id, ApprovalUpdate::reject("admin-7")).await.unwrap();
    let trail = store.trail(&row.id).await.unwrap();
    assert_eq!((trail[1].kind, trail[1].principal.as_str()), (EventKind::Rejected, "admin-7"));
}

pub async fn cancelling_a_run_cancels_the_rows_it_waits_on(store: Arc<dyn Store>) {
    let paused = run("session-1");
    let rows = [approval(&paused.run_id), approval(&paused.run_id)];
    store.save_runs(std::slice::from_ref(&paused), &rows, &[]).await.unwrap();

    let cancelled = store.cancel_run(&paused.run_id, &Principal::new("admin")).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().unwrap().status, RunStatus::Cancelled);
    for row in &rows {
        let row = stored(&*store, &row.id).await;
        assert_eq!((row.status, row.run_status), (ApprovalStatus::Cancelled, RunStatus::Cancelled));
        assert_eq!(row.resolved_by.as_deref(), Some("admin"));
    }
    let err = store.cancel_run(&paused.run_id, &Principal::new("admin")).await.unwrap_err();
    assert!(matches!(err, Error::RunNotPaused { status: RunStatus::Cancelled, .. }), "{err:?}");
    let err = store.cancel_run("no-such-run", &Principal::new("admin")).await.unwrap_err();
    assert!(matches!(err, Error::RunNotFound(_)), "{err:?}");
    assert!(store.verify_trail().await.unwrap().is_intact());
}

/// A run cancelled as a principal withdraws the rows it and its paused members wait on only if
/// the principal may decide every one of them: all or nothing. A row past its expiry is kern's
/// to expire, so its policy does not stand in the way.
pub async fn a_run_is_cancelled_as_a_principal_only_if_every_row_it_withdraws_allows_it(store: Arc<dyn Store>) {
    let team = RunRecord { agent_id: None, team_id: Some("team-1".into()), ..run("session-1") };
    let member =
        RunRecord { parent_run_id: Some(team.run_id.clone()), team_id: Some("team-1".into()), ..run("session-1") };
    let open = approval(&team.run_id);
    let guarded = with_policy(approval(&member.run_id), ApprovalPolicy::REQUIRED.approvers(["finance"]));
    let mut overdue = with_policy(approval(&team.run_id), ApprovalPolicy::REQUIRED.approvers(["legal"]));
    overdue.expires_at = Some(now() - seconds(1));
    let rows = [open.clone(), guarded.clone(), overdue.clone()];
    store.save_runs(&[team.clone(), member.clone()], &rows, &[]).await.unwrap();

    let err = store.cancel_run_as(&team.run_id, &Principal::new("mallory")).await.unwrap_err();
    assert!(matches!(err, Error::NotEligible { ref id, .. } if *id == guarded.id), "{err:?}");
    assert!(err.to_string().contains("finance"), "{err}");
    for run in [&team, &member] {
        assert_eq!(store.load_run(&run.run_id).await.unwrap().unwrap().status, RunStatus::Paused, "nothing changed");
    }
    for row in [&open, &guarded] {
        assert_eq!(stored(&*store, &row.id).await.status, ApprovalStatus::Pending, "nothing changed");
    }
    for row in &rows {
        assert_eq!(kinds(&store.trail(&row.id).await.unwrap()), [EventKind::Created], "nothing changed");
    }

    // Fay may decide every row but the one only legal may, which expired.
    let cancelled = store.cancel_run_as(&team.run_id, &finance("fay")).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(store.load_run(&member.run_id).await.unwrap().unwrap().status, RunStatus::Cancelled);
    for row in [&open, &guarded] {
        let row = stored(&*store, &row.id).await;
        assert_eq!((row.status, row.resolved_by.as_deref()), (ApprovalStatus::Cancelled, Some("fay")));
    }
    assert_eq!(stored(&*store, &overdue.id).await.status, ApprovalStatus::Expired);
    let err = store.cancel_run_as("no-such-run", &finance("fay")).await.unwrap_err();
    assert!(matches!(err, Error::RunNotFound(_)), "{err:?}");
    assert!(store.verify_trail().await.unwrap().is_intact());
}

pub async fn rows_past_their_expiry_are_neither_listed_nor_counted_as_pending(store: Arc<dyn Store>) {
    let mut overdue = approval("run-1");
    overdue.expires_at = Some(now() - seconds(1));
    let open = approval("run-1");
    create_all(&*store, &[overdue.clone(), open.clone()]).await;

    let pending = store.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Pending)).await.unwrap();
    assert_eq!(crate::fixtures::ids(&pending.items), [open.id.as_str()]);
    assert_eq!(pending.total, 1);
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 1);
    let expired = store.list_approvals(&ApprovalQuery::default().status(ApprovalStatus::Expired)).await.unwrap();
    assert_eq!(crate::fixtures::ids(&expired.items), [overdue.id.as_str()]);
    assert_eq!(stored(&*store, &overdue.id).await.status, ApprovalStatus::Expired);
}

pub async fn the_sweep_cancels_the_run_of_a_row_that_says_so(store: Arc<dyn Store>) {
    let paused = run("session-1");
    let policy = ApprovalPolicy::REQUIRED.expires_in(std::time::Duration::from_secs(1)).on_expire(OnExpire::CancelRun);
    let mut overdue = with_policy(approval(&paused.run_id), policy);
    overdue.expires_at = Some(now() - seconds(1));
    let sibling = approval(&paused.run_id);
    store.save_runs(std::slice::from_ref(&paused), &[overdue.clone(), sibling.clone()], &[]).await.unwrap();

    assert_eq!(store.expire_approvals(now()).await.unwrap(), 1);
    assert_eq!(stored(&*store, &overdue.id).await.status, ApprovalStatus::Expired);
    assert_eq!(stored(&*store, &sibling.id).await.status, ApprovalStatus::Cancelled);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().unwrap().status, RunStatus::Cancelled);
    let trail = store.trail(&overdue.id).await.unwrap();
    assert_eq!((trail[1].kind, trail[1].principal.as_str()), (EventKind::Expired, kern::trail::SYSTEM_PRINCIPAL));
}
