//! The trail: an append-only log of what happened to each approval row, from its creation to the
//! execution of its call, that tells when it was tampered with.
//!
//! Each row has a chain of [`TrailEvent`]s: the first follows [`GENESIS`], each later one names
//! the hash of the one before it, and every hash is SHA-256 over a canonical encoding of the
//! event (see [`TrailEvent::compute_hash`]). A chain per row, rather than one for the whole
//! store, lets the writers of different rows commit side by side; the rows' own locks already
//! order the writers of one row. Stores write an event in the same transaction as the change it
//! records, and [`verify_row`] (which `Store::verify_trail` runs over every row) recomputes each
//! chain and compares the rows, and the votes stored on them, with what their events say, naming
//! the first link that does not hold. A [`Checkpoint`] kept elsewhere catches what the chains cannot: a row removed whole
//! with its chain, or chains rebuilt by a writer with the database's own rights.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::approval::{Approval, ApprovalStatus, Principal, Vote, VoteKind};
use crate::text_enum::text_enum;
use crate::timestamp;

/// The `prev_hash` of the first event of every chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The principal of events that kern records on its own: an expiry found by the sweep or by a
/// continue.
pub const SYSTEM_PRINCIPAL: &str = "kern";

text_enum! {
    /// What an event records.
    EventKind {
        /// The row was opened (a pause), or written already decided (an audit row).
        Created = "created",
        /// A principal voted on a row with a policy.
        Vote = "vote",
        /// The row was approved.
        Approved = "approved",
        /// The row was rejected.
        Rejected = "rejected",
        /// An approver changed the call's arguments.
        Edited = "edited",
        /// Nobody decided before the row's expiry.
        Expired = "expired",
        /// The row was withdrawn.
        Cancelled = "cancelled",
        /// The approved call ran and returned a result.
        Executed = "executed",
        /// The approved call ran and failed.
        Failed = "failed",
    }
}

impl EventKind {
    /// The row status an event of this kind leaves, for the events that resolve a row.
    pub fn resolution(self) -> Option<ApprovalStatus> {
        match self {
            EventKind::Approved => Some(ApprovalStatus::Approved),
            EventKind::Rejected => Some(ApprovalStatus::Rejected),
            EventKind::Expired => Some(ApprovalStatus::Expired),
            EventKind::Cancelled => Some(ApprovalStatus::Cancelled),
            _ => None,
        }
    }
}

/// One event of a row's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailEvent {
    /// The store's order of all events, across rows; assigned when stored (0 before).
    pub seq: i64,
    /// The row the event belongs to.
    pub approval_id: String,
    /// The run of that row.
    pub run_id: String,
    /// The event's place in its row's chain, from 1.
    pub index: u32,
    /// What happened.
    pub kind: EventKind,
    /// Who did it: a principal's id, an agent or team (`agent:<id>`, `team:<id>`) for what a
    /// run did, or [`SYSTEM_PRINCIPAL`].
    pub principal: String,
    /// When.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub at: DateTime<Utc>,
    /// What was decided or done; its fields depend on `kind`.
    pub data: Value,
    /// The hash of the previous event of the chain, or [`GENESIS`].
    pub prev_hash: String,
    /// SHA-256 of this event's canonical encoding, in hex.
    pub hash: String,
}

