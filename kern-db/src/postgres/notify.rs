//! Changes made through other handles, announced by Postgres.
//!
//! From schema version [`RESOLUTION_NOTIFY_VERSION`](crate::schema::RESOLUTION_NOTIFY_VERSION)
//! a [`trigger`] on the approvals table sends the id of each row that leaves `pending` or is
//! deleted on the table's [`channel`]; from [`EVENT_NOTIFY_VERSION`](crate::schema::EVENT_NOTIFY_VERSION)
//! an [`event_trigger`] on the trail announces that it has grown on the trail's
//! [`events_channel`]. Postgres delivers both when the transaction that sent them commits (from
//! version 11, the store's writes send them just after, as below), to every connection that
//! `LISTEN`s on the channel, in any process. A [`Listener`] is one such connection per store
//! handle, opened at the first wait and shared by all the handle's waiters, whom it wakes.
//!
//! A transaction that sends a notification takes a lock of the whole database as it commits and
//! holds it until its commit is on disk: commits that announce wait for each other's flush, where
//! others share one. From [`DEFERRED_NOTIFY_VERSION`](crate::schema::DEFERRED_NOTIFY_VERSION) the
//! store's connections said, as they opened, that they defer their announcements (a setting of
//! the session, [`DEFER_SETTING`]): their triggers then only [note](deferred_triggers) what to
//! announce, in settings of the session (which a rollback undoes), and each commit was followed
//! by a statement that sent the notes, a transaction of its own which changes no data and so
//! commits without waiting for the disk. From
//! [`CLIENT_NOTIFY_VERSION`](crate::schema::CLIENT_NOTIFY_VERSION) the store's connections say
//! that the store announces their commits itself ([`CLIENT_ANNOUNCES`]): their triggers do
//! nothing ([`client_triggers`]), and the store's announcer sends what its commits did (see
//! [`announce`](super::announce)). Every other client's writes, whose sessions say nothing,
//! announce as they commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kern_core::BoxFuture;
use kern_core::approval::ApprovalStatus;
use kern_core::store::backend::{ResolutionWaiters, TrailSignal};
use sqlx::Executor as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use crate::layout::{Ident, Layout};
use crate::wake::ResolutionFeed;

/// The longest channel name Postgres keeps (`NAMEDATALEN - 1` bytes); `pg_notify` refuses longer.
const MAX_CHANNEL_LEN: usize = 63;

/// Postgres refuses a `NOTIFY` payload of this many bytes or more.
pub(super) const MAX_NOTIFY_PAYLOAD: usize = 8000;

/// The first wait after a failed connection; each failure in a row doubles it up to
/// [`RETRY_MAX`]. A restarted server is back within a second or two, and one that stays away is
/// not hammered.
const RETRY_FIRST: Duration = Duration::from_millis(250);

/// The longest wait between two attempts to connect. Waiters poll meanwhile, so only the
/// promptness of their wake-ups waits for it.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// How long the listening connection may be silent before it is asked whether it still answers.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// How long that question may go unanswered before the connection is given up.
const HEARTBEAT_PATIENCE: Duration = Duration::from_secs(10);

/// How long closing waits for the listening connection to say goodbye: one that went silent
/// would hold the close until the kernel gives up on it.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// The channel on which the rows of `layout`'s approvals table are announced: `schema.table`.
/// Channels are shared by the whole database, and no name holds a dot, so each table gets its
/// own. A name too long for a channel keeps its start and ends in `#` and a 64-bit hash of the
/// whole (FNV-1a, the same in every build and process), which no plain name contains.
pub(crate) fn channel(layout: &Layout) -> String {
    channel_of(layout, &layout.approvals)
}

/// The channel on which the growth of `layout`'s trail is announced, named as [`channel`]
/// names the approvals table's.
pub(crate) fn events_channel(layout: &Layout) -> String {
    channel_of(layout, &layout.events())
}

fn channel_of(layout: &Layout, table: &Ident) -> String {
    let table = table.as_str();
    let name = match &layout.schema {
        Some(schema) => format!("{}.{table}", schema.as_str()),
        None => table.to_owned(),
    };
    if name.len() <= MAX_CHANNEL_LEN {
        return name;
    }
    let hash = format!("#{:016x}", fnv1a(name.as_bytes()));
    // Checked names are ASCII: any byte is a character boundary.
    format!("{}{hash}", &name[..MAX_CHANNEL_LEN - hash.len()])
}

