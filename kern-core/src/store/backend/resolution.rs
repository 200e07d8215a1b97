//! The rules of resolving an approval row, written once for every store: which updates may
//! apply to which rows, what each pause type's resolution data may hold, and why an update that
//! did not apply was refused.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::approval::{Approval, ApprovalStatus, ApprovalUpdate, PauseType};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema;

/// What a rejection (or any resolution but an approval) and the approval of a confirmation may
/// carry: a reason for the record, nothing the paused call could use.
const NOTE_ONLY: &str = "no data or {\"note\": \"..\"}";

/// What approving user input carries: the values the paused call asks for.
const USER_INPUT: &str = "{\"values\": {..}} with an optional \"note\", or the values object itself";

/// What approving an external execution carries: the result the call had elsewhere.
const EXTERNAL_RESULT: &str = "{\"result\": ..} with an optional \"note\"";

/// The rules of one [`Store::update_approval`](crate::store::Store::update_approval) call.
///
/// A store resolves a row with one compare-and-set that matches only a pending row not past its
/// expiry, so that of concurrent resolutions exactly one wins. These rules decide the rest:
///
/// - [`check`](Self::check) tells whether the update may resolve a row as it stands, and if not,
///   the error naming why: [`Error::ApprovalNotFound`], [`Error::InvalidTransition`] (a resolved
///   or expired row, a move back to pending), [`Error::ApprovalConflict`] (an `expected_status`
///   the row does not have), [`Error::InvalidResolution`] (data that does not fit the paused
///   call, see below). A store that holds the row under a lock checks it and applies the update
///   when the check passes: a row that passes is one the compare-and-set matches.
/// - [`needs_check`](Self::needs_check) tells whether a store that cannot lock the row must read
///   and check it before its compare-and-set; [`fits_confirmation`](Self::fits_confirmation)
///   whether a compare-and-set also requiring `pause_type = confirmation` may apply the update
///   with no read at all.
/// - [`refusal`](Self::refusal) names why a compare-and-set matched no row, from the row read
///   after it.
///
/// Resolution data, by the row's pause type, when the update approves: a confirmation takes
/// nothing or `{"note": ".."}`; user input takes `{"values": {..}}` (or the values object
/// itself) with an optional note, the values fitting the call's schema; an external execution
/// takes `{"result": ..}` with an optional note. Any other resolution takes nothing or a note.
/// Unknown keys are refused, and a note is text.
#[derive(Debug, Clone, Copy)]
pub struct ResolutionRules<'a> {
    id: &'a str,
    update: &'a ApprovalUpdate,
    now: DateTime<Utc>,
}

impl<'a> ResolutionRules<'a> {
    /// The rules for resolving row `id` with `update` at `now` (the time the store stamps on
    /// the row, which also decides whether it has expired).
    pub fn new(id: &'a str, update: &'a ApprovalUpdate, now: DateTime<Utc>) -> Self {
        ResolutionRules { id, update, now }
    }

    /// True when the compare-and-set alone cannot decide the update, so the row must be read
    /// and [`check`](Self::check)ed before it: an approval (its data must fit the row's pause
    /// type), a move to pending (which the compare-and-set would apply), data no resolution but
    /// an approval may hold, and an update naming no resolver (each refused, but only once the
    /// row is known to exist).
    pub fn needs_check(&self) -> bool {
        if self.update.resolved_by.is_none() {
            return true;
        }
        match self.update.status {
            ApprovalStatus::Pending | ApprovalStatus::Approved => true,
            _ => note_only(self.update.resolution_data.as_ref()).is_err(),
        }
    }

    /// True when the update approves with data a confirmation may hold. A compare-and-set that
    /// also requires `pause_type = confirmation` then decides it alone: most approvals confirm
    /// a call, and skip the read this way. When it matches no row, the store goes on as for any
    /// update that [`needs_check`](Self::needs_check).
    pub fn fits_confirmation(&self) -> bool {
        self.update.status == ApprovalStatus::Approved
            && self.update.resolved_by.is_some()
            && note_only(self.update.resolution_data.as_ref()).is_ok()
    }

