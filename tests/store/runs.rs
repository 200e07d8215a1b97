//! Runs: saved with their approval rows in one transaction, claimed exactly once, reclaimed
//! or released exactly once when a claim goes stale, listed per session and by filters.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kern::Error;
use kern::approval::{Approval, ApprovalQuery, ApprovalStatus, ApprovalUpdate, PageCursor};
use kern::db::Store;
use kern::run::{RunQuery, RunRecord, RunStatus};
use tokio::sync::Barrier;

use crate::fixtures::{approval, create, execution, now, run, seconds, stored};
use crate::harness::unique_name;

pub async fn saved_runs_load_back(store: Arc<dyn Store>) {
    let first = run("session-1");
    let child =
        RunRecord { parent_run_id: Some(first.run_id.clone()), team_id: Some("team-1".into()), ..run("session-1") };
    store.save_runs(&[first.clone(), child.clone()], &[], &[]).await.unwrap();
    assert_eq!(store.load_run(&first.run_id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.load_run(&child.run_id).await.unwrap(), Some(child));
    assert_eq!(store.load_run("no-such-run").await.unwrap(), None);

    // Saving again replaces the state.
    let done = RunRecord {
        status: RunStatus::Completed,
        content: Some("Deleted: ✓".into()),
        updated_at: first.updated_at + seconds(3),
        ..first
    };
    store.save_runs(std::slice::from_ref(&done), &[], &[]).await.unwrap();
    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(done));
}

pub async fn a_finished_run_reads_back_whole_everywhere_and_can_be_written_again(store: Arc<dyn Store>) {
    // A finished run, its resolved rows and their chains change no more: a store may keep them
    // compactly (the memory store packs them), and every read still returns them whole.
    let session = unique_name();
    let paused = run(&session);
    let (approved, rejected) = (approval(&paused.run_id), approval(&paused.run_id));
    // A row written decided, its data JSON `null` rather than none.
    let null_data = Approval {
        status: ApprovalStatus::Approved,
        resolved_by: Some("admin".into()),
        resolved_at: Some(paused.created_at),
        resolution_data: Some(serde_json::Value::Null),
        ..approval(&paused.run_id)
    };
    let rows = [approved.clone(), rejected.clone(), null_data.clone()];
    store.save_runs(std::slice::from_ref(&paused), &rows, &[]).await.unwrap();
    let before = store.last_event_seq().await.unwrap();
    let resolved = store.update_approval(&approved.id, ApprovalUpdate::approve("admin")).await.unwrap();
    store.update_approval(&rejected.id, ApprovalUpdate::reject("admin")).await.unwrap();
    let done = RunRecord {
        status: RunStatus::Completed,
        content: Some("Deleted.".into()),
        approvals: vec![resolved.clone()],
        updated_at: paused.updated_at + seconds(1),
        ..paused.clone()
    };
    store.save_runs(std::slice::from_ref(&done), &[], &[execution(&approved, true)]).await.unwrap();

    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(done.clone()));
    assert_eq!(store.session_runs(&session, 10).await.unwrap(), std::slice::from_ref(&done));
    let query = RunQuery { session_id: Some(session.clone()), ..RunQuery::default() };
    assert_eq!(store.list_runs(&query).await.unwrap().items, std::slice::from_ref(&done));
    let since = kern::approval::PageCursor { at: done.updated_at, id: String::new() };
    let changed = store.runs_changed_after(&since, 1000).await.unwrap();
    assert_eq!(changed.iter().find(|run| run.run_id == done.run_id), Some(&done));
    let row = stored(&*store, &approved.id).await;
    assert_eq!(row, Approval { run_status: RunStatus::Completed, updated_at: row.updated_at, ..resolved });
    let null_data_now = stored(&*store, &null_data.id).await;
    assert_eq!(null_data_now.resolution_data, Some(serde_json::Value::Null), "JSON null is not no data");

    let rows = ApprovalQuery::default().run_id(done.run_id.as_str());
    let page = store.list_approvals(&rows).await.unwrap();
    assert_eq!(page.total, 3);
    let status_of = |id: &str| page.items.iter().find(|row| row.id == id).map(|row| row.status);
    assert_eq!(status_of(&approved.id), Some(ApprovalStatus::Approved));
    assert_eq!(status_of(&rejected.id), Some(ApprovalStatus::Rejected));
    let approved_only = store.list_approvals(&rows.clone().status(ApprovalStatus::Approved)).await.unwrap();
    assert_eq!(approved_only.total, 2);
    assert!(approved_only.items.contains(&row) && approved_only.items.contains(&null_data_now));

    let trail = store.trail(&approved.id).await.unwrap();
    assert_eq!(trail.len(), 3);
    let followed = store.events_after(before, 1000).await.unwrap();
    let of_row: Vec<_> = followed.into_iter().filter(|event| event.approval_id == approved.id).collect();
    assert_eq!(of_row, trail[1..]);
    assert!(store.verify_trail().await.unwrap().is_intact());

    // Written again (kern resumes no finished run, but a store keeps what it is given): its
    // rows follow its status, and a chain still grows.
    let reopened = RunRecord { status: RunStatus::Paused, updated_at: done.updated_at + seconds(1), ..done.clone() };
    store.save_runs(std::slice::from_ref(&reopened), &[], &[execution(&approved, false)]).await.unwrap();
    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(reopened.clone()));
    assert_eq!(stored(&*store, &approved.id).await.run_status, RunStatus::Paused);
    assert_eq!(store.trail(&approved.id).await.unwrap().len(), 4);
    let finished_again = RunRecord { status: RunStatus::Error, ..reopened };
    store.save_runs(std::slice::from_ref(&finished_again), &[], &[]).await.unwrap();
    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(finished_again));
    assert_eq!(stored(&*store, &approved.id).await.run_status, RunStatus::Error);
    assert_eq!(store.trail(&approved.id).await.unwrap().len(), 4);
    assert!(store.verify_trail().await.unwrap().is_intact());
}

