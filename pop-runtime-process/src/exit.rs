//! The exit classifier: how a handler process ended (exit code or signal, whether the runtime stopped
//! it for a timeout, a cancel or an over-long line, whether its output broke the protocol) → the
//! operation's outcome, with a status code and a message for a person. Pure: the supervisor gathers the
//! facts, [`classify`] decides, [`Verdict::into_exit`] builds the [`Exit`] with its diagnostic.
//!
//! Precedence, first match wins: a stop by the runtime (timeout, cancel, over-long line); the wait
//! itself failing; a broken output rule (malformed or oversized `POP_RESULT`); a non-zero exit or a
//! signal; an error reading the output; else success.

use nix::sys::signal::Signal;
use pop_core::model::{DiagnosticEvent, Millis};
use pop_core::runtime::{Exit, LogStream};
use pop_handler_protocol::ProtocolError;
use pop_handler_protocol::output::stream_name;
use serde_json::Value;
use std::time::Duration;

/// Why the runtime stopped the handler before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its time limit passed.
    Timeout(Duration),
    /// The operation was cancelled (or cleaned up).
    Cancelled,
    /// It wrote a line longer than the limit on this stream.
    LineTooLong(LogStream),
}

/// What waiting for the handler gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It ended: with an exit code, or killed by a signal.
    Exited {
        /// The exit code, if it exited.
        code: Option<i32>,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
    },
    /// Waiting for it failed (the message of the error).
    WaitFailed(String),
    /// Its status was never read.
    Unknown,
}

impl Status {
    /// The status of a child that ended.
    pub fn from_exit_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self::Exited { code: status.code(), signal: status.signal() }
    }

    fn code(&self) -> Option<i32> {
        match self {
            Self::Exited { code, .. } => *code,
            _ => None,
        }
    }

    fn signal(&self) -> Option<i32> {
        match self {
            Self::Exited { signal, .. } => *signal,
            _ => None,
        }
    }

    /// `exit code 3`, `signal 9 (SIGKILL)`, `an unknown status`.
    pub fn describe(&self) -> String {
        match (self.code(), self.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s} ({})", signal_name(s)),
            _ => "an unknown status".to_string(),
        }
    }
}

/// The name of a signal number (`SIGTERM`), or `signal N` for one this platform does not name.
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("signal {sig}"))
}

/// Everything known when a handler has ended.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    /// Names the operation in messages (`operation encode (type t, handle h)`).
    pub label: &'a str,
    /// The handler's process id (also its process group).
    pub pid: u32,
    /// What waiting for it gave.
    pub status: &'a Status,
    /// Why the runtime stopped it, if it did.
    pub stop: Option<Stop>,
    /// The first output rule it broke that fails the operation.
    pub violation: Option<&'a ProtocolError>,
    /// An error reading its output.
    pub read_error: Option<&'a str>,
    /// The line bound, for the message of an over-long line.
    pub max_line_bytes: usize,
}

/// The outcome of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It succeeded.
    Succeeded,
    /// It failed: a status code (`TIMEOUT`, `CANCELLED`, `LINE_TOO_LONG`, `WAIT_FAILED`,
    /// `MALFORMED_RESULT`, `RESULT_TOO_LARGE`, `EXIT_CODE`, `SIGNAL`, `CPU_LIMIT`, `FILE_SIZE_LIMIT`,
    /// `READ_FAILED`) and a message.
    Failed {
        /// The diagnostic's status code.
        status_code: &'static str,
        /// For a person: which operation, what happened, how it ended.
        message: String,
    },
}

