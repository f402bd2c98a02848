//! How a command ends: its exit status, and the message of one that could not run.

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

/// A command that could not run (bad flags, unreadable input, an unreachable store): exit 2, with a
/// one-line message naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl CliError {
    /// An error with context: `context: error`.
    pub fn context(context: impl fmt::Display, e: impl fmt::Display) -> Self {
        CliError(format!("{context}: {e}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<pop::core::Error> for CliError {
    fn from(e: pop::core::Error) -> Self {
        CliError(e.to_string())
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError(s.to_owned())
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
            ExitCode::from(2)
        }
    }
}
