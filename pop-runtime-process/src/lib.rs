//! # pop-runtime-process: handlers as local child processes
//!
//! [`ProcessRuntime`] implements [`pop_core::runtime::PodRuntime`] by running each operation as a child
//! process in its own process group, as the `process` section of the operation type's entry in the
//! [handler registry](pop_core::registry) says. It is POP's default runtime: no cluster needed, and the
//! same handler protocol as the Kubernetes runtime, so a handler moves between the two unchanged.
//!
//! | capability | how |
//! |---|---|
//! | launch | `process.command` + `args`, `env`, `workingDir`; stdin is `/dev/null` |
//! | payload | `PAYLOAD`, or zlib+base64 `POP_COMPRESSED_PAYLOAD_0..N` above [`ProcessRuntimeConfig::compress_threshold`] (the [shared protocol](pop_handler_protocol)) |
//! | progress / output | `POP_PROGRESS {json}` / `POP_RESULT {json}` stdout lines, parsed as they arrive |
//! | log | every other stdout line and all of stderr, as [`RuntimeEvent::Log`](pop_core::runtime::RuntimeEvent::Log) |
//! | timeout, cancel | SIGTERM to the process group, SIGKILL after [`ProcessRuntimeConfig::kill_grace`] |
//! | leftovers | processes the handler leaves in its group are killed when it exits (as a Pod's containers) |
//! | failure details | exit code or signal and the last lines of output in the exit's diagnostic ([`exit`]: the pure classifier) |
//! | memory bound | lines longer than [`ProcessRuntimeConfig::max_line_bytes`] fail the operation; so do results over [`ProcessRuntimeConfig::max_result_bytes`] |
//! | concurrency | `process.maxConcurrent` per type: further launches wait for a slot |
//! | reaping | `list()` (running/finished, start/end times) and `cleanup()` |
//!
//! ## The handler protocol
//!
//! The protocol is [`pop_handler_protocol`]'s, the same for processes and Pods.
//!
//! **Input**, in environment variables: `PAYLOAD` (the resolved payload JSON) with
//! `POP_PAYLOAD_TYPE=envVar`, or — for big payloads — `POP_PAYLOAD_TYPE=compressedEnvVar` and
//! `POP_COMPRESSED_PAYLOAD_0..N` (zlib, then base64, split in chunks of at most 100 000 characters;
//! concatenate, decode, inflate); `AGENDA_ID`, `CID`, `CUSTOMER_ID`, `PROGRESS_ID`, `OPERATION_NAME`,
//! `OPERATION_ID` (empty when unknown); `LAST_PROGRESS` (JSON of the operation's progress from an
//! earlier attempt, on re-runs only); `LOG_LEVEL=INFO` (unless `process.env` says otherwise).
//!
//! **Output**, on stdout, one line each: `POP_PROGRESS {"percentComplete": 40, "processingStateMessage":
//! "...", "params": {...}}` (any subset; `params` comes back as `LAST_PROGRESS.params` on a re-run) and
//! `POP_RESULT {json}` (the operation's output; the last one wins). Exit status 0 is success. Everything
//! else is the log. A malformed `POP_PROGRESS` line is logged and ignored; a malformed `POP_RESULT` line
//! fails the operation.
//!
//! Write a handler in any language: [`handler`] helps in Rust, and
//! `pop-runtime-process/examples/handlers/hello.sh` is a complete handler in POSIX shell. The
//! `pop-sample-handler` binary runs the original POP's `sample` payload ([`sample`]).
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use pop_core::registry::HandlerRegistry;
//! use pop_core::runtime::{LaunchRequest, PodRuntime, RuntimeEvent};
//! use pop_runtime_process::ProcessRuntime;
//!
//! # async fn demo() -> pop_core::Result<()> {
//! let registry = HandlerRegistry::from_json_str(r#"{
//!     "echo": {"process": {"command": "/bin/sh",
//!                          "args": ["-c", "echo \"POP_RESULT $PAYLOAD\""],
//!                          "timeoutMs": 10000, "maxConcurrent": 4}}
//! }"#)?;
//! let runtime = ProcessRuntime::new(registry);
//! let mut launched = runtime.launch(LaunchRequest {
//!     agenda_id: "a-1".into(),
//!     operation_name: "hello".into(),
//!     operation_type: "echo".into(),
//!     payload: serde_json::json!({"greeting": "hi"}),
//!     ..LaunchRequest::default()
//! }).await?;
//! while let Some(event) = launched.events.next().await {
//!     match event {
//!         RuntimeEvent::Output(v) => println!("output {v}"),
//!         RuntimeEvent::Exited(exit) => println!("{}", exit.message),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod exit;
mod group;
pub mod handler;
mod output;
mod runtime;
pub mod sample;
mod supervise;

pub use config::ProcessRuntimeConfig;
pub use error::ProcessError;
pub use runtime::{ProcessRuntime, collect_events};
