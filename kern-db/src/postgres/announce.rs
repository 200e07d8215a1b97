//! The announcements of a store's own commits, sent by the store on a connection of its own.
//!
//! From schema version [`CLIENT_NOTIFY_VERSION`](crate::schema::CLIENT_NOTIFY_VERSION) the
//! store's connections tell their triggers that the store announces their commits itself
//! ([`CLIENT_ANNOUNCES`](super::notify::CLIENT_ANNOUNCES)): a commit then runs no trigger
//! bookkeeping and no statement after it to announce itself. The store knows what each of its
//! commits resolved (it wakes its own waiters of those rows), and hands that to a
//! [`ClientAnnouncer`], which sends it on the channels of [`notify`](super::notify) from a task
//! and a connection of its own. The announcements of the commits that end while one is being
//! sent go together in the next, as one statement: under load, many commits cost one
//! announcement. A writer returns once its commit's announcement is sent, as before, so that a
//! process that exits after a write leaves nothing unsent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kern_core::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::notify::{MAX_NOTIFY_PAYLOAD, channel, events_channel};
use crate::layout::Layout;
use crate::wake::{Announcer, Resolved};

/// Sends each announcement as one statement: a notification per row of the two arrays, in
/// their order. Postgres delivers them when the statement's transaction, which changes no data,
/// commits: without waiting for the disk.
const SEND: &str = "SELECT pg_notify(announced.channel, announced.payload) FROM unnest($1::text[], $2::text[]) AS announced(channel, payload)";

/// The most row ids one announcement names; past them it sends the empty payload, which wakes
/// every waiter, instead.
pub(super) const MAX_ANNOUNCED_ROWS: usize = 1024;

/// How long an announcement's statement may take, once connected.
const SEND_PATIENCE: Duration = Duration::from_secs(30);

/// How long closing waits for the last announcement to be sent.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// Announces a store's commits (see the module's docs).
#[derive(Debug)]
pub(crate) struct ClientAnnouncer {
    shared: Arc<Shared>,
    task: Mutex<Task>,
}

#[derive(Debug)]
enum Task {
    Idle,
    Running(JoinHandle<()>),
    Closed,
}

/// What the store's writers and the sending task share.
#[derive(Debug)]
struct Shared {
    /// How the sending connection, apart from the store's, connects, and how long it waits for
    /// the server.
    options: PgConnectOptions,
    connect_timeout: Duration,
    /// The approvals table's channel and the trail's.
    resolutions: String,
    events: String,
    /// What the commits since the last send have to announce, and the number of the send that
    /// will carry it.
    pending: Mutex<Pending>,
    /// Raised when `pending` gains something, or the announcer closes.
    wake: Notify,
    /// The number of the last send done (sent or failed).
    done: watch::Sender<u64>,
    closing: AtomicBool,
}

/// The announcement the next send carries.
#[derive(Debug, Default)]
struct Pending {
    /// The number of the send that carries it: one past [`Shared::done`]'s.
    send: u64,
    /// Whether any commit is waiting for it.
    any: bool,
    rows: Vec<String>,
    /// Rows resolved that the commits did not name, or more than an announcement names.
    every_row: bool,
}

impl Pending {
    fn add(&mut self, resolved: Resolved) {
        self.any = true;
        match resolved {
            Resolved::Nothing => {}
            Resolved::Any => self.every_row = true,
            Resolved::Rows(rows) => {
                // An id too long for a payload cannot be named: any row may be meant.
                if rows.iter().any(|id| id.len() >= MAX_NOTIFY_PAYLOAD) {
                    self.every_row = true;
                }
                if !self.every_row {
                    self.rows.extend(rows);
                }
                if self.rows.len() > MAX_ANNOUNCED_ROWS {
                    self.every_row = true;
                }
            }
        }
        if self.every_row {
            self.rows.clear();
        }
    }

    /// The channels and payloads of the announcement: the rows' (one empty payload for any
    /// row), then the trail's, which every commit changes (its events, or its runs).
    fn notifications(self, resolutions: &str, events: &str) -> (Vec<String>, Vec<String>) {
        let rows = if self.every_row { vec![String::new()] } else { self.rows };
        let channels = std::iter::repeat_n(resolutions, rows.len()).chain([events]).map(str::to_owned).collect();
        let payloads = rows.into_iter().chain([String::new()]).collect();
        (channels, payloads)
    }
}

