//! The data-object routes, the same contract for every kind (the original's "Unified Lambda"):
//!
//! * `GET /pop/<kind>/{id}` — one object (404 when absent or not visible to the caller);
//! * `GET /pop/<kind>?id=` / `?by<field>=value&bylimit=&bycursor=&bycount=&byfields=` — a query,
//!   `{all, count}`; without parameters every visible object, page by page;
//! * `POST /pop/<kind>` — create (for agendas: submit);
//! * `PUT /pop/<kind>/{id}` — merge-update: the body's non-null fields replace the stored ones;
//! * `DELETE /pop/<kind>/{id}` — delete, with the original's cascades.
//!
//! Every call goes through the engine's services with the caller's principal: the same visibility
//! rules as the library.

use crate::dto::DataObjectResponse;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Caller, ObjectQuery, parse_json};
use crate::state::AppState;
use async_trait::async_trait;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, OperationProgress, ResourcePool};
use pop_core::store::{IndexField, Kind, Page, PageRequest, StoreObject};
use pop_core::{Error, Problem, Result};
use pop_engine::services::ManagedObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One kind of data object as the API serves it.
#[async_trait]
pub(crate) trait Resource: Serialize + DeserializeOwned + StoreObject + Send + Sync + 'static {
    /// The path segment (`customer`, `progress/agenda`, ...).
    const PATH: &'static str;
    /// When objects of this kind are not created by `POST /pop/<kind>`: what does it (answered with
    /// 405 before the body is read, to anyone authenticated, whatever the body).
    const CREATED_ELSEWHERE: Option<&'static str> = None;
    /// Likewise for `PUT /pop/<kind>/{id}` (405 whatever the id: it says nothing about the object).
    const UPDATED_ELSEWHERE: Option<&'static str> = None;
    /// Likewise for `DELETE /pop/<kind>/{id}`.
    const DELETED_ELSEWHERE: Option<&'static str> = None;

    /// One object the caller may see.
    async fn get(s: &AppState, p: &Principal, id: &str, q: &ObjectQuery) -> Result<Self>;
    /// Objects whose indexed field equals a value.
    async fn query(
        s: &AppState,
        p: &Principal,
        f: IndexField,
        v: &str,
        page: PageRequest,
        q: &ObjectQuery,
    ) -> Result<Page<Self>>;
    /// Every object the caller may see, a page at a time.
    async fn list(s: &AppState, p: &Principal, page: PageRequest, q: &ObjectQuery) -> Result<Page<Self>>;
    /// Creates an object.
    async fn create(s: &AppState, caller: &Caller, obj: Self) -> Result<Self>;
    /// Replaces a stored object (after the merge).
    async fn update(s: &AppState, p: &Principal, obj: Self) -> Result<Self>;
    /// Deletes an object; returns it.
    async fn delete(s: &AppState, p: &Principal, id: &str) -> Result<Self>;
}

/// The kinds the engine's object service manages alike.
macro_rules! managed_resource {
    ($ty:ty, $path:literal) => {
        #[async_trait]
        impl Resource for $ty {
            const PATH: &'static str = $path;
            async fn get(s: &AppState, p: &Principal, id: &str, _q: &ObjectQuery) -> Result<Self> {
                managed_get(s, p, id).await
            }
            async fn query(
                s: &AppState,
                p: &Principal,
                f: IndexField,
                v: &str,
                page: PageRequest,
                _q: &ObjectQuery,
            ) -> Result<Page<Self>> {
                s.engine.objects().query(p, f, v, page).await
            }
            async fn list(s: &AppState, p: &Principal, page: PageRequest, _q: &ObjectQuery) -> Result<Page<Self>> {
                s.engine.objects().list(p, page).await
            }
            async fn create(s: &AppState, caller: &Caller, obj: Self) -> Result<Self> {
                s.engine.objects().create(&caller.principal, obj).await
            }
            async fn update(s: &AppState, p: &Principal, obj: Self) -> Result<Self> {
                s.engine.objects().update(p, obj).await
            }
            async fn delete(s: &AppState, p: &Principal, id: &str) -> Result<Self> {
                s.engine.objects().delete(p, id).await
            }
        }
    };
}

