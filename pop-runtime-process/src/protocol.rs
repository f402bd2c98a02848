//! The output half of the handler protocol: `POP_PROGRESS {json}` and `POP_RESULT {json}` lines.

use pop_core::runtime::ProgressUpdate;
use serde_json::Value;

/// The marker of a progress line.
pub const PROGRESS_MARKER: &str = "POP_PROGRESS";
/// The marker of a result line.
pub const RESULT_MARKER: &str = "POP_RESULT";

/// The input variables besides the payload.
pub mod env {
    /// The agenda's id.
    pub const AGENDA_ID: &str = "AGENDA_ID";
    /// The correlation id.
    pub const CID: &str = "CID";
    /// The agenda's customer.
    pub const CUSTOMER_ID: &str = "CUSTOMER_ID";
    /// The operation's name.
    pub const OPERATION_NAME: &str = "OPERATION_NAME";
    /// The operation's id.
    pub const OPERATION_ID: &str = "OPERATION_ID";
    /// The JSON of the operation's progress from an earlier attempt (only on re-runs).
    pub const LAST_PROGRESS: &str = "LAST_PROGRESS";
    /// The log level (`INFO` unless the registry's `process.env` says otherwise).
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
}

/// One stdout line, classified.
#[derive(Debug)]
pub enum Line {
    /// A `POP_PROGRESS` line and its parse.
    Progress(Result<ProgressUpdate, serde_json::Error>),
    /// A `POP_RESULT` line and its parse.
    Result(Result<Value, serde_json::Error>),
    /// Anything else (log).
    Other,
}

fn after_marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(marker)?;
    if rest.is_empty() || rest.starts_with([' ', '\t']) { Some(rest.trim()) } else { None }
}

/// Classifies one stdout line (without its newline).
pub fn classify(line: &str) -> Line {
    if let Some(json) = after_marker(line, PROGRESS_MARKER) {
        Line::Progress(serde_json::from_str(json))
    } else if let Some(json) = after_marker(line, RESULT_MARKER) {
        Line::Result(serde_json::from_str(json))
    } else {
        Line::Other
    }
}

/// The `POP_PROGRESS` line for an update (no newline).
pub fn progress_line(update: &ProgressUpdate) -> String {
    format!("{PROGRESS_MARKER} {}", serde_json::to_string(update).unwrap_or_else(|_| "{}".into()))
}

/// The `POP_RESULT` line for an output (no newline).
pub fn result_line(output: &Value) -> String {
    format!("{RESULT_MARKER} {output}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_lines() {
        match classify(r#"POP_PROGRESS {"percentComplete": 50, "processingStateMessage": "half"}"#) {
            Line::Progress(Ok(p)) => {
                assert_eq!(p.percent_complete, Some(50.0));
                assert_eq!(p.processing_state_message.as_deref(), Some("half"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify("POP_RESULT {\"a\": [1]}"), Line::Result(Ok(v)) if v["a"][0] == 1));
        assert!(matches!(classify("POP_RESULT\t{}"), Line::Result(Ok(_))));
        assert!(matches!(classify("POP_RESULT {oops"), Line::Result(Err(_))));
        assert!(matches!(classify("POP_RESULT"), Line::Result(Err(_))));
        assert!(matches!(classify("POP_PROGRESS [1,2"), Line::Progress(Err(_))));
        assert!(matches!(classify("POP_PROGRESS {\"percentComplete\": \"x\"}"), Line::Progress(Err(_))));
        assert!(matches!(classify("POP_RESULTS {}"), Line::Other));
        assert!(matches!(classify(" POP_RESULT {}"), Line::Other));
        assert!(matches!(classify("hello"), Line::Other));
    }

    #[test]
    fn lines_round_trip() {
        let u = ProgressUpdate { percent_complete: Some(10.0), ..Default::default() };
        assert!(matches!(classify(&progress_line(&u)), Line::Progress(Ok(p)) if p == u));
        let v = serde_json::json!({"x": "line\nbreak"});
        let line = result_line(&v);
        assert!(!line.contains('\n'));
        assert!(matches!(classify(&line), Line::Result(Ok(back)) if back == v));
    }
}
