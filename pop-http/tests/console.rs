//! The web console's router (assets with their content types, the page's read-only mode, a read-only
//! API behind it refusing changes) and the routes it watches: the progress event stream and the queue
//! statistics, each as visible as the GET beside it.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use pop_core::model::ProcessingState;
use pop_engine::{Engine, EngineParts, WorkerConfig};
use pop_http::console::{self, ConsoleConfig};
use pop_http::{ApiConfig, auth::AuthConfig};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789";
const ACME: &str = "acme-token-0123456789";
const GLOBEX: &str = "globex-token-0123456789";

struct Answer {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status, content_type, headers, body }
}

fn auth() -> AuthConfig {
    format!(
        r#"anonymous = "deny"
[[tokens]]
token = "{ADMIN}"
user = "admin"
superuser = true
[[tokens]]
token = "{ACME}"
user = "alice"
accounts = ["acme"]
[[tokens]]
token = "{GLOBEX}"
user = "gordon"
accounts = ["globex"]
"#
    )
    .parse()
    .unwrap()
}

fn engine() -> Engine {
    let auth = auth();
    let runtime = pop_exec::inprocess::InProcessRuntime::new();
    runtime.register("quick", |_ctx| async move { Ok(serde_json::json!({"done": true})) });
    runtime.register("slow", |_ctx| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(serde_json::json!({}))
    });
    let mut parts = EngineParts::new(
        Arc::new(pop_core::memory::MemoryStore::new()),
        Arc::new(pop_core::memory::MemoryQueue::new()),
        Arc::new(runtime),
    );
    parts.authorizer = Arc::new(auth.authorizer().unwrap());
    parts.config.scheduler_interval = Duration::from_millis(50);
    Engine::new(parts)
}

fn api_config(read_only: bool) -> ApiConfig {
    ApiConfig { read_only, ..ApiConfig::new(auth()) }
}

/// The app `pop serve --console read-only` builds: the API, a read-only copy at `/ui/api`, the
/// console at `/ui` pointed at the copy.
fn read_only_app(engine: &Engine) -> Router {
    let app = pop_http::router(engine.clone(), api_config(false))
        .nest("/ui/api", pop_http::router(engine.clone(), api_config(true)));
    console::nest(app, "/ui", ConsoleConfig { read_only: true, api_base: "/ui/api".into() })
}

