//! Approval rows: what goes in comes back; listing, filters, pages, counts, deletion.

use std::sync::Arc;

use kern::Error;
use kern::approval::{Approval, ApprovalQuery, ApprovalStatus, ApprovalType, ApprovalUpdate, PauseType, SourceType};
use kern::db::Store;
use kern::run::RunStatus;
use serde_json::json;

use crate::fixtures::{approval, create, create_all, ids, listing_order, now, requirement, seconds, stored};

pub async fn every_field_round_trips(store: Arc<dyn Store>) {
    let created_at = now() - seconds(90);
    let mut row = approval("run-ü");
    row.requirements = vec![
        requirement(&row.tool_call_id, PauseType::ExternalExecution, Some(json!({ "type": "object" }))),
        requirement("another call", PauseType::Confirmation, None),
    ];
    row = Approval {
        status: ApprovalStatus::Approved,
        approval_type: ApprovalType::Audit,
        pause_type: PauseType::ExternalExecution,
        source_type: SourceType::Team,
        source_name: Some("équipe 🚀".into()),
        agent_id: Some("agent «A»".into()),
        team_id: Some("team-1".into()),
        user_id: Some("用户-1".into()),
        tool_name: "run_query".into(),
        tool_args: json!({
            "sql": "SELECT 'x' -- \"quoted\" \\ backslash",
            "nested": { "list": [1, -2, 3.5, 1e300, null, true, "ß"], "empty": {} },
            "big": u64::MAX,
            "text": "line\nbreak\ttab \u{1} rtl: עברית, emoji: 👩‍💻",
        }),
        resolution_data: Some(json!({ "result": { "rows": 3 }, "note": "ok ✓" })),
        resolved_by: Some("admin-ä".into()),
        resolved_at: Some(created_at + seconds(30)),
        created_at,
        updated_at: created_at + seconds(31),
        expires_at: Some(created_at + seconds(3600)),
        run_status: RunStatus::Completed,
        ..row
    };
    create(&*store, &row).await;

    assert_eq!(stored(&*store, &row.id).await, row);
    let page = store.list_approvals(&ApprovalQuery::default()).await.unwrap();
    assert_eq!(page.items, [row.clone()]);

    // Optional fields absent come back absent.
    let bare = Approval {
        source_name: None,
        agent_id: None,
        team_id: None,
        user_id: None,
        resolution_data: None,
        expires_at: None,
        requirements: Vec::new(),
        tool_args: json!(null),
        ..approval("run-2")
    };
    create(&*store, &bare).await;
    assert_eq!(stored(&*store, &bare.id).await, bare);
}

pub async fn large_payloads_round_trip(store: Arc<dyn Store>) {
    let mut row = approval("run-1");
    let blob: String = "kern ✓ ".chars().cycle().take(1 << 20).collect();
    let list: Vec<u32> = (0..20_000).collect();
    row.tool_args = json!({ "document": blob, "ids": list });
    row.resolution_data = Some(json!({ "values": { "document": blob } }));
    create(&*store, &row).await;
    assert_eq!(stored(&*store, &row.id).await, row);
}

pub async fn a_duplicate_id_is_refused(store: Arc<dyn Store>) {
    let row = approval("run-1");
    create(&*store, &row).await;
    let twin = Approval { tool_name: "other".into(), ..row.clone() };
    let err = store.save_runs(&[], std::slice::from_ref(&twin), &[]).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(stored(&*store, &row.id).await, row);
}

pub async fn unknown_rows_read_as_none(store: Arc<dyn Store>) {
    assert_eq!(store.get_approval("no-such-id").await.unwrap(), None);
    assert!(!store.delete_approval("no-such-id").await.unwrap());
    let page = store.list_approvals(&ApprovalQuery::default()).await.unwrap();
    assert_eq!((page.items.len(), page.total), (0, 0));
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 0);
}

/// Twelve rows that differ in every filtered field, one field at a time.
fn varied_rows() -> Vec<Approval> {
    let t0 = now() - seconds(1000);
    let base = |n: i64| Approval { created_at: t0 + seconds(n), updated_at: t0 + seconds(n), ..approval("run-1") };
    vec![
        base(0),
        Approval { status: ApprovalStatus::Approved, ..base(1) },
        Approval { status: ApprovalStatus::Rejected, ..base(2) },
        Approval { approval_type: ApprovalType::Audit, ..base(3) },
        Approval { pause_type: PauseType::UserInput, ..base(4) },
        Approval { pause_type: PauseType::ExternalExecution, ..base(5) },
        Approval { source_type: SourceType::Team, team_id: Some("team-1".into()), agent_id: None, ..base(6) },
        Approval { agent_id: Some("agent-2".into()), ..base(7) },
        Approval { user_id: Some("user-2".into()), ..base(8) },
        Approval { user_id: None, ..base(9) },
        Approval { run_id: "run-2".into(), ..base(10) },
        Approval { session_id: "session-2".into(), ..base(11) },
    ]
}

