//! Following the trail: a reader that moves past the events it reads, in `seq` order, without
//! ever passing one that commits late.
//!
//! A store may take an event's `seq` before its transaction commits (Postgres does), so a reader
//! may see an event before an earlier one; and a `seq` whose transaction rolled back is never
//! filled. A [`TrailReader`] stops before a gap in the `seq`s until it fills or it has waited
//! [`GAP_WAIT`] for it, timed from when this reader first saw it: the event's `at` is the
//! writer's clock, taken before its locks were granted, and another machine's. Only a gap
//! followed by an event written [`SETTLED_AGE`] ago or more is passed at once, so that reading
//! an old trail does not wait on each of its rollbacks. The worker, the server's event stream
//! and trail pages, and the command line's `watch` and `export` all read so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use crate::error::Result;
use crate::store::Store;
use crate::trail::TrailEvent;

/// How long a reader waits for a missing `seq` before it counts as never coming. A transaction
/// that holds its `seq` for longer before it commits is read past.
pub const GAP_WAIT: Duration = Duration::from_secs(2);

/// How often a reader held back by a gap reads again: a wait on the store for more events
/// would return at once, since the trail is already past the gap.
pub const GAP_RECHECK: Duration = Duration::from_millis(50);

/// How long ago, by its `at`, the event after a gap was written for the gap to be passed at
/// once: far longer than any of kern's transactions holds its `seq`, and than the clocks of
/// the machines that share a database drift apart.
pub const SETTLED_AGE: TimeDelta = TimeDelta::seconds(60);

/// How far below the trail's last `seq` a reader that starts from now looks for a `seq` taken
/// by a transaction that has not committed yet.
const IN_FLIGHT_WINDOW: u32 = 256;

/// A position in the trail, and the gaps after it this reader waits on.
#[derive(Debug, Clone)]
pub struct TrailReader {
    /// The `seq` of the last event read past.
    position: i64,
    /// Each gap seen and not yet read past: its first missing `seq`, the `seq` of the event that
    /// follows it, and when this reader first saw it. A gap that partly fills keeps its sighting.
    gaps: BTreeMap<i64, (i64, Instant)>,
    /// The events the last read held back, from the first gap that may still fill on.
    held_back: Vec<TrailEvent>,
    /// Events after the position that had committed before a reader [from now](Self::from_now)
    /// started: read past, not handed out.
    before_start: BTreeSet<i64>,
}

impl TrailReader {
    /// A reader of the events after event `after` (0: from the first).
    pub fn after(after: i64) -> Self {
        Self { position: after.max(0), gaps: BTreeMap::new(), held_back: Vec::new(), before_start: BTreeSet::new() }
    }

    /// A reader of the events committed from now on: those after the trail's last event, and
    /// any below it whose transaction had taken its `seq` and not yet committed (Postgres
    /// takes a `seq` before it commits), which a reader after the last event would never hand
    /// out. It starts before the first recent gap below the last event, and reads past the
    /// events already committed there without handing them out. Its [`position`](Self::position)
    /// is then below the last event: a reader started after it (a client resuming from it)
    /// hands out those events too, which repeats a little rather than loses anything.
    pub async fn from_now(store: &dyn Store) -> Result<Self> {
        let last = store.last_event_seq().await?;
        let start = (last - i64::from(IN_FLIGHT_WINDOW)).max(0);
        let committed = store.events_after(start, IN_FLIGHT_WINDOW).await?;
        Ok(Self::from_committed(start, last, &committed, crate::now()))
    }

    /// The reader [`from_now`](Self::from_now) makes of the events `committed` after `start`
    /// (up to the last, `last`) at `wall`: a gap is recent when the event after it was written
    /// less than [`SETTLED_AGE`] ago.
    fn from_committed(start: i64, last: i64, committed: &[TrailEvent], wall: DateTime<Utc>) -> Self {
        let committed: Vec<&TrailEvent> = committed.iter().filter(|event| event.seq <= last).collect();
        let mut previous = start;
        let mut position = last;
        for event in &committed {
            if event.seq != previous + 1 && wall - event.at < SETTLED_AGE {
                position = previous;
                break;
            }
            previous = event.seq;
        }
        let before_start = committed.iter().map(|event| event.seq).filter(|seq| *seq > position).collect();
        Self { before_start, ..Self::after(position) }
    }