#[tokio::test]
async fn assets_are_served_with_their_content_types() {
    let app = console::nest(Router::new(), "/ui", ConsoleConfig::default());
    let page = call(&app, Method::GET, "/ui", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert!(page.body.contains(r#"<base href="/ui/">"#), "the page finds its assets under the mount point");
    assert!(page.body.contains(r#"data-read-only="false""#));
    assert!(!page.body.contains("{{"), "every placeholder is filled");
    let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
    // `/ui/` goes to `/ui`
    let slash = call(&app, Method::GET, "/ui/", None, None).await;
    assert_eq!(slash.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(slash.headers.get(header::LOCATION).unwrap(), "/ui");
    for (file, ct) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("dag.js", "text/javascript; charset=utf-8"),
        ("views.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let a = call(&app, Method::GET, &format!("/ui/{file}"), None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{file}");
        assert_eq!(a.content_type, ct, "{file}");
        assert!(!a.body.is_empty(), "{file}");
        // the page names every asset it loads by a relative address
        if file != "api.js" && file != "dag.js" && file != "views.js" {
            assert!(page.body.contains(&format!("\"{file}\"")), "index.html loads {file}");
        }
    }
    // the modules import each other relatively, nothing from elsewhere
    let app_js = call(&app, Method::GET, "/ui/app.js", None, None).await.body;
    assert!(app_js.contains("from './api.js'") && app_js.contains("from './views.js'"));
    for file in ["app.js", "api.js", "dag.js", "views.js", "style.css"] {
        let a = call(&app, Method::GET, &format!("/ui/{file}"), None, None).await.body;
        let a = a.replace("http://www.w3.org/2000/svg", "");
        assert!(!a.contains("http://") && !a.contains("https://"), "{file} loads nothing from elsewhere");
    }
    let missing = call(&app, Method::GET, "/ui/nope.js", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.content_type.starts_with("text/plain"));
    // not nested: the page's base is the root
    let root = call(&console::router(ConsoleConfig::default()), Method::GET, "/", None, None).await;
    assert!(root.body.contains(r#"<base href="/">"#));
}

#[tokio::test]
async fn read_only_hides_changes_in_the_page_and_the_api_behind_it_refuses_them() {
    let engine = engine();
    let app = read_only_app(&engine);
    let page = call(&app, Method::GET, "/ui", None, None).await;
    assert!(page.body.contains(r#"data-read-only="true""#));
    assert!(page.body.contains(r#"data-api-base="/ui/api""#));
    // what the page hides: the CSS rule and the mutating links and buttons marked for it
    let css = call(&app, Method::GET, "/ui/style.css", None, None).await.body;
    assert!(css.contains("body.read-only .mutating { display: none !important; }"));
    assert!(page.body.contains(r##"href="#/submit" class="mutating""##));
    let views = call(&app, Method::GET, "/ui/views.js", None, None).await.body;
    for id in ["cancel", "rerun-continue", "rerun-all", "new-object", "save"] {
        assert!(views.contains(&format!("'{id}'")) || views.contains(&format!("id: '{id}'")), "{id}");
    }
    // reads work through the read-only API ...
    let customer = serde_json::json!({"id": "acme", "customerId": "acme", "title": "Acme"});
    let created = call(&app, Method::POST, "/pop/customer", Some(ADMIN), Some(customer.clone())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let read = call(&app, Method::GET, "/ui/api/pop/customer/acme", Some(ADMIN), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let validate = call(
        &app,
        Method::POST,
        "/ui/api/pop/agenda/service/validate",
        Some(ADMIN),
        Some(serde_json::json!({"customerId": "acme", "operations": [{"name": "a", "type": "quick", "payload": {}}]})),
    )
    .await;
    assert_eq!(validate.status, StatusCode::OK, "validate is a read: {}", validate.body);
    // ... and every change is refused there, even for a superuser
    for (method, path, body) in [
        (Method::POST, "/ui/api/pop/customer", Some(serde_json::json!({"id": "b", "customerId": "b"}))),
        (Method::PUT, "/ui/api/pop/customer/acme", Some(serde_json::json!({"title": "changed"}))),
        (Method::DELETE, "/ui/api/pop/customer/acme", None),
        (
            Method::POST,
            "/ui/api/pop/agenda",
            Some(
                serde_json::json!({"customerId": "acme", "operations": [{"name": "a", "type": "quick", "payload": {}}]}),
            ),
        ),
        (Method::POST, "/ui/api/pop/agenda/service/cancel", Some(serde_json::json!({"agendaId": "x"}))),
        (Method::POST, "/ui/api/pop/agenda/service/rerun", Some(serde_json::json!({"agendaId": "x"}))),
    ] {
        let a = call(&app, method.clone(), path, Some(ADMIN), body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {path}: {}", a.body);
        assert!(a.body.contains("read-only"), "{}", a.body);
    }
    let still = call(&app, Method::GET, "/pop/customer/acme", Some(ADMIN), None).await;
    assert!(still.body.contains("\"Acme\""), "nothing changed: {}", still.body);
}

/// The events of a stream body, as (name, data) pairs.
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = "message".to_owned();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_owned());
                }
            }
            (!data.is_empty()).then(|| (name, data.join("\n")))
        })
        .collect()
}

async fn provision(app: &Router) {
    for (path, body) in [
        ("/pop/resourcepool", serde_json::json!({"id": "pool", "customerId": "ops", "title": "pool"})),
        (
            "/pop/insight",
            serde_json::json!({"id": "main", "title": "main", "customerId": "ops", "resourcePoolId": "pool", "isGlobal": true,
                "mappers": {"operationType": ["quick", "slow"]}}),
        ),
        (
            "/pop/insight",
            serde_json::json!({"id": "idle", "title": "idle", "customerId": "ops", "resourcePoolId": "pool", "isGlobal": true,
                "queueSize": 1, "mappers": {"operationType": ["idle"]}}),
        ),
        (
            "/pop/customer",
            serde_json::json!({"id": "acme", "customerId": "acme", "title": "Acme", "resourcePoolId": "pool"}),
        ),
        (
            "/pop/customer",
            serde_json::json!({"id": "globex", "customerId": "globex", "title": "Globex", "resourcePoolId": "pool"}),
        ),
    ] {
        let a = call(app, Method::POST, path, Some(ADMIN), Some(body)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
}

async fn submit(app: &Router, token: &str, customer: &str, op_type: &str) -> (String, String) {
    let a = call(
        app,
        Method::POST,
        "/pop/agenda",
        Some(token),
        Some(serde_json::json!({"customerId": customer, "operations": [
            {"name": "a", "type": op_type, "payload": {}},
            {"name": "b", "type": op_type, "payload": {"in": "@<a.out::/done>"}}]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    (v["all"][0]["id"].as_str().unwrap().to_owned(), v["all"][0]["progressId"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_stream_follows_an_agenda_to_its_end_and_only_for_who_may_see_it() {
    let engine = engine();
    let app = pop_http::router(engine.clone(), api_config(false));
    provision(&app).await;
    engine.start_scheduler();
    engine.start_worker(WorkerConfig::for_insights(["main"]));
    let (agenda, progress) = submit(&app, ACME, "acme", "quick").await;
    // another customer and an unknown id: the GET's answers, before any stream
    let path = format!("/pop/progress/agenda/{progress}/events");
    assert_eq!(call(&app, Method::GET, &path, Some(GLOBEX), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, Method::GET, &path, None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&app, Method::GET, "/pop/progress/agenda/nope/events", Some(ACME), None).await.status,
        StatusCode::NOT_FOUND
    );
    let streamed = tokio::time::timeout(Duration::from_secs(30), call(&app, Method::GET, &path, Some(ACME), None))
        .await
        .expect("the stream ends once the agenda is complete");
    assert_eq!(streamed.status, StatusCode::OK);
    assert_eq!(streamed.content_type, "text/event-stream");
    let evs = events(&streamed.body);
    let (last_name, _) = evs.last().unwrap();
    assert_eq!(last_name, "end", "{evs:?}");
    let progresses: Vec<pop_core::model::AgendaProgress> =
        evs.iter().filter(|(n, _)| n == "progress").map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert!(!progresses.is_empty());
    let last = progresses.last().unwrap();
    assert_eq!(last.processing_state, ProcessingState::Complete);
    assert_eq!(last.agenda_id.as_deref(), Some(agenda.as_str()));
    assert_eq!(last.operation_progress.len(), 2, "with the operations' progress");
    // each event differs from the one before (sent on change only)
    for w in progresses.windows(2) {
        assert_ne!(serde_json::to_string(&w[0]).unwrap(), serde_json::to_string(&w[1]).unwrap());
    }
    // the operation's detail: its payload resolved against its parent's output
    let detail = call(
        &app,
        Method::POST,
        "/pop/agenda/service/operation",
        Some(ACME),
        Some(serde_json::json!({"agendaId": agenda, "operation": "b"})),
    )
    .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let d: serde_json::Value = serde_json::from_str(&detail.body).unwrap();
    assert_eq!(d["resolvedPayload"], serde_json::json!({"in": true}));
    assert_eq!(d["missing"], serde_json::json!([]));
    assert_eq!(d["progress"]["operation"], "b");
    let hidden = call(
        &app,
        Method::POST,
        "/pop/agenda/service/operation",
        Some(GLOBEX),
        Some(serde_json::json!({"agendaId": agenda, "operation": "b"})),
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_streams_ends_a_stream_of_a_running_agenda() {
    let engine = engine();
    let config = api_config(false);
    let streams = config.streams.clone();
    let app = pop_http::router(engine.clone(), config);
    provision(&app).await;
    engine.start_scheduler();
    engine.start_worker(WorkerConfig::for_insights(["main"]));
    let (_, progress) = submit(&app, ACME, "acme", "slow").await;
    let path = format!("/pop/progress/agenda/{progress}/events");
    let app2 = app.clone();
    let stream = tokio::spawn(async move { call(&app2, Method::GET, &path, Some(ACME), None).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!stream.is_finished(), "the stream stays open while the agenda runs");
    streams.close();
    let answer = tokio::time::timeout(Duration::from_secs(5), stream).await.expect("closed").unwrap();
    let evs = events(&answer.body);
    assert!(evs.iter().any(|(n, _)| n == "progress"));
    assert!(!evs.iter().any(|(n, _)| n == "end"), "closed, not complete: {evs:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn queue_stats_show_each_caller_its_own_ready_agendas() {
    let engine = engine();
    let app = pop_http::router(engine.clone(), api_config(false));
    provision(&app).await;
    // nobody runs `idle`: one agenda goes to its queue (queueSize 1), the rest stay ready
    let mut acme = Vec::new();
    for _ in 0..3 {
        acme.push(submit(&app, ACME, "acme", "idle").await.0);
    }
    let globex = submit(&app, GLOBEX, "globex", "idle").await.0;
    engine.start_scheduler();
    let mut admin_view = serde_json::Value::Null;
    for _ in 0..100 {
        let a = call(&app, Method::GET, "/pop/queue/stats/idle", Some(ADMIN), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        admin_view = serde_json::from_str(&a.body).unwrap();
        if admin_view["queued"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin_view["queued"], 1, "{admin_view}");
    assert_eq!(admin_view["ready"], 3);
    assert_eq!(admin_view["algorithm"], "FirstInFirstOut");
    assert_eq!(admin_view["queueSize"], 1);
    assert!(admin_view.get("state").is_some(), "the owner (a superuser) sees the algorithm's state");
    let counts: u64 =
        admin_view["readyByCustomer"].as_array().unwrap().iter().map(|c| c["ready"].as_u64().unwrap()).sum();
    assert_eq!(counts, 3);
    // acme: its own ready agendas only, no algorithm state (it does not own the insight)
    let a = call(&app, Method::GET, "/pop/queue/stats/idle", Some(ACME), None).await;
    let acme_view: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert!(acme_view.get("state").is_none(), "{acme_view}");
    for c in acme_view["readyByCustomer"].as_array().unwrap() {
        assert_eq!(c["customerId"], "acme");
    }
    for w in acme_view["waiting"].as_array().unwrap() {
        assert!(acme.contains(&w["agendaId"].as_str().unwrap().to_owned()));
        assert_ne!(w["agendaId"], globex.as_str());
    }
    // the list: every insight acme may read
    let all = call(&app, Method::GET, "/pop/queue/stats", Some(ACME), None).await;
    let all: Vec<serde_json::Value> = serde_json::from_str(&all.body).unwrap();
    let mut ids: Vec<&str> = all.iter().map(|s| s["insightId"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["idle", "main"]);
    assert_eq!(call(&app, Method::GET, "/pop/queue/stats/nope", Some(ACME), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, Method::GET, "/pop/queue/stats", None, None).await.status, StatusCode::UNAUTHORIZED);
    engine.shutdown().await;
}
