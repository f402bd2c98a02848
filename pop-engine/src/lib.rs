//! # pop-engine: POP's services and loops
//!
//! An [`Engine`] is one POP instance over the pop-core traits (a `Store`, a `QueueBackend`, a
//! `PodRuntime`, scheduling algorithms): it knows no backend. The `pop` facade builds one from its
//! features (sled, DynamoDB, local processes, Kubernetes); tests build one on the in-memory backends.
//!
//! * the services ([`services`]): agendas (submit, run a template, rerun, cancel, query), progress
//!   (progress, summary by linkId, explain), the resource-pool API (leases, fenced progress, generated
//!   operations, completion) and CRUD with visibility. Every call takes a `Principal`.
//! * the loops, each owning its own state: the scheduler (one per insight across instances, held by a
//!   store lease; it keeps its weight cache and leases), pool workers, the reclaimer, the timed
//!   processes (automatic retry, data reaper, pod reaper; they keep their counters).
//! * [`alerts`]: an agenda failed for good, a pool that stopped pulling — raised by those paths,
//!   delivered by a loop of their own to an [`AlertSink`] with retries and a dead-letter file.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> pop_core::Result<()> {
//! use pop_core::authz::Principal;
//! use pop_core::memory::{MemoryQueue, MemoryStore};
//! use pop_engine::{Engine, EngineParts};
//! use std::sync::Arc;
//! let runtime = Arc::new(pop_exec::inprocess::InProcessRuntime::new());
//! let engine = Engine::new(EngineParts::new(Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()), runtime));
//! let admin = Principal::superuser("admin");
//! let missing = engine.progress().agenda_progress(&admin, "no-such-agenda").await;
//! assert!(matches!(missing, Err(pop_core::Error::NotFound { .. })));
//! # Ok(()) }
//! ```

pub mod alerts;
pub mod config;
mod context;
pub mod costs;
mod engine;
#[cfg(test)]
mod observed;
pub mod reclaimer;
pub mod rerun;
pub mod router;
mod scheduler;
pub mod services;
mod signals;
pub mod timed;
mod traced;
pub mod worker;

pub use alerts::{Alert, AlertConfig, AlertMessage, AlertSink};
pub use config::{PopConfig, WorkerConfig};
pub use engine::{Engine, EngineParts};
pub use router::RuntimeRouter;
pub use signals::Signals;
pub use worker::{PoolApi, Worker};
