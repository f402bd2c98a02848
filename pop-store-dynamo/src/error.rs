//! The backend's own error, with the request and the object it concerned, and its mapping to
//! [`pop_core::Error`].

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::fmt;

/// The name the backend uses in [`pop_core::Error::Backend`].
pub const BACKEND: &str = "dynamodb";

/// A DynamoDB request that failed for a reason POP has no variant for (network, permissions, a
/// missing table, throttling past the retry bound, a malformed response).
#[derive(Debug)]
pub struct DynamoError {
    /// What was being done, e.g. `PutItem agenda a-17 in table pop_objects`.
    pub action: String,
    /// DynamoDB's error code, if the service answered (`ResourceNotFoundException`, …).
    pub code: Option<String>,
    /// The whole error chain, for a person.
    pub detail: String,
    /// What to do about it, when known.
    pub hint: Option<&'static str>,
}

impl fmt::Display for DynamoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.action)?;
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        f.write_str(&self.detail)?;
        if let Some(hint) = self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DynamoError {}

impl DynamoError {
    /// An error of `action` from the SDK.
    pub fn from_sdk<E, R>(action: impl Into<String>, err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let code = err.code().map(str::to_owned);
        let hint = match code.as_deref() {
            Some("ResourceNotFoundException") => Some(
                "a table or index is missing: call DynamoBackend::ensure_tables() or create them as the \
                 pop-store-dynamo crate docs describe",
            ),
            Some("UnrecognizedClientException" | "InvalidSignatureException" | "MissingAuthenticationToken") => {
                Some("check the AWS credentials and region")
            }
            Some("AccessDeniedException") => Some("the credentials lack a DynamoDB permission on POP's tables"),
            Some(c) if is_throttle_code(c) => Some("still throttled after the configured max_attempts"),
            _ => match err {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                    Some("is the endpoint reachable? check DynamoConfig::endpoint / POP_DYNAMODB_ENDPOINT")
                }
                _ => None,
            },
        };
        Self { action: action.into(), code, detail: DisplayErrorContext(err).to_string(), hint }
    }

    /// A failure that did not come from the SDK (an unexpected response shape).
    pub fn other(action: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { action: action.into(), code: None, detail: detail.into(), hint: None }
    }
}

impl From<DynamoError> for pop_core::Error {
    fn from(e: DynamoError) -> Self {
        pop_core::Error::backend(BACKEND, e)
    }
}

/// Error codes DynamoDB uses for throttling and transient faults: worth another attempt.
pub(crate) fn is_throttle_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException"
    )
}

/// Whether an SDK error is transient: throttling, a transient service fault, a timeout or a broken
/// connection.
pub(crate) fn is_transient<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout() || d.is_io(),
        // 500/503 without a DynamoDB code are transient server faults too (as the SDK's own retry
        // classifier holds).
        SdkError::ServiceError(se) => err.code().is_some_and(is_throttle_code) || se.raw().status().is_server_error(),
        SdkError::ResponseError(r) => r.raw().status().is_server_error(),
        _ => false,
    }
}