pub async fn save_runs_sets_the_run_status_of_the_runs_rows(store: Arc<dyn Store>) {
    let mut paused = run("session-1");
    let earlier = approval(&paused.run_id);
    let other = approval("another-run");
    create(&*store, &earlier).await;
    create(&*store, &other).await;
    // A new row written with a stale run status takes the run's.
    let new = Approval { run_status: RunStatus::Running, ..approval(&paused.run_id) };
    store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&new), &[]).await.unwrap();
    assert_eq!(stored(&*store, &new.id).await.run_status, RunStatus::Paused);

    paused.status = RunStatus::Completed;
    store.save_runs(&[paused], &[], &[]).await.unwrap();
    assert_eq!(stored(&*store, &earlier.id).await.run_status, RunStatus::Completed);
    assert_eq!(stored(&*store, &new.id).await.run_status, RunStatus::Completed);
    assert_eq!(stored(&*store, &other.id).await, other);
}

pub async fn a_failing_batch_writes_nothing(store: Arc<dyn Store>) {
    let existing_run = run("session-1");
    let existing = approval(&existing_run.run_id);
    store.save_runs(std::slice::from_ref(&existing_run), std::slice::from_ref(&existing), &[]).await.unwrap();

    let new_run = run("session-2");
    let finished = RunRecord { status: RunStatus::Completed, ..existing_run.clone() };
    let fresh = approval(&new_run.run_id);
    let duplicate = Approval { tool_name: "other".into(), ..existing.clone() };
    let err = store.save_runs(&[new_run.clone(), finished], &[fresh.clone(), duplicate], &[]).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");

    assert_eq!(store.load_run(&new_run.run_id).await.unwrap(), None);
    assert_eq!(store.load_run(&existing_run.run_id).await.unwrap(), Some(existing_run));
    assert_eq!(store.get_approval(&fresh.id).await.unwrap(), None);
    assert_eq!(stored(&*store, &existing.id).await, existing);
    assert!(store.session_runs("session-2", 10).await.unwrap().is_empty());

    // Nothing of the failed batch lingers where the next write goes: it commits, and others see it.
    store.save_runs(std::slice::from_ref(&new_run), std::slice::from_ref(&fresh), &[]).await.unwrap();
    assert_eq!(store.load_run(&new_run.run_id).await.unwrap(), Some(new_run));
    assert_eq!(stored(&*store, &fresh.id).await, fresh);
}

