//! A typed client of every route (reqwest). It is also a [`PoolApi`], so a pool worker on another
//! machine runs agendas through the central server exactly as an in-process worker does through the
//! engine's service.
//!
//! ```no_run
//! # async fn demo() -> pop_core::Result<()> {
//! use pop_core::model::Customer;
//! let client = pop_http::Client::new("http://127.0.0.1:8080")?.with_token("a-long-random-token");
//! let acme: Customer = client.get("acme").await?;
//! let progress = client.agenda_progress("some-agenda-id").await?;
//! # let _ = (acme, progress); Ok(()) }
//! ```
//!
//! Errors come back as the `pop_core::Error` kind the server answered with (404 → `NotFound`, 409 →
//! `Conflict`, 422 → `Invalid` with every problem, ...). A connection that fails, or a 502/503/504,
//! is retried with exponential backoff for up to [`Client::with_retry_for`] (default 30 s): a pool
//! keeps working through a short network or server outage, and a lease lost meanwhile is refused
//! with `Conflict` when the connection comes back. A connection that still fails after that is a
//! `Backend` error of backend [`UNREACHABLE`] ([`Client::is_unreachable`]), so a tool can tell "no
//! server there" from a server that answered with an error.

use crate::dto::{
    AgendaIdRequest, AgendaProgressResponse, AgendasResponse, CreateAgendaRequest, DataObjectResponse,
    ExtendLeaseRequest, GetAgendaRequest, GetAgendaResponse, LeaseResponse, ProgressSummaryRequest, Readiness,
    ReleaseAgendaRequest, RerunAgendaRequest, RunAgendaRequest, RunPayload, UpdateAgendaProgressRequest,
    UpdateAgendaRequest, UpdateAgendaResponse, ValidateResponse,
};
use crate::error::ErrorBody;
use async_trait::async_trait;
use pop_core::dag::GraphDocument;
use pop_core::model::{
    Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, Millis, Operation, OperationProgress, Params,
    ResourcePool,
};
use pop_core::queue::LeaseToken;
use pop_core::store::{IndexField, Page, PageRequest};
use pop_core::{Error, Problem, Problems, Result};
use pop_engine::PoolApi;
use pop_engine::services::{AgendaLease, Explain, LeaseState, ProgressSummary};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A kind of data object the API serves at `/pop/<PATH>`.
pub trait ApiObject: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The path segment (`customer`, `progress/agenda`, ...).
    const PATH: &'static str;
}

macro_rules! api_object {
    ($($ty:ty => $path:literal),* $(,)?) => {
        $(impl ApiObject for $ty { const PATH: &'static str = $path; })*
    };
}

api_object!(
    Agenda => "agenda",
    AgendaTemplate => "agendatemplate",
    Customer => "customer",
    Insight => "insight",
    ResourcePool => "resourcepool",
    AgendaProgress => "progress/agenda",
    OperationProgress => "progress/operation",
);

/// The backend name of the error of a server that could not be reached (no connection): see
/// [`Client::is_unreachable`].
pub const UNREACHABLE: &str = "http (server unreachable)";

/// The API's client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    retry_for: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("token", &self.token.as_ref().map(|_| "…")).finish()
    }
}

fn http_err(what: String) -> impl FnOnce(reqwest::Error) -> Error {
    move |e| Error::backend("http", format!("{what}: {e}"))
}