    /// Decides whether the update may resolve `row` (as stored, `None` when there is none):
    /// `Ok` exactly when the compare-and-set would match it and the data fits, otherwise the
    /// error naming why, in this order: not found, a row decided only by principals, expired,
    /// an unexpected status, a forbidden transition, no resolver (every decision names who made
    /// it), data that does not fit.
    pub fn check(&self, row: Option<&Approval>) -> Result<()> {
        let id = || self.id.to_owned();
        let to = self.update.status;
        let row = row.ok_or_else(|| Error::ApprovalNotFound(id()))?;
        if row.needs_principals() {
            return Err(Error::DecideAsPrincipal { id: id() });
        }
        if row.status == ApprovalStatus::Expired || row.is_expired_at(self.now) {
            return Err(Error::InvalidTransition { id: id(), from: ApprovalStatus::Expired, to });
        }
        if let Some(expected) = self.update.expected_status.filter(|expected| *expected != row.status) {
            return Err(Error::ApprovalConflict { id: id(), expected, actual: row.status });
        }
        if row.status.is_resolved() || to == ApprovalStatus::Pending {
            return Err(Error::InvalidTransition { id: id(), from: row.status, to });
        }
        match &self.update.resolved_by {
            Some(resolved_by) => limits::check_name("resolved_by", resolved_by)?,
            None => {
                let reason = "every decision names who made it, for the trail".to_owned();
                return Err(Error::InvalidInput { field: "resolved_by", reason });
            }
        }
        self.check_data_of(row)
    }

    /// Whether the update's resolution data fits `row`'s paused call, as [`check`](Self::check)
    /// decides last: [`Error::InvalidResolution`] when it does not.
    pub fn check_data_of(&self, row: &Approval) -> Result<()> {
        self.check_data(row).map_err(|reason| Error::InvalidResolution { id: self.id.to_owned(), reason })
    }

    /// The error for a compare-and-set that matched no row; `row` is the row read after it.
    pub fn refusal(&self, row: Option<&Approval>) -> Error {
        match self.check(row) {
            Err(err) => err,
            // Read pending after a compare-and-set that missed it: the update expected
            // another status, or the row was replaced in between.
            Ok(()) => Error::ApprovalConflict {
                id: self.id.to_owned(),
                expected: self.update.expected_status.unwrap_or(ApprovalStatus::Pending),
                actual: row.map_or(ApprovalStatus::Pending, |row| row.status),
            },
        }
    }

    /// Whether the resolution data fits `row`; the reason when it does not. An approved call
    /// takes its values or result from the row alone, so approving user input needs every
    /// required value (fitting the schema), and approving an external execution its result.
    fn check_data(&self, row: &Approval) -> std::result::Result<(), String> {
        let data = self.update.resolution_data.as_ref();
        if self.update.status != ApprovalStatus::Approved {
            return note_only(data)
                .map_err(|problem| format!("a {} resolution takes {NOTE_ONLY}: {problem}", self.update.status));
        }
        match row.pause_type {
            PauseType::Confirmation => {
                note_only(data).map_err(|problem| format!("approving a confirmation takes {NOTE_ONLY}: {problem}"))
            }
            PauseType::UserInput => {
                let schema = row
                    .requirement()
                    .and_then(|r| r.user_input_schema.as_ref())
                    .ok_or("the paused call asks for no user input")?;
                let values = user_input_values(data)
                    .map_err(|problem| format!("approving user input takes {USER_INPUT}: {problem}"))?;
                schema::validate(schema, values).map_err(|error| error.to_string())
            }
            PauseType::ExternalExecution => external_result(data)
                .map_err(|problem| format!("approving an external execution takes {EXTERNAL_RESULT}: {problem}")),
        }
    }
}

/// Checks data that may be nothing or a note.
fn note_only(data: Option<&Value>) -> std::result::Result<(), String> {
    data.map_or(Ok(()), |data| fields(data, &["note"]).map(drop))
}

/// The values of user-input data: under `values`, or the object itself when it has no such key.
fn user_input_values(data: Option<&Value>) -> std::result::Result<&Value, String> {
    let data = data.ok_or("no data")?;
    let object = data.as_object().ok_or_else(|| format!("got {}", kind(data)))?;
    match object.get("values") {
        Some(values) => {
            fields(data, &["values", "note"])?;
            Ok(values)
        }
        None => Ok(data),
    }
}