/// The triggers (and their function) that announce, once per statement that inserts events
/// into `layout`'s trail or writes runs, that something happened: an empty payload on the
/// trail's [`events_channel`]. Postgres folds the same announcement made twice in one
/// transaction into one, so a commit costs one announcement however much it writes.
pub(super) fn event_trigger(layout: &Layout) -> Vec<String> {
    let (events, runs) = (layout.qualified(&layout.events()), layout.qualified(&layout.runs));
    let name = layout.events().suffixed("_on_insert");
    let function = layout.qualified(&name);
    let on_runs = layout.runs.suffixed("_on_change").quoted();
    let name = name.quoted();
    let channel = string_literal(&events_channel(layout));
    vec![
        format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM pg_notify({channel}, ''); RETURN NULL; END $$"
        ),
        format!("CREATE TRIGGER {name} AFTER INSERT ON {events} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"),
        format!(
            "CREATE TRIGGER {on_runs} AFTER INSERT OR UPDATE OF status ON {runs} \
             FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        ),
    ]
}

/// The trigger (and its function, kept with the tables) that announces each row of `layout`'s
/// approvals table that leaves `pending` or is deleted: it sends the row's id on the table's
/// [`channel`], delivered to listening processes when the change commits. It fires on updates
/// that set `status` only, so run-status updates cost nothing. An id too long for a payload is
/// sent as an empty one, which wakes every waiter, rather than failing the resolution.
pub(super) fn trigger(layout: &Layout) -> Vec<String> {
    let approvals = layout.qualified(&layout.approvals);
    let name = layout.approvals.suffixed("_on_resolve");
    let function = layout.qualified(&name);
    let name = name.quoted();
    let (unless_resolved, notify) = (unless_leaving_pending(), notify_row(&string_literal(&channel(layout))));
    vec![
        format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             {unless_resolved} {notify} RETURN NULL; END $$"
        ),
        format!(
            "CREATE TRIGGER {name} AFTER UPDATE OF status OR DELETE ON {approvals} \
             FOR EACH ROW EXECUTE FUNCTION {function}()"
        ),
    ]
}

/// The start of a row trigger's body that returns unless its row leaves `pending` (an update)
/// or is deleted.
fn unless_leaving_pending() -> String {
    let pending = ApprovalStatus::Pending.as_str();
    format!(
        "IF TG_OP = 'UPDATE' THEN \
         IF OLD.status <> '{pending}' OR NEW.status = '{pending}' THEN RETURN NULL; END IF; \
         END IF;"
    )
}

/// Sends the id of a row trigger's row on `channel` (an SQL literal); an id too long for a
/// payload as an empty one.
fn notify_row(channel: &str) -> String {
    format!(
        "PERFORM pg_notify({channel}, CASE WHEN octet_length(OLD.id) < {MAX_NOTIFY_PAYLOAD} THEN OLD.id ELSE '' END);"
    )
}

/// The setting of a session that changes what its triggers do: `on` (version 11's store
/// connections) makes them note what to announce, for the session to send later (see
/// [`deferred_triggers`]); [`CLIENT_ANNOUNCES`] (from version 12) makes them do nothing.
pub(super) const DEFER_SETTING: &str = "kern.defer_announcements";

/// The value of [`DEFER_SETTING`] in the store's connections from version 12: their triggers
/// announce nothing, and the store announces its commits itself
/// ([`ClientAnnouncer`](super::announce::ClientAnnouncer)).
pub(super) const CLIENT_ANNOUNCES: &str = "client";

/// The most row ids a session notes before it notes instead that any row may have been
/// resolved: each note rewrites the list, so a sweep of thousands of rows would cost the square
/// of their number, and one empty announcement wakes every waiter to read again.
const MAX_NOTED_ROWS: usize = 64;

/// The session settings that note what `layout`'s tables have to announce: the ids of rows that
/// left `pending` or were deleted (a JSON array, or `*` for any row), and whether the trail grew.
/// Named after the channel, so that stores in one database keep their notes apart.
fn notes(layout: &Layout) -> (String, String) {
    let tag = format!("{:016x}", fnv1a(channel(layout).as_bytes()));
    (format!("kern.rows_{tag}"), format!("kern.trail_{tag}"))
}

/// The function that sends a session's notes and clears them.
fn announce_function(layout: &Layout) -> String {
    layout.qualified(&layout.approvals.suffixed("_announce"))
}

/// Version 11: the functions of [`trigger`] and [`event_trigger`] replaced by ones that, in a
/// session that defers its announcements ([`DEFER_SETTING`] `on`), note what they would
/// announce, and announce as before in any other; and the function that sends the notes and
/// clears them. A session may keep notes it has not sent, when its announcement fails or its
/// caller stops waiting before it: the next one on it sends them.
pub(super) fn deferred_triggers(layout: &Layout) -> Vec<String> {
    let (rows, trail) = notes(layout);
    let (rows, trail) = (string_literal(&rows), string_literal(&trail));
    let announce = announce_function(layout);
    let (resolutions, events) = (string_literal(&channel(layout)), string_literal(&events_channel(layout)));
    let mut statements = Vec::from(trigger_functions(layout, ""));
    statements.push(format!(
        "CREATE FUNCTION {announce}() RETURNS void LANGUAGE plpgsql AS $$ \
         DECLARE noted text := coalesce(current_setting({rows}, true), ''); \
         grew text := coalesce(current_setting({trail}, true), ''); BEGIN \
         IF noted = '*' THEN \
         PERFORM pg_notify({resolutions}, ''); \
         ELSIF noted <> '' THEN \
         PERFORM pg_notify({resolutions}, id) FROM jsonb_array_elements_text(noted::jsonb) AS listed(id); \
         END IF; \
         IF grew <> '' THEN PERFORM pg_notify({events}, ''); END IF; \
         PERFORM set_config({rows}, '', false), set_config({trail}, '', false); \
         END $$"
    ));
    statements
}

