//! Why a command failed and the exit code that says so (documented in `kern --help`): every
//! error a command meets, from the store or from a server, becomes a [`Failure`].

use std::fmt;
use std::process::ExitCode;

use kern_core::Error;

/// The documented exit codes other than success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A value was refused, the database failed, or another failure not known to pass.
    Error = 1,
    /// Bad arguments, or a command the chosen target cannot carry out.
    Usage = 2,
    /// The row or run is no longer in a state that allows the command.
    Conflict = 3,
    /// No such approval, run or key.
    NotFound = 4,
    /// The principal may not do it: the row's policy does not let them decide it, or their
    /// API key lacks the scope.
    Refused = 5,
    /// The server cannot be reached, or is unavailable a moment: trying again may succeed. (A
    /// database's failures are 1: a refused password and a lost connection read alike.)
    Unavailable = 6,
    /// The server did not accept the API key: none given, unknown or revoked.
    Unauthorized = 7,
    /// The audit trail is broken: a link of a chain, or a checkpoint, does not hold.
    TrailBroken = 8,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> Self {
        ExitCode::from(code as u8)
    }
}

/// A failed command: what to tell the user and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// Whoever read the output went away (a pipe to `head` closed): nothing failed, the
    /// command stops, and nothing is said.
    pub output_closed: bool,
    /// The failure may pass by itself (the server unreachable, or unavailable a moment): a
    /// command that goes on (a watch) tries again.
    pub may_pass: bool,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), output_closed: false, may_pass: false }
    }

    /// A failure that may pass by itself: see [`may_pass`](Self::may_pass).
    pub fn passing(message: impl Into<String>) -> Self {
        Failure { may_pass: true, ..Self::new(Code::Unavailable, message) }
    }

    /// A write to standard output failed with `err`: see [`output_closed`](Self::output_closed).
    pub fn write(err: &std::io::Error) -> Self {
        Failure {
            output_closed: err.kind() == std::io::ErrorKind::BrokenPipe,
            ..Self::error(format!("cannot write the output: {err}"))
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Code::Error, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::ApprovalNotFound(_) | Error::RunNotFound(_) => Code::NotFound,
            Error::ApprovalConflict { .. }
            | Error::InvalidTransition { .. }
            | Error::DuplicateVote { .. }
            | Error::RunNotPaused { .. }
            | Error::RunNotStale { .. }
            | Error::RunTakenOver { .. }
            | Error::MemberRun { .. }
            | Error::DecideAsPrincipal { .. } => Code::Conflict,
            Error::NotEligible { .. } | Error::EditNotAllowed { .. } => Code::Refused,
            _ => Code::Error,
        };
        Failure::new(code, err.to_string())
    }
}

/// What a command returns.
pub type Outcome<T = ()> = Result<T, Failure>;

#[cfg(test)]
mod tests {
    use kern_core::approval::ApprovalStatus;
    use kern_core::run::RunStatus;

    use super::*;

    #[test]
    fn store_errors_map_to_their_documented_codes() {
        let cases = [
            (Error::ApprovalNotFound("a".into()), Code::NotFound),
            (Error::RunNotFound("r".into()), Code::NotFound),
            (
                Error::ApprovalConflict {
                    id: "a".into(),
                    expected: ApprovalStatus::Pending,
                    actual: ApprovalStatus::Approved,
                },
                Code::Conflict,
            ),
            (Error::RunNotStale { run_id: "r".into(), status: RunStatus::Paused }, Code::Conflict),
            (Error::NotEligible { id: "a".into(), principal: "p".into(), reason: "no".into() }, Code::Refused),
            (Error::InvalidResolution { id: "a".into(), reason: "no".into() }, Code::Error),
            (Error::database(std::io::Error::other("down")), Code::Error),
        ];
        for (err, code) in cases {
            assert_eq!(Failure::from(err).code, code);
        }
    }
}
