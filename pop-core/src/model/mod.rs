//! The data model, wire-compatible with the original POP's JSON.
//!
//! JSON is camelCase, dates are epoch milliseconds, unknown fields are ignored and `null` is accepted
//! for every optional field. Every stored object carries a `version` for optimistic concurrency.

mod agenda;
mod facility;
mod progress;
mod ready;
mod state;

pub use agenda::{Agenda, AgendaInsight, AgendaTemplate, Operation, RetryPolicy, param_keys};
pub use facility::{Customer, DEFAULT_QUEUE_SIZE, Insight, ResourcePool};
pub use progress::{AgendaProgress, DiagnosticEvent, MAX_ATTEMPTS_CAP, OperationProgress};
pub use ready::ReadyAgenda;
pub use state::{Conclusion, PENDING, ProcessingState, RUNNING_OPERATIONS};

use serde::{Deserialize, Deserializer};

/// Epoch milliseconds, the original's date representation.
pub type Millis = i64;

/// A free-form parameter map (`ParamsMap` in the original).
pub type Params = serde_json::Map<String, serde_json::Value>;

/// Deserializes `null` (or a missing field, with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

pub(crate) fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

/// Generates the compare-and-swap `version` accessors and owner accessors shared by stored objects.
macro_rules! owned_object {
    ($ty:ty) => {
        impl $ty {
            /// The owning customer id, if any.
            pub fn owner(&self) -> Option<&str> {
                self.customer_id.as_deref()
            }
        }
    };
}
pub(crate) use owned_object;

#[cfg(test)]
mod tests;