/// A managed object; a resource pool with its derived `insightIds`.
async fn managed_get<T: ManagedObject>(s: &AppState, p: &Principal, id: &str) -> Result<T> {
    if T::KIND == Kind::ResourcePool {
        let pool = s.engine.objects().get_pool(p, id).await?;
        let value = serde_json::to_value(pool).map_err(|e| Error::backend("codec", e))?;
        return serde_json::from_value(value).map_err(|e| Error::backend("codec", e));
    }
    s.engine.objects().get(p, id).await
}

managed_resource!(Customer, "customer");
managed_resource!(ResourcePool, "resourcepool");
managed_resource!(Insight, "insight");
managed_resource!(AgendaTemplate, "agendatemplate");

fn not_here(what: &str) -> Error {
    Error::Unsupported(what.to_owned())
}

#[async_trait]
impl Resource for Agenda {
    const PATH: &'static str = "agenda";
    const UPDATED_ELSEWHERE: Option<&'static str> = Some(
        "an agenda does not change once submitted: rerun or cancel it (/pop/agenda/service/...); a pool adds \
             generated operations with /pop/resourcepool/service/updateAgenda",
    );
    async fn get(s: &AppState, p: &Principal, id: &str, _q: &ObjectQuery) -> Result<Self> {
        s.engine.agendas().get(p, id).await
    }
    async fn query(
        s: &AppState,
        p: &Principal,
        f: IndexField,
        v: &str,
        page: PageRequest,
        _q: &ObjectQuery,
    ) -> Result<Page<Self>> {
        s.engine.agendas().query(p, f, v, page).await
    }
    async fn list(s: &AppState, p: &Principal, page: PageRequest, _q: &ObjectQuery) -> Result<Page<Self>> {
        s.engine.agendas().list(p, page).await
    }
    async fn create(s: &AppState, caller: &Caller, mut obj: Self) -> Result<Self> {
        if obj.cid.as_deref().is_none_or(str::is_empty) {
            obj.cid = Some(caller.cid.clone());
        }
        s.engine.agendas().submit(&caller.principal, obj).await
    }
    async fn update(_s: &AppState, _p: &Principal, _obj: Self) -> Result<Self> {
        Err(not_here(Self::UPDATED_ELSEWHERE.unwrap_or_default()))
    }
    async fn delete(s: &AppState, p: &Principal, id: &str) -> Result<Self> {
        s.engine.agendas().delete(p, id).await
    }
}

#[async_trait]
impl Resource for AgendaProgress {
    const PATH: &'static str = "progress/agenda";
    const CREATED_ELSEWHERE: Option<&'static str> =
        Some("an agenda's progress is created with the agenda (POST /pop/agenda)");
    const UPDATED_ELSEWHERE: Option<&'static str> = Some(
        "progress is written by the pool holding the agenda's lease: POST /pop/resourcepool/service/updateAgendaProgress",
    );
    async fn get(s: &AppState, p: &Principal, id: &str, _q: &ObjectQuery) -> Result<Self> {
        s.engine.progress().by_id(p, id).await
    }
    async fn query(
        s: &AppState,
        p: &Principal,
        f: IndexField,
        v: &str,
        page: PageRequest,
        q: &ObjectQuery,
    ) -> Result<Page<Self>> {
        s.engine.progress().query(p, f, v, page, q.wants("operationProgress")).await
    }
    async fn list(s: &AppState, p: &Principal, page: PageRequest, q: &ObjectQuery) -> Result<Page<Self>> {
        s.engine.progress().list(p, page, q.wants("operationProgress")).await
    }
    async fn create(_s: &AppState, _caller: &Caller, _obj: Self) -> Result<Self> {
        Err(not_here(Self::CREATED_ELSEWHERE.unwrap_or_default()))
    }
    async fn update(_s: &AppState, _p: &Principal, _obj: Self) -> Result<Self> {
        Err(not_here(Self::UPDATED_ELSEWHERE.unwrap_or_default()))
    }
    async fn delete(s: &AppState, p: &Principal, id: &str) -> Result<Self> {
        s.engine.progress().delete(p, id).await
    }
}

