//! What the HTTP integration tests share: a real server on loopback (axum over an engine on a sled
//! store in a temporary directory, served by `pop_http::serve` with a shutdown signal), the callers
//! of the authorization matrix with their credentials, and raw HTTP calls that return the status and
//! the JSON body.
#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaTemplate, Customer, Insight, ResourcePool};
use pop_engine::{Engine, EngineParts};
use pop_http::ApiConfig;
use pop_http::auth::AuthConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The HS256 secret of the server's `[jwt]` section.
pub const JWT_SECRET: &str = "http-tests-secret-0123456789-0123456789";
/// The audience the server accepts.
pub const JWT_AUDIENCE: &str = "pop-http-tests";

pub const OWNER_TOKEN: &str = "owner-token-0123456789abcdef";
pub const OTHER_TOKEN: &str = "other-token-0123456789abcdef";
pub const SUPER_TOKEN: &str = "super-token-0123456789abcdef";

/// The customer owning every object of the matrix.
pub const OWNER: &str = "acme";
/// A customer in the `allowedCustomerIds` of the owner's insight and template (authenticated by JWT).
pub const ALLOWED: &str = "globex";
/// A customer with no claim on the owner's objects.
pub const OTHER: &str = "initech";

/// The server's auth config: static tokens for the owner, the other customer and the superuser, and
/// HS256 JWTs; anonymous callers are refused.
pub fn auth_config() -> AuthConfig {
    format!(
        r#"
anonymous = "deny"
[jwt]
audience = "{JWT_AUDIENCE}"
hs256_secret = "{JWT_SECRET}"
[[tokens]]
token = "{OWNER_TOKEN}"
user = "alice"
accounts = ["{OWNER}"]
[[tokens]]
token = "{OTHER_TOKEN}"
user = "olivia"
accounts = ["{OTHER}"]
[[tokens]]
token = "{SUPER_TOKEN}"
user = "root"
superuser = true
"#
    )
    .parse()
    .expect("the test auth config parses")
}

/// An HS256 JWT for `sub` acting for `accounts`, expiring `exp_in` seconds from now (negative: in the past).
pub fn jwt(sub: &str, accounts: &[&str], exp_in: i64) -> String {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("time");
    let claims = json!({"sub": sub, "aud": JWT_AUDIENCE, "accounts": accounts, "iat": now, "exp": now + exp_in});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key"),
    )
    .expect("sign a test JWT")
}

/// Who calls, in the matrix's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Acts for the owning customer (static token).
    Owner,
    /// Acts for a customer in the object's `allowedCustomerIds` (a valid HS256 JWT).
    Allowed,
    /// Acts for another customer (static token).
    Other,
    /// A superuser (static token).
    Super,
    /// No credentials.
    Anonymous,
    /// A bearer token the server does not know.
    BadToken,
    /// A correctly signed JWT of the owner that expired an hour ago.
    Expired,
}

impl Who {
    pub const ALL: [Who; 7] =
        [Who::Owner, Who::Allowed, Who::Other, Who::Super, Who::Anonymous, Who::BadToken, Who::Expired];

    /// The `Authorization` header value, if any.
    pub fn authorization(self) -> Option<String> {
        match self {
            Who::Owner => Some(format!("Bearer {OWNER_TOKEN}")),
            Who::Allowed => Some(format!("Bearer {}", jwt("gary", &[ALLOWED], 3600))),
            Who::Other => Some(format!("Bearer {OTHER_TOKEN}")),
            Who::Super => Some(format!("Bearer {SUPER_TOKEN}")),
            Who::Anonymous => None,
            Who::BadToken => Some("Bearer not-a-token-this-server-knows".into()),
            Who::Expired => Some(format!("Bearer {}", jwt("alice", &[OWNER], -3600))),
        }
    }

    /// A `pop_http::Client` with this caller's token (no retries).
    pub fn client(self, base: &str) -> pop_http::Client {
        let c = pop_http::Client::new(base).expect("client").with_retry_for(std::time::Duration::ZERO);
        match self.authorization() {
            Some(h) => c.with_token(h.trim_start_matches("Bearer ").to_owned()),
            None => c,
        }
    }
}

/// A server on 127.0.0.1:0 over an engine on sled in a temporary directory.
pub struct Server {
    pub base: String,
    pub engine: Engine,
    pub dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    http: reqwest::Client,
}

