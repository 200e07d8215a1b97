//! What a server follows and pages through: the events of every row in the order they were
//! stored, the tool and expiry filters, and listings paged by cursor.

use std::sync::Arc;

use chrono::TimeDelta;
use kern::approval::{
    Approval, ApprovalPage, ApprovalQuery, ApprovalStatus, ApprovalType, ApprovalUpdate, ListOrder, PageCursor,
};
use kern::db::Store;
use kern::trail::{EventKind, TrailEvent};

use crate::fixtures::{approval, create_all, ids, listing_order, now, seconds};

/// Three rows of two events each, written in turns, so that their events interleave.
async fn rows_with_trails(store: &dyn Store) -> Vec<Approval> {
    let mut audit = approval("run-1");
    audit.approval_type = ApprovalType::Audit;
    audit.status = ApprovalStatus::Approved;
    audit.resolved_by = Some("reviewer".into());
    audit.resolved_at = Some(audit.created_at);
    let rows = vec![approval("run-1"), audit, approval("run-2")];
    create_all(store, &rows[..1]).await;
    create_all(store, &rows[1..]).await;
    store.update_approval(&rows[2].id, ApprovalUpdate::approve("admin")).await.unwrap();
    store.update_approval(&rows[0].id, ApprovalUpdate::reject("admin")).await.unwrap();
    rows
}

/// Every event of every row's trail, in `seq` order.
async fn every_event(store: &dyn Store, rows: &[Approval]) -> Vec<TrailEvent> {
    let mut events = Vec::new();
    for row in rows {
        events.extend(store.trail(&row.id).await.unwrap());
    }
    events.sort_by_key(|event| event.seq);
    events
}

pub async fn events_after_gives_every_event_in_seq_order(store: Arc<dyn Store>) {
    assert!(store.events_after(0, 100).await.unwrap().is_empty());
    let rows = rows_with_trails(&*store).await;
    let expected = every_event(&*store, &rows).await;
    assert_eq!(expected.len(), 6);

    let all = store.events_after(0, 100).await.unwrap();
    assert_eq!(all, expected);
    assert!(all.windows(2).all(|pair| pair[0].seq < pair[1].seq), "in seq order");
    // Stored in turns, the rows' events interleave.
    let kinds: Vec<(&str, EventKind)> = all.iter().map(|event| (event.approval_id.as_str(), event.kind)).collect();
    assert_eq!(kinds.first(), Some(&(rows[0].id.as_str(), EventKind::Created)));
    assert_eq!(kinds.last(), Some(&(rows[0].id.as_str(), EventKind::Rejected)));

    // `after` is exclusive and `limit` caps the answer.
    assert_eq!(store.events_after(all[1].seq, 3).await.unwrap(), all[2..5]);
    assert_eq!(store.events_after(all[4].seq, 100).await.unwrap(), all[5..]);
    assert_eq!(store.events_after(all[0].seq, 1).await.unwrap(), all[1..2]);
    assert!(store.events_after(all[5].seq, 100).await.unwrap().is_empty());
    assert!(store.events_after(0, 0).await.unwrap().is_empty());
}

pub async fn following_events_after_the_last_seq_sees_each_once(store: Arc<dyn Store>) {
    assert_eq!(store.last_event_seq().await.unwrap(), 0);
    let rows = rows_with_trails(&*store).await;
    let (mut seen, mut after) = (Vec::new(), 0);
    loop {
        let batch = store.events_after(after, 4).await.unwrap();
        assert!(batch.len() <= 4);
        let Some(last) = batch.last() else { break };
        after = last.seq;
        seen.extend(batch);
    }
    assert_eq!(seen, every_event(&*store, &rows).await);
    assert_eq!(store.last_event_seq().await.unwrap(), after, "the reader is where the latest event is");

    // Events stored later follow on from where the reader stopped; a refused write stores none.
    store.update_approval(&rows[1].id, ApprovalUpdate::approve("admin")).await.unwrap_err();
    let next = approval("run-3");
    create_all(&*store, std::slice::from_ref(&next)).await;
    let later = store.events_after(after, 4).await.unwrap();
    assert_eq!(later, store.trail(&next.id).await.unwrap());
    assert_eq!(store.last_event_seq().await.unwrap(), later.last().unwrap().seq);
}

