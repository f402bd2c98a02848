//! # POP for Rust
//!
//! POP (Priority Operation Processing) is a multi-tenant workflow orchestrator you embed in a Rust
//! application. This facade composes an instance from the POP crates:
//!
//! * [`Pop`] (an [`Engine`] with a builder) and its [`PopBuilder`]: store, queue, runtime(s),
//!   authorizer, scheduling algorithms, configuration, clock;
//! * the engine's services ([`services`]): agendas (submit, run a template, rerun, cancel, query),
//!   progress (progress, summary by linkId, explain), the resource-pool API (leases, fenced progress,
//!   generated operations, completion) and CRUD with visibility;
//! * the engine's loops: the scheduler (one per insight across instances), pool workers, the
//!   reclaimer, the timed processes.
//!
//! Features pick the backends: `sled` and `process` (default) wire the embedded store and the
//! local-process runtime; `dynamo` adds the DynamoDB store and queue ([`PopBuilder::dynamo`],
//! `pop::dynamo`) for several instances on several machines; `k8s` runs handlers as Kubernetes Pods
//! (`PopBuilder::k8s_runtime`, `pop::k8s`). The `pop` command-line tool is the `pop-cli` package.
//!
//! **The guide** is the [`docs`] module: concepts, the lifecycle of an agenda, choosing backends,
//! writing handlers and algorithms, operating and upgrading.
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
mod builder;
pub mod docs;
#[cfg(all(feature = "sled", feature = "process"))]
pub mod embedded;

pub use builder::{Pop, PopBuilder};
pub use pop_core::clock::{Clock, ManualClock, SystemClock};
pub use pop_engine::{
    AlertConfig, Engine, EngineParts, PoolApi, PopConfig, RuntimeRouter, Signals, Worker, WorkerConfig,
};
pub use pop_engine::{alerts, config, reclaimer, rerun, router, services, timed};

pub use pop_core as core;
pub use pop_engine as engine;
pub use pop_exec as exec;
#[cfg(feature = "http")]
pub use pop_http as http;
#[cfg(feature = "k8s")]
pub use pop_runtime_k8s as k8s;
#[cfg(feature = "process")]
pub use pop_runtime_process as process;
pub use pop_sched as sched;
#[cfg(feature = "dynamo")]
pub use pop_store_dynamo as dynamo;
#[cfg(feature = "fjall")]
pub use pop_store_fjall as fjall;
#[cfg(feature = "sled")]
pub use pop_store_sled as sled;
