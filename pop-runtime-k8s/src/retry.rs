//! Bounded retries of Kubernetes API calls (decision in [`RetryPolicy`], action here).

use crate::config::RetryPolicy;
use crate::error::{KubeError, is_retryable};
use std::future::Future;
use std::time::Instant;

/// Runs `call` until it succeeds, fails with a non-retryable error, or `policy.attempts` are used up.
/// `call` gets the attempt number (1-based), so a create can accept "already exists" on a retry.
pub async fn with_retry<T, F, Fut>(policy: &RetryPolicy, action: &str, mut call: F) -> Result<T, KubeError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let start = Instant::now();
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        match call(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if !is_retryable(&e) => return Err(KubeError::Api { action: action.to_string(), source: e }),
            Err(e) if attempt >= attempts => {
                return Err(KubeError::RetriesExhausted {
                    action: action.to_string(),
                    attempts,
                    elapsed: start.elapsed(),
                    last: e.to_string(),
                });
            }
            Err(e) => {
                tracing::debug!(action, attempt, error = %e, "kubernetes API call failed; retrying");
                tokio::time::sleep(policy.delay(attempt - 1)).await;
                attempt += 1;
            }
        }
    }
}