pub async fn a_batch_larger_than_a_statement_is_saved_whole(store: Arc<dyn Store>) {
    // More values than one SQL statement may bind on either database (22 per row).
    let paused = run("session-1");
    let rows: Vec<Approval> = (0..3_100).map(|_| approval(&paused.run_id)).collect();
    let duplicate = Approval { tool_name: "other".into(), ..rows[0].clone() };
    let failing: Vec<Approval> = rows.iter().cloned().chain([duplicate]).collect();
    let err = store.save_runs(std::slice::from_ref(&paused), &failing, &[]).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 0);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap(), None);

    store.save_runs(std::slice::from_ref(&paused), &rows, &[]).await.unwrap();
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 3_100);
    assert_eq!(stored(&*store, &rows[3_099].id).await, rows[3_099]);
}

pub async fn a_batch_given_up_midway_writes_all_or_nothing(store: Arc<dyn Store>) {
    for n in 0..20 {
        let paused = run("session-1");
        let row = approval(&paused.run_id);
        // The caller stops waiting at a point that moves from one batch to the next: before the
        // first statement, between two, or as the commit is under way.
        let give_up = async {
            for _ in 0..n % 12 {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            biased;
            _ = store.save_runs(std::slice::from_ref(&paused), std::slice::from_ref(&row), &[]) => {}
            () = give_up => {}
        }

        // Whatever became of it, the next write commits and others see it.
        let next = run("session-1");
        store.save_runs(std::slice::from_ref(&next), &[], &[]).await.unwrap();
        assert_eq!(store.load_run(&next.run_id).await.unwrap(), Some(next));

        // The batch may still finish after its caller left; once settled it is whole or absent
        // (two reads are two moments, so they may disagree only while it is underway).
        let settled = async {
            loop {
                let saved = store.load_run(&paused.run_id).await.unwrap().is_some();
                if store.get_approval(&row.id).await.unwrap().is_some() == saved {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), settled).await.expect("the batch is stored whole or not at all");
    }
}

pub async fn a_batch_repeating_an_id_writes_nothing(store: Arc<dyn Store>) {
    let new_run = run("session-3");
    let first = approval(&new_run.run_id);
    let repeat = Approval { tool_name: "other".into(), ..first.clone() };
    let err = store.save_runs(std::slice::from_ref(&new_run), &[first.clone(), repeat], &[]).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(store.load_run(&new_run.run_id).await.unwrap(), None);
    assert_eq!(store.get_approval(&first.id).await.unwrap(), None);
}

/// Runs `attempt` on run `run_id` from 16 tasks let go at once; returns what the winners got
/// and the losers' errors.
async fn race<F, Fut>(store: &Arc<dyn Store>, run_id: &str, attempt: F) -> (Vec<RunRecord>, Vec<Error>)
where
    F: Fn(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = kern::Result<RunRecord>> + Send + 'static,
{
    let start = Arc::new(Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (start, attempt) = (start.clone(), attempt(store.clone(), run_id.to_owned()));
            tokio::spawn(async move {
                start.wait().await;
                attempt.await
            })
        })
        .collect();
    let (mut winners, mut losers) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            Ok(run) => winners.push(run),
            Err(err) => losers.push(err),
        }
    }
    (winners, losers)
}

