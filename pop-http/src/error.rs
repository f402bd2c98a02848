//! Errors as HTTP answers: the status that fits each `pop_core::Error` kind, and the original's
//! error envelope `{"errorResponse": {title, description, responseCode, correlationId}}` with the
//! list of problems (an extension) so a client can show each where it belongs.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pop_core::{Error, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

tokio::task_local! {
    /// The correlation id of the request being answered (set by the cid middleware).
    pub(crate) static CID: String;
}

/// The current request's correlation id, if called while answering one.
pub(crate) fn current_cid() -> Option<String> {
    CID.try_with(Clone::clone).ok()
}

/// The original's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The error.
    pub error_response: ErrorResponse,
}

/// What went wrong (the original's `ErrorResponse`; `problems` is an extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// The kind: `NotFound`, `Conflict`, `Unauthorized`, `Forbidden`, `ValidationException`,
    /// `BadRequest`, `Unsupported`, `PayloadTooLarge`, `Timeout`, `ServiceUnavailable`, `InternalError`.
    pub title: String,
    /// The message, for a person.
    pub description: String,
    /// The HTTP status, repeated (the original put it in the body).
    pub response_code: u16,
    /// The request's correlation id (`X-pop-cid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Every problem of an invalid input, each naming its operation and field where it has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    title: &'static str,
    description: String,
    problems: Vec<Problem>,
}

impl ApiError {
    /// An error with a status, a title and a message.
    pub(crate) fn new(status: StatusCode, title: &'static str, description: impl Into<String>) -> Self {
        Self { status, title, description: description.into(), problems: Vec::new() }
    }

    /// A malformed request (400).
    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, title) = match &e {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ValidationException"),
            // The request asks for something this deployment cannot do.
            Error::Unsupported(_) => (StatusCode::BAD_REQUEST, "Unsupported"),
            // The store or a backend is unreachable or failing: worth retrying.
            Error::Backend { .. } => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, "request failed");
        }
        let problems = e.problem_list().to_vec();
        Self { status, title, description: e.to_string(), problems }
    }
}

impl ApiError {
    /// The answer of a bulk request whose every item failed: the error envelope with the first
    /// failure's status and title, a description naming each item's index and error, and every
    /// item's problems with their field prefixed by `<list>[index]`.
    pub(crate) fn all_failed(list: &str, failures: Vec<(usize, ApiError)>) -> Self {
        let Some((_, first)) = failures.first() else {
            return Self::bad_request(format!("{list} is empty"));
        };
        let (status, title) = (first.status, first.title);
        let mut description = format!("every item of {list} failed:");
        let mut problems = Vec::new();
        for (index, e) in failures {
            description.push_str(&format!(" [{index}] {}: {};", e.title, e.description));
            for mut p in e.problems {
                p.field = Some(match p.field.take() {
                    Some(f) if !f.is_empty() => format!("{list}[{index}].{f}"),
                    _ => format!("{list}[{index}]"),
                });
                problems.push(p);
            }
        }
        description.pop();
        Self { status, title, description, problems }
    }

    /// The envelope's content.
    pub(crate) fn into_error_response(self) -> ErrorResponse {
        ErrorResponse {
            title: self.title.to_owned(),
            description: self.description,
            response_code: self.status.as_u16(),
            correlation_id: current_cid(),
            problems: self.problems,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = ErrorBody { error_response: self.into_error_response() };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
