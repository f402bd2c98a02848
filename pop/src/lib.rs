//! # POP for Rust
//!
//! POP (Priority Operation Processing) is a multi-tenant workflow orchestrator you embed in a Rust
//! application. This facade composes an instance from the POP crates:
//!
//! * [`Pop`] and its [`PopBuilder`]: store, queue, runtime(s), authorizer, scheduling algorithms,
//!   configuration;
//! * the services ([`services`]): agendas (submit, run a template, rerun, cancel, query), progress
//!   (progress, summary by linkId, explain), the resource-pool API (leases, heartbeat, fenced progress,
//!   generated operations, completion) and CRUD with visibility;
//! * the loops: the scheduler (one per insight across instances), pool workers, the reclaimer.
//!
//! Features: `sled` and `process` (default) wire the embedded store and the local-process runtime;
//! `dynamo` adds the DynamoDB store and queue ([`PopBuilder::dynamo`], `pop::dynamo`) for several
//! instances on several machines; `k8s` runs handlers as Kubernetes Pods ([`PopBuilder::k8s_runtime`],
//! `pop::k8s`); `cli` builds the `pop` command (with `pop worker`).
//!
//! ```no_run
//! # async fn demo() -> pop_core::Result<()> {
//! use pop::{Pop, WorkerConfig};
//! use pop_core::authz::Principal;
//! use std::sync::Arc;
//! let runtime = Arc::new(pop_exec::inprocess::InProcessRuntime::new());
//! let pop = Pop::builder().sled_path("/tmp/pop-data")?.runtime(runtime).build()?;
//! pop.start_all(WorkerConfig::for_insights(["my-insight"]));
//! let admin = Principal::superuser("admin");
//! let progress = pop.progress().agenda_progress(&admin, "some-agenda-id").await?;
//! # let _ = progress; Ok(()) }
//! ```

#[cfg(any(feature = "sled", feature = "dynamo", feature = "k8s"))]
mod backends;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(all(feature = "sled", feature = "process"))]
pub mod embedded;
mod instance;
pub mod reclaimer;
pub mod rerun;
pub mod router;
mod scheduler;
pub mod services;
pub mod timed;
mod traced;
mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{PopConfig, WorkerConfig};
pub use instance::{Pop, PopBuilder};
pub use router::RuntimeRouter;

pub use pop_core as core;
pub use pop_exec as exec;
#[cfg(feature = "k8s")]
pub use pop_runtime_k8s as k8s;
#[cfg(feature = "process")]
pub use pop_runtime_process as process;
pub use pop_sched as sched;
#[cfg(feature = "dynamo")]
pub use pop_store_dynamo as dynamo;
#[cfg(feature = "sled")]
pub use pop_store_sled as sled;
