//! # pop-exec: the POP agenda executor
//!
//! An agenda is a DAG of operations wired by references to each other's outputs. This crate runs one:
//!
//! * [`machine`]: the pure state machine of one run. It takes events and the current time and decides
//!   what to launch (within the parallelism cap, payloads resolved), when to retry, when an operation
//!   timed out, how far along the agenda is, and how it ended. No IO, no clock, no async: it is where
//!   the property tests live.
//! * `executor` (coming): the async driver (tokio) that carries out the machine's decisions on a
//!   [`PodRuntime`](pop_core::runtime::PodRuntime), follows the handlers' events, enforces timeouts and
//!   retries, honours cancellation, and publishes progress to a `ProgressSink`.
//! * `inprocess` (coming): a `PodRuntime` whose handlers are async Rust closures, with the original's resident
//!   handlers `logMessages` and `updateAgenda`.
//!

mod cancel;
pub mod generate;
pub mod machine;

pub use cancel::CancelToken;
