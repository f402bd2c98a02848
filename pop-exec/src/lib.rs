//! # pop-exec: the POP agenda executor
//!
//! An agenda is a DAG of operations wired by references to each other's outputs. This crate runs one:
//!
//! * [`machine`]: the pure state machine of one run. It takes events and the current time and decides
//!   what to launch (within the parallelism cap, payloads resolved), when to retry, when an operation
//!   timed out, how far along the agenda is, and how it ended. No IO, no clock, no async: it is where
//!   the property tests live.
//! * [`executor`]: the async driver (tokio) that carries out the machine's decisions on a
//!   [`PodRuntime`](pop_core::runtime::PodRuntime), follows the handlers' events, enforces timeouts and
//!   retries, honours cancellation, and publishes progress to a [`ProgressSink`](executor::ProgressSink).
//! * [`inprocess`]: a `PodRuntime` whose handlers are async Rust closures, with the original's resident
//!   handlers `logMessages` and `updateAgenda`.
//!
//! ```
//! use pop_exec::executor::{Executor, ExecutorOptions, NullSink};
//! use pop_exec::inprocess::InProcessRuntime;
//! use pop_exec::CancelToken;
//! use pop_core::model::{Agenda, Conclusion};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let runtime = InProcessRuntime::new();
//! runtime.register("double", |ctx| async move {
//!     let n = ctx.payload()["n"].as_i64().unwrap_or(0);
//!     Ok(serde_json::json!({"n": n * 2}))
//! });
//! let agenda: Agenda = serde_json::from_value(serde_json::json!({
//!     "id": "a1",
//!     "operations": [
//!         {"name": "one", "type": "double", "payload": {"n": 1}},
//!         {"name": "two", "type": "double", "payload": {"n": "@<one.out::/n>"}}
//!     ]
//! })).unwrap();
//! let executor = Executor::new(Arc::new(runtime), Arc::new(NullSink), ExecutorOptions::default());
//! let progress = executor.run(agenda, None, CancelToken::new()).await.unwrap();
//! assert_eq!(progress.conclusion(), Some(Conclusion::Succeeded));
//! assert_eq!(progress.operation_progress[1].result_payload.as_deref(), Some(r#"{"n":4}"#));
//! # });
//! ```

mod cancel;
pub mod executor;
pub mod generate;
pub mod inprocess;
pub mod machine;

pub use cancel::CancelToken;