pub async fn of_16_concurrent_claims_exactly_one_wins(store: Arc<dyn Store>) {
    let paused = run("session-1");
    store.save_runs(std::slice::from_ref(&paused), &[], &[]).await.unwrap();
    let (winners, losers) =
        race(&store, &paused.run_id, |store, run_id| async move { store.claim_run(&run_id).await }).await;

    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let claimed = &winners[0];
    assert_eq!(claimed, &RunRecord { status: RunStatus::Running, updated_at: claimed.updated_at, ..paused.clone() });
    assert!(claimed.updated_at >= paused.updated_at);
    for err in &losers {
        assert!(
            matches!(err, Error::RunNotPaused { run_id, status: RunStatus::Running } if *run_id == paused.run_id),
            "{err:?}"
        );
    }
    assert_eq!(store.load_run(&paused.run_id).await.unwrap().as_ref(), Some(claimed));
}

pub async fn claiming_a_missing_or_unpaused_run_fails(store: Arc<dyn Store>) {
    let err = store.claim_run("no-such-run").await.unwrap_err();
    assert!(matches!(&err, Error::RunNotFound(id) if id == "no-such-run"), "{err:?}");

    let done = RunRecord { status: RunStatus::Completed, ..run("session-1") };
    store.save_runs(std::slice::from_ref(&done), &[], &[]).await.unwrap();
    let err = store.claim_run(&done.run_id).await.unwrap_err();
    assert!(matches!(err, Error::RunNotPaused { status: RunStatus::Completed, .. }), "{err:?}");
    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(done));
}

/// A run a continue claimed two hours ago and never stored, as a process that died leaves it.
fn abandoned(session_id: &str) -> RunRecord {
    RunRecord { status: RunStatus::Running, updated_at: now() - seconds(2 * 3600), ..run(session_id) }
}

const ONE_HOUR: Duration = Duration::from_secs(3600);

pub async fn reclaiming_a_stale_run_returns_it_stamped_now(store: Arc<dyn Store>) {
    let before = now();
    let stale = abandoned("session-1");
    store.save_runs(std::slice::from_ref(&stale), &[], &[]).await.unwrap();
    let reclaimed = store.reclaim_run(&stale.run_id, ONE_HOUR).await.unwrap();
    assert_eq!(reclaimed, RunRecord { updated_at: reclaimed.updated_at, ..stale.clone() });
    assert!(reclaimed.updated_at >= before, "{} < {before}", reclaimed.updated_at);
    assert_eq!(store.load_run(&stale.run_id).await.unwrap().as_ref(), Some(&reclaimed));
    // Stamped now, it is no longer stale.
    let err = store.reclaim_run(&stale.run_id, ONE_HOUR).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Running, .. }), "{err:?}");

    // A claim stamps the run too: with no time to wait, its run is stale at once.
    let paused = run("session-1");
    store.save_runs(std::slice::from_ref(&paused), &[], &[]).await.unwrap();
    let claimed = store.claim_run(&paused.run_id).await.unwrap();
    let reclaimed = store.reclaim_run(&paused.run_id, Duration::ZERO).await.unwrap();
    assert_eq!(reclaimed, RunRecord { updated_at: reclaimed.updated_at, ..claimed.clone() });
    assert!(reclaimed.updated_at >= claimed.updated_at);
    assert_eq!(store.load_run(&paused.run_id).await.unwrap(), Some(reclaimed));
}

pub async fn only_a_running_run_can_be_reclaimed(store: Arc<dyn Store>) {
    let err = store.reclaim_run("no-such-run", Duration::ZERO).await.unwrap_err();
    assert!(matches!(&err, Error::RunNotFound(id) if id == "no-such-run"), "{err:?}");

    // Written long ago, yet neither is left running.
    let long_ago = now() - seconds(2 * 3600);
    let paused = RunRecord { updated_at: long_ago, ..run("session-1") };
    let done = RunRecord { status: RunStatus::Completed, updated_at: long_ago, ..run("session-1") };
    store.save_runs(&[paused.clone(), done.clone()], &[], &[]).await.unwrap();
    for (saved, expected) in [(&paused, RunStatus::Paused), (&done, RunStatus::Completed)] {
        let err = store.reclaim_run(&saved.run_id, Duration::ZERO).await.unwrap_err();
        assert!(
            matches!(&err, Error::RunNotStale { run_id, status } if *run_id == saved.run_id && *status == expected),
            "{err:?}"
        );
        assert_eq!(store.load_run(&saved.run_id).await.unwrap().as_ref(), Some(saved));
    }
}

