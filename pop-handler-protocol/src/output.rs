//! The output half of the protocol: `POP_PROGRESS {json}` and `POP_RESULT {json}` lines, everything
//! else being the log, with bounds on lines and results and the log's tail kept for diagnostics.

use crate::error::ProtocolError;
use pop_core::runtime::{LogStream, ProgressUpdate, RuntimeEvent};
use serde_json::{Value, json};
use std::collections::VecDeque;

/// The marker of a progress line.
pub const PROGRESS_MARKER: &str = "POP_PROGRESS";
/// The marker of a result line.
pub const RESULT_MARKER: &str = "POP_RESULT";
/// The default bound on one output line (16 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The default bound on one result's JSON text (16 MiB: as long as a line may be).
pub const DEFAULT_MAX_RESULT_BYTES: usize = DEFAULT_MAX_LINE_BYTES;
/// How many bytes of an over-long line a diagnostic quotes.
pub const QUOTED_START_BYTES: usize = 200;

/// One output line, classified.
#[derive(Debug)]
pub enum Line {
    /// A `POP_PROGRESS` line and its parse.
    Progress(Result<ProgressUpdate, ProtocolError>),
    /// A `POP_RESULT` line and its parse (a result over `max_result_bytes` is an error).
    Result(Result<Value, ProtocolError>),
    /// Anything else: the log.
    Log,
}

/// The JSON after `marker` when `line` is a line of that kind: the marker, then nothing or a space or
/// tab. `POP_RESULTS` or ` POP_RESULT` are log lines.
fn after_marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(marker)?;
    if rest.is_empty() || rest.starts_with([' ', '\t']) { Some(rest.trim()) } else { None }
}

/// Classifies one line (without its newline); a result's JSON text may be at most `max_result_bytes`.
///
/// ```
/// use pop_handler_protocol::output::{Line, parse_line};
/// assert!(matches!(parse_line(r#"POP_RESULT {"file": "out.mp4"}"#, 1 << 20), Line::Result(Ok(v)) if v["file"] == "out.mp4"));
/// assert!(matches!(parse_line(r#"POP_PROGRESS {"percentComplete": 40}"#, 1 << 20), Line::Progress(Ok(p)) if p.percent_complete == Some(40.0)));
/// assert!(matches!(parse_line("encoding frame 12", 1 << 20), Line::Log));
/// ```
pub fn parse_line(line: &str, max_result_bytes: usize) -> Line {
    if let Some(json) = after_marker(line, PROGRESS_MARKER) {
        Line::Progress(serde_json::from_str(json).map_err(|source| ProtocolError::MalformedProgress { source }))
    } else if let Some(json) = after_marker(line, RESULT_MARKER) {
        if json.len() > max_result_bytes {
            return Line::Result(Err(ProtocolError::ResultTooLarge { bytes: json.len(), max: max_result_bytes }));
        }
        Line::Result(serde_json::from_str(json).map_err(|source| ProtocolError::MalformedResult { source }))
    } else {
        Line::Log
    }
}

/// The `POP_PROGRESS` line for an update (no newline).
pub fn progress_line(update: &ProgressUpdate) -> String {
    // A ProgressUpdate is plain data (strings, numbers, JSON values): it always serializes.
    format!("{PROGRESS_MARKER} {}", serde_json::to_string(update).unwrap_or_else(|_| "{}".into()))
}

/// The `POP_RESULT` line for an output (no newline; the JSON is written on one line).
pub fn result_line(output: &Value) -> String {
    format!("{RESULT_MARKER} {output}")
}

/// `stdout` or `stderr`.
pub fn stream_name(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    }
}

/// Bounds on what a handler may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// The longest line, in bytes without its newline. A longer line fails the operation.
    pub max_line_bytes: usize,
    /// The largest `POP_RESULT` JSON text, in bytes. A larger result fails the operation.
    pub max_result_bytes: usize,
    /// How many of the last log lines are kept for a failure's diagnostic.
    pub tail_lines: usize,
    /// Each kept line is cut to this many bytes.
    pub tail_line_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            tail_lines: 20,
            tail_line_bytes: 2048,
        }
    }
}

