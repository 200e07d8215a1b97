//! What workers read: the decided runs they continue, the stale runs they recover, and the
//! wait that wakes them when the trail grows.

use std::sync::Arc;
use std::time::Duration;

use kern::approval::{Approval, ApprovalUpdate, PageCursor};
use kern::db::Store;
use kern::run::{RunRecord, RunStatus};

use crate::fixtures::{approval, now, run, seconds};
use crate::harness::{Options, SqlTarget};

/// How long a case waits for something that should happen within a second or two.
const PATIENCE: Duration = Duration::from_secs(30);

/// A wait's timeout that no case reaches.
const FOREVER: Duration = Duration::from_secs(3600);

/// `run` saved with `rows` in one write, as a pause does.
async fn paused(store: &dyn Store, run: &RunRecord, rows: &[Approval]) {
    store.save_runs(std::slice::from_ref(run), rows, &[]).await.unwrap();
}

fn row_of(run: &RunRecord) -> Approval {
    approval(&run.run_id)
}

fn run_ids(runs: &[RunRecord]) -> Vec<&str> {
    runs.iter().map(|run| run.run_id.as_str()).collect()
}

pub async fn decided_runs_are_paused_top_level_runs_with_every_row_decided(store: Arc<dyn Store>) {
    // Two rows, decided one at a time.
    let halfway = run("session-1");
    let (first, second) = (row_of(&halfway), row_of(&halfway));
    paused(&*store, &halfway, &[first.clone(), second.clone()]).await;
    // No rows at all: a plain confirmation that only its caller can answer.
    let rowless = run("session-1");
    paused(&*store, &rowless, &[]).await;
    // A row past its expiry is expired, swept or not.
    let lapsed = run("session-1");
    let lapsed_row = Approval { expires_at: Some(now() - seconds(1)), ..row_of(&lapsed) };
    paused(&*store, &lapsed, &[lapsed_row]).await;
    // A team run whose member's row gets rejected: the team run is listed, its member is not.
    let team =
        RunRecord { team_id: Some("team-1".into()), agent_id: None, requirements: Vec::new(), ..run("session-1") };
    let member = RunRecord { parent_run_id: Some(team.run_id.clone()), ..run("session-1") };
    let member_row = row_of(&member);
    paused(&*store, &team, &[]).await;
    paused(&*store, &member, std::slice::from_ref(&member_row)).await;
    // Decided, but no longer paused.
    let finished = run("session-1");
    let finished_row = row_of(&finished);
    paused(&*store, &finished, std::slice::from_ref(&finished_row)).await;
    store.update_approval(&finished_row.id, ApprovalUpdate::approve("admin")).await.unwrap();
    store.save_runs(&[RunRecord { status: RunStatus::Completed, ..finished.clone() }], &[], &[]).await.unwrap();

    let mut expected = vec![lapsed.run_id.as_str()];
    assert_eq!(run_ids(&store.decided_runs(None, 100).await.unwrap()), expected);

    store.update_approval(&first.id, ApprovalUpdate::approve("admin")).await.unwrap();
    assert_eq!(run_ids(&store.decided_runs(None, 100).await.unwrap()), expected, "one row is still pending");
    store.update_approval(&second.id, ApprovalUpdate::reject("admin")).await.unwrap();
    store.update_approval(&member_row.id, ApprovalUpdate::reject("admin")).await.unwrap();
    expected.extend([halfway.run_id.as_str(), team.run_id.as_str()]);
    expected.sort();
    let decided = store.decided_runs(None, 100).await.unwrap();
    assert_eq!(run_ids(&decided), expected);
    assert!(decided.iter().all(|run| run.status == RunStatus::Paused));

    // Paged by run id: `after` is exclusive, `limit` caps the page.
    assert_eq!(run_ids(&store.decided_runs(None, 2).await.unwrap()), expected[..2]);
    assert_eq!(run_ids(&store.decided_runs(Some(expected[0]), 100).await.unwrap()), expected[1..]);
    assert!(store.decided_runs(Some(expected[2]), 100).await.unwrap().is_empty());
}