/// Version 12: the functions of [`deferred_triggers`] replaced by ones that first return, doing
/// nothing, in a session whose store announces its commits itself ([`CLIENT_ANNOUNCES`]): its
/// commits no longer run the notes' bookkeeping nor a statement to send them. Sessions of
/// version 11 (a process not yet upgraded) note and send as before; any other client's
/// writes announce as they commit.
pub(super) fn client_triggers(layout: &Layout) -> Vec<String> {
    let setting = string_literal(DEFER_SETTING);
    let client = format!("IF current_setting({setting}, true) = '{CLIENT_ANNOUNCES}' THEN RETURN NULL; END IF;");
    trigger_functions(layout, &client).into()
}

/// The functions of [`trigger`] and [`event_trigger`] that note what they would announce in a
/// session that defers its announcements, and announce in any other, their bodies starting with
/// `first`.
fn trigger_functions(layout: &Layout, first: &str) -> [String; 2] {
    let (rows, trail) = notes(layout);
    let (rows, trail) = (string_literal(&rows), string_literal(&trail));
    let resolved = layout.qualified(&layout.approvals.suffixed("_on_resolve"));
    let grew = layout.qualified(&layout.events().suffixed("_on_insert"));
    let (resolutions, events) = (string_literal(&channel(layout)), string_literal(&events_channel(layout)));
    let deferred = format!("coalesce(current_setting({}, true), '') = 'on'", string_literal(DEFER_SETTING));
    let (unless_resolved, notify) = (unless_leaving_pending(), notify_row(&resolutions));
    let first = if first.is_empty() { String::new() } else { format!("{first} ") };
    [
        format!(
            "CREATE OR REPLACE FUNCTION {resolved}() RETURNS trigger LANGUAGE plpgsql AS $$ \
             DECLARE noted text; BEGIN \
             {first}{unless_resolved} \
             IF NOT {deferred} THEN {notify} RETURN NULL; END IF; \
             noted := coalesce(current_setting({rows}, true), ''); \
             IF noted = '*' THEN RETURN NULL; \
             ELSIF octet_length(OLD.id) >= {MAX_NOTIFY_PAYLOAD} THEN PERFORM set_config({rows}, '*', false); \
             ELSIF noted = '' THEN PERFORM set_config({rows}, jsonb_build_array(OLD.id)::text, false); \
             ELSIF jsonb_array_length(noted::jsonb) >= {MAX_NOTED_ROWS} THEN PERFORM set_config({rows}, '*', false); \
             ELSE PERFORM set_config({rows}, (noted::jsonb || to_jsonb(OLD.id))::text, false); \
             END IF; \
             RETURN NULL; END $$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {grew}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             {first}IF {deferred} THEN PERFORM set_config({trail}, 'grew', false); \
             ELSE PERFORM pg_notify({events}, ''); END IF; \
             RETURN NULL; END $$"
        ),
    ]
}

/// `text` as an SQL string literal.
fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A connection `LISTEN`ing in a task of its own, which wakes the waiters of each announced row
/// and, where the trail announces its growth, the trail's followers. The task starts at the first [`is_live`](ResolutionFeed::is_live), reconnects
/// after a lost connection, and stops when the store closes or is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    /// A pool of the one listening connection, kept apart so that it takes none of the store's
    /// connections; sqlx's listener opens a new connection through it after a loss.
    pool: PgPool,
    wakes: Arc<Wakes>,
    /// Whether the connection is `LISTEN`ing now.
    live: Arc<AtomicBool>,
    task: Mutex<Task>,
}

#[derive(Debug)]
enum Task {
    Idle,
    Running(AbortHandle),
    Closed,
}

impl Listener {
    /// A listener on `layout`'s approvals [`channel`], and on its [`events_channel`] when `signal`
    /// is given (the trail announces its growth), connecting with `options` (waiting up to
    /// `connect_timeout` for the server) once a waiter asks for it.
    pub(crate) fn new(
        options: PgConnectOptions,
        connect_timeout: Duration,
        layout: &Layout,
        waiters: Arc<ResolutionWaiters>,
        signal: Option<Arc<TrailSignal>>,
    ) -> Self {
        let pool = PgPoolOptions::new()
            // One listens; a second may open while a connection given up still says goodbye
            // (sqlx's `UNLISTEN *` on drop, which a silent peer holds up).
            .max_connections(2)
            .acquire_timeout(connect_timeout)
            // The connection is held for as long as it lives, never idle nor recycled.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let trail = signal.map(|signal| (events_channel(layout).into(), signal));
        let wakes = Arc::new(Wakes { resolutions: channel(layout).into(), waiters, trail });
        Listener { pool, wakes, live: Arc::default(), task: Mutex::new(Task::Idle) }
    }