/// Decides the outcome; see the [module docs](self) for the precedence.
pub fn classify(e: &Ending<'_>) -> Verdict {
    let label = e.label;
    let how = e.status.describe();
    let failed = |status_code, message| Verdict::Failed { status_code, message };
    match e.stop {
        Some(Stop::Timeout(t)) => {
            return failed(
                "TIMEOUT",
                format!("{label} timed out after {} ms; its process group was terminated ({how})", t.as_millis()),
            );
        }
        Some(Stop::Cancelled) => {
            return failed("CANCELLED", format!("{label} was cancelled; its process group was terminated ({how})"));
        }
        Some(Stop::LineTooLong(s)) => {
            return failed(
                "LINE_TOO_LONG",
                format!(
                    "{label} wrote a {} line longer than the limit of {} bytes; the handler was terminated ({how})",
                    stream_name(s),
                    e.max_line_bytes
                ),
            );
        }
        None => {}
    }
    let code = match e.status {
        Status::WaitFailed(m) => {
            return failed("WAIT_FAILED", format!("{label}: waiting for handler pid {} failed: {m}", e.pid));
        }
        Status::Unknown => return failed("WAIT_FAILED", format!("{label}: the handler's exit status is unknown")),
        Status::Exited { code, .. } => *code,
    };
    if let Some(v) = e.violation {
        let status_code = match v {
            ProtocolError::ResultTooLarge { .. } => "RESULT_TOO_LARGE",
            ProtocolError::LineTooLong { .. } => "LINE_TOO_LONG",
            _ => "MALFORMED_RESULT",
        };
        return failed(status_code, format!("{label}: {v} (handler ended with {how})"));
    }
    if code != Some(0) {
        let signal = e.status.signal();
        if signal == Some(Signal::SIGXCPU as i32) {
            return failed(
                "CPU_LIMIT",
                format!("{label}: handler used up its CPU time limit (process.limits.cpuSeconds) and ended with {how}"),
            );
        }
        if signal == Some(Signal::SIGXFSZ as i32) {
            return failed(
                "FILE_SIZE_LIMIT",
                format!(
                    "{label}: handler wrote past its file size limit (process.limits.fileSizeBytes) and ended with {how}"
                ),
            );
        }
        let status_code = if code.is_some() { "EXIT_CODE" } else { "SIGNAL" };
        return failed(status_code, format!("{label}: handler failed with {how}"));
    }
    if let Some(m) = e.read_error {
        return failed("READ_FAILED", format!("{label}: {m}"));
    }
    Verdict::Succeeded
}

impl Verdict {
    /// The [`Exit`] of this verdict. A failure's diagnostic carries the status code, the message and
    /// `details` (an object: the operation, the pid, the exit code and signal, the last lines).
    pub fn into_exit(self, status: &Status, details: Value, now: Millis) -> Exit {
        match self {
            Verdict::Succeeded => Exit::success(),
            Verdict::Failed { status_code, message } => {
                let mut exit = failure_exit(status_code, message, details, now);
                exit.code = status.code();
                exit.signal = status.signal();
                exit
            }
        }
    }
}

