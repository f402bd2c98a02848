//! An axum application that hosts POP: its own routes and POP's API in one server, on one tokio
//! runtime, shut down gracefully.
//!
//! * The host's route `POST /app/thumbnails` submits an agenda through the **library** (the same
//!   `Pop` the API serves), as the host's own customer.
//! * POP's API (`pop::http::router`, feature `http`) is merged in: its routes already start with
//!   `/pop/...` (plus `/healthz`, `/readyz`, `/metrics`, `/openapi.json` at the root), so a merge mounts
//!   it without clashing with the host's `/app/...` routes. POP's router has a fallback (the original's
//!   404 envelope); the host router must not set another one.
//! * POP's web console (`pop::http::console`) is nested at `/ui`; it signs in with a token and calls
//!   the same API.
//! * Callers of POP's routes authenticate with a static bearer token (`AuthConfig`); the same
//!   configuration gives the engine its authorizer, so the library and the API apply one set of rules.
//! * Shutdown: the server stops accepting, finishes the requests in flight (`pop::http::serve`), then
//!   the POP loops stop (`Pop::shutdown`).
//!
//! The example starts the server on a free loopback port, calls its own route and a POP route
//! (`getAgendaProgress` through `pop::http::Client`), and exits.
//!
//! Run: `cargo run -p pop-examples --example host_app`

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use pop::core::authz::Principal;
use pop::core::model::{Agenda, Conclusion, Operation};
use pop::http::ApiConfig;
use pop::http::auth::AuthConfig;
use pop::http::console::{self, ConsoleConfig};
use pop::{Pop, RuntimeRouter};
use pop_examples::{BoxError, Out};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The token POP's API accepts in this example (a real one comes from a secret store).
const TOKEN: &str = "example-token-0123456789abcdef";

/// The host's own state: POP is a field like any other.
#[derive(Clone)]
struct AppState {
    pop: Pop,
}

/// `POST /app/thumbnails {"file": "cat.jpg"}`: the host's route, submitting through the library.
async fn make_thumbnail(State(app): State<AppState>, Json(body): Json<Value>) -> Json<Value> {
    let file = body["file"].as_str().unwrap_or("unnamed.jpg");
    let agenda = Agenda {
        customer_id: Some("acme".into()),
        operations: vec![Operation {
            name: "thumb".into(),
            op_type: "thumbnail".into(),
            payload: json!({"in": file}),
            ..Default::default()
        }],
        ..Default::default()
    };
    let caller = Principal::customer("host-app", ["acme"]);
    match app.pop.agendas().submit(&caller, agenda).await {
        Ok(stored) => Json(json!({"agendaId": stored.id})),
        Err(e) => Json(json!({"error": e.to_string()})),
    }
}

/// Runs the example.
pub async fn run(mut out: Out) -> Result<Out, BoxError> {
    // POP: embedded, one in-process handler, the authorizer of the API's auth configuration.
    let auth: AuthConfig = format!(
        r#"
        anonymous = "deny"
        [[tokens]]
        token = "{TOKEN}"
        user = "ops"
        accounts = ["acme"]
        "#
    )
    .parse()?;
    let handlers = pop::exec::inprocess::InProcessRuntime::new();
    handlers.register("thumbnail", |ctx| async move {
        Ok(json!({"file": ctx.payload()["in"].as_str().unwrap_or("?").replace(".jpg", ".png")}))
    });
    let data = tempfile::tempdir()?;
    let pop = Pop::builder()
        .sled_path(data.path())?
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(handlers))))
        .authorizer(Arc::new(auth.authorizer()?))
        .build()?;
    let template = Agenda {
        customer_id: Some("acme".into()),
        operations: vec![Operation { name: "thumb".into(), op_type: "thumbnail".into(), ..Default::default() }],
        ..Default::default()
    };
    pop::embedded::prepare(&pop, &[template]).await?; // pool, insight, customer
    pop.start_all(pop::embedded::worker());

    // The host's router, POP's API merged in, POP's web console nested at /ui (it calls the API at
    // `api_base`, here the same origin's /pop routes).
    let app = Router::new()
        .route("/app/health", get(|| async { "host app ok" }))
        .route("/app/thumbnails", post(make_thumbnail))
        .with_state(AppState { pop: pop.clone() })
        .merge(pop::http::router(pop.engine().clone(), ApiConfig::new(auth)));
    let app = console::nest(app, "/ui", ConsoleConfig { read_only: false, api_base: String::new() });

    // Serve on the runtime this function runs on, until `stop` fires.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pop::http::serve(listener, app, async {
        let _ = stopped.await;
    }));
    out.say(format!("serving the host app and POP's API on {base}"));

    // The host's own route (a plain HTTP client; POP's client installs the TLS provider reqwest needs).
    let api = pop::http::Client::new(&base)?.with_token(TOKEN);
    let http = reqwest::Client::new();
    let health = http.get(format!("{base}/app/health")).send().await?.text().await?;
    out.say(format!("GET /app/health -> {health}"));
    let submitted: Value =
        http.post(format!("{base}/app/thumbnails")).json(&json!({"file": "cat.jpg"})).send().await?.json().await?;
    let id = submitted["agendaId"].as_str().ok_or_else(|| format!("the host route answered {submitted}"))?.to_owned();
    out.say("POST /app/thumbnails -> an agenda was submitted");

    // A POP route: the progress, over HTTP with the token, until the agenda is complete.
    let progress = loop {
        let p = api.agenda_progress(&id).await?;
        if p.conclusion().is_some() {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let result = progress.operation_progress.first().and_then(|o| o.result_payload.clone()).unwrap_or_default();
    out.say(format!(
        "POP API, agenda progress (pop::http::Client) -> {} {result}",
        progress.processing_state_message.as_deref().unwrap_or("")
    ));
    let page = http.get(format!("{base}/ui")).send().await?;
    let (status, kind) = (page.status().as_u16(), page.headers().get("content-type").cloned());
    out.say(format!("GET /ui -> {status} {}", kind.as_ref().and_then(|k| k.to_str().ok()).unwrap_or("")));
    let unauthenticated = http.get(format!("{base}/pop/agenda/{id}")).send().await?.status();
    out.say(format!("GET /pop/agenda/{{id}} without a token -> {}", unauthenticated.as_u16()));

    // Graceful shutdown: stop serving (in-flight requests finish), then POP's loops.
    let _ = stop.send(());
    server.await??;
    pop.shutdown().await;
    out.say(format!("shut down cleanly; agenda succeeded: {}", progress.conclusion() == Some(Conclusion::Succeeded)));
    Ok(out)
}

/// Runs the example on stdout.
pub fn main() -> std::process::ExitCode {
    pop_examples::main_with("host_app", run)
}
