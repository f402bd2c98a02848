//! The resource-pool services: what a pool worker calls over HTTP (`pop pool`, or any client). Each
//! call is authorized by the insight's ownership, and every write after `getAgenda` is fenced by the
//! lease token `getAgenda` returned — the same service path the engine's own workers use.

use crate::dto::{
    ExtendLeaseRequest, GetAgendaRequest, GetAgendaResponse, LeaseResponse, ReleaseAgendaRequest,
    UpdateAgendaProgressRequest, UpdateAgendaRequest, UpdateAgendaResponse,
};
use crate::error::ApiResult;
use crate::extract::{Body, Caller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use pop_core::queue::LeaseToken;
use pop_core::{Error, Problem};
use pop_engine::services::LeaseState;

fn token(t: Option<LeaseToken>) -> Result<LeaseToken, Error> {
    t.ok_or_else(|| {
        Error::problems(vec![
            Problem::new(
                "leaseToken is required: pass the token getAgenda returned with this agenda (leases[i].token); \
                 POP fences every progress write by its lease",
            )
            .field("leaseToken"),
        ])
    })
}

/// `POST /pop/resourcepool/service/getAgenda`.
pub(crate) async fn get_agenda(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<GetAgendaRequest>,
) -> ApiResult<Json<GetAgendaResponse>> {
    let leases = s.engine.pool().get_agendas(&caller.principal, &req.insight_id, req.count).await?;
    let mut out = GetAgendaResponse {
        all: Vec::with_capacity(leases.len()),
        agendas: Vec::new(),
        agenda_progresses: Vec::with_capacity(leases.len()),
        leases: Vec::with_capacity(leases.len()),
        cid: Some(caller.cid),
    };
    for l in leases {
        out.all.push(l.agenda);
        out.agenda_progresses.push(l.progress);
        out.leases.push(l.lease);
    }
    out.agendas = out.all.clone();
    Ok(Json(out))
}

/// `POST /pop/resourcepool/service/updateAgendaProgress`.
pub(crate) async fn update_progress(
    State(s): State<AppState>,
    caller: Caller,
    Body(mut req): Body<UpdateAgendaProgressRequest>,
) -> ApiResult<Json<LeaseResponse>> {
    let token = token(req.lease_token)?;
    let rows = std::mem::take(&mut req.agenda_progress.operation_progress);
    let mut state = LeaseState::with_deadline(req.lease_deadline);
    s.engine.pool().update_progress(&caller.principal, &token, &mut state, &req.agenda_progress, &rows).await?;
    Ok(Json(LeaseResponse { lease_deadline: state.deadline(), cid: Some(caller.cid) }))
}

/// `POST /pop/resourcepool/service/finishAgenda`: the final (COMPLETE) report and the ack.
pub(crate) async fn finish(
    State(s): State<AppState>,
    caller: Caller,
    Body(mut req): Body<UpdateAgendaProgressRequest>,
) -> ApiResult<Json<LeaseResponse>> {
    let token = token(req.lease_token)?;
    let rows = std::mem::take(&mut req.agenda_progress.operation_progress);
    let mut state = LeaseState::with_deadline(req.lease_deadline);
    s.engine.pool().complete(&caller.principal, &token, &mut state, &req.agenda_progress, &rows).await?;
    Ok(Json(LeaseResponse { lease_deadline: None, cid: Some(caller.cid) }))
}

/// `POST /pop/resourcepool/service/updateAgenda`: generated operations.
pub(crate) async fn update_agenda(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<UpdateAgendaRequest>,
) -> ApiResult<Json<UpdateAgendaResponse>> {
    let token = token(req.lease_token)?;
    if token.agenda_id != req.agenda_id {
        return Err(Error::problems(vec![
            Problem::new(format!("the lease is for agenda {}, not {}", token.agenda_id, req.agenda_id))
                .field("agendaId"),
        ])
        .into());
    }
    let mut state = LeaseState::with_deadline(req.lease_deadline);
    let agenda = s
        .engine
        .pool()
        .append_operations(&caller.principal, &token, &mut state, &req.operations, req.params.as_ref())
        .await?;
    Ok(Json(UpdateAgendaResponse { agenda, lease_deadline: state.deadline(), cid: Some(caller.cid) }))
}

/// `POST /pop/resourcepool/service/extendLease`: a heartbeat.
pub(crate) async fn extend_lease(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<ExtendLeaseRequest>,
) -> ApiResult<Json<LeaseResponse>> {
    let deadline = s.engine.pool().heartbeat(&caller.principal, &req.lease_token).await?;
    Ok(Json(LeaseResponse { lease_deadline: Some(deadline), cid: Some(caller.cid) }))
}

/// `POST /pop/resourcepool/service/releaseAgenda`: a pulled agenda given back unstarted.
pub(crate) async fn release_agenda(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<ReleaseAgendaRequest>,
) -> ApiResult<Json<LeaseResponse>> {
    s.engine.pool().release_agenda(&caller.principal, &req.lease_token, &req.reason).await?;
    Ok(Json(LeaseResponse { lease_deadline: None, cid: Some(caller.cid) }))
}
