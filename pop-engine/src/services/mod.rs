//! The services of a POP instance. Every call takes a [`Principal`] and applies the visibility rules;
//! requests and responses are plain serde types so an HTTP API can mirror them one to one.

mod agenda;
mod objects;
pub(crate) mod pool;
mod progress;
mod queues;

pub use agenda::{AgendaService, RerunOptions};
pub use objects::{ManagedObject, ObjectService};
pub use pool::{AgendaLease, Finish, LeaseState, ResourcePoolService};
pub use progress::{Explain, ProgressService, ProgressSummary};
pub use queues::{CustomerReadyCount, QueueStats, WaitingAgenda};

use pop_core::Error;
use pop_core::authz::Principal;

pub(crate) fn forbidden(principal: &Principal, action: &str) -> Error {
    let who = if principal.user_id.is_empty() { "anonymous caller" } else { principal.user_id.as_str() };
    Error::Forbidden(format!("{who} may not {action}"))
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