pub async fn stale_runs_are_top_level_runs_running_since_the_cutoff(store: Arc<dyn Store>) {
    let hour_ago = now() - seconds(3600);
    let abandoned = RunRecord { status: RunStatus::Running, updated_at: hour_ago, ..run("session-1") };
    let older = RunRecord { status: RunStatus::Running, updated_at: hour_ago - seconds(60), ..run("session-1") };
    let busy = RunRecord { status: RunStatus::Running, ..run("session-1") };
    let waiting = RunRecord { updated_at: hour_ago, ..run("session-1") };
    let member = RunRecord { parent_run_id: Some(abandoned.run_id.clone()), ..abandoned.clone() };
    let member = RunRecord { run_id: format!("{}-member", member.run_id), ..member };
    let runs = [abandoned.clone(), older.clone(), busy, waiting, member];
    store.save_runs(&runs, &[], &[]).await.unwrap();

    let stale = store.stale_runs(Duration::from_secs(1800), None, 10).await.unwrap();
    assert_eq!(run_ids(&stale), [older.run_id.as_str(), abandoned.run_id.as_str()], "oldest first");
    let first = store.stale_runs(Duration::from_secs(1800), None, 1).await.unwrap();
    assert_eq!(run_ids(&first), [older.run_id.as_str()]);
    assert!(store.stale_runs(Duration::from_secs(7200), None, 10).await.unwrap().is_empty());
    // A stale time reaching back before the epoch leaves nothing stale.
    assert!(store.stale_runs(Duration::from_secs(u64::MAX / 4), None, 10).await.unwrap().is_empty());
}

/// The cursor of a run: where a page that ended with it reads on.
fn after(run: &RunRecord) -> PageCursor {
    PageCursor { at: run.updated_at, id: run.run_id.clone() }
}

pub async fn stale_runs_page_on_from_the_last_run_read(store: Arc<dyn Store>) {
    let hour_ago = now() - seconds(3600);
    let stale = |run_id: &str, updated_at| RunRecord {
        run_id: run_id.to_owned(),
        status: RunStatus::Running,
        updated_at,
        ..run("session-1")
    };
    // Two written in the same microsecond, told apart by their ids.
    let (tied_a, tied_b, later) =
        (stale("stale-a", hour_ago), stale("stale-b", hour_ago), stale("stale-0", hour_ago + seconds(1)));
    store.save_runs(&[later.clone(), tied_b.clone(), tied_a.clone()], &[], &[]).await.unwrap();
    let stale_after = Duration::from_secs(1800);

    let page = store.stale_runs(stale_after, None, 2).await.unwrap();
    assert_eq!(run_ids(&page), ["stale-a", "stale-b"]);
    let page = store.stale_runs(stale_after, Some(&after(&tied_b)), 2).await.unwrap();
    assert_eq!(run_ids(&page), ["stale-0"]);
    let page = store.stale_runs(stale_after, Some(&after(&tied_a)), 10).await.unwrap();
    assert_eq!(run_ids(&page), ["stale-b", "stale-0"], "a tie is broken by the run id");
    assert!(store.stale_runs(stale_after, Some(&after(&later)), 10).await.unwrap().is_empty());
    // A cursor no listing gives (an id no run can have) reads nothing, without an error.
    let foreign = PageCursor { at: hour_ago, id: "stale\0".to_owned() };
    assert!(store.stale_runs(stale_after, Some(&foreign), 10).await.unwrap().is_empty());
}

/// Waits on the trail, again after each wake-up that brought nothing new (a signal of another
/// change, a listener coming up), until it has grown past `head`; only a wake-up (or the
/// store's poll) ends each wait in time.
async fn grown_past(store: &dyn Store, head: i64) -> i64 {
    loop {
        let last = store.wait_for_events(head, FOREVER).await.unwrap();
        if last > head {
            return last;
        }
    }
}

