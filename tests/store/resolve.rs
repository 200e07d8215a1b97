//! Resolving rows: the compare-and-set, the errors that tell why an update did not apply,
//! expiry and resolution data.

use std::sync::Arc;

use kern::Error;
use kern::approval::{Approval, ApprovalStatus, ApprovalUpdate};
use kern::db::Store;
use kern::trail::{self, EventKind};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::fixtures::{approval, create, create_all, external_approval, now, seconds, stored, user_input_approval};

pub async fn resolving_returns_the_stored_row(store: Arc<dyn Store>) {
    let (first, second) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[first.clone(), second.clone()]).await;
    let before = now();

    // Given to the nanosecond, kept to the microsecond, as every backend keeps times.
    let resolved_at = now() - seconds(5) + chrono::TimeDelta::nanoseconds(789);
    let note = json!({ "note": "checked with the user" });
    let update = ApprovalUpdate::approve("admin-1").with_data(note.clone());
    let resolved =
        store.update_approval(&first.id, ApprovalUpdate { resolved_at: Some(resolved_at), ..update }).await.unwrap();
    assert_eq!(resolved, stored(&*store, &first.id).await);
    let expected = Approval {
        status: ApprovalStatus::Approved,
        resolved_by: Some("admin-1".into()),
        resolved_at: Some(chrono::SubsecRound::trunc_subsecs(resolved_at, 6)),
        resolution_data: Some(note),
        updated_at: resolved.updated_at,
        ..first
    };
    assert_eq!(resolved, expected);
    assert!(resolved.updated_at >= before);

    // Without a time or an expected status, the store stamps the resolution itself.
    let update = ApprovalUpdate {
        expected_status: None,
        status: ApprovalStatus::Rejected,
        resolved_by: Some("admin-2".into()),
        resolved_at: None,
        resolution_data: None,
    };
    let rejected = store.update_approval(&second.id, update).await.unwrap();
    assert_eq!(rejected, stored(&*store, &second.id).await);
    assert_eq!(rejected.status, ApprovalStatus::Rejected);
    assert_eq!(rejected.resolved_at, Some(rejected.updated_at));
    assert!(rejected.updated_at >= before);
}

pub async fn of_64_racing_resolvers_exactly_one_wins(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    let start = Arc::new(Barrier::new(64));
    let racers: Vec<_> = (0..64)
        .map(|n| {
            let (store, start, id) = (store.clone(), start.clone(), row.id.clone());
            tokio::spawn(async move {
                let admin = format!("admin-{n}");
                let update = if n % 2 == 0 { ApprovalUpdate::approve(admin) } else { ApprovalUpdate::reject(admin) };
                start.wait().await;
                store.update_approval(&id, update).await
            })
        })
        .collect();
    let (mut winners, mut losers) = (Vec::new(), Vec::new());
    for racer in racers {
        match racer.await.unwrap() {
            Ok(row) => winners.push(row),
            Err(err) => losers.push(err),
        }
    }

    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &winners[0];
    assert_eq!(losers.len(), 63);
    for err in &losers {
        assert!(
            matches!(err, Error::ApprovalConflict { id, expected: ApprovalStatus::Pending, actual }
                if *id == row.id && *actual == winner.status),
            "{err:?}"
        );
    }
    assert_eq!(&stored(&*store, &row.id).await, winner);
    // The losers wrote nothing: the trail holds the row's creation and the one decision.
    let kinds: Vec<EventKind> = store.trail(&row.id).await.unwrap().iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [EventKind::Created, trail::resolution_kind(winner.status).unwrap()]);
    assert!(store.verify_trail().await.unwrap().is_intact());
}

pub async fn a_second_resolution_is_refused(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    let approved = store.update_approval(&row.id, ApprovalUpdate::approve("admin-1")).await.unwrap();

    let err = store.update_approval(&row.id, ApprovalUpdate::reject("admin-2")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ApprovalConflict { expected: ApprovalStatus::Pending, actual: ApprovalStatus::Approved, .. }
        ),
        "{err:?}"
    );
    // Without a compare-and-set the lifecycle still forbids it.
    let blind = ApprovalUpdate { expected_status: None, ..ApprovalUpdate::reject("admin-2") };
    let err = store.update_approval(&row.id, blind).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { from: ApprovalStatus::Approved, to: ApprovalStatus::Rejected, .. }),
        "{err:?}"
    );
    assert_eq!(stored(&*store, &row.id).await, approved);
    let kinds: Vec<EventKind> = store.trail(&row.id).await.unwrap().iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Approved], "the refused resolutions left no event");
}

