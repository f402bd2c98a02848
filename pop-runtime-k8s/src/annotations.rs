//! The original POP's second output channel: Pod annotations a handler patches on its own Pod,
//! `pop.report.progress` (its OperationProgress JSON) and `pop.report.payload` (its result JSON), read
//! into the same events as the [handler protocol](pop_handler_protocol)'s output lines.

use pop_core::model::{OperationProgress, ProcessingState};
use pop_core::runtime::ProgressUpdate;
use serde_json::Value;

pub use crate::labels::{REPORT_PAYLOAD, REPORT_PROGRESS};

/// How a handler said it ended in its progress annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    /// COMPLETE / `succeeded`.
    Succeeded,
    /// COMPLETE with any other message (the message).
    Failed(String),
}

/// The `pop.report.progress` annotation read as a progress update, with the conclusion when the
/// handler declared itself COMPLETE; an error when it is not an OperationProgress.
pub fn progress(json: &str) -> Result<(ProgressUpdate, Option<Conclusion>), serde_json::Error> {
    let progress: OperationProgress = serde_json::from_str(json)?;
    let conclusion = (progress.processing_state == ProcessingState::Complete).then(|| {
        let message = progress.processing_state_message.clone().unwrap_or_default();
        if message.eq_ignore_ascii_case("succeeded") { Conclusion::Succeeded } else { Conclusion::Failed(message) }
    });
    let update = ProgressUpdate {
        percent_complete: Some(progress.percent_complete),
        processing_state_message: progress.processing_state_message,
        params: progress.params,
        diagnostic_events: progress.diagnostic_events,
    };
    Ok((update, conclusion))
}

/// The `pop.report.payload` annotation: the operation's output.
pub fn payload(json: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_annotations_carry_the_conclusion() {
        let (u, c) =
            progress(r#"{"processingState":"COMPLETE","processingStateMessage":"succeeded","percentComplete":100}"#)
                .unwrap();
        assert_eq!(u.percent_complete, Some(100.0));
        assert_eq!(c, Some(Conclusion::Succeeded));
        let (_, c) = progress(r#"{"processingState":"COMPLETE","processingStateMessage":"failed"}"#).unwrap();
        assert_eq!(c, Some(Conclusion::Failed("failed".into())));
        let (_, c) = progress(r#"{"processingState":"EXECUTING","percentComplete":20}"#).unwrap();
        assert_eq!(c, None);
        assert!(progress("not json").is_err());
        assert_eq!(payload(r#"{"a": 1}"#).unwrap()["a"], 1);
        assert!(payload("{").is_err());
    }
}
