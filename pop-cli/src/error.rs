//! How a command ends: its exit status, and the message of one that could not run.
//!
//! Exit codes (scripts may rely on them; the README's `pop` section lists them too):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the command ran and what it checked or ran failed (an invalid agenda, an agenda that failed or was cancelled while waited for), or the server refused or failed the operation (a conflict, a server error) |
//! | 2 | usage or bad input: bad flags, an unreadable or invalid file, an input the server rejected as invalid, an unreachable local store |
//! | 3 | not found: the object does not exist, or the token may not see it |
//! | 4 | unauthorized: no token, or a token the server does not know |
//! | 5 | forbidden: the token is known but may not do this |
//! | 6 | the server is unreachable (no connection to `--server`) |
//! | 75 | `pop serve` / `pop worker`: the store failed in a way it cannot recover from in-process (sled after an IO error such as a full disk); a supervisor should restart the process |

use std::fmt;
use std::process::ExitCode;

/// A command that ran: `Success` exits 0, `Failure` (an invalid file, a failed agenda) exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded: exit 0.
    Success,
    /// The command ran, and what it checked or ran failed: exit 1.
    Failure,
}

impl Outcome {
    /// `Success` when `ok`.
    pub fn from_ok(ok: bool) -> Self {
        if ok { Outcome::Success } else { Outcome::Failure }
    }
}

/// Why a command could not do what it was asked; each kind has its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operation failed or was refused (a conflict, a server error): exit 1.
    Failed,
    /// Bad flags or input: exit 2.
    Usage,
    /// Not found (or not visible): exit 3.
    NotFound,
    /// No or unknown credentials: exit 4.
    Unauthorized,
    /// Credentials known, action not allowed: exit 5.
    Forbidden,
    /// No connection to the server: exit 6.
    Unreachable,
}

impl ErrorKind {
    /// The process exit code of this kind.
    pub fn code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Unauthorized => 4,
            ErrorKind::Forbidden => 5,
            ErrorKind::Unreachable => 6,
        }
    }
}

/// A command that could not run: a one-line message naming what to fix, and its kind (the exit
/// code; [`ErrorKind::Usage`], exit 2, unless said otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The message, one line.
    pub message: String,
    /// The kind (the exit code).
    pub kind: ErrorKind,
}

impl CliError {
    /// A usage / bad-input error (exit 2).
    pub fn new(message: impl Into<String>) -> Self {
        CliError { message: message.into(), kind: ErrorKind::Usage }
    }

    /// An error with context: `context: error` (exit 2).
    pub fn context(context: impl fmt::Display, e: impl fmt::Display) -> Self {
        CliError::new(format!("{context}: {e}"))
    }

    /// The same error, of this kind.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// An error answered by (or on the way to) a `pop serve`: its kind from the error's, with the
    /// operation's failures and refusals (a conflict, a server error) exit 1.
    pub fn remote(context: impl fmt::Display, e: pop::core::Error) -> Self {
        let kind = match &e {
            pop::core::Error::Invalid(_) | pop::core::Error::Unsupported(_) => ErrorKind::Usage,
            _ => match kind_of(&e) {
                ErrorKind::Usage => ErrorKind::Failed,
                k => k,
            },
        };
        let message = match &e {
            pop::core::Error::NotFound { .. } => format!("{context}: not found (or not visible with this token)"),
            _ => format!("{context}: {e}"),
        };
        CliError { message, kind }
    }
}

/// The kind of a library error: not found, unauthorized, forbidden and unreachable have their own
/// codes; every other error is one the command could not get past (exit 2).
fn kind_of(e: &pop::core::Error) -> ErrorKind {
    match e {
        pop::core::Error::NotFound { .. } => ErrorKind::NotFound,
        pop::core::Error::Unauthorized(_) => ErrorKind::Unauthorized,
        pop::core::Error::Forbidden(_) => ErrorKind::Forbidden,
        e if pop::http::Client::is_unreachable(e) => ErrorKind::Unreachable,
        _ => ErrorKind::Usage,
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<pop::core::Error> for CliError {
    fn from(e: pop::core::Error) -> Self {
        CliError { message: e.to_string(), kind: kind_of(&e) }
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::new(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError::new(s)
    }
}

/// The result of a command.
pub type CliResult = Result<Outcome, CliError>;

/// The process exit code of a command's result (the message of an error goes to stderr).
pub fn exit_code(result: CliResult) -> ExitCode {
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pop: {e}");
            ExitCode::from(e.kind.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_code() {
        use pop::core::Error;
        let remote = |e: Error| CliError::remote("x", e).kind.code();
        assert_eq!(remote(Error::not_found("agenda", "a")), 3);
        assert_eq!(remote(Error::Unauthorized("no".into())), 4);
        assert_eq!(remote(Error::Forbidden("no".into())), 5);
        assert_eq!(remote(Error::invalid("bad")), 2);
        assert_eq!(remote(Error::Conflict("stale".into())), 1);
        assert_eq!(remote(Error::backend("http", "500")), 1);
        assert_eq!(remote(Error::backend(pop::http::client::UNREACHABLE, "refused")), 6);
        // local errors keep exit 2 except the kinds with their own code
        assert_eq!(CliError::from(Error::backend("sled", "io")).kind.code(), 2);
        assert_eq!(CliError::from(Error::not_found("agenda", "a")).kind.code(), 3);
    }
}