pub async fn an_unknown_id_is_not_found(store: Arc<dyn Store>) {
    for update in [
        ApprovalUpdate::approve("admin"),
        ApprovalUpdate { expected_status: None, ..ApprovalUpdate::reject("admin") },
        ApprovalUpdate::approve("admin").with_data(json!({ "values": {} })),
    ] {
        let err = store.update_approval("no-such-id", update).await.unwrap_err();
        assert!(matches!(&err, Error::ApprovalNotFound(id) if id == "no-such-id"), "{err:?}");
    }
}

pub async fn nothing_goes_back_to_pending(store: Arc<dyn Store>) {
    let (pending, resolved) = (approval("run-1"), approval("run-1"));
    create_all(&*store, &[pending.clone(), resolved.clone()]).await;
    let resolved = store.update_approval(&resolved.id, ApprovalUpdate::approve("admin")).await.unwrap();
    let to_pending = |expected_status| ApprovalUpdate {
        expected_status,
        status: ApprovalStatus::Pending,
        resolved_by: None,
        resolved_at: None,
        resolution_data: None,
    };

    let err = store.update_approval(&pending.id, to_pending(Some(ApprovalStatus::Pending))).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { from: ApprovalStatus::Pending, to: ApprovalStatus::Pending, .. }),
        "{err:?}"
    );
    let err = store.update_approval(&resolved.id, to_pending(None)).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { from: ApprovalStatus::Approved, to: ApprovalStatus::Pending, .. }),
        "{err:?}"
    );
    assert_eq!(stored(&*store, &pending.id).await, pending);
    assert_eq!(stored(&*store, &resolved.id).await, resolved);
}

pub async fn an_unexpected_status_is_a_conflict(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    let update = ApprovalUpdate { expected_status: Some(ApprovalStatus::Approved), ..ApprovalUpdate::reject("admin") };
    let err = store.update_approval(&row.id, update).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ApprovalConflict { expected: ApprovalStatus::Approved, actual: ApprovalStatus::Pending, .. }
        ),
        "{err:?}"
    );
    assert_eq!(stored(&*store, &row.id).await, row);
}

pub async fn expire_approvals_marks_and_counts_overdue_rows(store: Arc<dyn Store>) {
    let at = now();
    let expiring = |offset| Approval { expires_at: Some(at + seconds(offset)), ..approval("run-1") };
    let overdue = [expiring(-60), expiring(-1), expiring(0)];
    let current = [expiring(3600), approval("run-1"), Approval { status: ApprovalStatus::Rejected, ..expiring(-60) }];
    create_all(&*store, &overdue).await;
    create_all(&*store, &current).await;

    assert_eq!(store.expire_approvals(at).await.unwrap(), 3);
    for row in &overdue {
        let expected = Approval { status: ApprovalStatus::Expired, updated_at: at, ..row.clone() };
        assert_eq!(stored(&*store, &row.id).await, expected);
    }
    for row in &current {
        assert_eq!(&stored(&*store, &row.id).await, row);
    }
    assert_eq!(store.expire_approvals(at).await.unwrap(), 0);
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 2);

    // More than a database store sweeps in one transaction: every one, all the same.
    let many: Vec<Approval> = (0..600).map(|_| expiring(-5)).collect();
    create_all(&*store, &many).await;
    assert_eq!(store.expire_approvals(at).await.unwrap(), 600);
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 2);
}

pub async fn a_row_past_its_expiry_cannot_be_resolved(store: Arc<dyn Store>) {
    let row = Approval { expires_at: Some(now() - seconds(1)), ..approval("run-1") };
    create(&*store, &row).await;
    for update in
        [ApprovalUpdate::approve("admin"), ApprovalUpdate { expected_status: None, ..ApprovalUpdate::reject("admin") }]
    {
        let status = update.status;
        let err = store.update_approval(&row.id, update).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidTransition { from: ApprovalStatus::Expired, to, .. } if to == status),
            "{err:?}"
        );
    }
    // Read back as expired, though the sweep has yet to mark it.
    assert_eq!(stored(&*store, &row.id).await, Approval { status: ApprovalStatus::Expired, ..row.clone() });
    assert_eq!(store.expire_approvals(now()).await.unwrap(), 1);
}