/// A raw HTTP client (reqwest is built without a default TLS provider; ring is the workspace's).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest")
}

/// An engine on a sled store in `dir` with the test auth config.
pub fn engine_at(dir: &std::path::Path) -> Engine {
    let (store, queue) = pop_store_sled::open_both(pop_store_sled::Config::new(dir)).expect("open sled");
    let mut parts =
        EngineParts::new(Arc::new(store), Arc::new(queue), Arc::new(pop_exec::inprocess::InProcessRuntime::new()));
    parts.authorizer = Arc::new(auth_config().authorizer().expect("authorizer"));
    Engine::new(parts)
}

impl Server {
    /// A server with the default API settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose API settings `tweak` changes.
    pub async fn start_with(tweak: impl FnOnce(&mut ApiConfig)) -> Self {
        Self::start_serving(tweak, pop_http::ServeConfig::default()).await
    }

    /// A server whose API settings `tweak` changes, served with the connection limits of `serve`.
    pub async fn start_serving(tweak: impl FnOnce(&mut ApiConfig), serve: pop_http::ServeConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine_at(dir.path());
        let mut config = ApiConfig::new(auth_config());
        tweak(&mut config);
        let router = pop_http::router(engine.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pop_http::serve_with(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            serve,
        ));
        let http = http();
        Self { base, engine, dir: Some(dir), stop: Some(stop), task: Some(task), http }
    }

    /// Tells the server to shut down: it stops accepting and lets requests in flight finish.
    pub fn signal_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Waits for the server to stop (after [`Server::signal_shutdown`]).
    pub async fn join(&mut self) -> std::io::Result<()> {
        match self.task.take() {
            Some(t) => t.await.expect("the server task"),
            None => Ok(()),
        }
    }

    /// The data directory.
    pub fn path(&self) -> PathBuf {
        self.dir.as_ref().expect("dir").path().to_owned()
    }