/// The last log lines of an operation, each cut to a bound, for a failure's diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogTail {
    lines: VecDeque<(LogStream, String)>,
    max_lines: usize,
    line_bytes: usize,
}

impl LogTail {
    /// A tail of at most `max_lines` lines of at most `line_bytes` bytes each (longer ones end in `…`).
    pub fn new(max_lines: usize, line_bytes: usize) -> Self {
        Self { lines: VecDeque::new(), max_lines, line_bytes }
    }

    /// Remembers a line, forgetting the oldest when full.
    pub fn push(&mut self, stream: LogStream, line: &str) {
        if self.max_lines == 0 {
            return;
        }
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
        }
        let mut cut = line.len().min(self.line_bytes);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = if cut < line.len() { format!("{}…", &line[..cut]) } else { line.to_string() };
        self.lines.push_back((stream, text));
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = (LogStream, &str)> {
        self.lines.iter().map(|(s, l)| (*s, l.as_str()))
    }

    /// How many lines are kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// `[{"stream": "stdout", "line": "..."}, ...]`: the form of the process runtime's `lastLines`.
    pub fn to_json(&self) -> Value {
        Value::Array(self.lines.iter().map(|(s, l)| json!({"stream": stream_name(*s), "line": l})).collect())
    }

    /// `["...", ...]`: the lines alone (a Pod's log is one stream).
    pub fn to_json_lines(&self) -> Value {
        Value::Array(self.lines.iter().map(|(_, l)| Value::String(l.clone())).collect())
    }
}

/// What [`OutputParser::line`] made of one line.
#[derive(Debug)]
pub struct Parsed {
    /// The event to report (`Progress`, `Output` or `Log`).
    pub event: RuntimeEvent,
    /// A rule the line broke that does not fail the operation (a malformed `POP_PROGRESS` line), for
    /// the runtime to log. A rule that fails it is kept by the parser instead: see
    /// [`OutputParser::violation`].
    pub warning: Option<ProtocolError>,
}

/// Turns a handler's output lines into events, remembering the log's tail and the first broken rule
/// that fails the operation. Pure: the runtime reads the lines and reports the events.
///
/// * A `POP_PROGRESS` line becomes `Progress`; a malformed one is logged and ignored.
/// * A `POP_RESULT` line becomes `Output`; a malformed or oversized one fails the operation.
/// * A line over `max_line_bytes` (reported by the reader through [`too_long`](Self::too_long)) fails it.
/// * Every other line (stderr always) is `Log`, and the tail keeps it.
///
/// ```
/// use pop_core::runtime::{LogStream, RuntimeEvent};
/// use pop_handler_protocol::output::{OutputLimits, OutputParser};
/// let mut parser = OutputParser::new(OutputLimits::default());
/// let parsed = parser.line(LogStream::Stdout, "POP_RESULT {\"ok\": true}".into());
/// assert!(matches!(parsed.event, RuntimeEvent::Output(_)));
/// parser.line(LogStream::Stderr, "warning: slow disk".into());
/// parser.line(LogStream::Stdout, "POP_RESULT {oops".into());
/// assert!(parser.violation().unwrap().to_string().contains("malformed POP_RESULT"));
/// assert!(parser.violation().unwrap().fails_operation());
/// assert_eq!(parser.tail().len(), 2);
/// ```
#[derive(Debug)]
pub struct OutputParser {
    limits: OutputLimits,
    tail: LogTail,
    violation: Option<ProtocolError>,
}

impl OutputParser {
    /// A parser with these bounds.
    pub fn new(limits: OutputLimits) -> Self {
        Self { limits, tail: LogTail::new(limits.tail_lines, limits.tail_line_bytes), violation: None }
    }

    /// The bounds.
    pub fn limits(&self) -> &OutputLimits {
        &self.limits
    }