    /// Starts the task unless it runs or the store is closed. A task also ends when its runtime
    /// shuts down; a wait on another runtime then starts a new one. Outside a runtime nothing
    /// starts, and waiters poll.
    fn ensure_running(&self) {
        let mut task = self.task();
        let start = match &*task {
            Task::Idle => true,
            Task::Running(handle) => handle.is_finished(),
            Task::Closed => false,
        };
        if !start {
            return;
        }
        if let Ok(runtime) = Handle::try_current() {
            let live = LiveFlag { live: self.live.clone(), wakes: self.wakes.clone() };
            let listening = listen(self.pool.clone(), live);
            *task = Task::Running(runtime.spawn(listening).abort_handle());
        }
    }

    fn task(&self) -> MutexGuard<'_, Task> {
        // Nothing panics while holding the lock: the state stays usable.
        self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ResolutionFeed for Listener {
    fn is_live(&self) -> bool {
        self.ensure_running();
        self.live.load(Ordering::Acquire)
    }

    fn announces_events(&self) -> bool {
        self.wakes.trail.is_some()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Task::Running(task) = std::mem::replace(&mut *self.task(), Task::Closed) {
                task.abort();
            }
            // The aborted task lowers the flag as it is dropped, which the runtime may do later.
            self.live.store(false, Ordering::Release);
            let _ = tokio::time::timeout(CLOSE_PATIENCE, self.pool.close()).await;
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Task::Running(task) = &*self.task() {
            task.abort();
        }
    }
}

/// Whether the connection is listening, as waiters see it. Every change wakes all waiters: when
/// it comes up, so that those who read before it did read again under its watch; when it goes
/// down (the task failing, ending or cancelled), so that they poll instead of waiting for an
/// announcement that will not come.
struct LiveFlag {
    live: Arc<AtomicBool>,
    wakes: Arc<Wakes>,
}

impl LiveFlag {
    /// Sets the flag, waking every waiter if it changed: a listener that keeps failing to come
    /// back wakes them once, not at each try.
    fn set(&self, live: bool) {
        if self.live.swap(live, Ordering::AcqRel) != live {
            self.wakes.all();
        }
    }
}

/// Whom a listener wakes, and on which channels it hears of them.
#[derive(Debug)]
struct Wakes {
    /// The approvals table's channel.
    resolutions: Arc<str>,
    waiters: Arc<ResolutionWaiters>,
    /// The trail's channel and its followers, where the trail announces its growth.
    trail: Option<(Arc<str>, Arc<TrailSignal>)>,
}

impl Wakes {
    fn channels(&self) -> Vec<&str> {
        let trail = self.trail.as_ref().map(|(channel, _)| &**channel);
        std::iter::once(&*self.resolutions).chain(trail).collect()
    }

    /// Wakes everyone to read again: announcements may have been lost.
    fn all(&self) {
        self.waiters.wake_all();
        if let Some((_, signal)) = &self.trail {
            signal.appended();
        }
    }

