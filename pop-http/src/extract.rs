//! Extractors: who is calling, JSON bodies with errors that name the field, the original's query
//! parameters.

use crate::error::{ApiError, current_cid};
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use pop_core::authz::Principal;
use pop_core::store::{IndexField, PageRequest};
use serde::de::DeserializeOwned;

/// The authenticated caller of a request, with its correlation id.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    pub cid: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credentials = crate::auth::credentials(&parts.headers, &state.config.auth)?;
        let principal = state.engine.authenticate(&credentials).await?;
        if state.config.read_only && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            // (the read-only services answer POST too: progress summary, explain, graph, validate)
            let path = parts.uri.path();
            let reads = [
                "/pop/progress/agenda/service",
                "/service/explain",
                "/service/graph",
                "/service/validate",
                "/service/operation",
            ];
            if !reads.iter().any(|r| path.ends_with(r)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "this server is read-only: it answers reads, never changes",
                ));
            }
        }
        let cid = current_cid().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        tracing::Span::current().record("user", principal.user_id.as_str());
        Ok(Caller { principal, cid })
    }
}

/// A JSON body: malformed JSON is 400 naming the line and column, a body of the wrong shape is 422
/// naming the field's path, an oversized one 413.
pub(crate) struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let limit = state.config.body_limit;
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLarge",
                    format!(
                        "the request body is larger than this server accepts ({limit} bytes at most; \
                         ApiConfig::body_limit, `pop serve --body-limit`)"
                    ),
                ));
            }
            Err(e) => return Err(ApiError::bad_request(format!("cannot read the request body: {}", e.body_text()))),
        };
        parse_json(&bytes).map(Body)
    }
}

/// Parses a JSON document, with errors that say where it is wrong.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request needs a JSON body"));
    }
    let not_json = |e: &serde_json::Error| ApiError::bad_request(format!("the body is not valid JSON: {e}"));
    // Syntax first (400), then the shape (422 naming the path). Every body of this API is a JSON
    // object, and the shape is read from the parsed value by `Strict`, which refuses an array wherever
    // a struct is expected, at every depth (serde's derives would take the array's items as the
    // fields, by position).
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| not_json(&e))?;
    if !value.is_object() {
        return Err(pop_core::Error::problems(vec![pop_core::Problem::new(format!(
            "the body must be a JSON object, got {}",
            kind_of(&value)
        ))])
        .into());
    }
    serde_path_to_error::deserialize(crate::strict::Strict(value)).map_err(|e| {
        let path = field_path(&e.path().to_string(), &e.inner().to_string());
        let problem =
            pop_core::Problem::new(format!("{}: {}", if path.is_empty() { "the body" } else { &path }, e.inner()));
        let problem = if path.is_empty() { problem } else { problem.field(path) };
        ApiError::from(pop_core::Error::problems(vec![problem]))
    })
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The path of the field a deserialization error is about, as `agendas[1].operations[0].name`:
/// serde names the struct for a missing field (the field itself is in the message), so the missing
/// field is appended.
fn field_path(path: &str, message: &str) -> String {
    let mut path = if path == "." { String::new() } else { path.trim_start_matches('.').to_owned() };
    if let Some(missing) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(missing);
    }
    path
}

/// The original's query parameters of a data-object GET.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ObjectQuery {
    /// `?id=`: one object (an empty list when absent or invisible).
    pub id: Option<String>,
    /// `by<field>=value` on an indexed field: the index query.
    pub index: Option<(IndexField, String)>,
    /// Other `by<field>=value` pairs: equality filters on the JSON fields.
    pub filters: Vec<(String, String)>,
    /// `bylimit=N` (default 100, at most 1,000).
    pub limit: usize,
    /// `bycursor=...` (an extension): where the previous page ended.
    pub cursor: Option<String>,
    /// `bycount=true`: the count only.
    pub count_only: bool,
    /// `byfields=a,b`: only these fields of each object.
    pub fields: Option<Vec<String>>,
}

/// The most objects one page returns.
pub(crate) const MAX_LIMIT: usize = 1000;