impl TrailEvent {
    /// The next event of the chain whose last event is `prev` (`None` for a new chain), hashed.
    pub fn next(
        prev: Option<(u32, &str)>,
        approval_id: &str,
        run_id: &str,
        kind: EventKind,
        principal: &str,
        at: DateTime<Utc>,
        data: Value,
    ) -> Self {
        let (index, prev_hash) = prev.map_or((1, GENESIS), |(index, hash)| (index + 1, hash));
        let mut event = TrailEvent {
            seq: 0,
            approval_id: approval_id.to_owned(),
            run_id: run_id.to_owned(),
            index,
            kind,
            principal: principal.to_owned(),
            at,
            data,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }

    /// SHA-256, in hex, of the canonical encoding of everything but `seq` and `hash`: JSON
    /// with keys sorted at every level, no whitespace, and the time as RFC 3339 with
    /// microseconds.
    pub fn compute_hash(&self) -> String {
        let at = timestamp::micros(&self.at);
        let text = canonical_object(&mut [
            ("approval_id", Field::Text(&self.approval_id)),
            ("run_id", Field::Text(&self.run_id)),
            ("index", Field::Number(self.index.into())),
            ("kind", Field::Text(self.kind.as_str())),
            ("principal", Field::Text(&self.principal)),
            ("at", Field::Text(&at)),
            ("data", Field::Json(&self.data)),
            ("prev_hash", Field::Text(&self.prev_hash)),
        ]);
        hex_sha256(&text)
    }
}

/// The created event's record of a row: a digest of everything about the call that no
/// decision may change, its policy included.
pub fn row_digest(row: &Approval) -> String {
    let (created_at, expires_at) = (timestamp::micros(&row.created_at), row.expires_at.as_ref().map(timestamp::micros));
    // Typed parts become JSON first, as they always were hashed.
    let (requirements, policy) = (json!(row.requirements), json!(row.policy));
    let text = canonical_object(&mut [
        ("id", Field::Text(&row.id)),
        ("run_id", Field::Text(&row.run_id)),
        ("session_id", Field::Text(&row.session_id)),
        ("approval_type", Field::Text(row.approval_type.as_str())),
        ("pause_type", Field::Text(row.pause_type.as_str())),
        ("source_type", Field::Text(row.source_type.as_str())),
        ("agent_id", Field::OptionalText(row.agent_id.as_deref())),
        ("team_id", Field::OptionalText(row.team_id.as_deref())),
        ("user_id", Field::OptionalText(row.user_id.as_deref())),
        ("tool_name", Field::Text(&row.tool_name)),
        ("tool_args", Field::Json(&row.tool_args)),
        ("tool_call_id", Field::Text(&row.tool_call_id)),
        ("expires_at", Field::OptionalText(expires_at.as_deref())),
        ("created_at", Field::Text(&created_at)),
        ("requirements", Field::Json(&requirements)),
        ("policy", Field::Json(&policy)),
    ]);
    hex_sha256(&text)
}

/// A digest of a value (a tool's result, say) for an event that should not carry it whole.
pub fn value_digest(value: &Value) -> String {
    hex_sha256(canonical(value).as_bytes())
}

/// What the created event of `row` says.
pub fn created_data(row: &Approval) -> Value {
    json!({ "tool_name": row.tool_name, "row_digest": row_digest(row) })
}

/// What the event that resolves `row` says: the decision as the row holds it.
pub fn resolution_data(row: &Approval) -> Value {
    decision_data(row.status, row.resolved_by.as_deref(), row.resolution_data.as_ref())
}

/// What a vote's event says, besides its principal.
pub fn vote_data(vote: &Vote) -> Value {
    json!({
        "vote": vote.kind.as_str(),
        "roles": vote.roles,
        "note": vote.note,
        "args": vote.args,
    })
}

/// What the event of a decision says, before a row holds it: what [`resolution_data`] reads
/// off the row once decided so.
pub fn decision_data(status: ApprovalStatus, resolved_by: Option<&str>, resolution_data: Option<&Value>) -> Value {
    json!({
        "status": status.as_str(),
        "resolved_by": resolved_by,
        "resolution_data": resolution_data,
    })
}

/// The principal of what a run did: the agent or team that made the row's call.
pub fn source_principal(row: &Approval) -> String {
    match (&row.agent_id, &row.team_id) {
        (Some(agent), _) => format!("agent:{agent}"),
        (None, Some(team)) => format!("team:{team}"),
        (None, None) => SYSTEM_PRINCIPAL.to_owned(),
    }
}

/// The events that open a new row's chain: `created`, and for a row written already decided
/// (an audit row) the event of its decision, by its resolver.
pub fn opening_events(row: &Approval) -> Vec<TrailEvent> {
    let created = TrailEvent::next(
        None,
        &row.id,
        &row.run_id,
        EventKind::Created,
        &source_principal(row),
        row.created_at,
        created_data(row),
    );
    let decided = resolution_kind(row.status).map(|kind| {
        let principal = row.resolved_by.as_deref().unwrap_or(SYSTEM_PRINCIPAL);
        let at = row.resolved_at.unwrap_or(row.created_at);
        TrailEvent::next(
            Some((created.index, &created.hash)),
            &row.id,
            &row.run_id,
            kind,
            principal,
            at,
            resolution_data(row),
        )
    });
    std::iter::once(created).chain(decided).collect()
}

/// The event kind that resolves a row to `status`; `None` for pending.
pub fn resolution_kind(status: ApprovalStatus) -> Option<EventKind> {
    match status {
        ApprovalStatus::Pending => None,
        ApprovalStatus::Approved => Some(EventKind::Approved),
        ApprovalStatus::Rejected => Some(EventKind::Rejected),
        ApprovalStatus::Expired => Some(EventKind::Expired),
        ApprovalStatus::Cancelled => Some(EventKind::Cancelled),
    }
}

/// Hashes `events` (kind, principal, data) onto the chain of row `approval_id` (of run
/// `run_id`) whose last event is `head` (`None` for an empty chain), all at `at`.
pub fn append(
    head: Option<(u32, &str)>,
    approval_id: &str,
    run_id: &str,
    at: DateTime<Utc>,
    events: impl IntoIterator<Item = (EventKind, String, Value)>,
) -> Vec<TrailEvent> {
    let mut chained: Vec<TrailEvent> = Vec::new();
    for (kind, principal, data) in events {
        let prev = chained.last().map(|event| (event.index, event.hash.as_str())).or(head);
        chained.push(TrailEvent::next(prev, approval_id, run_id, kind, &principal, at, data));
    }
    chained
}

/// An approved call that ran, for the `executed` or `failed` event that the continue which ran
/// it writes with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The row that approved the call.
    pub approval_id: String,
    /// The run of the row. The stores record the event under the row's run whatever this
    /// names, as every event of its chain.
    pub run_id: String,
    /// The call.
    pub tool_call_id: String,
    /// Who ran it: the agent or team (`agent:<id>`, `team:<id>`).
    pub principal: String,
    /// Whether it returned a result or failed.
    pub succeeded: bool,
    /// A digest of the result or error text ([`value_digest`]).
    pub result_digest: String,
    /// Whether a recovery ran it: the continue that died before it may have run it already,
    /// with the same idempotency key.
    pub recovered: bool,
}