    /// One whole line (without its newline) from `stream`; only stdout carries protocol lines.
    pub fn line(&mut self, stream: LogStream, line: String) -> Parsed {
        if line.len() > self.limits.max_line_bytes {
            let note = self.too_long(stream, line.as_bytes());
            return Parsed { event: RuntimeEvent::Log(stream, note), warning: None };
        }
        if stream == LogStream::Stderr {
            self.tail.push(stream, &line);
            return Parsed { event: RuntimeEvent::Log(stream, line), warning: None };
        }
        match parse_line(&line, self.limits.max_result_bytes) {
            Line::Progress(Ok(update)) => Parsed { event: RuntimeEvent::Progress(update), warning: None },
            Line::Result(Ok(output)) => Parsed { event: RuntimeEvent::Output(output), warning: None },
            Line::Progress(Err(e)) => {
                self.tail.push(stream, &line);
                Parsed { event: RuntimeEvent::Log(stream, line), warning: Some(e) }
            }
            Line::Result(Err(e)) => {
                // An oversized result is not repeated in the log: a note says what happened.
                let text = match &e {
                    ProtocolError::ResultTooLarge { .. } => format!("<{e}: dropped>"),
                    _ => line,
                };
                self.tail.push(stream, &text);
                self.record(e);
                Parsed { event: RuntimeEvent::Log(stream, text), warning: None }
            }
            Line::Log => {
                self.tail.push(stream, &line);
                Parsed { event: RuntimeEvent::Log(stream, line), warning: None }
            }
        }
    }

    /// A line on `stream` went over `max_line_bytes`; `start` is what the reader kept of it. Remembers
    /// it (it fails the operation) and returns the note that stands for the line in the log and its tail.
    pub fn too_long(&mut self, stream: LogStream, start: &[u8]) -> String {
        let start = String::from_utf8_lossy(&start[..start.len().min(QUOTED_START_BYTES)]).into_owned();
        let note = format!("<line longer than {} bytes dropped; it began: {start}>", self.limits.max_line_bytes);
        self.tail.push(stream, &note);
        self.record(ProtocolError::LineTooLong { stream: stream_name(stream), max: self.limits.max_line_bytes, start });
        note
    }

    fn record(&mut self, e: ProtocolError) {
        if self.violation.is_none() {
            self.violation = Some(e);
        }
    }

    /// The first broken rule that fails the operation (a malformed or oversized `POP_RESULT`, an
    /// over-long line); later ones are not kept (they are in the log).
    pub fn violation(&self) -> Option<&ProtocolError> {
        self.violation.as_ref()
    }