pub async fn tool_name_and_expiry_filters_select_their_rows(store: Arc<dyn Store>) {
    let t0 = now();
    let row = |tool: &str, expires_in: Option<i64>| Approval {
        tool_name: tool.into(),
        expires_at: expires_in.map(|s| t0 + seconds(s)),
        ..approval("run-1")
    };
    let rows = vec![
        row("delete_user_data", None),
        row("delete_user_data", Some(-10)),
        row("delete_user_data", Some(60)),
        row("send_invoice", Some(600)),
        row("send_invoice", None),
        row("send_invoice", Some(60)),
    ];
    create_all(&*store, &rows).await;
    let at = rows[2].expires_at.unwrap();
    let q = ApprovalQuery::default;
    let queries = [
        q().tool_name("delete_user_data"),
        q().tool_name("send_invoice"),
        q().tool_name("no_such_tool"),
        q().expires_before(t0),
        q().expires_before(at),
        q().expires_before(at + TimeDelta::nanoseconds(500)),
        q().expires_before(at - TimeDelta::nanoseconds(500)),
        q().expires_before(t0 + seconds(3600)),
        q().tool_name("send_invoice").expires_before(t0 + seconds(120)),
        q().tool_name("delete_user_data").status(ApprovalStatus::Pending).expires_before(t0 + seconds(3600)),
    ];
    let expected_totals = [3, 3, 0, 1, 1, 3, 1, 4, 1, 1];
    for (query, expected_total) in queries.into_iter().zip(expected_totals) {
        let expected: Vec<&Approval> = rows.iter().filter(|row| query.matches_at(row, now())).collect();
        assert_eq!(expected.len(), expected_total, "{query:?}");
        let page = store.list_approvals(&query).await.unwrap();
        assert_eq!(ids(&page.items), listing_order(&expected), "{query:?}");
        assert_eq!(page.total, expected.len() as u64, "{query:?}");
    }
}

/// Seven rows, four of them created at the same time, and one more that the filter leaves out.
async fn seven_rows(store: &dyn Store) -> Vec<Approval> {
    let t0 = now() - seconds(100);
    let at = |n: i64| Approval { created_at: t0 + seconds(n), updated_at: t0 + seconds(n), ..approval("run-1") };
    let rows = vec![at(1), at(5), at(5), at(5), at(5), at(9), at(2)];
    create_all(store, &rows).await;
    create_all(store, &[Approval { tool_name: "other_tool".into(), ..at(5) }]).await;
    rows
}

/// Every page of `query`, each after the last one's cursor, until one comes without.
async fn pages_after_cursors(store: &dyn Store, query: ApprovalQuery) -> Vec<ApprovalPage> {
    let mut pages = vec![store.list_approvals(&query).await.unwrap()];
    while let Some(cursor) = pages.last().unwrap().next_cursor.clone() {
        assert!(pages.len() < 10, "paging ends");
        pages.push(store.list_approvals(&query.clone().after(cursor)).await.unwrap());
    }
    pages
}

