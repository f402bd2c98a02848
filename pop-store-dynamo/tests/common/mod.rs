//! Connects the tests to the DynamoDB-compatible server named by `POP_DYNAMODB_ENDPOINT`.
#![allow(dead_code, reason = "each test file uses part of this")]

use pop_store_dynamo::{DynamoBackend, DynamoConfig};

/// A fresh table prefix. Each test gets its own tables: moto copies a whole table for every
/// transaction item (to roll back), so small tables keep the emulator fast; it also keeps runs apart.
pub fn prefix() -> String {
    format!("pop_t{}_", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The endpoint, or `None` after printing why the test is skipped.
pub fn endpoint(test: &str) -> Option<String> {
    match std::env::var("POP_DYNAMODB_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => Some(e),
        _ => {
            eprintln!(
                "skipping {test}: POP_DYNAMODB_ENDPOINT is not set (run `eval \"$(bash .ci/dynamo.sh)\"` to start a \
                 local DynamoDB-compatible server)"
            );
            None
        }
    }
}

/// A backend on this process's tables (created if missing), or `None` when no server is configured.
pub async fn backend(test: &str) -> pop_core::Result<Option<DynamoBackend>> {
    backend_with(test, |c| c).await
}

/// Like [`backend`], with the configuration adjusted.
pub async fn backend_with(
    test: &str,
    adjust: impl FnOnce(DynamoConfig) -> DynamoConfig,
) -> pop_core::Result<Option<DynamoBackend>> {
    let Some(endpoint) = endpoint(test) else { return Ok(None) };
    let cfg = adjust(DynamoConfig::local(endpoint).table_prefix(prefix()));
    let backend = DynamoBackend::connect(cfg).await?;
    backend.ensure_tables().await?;
    Ok(Some(backend))
}
