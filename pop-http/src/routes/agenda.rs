//! The agenda and progress services: run a template, rerun, cancel, bulk submit, explain, graph,
//! validate, and the progress summary of a linkId.

use crate::dto::{
    AgendaIdRequest, AgendaProgressResponse, AgendasResponse, CreateAgendaRequest, Failure, ProgressSummaryRequest,
    RerunAgendaRequest, RunAgendaRequest, RunPayload, ValidateResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Caller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pop_core::dag::GraphDocument;
use pop_core::model::Agenda;
use pop_core::{Error, Problem};
use pop_engine::services::{Explain, ProgressSummary, RerunOptions};

/// `POST /pop/agenda/service/run`.
pub(crate) async fn run(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<RunAgendaRequest>,
) -> ApiResult<Json<AgendasResponse>> {
    let payload = match req.payload {
        RunPayload::Text(text) => serde_json::from_str(&text).map_err(|e| {
            Error::problems(vec![Problem::new(format!("Unable to parse input payload as JSON: {e}")).field("payload")])
        })?,
        RunPayload::Json(v) => v,
    };
    if req.agenda_template_id.trim().is_empty() {
        return Err(Error::problems(vec![
            Problem::new("agendaTemplateId and payload must be specified").field("agendaTemplateId"),
        ])
        .into());
    }
    let agenda = s.engine.agendas().run_template(&caller.principal, &req.agenda_template_id, &payload).await?;
    Ok(Json(AgendasResponse {
        all: vec![agenda.clone()],
        agendas: vec![agenda],
        cid: Some(caller.cid),
        failures: vec![],
    }))
}

/// `POST /pop/agenda/service/rerun`.
pub(crate) async fn rerun(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<RerunAgendaRequest>,
) -> ApiResult<Json<AgendaProgressResponse>> {
    let options = RerunOptions::parse(&req.params)?;
    let progress = s.engine.agendas().rerun(&caller.principal, &req.agenda_id, options).await?;
    Ok(Json(AgendaProgressResponse { agenda_progress: progress, cid: Some(caller.cid) }))
}

/// `POST /pop/agenda/service/cancel`.
pub(crate) async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<AgendaIdRequest>,
) -> ApiResult<Json<AgendaProgressResponse>> {
    let progress = s.engine.agendas().cancel(&caller.principal, &req.agenda_id).await?;
    Ok(Json(AgendaProgressResponse { agenda_progress: progress, cid: Some(caller.cid) }))
}

/// `POST /pop/agenda/service/createAgenda` (and the original's `/pop/resourcepool/service/createAgenda`):
/// each agenda succeeds or fails on its own. 200 when all were stored; when some failed, 207 with the
/// stored ones and one failure per index; when all failed, the error envelope with the first
/// failure's status, naming every item's error.
pub(crate) async fn create_agendas(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateAgendaRequest>,
) -> ApiResult<axum::response::Response> {
    if req.agendas.is_empty() {
        return Err(Error::problems(vec![Problem::new("agendas is empty").field("agendas")]).into());
    }
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    for (index, mut agenda) in req.agendas.into_iter().enumerate() {
        if agenda.cid.as_deref().is_none_or(str::is_empty) {
            agenda.cid = Some(caller.cid.clone());
        }
        match s.engine.agendas().submit(&caller.principal, agenda).await {
            Ok(a) => stored.push(a),
            Err(e) => failed.push((index, ApiError::from(e))),
        }
    }
    if stored.is_empty() {
        return Err(ApiError::all_failed("agendas", failed));
    }
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    let failures =
        failed.into_iter().map(|(index, e)| Failure { index, error_response: e.into_error_response() }).collect();
    let body = AgendasResponse { all: stored.clone(), agendas: stored, cid: Some(caller.cid), failures };
    Ok((status, Json(body)).into_response())
}

/// `POST /pop/agenda/service/explain`: where an agenda is and why it waits.
pub(crate) async fn explain(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<AgendaIdRequest>,
) -> ApiResult<Json<Explain>> {
    Ok(Json(s.engine.progress().explain(&caller.principal, &req.agenda_id).await?))
}

/// `POST /pop/agenda/service/graph`: the agenda's dependency graph with topological layers.
pub(crate) async fn graph(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<AgendaIdRequest>,
) -> ApiResult<Json<GraphDocument>> {
    Ok(Json(s.engine.agendas().graph(&caller.principal, &req.agenda_id).await?))
}

/// `POST /pop/agenda/service/validate`: what a submission would say, without storing anything.
pub(crate) async fn validate(
    State(s): State<AppState>,
    _caller: Caller,
    Body(agenda): Body<Agenda>,
) -> ApiResult<Json<ValidateResponse>> {
    let problems = match s.engine.agendas().validate(&agenda) {
        Ok(()) => vec![],
        Err(e) if !e.problem_list().is_empty() => e.problem_list().to_vec(),
        Err(e) => vec![Problem::new(e.to_string())],
    };
    Ok(Json(ValidateResponse { valid: problems.is_empty(), problems }))
}

/// `POST /pop/progress/agenda/service`: the rolled-up progress of a linkId.
pub(crate) async fn summary(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<ProgressSummaryRequest>,
) -> ApiResult<Json<ProgressSummary>> {
    Ok(Json(s.engine.progress().summary(&caller.principal, &req.link_id).await?))
}
