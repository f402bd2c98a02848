//! The requests and responses of the API: the original's DTOs (`GetAgendaResponse`,
//! `RunAgendaRequest`, `RerunAgendaRequest`, ...) with POP's additions (lease tokens, cursors,
//! problems), all camelCase JSON.

use crate::error::ErrorResponse;
use pop_core::Problem;
use pop_core::model::{Agenda, AgendaProgress, Millis, Operation};
use pop_core::queue::{Lease, LeaseToken};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The original's answer of every data-object route (`DefaultDataObjectResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataObjectResponse<T> {
    /// The objects.
    pub all: Vec<T>,
    /// How many (with `bycount=true`: how many match, and `all` is empty).
    pub count: usize,
    /// The request's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Extension: pass as `bycursor` to read the next page; absent at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The payload of a template run: the original sends a JSON document as a *string*; an object is
/// accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RunPayload {
    /// The payload as JSON text (the original's form).
    Text(String),
    /// The payload as a JSON value.
    #[schema(value_type = Object)]
    Json(serde_json::Value),
}

/// `POST /pop/agenda/service/run`: expand a template with a payload and submit the agenda.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunAgendaRequest {
    /// The payload (`pop.payload` in the template).
    pub payload: RunPayload,
    /// The template.
    pub agenda_template_id: String,
}

/// The agendas a request submitted (`RunAgendaResponse`, `CreateAgendaResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgendasResponse {
    /// The stored agendas.
    pub all: Vec<Agenda>,
    /// The same list (the original sent both).
    pub agendas: Vec<Agenda>,
    /// The request's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// For a bulk submission: the agendas that failed, by their index in the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
}

/// One failed item of a bulk request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Its index in the request.
    pub index: usize,
    /// Why it failed.
    pub error_response: ErrorResponse,
}

/// `POST /pop/agenda/service/createAgenda` (and the original's `/pop/resourcepool/service/createAgenda`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAgendaRequest {
    /// The agendas; each succeeds or fails on its own.
    pub agendas: Vec<Agenda>,
}

/// `POST /pop/agenda/service/rerun`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerunAgendaRequest {
    /// The agenda.
    pub agenda_id: String,
    /// `resetAll` (the default), `continue`, `skipExecution`, `operationsToReset=a,b`.
    #[serde(default)]
    pub params: Vec<String>,
}

/// A request naming one agenda (cancel, explain, graph).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgendaIdRequest {
    /// The agenda.
    pub agenda_id: String,
}

/// An agenda's progress after a rerun or cancel (`RerunAgendaResponse` + the progress).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgendaProgressResponse {
    /// The progress, with its operations'.
    pub agenda_progress: AgendaProgress,
    /// The request's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// `POST /pop/progress/agenda/service`: the summary of a linkId.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressSummaryRequest {
    /// The linkId.
    pub link_id: String,
}

/// `POST /pop/agenda/service/validate`: what a submission of this agenda would say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    /// Whether a submission would accept it.
    pub valid: bool,
    /// Every problem, each naming its operation and field.
    pub problems: Vec<Problem>,
}

/// `POST /pop/resourcepool/service/getAgenda`: lease agendas of an insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetAgendaRequest {
    /// The insight (queue).
    pub insight_id: String,
    /// How many, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub count: usize,
}

/// The leased agendas (`GetAgendaResponse`; `leases` is the addition that fences every later write).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetAgendaResponse {
    /// The agendas.
    pub all: Vec<Agenda>,
    /// The same list (the original sent both).
    pub agendas: Vec<Agenda>,
    /// Their progress, with their operations' (prior attempts' outcomes for resume).
    pub agenda_progresses: Vec<AgendaProgress>,
    /// The leases, in the same order: pass each `token` with every write about its agenda.
    pub leases: Vec<Lease>,
    /// The request's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// `POST /pop/resourcepool/service/updateAgendaProgress` (and `finishAgenda`): an executor's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAgendaProgressRequest {
    /// The agenda's progress; its `operationProgress` holds the operation rows that changed.
    pub agenda_progress: AgendaProgress,
    /// The lease (from `getAgenda`'s `leases`): required, writes are fenced by it.
    #[serde(default)]
    pub lease_token: Option<LeaseToken>,
    /// The lease's deadline as last answered: the lease is extended only when half of it is left.
    #[serde(default)]
    pub lease_deadline: Option<Millis>,
}

/// `POST /pop/resourcepool/service/updateAgenda`: operations a generator added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAgendaRequest {
    /// The agenda.
    pub agenda_id: String,
    /// The operations to add (idempotent by name).
    pub operations: Vec<Operation>,
    /// Params merged into the agenda.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<pop_core::model::Params>,
    /// The lease: required.
    #[serde(default)]
    pub lease_token: Option<LeaseToken>,
    /// The lease's deadline as last answered.
    #[serde(default)]
    pub lease_deadline: Option<Millis>,
}

/// The answer to an `updateAgenda`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAgendaResponse {
    /// The agenda as stored.
    pub agenda: Agenda,
    /// The lease's deadline now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_deadline: Option<Millis>,
    /// The request's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// `POST /pop/resourcepool/service/extendLease`: a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtendLeaseRequest {
    /// The lease.
    pub lease_token: LeaseToken,
}

/// `POST /pop/resourcepool/service/releaseAgenda`: give a pulled agenda back unstarted (the pool
/// has no room for it now): WAITING again, no attempt counted, visible in the queue at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseAgendaRequest {
    /// The lease.
    pub lease_token: LeaseToken,
    /// Why (shown by `explain`).
    #[serde(default)]
    pub reason: String,
}

/// The lease after a fenced write or a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseResponse {
    /// The lease's deadline now (epoch ms), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_deadline: Option<Millis>,
    /// The request's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    /// The store backend and what it answered.
    pub store: String,
}

/// `POST /pop/agenda/service/operation` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationRequest {
    /// The agenda.
    pub agenda_id: String,
    /// The operation's name.
    pub operation: String,
}

/// One operation as the console's side panel shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationDetail {
    /// The operation as submitted (or generated).
    #[schema(value_type = Object)]
    pub operation: serde_json::Value,
    /// Its payload with the references resolved against the outputs known now.
    #[schema(value_type = Object)]
    pub resolved_payload: serde_json::Value,
    /// References not resolvable yet (their operations have no output yet).
    pub missing: Vec<String>,
    /// Its progress (state, attempts, times, diagnostics, result, last progress).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub progress: Option<pop_core::model::OperationProgress>,
}
