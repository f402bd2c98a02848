//! The handler protocol's output side: `POP_PROGRESS {json}` and `POP_RESULT {json}` log lines, and the
//! original's Pod annotations `pop.report.progress` / `pop.report.payload`.

use pop_core::model::{OperationProgress, ProcessingState};
use pop_core::runtime::{LogStream, ProgressUpdate, RuntimeEvent};
use serde_json::Value;

/// A progress line's prefix.
pub const PROGRESS_PREFIX: &str = "POP_PROGRESS";
/// A result line's prefix.
pub const RESULT_PREFIX: &str = "POP_RESULT";

/// What one log line means.
pub fn parse_line(line: &str) -> RuntimeEvent {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = strip_keyword(trimmed, PROGRESS_PREFIX) {
        return match serde_json::from_str::<ProgressUpdate>(rest) {
            Ok(update) => RuntimeEvent::Progress(update),
            Err(e) => RuntimeEvent::Log(LogStream::Stderr, format!("unreadable {PROGRESS_PREFIX} line ({e}): {rest}")),
        };
    }
    if let Some(rest) = strip_keyword(trimmed, RESULT_PREFIX) {
        return match serde_json::from_str::<Value>(rest) {
            Ok(value) => RuntimeEvent::Output(value),
            Err(e) => RuntimeEvent::Log(LogStream::Stderr, format!("unreadable {RESULT_PREFIX} line ({e}): {rest}")),
        };
    }
    RuntimeEvent::Log(LogStream::Stdout, trimmed.to_string())
}

fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(keyword)?;
    if rest.is_empty() || rest.starts_with(char::is_whitespace) { Some(rest.trim()) } else { None }
}

/// The `pop.report.progress` annotation read as a progress update, with whether the handler declared
/// itself COMPLETE and its conclusion. `None` when the annotation is not an OperationProgress.
pub fn annotation_progress(json: &str) -> Option<(ProgressUpdate, Option<Conclusion>)> {
    let progress: OperationProgress = serde_json::from_str(json).ok()?;
    let conclusion = (progress.processing_state == ProcessingState::Complete).then(|| {
        let message = progress.processing_state_message.clone().unwrap_or_default();
        if message.eq_ignore_ascii_case("succeeded") { Conclusion::Succeeded } else { Conclusion::Failed(message) }
    });
    let update = ProgressUpdate {
        percent_complete: Some(progress.percent_complete),
        processing_state_message: progress.processing_state_message.clone(),
        params: progress.params.clone(),
        diagnostic_events: progress.diagnostic_events.clone(),
    };
    Some((update, conclusion))
}

/// How a handler said it ended in its progress annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    /// COMPLETE / `succeeded`.
    Succeeded,
    /// COMPLETE with any other message (the message).
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_classified() {
        assert_eq!(
            parse_line(r#"POP_PROGRESS {"percentComplete": 40}"#),
            RuntimeEvent::Progress(ProgressUpdate { percent_complete: Some(40.0), ..Default::default() })
        );
        assert_eq!(parse_line(r#"POP_RESULT {"file":"x"}"#), RuntimeEvent::Output(json!({"file":"x"})));
        assert_eq!(parse_line("hello"), RuntimeEvent::Log(LogStream::Stdout, "hello".into()));
        assert_eq!(parse_line("POP_RESULTS are in"), RuntimeEvent::Log(LogStream::Stdout, "POP_RESULTS are in".into()));
        assert!(
            matches!(parse_line("POP_RESULT {oops"), RuntimeEvent::Log(LogStream::Stderr, m) if m.contains("unreadable"))
        );
    }

    #[test]
    fn progress_annotations_carry_the_conclusion() {
        let (u, c) = annotation_progress(
            r#"{"processingState":"COMPLETE","processingStateMessage":"succeeded","percentComplete":100}"#,
        )
        .unwrap();
        assert_eq!(u.percent_complete, Some(100.0));
        assert_eq!(c, Some(Conclusion::Succeeded));
        let (_, c) =
            annotation_progress(r#"{"processingState":"COMPLETE","processingStateMessage":"failed"}"#).unwrap();
        assert_eq!(c, Some(Conclusion::Failed("failed".into())));
        let (_, c) = annotation_progress(r#"{"processingState":"EXECUTING","percentComplete":20}"#).unwrap();
        assert_eq!(c, None);
        assert!(annotation_progress("not json").is_none());
    }
}