    /// A raw request as `who`: the status and the body as JSON (`Value::Null` when empty, a string
    /// when not JSON).
    pub async fn call(&self, who: Who, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(h) = who.authorization() {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (status, to_json(&bytes))
    }

    /// A raw request with raw bytes as the body (and a JSON content type).
    pub async fn call_raw(&self, who: Who, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(h) = who.authorization() {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (status, to_json(&bytes))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}

fn to_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// Asserts `body` is the error envelope with `status`, and returns its `errorResponse`.
pub fn envelope(status: StatusCode, body: &Value) -> &Value {
    let e = body.get("errorResponse").unwrap_or_else(|| panic!("no error envelope in a {status} answer: {body}"));
    assert_eq!(e["responseCode"], json!(status.as_u16()), "responseCode of {body}");
    assert!(e["title"].as_str().is_some_and(|t| !t.is_empty()), "title of {body}");
    assert!(e["description"].as_str().is_some_and(|t| !t.is_empty()), "description of {body}");
    e
}

/// The ids of one customer's set of objects.
#[derive(Debug, Clone)]
pub struct Owned {
    pub pool: String,
    pub insight: String,
    pub customer: String,
    pub template: String,
    pub agenda: String,
    pub progress: String,
    pub operation: String,
    pub link: String,
}

/// The base world: the three customers (each in its own pool with one insight), the owner's insight
/// readable by `ALLOWED` (allowedCustomerIds), and the owner's template likewise.
pub async fn world(engine: &Engine) {
    let su = Principal::superuser("setup");
    let objects = engine.objects();
    for c in [OWNER, ALLOWED, OTHER] {
        let pool = format!("pool-{c}");
        objects
            .create(
                &su,
                ResourcePool {
                    id: Some(pool.clone()),
                    customer_id: Some(c.into()),
                    title: Some(pool.clone()),
                    ..Default::default()
                },
            )
            .await
            .expect("pool");
        let insight = Insight {
            id: Some(format!("ins-{c}")),
            customer_id: Some(c.into()),
            title: Some(format!("insight of {c}")),
            resource_pool_id: Some(pool.clone()),
            allowed_customer_ids: if c == OWNER { vec![ALLOWED.into()] } else { vec![] },
            queue_size: Some(10),
            mappers: [("operationType".to_string(), vec!["step".to_string()])].into(),
            ..Default::default()
        };
        objects.create(&su, insight).await.expect("insight");
        let customer = Customer {
            id: Some(c.into()),
            customer_id: Some(c.into()),
            title: Some(c.into()),
            resource_pool_id: Some(pool),
            ..Default::default()
        };
        objects.create(&su, customer).await.expect("customer");
    }
}

/// A one-operation agenda of `customer` with `link`.
pub fn agenda(customer: &str, link: &str) -> Agenda {
    serde_json::from_value(json!({
        "customerId": customer,
        "linkId": link,
        "operations": [{"name": "a", "type": "step", "payload": {"n": 1}}]
    }))
    .expect("agenda")
}

/// A set of objects owned by `OWNER`, their ids prefixed by `prefix`: a pool, an insight and a
/// template (both with `ALLOWED` in allowedCustomerIds), a customer record, and a submitted agenda
/// with its progress and operation progress. Needs [`world`].
pub async fn owned(engine: &Engine, prefix: &str) -> Owned {
    let su = Principal::superuser("setup");
    let objects = engine.objects();
    let pool = format!("{prefix}-pool");
    objects
        .create(
            &su,
            ResourcePool {
                id: Some(pool.clone()),
                customer_id: Some(OWNER.into()),
                title: Some(pool.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("pool");
    let insight = Insight {
        id: Some(format!("{prefix}-insight")),
        customer_id: Some(OWNER.into()),
        title: Some(format!("{prefix} insight")),
        resource_pool_id: Some(pool.clone()),
        allowed_customer_ids: vec![ALLOWED.into()],
        mappers: [("operationType".to_string(), vec!["step".to_string()])].into(),
        ..Default::default()
    };
    objects.create(&su, insight).await.expect("insight");
    let customer = Customer {
        id: Some(format!("{prefix}-customer")),
        customer_id: Some(OWNER.into()),
        title: Some(format!("{prefix} customer")),
        resource_pool_id: Some(format!("pool-{OWNER}")),
        ..Default::default()
    };
    objects.create(&su, customer).await.expect("customer");
    let template = AgendaTemplate {
        id: Some(format!("{prefix}-template")),
        customer_id: Some(OWNER.into()),
        title: Some(format!("{prefix} template")),
        allowed_customer_ids: vec![ALLOWED.into()],
        agenda: json!({"customerId": OWNER, "operations": [{"name": "a", "type": "step", "payload": {"in": "@<pop.payload>"}}]}),
        ..Default::default()
    };
    objects.create(&su, template).await.expect("template");
    let link = format!("{prefix}-link");
    let a = engine.agendas().submit(&su, agenda(OWNER, &link)).await.expect("submit");
    let agenda_id = a.id.clone().expect("agenda id");
    let progress = engine.progress().agenda_progress(&su, &agenda_id).await.expect("progress");
    let operation = progress.operation_progress[0].id.clone().expect("operation progress id");
    Owned {
        pool,
        insight: format!("{prefix}-insight"),
        customer: format!("{prefix}-customer"),
        template: format!("{prefix}-template"),
        agenda: agenda_id,
        progress: progress.id.clone().expect("progress id"),
        operation,
        link,
    }
}

/// The data-object kinds: path segment, and the `by<field>` query that finds an `Owned` object.
pub fn kinds(o: &Owned) -> Vec<(&'static str, String, String)> {
    vec![
        ("agenda", o.agenda.clone(), format!("bylinkId={}", o.link)),
        ("progress/agenda", o.progress.clone(), format!("bylinkId={}", o.link)),
        ("progress/operation", o.operation.clone(), format!("byagendaProgressId={}", o.progress)),
        (
            "agendatemplate",
            o.template.clone(),
            format!("bytitle={}", enc(&format!("{} template", prefix(&o.template)))),
        ),
        ("customer", o.customer.clone(), format!("bytitle={}", enc(&format!("{} customer", prefix(&o.customer))))),
        ("insight", o.insight.clone(), format!("byresourcePoolId={}", o.pool)),
        ("resourcepool", o.pool.clone(), format!("bytitle={}", o.pool)),
    ]
}

fn prefix(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(p, _)| p)
}

pub fn enc(s: &str) -> String {
    s.replace(' ', "%20")
}
