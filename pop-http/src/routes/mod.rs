//! The router: every route, and the layers around them (correlation id, request id and tracing
//! span, time limit, body limit, panics as 500s, the error envelope for unknown routes).

mod agenda;
mod live;
mod objects;
mod ops;
mod pool;

use crate::config::ApiConfig;
use crate::error::{ApiError, CID};
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pop_core::model::{Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, OperationProgress, ResourcePool};
use pop_engine::Engine;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The correlation id header (the original's).
pub const CID_HEADER: &str = "x-pop-cid";
/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The API's router over `engine`: the original's routes, POP's additions, `/openapi.json`,
/// `/healthz`, `/readyz`, `/metrics`. Mount it in your own axum application or serve it with
/// [`crate::serve`].
pub fn router(engine: Engine, config: ApiConfig) -> Router {
    let body_limit = config.body_limit;
    let state = AppState { engine, config: Arc::new(config) };
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .merge(objects::routes::<Agenda>())
        .merge(objects::routes::<AgendaTemplate>())
        .merge(objects::routes::<Customer>())
        .merge(objects::routes::<Insight>())
        .merge(objects::routes::<ResourcePool>())
        .merge(objects::routes::<AgendaProgress>())
        .merge(objects::routes::<OperationProgress>())
        .route("/pop/agenda/service/run", post(agenda::run))
        .route("/pop/agenda/service/rerun", post(agenda::rerun))
        .route("/pop/agenda/service/cancel", post(agenda::cancel))
        .route("/pop/agenda/service/createAgenda", post(agenda::create_agendas))
        .route("/pop/agenda/service/explain", post(agenda::explain))
        .route("/pop/agenda/service/graph", post(agenda::graph))
        .route("/pop/agenda/service/validate", post(agenda::validate))
        .route("/pop/progress/agenda/service", post(agenda::summary))
        .route("/pop/resourcepool/service/getAgenda", post(pool::get_agenda))
        .route("/pop/resourcepool/service/createAgenda", post(agenda::create_agendas))
        .route("/pop/resourcepool/service/updateAgendaProgress", post(pool::update_progress))
        .route("/pop/resourcepool/service/finishAgenda", post(pool::finish))
        .route("/pop/resourcepool/service/updateAgenda", post(pool::update_agenda))
        .route("/pop/resourcepool/service/extendLease", post(pool::extend_lease))
        .route("/pop/resourcepool/service/releaseAgenda", post(pool::release_agenda))
        .route("/pop/progress/agenda/{id}/events", get(live::progress_events))
        .route("/pop/agenda/service/operation", post(live::operation))
        .route("/pop/queue/stats", get(live::queue_stats_all))
        .route("/pop/queue/stats/{insightId}", get(live::queue_stats))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), around))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, cid = tracing::field::Empty, user = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// A correlation id as given, if it is one a log line can carry: 1 to 128 visible ASCII characters.
fn usable_cid(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_owned())
}

/// Around every request: the correlation id (accepted from `X-pop-cid` or made, echoed on the
/// answer, in the span and in error bodies) and the time limit.
async fn around(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let cid = req.headers().get(CID_HEADER).and_then(usable_cid).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    tracing::Span::current().record("cid", cid.as_str());
    let limit = s.config.request_timeout;
    let answer = CID
        .scope(cid.clone(), async move {
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(r) => r,
                Err(_) => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "Timeout",
                    format!("the request took longer than {} ms", limit.as_millis()),
                )
                .into_response(),
            }
        })
        .await;
    let mut answer = answer;
    if let Ok(v) = HeaderValue::from_str(&cid) {
        answer.headers_mut().insert(CID_HEADER, v);
    }
    answer
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route {} {}: see /openapi.json", req.method(), req.uri().path()),
    )
}

/// 405 (axum adds `Allow`), after authentication like every route that exists; for a write a kind
/// does not take on its data-object route, the message says what does it.
async fn method_not_allowed(_caller: crate::extract::Caller, req: Request) -> ApiError {
    let (method, path) = (req.method(), req.uri().path());
    let why = match objects::elsewhere(method, path) {
        Some(why) => why.to_owned(),
        None => format!("{method} is not allowed on {path}: see /openapi.json"),
    };
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", why)
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "the server failed while answering; see its log")
        .into_response()
}
