//! Helpers for writing a handler in Rust: read the input, report progress, emit the result.
//!
//! A handler is any program that reads its input from environment variables and writes protocol lines to
//! stdout (see the [crate docs](crate) for the protocol). The input is decoded by the shared protocol
//! crate ([`pop_handler_protocol::HandlerInput`], re-exported here), so a Rust handler reads exactly
//! what every runtime writes. With this module a Rust handler is:
//!
//! ```no_run
//! use pop_runtime_process::handler::{self, HandlerInput};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let input = HandlerInput::from_env()?;               // PAYLOAD (plain or compressed), ids, LAST_PROGRESS
//!     let file = input.payload["file"].as_str().unwrap_or("none").to_string();
//!     eprintln!("probing {file}");                          // anything else is the operation's log
//!     handler::report_percent(50.0, "half way")?;          // POP_PROGRESS {"percentComplete":50.0,...}
//!     handler::emit_result(&serde_json::json!({"file": file, "ok": true}))?; // POP_RESULT {...}
//!     Ok(())                                                // exit status 0 = success
//! }
//! ```

use crate::error::ProcessError;
use pop_core::model::Params;
use pop_core::runtime::ProgressUpdate;
use pop_handler_protocol::output::{PROGRESS_MARKER, RESULT_MARKER, progress_line, result_line};
use serde_json::Value;
use std::io::Write;

pub use pop_handler_protocol::HandlerInput;

fn write_line(what: &'static str, line: &str) -> Result<(), ProcessError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|source| ProcessError::Write { what, source })
}

/// Writes a `POP_PROGRESS` line.
pub fn report_progress(update: &ProgressUpdate) -> Result<(), ProcessError> {
    write_line(PROGRESS_MARKER, &progress_line(update))
}

/// Writes a `POP_PROGRESS` line with a percentage and a message.
pub fn report_percent(percent: f64, message: impl Into<String>) -> Result<(), ProcessError> {
    report_progress(&ProgressUpdate {
        percent_complete: Some(percent),
        processing_state_message: Some(message.into()),
        ..ProgressUpdate::default()
    })
}

/// Writes a `POP_PROGRESS` line carrying resume state (given back as `LAST_PROGRESS.params` on a re-run).
pub fn save_resume_params(params: Params) -> Result<(), ProcessError> {
    report_progress(&ProgressUpdate { params: Some(params), ..ProgressUpdate::default() })
}

/// Writes the `POP_RESULT` line: the operation's output (the last one written wins).
pub fn emit_result(output: &Value) -> Result<(), ProcessError> {
    write_line(RESULT_MARKER, &result_line(output))
}