pub async fn every_filter_selects_its_rows(store: Arc<dyn Store>) {
    let rows = varied_rows();
    create_all(&*store, &rows).await;
    let t = |n: usize| rows[n].created_at;
    let q = ApprovalQuery::default;
    let queries = [
        q().status(ApprovalStatus::Pending),
        q().status(ApprovalStatus::Rejected),
        q().status(ApprovalStatus::Expired),
        q().approval_type(ApprovalType::Audit),
        q().approval_type(ApprovalType::Required),
        q().pause_type(PauseType::UserInput),
        q().pause_type(PauseType::Confirmation),
        q().source_type(SourceType::Team),
        q().source_type(SourceType::Agent),
        q().agent_id("agent-2"),
        q().agent_id("agent-1"),
        q().team_id("team-1"),
        q().user_id("user-2"),
        q().user_id("user-1"),
        q().run_id("run-2"),
        q().session_id("session-2"),
        q().created_before(t(3)),
        q().created_after(t(9)),
        q().created_after(t(2)).created_before(t(5)),
        q().status(ApprovalStatus::Pending).user_id("user-1").session_id("session-1").created_after(t(4)),
        q().status(ApprovalStatus::Approved).run_id("run-2"),
    ];
    // Counted by hand from `varied_rows`, so that the filter the memory store applies is not
    // the only judge of itself.
    let mut totals = [10, 1, 0, 1, 11, 1, 10, 1, 11, 1, 10, 1, 1, 10, 1, 1, 3, 3, 3, 5, 0].into_iter();
    for query in queries {
        let expected: Vec<&Approval> = rows.iter().filter(|row| query.matches_at(row, now())).collect();
        assert_eq!(expected.len(), totals.next().unwrap(), "{query:?}");
        let page = store.list_approvals(&query).await.unwrap();
        assert_eq!(ids(&page.items), listing_order(&expected), "{query:?}");
        assert_eq!(page.total, expected.len() as u64, "{query:?}");
    }
}

pub async fn created_bounds_are_exclusive_before_and_inclusive_after(store: Arc<dyn Store>) {
    let rows = varied_rows();
    create_all(&*store, &rows).await;
    let at = rows[5].created_at;
    let before = store.list_approvals(&ApprovalQuery::default().created_before(at)).await.unwrap();
    assert_eq!(before.total, 5);
    assert!(!ids(&before.items).contains(&rows[5].id));
    let after = store.list_approvals(&ApprovalQuery::default().created_after(at)).await.unwrap();
    assert_eq!(after.total, 7);
    assert!(ids(&after.items).contains(&rows[5].id));
    // A bound between two stored microseconds selects as the exact comparison would.
    let just_after = at + chrono::TimeDelta::nanoseconds(500);
    let before = store.list_approvals(&ApprovalQuery::default().created_before(just_after)).await.unwrap();
    assert_eq!(before.total, 6);
    let after = store.list_approvals(&ApprovalQuery::default().created_after(just_after)).await.unwrap();
    assert_eq!(after.total, 6);
}

pub async fn pages_are_stable_when_created_at_ties(store: Arc<dyn Store>) {
    let created_at = now();
    let rows: Vec<Approval> = (0..7).map(|_| Approval { created_at, ..approval("run-1") }).collect();
    let older = Approval { created_at: created_at - seconds(1), ..approval("run-1") };
    create_all(&*store, &rows).await;
    create(&*store, &older).await;

    let mut expected = listing_order(&rows.iter().collect::<Vec<_>>());
    expected.push(older.id.clone());
    let page = |n: u32| ApprovalQuery::default().limit(3u32).page(n);
    let mut seen = Vec::new();
    for (n, size) in [(1, 3), (2, 3), (3, 2), (4, 0)] {
        let result = store.list_approvals(&page(n)).await.unwrap();
        assert_eq!((result.items.len(), result.total), (size, 8), "page {n}");
        seen.extend(ids(&result.items));
    }
    assert_eq!(seen, expected);
    // The same page twice is the same rows; page 0 is page 1; no limit means 50.
    assert_eq!(
        store.list_approvals(&page(2)).await.unwrap().items,
        store.list_approvals(&page(2)).await.unwrap().items
    );
    assert_eq!(ids(&store.list_approvals(&page(0)).await.unwrap().items), expected[..3]);
    assert_eq!(ids(&store.list_approvals(&ApprovalQuery::default()).await.unwrap().items), expected);
    let none = store.list_approvals(&ApprovalQuery::default().limit(0u32)).await.unwrap();
    assert_eq!((none.items.len(), none.total), (0, 8));
}