impl Execution {
    /// The kind of event it is recorded as.
    pub fn kind(&self) -> EventKind {
        if self.succeeded { EventKind::Executed } else { EventKind::Failed }
    }

    /// What its event says.
    pub fn data(&self) -> Value {
        json!({ "tool_call_id": self.tool_call_id, "result_digest": self.result_digest, "recovered": self.recovered })
    }
}

/// The first link of a trail that does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("approval `{approval_id}`, event {index}: {reason}")]
pub struct BrokenLink {
    /// The row whose chain breaks.
    pub approval_id: String,
    /// The place in the chain where it breaks (0 when the row has no chain at all).
    pub index: u32,
    /// The store's sequence number of the event, when there is one.
    pub seq: Option<i64>,
    /// What does not hold.
    pub reason: String,
}

/// What `Store::verify_trail` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailReport {
    /// How many rows were checked.
    pub approvals: u64,
    /// How many events were checked.
    pub events: u64,
    /// The first link that does not hold, if any.
    pub broken: Option<BrokenLink>,
}

impl TrailReport {
    /// True when every chain holds and every row agrees with its events.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks one row against its chain and its votes: `events` are all of the row's events, in
/// chain order, and `votes` all its stored votes. Each vote stored must be one an event records,
/// and each vote recorded one stored: the votes table takes inserts, and a vote written past
/// kern would count towards a quorum unrecorded. An approved row whose policy has votes decide
/// it must be approved by its quorum of the eligible votes its chain records.
pub fn verify_row(row: &Approval, events: &[TrailEvent], votes: &[Vote]) -> Result<(), BrokenLink> {
    let broken =
        |index: u32, seq: Option<i64>, reason: String| BrokenLink { approval_id: row.id.clone(), index, seq, reason };
    let Some(first) = events.first() else {
        return Err(broken(0, None, "the row has no events: its created event is missing".into()));
    };
    let mut prev_hash = GENESIS;
    let mut resolution: Option<&TrailEvent> = None;
    for (position, event) in events.iter().enumerate() {
        let at = |reason: String| broken(event.index, Some(event.seq), reason);
        let expected_index = u32::try_from(position + 1).unwrap_or(u32::MAX);
        if event.index != expected_index {
            return Err(broken(expected_index, Some(event.seq), format!("event {expected_index} is missing")));
        }
        if event.prev_hash != prev_hash {
            return Err(at("it does not follow the event before it (prev_hash differs)".into()));
        }
        if event.compute_hash() != event.hash {
            return Err(at(format!("its content does not match its hash (a {} event was altered)", event.kind)));
        }
        if event.approval_id != row.id || event.run_id != row.run_id {
            return Err(at("it names another row or run".into()));
        }
        match event.kind {
            EventKind::Created if position > 0 => return Err(at("a second created event".into())),
            kind if position == 0 && kind != EventKind::Created => {
                return Err(at(format!("the chain starts with a {kind} event, not created")));
            }
            EventKind::Vote | EventKind::Edited if resolution.is_some() => {
                return Err(at(format!("a {} event after the row was resolved", event.kind)));
            }
            EventKind::Executed | EventKind::Failed
                if resolution.is_none_or(|resolved| resolved.kind != EventKind::Approved) =>
            {
                return Err(at(format!("a {} event without an approval before it", event.kind)));
            }
            kind if kind.resolution().is_some() => {
                if let Some(earlier) = resolution {
                    return Err(at(format!("the row was already {} by event {}", earlier.kind, earlier.index)));
                }
                resolution = Some(event);
            }
            _ => {}
        }
        prev_hash = &event.hash;
    }
    let mut recorded: Vec<&TrailEvent> = events.iter().filter(|event| event.kind == EventKind::Vote).collect();
    for vote in votes {
        let data = vote_data(vote);
        match recorded.iter().position(|event| event.principal == vote.principal && event.data == data) {
            Some(at) => drop(recorded.swap_remove(at)),
            None => {
                return Err(broken(
                    0,
                    None,
                    format!(
                        "the {} vote of {} is stored, but no event of its chain records it",
                        vote.kind, vote.principal
                    ),
                ));
            }
        }
    }
    if let Some(event) = recorded.first() {
        return Err(broken(
            event.index,
            Some(event.seq),
            format!("it records a vote of {} that the votes table does not hold", event.principal),
        ));
    }
    let created = first.data.get("row_digest").and_then(Value::as_str);
    if created != Some(row_digest(row).as_str()) {
        return Err(broken(
            1,
            Some(first.seq),
            "the row's call differs from the one its created event recorded".into(),
        ));
    }
    let stored = if row.status == ApprovalStatus::Pending { None } else { Some(row.status) };
    match (resolution, stored) {
        (None, None) => Ok(()),
        (None, Some(status)) => {
            Err(broken(0, None, format!("the row is {status}, but no event of its chain resolved it")))
        }
        (Some(event), None) => Err(broken(
            event.index,
            Some(event.seq),
            format!("the row is pending, but event {} {} it", event.index, event.kind),
        )),
        (Some(event), Some(_)) if event.data != resolution_data(row) => Err(broken(
            event.index,
            Some(event.seq),
            "the row's decision (status, resolver or data) differs from the one this event recorded".into(),
        )),
        (Some(event), Some(_)) => match unbacked_approval(row, votes) {
            Some(reason) => Err(broken(event.index, Some(event.seq), reason)),
            None => Ok(()),
        },
    }
}

/// Why approved `row`, whose policy has only votes decide it, is not approved by its `votes`
/// (which its chain's vote events were just found to record, one for one): fewer distinct
/// principals than its quorum approved the call as it was approved (as the model asked, or
/// with the same edit), counting only those the policy lets decide by the roles they held and
/// whose call it is. `None` when the votes make the quorum, or the row is no such row.
fn unbacked_approval(row: &Approval, votes: &[Vote]) -> Option<String> {
    let policy = row.policy.as_ref().filter(|policy| policy.needs_principals())?;
    if row.status != ApprovalStatus::Approved {
        return None;
    }
    let approved_args = row.resolution_data.as_ref().and_then(|data| data.get("args"));
    let mut approvers: Vec<&str> = votes
        .iter()
        .filter(|vote| vote.kind == VoteKind::Approve && vote.args.as_ref() == approved_args)
        .filter(|vote| {
            let voter = Principal { id: vote.principal.clone(), roles: vote.roles.clone() };
            policy.ineligibility(&voter, row.user_id.as_deref()).is_none()
        })
        .map(|vote| vote.principal.as_str())
        .collect();
    approvers.sort_unstable();
    approvers.dedup();
    let quorum = usize::try_from(policy.quorum).unwrap_or(usize::MAX);
    (approvers.len() < quorum).then(|| {
        format!(
            "the row is approved, but its chain records {} eligible approvals of the call as approved where its policy asks {}",
            approvers.len(),
            policy.quorum
        )
    })
}

/// The broken link of events whose row is gone, if there are any: `chains` are the row ids
/// and events of chains whose row no store table holds.
pub fn orphan<'a>(mut chains: impl Iterator<Item = (&'a String, &'a Vec<TrailEvent>)>) -> Option<BrokenLink> {
    let (id, events) = chains.next()?;
    let first = events.first();
    Some(BrokenLink {
        approval_id: id.clone(),
        index: first.map_or(0, |event| event.index),
        seq: first.map(|event| event.seq),
        reason: "its row is gone: rows are never deleted".to_owned(),
    })
}