    /// The `seq` of the last event read past: where the next read starts.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The events the last read held back, after a gap that may still fill: committed, but
    /// not read past, so they come again in a later read. When there are any, the reader
    /// should read again after [`GAP_RECHECK`] rather than wait for news. Empty after a read
    /// that failed.
    pub fn held_back(&self) -> &[TrailEvent] {
        &self.held_back
    }

    /// Reads at most `limit` of the next events and moves past those it may: all of them, or
    /// those before a gap that may still fill (perhaps none; see [`held_back`](Self::held_back)).
    pub async fn read(&mut self, store: &dyn Store, limit: u32) -> Result<Vec<TrailEvent>> {
        self.held_back.clear();
        let events = store.events_after(self.position, limit).await?;
        Ok(self.take(events, Instant::now(), crate::now()))
    }

    /// As [`read`](Self::read), but while a gap holds back every event read it reads again each
    /// [`GAP_RECHECK`], for at most [`GAP_WAIT`]: it answers nothing only when no event follows.
    /// What a reader that cannot keep its place between reads (a page of an API) needs.
    pub async fn read_waiting(&mut self, store: &dyn Store, limit: u32) -> Result<Vec<TrailEvent>> {
        loop {
            let events = self.read(store, limit).await?;
            if !events.is_empty() || self.held_back.is_empty() {
                return Ok(events);
            }
            tokio::time::sleep(GAP_RECHECK).await;
        }
    }

    /// Keeps those of `events` (read in `seq` order after [`position`](Self::position)) that it
    /// may read past at `now` (`wall` by the clock of the events' `at`), and moves past them.
    fn take(&mut self, mut events: Vec<TrailEvent>, now: Instant, wall: DateTime<Utc>) -> Vec<TrailEvent> {
        let mut previous = self.position;
        let mut taken = events.len();
        for (index, event) in events.iter().enumerate() {
            let missing = previous + 1;
            if event.seq != missing && wall - event.at < SETTLED_AGE {
                let first_seen = self.sighting(missing, event.seq, now);
                if taken == events.len() && now.duration_since(first_seen) < GAP_WAIT {
                    taken = index;
                }
            }
            previous = event.seq;
        }
        self.held_back = events.split_off(taken);
        self.position = events.last().map_or(self.position, |event| event.seq);
        let position = self.position;
        self.gaps.retain(|_, &mut (next, _)| next > position);
        if !self.before_start.is_empty() {
            events.retain(|event| !self.before_start.contains(&event.seq));
            self.before_start.retain(|seq| *seq > position);
        }
        events
    }