    /// Wakes whom `payload`, announced on `channel`, concerns.
    fn announced(&self, channel: &str, payload: &str) {
        match &self.trail {
            Some((trail, signal)) if channel == &**trail => signal.appended(),
            // The trigger sends no id too long for a payload: any row may be meant.
            _ if payload.is_empty() => self.waiters.wake_all(),
            _ => self.waiters.wake(payload),
        }
    }
}

impl Drop for LiveFlag {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// The listening task: connects, listens and relays announcements until the pool closes,
/// reconnecting after each failure.
async fn listen(pool: PgPool, live: LiveFlag) {
    let mut retry = RETRY_FIRST;
    loop {
        let error = match subscribe(&pool, &live.wakes.channels()).await {
            Ok(mut listener) => {
                live.set(true);
                retry = RETRY_FIRST;
                relay(&mut listener, &live.wakes).await
            }
            Err(error) => error,
        };
        live.set(false);
        if matches!(error, sqlx::Error::PoolClosed) {
            return;
        }
        tracing::warn!(
            channel = %live.wakes.resolutions, %error, retry_in = ?retry,
            "not listening for approval resolutions; waiters poll until the connection is back"
        );
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

async fn subscribe(pool: &PgPool, channels: &[&str]) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // After a lost connection, `try_recv` reports it (`Ok(None)`, see `relay`) only once a new
    // connection listens again: the order "listen, then wake" that keeps waiters from missing
    // a resolution. It is sqlx's default; stated here because correctness rests on it.
    listener.eager_reconnect(true);
    listener.listen_all(channels.iter().copied()).await?;
    Ok(listener)
}

/// Wakes whom each announcement concerns until the connection fails and cannot be re-opened;
/// returns why.
///
/// A connection that only listens writes nothing, so one whose peer vanished without a reset
/// (a failover, a NAT's dropped flow) would wait for ever, deaf: after [`HEARTBEAT`] without
/// an announcement it is asked a `SELECT 1` (and everyone reads again, in case the question
/// reconnected it), and one that does not answer within [`HEARTBEAT_PATIENCE`] is given up (the
/// caller listens anew and wakes everyone).
async fn relay(listener: &mut PgListener, wakes: &Wakes) -> sqlx::Error {
    loop {
        let received = match tokio::time::timeout(HEARTBEAT, listener.try_recv()).await {
            Ok(received) => received,
            Err(_) => match tokio::time::timeout(HEARTBEAT_PATIENCE, (&mut *listener).execute("SELECT 1")).await {
                // The question may have opened a new connection (the wait it cut short may have
                // been a reconnection): everyone reads again, as after any.
                Ok(Ok(_)) => {
                    wakes.all();
                    continue;
                }
                Ok(Err(error)) => return error,
                Err(_) => {
                    let silent = "the listening connection did not answer its heartbeat";
                    return sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, silent));
                }
            },
        };
        match received {
            Ok(Some(notification)) => wakes.announced(notification.channel(), notification.payload()),
            // The connection was lost, and sqlx has opened another that listens again: what was
            // announced in between is lost, so everyone reads again.
            Ok(None) => wakes.all(),
            Err(error) => return error,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use kern_core::approval::{Approval, ApprovalType, ApprovalUpdate, PauseType, SourceType};
    use kern_core::models::Usage;
    use kern_core::run::{RunRecord, RunStatus};
    use kern_core::store::Store;
    use sqlx::{Connection, Executor, PgConnection};

    use super::*;
    use crate::PostgresDb;
    use crate::layout::TableNames;
    use crate::postgres::announce::{MAX_ANNOUNCED_ROWS, application_name};
    use crate::postgres::tests::on_fresh_schema;
    use crate::schema::CLIENT_NOTIFY_VERSION;

    fn layout(schema: &str, approvals: &str) -> Layout {
        let tables = TableNames { approvals: approvals.into(), ..TableNames::default() };
        Layout::new(Some(schema), &tables).unwrap()
    }

    #[test]
    fn a_channel_names_its_schema_and_table() {
        assert_eq!(channel(&layout("public", "kern_approvals")), "public.kern_approvals");
        assert_eq!(channel(&layout("Agents", "Approvals")), "Agents.Approvals");
    }

    #[test]
    fn a_long_channel_is_cut_and_hashed_to_63_bytes() {
        let (schema, table) = ("s".repeat(40), "t".repeat(40));
        let long = channel(&layout(&schema, &table));
        assert_eq!(long.len(), MAX_CHANNEL_LEN);
        assert_eq!(long, format!("{schema}.{}#{:016x}", "t".repeat(5), fnv1a(format!("{schema}.{table}").as_bytes())));
        // Names that share the kept start still differ.
        let other = channel(&layout(&schema, &format!("{}u", "t".repeat(39))));
        assert_ne!(long, other);
        assert_eq!(other.len(), MAX_CHANNEL_LEN);
        // The longest name that fits is kept whole.
        let fits = channel(&layout(&"s".repeat(40), &"t".repeat(22)));
        assert_eq!(fits.len(), MAX_CHANNEL_LEN);
        assert!(!fits.contains('#'));
    }

    #[test]
    fn string_literals_double_their_quotes() {
        assert_eq!(string_literal("app.kern_approvals"), "'app.kern_approvals'");
        assert_eq!(string_literal("it's"), "'it''s'");
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    // The cases below need a server (see `on_fresh_schema`).

    /// How long a test waits for something that should happen within a second or two.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A pending confirmation row of run `run-1`.
    fn approval(id: &str) -> Approval {
        let now = kern_core::now();
        Approval {
            id: id.to_owned(),
            run_id: "run-1".into(),
            session_id: "session-1".into(),
            status: ApprovalStatus::Pending,
            approval_type: ApprovalType::Required,
            pause_type: PauseType::Confirmation,
            source_type: SourceType::Agent,
            source_name: None,
            agent_id: None,
            team_id: None,
            user_id: None,
            tool_name: "delete_user_data".into(),
            tool_args: serde_json::json!({ "user_id": "42" }),
            tool_call_id: format!("call-{id}"),
            requirements: Vec::new(),
            resolution_data: None,
            resolved_by: None,
            resolved_at: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            run_status: RunStatus::Paused,
            policy: None,
        }
    }

    /// Run `run_id`, paused.
    fn run(run_id: &str) -> RunRecord {
        let now = kern_core::now();
        RunRecord {
            run_id: run_id.to_owned(),
            session_id: "session-1".into(),
            user_id: None,
            agent_id: None,
            team_id: None,
            parent_run_id: None,
            status: RunStatus::Paused,
            input: "delete user 42".into(),
            messages: Vec::new(),
            tools: Vec::new(),
            requirements: Vec::new(),
            approvals: Vec::new(),
            content: None,
            metadata: serde_json::Map::new(),
            usage: Usage::default(),
            member_run_ids: Vec::new(),
            delegations: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    async fn open(url: &str, schema: &str) -> (PostgresDb, Layout) {
        let db = PostgresDb::builder().url(url).schema(schema).build().await.unwrap();
        (db, Layout::new(Some(schema), &TableNames::default()).unwrap())
    }

    /// A store on `schema`, its layout, and a connection listening on its approvals' channel.
    async fn open_listening(url: &str, schema: &str) -> (PostgresDb, Layout, PgListener) {
        let (db, layout) = open(url, schema).await;
        let mut listener = PgListener::connect(url).await.unwrap();
        listener.listen(&channel(&layout)).await.unwrap();
        (db, layout, listener)
    }

    /// Runs `sql` (statements without parameters) on `session`.
    async fn raw(session: &mut PgConnection, sql: &str) {
        session.execute(sqlx::raw_sql(sql)).await.unwrap();
    }

    /// The payloads of the next `n` announcements `listener` hears, in their order.
    async fn payloads(listener: &mut PgListener, n: usize) -> Vec<String> {
        let mut payloads = Vec::with_capacity(n);
        for _ in 0..n {
            payloads.push(listener.recv().await.unwrap().payload().to_owned());
        }
        payloads
    }

    /// Waits, up to [`PATIENCE`], until `condition` holds.
    async fn eventually<Fut: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> Fut) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !condition().await {
            assert!(tokio::time::Instant::now() < deadline, "gave up waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The backends that have finished `LISTEN`ing on `channel`, other than the caller's.
    async fn listening_backends(db: &PostgresDb, channel: &str) -> Vec<i32> {
        let sql = "SELECT pid FROM pg_stat_activity \
                   WHERE strpos(query, $1) > 0 AND state = 'idle' AND pid <> pg_backend_pid()";
        let listen = format!("LISTEN \"{channel}\"");
        sqlx::query_scalar(sql)
            .bind(listen)
            .fetch_all(&mut *db.inner.pools.reader.acquire_lane().await.unwrap())
            .await
            .unwrap()
    }

    /// `UPDATE`s row `id` of `approvals` to approved, as a client other than kern would.
    fn resolve_sql(approvals: &str, id: &str) -> String {
        format!(
            "UPDATE {approvals} SET status = 'approved', resolved_by = 'admin', resolved_at = now() WHERE id = '{id}'"
        )
    }

    #[tokio::test]
    async fn rows_that_leave_pending_or_are_deleted_are_announced_by_the_store_and_by_the_trigger() {
        on_fresh_schema(|url, schema| async move {
            let (db, layout, mut listener) = open_listening(&url, &schema).await;
            let (resolved, deleted, expiring, untouched) = (approval("a"), approval("b"), approval("c"), approval("d"));
            let expiring = Approval { expires_at: Some(kern_core::now()), ..expiring };
            let mut paused = run("run-1");
            let rows = [resolved.clone(), deleted.clone(), expiring, untouched, approval("e")];
            db.save_runs(std::slice::from_ref(&paused), &rows, &[]).await.unwrap();

            // Neither a run-status update (the run's save sets it on its rows) nor a second
            // resolution leaves `pending`: had either been announced, it would come first below.
            paused.status = RunStatus::Running;
            db.save_runs(std::slice::from_ref(&paused), &[], &[]).await.unwrap();
            db.update_approval(&resolved.id, ApprovalUpdate::approve("admin")).await.unwrap();
            db.update_approval(&resolved.id, ApprovalUpdate::reject("admin")).await.unwrap_err();
            db.delete_approval(&deleted.id).await.unwrap();
            assert_eq!(db.expire_approvals(kern_core::now()).await.unwrap(), 1);
            // Another client's write, which its trigger announces.
            let mut session = PgConnection::connect(&url).await.unwrap();
            raw(&mut session, &resolve_sql(&layout.qualified(&layout.approvals), "e")).await;

            assert_eq!(payloads(&mut listener, 4).await, ["a", "b", "c", "e"]);
            db.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_session_announces_as_its_version_says_and_never_its_rollbacks() {
        on_fresh_schema(|url, schema| async move {
            let (db, layout, mut listener) = open_listening(&url, &schema).await;
            let ids = ["client", "deferred", "rolled-back", "outside", "marker-1", "marker-2", "marker-3"];
            db.save_runs(&[run("run-1")], &ids.map(approval), &[]).await.unwrap();
            let approvals = layout.qualified(&layout.approvals);
            let resolve = |id: &str| resolve_sql(&approvals, id);
            let mut session = PgConnection::connect(&url).await.unwrap();

            // A session whose store announces itself: its trigger announces nothing. Had it,
            // the announcement would come before the store's own.
            raw(&mut session, &format!("SET {DEFER_SETTING} = '{CLIENT_ANNOUNCES}'")).await;
            raw(&mut session, &resolve("client")).await;
            db.update_approval("marker-1", ApprovalUpdate::approve("admin")).await.unwrap();
            assert_eq!(listener.recv().await.unwrap().payload(), "marker-1");

            // A session of version 11 (a process not yet upgraded) notes what it commits, and
            // sends it when told; what it rolled back, never.
            raw(&mut session, &format!("SET {DEFER_SETTING} = 'on'")).await;
            raw(&mut session, &format!("BEGIN; {}; COMMIT", resolve("deferred"))).await;
            raw(&mut session, &format!("BEGIN; {}; ROLLBACK", resolve("rolled-back"))).await;
            db.update_approval("marker-2", ApprovalUpdate::approve("admin")).await.unwrap();
            assert_eq!(listener.recv().await.unwrap().payload(), "marker-2");
            let send_notes = format!("SELECT {}()", announce_function(&layout));
            raw(&mut session, &send_notes).await;
            assert_eq!(listener.recv().await.unwrap().payload(), "deferred");

            // A writer that says nothing announces as it commits.
            raw(&mut session, &format!("RESET {DEFER_SETTING}")).await;
            raw(&mut session, &resolve("outside")).await;
            assert_eq!(listener.recv().await.unwrap().payload(), "outside");
            // Sent notes are cleared.
            raw(&mut session, &send_notes).await;
            db.update_approval("marker-3", ApprovalUpdate::approve("admin")).await.unwrap();
            assert_eq!(listener.recv().await.unwrap().payload(), "marker-3");
            db.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn the_store_tells_its_triggers_that_it_announces_from_version_12() {
        on_fresh_schema(|url, schema| async move {
            let setting = |db: PostgresDb| async move {
                let sql = format!("SELECT current_setting('{DEFER_SETTING}', true)");
                let mut conn = db.inner.pools.writer.acquire_lane().await.unwrap();
                let setting: Option<String> = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await.unwrap();
                drop(conn);
                db.close().await;
                setting
            };
            let builder = PostgresDb::builder().url(&url).schema(&schema);
            let older = builder.clone().__schema_version(CLIENT_NOTIFY_VERSION - 1).build().await.unwrap();
            assert_eq!(setting(older).await, None, "a build of version 11 leaves its triggers to announce");
            assert_eq!(setting(builder.build().await.unwrap()).await.as_deref(), Some(CLIENT_ANNOUNCES));
        })
        .await;
    }

    #[tokio::test]
    async fn a_sweep_names_its_rows_batch_by_batch() {
        on_fresh_schema(|url, schema| async move {
            let (db, _, mut listener) = open_listening(&url, &schema).await;
            let now = kern_core::now();
            let expiring = |n: usize| Approval { expires_at: Some(now), ..approval(&format!("expiring-{n}")) };
            db.save_runs(&[run("run-1")], &[expiring(0), expiring(1)], &[]).await.unwrap();
            assert_eq!(db.expire_approvals(now).await.unwrap(), 2);
            assert_eq!(listener.recv().await.unwrap().payload(), "expiring-0");
            assert_eq!(listener.recv().await.unwrap().payload(), "expiring-1");

            // More rows than one announcement names, and than a sweep expires in one
            // transaction: each batch names its own, so that none wakes every waiter.
            let mut rows: Vec<Approval> = (2..=MAX_ANNOUNCED_ROWS + 2).map(expiring).collect();
            rows.push(approval("marker"));
            db.save_runs(&[], &rows, &[]).await.unwrap();
            assert_eq!(db.expire_approvals(now).await.unwrap(), (MAX_ANNOUNCED_ROWS + 1) as u64);
            db.update_approval("marker", ApprovalUpdate::approve("admin")).await.unwrap();
            let mut named = std::collections::HashSet::new();
            loop {
                let payload = listener.recv().await.unwrap().payload().to_owned();
                if payload == "marker" {
                    break;
                }
                assert!(!payload.is_empty(), "a row named, not every waiter woken");
                named.insert(payload);
            }
            assert_eq!(named.len(), MAX_ANNOUNCED_ROWS + 1);
            db.close().await;
        })
        .await;
    }

    /// Concurrent commits, whose announcements go out together when they end while a send is
    /// under way, are each announced: none is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_are_each_announced() {
        on_fresh_schema(|url, schema| async move {
            let (db, _, mut listener) = open_listening(&url, &schema).await;
            let ids: Vec<String> = (0..40).map(|n| format!("row-{n}")).collect();
            let rows: Vec<Approval> = ids.iter().map(|id| approval(id)).collect();
            db.save_runs(&[run("run-1")], &rows, &[]).await.unwrap();
            let decisions: Vec<_> = ids
                .iter()
                .map(|id| {
                    let (db, id) = (db.clone(), id.clone());
                    tokio::spawn(async move { db.update_approval(&id, ApprovalUpdate::approve("admin")).await })
                })
                .collect();
            for decision in decisions {
                decision.await.unwrap().unwrap();
            }
            let mut announced = payloads(&mut listener, ids.len()).await;
            announced.sort();
            let mut expected = ids.clone();
            expected.sort();
            assert_eq!(announced, expected);
            db.close().await;
        })
        .await;
    }

    /// The announcing connection, ended by the server while idle (a restart, an idle timeout),
    /// costs no announcement: the send is tried again on a new connection.
    #[tokio::test]
    async fn an_announcement_outlives_its_lost_connection() {
        on_fresh_schema(|url, schema| async move {
            let (db, layout, mut listener) = open_listening(&url, &schema).await;
            let rows = [approval("first"), approval("second")];
            db.save_runs(&[run("run-1")], &rows, &[]).await.unwrap();
            db.update_approval("first", ApprovalUpdate::approve("admin")).await.unwrap();
            assert_eq!(listener.recv().await.unwrap().payload(), "first");

            let mut admin = PgConnection::connect(&url).await.unwrap();
            let ended: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            )
            .bind(application_name(&channel(&layout)))
            .fetch_all(&mut admin)
            .await
            .unwrap();
            assert_eq!(ended, [true], "the announcing connection was found and ended");

            db.update_approval("second", ApprovalUpdate::approve("admin")).await.unwrap();
            let announced = tokio::time::timeout(PATIENCE, listener.recv()).await.expect("the second is announced");
            assert_eq!(announced.unwrap().payload(), "second");
            db.close().await;
        })
        .await;
    }

    /// A run's change of status is announced on the trail's channel once it commits (followers
    /// of runs, such as `/events`, read on), a claim too: it writes no event, but it is
    /// announced all the same.
    #[tokio::test]
    async fn each_change_of_a_runs_status_is_announced_as_it_commits() {
        on_fresh_schema(|url, schema| async move {
            let (db, layout) = open(&url, &schema).await;
            let mut listener = PgListener::connect(&url).await.unwrap();
            listener.listen(&events_channel(&layout)).await.unwrap();
            let paused = run("run-1");
            db.save_runs(std::slice::from_ref(&paused), &[], &[]).await.unwrap();
            let saved = tokio::time::timeout(PATIENCE, listener.recv()).await.expect("the save is announced");
            assert_eq!(saved.unwrap().payload(), "");

            db.claim_run(&paused.run_id).await.unwrap();
            let claimed = tokio::time::timeout(PATIENCE, listener.recv()).await.expect("the claim is announced");
            assert_eq!(claimed.unwrap().payload(), "");
            db.close().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_listening_connection_is_replaced() {
        on_fresh_schema(|url, schema| async move {
            let (db, layout) = open(&url, &schema).await;
            let channel = channel(&layout);
            // Waiters of their own, which only the listener wakes: the store's writes wake the
            // store's waiters.
            let waiters = Arc::new(ResolutionWaiters::new());
            let options = PgConnectOptions::from_str(&url).unwrap();
            let listener = Listener::new(options, PATIENCE, &layout, waiters.clone(), None);
            eventually("the listener is up", || std::future::ready(listener.is_live())).await;
            let first = listening_backends(&db, &channel).await;
            assert_eq!(first.len(), 1);

            let kill = "SELECT pg_terminate_backend($1)";
            assert!(
                sqlx::query_scalar::<_, bool>(kill)
                    .bind(first[0])
                    .fetch_one(&mut *db.inner.pools.reader.acquire_lane().await.unwrap())
                    .await
                    .unwrap()
            );
            eventually("another connection listens", || async {
                let now = listening_backends(&db, &channel).await;
                listener.is_live() && now.len() == 1 && now != first
            })
            .await;

            let row = approval("row-1");
            db.save_runs(&[], std::slice::from_ref(&row), &[]).await.unwrap();
            let waiter = {
                let (waiters, db, id) = (waiters.clone(), db.clone(), row.id.clone());
                // No polling: only an announcement ends this wait before its timeout.
                tokio::spawn(async move { waiters.wait(&id, PATIENCE, || None, || db.get_approval(&id)).await })
            };
            // Lets the waiter get to its wait; the outcome does not depend on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            db.update_approval(&row.id, ApprovalUpdate::approve("admin")).await.unwrap();
            assert_eq!(waiter.await.unwrap().unwrap().status, ApprovalStatus::Approved);

            listener.close().await;
            assert!(!listener.is_live());
            db.close().await;
        })
        .await;
    }
}