    /// The log's tail.
    pub fn tail(&self) -> &LogTail {
        &self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_lines() {
        let max = 1 << 20;
        match parse_line(r#"POP_PROGRESS {"percentComplete": 50, "processingStateMessage": "half"}"#, max) {
            Line::Progress(Ok(p)) => {
                assert_eq!(p.percent_complete, Some(50.0));
                assert_eq!(p.processing_state_message.as_deref(), Some("half"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_line("POP_RESULT {\"a\": [1]}", max), Line::Result(Ok(v)) if v["a"][0] == 1));
        assert!(matches!(parse_line("POP_RESULT\t{}", max), Line::Result(Ok(_))));
        assert!(matches!(parse_line("POP_RESULT {}  ", max), Line::Result(Ok(_))));
        assert!(matches!(
            parse_line("POP_RESULT {oops", max),
            Line::Result(Err(ProtocolError::MalformedResult { .. }))
        ));
        assert!(matches!(parse_line("POP_RESULT", max), Line::Result(Err(_))));
        assert!(matches!(parse_line("POP_PROGRESS [1,2", max), Line::Progress(Err(_))));
        assert!(matches!(parse_line("POP_PROGRESS {\"percentComplete\": \"x\"}", max), Line::Progress(Err(_))));
        assert!(matches!(parse_line("POP_RESULTS {}", max), Line::Log));
        assert!(matches!(parse_line(" POP_RESULT {}", max), Line::Log));
        assert!(matches!(parse_line("hello", max), Line::Log));
        assert!(matches!(
            parse_line("POP_RESULT \"0123456789\"", 11),
            Line::Result(Err(ProtocolError::ResultTooLarge { bytes: 12, max: 11 }))
        ));
        assert!(matches!(parse_line("POP_RESULT \"0123456789\"", 12), Line::Result(Ok(_))));
    }

    #[test]
    fn lines_round_trip() {
        let u = ProgressUpdate { percent_complete: Some(10.0), ..Default::default() };
        assert!(matches!(parse_line(&progress_line(&u), 100), Line::Progress(Ok(p)) if p == u));
        let v = json!({"x": "line\nbreak"});
        let line = result_line(&v);
        assert!(!line.contains('\n'));
        assert!(matches!(parse_line(&line, 100), Line::Result(Ok(back)) if back == v));
    }

    #[test]
    fn parser_events_tail_and_violations() {
        let limits = OutputLimits { max_line_bytes: 40, max_result_bytes: 10, tail_lines: 3, tail_line_bytes: 8 };
        let mut p = OutputParser::new(limits);
        let e = p.line(LogStream::Stdout, "POP_PROGRESS {\"percentComplete\": 5}".into());
        assert!(matches!(e.event, RuntimeEvent::Progress(_)) && e.warning.is_none());
        let e = p.line(LogStream::Stdout, "POP_PROGRESS nope".into());
        assert!(matches!(e.event, RuntimeEvent::Log(LogStream::Stdout, ref l) if l == "POP_PROGRESS nope"));
        assert!(matches!(e.warning, Some(ProtocolError::MalformedProgress { .. })));
        assert!(p.violation().is_none(), "a malformed progress line does not fail the operation");
        let e = p.line(LogStream::Stderr, "POP_RESULT {}".into());
        assert_eq!(e.event, RuntimeEvent::Log(LogStream::Stderr, "POP_RESULT {}".into()), "stderr is all log");
        let e = p.line(LogStream::Stdout, "POP_RESULT \"much too large\"".into());
        assert!(matches!(e.event, RuntimeEvent::Log(_, ref l) if l.contains("dropped")));
        assert!(matches!(p.violation(), Some(ProtocolError::ResultTooLarge { bytes: 16, max: 10 })));
        assert!(p.violation().unwrap().to_string().contains("larger than the limit of 10 bytes"));
        p.line(LogStream::Stdout, "POP_RESULT {bad".into());
        assert!(p.violation().unwrap().to_string().contains("larger"), "the first violation is kept");
        let lines: Vec<&str> = p.tail().lines().map(|(_, l)| l).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "POP_RESU…");
        assert_eq!(p.tail().to_json()[0]["stream"], "stderr");
        assert_eq!(p.tail().to_json_lines()[2], "POP_RESU…");

        let mut p = OutputParser::new(limits);
        let e = p.line(LogStream::Stderr, "é".repeat(30));
        assert!(
            matches!(e.event, RuntimeEvent::Log(LogStream::Stderr, ref l) if l.starts_with("<line longer than 40"))
        );
        assert!(matches!(p.violation(), Some(ProtocolError::LineTooLong { stream: "stderr", max: 40, .. })));
        assert!(p.violation().unwrap().to_string().contains("longer than the limit of 40 bytes"));
        assert_eq!(p.tail().len(), 1);
    }

    #[test]
    fn tail_cuts_on_char_boundaries() {
        let mut t = LogTail::new(2, 3);
        t.push(LogStream::Stdout, "éé");
        t.push(LogStream::Stdout, "ab");
        t.push(LogStream::Stdout, "abcd");
        let lines: Vec<&str> = t.lines().map(|(_, l)| l).collect();
        assert_eq!(lines, ["ab", "abc…"]);
        let mut none = LogTail::new(0, 10);
        none.push(LogStream::Stdout, "x");
        assert!(none.is_empty());
    }
}
