//! The crate's error type and its conversion into [`pop_core::Error`].

use std::time::Duration;

/// What went wrong talking to Kubernetes; the message names the pod, namespace and action.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// An API call failed (after its retries, when retryable).
    #[error("{action}: {source}")]
    Api {
        /// What was being done ("create pod pop/pop-samp-1234").
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The client could not be configured (no kubeconfig, no in-cluster environment).
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    /// A handle that is not `namespace/name`.
    #[error("invalid pod handle {0:?}: expected namespace/name")]
    BadHandle(String),
    /// The registry's Pod config cannot become a Pod spec.
    #[error("operation type {operation_type}: {message}")]
    PodConfig {
        /// The operation type whose config is wrong.
        operation_type: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// An API call still failed after every retry, or the API could not be reached for too long.
    #[error("{action}: gave up after {attempts} attempts over {elapsed:?}: {last}")]
    RetriesExhausted {
        /// What was being done.
        action: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long they took.
        elapsed: Duration,
        /// The last error.
        last: String,
    },
}

/// The backend name used in [`pop_core::Error::Backend`].
pub const BACKEND: &str = "kubernetes";

impl From<KubeError> for pop_core::Error {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::Api { ref action, source: kube::Error::Api(ref status) } if status.code == 404 => {
                pop_core::Error::not_found("pod", action.clone())
            }
            KubeError::Api { source: kube::Error::Api(ref status), .. } if status.code == 409 => {
                pop_core::Error::Conflict(e.to_string())
            }
            KubeError::Api { source: kube::Error::Api(ref status), .. } if status.code == 403 => {
                pop_core::Error::Forbidden(e.to_string())
            }
            KubeError::Api { source: kube::Error::Api(ref status), .. } if status.code == 401 => {
                pop_core::Error::Unauthorized(e.to_string())
            }
            KubeError::BadHandle(_) | KubeError::PodConfig { .. } => pop_core::Error::invalid(e.to_string()),
            other => pop_core::Error::backend(BACKEND, other),
        }
    }
}

/// Whether a failed API call is worth retrying: server errors, throttling, timeouts, connection errors.
/// Client errors (4xx other than 408/429), decoding errors and configuration errors are not.
pub fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429 || status.code == 408,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The HTTP status of an API error, if it is one.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