/// Checks external-execution data: a `result`, and perhaps a note.
fn external_result(data: Option<&Value>) -> std::result::Result<(), String> {
    let object = fields(data.ok_or("no data")?, &["result", "note"])?;
    if object.contains_key("result") { Ok(()) } else { Err("no `result`".into()) }
}

/// `data` as an object with no key but `allowed`, whose `note`, when it has one, is text.
fn fields<'d>(data: &'d Value, allowed: &[&str]) -> std::result::Result<&'d Map<String, Value>, String> {
    let object = data.as_object().ok_or_else(|| format!("got {}", kind(data)))?;
    if let Some(key) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!("unknown key `{key}`"));
    }
    match object.get("note") {
        Some(note) if !note.is_string() => Err(format!("the note must be a string, got {}", kind(note))),
        _ => Ok(object),
    }
}

/// What kind of JSON value `value` is, for an error message (the value may be large).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;
    use crate::approval::{ApprovalType, SourceType};
    use crate::run::{RunRequirement, RunStatus, ToolCallStatus, ToolExecution};

    fn row(pause_type: PauseType) -> Approval {
        let now = crate::now();
        let schema = json!({
            "type": "object",
            "properties": { "reason": { "type": "string" } },
            "required": ["reason"],
            "additionalProperties": false,
        });
        let call = ToolExecution {
            tool_call_id: "call-1".into(),
            tool_name: "delete_user_data".into(),
            tool_args: json!({}),
            status: ToolCallStatus::Paused,
            result: None,
            approval_id: None,
        };
        let schema = (pause_type == PauseType::UserInput).then_some(schema);
        Approval {
            id: "row-1".into(),
            run_id: "run-1".into(),
            session_id: "session-1".into(),
            status: ApprovalStatus::Pending,
            approval_type: ApprovalType::Required,
            pause_type,
            source_type: SourceType::Agent,
            source_name: None,
            agent_id: None,
            team_id: None,
            user_id: None,
            tool_name: "delete_user_data".into(),
            tool_args: json!({}),
            tool_call_id: "call-1".into(),
            requirements: vec![RunRequirement::new(call, pause_type, schema)],
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

    fn update(status: ApprovalStatus, data: Option<Value>) -> ApprovalUpdate {
        ApprovalUpdate {
            expected_status: None,
            status,
            resolved_by: Some("admin".into()),
            resolved_at: None,
            resolution_data: data,
        }
    }

    fn check(row: &Approval, update: &ApprovalUpdate) -> Result<()> {
        ResolutionRules::new(&row.id, update, crate::now()).check(Some(row))
    }

    /// Asserts that `data` is refused for `status` on a row of `pause_type`, with a reason
    /// that names `expected` (the shape the data should have had).
    fn assert_refused(pause_type: PauseType, status: ApprovalStatus, data: Value, expected: &str) {
        let err = check(&row(pause_type), &update(status, Some(data.clone()))).unwrap_err();
        let Error::InvalidResolution { id, reason } = &err else { panic!("{data}: {err:?}") };
        assert_eq!(id, "row-1");
        assert!(reason.contains(expected), "{data}: {reason}");
    }

    #[test]
    fn a_confirmation_is_approved_with_nothing_or_a_note() {
        let confirmation = row(PauseType::Confirmation);
        for data in [None, Some(json!({})), Some(json!({ "note": "checked" }))] {
            check(&confirmation, &update(ApprovalStatus::Approved, data.clone())).unwrap();
            assert!(
                ResolutionRules::new("row-1", &update(ApprovalStatus::Approved, data), crate::now())
                    .fits_confirmation()
            );
        }
        for data in [json!(42), json!("x"), json!(null), json!({ "values": {} }), json!({ "note": 5 })] {
            assert_refused(PauseType::Confirmation, ApprovalStatus::Approved, data.clone(), NOTE_ONLY);
            let approve = update(ApprovalStatus::Approved, Some(data));
            assert!(!ResolutionRules::new("row-1", &approve, crate::now()).fits_confirmation());
        }
    }

    #[test]
    fn every_other_resolution_takes_nothing_or_a_note() {
        for pause_type in PauseType::ALL.iter().copied() {
            for status in [ApprovalStatus::Rejected, ApprovalStatus::Cancelled, ApprovalStatus::Expired] {
                for data in [None, Some(json!({ "note": "not now" }))] {
                    let update = update(status, data);
                    check(&row(pause_type), &update).unwrap();
                    assert!(!ResolutionRules::new("row-1", &update, crate::now()).needs_check());
                }
                for data in [json!({ "values": { "reason": "x" } }), json!({ "result": 1 }), json!("no")] {
                    assert_refused(pause_type, status, data.clone(), NOTE_ONLY);
                    let update = update(status, Some(data));
                    assert!(ResolutionRules::new("row-1", &update, crate::now()).needs_check());
                }
            }
        }
    }

    #[test]
    fn user_input_takes_values_wrapped_or_flat_with_an_optional_note() {
        let input = row(PauseType::UserInput);
        for data in [
            json!({ "values": { "reason": "asked" } }),
            json!({ "values": { "reason": "asked" }, "note": "ok" }),
            json!({ "reason": "asked" }),
        ] {
            check(&input, &update(ApprovalStatus::Approved, Some(data))).unwrap();
        }
        assert_refused(PauseType::UserInput, ApprovalStatus::Approved, json!({ "values": {}, "extra": 1 }), USER_INPUT);
        assert_refused(PauseType::UserInput, ApprovalStatus::Approved, json!("asked"), USER_INPUT);
        assert_refused(PauseType::UserInput, ApprovalStatus::Approved, json!({ "values": {} }), "reason");
        let err = check(&input, &update(ApprovalStatus::Approved, None)).unwrap_err();
        assert!(matches!(err, Error::InvalidResolution { .. }), "{err:?}");
    }

    #[test]
    fn an_external_execution_takes_its_result_with_an_optional_note() {
        let external = row(PauseType::ExternalExecution);
        for data in [json!({ "result": null }), json!({ "result": { "rows": 3 }, "note": "done" })] {
            check(&external, &update(ApprovalStatus::Approved, Some(data))).unwrap();
        }
        for data in [json!({ "note": "done" }), json!({ "result": 1, "extra": 2 }), json!([1])] {
            assert_refused(PauseType::ExternalExecution, ApprovalStatus::Approved, data, EXTERNAL_RESULT);
        }
    }

    #[test]
    fn the_lifecycle_comes_before_the_data() {
        let approve = update(ApprovalStatus::Approved, Some(json!(42)));
        let rules = ResolutionRules::new("row-1", &approve, crate::now());
        assert!(matches!(rules.check(None), Err(Error::ApprovalNotFound(id)) if id == "row-1"));
        let lapsed =
            Approval { expires_at: Some(crate::now() - TimeDelta::seconds(1)), ..row(PauseType::Confirmation) };
        assert!(matches!(
            rules.check(Some(&lapsed)),
            Err(Error::InvalidTransition { from: ApprovalStatus::Expired, to: ApprovalStatus::Approved, .. })
        ));
        let rejected = Approval { status: ApprovalStatus::Rejected, ..row(PauseType::Confirmation) };
        assert!(matches!(
            rules.check(Some(&rejected)),
            Err(Error::InvalidTransition { from: ApprovalStatus::Rejected, .. })
        ));
        let expecting = ApprovalUpdate { expected_status: Some(ApprovalStatus::Approved), ..approve.clone() };
        assert!(matches!(
            ResolutionRules::new("row-1", &expecting, crate::now()).check(Some(&row(PauseType::Confirmation))),
            Err(Error::ApprovalConflict { expected: ApprovalStatus::Approved, actual: ApprovalStatus::Pending, .. })
        ));
    }

    #[test]
    fn a_pending_row_missed_by_the_compare_and_set_is_a_conflict() {
        let approve = ApprovalUpdate::approve("admin");
        let rules = ResolutionRules::new("row-1", &approve, crate::now());
        let refusal = rules.refusal(Some(&row(PauseType::Confirmation)));
        assert!(
            matches!(
                refusal,
                Error::ApprovalConflict { expected: ApprovalStatus::Pending, actual: ApprovalStatus::Pending, .. }
            ),
            "{refusal:?}"
        );
        assert!(matches!(rules.refusal(None), Error::ApprovalNotFound(_)));
    }
}