/// JSON with object keys sorted at every level and no whitespace: one text per value, whatever
/// order the value was built in (serde_json keeps insertion order when a crate in the build
/// enables its `preserve_order`). Written straight from the value, with no sorted copy of it.
pub fn canonical(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &(impl Serialize + ?Sized), out: &mut Vec<u8>) {
    // Writing a string, number, boolean or null to memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A field of an object hashed by [`canonical_object`], borrowed from what it describes.
enum Field<'a> {
    Text(&'a str),
    /// `null` when absent.
    OptionalText(Option<&'a str>),
    Number(u64),
    Json(&'a Value),
}

/// The [`canonical`] text of the object of `fields`, written from the borrowed fields rather
/// than from an object built of copies of them.
fn canonical_object(fields: &mut [(&str, Field<'_>)]) -> Vec<u8> {
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    for (i, (key, field)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_scalar(*key, &mut out);
        out.push(b':');
        match field {
            Field::Text(text) => write_scalar(*text, &mut out),
            Field::OptionalText(text) => write_scalar(text, &mut out),
            Field::Number(number) => write_scalar(number, &mut out),
            Field::Json(value) => write_canonical(value, &mut out),
        }
    }
    out.push(b'}');
    out
}

/// The whole trail as it stood at one event: a digest folded over every event up to it, in
/// `seq` order, from each event's `seq` and hash (which covers its content and its chain).
///
/// The chains per row catch an event changed or removed inside a chain, but not a row removed
/// whole with its chain, nor chains rebuilt end to end by a writer with the database's own
/// rights. Kept where those writers cannot reach (printed by `kern audit checkpoint`, stored
/// elsewhere), a checkpoint catches both: the trail only grows, so the events up to its `seq`
/// fold to its digest for as long as nobody rewrote them. Its text form is `SEQ:DIGEST`.
///
/// Taken while writers work, it must not end past a gap in the numbers that may still fill (on
/// Postgres an event may commit after one with a higher number): `kern audit checkpoint` stops
/// before the first gap followed by events written less than a minute ago
/// ([`SETTLED_AGE`](crate::follow::SETTLED_AGE)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last event folded in; 0 before the first.
    pub seq: i64,
    /// The digest of the events up to it (hex SHA-256), [`GENESIS`] before the first.
    pub digest: String,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint { seq: 0, digest: GENESIS.to_owned() }
    }
}

impl Checkpoint {
    /// Folds in the next event, by its `seq` and `hash`.
    pub fn absorb(&mut self, seq: i64, hash: &str) {
        self.digest = hex_sha256(format!("{}\n{seq}\n{hash}", self.digest).as_bytes());
        self.seq = seq;
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.digest)
    }
}

/// Why a text is not a [`Checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a checkpoint is written SEQ:DIGEST (an event's number and 64 hex digits): {0}")]
pub struct ParseCheckpointError(String);

impl std::str::FromStr for Checkpoint {
    type Err = ParseCheckpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |why: &str| ParseCheckpointError(why.to_owned());
        let (seq, digest) = text.split_once(':').ok_or_else(|| refuse("there is no `:`"))?;
        let seq = seq
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| refuse("the event's number is not a whole number of 0 or more"))?;
        if digest.len() != 64 || !digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(refuse("the digest is not 64 hex digits"));
        }
        Ok(Checkpoint { seq, digest: digest.to_ascii_lowercase() })
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use chrono::SecondsFormat;
    use serde_json::json;

    #[test]
    fn a_checkpoint_folds_events_in_order_and_reads_back_from_its_text() {
        let fold = |events: &[(i64, &str)]| {
            let mut checkpoint = super::Checkpoint::default();
            events.iter().for_each(|(seq, hash)| checkpoint.absorb(*seq, hash));
            checkpoint
        };
        let whole = fold(&[(1, "a"), (2, "b"), (4, "c")]);
        assert_eq!(whole.seq, 4);
        assert_ne!(whole, fold(&[(1, "a"), (4, "c")]), "an event removed shows");
        assert_ne!(whole, fold(&[(2, "b"), (1, "a"), (4, "c")]), "the order counts");
        assert_ne!(whole, fold(&[(1, "a"), (2, "x"), (4, "c")]), "a hash changed shows");
        assert_eq!(whole.to_string().parse::<super::Checkpoint>(), Ok(whole.clone()));
        assert_eq!("0:".to_owned() + super::GENESIS, super::Checkpoint::default().to_string());
        let shouted = whole.to_string().to_ascii_uppercase();
        assert_eq!(shouted.parse::<super::Checkpoint>(), Ok(whole.clone()), "hex is read in either case");
        let (negative, not_hex) = (format!("-1:{}", super::GENESIS), format!("4:{}", "g".repeat(64)));
        for bad in ["", "4", "x:ab", "4:abc", &negative, &not_hex] {
            assert!(bad.parse::<super::Checkpoint>().is_err(), "{bad}");
        }
    }

    use super::*;
    use crate::approval::{ApprovalType, OnExpire, PauseType, RowPolicy, SourceType, VoteKind};
    use crate::run::{RunRequirement, RunStatus, ToolCallStatus, ToolExecution};

    /// The canonical text as it was first defined: a copy of the value with its keys sorted,
    /// written compactly. Stored trails were hashed over it, so the text must never change.
    fn sorted_copy(value: &Value) -> String {
        fn sorted(value: &Value) -> Value {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    Value::Object(keys.into_iter().map(|key| (key.clone(), sorted(&map[key]))).collect())
                }
                Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
                other => other.clone(),
            }
        }
        sorted(value).to_string()
    }

    #[test]
    fn the_canonical_text_is_the_sorted_copys() {
        let value = json!({
            "zeta": [1, -2.5, 1e300, null, true, {"b": "é\u{0}\"\\\n", "a": []}],
            "alpha": {"nested": {"y": 1, "x": [{"k": "v"}]}, "": "empty key"},
            "Ωmega": "\u{1F600} \t control \u{1f}",
            "n": 12345678901234567890u64,
        });
        assert_eq!(canonical(&value), sorted_copy(&value));
        assert!(canonical(&value).starts_with(r#"{"alpha":{"":"empty key","nested":{"x":[{"k":"v"}],"y":1}},"n":"#));
        for scalar in [json!(null), json!(0.1), json!("plain"), json!([]), json!({})] {
            assert_eq!(canonical(&scalar), sorted_copy(&scalar));
        }
    }

    /// An event's hash as it was first defined: over the canonical text of an object built of
    /// copies of its fields.
    fn hash_by_copy(event: &TrailEvent) -> String {
        let body = json!({
            "approval_id": event.approval_id,
            "run_id": event.run_id,
            "index": event.index,
            "kind": event.kind.as_str(),
            "principal": event.principal,
            "at": event.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "data": event.data,
            "prev_hash": event.prev_hash,
        });
        hex_sha256(canonical(&body).as_bytes())
    }

    /// A row's digest as it was first defined, likewise.
    fn row_digest_by_copy(row: &Approval) -> String {
        let content = json!({
            "id": row.id,
            "run_id": row.run_id,
            "session_id": row.session_id,
            "approval_type": row.approval_type.as_str(),
            "pause_type": row.pause_type.as_str(),
            "source_type": row.source_type.as_str(),
            "agent_id": row.agent_id,
            "team_id": row.team_id,
            "user_id": row.user_id,
            "tool_name": row.tool_name,
            "tool_args": row.tool_args,
            "tool_call_id": row.tool_call_id,
            "expires_at": row.expires_at.map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            "created_at": row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "requirements": row.requirements,
            "policy": row.policy,
        });
        hex_sha256(canonical(&content).as_bytes())
    }

    fn rows() -> Vec<Approval> {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let call = ToolExecution {
            tool_call_id: "call \"1\"".into(),
            tool_name: "transfer".into(),
            tool_args: json!({"to": "Zoë", "amount": 12.5, "memo": "line\nbreak \u{0}"}),
            status: ToolCallStatus::Paused,
            result: None,
            approval_id: Some("row-é".into()),
        };
        let plain = Approval {
            id: "row-é".into(),
            run_id: "run-1".into(),
            session_id: "session \u{1F600}".into(),
            status: ApprovalStatus::Pending,
            approval_type: ApprovalType::Required,
            pause_type: PauseType::Confirmation,
            source_type: SourceType::Agent,
            source_name: None,
            agent_id: Some("agent-1".into()),
            team_id: None,
            user_id: None,
            tool_name: "transfer".into(),
            tool_args: call.tool_args.clone(),
            tool_call_id: call.tool_call_id.clone(),
            requirements: vec![RunRequirement::new(call, PauseType::Confirmation, None)],
            resolution_data: None,
            resolved_by: None,
            resolved_at: None,
            created_at: at,
            updated_at: at,
            expires_at: None,
            run_status: RunStatus::Paused,
            policy: None,
        };
        let policy = RowPolicy {
            approvers: vec!["finance".into(), "ops".into()],
            quorum: 2,
            self_approval: false,
            allow_edit: true,
            on_expire: OnExpire::CancelRun,
            parameters: Some(json!({"type": "object", "properties": {"amount": {"type": "number"}}})),
        };
        let governed = Approval {
            team_id: Some("team-1".into()),
            user_id: Some("u\t1".into()),
            expires_at: Some(at + chrono::Duration::minutes(5)),
            pause_type: PauseType::UserInput,
            policy: Some(policy),
            requirements: Vec::new(),
            ..plain.clone()
        };
        vec![plain, governed]
    }

    #[test]
    fn hashes_and_digests_are_those_of_their_first_definitions() {
        for row in rows() {
            assert_eq!(row_digest(&row), row_digest_by_copy(&row));
            let mut events = opening_events(&row);
            let decided = Approval { status: ApprovalStatus::Rejected, resolved_by: Some("ädmin".into()), ..row };
            let head = events.last().map(|event| (event.index, event.hash.clone())).unwrap();
            let data = resolution_data(&decided);
            events.extend(append(
                Some((head.0, &head.1)),
                &decided.id,
                &decided.run_id,
                decided.created_at,
                [
                    (EventKind::Rejected, "ädmin".to_owned(), data),
                    (
                        EventKind::Vote,
                        "ops \"lead\"".to_owned(),
                        json!({"note": null, "roles": ["ops"], "n": [1, 2.5]}),
                    ),
                ],
            ));
            for event in &events {
                assert_eq!(event.hash, hash_by_copy(event), "{event:?}");
            }
        }
    }

    /// An approved row whose policy has votes decide it verifies only when its chain records
    /// its quorum of eligible approvals of the call as approved.
    #[test]
    fn an_approval_short_of_its_quorum_is_named() {
        let row = Approval { pause_type: PauseType::Confirmation, ..rows().remove(1) };
        let requester = row.user_id.clone().unwrap();
        let approved = Approval {
            status: ApprovalStatus::Approved,
            resolved_by: Some("bea".into()),
            resolved_at: Some(row.created_at),
            ..row.clone()
        };
        let vote = |principal: &str, roles: &[&str], args: Option<Value>| Vote {
            approval_id: row.id.clone(),
            principal: principal.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            kind: VoteKind::Approve,
            note: None,
            args,
            at: row.created_at,
        };
        let verify = |votes: &[Vote]| {
            let mut events = opening_events(&row);
            let head = events.last().map(|event| (event.index, event.hash.clone())).unwrap();
            let cast = votes.iter().map(|vote| (EventKind::Vote, vote.principal.clone(), vote_data(vote)));
            let decided = (EventKind::Approved, "bea".to_owned(), resolution_data(&approved));
            let chained = append(Some((head.0, &head.1)), &row.id, &row.run_id, row.created_at, cast.chain([decided]));
            events.extend(chained);
            verify_row(&approved, &events, votes)
        };
        assert_eq!(verify(&[vote("ann", &["finance"], None), vote("bea", &["ops"], None)]), Ok(()));
        let short = [
            vec![vote("ann", &["finance"], None)],
            vec![vote("ann", &["finance"], None), vote("bea", &[], None)],
            vec![vote("ann", &["finance"], None), vote(&requester, &["ops"], None)],
            vec![vote("ann", &["finance"], None), vote("bea", &["ops"], Some(json!({"amount": 1})))],
        ];
        for votes in short {
            let broken = verify(&votes).expect_err("one eligible approval of the call is not a quorum of two");
            assert_eq!(broken.index, u32::try_from(votes.len()).unwrap() + 2, "the approved event is named");
            assert!(
                broken.reason.contains("records 1 eligible approvals") && broken.reason.contains("asks 2"),
                "{}",
                broken.reason
            );
        }
    }

    #[test]
    fn a_digest_is_the_lowercase_hex_of_sha256() {
        assert_eq!(hex_sha256(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