impl Client {
    /// A client of the server at `base_url` (`http://host:port`, no trailing path), without a token.
    ///
    /// # Errors
    /// `Invalid` when the URL is not http(s); `Backend` when the HTTP client cannot be built.
    pub fn new(base_url: &str) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::problems(vec![
                Problem::new(format!("the server URL must start with http:// or https://, got `{base_url}`"))
                    .field("server"),
            ]));
        }
        // reqwest is built without a default TLS provider; ring is the one the workspace uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(http_err("building the HTTP client".into()))?;
        Ok(Self { http, base, token: None, retry_for: Duration::from_secs(30) })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How long transient failures (no connection, 502/503/504) are retried before the error is
    /// returned (default 30 s; zero: never).
    pub fn with_retry_for(mut self, duration: Duration) -> Self {
        self.retry_for = duration;
        self
    }

    /// Whether `e` says the server could not be reached at all (no connection, after the retries),
    /// as opposed to an answer with an error status.
    pub fn is_unreachable(e: &Error) -> bool {
        matches!(e, Error::Backend { backend, .. } if *backend == UNREACHABLE)
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R> {
        let url = format!("{}{path}", self.base);
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let transient = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let bytes =
                            resp.bytes().await.map_err(http_err(format!("{method} {path}: reading the answer")))?;
                        return serde_json::from_slice(&bytes).map_err(|e| {
                            Error::backend(
                                "http",
                                format!("{method} {path}: the answer is not what this client expects: {e}"),
                            )
                        });
                    }
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let error = answer_error(status, &bytes, &method, path);
                    if !matches!(
                        status,
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                    ) {
                        return Err(error);
                    }
                    error
                }
                Err(e) if e.is_connect() => Error::backend(UNREACHABLE, format!("{method} {url}: {}", chain(&e))),
                Err(e) if e.is_timeout() || e.is_request() => {
                    Error::backend("http", format!("{method} {url}: {}", chain(&e)))
                }
                Err(e) => return Err(Error::backend("http", format!("{method} {url}: {e}"))),
            };
            if started.elapsed() + delay > self.retry_for {
                return Err(transient);
            }
            tracing::debug!(%url, error = %transient, retry_in_ms = delay.as_millis() as u64, "transient HTTP failure; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn get_json<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        self.send::<(), R>(Method::GET, path, None).await
    }

    // ----- data objects -----

    /// One object (`NotFound` when absent or not visible).
    pub async fn get<T: ApiObject>(&self, id: &str) -> Result<T> {
        let r: DataObjectResponse<T> = self.get_json(&format!("/pop/{}/{}", T::PATH, enc(id))).await?;
        r.all.into_iter().next().ok_or_else(|| Error::not_found(T::PATH, id))
    }

    /// Objects whose indexed `field` equals `value`, a page at a time.
    pub async fn query<T: ApiObject>(&self, field: IndexField, value: &str, page: PageRequest) -> Result<Page<T>> {
        let mut q = format!("by{}={}", field.as_str(), enc(value));
        page_params(&mut q, &page);
        let r: DataObjectResponse<T> = self.get_json(&format!("/pop/{}?{q}", T::PATH)).await?;
        Ok(Page { items: r.all, next: r.next })
    }

    /// Every object the caller may see, a page at a time.
    pub async fn list<T: ApiObject>(&self, page: PageRequest) -> Result<Page<T>> {
        let mut q = String::new();
        page_params(&mut q, &page);
        let r: DataObjectResponse<T> = self.get_json(&format!("/pop/{}?{q}", T::PATH)).await?;
        Ok(Page { items: r.all, next: r.next })
    }

    /// How many objects have `field` = `value` (`bycount=true`).
    pub async fn count<T: ApiObject>(&self, field: IndexField, value: &str) -> Result<usize> {
        let r: DataObjectResponse<serde_json::Value> =
            self.get_json(&format!("/pop/{}?by{}={}&bycount=true", T::PATH, field.as_str(), enc(value))).await?;
        Ok(r.count)
    }

    /// Creates an object (for an agenda: submits it); returns it as stored.
    pub async fn create<T: ApiObject>(&self, obj: &T) -> Result<T> {
        let r: DataObjectResponse<T> = self.post(&format!("/pop/{}", T::PATH), obj).await?;
        r.all.into_iter().next().ok_or_else(|| Error::backend("http", "a create answered with no object"))
    }

    /// Merge-updates an object: the patch's non-null fields replace the stored ones (with `version`
    /// set, a compare-and-set).
    pub async fn update<T: ApiObject>(&self, id: &str, patch: &serde_json::Value) -> Result<T> {
        let r: DataObjectResponse<T> =
            self.send(Method::PUT, &format!("/pop/{}/{}", T::PATH, enc(id)), Some(patch)).await?;
        r.all.into_iter().next().ok_or_else(|| Error::backend("http", "an update answered with no object"))
    }

    /// Deletes an object; returns it.
    pub async fn delete<T: ApiObject>(&self, id: &str) -> Result<T> {
        let r: DataObjectResponse<T> =
            self.send::<(), _>(Method::DELETE, &format!("/pop/{}/{}", T::PATH, enc(id)), None).await?;
        r.all.into_iter().next().ok_or_else(|| Error::backend("http", "a delete answered with no object"))
    }

    // ----- agendas and progress -----

    /// Submits an agenda; returns it as stored (with its id).
    pub async fn submit(&self, agenda: &Agenda) -> Result<Agenda> {
        self.create(agenda).await
    }

    /// Submits several agendas, each on its own; the stored ones and the failures by index.
    pub async fn submit_many(&self, agendas: Vec<Agenda>) -> Result<AgendasResponse> {
        self.post("/pop/agenda/service/createAgenda", &CreateAgendaRequest { agendas }).await
    }

    /// Expands a template with a payload and submits the agenda.
    pub async fn run_template(&self, template_id: &str, payload: &serde_json::Value) -> Result<Agenda> {
        let req =
            RunAgendaRequest { payload: RunPayload::Json(payload.clone()), agenda_template_id: template_id.to_owned() };
        let r: AgendasResponse = self.post("/pop/agenda/service/run", &req).await?;
        r.all.into_iter().next().ok_or_else(|| Error::backend("http", "run answered with no agenda"))
    }

    /// Reruns an agenda (`resetAll`, `continue`, `skipExecution`, `operationsToReset=a,b`).
    pub async fn rerun(&self, agenda_id: &str, params: &[String]) -> Result<AgendaProgress> {
        let req = RerunAgendaRequest { agenda_id: agenda_id.to_owned(), params: params.to_vec() };
        let r: AgendaProgressResponse = self.post("/pop/agenda/service/rerun", &req).await?;
        Ok(r.agenda_progress)
    }

    /// Cancels an agenda.
    pub async fn cancel(&self, agenda_id: &str) -> Result<AgendaProgress> {
        let r: AgendaProgressResponse =
            self.post("/pop/agenda/service/cancel", &AgendaIdRequest { agenda_id: agenda_id.to_owned() }).await?;
        Ok(r.agenda_progress)
    }

    /// Where an agenda is and why it waits.
    pub async fn explain(&self, agenda_id: &str) -> Result<Explain> {
        self.post("/pop/agenda/service/explain", &AgendaIdRequest { agenda_id: agenda_id.to_owned() }).await
    }

    /// An agenda's dependency graph.
    pub async fn graph(&self, agenda_id: &str) -> Result<GraphDocument> {
        self.post("/pop/agenda/service/graph", &AgendaIdRequest { agenda_id: agenda_id.to_owned() }).await
    }

    /// What a submission of `agenda` would say.
    pub async fn validate(&self, agenda: &Agenda) -> Result<ValidateResponse> {
        self.post("/pop/agenda/service/validate", agenda).await
    }

    /// An agenda's progress with its operations'.
    pub async fn agenda_progress(&self, agenda_id: &str) -> Result<AgendaProgress> {
        let page = self.query::<AgendaProgress>(IndexField::AgendaId, agenda_id, PageRequest::first(1)).await?;
        page.items.into_iter().next().ok_or_else(|| Error::not_found("agendaProgress", agenda_id))
    }

    /// The rolled-up progress of a linkId.
    pub async fn progress_summary(&self, link_id: &str) -> Result<ProgressSummary> {
        self.post("/pop/progress/agenda/service", &ProgressSummaryRequest { link_id: link_id.to_owned() }).await
    }

    // ----- resource pools -----

    /// Leases up to `count` agendas of `insight_id`.
    pub async fn get_agendas(&self, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        let r: GetAgendaResponse = self
            .post("/pop/resourcepool/service/getAgenda", &GetAgendaRequest { insight_id: insight_id.to_owned(), count })
            .await?;
        if r.all.len() != r.leases.len() || r.agenda_progresses.len() != r.leases.len() {
            return Err(Error::backend("http", "getAgenda answered agendas, progress and leases of different lengths"));
        }
        Ok(r.all
            .into_iter()
            .zip(r.agenda_progresses)
            .zip(r.leases)
            .map(|((agenda, progress), lease)| AgendaLease { lease, agenda, progress })
            .collect())
    }

    /// Extends a lease; its new deadline.
    pub async fn extend_lease(&self, token: &LeaseToken) -> Result<Millis> {
        let r: LeaseResponse = self
            .post("/pop/resourcepool/service/extendLease", &ExtendLeaseRequest { lease_token: token.clone() })
            .await?;
        r.lease_deadline.ok_or_else(|| Error::backend("http", "extendLease answered without a deadline"))
    }

    async fn report(
        &self,
        route: &str,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()> {
        let mut agenda_progress = progress.clone();
        agenda_progress.operation_progress = changed.to_vec();
        let req = UpdateAgendaProgressRequest {
            agenda_progress,
            lease_token: Some(token.clone()),
            lease_deadline: state.deadline(),
        };
        let r: LeaseResponse = self.post(route, &req).await?;
        if let Some(d) = r.lease_deadline {
            *state = LeaseState::with_deadline(Some(d));
        }
        Ok(())
    }
}