pub async fn sql_metacharacters_in_filters_are_inert(store: Arc<dyn Store>) {
    let hostile = ["' OR 1=1 --", "x' OR '1'='1", "\"; DROP TABLE kern_approvals; --", "%", "_", "\\", "$1", "?"];
    let plain = approval("run-1");
    let odd: Vec<Approval> =
        hostile.iter().map(|value| Approval { user_id: Some((*value).into()), ..approval(value) }).collect();
    create(&*store, &plain).await;
    create_all(&*store, &odd).await;

    for (value, row) in hostile.iter().zip(&odd) {
        let by_user = store.list_approvals(&ApprovalQuery::default().user_id(*value)).await.unwrap();
        assert_eq!(ids(&by_user.items), [row.id.as_str()], "user_id {value:?}");
        let by_run = store.list_approvals(&ApprovalQuery::default().run_id(*value)).await.unwrap();
        assert_eq!(ids(&by_run.items), [row.id.as_str()], "run_id {value:?}");
        assert_eq!(store.count_pending_approvals(Some(*value)).await.unwrap(), 1, "{value:?}");
        let by_agent = store.list_approvals(&ApprovalQuery::default().agent_id(*value)).await.unwrap();
        assert_eq!(by_agent.total, 0, "agent_id {value:?}");
    }
    assert_eq!(stored(&*store, &plain.id).await, plain);
    assert_eq!(store.list_approvals(&ApprovalQuery::default()).await.unwrap().total, 1 + hostile.len() as u64);
}

pub async fn pending_rows_are_counted_per_user(store: Arc<dyn Store>) {
    let rows = [
        approval("run-1"),
        approval("run-1"),
        Approval { user_id: Some("user-2".into()), ..approval("run-2") },
        Approval { user_id: None, ..approval("run-3") },
        Approval { status: ApprovalStatus::Approved, ..approval("run-4") },
        Approval { status: ApprovalStatus::Expired, user_id: Some("user-2".into()), ..approval("run-5") },
    ];
    create_all(&*store, &rows).await;
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 4);
    assert_eq!(store.count_pending_approvals(Some("user-1")).await.unwrap(), 2);
    assert_eq!(store.count_pending_approvals(Some("user-2")).await.unwrap(), 1);
    assert_eq!(store.count_pending_approvals(Some("nobody")).await.unwrap(), 0);
}

/// The inbox's count (and a listing's total) follows every way a row enters or leaves
/// `pending`, in batches larger than one statement, and leaves out rows past their expiry.
pub async fn the_pending_count_follows_every_way_a_row_leaves_pending(store: Arc<dyn Store>) {
    let at = now();
    let inbox = ApprovalQuery::default().status(ApprovalStatus::Pending);
    let counts = || async {
        let count = store.count_pending_approvals(None).await.unwrap();
        let listed = store.list_approvals(&inbox).await.unwrap();
        assert_eq!(listed.total, count, "the listing's total is the count");
        assert_eq!(listed.items.len() as u64, count.min(50));
        count
    };
    assert_eq!(counts().await, 0);
    let batch: Vec<Approval> = (0..40).map(|_| approval("run-1")).collect();
    let overdue = Approval { expires_at: Some(at - seconds(5)), ..approval("run-2") };
    let later = Approval { expires_at: Some(at + seconds(3600)), ..approval("run-2") };
    let audit = Approval { status: ApprovalStatus::Approved, approval_type: ApprovalType::Audit, ..approval("run-3") };
    create_all(&*store, &batch).await;
    create_all(&*store, &[overdue.clone(), later.clone(), audit]).await;
    assert_eq!(counts().await, 41, "40 + the one expiring later; not the overdue one, not the audit row");

    store.update_approval(&batch[0].id, ApprovalUpdate::approve("admin")).await.unwrap();
    store.update_approval(&batch[1].id, ApprovalUpdate::reject("admin")).await.unwrap();
    assert!(store.delete_approval(&batch[2].id).await.unwrap());
    assert_eq!(counts().await, 38);
    assert!(store.update_approval(&batch[0].id, ApprovalUpdate::reject("admin")).await.is_err());
    assert_eq!(counts().await, 38, "a refused resolution changes nothing");
    assert_eq!(store.expire_approvals(at).await.unwrap(), 1);
    assert_eq!(counts().await, 38, "the overdue row was not counted before its expiry was recorded either");
    assert_eq!(store.count_pending_approvals(Some("user-1")).await.unwrap(), 38);
}

pub async fn delete_cancels_a_pending_row_and_refuses_a_resolved_one(store: Arc<dyn Store>) {
    let (gone, kept, decided) = (approval("run-1"), approval("run-1"), approval("run-1"));
    create_all(&*store, &[gone.clone(), kept.clone(), decided.clone()]).await;
    store.update_approval(&decided.id, ApprovalUpdate::approve("admin")).await.unwrap();

    assert!(store.delete_approval(&gone.id).await.unwrap());
    assert_eq!(stored(&*store, &gone.id).await.status, ApprovalStatus::Cancelled, "the trail keeps every row");
    assert_eq!(stored(&*store, &kept.id).await.status, ApprovalStatus::Pending);
    let err = store.delete_approval(&gone.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { from: ApprovalStatus::Cancelled, .. }), "{err:?}");
    let err = store.delete_approval(&decided.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { from: ApprovalStatus::Approved, .. }), "{err:?}");
    assert!(!store.delete_approval("no-such-row").await.unwrap());
}
