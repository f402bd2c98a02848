//! What the web console watches: an agenda progress as server-sent events, and the queues.

use crate::error::ApiResult;
use crate::extract::Caller;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use pop_core::model::ProcessingState;
use pop_engine::services::QueueStats;
use std::convert::Infallible;
use std::time::Duration;

/// How often an event stream reads the progress.
const POLL: Duration = Duration::from_millis(400);
/// How long one event stream lasts at most (the client reconnects).
const MAX_STREAM: Duration = Duration::from_secs(15 * 60);

/// `GET /pop/progress/agenda/{id}/events`: the agenda progress `{id}` (with its operations' progress)
/// as server-sent events. The caller is authenticated once, when the stream opens, and its visibility
/// is checked as for `GET /pop/progress/agenda/{id}` before the first event and again on every read
/// (the same progress service), so a stream never shows what the GET would not. An event `progress` is sent first and then whenever the progress changes;
/// after a COMPLETE progress, an event `end` closes the stream. A read that fails (the progress was
/// deleted, the store is unreachable) sends an event `error` with the API's error envelope and closes
/// the stream; the server's shutdown closes it too.
pub(crate) async fn progress_events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // the first read answers 404/403 as the GET would, before any stream is opened
    let first = s.engine.progress().by_id(&caller.principal, &id).await?;
    let stop = s.config.streams.subscribe();
    let started = tokio::time::Instant::now();
    struct St {
        s: AppState,
        caller: Caller,
        id: String,
        pending: Option<pop_core::model::AgendaProgress>,
        last: Option<String>,
        ending: bool,
        done: bool,
        stop: tokio::sync::watch::Receiver<bool>,
        started: tokio::time::Instant,
    }
    let st = St { s, caller, id, pending: Some(first), last: None, ending: false, done: false, stop, started };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(p) = st.pending.take() {
                let text = serde_json::to_string(&p).unwrap_or_else(|_| "{}".into());
                st.ending = p.processing_state == ProcessingState::Complete;
                if st.last.as_deref() != Some(text.as_str()) {
                    st.last = Some(text.clone());
                    return Some((Ok(Event::default().event("progress").data(text)), st));
                }
            }
            if st.ending {
                st.done = true;
                return Some((Ok(Event::default().event("end").data("complete")), st));
            }
            if *st.stop.borrow() || st.started.elapsed() > MAX_STREAM {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = st.stop.changed() => return None,
            }
            match st.s.engine.progress().by_id(&st.caller.principal, &st.id).await {
                Ok(p) => st.pending = Some(p),
                Err(e) => {
                    st.done = true;
                    let body = crate::error::ApiError::from(e).into_error_response();
                    let text = serde_json::to_string(&crate::error::ErrorBody { error_response: body })
                        .unwrap_or_else(|_| "{}".into());
                    return Some((Ok(Event::default().event("error").data(text)), st));
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /pop/queue/stats`: the queues of every insight the caller may read.
pub(crate) async fn queue_stats_all(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<QueueStats>>> {
    Ok(Json(s.engine.progress().queue_stats_all(&caller.principal).await?))
}

/// `GET /pop/queue/stats/{insightId}`: one insight's queue.
pub(crate) async fn queue_stats(
    State(s): State<AppState>,
    caller: Caller,
    Path(insight_id): Path<String>,
) -> ApiResult<Json<QueueStats>> {
    Ok(Json(s.engine.progress().queue_stats(&caller.principal, &insight_id).await?))
}

/// `POST /pop/agenda/service/operation`: one operation of an agenda with its payload resolved against
/// the outputs its agenda has so far (as the pool would resolve it now), and its progress.
pub(crate) async fn operation(
    State(s): State<AppState>,
    caller: Caller,
    crate::extract::Body(req): crate::extract::Body<crate::dto::OperationRequest>,
) -> ApiResult<Json<crate::dto::OperationDetail>> {
    use pop_core::refs::{AGENDA_ID, OPERATION_NAME, OUTPUT_SUFFIX, PARAMS};
    use serde_json::Value;
    let agenda = s.engine.agendas().get(&caller.principal, &req.agenda_id).await?;
    let progress = s.engine.progress().agenda_progress(&caller.principal, &req.agenda_id).await?;
    let op = agenda
        .operations
        .iter()
        .find(|o| o.name == req.operation)
        .ok_or_else(|| pop_core::Error::not_found("operation", &req.operation))?;
    let mut ctx = std::collections::BTreeMap::new();
    for p in &progress.operation_progress {
        let (Some(name), Some(result)) = (&p.operation, &p.result_payload) else { continue };
        if let Ok(v) = serde_json::from_str::<Value>(result) {
            ctx.insert(format!("{name}{OUTPUT_SUFFIX}"), v);
        }
    }
    ctx.insert(AGENDA_ID.to_owned(), Value::String(req.agenda_id.clone()));
    ctx.insert(OPERATION_NAME.to_owned(), Value::String(op.name.clone()));
    ctx.insert(PARAMS.to_owned(), Value::Object(agenda.params.clone().unwrap_or_default()));
    let resolution = pop_core::refs::resolve(&op.payload, &ctx);
    let op_progress = progress.operation_progress.iter().find(|p| p.operation.as_deref() == Some(&op.name)).cloned();
    Ok(Json(crate::dto::OperationDetail {
        operation: serde_json::to_value(op).unwrap_or(Value::Null),
        resolved_payload: resolution.value,
        missing: resolution.missing,
        progress: op_progress,
    }))
}