#[async_trait]
impl Resource for OperationProgress {
    const PATH: &'static str = "progress/operation";
    const CREATED_ELSEWHERE: Option<&'static str> =
        Some("operation progress is created with its agenda (POST /pop/agenda)");
    const UPDATED_ELSEWHERE: Option<&'static str> = Some(
        "operation progress is written by the pool holding the agenda's lease: POST /pop/resourcepool/service/updateAgendaProgress",
    );
    const DELETED_ELSEWHERE: Option<&'static str> =
        Some("operation progress is deleted with its agenda progress (DELETE /pop/progress/agenda/{id})");
    async fn get(s: &AppState, p: &Principal, id: &str, _q: &ObjectQuery) -> Result<Self> {
        s.engine.progress().operation(p, id).await
    }
    async fn query(
        s: &AppState,
        p: &Principal,
        f: IndexField,
        v: &str,
        page: PageRequest,
        _q: &ObjectQuery,
    ) -> Result<Page<Self>> {
        s.engine.progress().operations(p, f, v, page).await
    }
    async fn list(_s: &AppState, _p: &Principal, _page: PageRequest, _q: &ObjectQuery) -> Result<Page<Self>> {
        Err(Error::problems(vec![
            Problem::new(
                "operation progress is listed by agenda progress: add byagendaProgressId=<id> (or bycustomerId)",
            )
            .field("byagendaProgressId"),
        ]))
    }
    async fn create(_s: &AppState, _caller: &Caller, _obj: Self) -> Result<Self> {
        Err(not_here(Self::CREATED_ELSEWHERE.unwrap_or_default()))
    }
    async fn update(_s: &AppState, _p: &Principal, _obj: Self) -> Result<Self> {
        Err(not_here(Self::UPDATED_ELSEWHERE.unwrap_or_default()))
    }
    async fn delete(_s: &AppState, _p: &Principal, _id: &str) -> Result<Self> {
        Err(not_here(Self::DELETED_ELSEWHERE.unwrap_or_default()))
    }
}

fn to_value<T: Serialize>(obj: &T) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| Error::backend("codec", e))
}

fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// The most objects `bycount=true` counts.
const MAX_COUNT: usize = 100_000;

/// `GET /pop/<kind>?...`.
pub(crate) async fn get_many<T: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<DataObjectResponse<Value>>> {
    let q = ObjectQuery::parse(&pairs(raw), T::KIND.indexed_fields())?;
    let p = &caller.principal;
    let cid = Some(caller.cid.clone());
    if let Some(id) = &q.id {
        let all = match T::get(&s, p, id, &q).await {
            Ok(obj) => {
                let v = to_value(&obj)?;
                if q.keeps(&v) { vec![q.project(v)] } else { vec![] }
            }
            Err(Error::NotFound { .. }) => vec![],
            Err(e) => return Err(e.into()),
        };
        let count = all.len();
        return Ok(Json(DataObjectResponse { all: if q.count_only { vec![] } else { all }, count, cid, next: None }));
    }
    let read = |page: PageRequest| {
        let q = &q;
        let s = &s;
        async move {
            match &q.index {
                Some((f, v)) => T::query(s, p, *f, v, page, q).await,
                None => T::list(s, p, page, q).await,
            }
        }
    };
    if q.count_only {
        let mut count = 0;
        let mut page = PageRequest { limit: MAX_LIMIT_COUNT_PAGE, cursor: q.cursor.clone() };
        loop {
            let got = read(page).await?;
            for obj in &got.items {
                if q.keeps(&to_value(obj)?) {
                    count += 1;
                }
            }
            match got.next {
                Some(c) if count < MAX_COUNT => page = PageRequest { limit: MAX_LIMIT_COUNT_PAGE, cursor: Some(c) },
                _ => break,
            }
        }
        return Ok(Json(DataObjectResponse { all: vec![], count, cid, next: None }));
    }
    let got = read(q.page()).await?;
    let mut all = Vec::with_capacity(got.items.len());
    for obj in &got.items {
        let v = to_value(obj)?;
        if q.keeps(&v) {
            all.push(q.project(v));
        }
    }
    Ok(Json(DataObjectResponse { count: all.len(), all, cid, next: got.next }))
}

const MAX_LIMIT_COUNT_PAGE: usize = 1000;

/// `GET /pop/<kind>/{id}`.
pub(crate) async fn get_one<T: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<DataObjectResponse<Value>>> {
    let q = ObjectQuery::parse(&pairs(raw), T::KIND.indexed_fields())?;
    let obj = T::get(&s, &caller.principal, &id, &q).await?;
    Ok(Json(DataObjectResponse { all: vec![q.project(to_value(&obj)?)], count: 1, cid: Some(caller.cid), next: None }))
}

