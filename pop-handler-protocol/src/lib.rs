//! # pop-handler-protocol: how POP talks to a handler program
//!
//! A handler is any program (a local process, a Pod's container). Every runtime that runs handler
//! programs speaks this one protocol, so a handler moves between runtimes unchanged. This crate is the
//! protocol and nothing else: pure functions and types, no IO, no async runtime.
//!
//! | part | what | here |
//! |---|---|---|
//! | input | `PAYLOAD` (`POP_PAYLOAD_TYPE=envVar`), or above a threshold `POP_PAYLOAD_TYPE=compressedEnvVar` and zlib + base64 chunks `POP_COMPRESSED_PAYLOAD_0..N`; `AGENDA_ID`, `CID`, `CUSTOMER_ID`, `PROGRESS_ID`, `OPERATION_NAME`, `OPERATION_ID`; `LAST_PROGRESS` on re-runs; `LOG_LEVEL` | [`env`](mod@env) (names, [`env::handler_env`]), [`payload`] |
//! | input, handler side | decode all of the above | [`HandlerInput`] |
//! | output | stdout lines `POP_PROGRESS {json}` (a partial progress) and `POP_RESULT {json}` (the output; the last one wins); every other line, and all of stderr, is the log | [`output`] ([`output::parse_line`], [`output::OutputParser`]) |
//! | bounds | a line longer than [`output::OutputLimits::max_line_bytes`] or a result larger than [`output::OutputLimits::max_result_bytes`] fails the operation | [`framing::LineFramer`], [`output::OutputParser`] |
//! | diagnostics | the last log lines, each cut to a bound | [`output::LogTail`] |
//! | errors | [`ProtocolError`], naming the variable or line; converts into [`pop_core::Error`] | [`error`] |
//!
//! Exit status 0 is success; what a runtime makes of a status, a signal or a timeout is the runtime's
//! (the process runtime's exit classifier, the Kubernetes runtime's Pod phase and the original's
//! `pop.report.progress` / `pop.report.payload` annotations).
//!
//! A runtime builds the environment of a launch and parses what comes back:
//!
//! ```
//! use pop_core::runtime::{LaunchRequest, LogStream, RuntimeEvent};
//! use pop_handler_protocol::env::{EnvOptions, handler_env};
//! use pop_handler_protocol::output::{OutputLimits, OutputParser};
//! use pop_handler_protocol::HandlerInput;
//!
//! let request = LaunchRequest {
//!     agenda_id: "a-1".into(),
//!     operation_name: "probe".into(),
//!     operation_type: "probe".into(),
//!     payload: serde_json::json!({"file": "in.mp4"}),
//!     ..LaunchRequest::default()
//! };
//! let vars = handler_env(&request, &EnvOptions::default()).unwrap();
//!
//! // What the handler sees:
//! let input = HandlerInput::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
//! assert_eq!(input.payload, request.payload);
//!
//! // What the runtime makes of its output:
//! let mut parser = OutputParser::new(OutputLimits::default());
//! let parsed = parser.line(LogStream::Stdout, r#"POP_RESULT {"duration": 12.5}"#.into());
//! assert_eq!(parsed.event, RuntimeEvent::Output(serde_json::json!({"duration": 12.5})));
//! ```

pub mod env;
pub mod error;
pub mod framing;
pub mod input;
pub mod output;
pub mod payload;

pub use env::{EnvOptions, UnknownIds, handler_env};
pub use error::ProtocolError;
pub use input::HandlerInput;
pub use output::{LogTail, OutputLimits, OutputParser};
pub use payload::{PayloadEncoding, PayloadMode, decode_payload, encode_payload};