pub async fn a_recent_claim_is_not_stale(store: Arc<dyn Store>) {
    let paused = run("session-1");
    store.save_runs(std::slice::from_ref(&paused), &[], &[]).await.unwrap();
    let claimed = store.claim_run(&paused.run_id).await.unwrap();
    // Longer than the run has been claimed, and longer than the clock reaches back.
    for stale_after in [ONE_HOUR, Duration::MAX] {
        let err = store.reclaim_run(&paused.run_id, stale_after).await.unwrap_err();
        assert!(matches!(err, Error::RunNotStale { status: RunStatus::Running, .. }), "{err:?}");
    }
    assert_eq!(store.load_run(&paused.run_id).await.unwrap(), Some(claimed));
}

/// A holder renews its claim with the stamp it last left: the run is stamped anew, so it is no
/// longer stale; once another took the run over, or it is no longer running, the renewal says
/// so and changes nothing.
pub async fn a_held_claim_is_renewed_until_it_is_taken_over(store: Arc<dyn Store>) {
    let err = store.renew_claim("no-such-run", now(), now()).await.unwrap_err();
    assert!(matches!(&err, Error::RunNotFound(id) if id == "no-such-run"), "{err:?}");

    let held = abandoned("session-1");
    store.save_runs(std::slice::from_ref(&held), &[], &[]).await.unwrap();
    let renewed_at = now();
    store.renew_claim(&held.run_id, held.updated_at, renewed_at).await.unwrap();
    let stored = store.load_run(&held.run_id).await.unwrap().unwrap();
    assert_eq!(stored, RunRecord { updated_at: renewed_at, ..held.clone() });
    let err = store.reclaim_run(&held.run_id, ONE_HOUR).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { .. }), "renewed, the claim is not stale: {err:?}");

    // A stamp the run no longer bears: another renewed or reclaimed it since.
    let err = store.renew_claim(&held.run_id, held.updated_at, now()).await.unwrap_err();
    assert!(matches!(&err, Error::RunTakenOver { run_id } if *run_id == held.run_id), "{err:?}");
    let reclaimed = store.reclaim_run(&held.run_id, Duration::ZERO).await.unwrap();
    let err = store.renew_claim(&held.run_id, renewed_at, now()).await.unwrap_err();
    assert!(matches!(err, Error::RunTakenOver { .. }), "{err:?}");
    assert_eq!(store.load_run(&held.run_id).await.unwrap(), Some(reclaimed.clone()));

    // The run's stamp, but it is no longer running.
    let done = RunRecord { status: RunStatus::Completed, ..reclaimed };
    store.save_runs(std::slice::from_ref(&done), &[], &[]).await.unwrap();
    let err = store.renew_claim(&done.run_id, done.updated_at, now()).await.unwrap_err();
    assert!(matches!(err, Error::RunTakenOver { .. }), "{err:?}");
    assert_eq!(store.load_run(&done.run_id).await.unwrap(), Some(done));
}

/// The winner stamps the run with the current time, so to every other reclaim it is a fresh
/// claim: not stale for another hour.
pub async fn of_16_concurrent_reclaims_exactly_one_wins(store: Arc<dyn Store>) {
    let stale = abandoned("session-1");
    store.save_runs(std::slice::from_ref(&stale), &[], &[]).await.unwrap();
    let (winners, losers) =
        race(&store, &stale.run_id, |store, run_id| async move { store.reclaim_run(&run_id, ONE_HOUR).await }).await;

    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for err in &losers {
        assert!(
            matches!(err, Error::RunNotStale { run_id, status: RunStatus::Running } if *run_id == stale.run_id),
            "{err:?}"
        );
    }
    assert_eq!(store.load_run(&stale.run_id).await.unwrap().as_ref(), Some(&winners[0]));
}