impl ObjectQuery {
    /// Parses the query string; `indexed` are the fields the kind can be queried by.
    pub fn parse(pairs: &[(String, String)], indexed: &[IndexField]) -> Result<Self, ApiError> {
        let mut q = ObjectQuery { limit: 100, ..Default::default() };
        let mut problems = Vec::new();
        for (key, value) in pairs {
            let lower = key.to_ascii_lowercase();
            // An empty cursor or projection is an absent one (as forms send them).
            if value.is_empty() && matches!(lower.as_str(), "bycursor" | "byfields") {
                continue;
            }
            match lower.as_str() {
                "id" => q.id = Some(value.clone()),
                "bylimit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                    _ => problems.push(
                        pop_core::Problem::new(format!("bylimit must be a number from 1 to {MAX_LIMIT}, got `{value}`"))
                            .field("bylimit"),
                    ),
                },
                "bycursor" => q.cursor = Some(value.clone()).filter(|c| !c.is_empty()),
                "bycount" => match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => q.count_only = true,
                    "false" | "0" | "no" => q.count_only = false,
                    _ => problems.push(
                        pop_core::Problem::new(format!("bycount must be true or false, got `{value}`")).field("bycount"),
                    ),
                },
                "byfields" => {
                    q.fields = Some(value.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect())
                }
                _ if lower.starts_with("by") && lower.len() > 2 => {
                    let name = &key[2..];
                    match IndexField::parse(name).filter(|f| indexed.contains(f)) {
                        Some(f) if q.index.is_none() => q.index = Some((f, value.clone())),
                        _ => q.filters.push((name.to_owned(), value.clone())),
                    }
                }
                _ => problems.push(
                    pop_core::Problem::new(format!(
                        "unknown query parameter `{key}`: use id, by<field> (indexed: {}), bylimit, bycursor, bycount or byfields",
                        indexed.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                    .field(key.clone()),
                ),
            }
        }
        if !problems.is_empty() {
            return Err(pop_core::Error::problems(problems).into());
        }
        if !q.filters.is_empty() && q.index.is_none() && q.id.is_none() {
            let names: Vec<&str> = q.filters.iter().map(|(n, _)| n.as_str()).collect();
            return Err(pop_core::Error::problems(vec![
                pop_core::Problem::new(format!(
                    "by{} cannot be queried alone: add one of the indexed fields ({})",
                    names.join(", by"),
                    indexed.iter().map(|f| format!("by{f}")).collect::<Vec<_>>().join(", ")
                ))
                .field(names[0].to_owned()),
            ])
            .into());
        }
        Ok(q)
    }

    /// The page to read.
    pub fn page(&self) -> PageRequest {
        PageRequest { limit: self.limit, cursor: self.cursor.clone() }
    }

    /// Whether `obj` (as JSON) passes the extra `by<field>` filters (compared as strings).
    pub fn keeps(&self, obj: &serde_json::Value) -> bool {
        self.filters.iter().all(|(field, want)| {
            let found =
                obj.as_object().and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)).map(|(_, v)| v));
            match found {
                Some(serde_json::Value::String(s)) => s == want,
                Some(v) => serde_json::to_string(v).is_ok_and(|text| text == *want),
                None => false,
            }
        })
    }

    /// `obj` cut down to `byfields` (always with `id`).
    pub fn project(&self, obj: serde_json::Value) -> serde_json::Value {
        let (Some(fields), serde_json::Value::Object(map)) = (&self.fields, &obj) else { return obj };
        let kept = map
            .iter()
            .filter(|(k, _)| k.as_str() == "id" || fields.iter().any(|f| f.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::Value::Object(kept)
    }

    /// Whether `byfields` asks for `field` (no `byfields`: every field).
    pub fn wants(&self, field: &str) -> bool {
        self.fields.as_ref().is_none_or(|f| f.iter().any(|x| x.eq_ignore_ascii_case(field)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn the_original_query_parameters() {
        let idx = [IndexField::CustomerId, IndexField::LinkId, IndexField::Title];
        let q = ObjectQuery::parse(&pairs(&[("bylinkId", "l1"), ("bytitle", "t"), ("bylimit", "5")]), &idx).unwrap();
        assert_eq!(q.index, Some((IndexField::LinkId, "l1".into())));
        assert_eq!(q.filters, vec![("title".into(), "t".into())]);
        assert_eq!(q.limit, 5);
        assert!(q.keeps(&serde_json::json!({"title": "t"})) && !q.keeps(&serde_json::json!({"title": "u"})));
        let e = ObjectQuery::parse(&pairs(&[("bylimit", "0")]), &idx).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e = ObjectQuery::parse(&pairs(&[("nope", "1")]), &idx).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e = ObjectQuery::parse(&pairs(&[("bycolour", "red")]), &idx).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let q = ObjectQuery::parse(&pairs(&[("byfields", "title,linkId")]), &idx).unwrap();
        let p = q.project(serde_json::json!({"id": "a", "title": "t", "params": {}}));
        assert_eq!(p, serde_json::json!({"id": "a", "title": "t"}));
    }

    #[test]
    fn bodies_are_parsed_once_with_errors_that_say_where() {
        let agenda: pop_core::model::Agenda =
            parse_json(br#"{"customerId": "c", "operations": [{"name": "a", "type": "t"}]}"#).unwrap();
        assert_eq!(agenda.operations.len(), 1);
        // malformed JSON, an empty body, trailing garbage: 400 with the position
        for (body, needle) in [(&br#"{"customerId": "#[..], "EOF"), (b"  ", "needs a JSON body"), (b"{} x", "trailing")]
        {
            let e = parse_json::<pop_core::model::Agenda>(body).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{body:?}");
            assert!(format!("{e:?}").contains(needle), "{body:?}: {e:?}");
        }
        // the wrong shape: 422 naming the field's path
        let e = parse_json::<pop_core::model::Agenda>(br#"{"operations": [{"name": 5}]}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(format!("{e:?}").contains("operations[0].name"), "{e:?}");
    }
}