/// A kind that cannot be written this way answers 405, saying which route does it.
fn refused(e: Error) -> ApiError {
    match e {
        Error::Unsupported(why) => ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", why),
        e => e.into(),
    }
}

/// `POST /pop/<kind>`.
pub(crate) async fn create<T: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    Body(obj): Body<T>,
) -> ApiResult<(StatusCode, Json<DataObjectResponse<T>>)> {
    let created = T::create(&s, &caller, obj).await.map_err(refused)?;
    Ok((StatusCode::OK, Json(DataObjectResponse { all: vec![created], count: 1, cid: Some(caller.cid), next: None })))
}

/// `PUT /pop/<kind>/{id}`: the body's non-null fields over the stored object.
pub(crate) async fn update<T: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(patch): Body<Value>,
) -> ApiResult<Json<DataObjectResponse<T>>> {
    let Value::Object(patch) = patch else {
        return Err(Error::problems(vec![Problem::new("the body must be a JSON object")]).into());
    };
    if let Some(body_id) = patch.get("id").and_then(Value::as_str) {
        if body_id != id {
            return Err(Error::problems(vec![
                Problem::new(format!("the body's id {body_id} is not the id in the path ({id})")).field("id"),
            ])
            .into());
        }
    }
    let stored = T::get(&s, &caller.principal, &id, &ObjectQuery::default()).await?;
    let mut merged = to_value(&stored)?;
    if let Value::Object(m) = &mut merged {
        // The stored version is the default (last writer wins); a `version` in the body makes it a
        // compare-and-set.
        for (k, v) in patch {
            if !v.is_null() {
                m.insert(k, v);
            }
        }
    }
    let obj: T = parse_json(&serde_json::to_vec(&merged).map_err(|e| Error::backend("codec", e))?)?;
    let updated = T::update(&s, &caller.principal, obj).await.map_err(refused)?;
    Ok(Json(DataObjectResponse { all: vec![updated], count: 1, cid: Some(caller.cid), next: None }))
}

/// `DELETE /pop/<kind>/{id}`.
pub(crate) async fn delete<T: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DataObjectResponse<T>>> {
    let deleted = T::delete(&s, &caller.principal, &id).await.map_err(refused)?;
    Ok(Json(DataObjectResponse { all: vec![deleted], count: 1, cid: Some(caller.cid), next: None }))
}

/// The message of a 405 for a write a kind does not take on its data-object route (`POST
/// /pop/progress/agenda`, `PUT /pop/agenda/{id}`, ...): what does it instead.
pub(crate) fn elsewhere(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    fn of<T: Resource>(method: &axum::http::Method, path: &str) -> Option<&'static str> {
        let rest = path.strip_prefix("/pop/")?.strip_prefix(T::PATH)?;
        if rest.is_empty() || rest == "/" {
            return (method == axum::http::Method::POST).then_some(T::CREATED_ELSEWHERE).flatten();
        }
        let id = rest.strip_prefix('/')?;
        if id.is_empty() || id.contains('/') || id == "service" {
            return None;
        }
        match *method {
            axum::http::Method::PUT => T::UPDATED_ELSEWHERE,
            axum::http::Method::DELETE => T::DELETED_ELSEWHERE,
            _ => None,
        }
    }
    of::<Agenda>(method, path)
        .or_else(|| of::<AgendaProgress>(method, path))
        .or_else(|| of::<OperationProgress>(method, path))
}

/// The routes of one kind: only the methods it takes (the others are 405 with `Allow`, and for the
/// writes done elsewhere a message saying where: [`elsewhere`]).
pub(crate) fn routes<T: Resource>() -> axum::Router<AppState> {
    use axum::routing::{delete as del, get, post, put};
    let base = format!("/pop/{}", T::PATH);
    let mut collection = get(get_many::<T>);
    if T::CREATED_ELSEWHERE.is_none() {
        collection = collection.merge(post(create::<T>));
    }
    let mut one = get(get_one::<T>);
    if T::UPDATED_ELSEWHERE.is_none() {
        one = one.merge(put(update::<T>));
    }
    if T::DELETED_ELSEWHERE.is_none() {
        one = one.merge(del(delete::<T>));
    }
    axum::Router::new().route(&base, collection).route(&format!("{base}/{{id}}"), one)
}