impl ClientAnnouncer {
    /// An announcer on `layout`'s channels, connecting with `options` (waiting up to
    /// `connect_timeout` for the server) at its first announcement.
    pub(crate) fn new(options: PgConnectOptions, connect_timeout: Duration, layout: &Layout) -> Self {
        let resolutions = channel(layout);
        let shared = Shared {
            options: options.application_name(&application_name(&resolutions)),
            connect_timeout,
            resolutions,
            events: events_channel(layout),
            pending: Mutex::new(Pending { send: 1, ..Pending::default() }),
            wake: Notify::new(),
            done: watch::Sender::new(0),
            closing: AtomicBool::new(false),
        };
        ClientAnnouncer { shared: Arc::new(shared), task: Mutex::new(Task::Idle) }
    }

    /// Starts the sending task on the current runtime unless it runs or the announcer is
    /// closed; false when it cannot run (closed, or no runtime). A task ends with its runtime: a
    /// commit on another one starts a new task there.
    fn ensure_running(&self) -> bool {
        let mut task = lock(&self.task);
        match &*task {
            Task::Running(handle) if !handle.is_finished() => return true,
            Task::Closed => return false,
            Task::Idle | Task::Running(_) => {}
        }
        let Ok(runtime) = Handle::try_current() else { return false };
        *task = Task::Running(runtime.spawn(send_all(self.shared.clone())));
        true
    }
}

impl Announcer for ClientAnnouncer {
    fn committed(&self, resolved: Resolved) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut done = self.shared.done.subscribe();
            let send = {
                let mut pending = self.shared.pending();
                pending.add(resolved);
                pending.send
            };
            if !self.ensure_running() {
                tracing::warn!("a commit was not announced: the store is closed, or runs outside a runtime");
                return;
            }
            self.shared.wake.notify_one();
            // A send takes at most two attempts of a connection and a statement, and the send
            // under way when this commit was added goes first: past twice that, the server is
            // too slow, or the task ended with its runtime (taking the announcement with it) or
            // sits on a runtime nobody drives. The writer goes on then; a slow send may still
            // arrive.
            let sent = done.wait_for(|done| *done >= send);
            if tokio::time::timeout(2 * (self.shared.connect_timeout + SEND_PATIENCE), sent).await.is_err() {
                tracing::warn!(
                    "a commit's announcement did not go out in time: other processes' waiters will find it late"
                );
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let task = std::mem::replace(&mut *lock(&self.task), Task::Closed);
            self.shared.closing.store(true, Ordering::Release);
            self.shared.wake.notify_one();
            if let Task::Running(task) = task {
                let abort = task.abort_handle();
                if tokio::time::timeout(CLOSE_PATIENCE, task).await.is_err() {
                    abort.abort();
                    tracing::warn!("closing the store left announcements unsent");
                }
            }
        })
    }
}

impl Drop for ClientAnnouncer {
    fn drop(&mut self) {
        if let Task::Running(task) = &*lock(&self.task) {
            task.abort();
        }
    }
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        lock(&self.pending)
    }

    /// Sends `pending` on `conn`, connecting first if there is none. A connection that fails
    /// (the server ended an idle session, or restarted) is dropped and the send tried once more
    /// on a new one; a second failure is logged: the commits it announces stand.
    async fn send(&self, conn: &mut Option<PgConnection>, pending: Pending) {
        let (channels, payloads) = pending.notifications(&self.resolutions, &self.events);
        let mut error = None;
        for _ in 0..2 {
            match self.send_on(conn, &channels, &payloads).await {
                Ok(()) => return,
                Err(failed) => {
                    *conn = None;
                    error = Some(failed);
                }
            }
        }
        if let Some(error) = error {
            tracing::warn!(%error, "commits were not announced: other processes' waiters will find them late");
        }
    }

    /// One attempt of [`send`](Self::send), within the time a connection and a statement may
    /// take: a link that went silent fails it rather than hold every writer.
    async fn send_on(
        &self,
        conn: &mut Option<PgConnection>,
        channels: &[String],
        payloads: &[String],
    ) -> Result<(), sqlx::Error> {
        let conn = match conn {
            Some(conn) => conn,
            None => {
                let connecting = tokio::time::timeout(self.connect_timeout, self.options.connect());
                conn.insert(connecting.await.map_err(|_| timed_out("connecting to announce"))??)
            }
        };
        let statement = sqlx::query(SEND).bind(channels).bind(payloads).execute(conn);
        tokio::time::timeout(SEND_PATIENCE, statement).await.map_err(|_| timed_out("announcing"))?.map(drop)
    }
}

