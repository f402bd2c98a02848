//! Helpers for writing a handler in Rust: read the input, report progress, emit the result.
//!
//! A handler is any program that reads its input from environment variables and writes protocol lines to
//! stdout (see the [crate docs](crate) for the protocol). With this module a Rust handler is:
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
use crate::payload;
use crate::protocol::{self, env};
use pop_core::model::{OperationProgress, Params};
use pop_core::runtime::ProgressUpdate;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Write;

/// Everything the runtime passes to a handler.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HandlerInput {
    /// The operation's resolved payload (decoded from `PAYLOAD` or the compressed chunks).
    pub payload: Value,
    /// `AGENDA_ID`.
    pub agenda_id: String,
    /// `CID` (empty when unknown).
    pub cid: String,
    /// `CUSTOMER_ID` (empty when unknown).
    pub customer_id: String,
    /// `OPERATION_NAME`.
    pub operation_name: String,
    /// `OPERATION_ID` (empty when unknown).
    pub operation_id: String,
    /// `LAST_PROGRESS`: the operation's progress from an earlier attempt, on a re-run.
    pub last_progress: Option<OperationProgress>,
}

impl HandlerInput {
    /// Reads the input from this process's environment.
    pub fn from_env() -> Result<Self, ProcessError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the input through a lookup function (for tests, or a handler that got its variables elsewhere).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ProcessError> {
        let text = payload::decode(&get)?;
        let payload = serde_json::from_str(&text).map_err(|source| ProcessError::BadJson { var: "PAYLOAD", source })?;
        let last_progress = match get(env::LAST_PROGRESS).filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|source| ProcessError::BadJson { var: env::LAST_PROGRESS, source })?,
            ),
        };
        let var = |k: &str| get(k).unwrap_or_default();
        Ok(Self {
            payload,
            agenda_id: var(env::AGENDA_ID),
            cid: var(env::CID),
            customer_id: var(env::CUSTOMER_ID),
            operation_name: var(env::OPERATION_NAME),
            operation_id: var(env::OPERATION_ID),
            last_progress,
        })
    }

    /// The payload as a typed value.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, ProcessError> {
        serde_json::from_value(self.payload.clone()).map_err(|source| ProcessError::BadJson { var: "PAYLOAD", source })
    }

    /// The resume state an earlier attempt reported (`LAST_PROGRESS.params`).
    pub fn resume_params(&self) -> Option<&Params> {
        self.last_progress.as_ref().and_then(|p| p.params.as_ref())
    }
}

fn write_line(what: &'static str, line: &str) -> Result<(), ProcessError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|source| ProcessError::Write { what, source })
}

/// Writes a `POP_PROGRESS` line.
pub fn report_progress(update: &ProgressUpdate) -> Result<(), ProcessError> {
    write_line(protocol::PROGRESS_MARKER, &protocol::progress_line(update))
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
    write_line(protocol::RESULT_MARKER, &protocol::result_line(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn input_from_plain_and_compressed() {
        for threshold in [usize::MAX, 0] {
            let json = serde_json::json!({"actions": [], "big": "x".repeat(1000)}).to_string();
            let mut vars: HashMap<String, String> =
                payload::encode(&json, threshold, 64).unwrap().into_iter().collect();
            vars.insert("AGENDA_ID".into(), "a1".into());
            vars.insert("OPERATION_NAME".into(), "op".into());
            vars.insert("LAST_PROGRESS".into(), r#"{"params":{"jobInfo":{"jobId":"123456-987654"}}}"#.into());
            let input = HandlerInput::from_lookup(|k| vars.get(k).cloned()).unwrap();
            assert_eq!(input.payload["big"].as_str().map(str::len), Some(1000));
            assert_eq!(input.agenda_id, "a1");
            assert_eq!(input.operation_name, "op");
            assert_eq!(input.cid, "");
            assert_eq!(input.resume_params().unwrap()["jobInfo"]["jobId"], "123456-987654");
        }
    }

    #[test]
    fn bad_input_names_the_variable() {
        let e = HandlerInput::from_lookup(|k| (k == "PAYLOAD").then(|| "{".to_string())).unwrap_err();
        assert!(e.to_string().contains("PAYLOAD"), "{e}");
        let e = HandlerInput::from_lookup(|k| match k {
            "PAYLOAD" => Some("{}".into()),
            "LAST_PROGRESS" => Some("[".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("LAST_PROGRESS"), "{e}");
    }
}