pub async fn a_follower_of_the_trail_wakes_when_it_grows(store: Arc<dyn Store>) {
    let head = store.last_event_seq().await.unwrap();
    // Nothing new: the wait ends at its timeout with the head as it stands.
    assert_eq!(store.wait_for_events(head, Duration::from_millis(50)).await.unwrap(), head);

    let follower = {
        let store = store.clone();
        tokio::spawn(async move { grown_past(&*store, head).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let row = approval("run-1");
    store.save_runs(&[], std::slice::from_ref(&row), &[]).await.unwrap();
    let grown = tokio::time::timeout(PATIENCE, follower).await.expect("woken before its timeout").unwrap();
    assert!(grown > head);
    assert_eq!(grown, store.last_event_seq().await.unwrap());
    // Already past the mark: at once.
    assert_eq!(store.wait_for_events(head, PATIENCE).await.unwrap(), grown);
}

pub async fn a_decision_through_another_handle_wakes_a_follower(target: SqlTarget) {
    // As a waiter of a row (see `wait`): on Postgres only the announcement may end the wait.
    let following = if target.announces() { Options::default().woken_only() } else { Options::default() };
    let (following, deciding) = (target.open(following).await.unwrap(), target.open(Options::default()).await.unwrap());
    let (store, other) = (following.store(), deciding.store());
    let row = approval("run-1");
    other.save_runs(&[], std::slice::from_ref(&row), &[]).await.unwrap();
    let head = store.last_event_seq().await.unwrap();
    let follower = {
        let store = store.clone();
        tokio::spawn(async move { grown_past(&*store, head).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
    let grown = tokio::time::timeout(PATIENCE, follower).await.expect("woken by the decision").unwrap();
    assert!(grown > head);
    following.close().await;
    deciding.close().await;
}

pub async fn runs_changed_after_follow_writes_in_time_order(store: Arc<dyn Store>) {
    let start = now();
    let older = RunRecord { updated_at: start - seconds(60), ..run("session-1") };
    let first = RunRecord { updated_at: start, ..run("session-1") };
    let member =
        RunRecord { parent_run_id: Some(first.run_id.clone()), updated_at: start + seconds(1), ..run("session-1") };
    store.save_runs(&[older, first.clone(), member.clone()], &[], &[]).await.unwrap();

    let since = |at| PageCursor { at, id: String::new() };
    let changed = store.runs_changed_after(&since(start), 10).await.unwrap();
    assert_eq!(
        run_ids(&changed),
        [first.run_id.as_str(), member.run_id.as_str()],
        "member runs included, in time order"
    );
    assert_eq!(run_ids(&store.runs_changed_after(&since(start), 1).await.unwrap()), [first.run_id.as_str()]);
    // Written again, a run shows once, as it stands now.
    let completed = RunRecord { status: RunStatus::Completed, updated_at: start + seconds(2), ..first.clone() };
    store.save_runs(std::slice::from_ref(&completed), &[], &[]).await.unwrap();
    let changed = store.runs_changed_after(&since(start + seconds(1)), 10).await.unwrap();
    assert_eq!(run_ids(&changed), [member.run_id.as_str(), first.run_id.as_str()]);
    assert_eq!(changed[1].status, RunStatus::Completed);
}

pub async fn runs_changed_alike_are_paged_through_by_their_ids(store: Arc<dyn Store>) {
    // One write stamps several runs with one time (an expiry sweep cancelling them): pages of
    // two go on from the last run read, through all of them, each once.
    let at = now();
    let alike: Vec<RunRecord> =
        (0..5).map(|n| RunRecord { run_id: format!("alike-{n}"), updated_at: at, ..run("session-1") }).collect();
    let later = RunRecord { run_id: "later".into(), updated_at: at + seconds(1), ..run("session-1") };
    store.save_runs(&[alike.clone(), vec![later]].concat(), &[], &[]).await.unwrap();

    let mut cursor = PageCursor { at: at - seconds(1), id: String::new() };
    let mut read = Vec::new();
    loop {
        let page = store.runs_changed_after(&cursor, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = PageCursor { at: last.updated_at, id: last.run_id.clone() };
        read.extend(page.into_iter().map(|run| run.run_id));
    }
    assert_eq!(read, ["alike-0", "alike-1", "alike-2", "alike-3", "alike-4", "later"]);
    // A cursor between two stored times takes what was written after it.
    let between = PageCursor { at: at + chrono::TimeDelta::nanoseconds(500), id: String::new() };
    assert_eq!(run_ids(&store.runs_changed_after(&between, 10).await.unwrap()), ["later"]);
}