/// The name the announcing connection shows in `pg_stat_activity`: what it is, and for which
/// tables (by their channel), cut to the 63 bytes Postgres keeps.
pub(super) fn application_name(channel: &str) -> String {
    let mut name = format!("kern announcer {channel}");
    // Channels are ASCII: any byte is a character boundary.
    name.truncate(MAX_APPLICATION_NAME);
    name
}

/// The longest `application_name` Postgres keeps (`NAMEDATALEN - 1` bytes).
const MAX_APPLICATION_NAME: usize = 63;

/// The error of a step that took longer than it may.
fn timed_out(what: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out")))
}

/// The sending task: sends what the commits left to announce, as one statement each time,
/// until the announcer closes with nothing left.
async fn send_all(shared: Arc<Shared>) {
    let mut conn = None;
    loop {
        let pending = {
            let mut pending = shared.pending();
            let next = Pending { send: pending.send + 1, ..Pending::default() };
            if pending.any { Some(std::mem::replace(&mut *pending, next)) } else { None }
        };
        let Some(pending) = pending else {
            // A commit may have been added before the announcer closed and after the look
            // above: one more look once closing is seen.
            if shared.closing.load(Ordering::Acquire) {
                if shared.pending().any {
                    continue;
                }
                break;
            }
            shared.wake.notified().await;
            continue;
        };
        let send = pending.send;
        shared.send(&mut conn, pending).await;
        shared.done.send_replace(send);
    }
    if let Some(conn) = conn
        && let Err(error) = conn.close().await
    {
        tracing::debug!(%error, "the announcing connection did not close cleanly");
    }
}

/// `mutex`'s guard: nothing panics while holding these locks, so a poisoned one is whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[&str]) -> Resolved {
        Resolved::Rows(ids.iter().map(|id| id.to_string()).collect())
    }

    #[test]
    fn an_announcement_names_its_rows_then_the_trail() {
        let mut pending = Pending::default();
        pending.add(rows(&["a"]));
        pending.add(Resolved::Nothing);
        pending.add(rows(&["b", "a"]));
        let (channels, payloads) = pending.notifications("rows", "trail");
        assert_eq!(channels, ["rows", "rows", "rows", "trail"]);
        assert_eq!(payloads, ["a", "b", "a", ""]);
    }

    #[test]
    fn rows_it_cannot_name_wake_every_waiter() {
        let mut any = Pending::default();
        any.add(rows(&["a"]));
        any.add(Resolved::Any);
        any.add(rows(&["b"]));
        let mut long = Pending::default();
        long.add(rows(&["a", &"x".repeat(MAX_NOTIFY_PAYLOAD)]));
        let mut many = Pending::default();
        for n in 0..=MAX_ANNOUNCED_ROWS {
            many.add(rows(&[&n.to_string()]));
        }
        for pending in [any, long, many] {
            let (channels, payloads) = pending.notifications("rows", "trail");
            assert_eq!(
                (channels, payloads),
                (vec!["rows".to_owned(), "trail".into()], vec![String::new(), String::new()])
            );
        }
    }

    #[test]
    fn the_connection_names_itself_within_what_postgres_keeps() {
        assert_eq!(application_name("app.kern_approvals"), "kern announcer app.kern_approvals");
        let long = application_name(&"c".repeat(63));
        assert_eq!((long.len(), long.starts_with("kern announcer c")), (MAX_APPLICATION_NAME, true));
    }

    #[test]
    fn a_commit_of_runs_alone_announces_the_trail() {
        let mut pending = Pending::default();
        pending.add(Resolved::Nothing);
        assert!(pending.any);
        assert_eq!(pending.notifications("rows", "trail"), (vec!["trail".to_owned()], vec![String::new()]));
    }
}