pub async fn invalid_user_input_is_refused_and_the_row_stays_pending(store: Arc<dyn Store>) {
    let row = user_input_approval("run-1");
    create(&*store, &row).await;
    for data in [json!({ "values": { "reason": 42 } }), json!({ "reason": ["not", "text"] }), json!("just text")] {
        let update = ApprovalUpdate::approve("admin").with_data(data.clone());
        let err = store.update_approval(&row.id, update).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidResolution { id, .. } if *id == row.id), "{data}: {err:?}");
        assert_eq!(stored(&*store, &row.id).await, row, "{data}");
    }

    let values = json!({ "values": { "reason": "requested by the user" } });
    let approved =
        store.update_approval(&row.id, ApprovalUpdate::approve("admin").with_data(values.clone())).await.unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.resolution_data, Some(values));
    assert_eq!(stored(&*store, &row.id).await, approved);
}

/// Asserts that each of `refused` is refused as resolution data of `update` on `row`, which
/// stays as it was.
async fn assert_refused(store: &dyn Store, row: &Approval, update: &ApprovalUpdate, refused: &[Value]) {
    for data in refused {
        let err = store.update_approval(&row.id, update.clone().with_data(data.clone())).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidResolution { id, .. } if *id == row.id), "{data}: {err:?}");
        assert_eq!(&stored(store, &row.id).await, row, "{data}");
    }
}

pub async fn a_confirmation_is_approved_with_nothing_but_a_note(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    let refused = [
        json!(42),
        json!("x"),
        json!(null),
        json!({ "values": { "reason": "x" } }),
        json!({ "result": 1 }),
        json!({ "note": 5 }),
        json!({ "note": "checked", "by": "me" }),
    ];
    assert_refused(&*store, &row, &ApprovalUpdate::approve("admin"), &refused).await;

    let note = json!({ "note": "checked with the user" });
    let approved =
        store.update_approval(&row.id, ApprovalUpdate::approve("admin").with_data(note.clone())).await.unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.resolution_data, Some(note));
    assert_eq!(stored(&*store, &row.id).await, approved);
}

pub async fn a_rejection_of_any_pause_type_carries_nothing_but_a_note(store: Arc<dyn Store>) {
    let rows = [approval("run-1"), user_input_approval("run-1"), external_approval("run-1")];
    create_all(&*store, &rows).await;
    let refused = [json!({ "values": { "reason": "x" } }), json!({ "result": 1 }), json!("no"), json!({ "note": 5 })];
    for row in &rows {
        assert_refused(&*store, row, &ApprovalUpdate::reject("admin"), &refused).await;
        let note = json!({ "note": "not now" });
        let rejected =
            store.update_approval(&row.id, ApprovalUpdate::reject("admin").with_data(note.clone())).await.unwrap();
        assert_eq!(rejected.status, ApprovalStatus::Rejected, "{:?}", row.pause_type);
        assert_eq!(rejected.resolution_data, Some(note));
        assert_eq!(stored(&*store, &row.id).await, rejected);
    }
}

pub async fn user_input_and_external_results_take_an_optional_note_and_nothing_else(store: Arc<dyn Store>) {
    let (wrapped, flat, external) =
        (user_input_approval("run-1"), user_input_approval("run-1"), external_approval("run-1"));
    create_all(&*store, &[wrapped.clone(), flat.clone(), external.clone()]).await;
    let approve = ApprovalUpdate::approve("admin");
    assert_refused(&*store, &wrapped, &approve, &[json!({ "values": { "reason": "x" }, "extra": 1 })]).await;
    assert_refused(&*store, &external, &approve, &[json!({ "result": 1, "extra": 2 }), json!({ "note": "done" })])
        .await;

    for (row, data) in [
        (&wrapped, json!({ "values": { "reason": "asked" }, "note": "ok" })),
        (&flat, json!({ "reason": "asked" })),
        (&external, json!({ "result": { "rows": 3 }, "note": "done" })),
    ] {
        let approved = store.update_approval(&row.id, approve.clone().with_data(data.clone())).await.unwrap();
        assert_eq!(approved.status, ApprovalStatus::Approved, "{data}");
        assert_eq!(approved.resolution_data, Some(data));
        assert_eq!(stored(&*store, &row.id).await, approved);
    }
}