pub async fn session_runs_are_the_latest_top_level_runs_oldest_first(store: Arc<dyn Store>) {
    let t0 = now() - seconds(100);
    let top: Vec<RunRecord> = (0..5)
        .map(|n| RunRecord { created_at: t0 + seconds(n), updated_at: t0 + seconds(n), ..run("session-1") })
        .collect();
    let child =
        RunRecord { parent_run_id: Some(top[4].run_id.clone()), created_at: t0 + seconds(10), ..run("session-1") };
    let elsewhere = run("session-2");
    // Saved newest first, so the order must come from the store.
    let mut all: Vec<RunRecord> = top.iter().rev().cloned().collect();
    all.extend([child, elsewhere.clone()]);
    store.save_runs(&all, &[], &[]).await.unwrap();

    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let top_ids = ids(top.clone());
    assert_eq!(ids(store.session_runs("session-1", 3).await.unwrap()), top_ids[2..]);
    assert_eq!(ids(store.session_runs("session-1", 10).await.unwrap()), top_ids);
    assert_eq!(store.session_runs("session-1", 5).await.unwrap(), top);
    assert!(store.session_runs("session-1", 0).await.unwrap().is_empty());
    assert_eq!(store.session_runs("session-2", 5).await.unwrap(), [elsewhere]);
    assert!(store.session_runs("no-such-session", 5).await.unwrap().is_empty());
}

pub async fn releasing_a_stale_run_pauses_it_for_the_next_continue(store: Arc<dyn Store>) {
    let err = store.release_stale_run("no-such-run", Duration::ZERO).await.unwrap_err();
    assert!(matches!(&err, Error::RunNotFound(id) if id == "no-such-run"), "{err:?}");

    let before = now();
    let stale = abandoned("session-1");
    store.save_runs(std::slice::from_ref(&stale), &[], &[]).await.unwrap();
    let released = store.release_stale_run(&stale.run_id, ONE_HOUR).await.unwrap();
    assert_eq!(released, RunRecord { status: RunStatus::Paused, updated_at: released.updated_at, ..stale.clone() });
    assert!(released.updated_at >= before, "{} < {before}", released.updated_at);
    assert_eq!(store.load_run(&stale.run_id).await.unwrap().as_ref(), Some(&released));
    // Paused now, it is no longer stale, and the next continue claims it.
    let err = store.release_stale_run(&stale.run_id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Paused, .. }), "{err:?}");
    assert_eq!(store.claim_run(&stale.run_id).await.unwrap().status, RunStatus::Running);

    // A recent claim is left to its continue.
    let err = store.release_stale_run(&stale.run_id, ONE_HOUR).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Running, .. }), "{err:?}");
    assert_eq!(store.load_run(&stale.run_id).await.unwrap().unwrap().status, RunStatus::Running);
}

