//! Operations routes: liveness, readiness, metrics, the OpenAPI document.

use crate::dto::Readiness;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pop_core::store::Kind;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store is healthy and answers a read (503 otherwise).
pub(crate) async fn readyz(State(s): State<AppState>) -> Response {
    let store = s.engine.store();
    let answer = match store.health() {
        Ok(()) => store.get(Kind::Insight, "_readyz").await.map(|_| ()),
        Err(e) => Err(e),
    };
    match answer {
        Ok(_) => {
            Json(Readiness { status: "ready".into(), store: format!("{}: ok", store.backend_name()) }).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness { status: "unavailable".into(), store: format!("{}: {e}", store.backend_name()) }),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text, from the recorder in the API's settings.
pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    match &s.config.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no metrics recorder is installed in this server (ApiConfig::metrics)",
        )
        .into_response(),
    }
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    match crate::openapi::document().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => crate::error::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())
            .into_response(),
    }
}