pub async fn cursor_pages_visit_every_row_once_in_order(store: Arc<dyn Store>) {
    let rows = seven_rows(&*store).await;
    let query = ApprovalQuery::default().tool_name("delete_user_data").limit(3u32);
    let pages = pages_after_cursors(&*store, query.clone()).await;

    let sizes: Vec<usize> = pages.iter().map(|page| page.items.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert!(pages.iter().all(|page| page.total == 7), "the total counts every page's rows: {pages:?}");
    for page in &pages[..2] {
        assert_eq!(page.next_cursor, Some(query.cursor_after(page.items.last().unwrap())));
    }
    let seen: Vec<String> = pages.iter().flat_map(|page| ids(&page.items)).collect();
    assert_eq!(seen, listing_order(&rows.iter().collect::<Vec<_>>()), "every row once, newest first");

    // A cursor goes through text and back, as a client hands it on.
    let cursor: PageCursor = pages[0].next_cursor.as_ref().unwrap().to_string().parse().unwrap();
    let again = store.list_approvals(&query.clone().after(cursor)).await.unwrap();
    assert_eq!(again, pages[1]);
    // A cursor takes the place of the page number.
    let paged = store.list_approvals(&query.clone().page(3).after(pages[0].next_cursor.clone().unwrap())).await;
    assert_eq!(paged.unwrap(), pages[1]);
}

pub async fn a_cursor_after_the_last_row_gives_an_empty_page_and_the_total(store: Arc<dyn Store>) {
    let rows = seven_rows(&*store).await;
    let query = ApprovalQuery::default().tool_name("delete_user_data").limit(7u32);
    let full = store.list_approvals(&query).await.unwrap();
    assert_eq!(ids(&full.items), listing_order(&rows.iter().collect::<Vec<_>>()));
    let last = full.next_cursor.clone().expect("a full page has a cursor");
    assert_eq!(last, query.cursor_after(full.items.last().unwrap()));

    let past = store.list_approvals(&query.clone().after(last)).await.unwrap();
    assert_eq!((past.items.len(), past.total, past.next_cursor), (0, 7, None));
    let none = store.list_approvals(&ApprovalQuery::default().limit(0u32)).await.unwrap();
    assert_eq!((none.items.len(), none.total, none.next_cursor), (0, 8, None));
}

pub async fn rows_of_the_same_time_follow_a_cursor_by_id(store: Arc<dyn Store>) {
    let rows = seven_rows(&*store).await;
    let mut tied: Vec<&Approval> = rows.iter().filter(|row| row.created_at == rows[1].created_at).collect();
    tied.sort_by(|a, b| b.id.cmp(&a.id));
    let older: Vec<&Approval> = rows.iter().filter(|row| row.created_at < rows[1].created_at).collect();
    let query = ApprovalQuery::default().tool_name("delete_user_data");

    // After the second of the tied rows: the two tied rows of lower ids, then the older rows.
    let after_second = store.list_approvals(&query.clone().after(query.cursor_after(tied[1]))).await.unwrap();
    let mut expected: Vec<String> = tied[2..].iter().map(|row| row.id.clone()).collect();
    expected.extend(listing_order(&older));
    assert_eq!(ids(&after_second.items), expected);
    assert_eq!(after_second.total, 7);

    // A cursor between two stored microseconds: every row created at or before the earlier one.
    let between = PageCursor { at: rows[1].created_at + TimeDelta::nanoseconds(500), id: String::new() };
    let page = store.list_approvals(&query.clone().after(between)).await.unwrap();
    let mut expected: Vec<String> = tied.iter().map(|row| row.id.clone()).collect();
    expected.extend(listing_order(&older));
    assert_eq!(ids(&page.items), expected);
    let between = PageCursor { at: rows[1].created_at - TimeDelta::nanoseconds(500), id: "~".into() };
    let page = store.list_approvals(&query.after(between)).await.unwrap();
    assert_eq!(ids(&page.items), listing_order(&older));
}

pub async fn the_rows_that_expire_are_listed_soonest_first_and_paged(store: Arc<dyn Store>) {
    let base = now();
    let mut rows = Vec::new();
    // Expiring in 5, 1, 3, 1 (a tie, broken by id) and 4 hours; one row never expires.
    for hours in [5, 1, 3, 1, 4] {
        rows.push(Approval { expires_at: Some(base + seconds(3600 * hours)), ..approval("run-exp") });
    }
    rows.push(approval("run-exp"));
    create_all(&*store, &rows).await;
    let query = ApprovalQuery::default().run_id("run-exp").order(ListOrder::ExpiringSoonest).limit(2u32);

    let mut expected: Vec<&Approval> = rows.iter().filter(|row| row.expires_at.is_some()).collect();
    expected.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
    let expected: Vec<String> = expected.iter().map(|row| row.id.clone()).collect();
    let pages = pages_after_cursors(&*store, query.clone()).await;
    assert!(pages.iter().all(|page| page.total == 5), "a row without an expiry is not listed: {pages:?}");
    let seen: Vec<String> = pages.iter().flat_map(|page| ids(&page.items)).collect();
    assert_eq!(seen, expected, "soonest first, ties by id, every row once");
    let first = &pages[0];
    assert_eq!(first.next_cursor, Some(query.cursor_after(first.items.last().unwrap())));
    // The same query newest first lists all six.
    let newest = store.list_approvals(&query.order(ListOrder::Newest).limit(10u32)).await.unwrap();
    assert_eq!(newest.total, 6);
}
