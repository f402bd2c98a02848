//! # pop-core: POP's vocabulary
//!
//! POP (Priority Operation Processing) runs **agendas**: JSON DAGs of operations wired by references to
//! each other's outputs (`@<encode.out::/file>`). This crate holds what every other POP crate speaks:
//!
//! * [`model`]: the data model, wire-compatible with the original POP's JSON;
//! * [`refs`]: the reference language, parsed once and resolved against a context;
//! * [`template`]: agenda-template expansion;
//! * [`dag`]: the dependency graph of an agenda (petgraph): the one parser of dependencies, cycles,
//!   topological order and layers, dependent closures, DOT and JSON export;
//! * [`validate`]: validation of a submitted agenda, reporting every problem;
//! * [`lifecycle`]: the progress rows a submission creates, their ids, and how an executor's report
//!   merges into the stored progress;
//! * [`visibility`]: who may see and change what, as pure functions;
//! * the traits the backends implement: [`store::Store`], [`queue::QueueBackend`],
//!   [`sched::SchedulingAlgorithm`], [`authz::Authorizer`], [`runtime::PodRuntime`];
//! * [`clock`]: time as a dependency ([`clock::Clock`]), so every loop and the executor read one clock;
//! * [`memory`]: thread-safe in-memory reference backends;
//! * `testing` (feature `testing`): the conformance suite every backend runs.
//!
//! It has no tokio, sled, AWS or Kubernetes dependency.
//!
//! ```
//! use pop_core::model::Agenda;
//! let agenda: Agenda = serde_json::from_str(r#"{
//!     "customerId": "acme",
//!     "operations": [
//!         {"name": "probe", "type": "sample", "payload": {"file": "in.mp4"}},
//!         {"name": "encode", "type": "sample", "payload": {"input": "@<probe.out::/file>"}}
//!     ]
//! }"#).unwrap();
//! assert_eq!(agenda.operations.len(), 2);
//! ```

pub mod authz;
pub mod clock;
pub mod compat;
pub mod dag;
pub mod error;
pub mod lifecycle;
pub mod memory;
pub mod model;
pub mod queue;
pub mod refs;
pub mod registry;
pub mod runtime;
pub mod sched;
pub mod store;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;
pub mod visibility;
mod walk;

pub use error::{Error, Problem, Problems, Result};