    /// When this reader first saw `missing` absent, with the event `next` after it: a gap
    /// seen before that has partly filled since is the same gap.
    fn sighting(&mut self, missing: i64, next: i64, now: Instant) -> Instant {
        match self.gaps.range(..=missing).next_back() {
            Some((_, &(known_next, seen))) if missing < known_next => seen,
            _ => {
                self.gaps.insert(missing, (next, now));
                now
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::trail::{EventKind, GENESIS};

    /// Events of `seqs`, written at `at`.
    fn written(seqs: &[i64], at: DateTime<Utc>) -> Vec<TrailEvent> {
        seqs.iter()
            .map(|&seq| TrailEvent {
                seq,
                approval_id: "a".into(),
                run_id: "r".into(),
                index: 1,
                kind: EventKind::Created,
                principal: "p".into(),
                at,
                data: Value::Null,
                prev_hash: GENESIS.into(),
                hash: String::new(),
            })
            .collect()
    }

    /// A reader after event 3, and the time now by its clock and by the clock of the events.
    fn setup() -> (TrailReader, Instant, DateTime<Utc>) {
        (TrailReader::after(3), Instant::now(), crate::now())
    }

    fn seqs(events: &[TrailEvent]) -> Vec<i64> {
        events.iter().map(|event| event.seq).collect()
    }

    #[test]
    fn a_reader_passes_what_has_no_gap_before_it() {
        let (mut reader, t0, wall) = setup();
        assert_eq!(seqs(&reader.take(written(&[4, 5, 6], wall), t0, wall)), [4, 5, 6]);
        assert_eq!((reader.position(), reader.held_back().len()), (6, 0));
        assert!(reader.take(Vec::new(), t0, wall).is_empty());
        assert_eq!((reader.position(), reader.held_back().len()), (6, 0));
    }

    #[test]
    fn a_gap_holds_a_reader_back_for_the_wait_from_its_first_sight() {
        let (mut reader, t0, wall) = setup();
        assert_eq!(seqs(&reader.take(written(&[4, 6, 7], wall), t0, wall)), [4], "5 may still commit");
        assert_eq!((reader.position(), seqs(reader.held_back())), (4, vec![6, 7]));
        let later = t0 + GAP_WAIT - Duration::from_millis(1);
        assert!(reader.take(written(&[6, 7], wall), later, wall).is_empty(), "a gap right after the position");
        assert_eq!((reader.position(), seqs(reader.held_back())), (4, vec![6, 7]));
        assert_eq!(seqs(&reader.take(written(&[5, 6, 7], wall), later, wall)), [5, 6, 7], "the gap filled");
        assert_eq!((reader.position(), reader.held_back().len()), (7, 0));
    }

    #[test]
    fn a_gap_that_never_fills_is_read_past_once_waited_for() {
        let (mut reader, t0, wall) = setup();
        assert_eq!(seqs(&reader.take(written(&[4, 6, 8], wall), t0, wall)), [4]);
        // The second gap was seen at the same read: its wait ran alongside the first's.
        assert_eq!(seqs(&reader.take(written(&[6, 8, 10], wall), t0 + GAP_WAIT, wall)), [6, 8]);
        assert_eq!((reader.position(), seqs(reader.held_back())), (8, vec![10]), "9 was first seen missing now");
        assert_eq!(seqs(&reader.take(written(&[10], wall), t0 + GAP_WAIT * 2, wall)), [10]);
        assert!(reader.gaps.is_empty(), "gaps read past are forgotten");
    }

    #[test]
    fn a_gap_that_partly_fills_keeps_its_first_sight() {
        let (mut reader, t0, wall) = setup();
        assert!(reader.take(written(&[7], wall), t0, wall).is_empty(), "4 to 6 missing");
        let half = t0 + GAP_WAIT / 2;
        assert_eq!(seqs(&reader.take(written(&[4, 6, 7], wall), half, wall)), [4], "5 still missing");
        assert!(reader.take(written(&[6, 7], wall), t0 + GAP_WAIT - Duration::from_millis(1), wall).is_empty());
        assert_eq!(seqs(&reader.take(written(&[6, 7], wall), t0 + GAP_WAIT, wall)), [6, 7], "5 waited for since t0");
    }

    #[test]
    fn a_gap_before_an_old_event_is_passed_at_once() {
        let (mut reader, t0, wall) = setup();
        let mut events = written(&[4, 6], wall - SETTLED_AGE);
        events.extend(written(&[8], wall - SETTLED_AGE + TimeDelta::seconds(1)));
        assert_eq!(seqs(&reader.take(events, t0, wall)), [4, 6], "5 rolled back long ago; 7 may be in flight");
        assert_eq!(seqs(reader.held_back()), [8]);
    }

    #[test]
    fn a_reader_from_now_hands_out_what_commits_later_below_the_last_event() {
        let (_, t0, wall) = setup();
        // Nothing in flight: it starts after the last event.
        let reader = TrailReader::from_committed(7, 10, &written(&[8, 9, 10], wall), wall);
        assert_eq!((reader.position(), reader.before_start.len()), (10, 0));
        // 9 has its seq and has not committed: it is handed out when it does, 10 and 11 not.
        let mut reader = TrailReader::from_committed(7, 11, &written(&[8, 10, 11, 12], wall), wall);
        assert_eq!(reader.position(), 8);
        assert!(reader.take(written(&[10, 11, 12], wall), t0, wall).is_empty(), "held back until 9 commits");
        assert_eq!(seqs(&reader.take(written(&[9, 10, 11, 12], wall), t0, wall)), [9, 12]);
        assert_eq!(reader.position(), 12);
        // Had 9 never committed, the reader passes it once waited for, handing out nothing old.
        let mut reader = TrailReader::from_committed(7, 11, &written(&[8, 10, 11], wall), wall);
        assert!(reader.take(written(&[10, 11], wall), t0, wall).is_empty());
        assert!(reader.take(written(&[10, 11], wall), t0 + GAP_WAIT, wall).is_empty());
        assert_eq!((reader.position(), reader.before_start.len()), (11, 0));
        // A gap before an event written long ago is an old rollback: nothing to wait for.
        let mut old = written(&[8, 10], wall - SETTLED_AGE);
        old.extend(written(&[11], wall));
        assert_eq!(TrailReader::from_committed(7, 11, &old, wall).position(), 11);
    }
}