#[async_trait]
impl PoolApi for Client {
    async fn pull(&self, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        self.get_agendas(insight_id, count).await
    }

    async fn write_progress(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()> {
        self.report("/pop/resourcepool/service/updateAgendaProgress", token, state, progress, changed).await
    }

    async fn append_operations(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()> {
        let req = UpdateAgendaRequest {
            agenda_id: token.agenda_id.clone(),
            operations: operations.to_vec(),
            params: params.cloned(),
            lease_token: Some(token.clone()),
            lease_deadline: state.deadline(),
        };
        let r: UpdateAgendaResponse = self.post("/pop/resourcepool/service/updateAgenda", &req).await?;
        if let Some(d) = r.lease_deadline {
            *state = LeaseState::with_deadline(Some(d));
        }
        Ok(())
    }

    async fn finish(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()> {
        self.report("/pop/resourcepool/service/finishAgenda", token, state, progress, changed).await
    }

    async fn release(&self, token: &LeaseToken, reason: &str) -> Result<()> {
        let req = ReleaseAgendaRequest { lease_token: token.clone(), reason: reason.to_owned() };
        let _: LeaseResponse = self.post("/pop/resourcepool/service/releaseAgenda", &req).await?;
        Ok(())
    }
}

impl Client {
    /// `GET /readyz`: whether the server's store answers.
    pub async fn ready(&self) -> Result<Readiness> {
        self.get_json("/readyz").await
    }

    /// `GET /openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get_json("/openapi.json").await
    }
}

/// An error with its causes (reqwest's own message is only "error sending request").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

fn page_params(q: &mut String, page: &PageRequest) {
    let mut add = |k: &str, v: &str| {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str(k);
        q.push('=');
        q.push_str(&enc(v));
    };
    add("bylimit", &page.effective_limit().min(crate::extract::MAX_LIMIT).to_string());
    if let Some(c) = &page.cursor {
        add("bycursor", c);
    }
}

/// The error of a non-2xx answer, as the `pop_core::Error` kind it stands for.
fn answer_error(status: StatusCode, body: &[u8], method: &Method, path: &str) -> Error {
    let (description, problems) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error_response.description, b.error_response.problems),
        Err(_) => (
            format!("HTTP {status} from {method} {path}: {}", String::from_utf8_lossy(&body[..body.len().min(500)])),
            vec![],
        ),
    };
    // (the server's description is its error's text, which already starts with the kind)
    let bare = |prefix: &str| description.strip_prefix(prefix).unwrap_or(&description).to_owned();
    match status {
        StatusCode::NOT_FOUND => Error::NotFound { kind: "object".into(), id: description },
        StatusCode::CONFLICT => Error::Conflict(bare("conflict: ")),
        StatusCode::UNAUTHORIZED => Error::Unauthorized(bare("unauthorized: ")),
        StatusCode::FORBIDDEN => Error::Forbidden(bare("forbidden: ")),
        StatusCode::UNPROCESSABLE_ENTITY if !problems.is_empty() => Error::Invalid(Problems(problems)),
        s if s.is_client_error() => Error::invalid(description),
        _ => Error::backend("http", description),
    }
}
