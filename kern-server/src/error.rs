//! What a request that fails answers: an exact status code and `{"detail": "<message>"}`, the
//! reference's error body, with the reference's `error_type` when kern's own error is the cause
//! (a stable name a client branches on where one status code groups several causes). Messages
//! say what went wrong in terms of the request; a database or internal failure is logged in full
//! and answered without its details.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kern_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What the client reads.
    pub detail: String,
    /// The name of kern's error that caused it, when one did.
    pub error_type: Option<&'static str>,
}

/// The body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub detail: String,
    /// Which of kern's errors it is, when one is the cause (`approval_conflict`,
    /// `run_taken_over`, `not_eligible`...): stable, unlike `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<&'static str>,
}

impl ApiError {
    /// An error with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError { status, detail: detail.into(), error_type: None }
    }

    /// 400: the request cannot be carried out as given.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no credential, or one that signs nobody in.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: the caller is known and may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404 with the reference's message for an approval row, also answered for another user's
    /// row, so that isolation does not reveal which rows exist.
    pub fn approval_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Approval not found").typed("approval_not_found")
    }

    /// 404 for a run.
    pub fn run_not_found(run_id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No runs found for run ID {run_id}")).typed("run_not_found")
    }

    /// The body this error is answered with.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody { detail: self.detail.clone(), error_type: self.error_type }
    }

    /// This error named as kern's `error_type` names it: see [`error_type`].
    pub(crate) fn typed(self, error_type: &'static str) -> Self {
        ApiError { error_type: Some(error_type), ..self }
    }

    /// 404 with the reference's message for a session, also answered for another user's
    /// session under isolation.
    pub fn session_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Session not found").typed("session_not_found")
    }

    /// 409: the resource is not in a state that allows the request.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: a parameter or body field that is not valid.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let error_type = Some(error_type(&err));
        let detail = err.to_string();
        let answer = match err {
            Error::ApprovalNotFound(_) => Self::approval_not_found(),
            Error::RunNotFound(run_id) => Self::run_not_found(&run_id),
            Error::ApprovalConflict { actual, .. } => {
                Self::conflict(format!("Approval is already '{actual}' and cannot be resolved"))
            }
            Error::InvalidTransition { .. }
            | Error::DuplicateVote { .. }
            | Error::RunNotPaused { .. }
            | Error::RunNotStale { .. }
            | Error::RunTakenOver { .. }
            | Error::MemberRun { .. }
            | Error::DecideAsPrincipal { .. } => Self::conflict(detail),
            Error::NotEligible { .. } | Error::EditNotAllowed { .. } => Self::forbidden(detail),
            Error::ForeignRun { run_id, .. } => Self::run_not_found(&run_id),
            Error::InvalidInput { .. }
            | Error::InvalidResolution { .. }
            | Error::InvalidUserInput { .. }
            | Error::UnknownRequirement { .. }
            | Error::DuplicateAnswer { .. }
            | Error::AuditWithoutResolver { .. } => Self::unprocessable(detail),
            // The reference's answer to a continue whose rows are not all decided.
            Error::ApprovalPending { .. } | Error::ApprovalMissing { .. } | Error::ApprovalMismatch { .. } => {
                Self::bad_request(detail)
            }
            Error::Model(_) => {
                tracing::warn!(error = %detail, "model provider failed");
                Self::new(StatusCode::BAD_GATEWAY, "The model provider failed")
            }
            Error::Database(_) => {
                tracing::error!(error = %detail, "database failed");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable; try again")
            }
            _ => {
                tracing::error!(error = %detail, "request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        };
        ApiError { error_type, ..answer }
    }
}

/// The name of `err` on the wire. Another user's run is `run_not_found`, as its status is 404:
/// isolation reveals no run.
fn error_type(err: &Error) -> &'static str {
    match err {
        Error::ApprovalNotFound(_) => "approval_not_found",
        Error::RunNotFound(_) | Error::ForeignRun { .. } => "run_not_found",
        Error::ApprovalConflict { .. } => "approval_conflict",
        Error::InvalidTransition { .. } => "invalid_transition",
        Error::DuplicateVote { .. } => "duplicate_vote",
        Error::RunNotPaused { .. } => "run_not_paused",
        Error::RunNotStale { .. } => "run_not_stale",
        Error::RunTakenOver { .. } => "run_taken_over",
        Error::MemberRun { .. } => "member_run",
        Error::DecideAsPrincipal { .. } => "decide_as_principal",
        Error::NotEligible { .. } => "not_eligible",
        Error::EditNotAllowed { .. } => "edit_not_allowed",
        Error::InvalidInput { .. } => "invalid_input",
        Error::InvalidResolution { .. } => "invalid_resolution",
        Error::InvalidUserInput { .. } => "invalid_user_input",
        Error::UnknownRequirement { .. } => "unknown_requirement",
        Error::DuplicateAnswer { .. } => "duplicate_answer",
        Error::AuditWithoutResolver { .. } => "audit_without_resolver",
        Error::ApprovalPending { .. } => "approval_pending",
        Error::ApprovalMissing { .. } => "approval_missing",
        Error::ApprovalMismatch { .. } => "approval_mismatch",
        Error::RoundLimit { .. } => "round_limit",
        Error::Aborted(_) => "aborted",
        Error::Model(_) => "model_failed",
        Error::Database(_) => "database_unavailable",
        _ => "internal_error",
    }
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use kern_core::approval::ApprovalStatus;

    use super::*;

    #[test]
    fn store_errors_map_to_exact_status_codes_and_types() {
        let conflict = Error::ApprovalConflict {
            id: "a".into(),
            expected: ApprovalStatus::Pending,
            actual: ApprovalStatus::Approved,
        };
        let cases = [
            (Error::ApprovalNotFound("a".into()), StatusCode::NOT_FOUND, "approval_not_found"),
            (conflict, StatusCode::CONFLICT, "approval_conflict"),
            (Error::RunTakenOver { run_id: "r".into() }, StatusCode::CONFLICT, "run_taken_over"),
            (
                Error::NotEligible { id: "a".into(), principal: "p".into(), reason: "no".into() },
                StatusCode::FORBIDDEN,
                "not_eligible",
            ),
            (
                Error::InvalidInput { field: "user_id", reason: "too long".into() },
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            ),
            (
                Error::AuditWithoutResolver { tool_call_id: "c".into() },
                StatusCode::UNPROCESSABLE_ENTITY,
                "audit_without_resolver",
            ),
            (
                Error::database(std::io::Error::other("connection reset")),
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
            ),
            (Error::Corrupt("bad json".into()), StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        ];
        for (err, status, error_type) in cases {
            let answer = ApiError::from(err);
            assert_eq!((answer.status, answer.error_type), (status, Some(error_type)));
        }
        assert_eq!(ApiError::unprocessable("`limit` must be a number").error_type, None, "no kern error, no type");
    }

    #[test]
    fn internal_failures_keep_their_details_out_of_the_answer() {
        let err = ApiError::from(Error::database(std::io::Error::other("password authentication failed")));
        assert!(!err.detail.contains("password"));
        assert_eq!(ApiError::from(Error::Corrupt("row 7".into())).detail, "Internal server error");
    }

    #[test]
    fn a_resolved_row_answers_in_the_reference_words() {
        let err = Error::ApprovalConflict {
            id: "a".into(),
            expected: ApprovalStatus::Pending,
            actual: ApprovalStatus::Rejected,
        };
        assert_eq!(ApiError::from(err).detail, "Approval is already 'rejected' and cannot be resolved");
    }
}