/// A failed [`Exit`] whose diagnostic has this status code, message and payload.
pub fn failure_exit(status_code: &str, message: String, details: Value, now: Millis) -> Exit {
    let mut diagnostic = DiagnosticEvent::new(message.clone(), now).with_payload(details);
    diagnostic.status_code = Some(status_code.to_string());
    Exit { diagnostic: Some(diagnostic), ..Exit::failure(message) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exited(code: Option<i32>, signal: Option<i32>) -> Status {
        Status::Exited { code, signal }
    }

    fn malformed() -> ProtocolError {
        ProtocolError::MalformedResult { source: serde_json::from_str::<Value>("{oops").unwrap_err() }
    }

    #[test]
    fn table() {
        let too_large = ProtocolError::ResultTooLarge { bytes: 20, max: 10 };
        let bad = malformed();
        let timeout = Some(Stop::Timeout(Duration::from_millis(1500)));
        let cancelled = Some(Stop::Cancelled);
        let too_long = Some(Stop::LineTooLong(LogStream::Stderr));
        type Case<'a> = (Status, Option<Stop>, Option<&'a ProtocolError>, Option<&'a str>, Option<&'a str>, &'a str);
        // (status, stop, violation, read error) → status code (None = success), a piece of the message
        let cases: Vec<Case<'_>> = vec![
            (exited(Some(0), None), None, None, None, None, ""),
            (exited(Some(3), None), None, None, None, Some("EXIT_CODE"), "op: handler failed with exit code 3"),
            (exited(None, Some(9)), None, None, None, Some("SIGNAL"), "op: handler failed with signal 9 (SIGKILL)"),
            (exited(None, None), None, None, None, Some("SIGNAL"), "handler failed with an unknown status"),
            (
                exited(None, Some(15)),
                timeout,
                None,
                None,
                Some("TIMEOUT"),
                "op timed out after 1500 ms; its process group was terminated (signal 15 (SIGTERM))",
            ),
            (exited(Some(0), None), timeout, None, None, Some("TIMEOUT"), "(exit code 0)"),
            (exited(Some(143), None), cancelled, Some(&bad), None, Some("CANCELLED"), "op was cancelled"),
            (
                exited(None, Some(15)),
                too_long,
                None,
                None,
                Some("LINE_TOO_LONG"),
                "op wrote a stderr line longer than the limit of 64 bytes",
            ),
            (exited(Some(0), None), None, Some(&bad), None, Some("MALFORMED_RESULT"), "op: malformed POP_RESULT line"),
            (
                exited(Some(2), None),
                None,
                Some(&bad),
                None,
                Some("MALFORMED_RESULT"),
                "(handler ended with exit code 2)",
            ),
            (exited(Some(0), None), None, Some(&too_large), None, Some("RESULT_TOO_LARGE"), "larger than the limit"),
            (exited(Some(0), None), None, None, Some("reading stdout: EIO"), Some("READ_FAILED"), "op: reading stdout"),
            (exited(Some(1), None), None, None, Some("reading stdout: EIO"), Some("EXIT_CODE"), "exit code 1"),
            (Status::WaitFailed("ECHILD".into()), None, None, None, Some("WAIT_FAILED"), "pid 42 failed: ECHILD"),
            (Status::Unknown, None, None, None, Some("WAIT_FAILED"), "exit status is unknown"),
            (Status::Unknown, cancelled, None, None, Some("CANCELLED"), "(an unknown status)"),
        ];
        for (status, stop, violation, read_error, code, text) in cases {
            let ending =
                Ending { label: "op", pid: 42, status: &status, stop, violation, read_error, max_line_bytes: 64 };
            let verdict = classify(&ending);
            match (code, &verdict) {
                (None, Verdict::Succeeded) => {}
                (Some(want), Verdict::Failed { status_code, message }) => {
                    assert_eq!(*status_code, want, "{status:?} {stop:?}: {message}");
                    assert!(message.contains(text), "{status:?} {stop:?}: {message:?} lacks {text:?}");
                }
                _ => panic!("{status:?} {stop:?} {violation:?} {read_error:?}: expected {code:?}, got {verdict:?}"),
            }
        }
    }

    #[test]
    fn exits_carry_code_signal_and_diagnostic() {
        let status = exited(None, Some(9));
        let exit = Verdict::Failed { status_code: "SIGNAL", message: "op: died".into() }.into_exit(
            &status,
            json!({"pid": 42}),
            7,
        );
        assert!(!exit.success);
        assert_eq!((exit.code, exit.signal), (None, Some(9)));
        assert_eq!(exit.message, "op: died");
        let d = exit.diagnostic.unwrap();
        assert_eq!(d.status_code.as_deref(), Some("SIGNAL"));
        assert_eq!(d.payload, json!({"pid": 42}));
        let ok = Verdict::Succeeded.into_exit(&exited(Some(0), None), json!({}), 7);
        assert!(ok.success && ok.diagnostic.is_none());
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9999), "signal 9999");
    }
}