pub async fn releasing_a_team_run_releases_the_members_its_continue_held(store: Arc<dyn Store>) {
    let team = abandoned("session-1");
    let held = RunRecord { parent_run_id: Some(team.run_id.clone()), ..abandoned("session-1") };
    let done = RunRecord { status: RunStatus::Completed, ..held.clone() };
    let done = RunRecord { run_id: format!("{}-done", held.run_id), ..done };
    let other_team = abandoned("session-1");
    let elsewhere = RunRecord { parent_run_id: Some(other_team.run_id.clone()), ..abandoned("session-1") };
    let runs = [team.clone(), held.clone(), done.clone(), other_team, elsewhere.clone()];
    store.save_runs(&runs, &[], &[]).await.unwrap();

    // Not stale by the time asked: nothing changes.
    let err = store.release_stale_run(&team.run_id, Duration::from_secs(3 * 3600)).await.unwrap_err();
    assert!(matches!(err, Error::RunNotStale { status: RunStatus::Running, .. }), "{err:?}");
    assert_eq!(store.load_run(&held.run_id).await.unwrap().unwrap().status, RunStatus::Running);

    store.release_stale_run(&team.run_id, ONE_HOUR).await.unwrap();
    let status = |run_id: String| {
        let store = store.clone();
        async move { store.load_run(&run_id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(held.run_id.clone()).await, RunStatus::Paused, "the member its continue held");
    assert_eq!(status(done.run_id.clone()).await, RunStatus::Completed, "a finished member stays finished");
    assert_eq!(status(elsewhere.run_id.clone()).await, RunStatus::Running, "another team's member is left alone");
}

pub async fn of_16_concurrent_releases_exactly_one_wins(store: Arc<dyn Store>) {
    let stale = abandoned("session-1");
    store.save_runs(std::slice::from_ref(&stale), &[], &[]).await.unwrap();
    let (winners, losers) =
        race(&store, &stale.run_id, |store, run_id| async move { store.release_stale_run(&run_id, ONE_HOUR).await })
            .await;
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for err in &losers {
        assert!(matches!(err, Error::RunNotStale { status: RunStatus::Paused, .. }), "{err:?}");
    }
    assert_eq!(store.load_run(&stale.run_id).await.unwrap().as_ref(), Some(&winners[0]));
}

pub async fn list_runs_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let t0 = now() - seconds(100);
    let at = |n: i64, run: RunRecord| RunRecord { created_at: t0 + seconds(n), updated_at: t0 + seconds(n), ..run };
    let paused = at(0, run("session-1"));
    let done = at(1, RunRecord { status: RunStatus::Completed, ..run("session-1") });
    let other_user =
        at(2, RunRecord { user_id: Some("user-2".into()), agent_id: Some("agent-2".into()), ..run("session-2") });
    let team = at(3, RunRecord { agent_id: None, team_id: Some("team-1".into()), ..run("session-3") });
    let member = at(
        4,
        RunRecord { parent_run_id: Some(team.run_id.clone()), team_id: Some("team-1".into()), ..run("session-3") },
    );
    // Two runs of one instant: the run id breaks the tie.
    let tied: Vec<RunRecord> = (0..2).map(|_| at(5, run("session-4"))).collect();
    let mut all = vec![paused.clone(), done.clone(), other_user.clone(), team.clone(), member.clone()];
    all.extend(tied.iter().cloned());
    store.save_runs(&all, &[], &[]).await.unwrap();

    let ids = |query: RunQuery| {
        let store = store.clone();
        async move { store.list_runs(&query).await.unwrap().items.into_iter().map(|run| run.run_id).collect::<Vec<_>>() }
    };
    let mut newest_first: Vec<&RunRecord> = all.iter().filter(|run| run.parent_run_id.is_none()).collect();
    newest_first.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
    let expected: Vec<String> = newest_first.iter().map(|run| run.run_id.clone()).collect();
    assert_eq!(ids(RunQuery::default()).await, expected);

    assert_eq!(ids(RunQuery::default().status(RunStatus::Completed)).await, [done.run_id.as_str()]);
    assert_eq!(ids(RunQuery::default().user_id("user-2")).await, [other_user.run_id.as_str()]);
    assert_eq!(ids(RunQuery::default().agent_id("agent-2")).await, [other_user.run_id.as_str()]);
    assert_eq!(ids(RunQuery::default().session_id("session-2")).await, [other_user.run_id.as_str()]);
    assert_eq!(ids(RunQuery::default().team_id("team-1")).await, [team.run_id.as_str()]);
    assert_eq!(
        ids(RunQuery::default().team_id("team-1").members(true)).await,
        [member.run_id.as_str(), team.run_id.as_str()]
    );
    assert!(ids(RunQuery::default().user_id("u' OR 1=1 --")).await.is_empty());
    assert!(ids(RunQuery::default().session_id("a\0b")).await.is_empty());

    // Pages of two visit every run once, in order, and the last names no next page.
    let (mut seen, mut after) = (Vec::new(), None::<PageCursor>);
    loop {
        let query = RunQuery { after: after.take(), ..RunQuery::default().limit(2) };
        let page = store.list_runs(&query).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|run| run.run_id));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}
