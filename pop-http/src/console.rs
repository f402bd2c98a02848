//! The web console: a few static files (HTML, CSS, plain JavaScript modules, an SVG icon) compiled into
//! the binary, served by a router the host application mounts where it likes (`pop serve` mounts it at
//! `/ui`).
//!
//! The console holds no state and no privileges of its own: the person signs in with an API token
//! (kept in the tab's session storage) and every call goes to the HTTP API with that token, so the
//! console shows exactly what the API shows that caller. In read-only mode the console hides every
//! action that changes something; to also *block* them, point it ([`ConsoleConfig::api_base`]) at an
//! API router built with [`ApiConfig::read_only`](crate::ApiConfig::read_only), as `pop serve
//! --console read-only` does (it mounts a read-only API at `/ui/api`).
//!
//! ```no_run
//! # fn demo(engine: pop_engine::Engine, api: pop_http::ApiConfig) {
//! use pop_http::console::{self, ConsoleConfig};
//! let app = axum::Router::new()
//!     .merge(pop_http::router(engine, api))
//!     .nest("/ui", console::router(ConsoleConfig::default()));
//! // or, with `/ui/` redirected to `/ui`:
//! # let app = axum::Router::new();
//! let app = console::nest(app, "/ui", ConsoleConfig::default());
//! # let _ = app; }
//! ```

use axum::Router;
use axum::extract::{NestedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::sync::Arc;

/// How the console behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Hide every action that changes something (forms, submit, cancel, rerun, delete).
    pub read_only: bool,
    /// Where the API is, as a path prefix on the same origin (`""`: the API's routes are at `/pop/...`
    /// of the same server). Absolute URLs of other origins are not supported (the console sends its
    /// token only to its own origin).
    pub api_base: String,
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../console/app.js") },
    Asset { name: "api.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../console/api.js") },
    Asset { name: "dag.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../console/dag.js") },
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/views.js"),
    },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../console/style.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_bytes!("../console/icon.svg") },
];

const INDEX: &str = include_str!("../console/index.html");

/// What every answer of the console carries: no inline script, nothing from other origins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'none'";

/// Mounts the console at `path` (e.g. `/ui`) in `app`, and answers `path/` with a redirect to `path`
/// (an axum nest does not match the trailing slash).
pub fn nest(app: Router, path: &str, config: ConsoleConfig) -> Router {
    let path = format!("/{}", path.trim_matches('/'));
    let to = path.clone();
    app.nest(&path, router(config)).route(&format!("{path}/"), get(move || async move { Redirect::permanent(&to) }))
}

/// The console's router: `/` is the page, `/<file>` its assets. Nest it under any path (the page finds
/// its assets relative to where it is mounted).
pub fn router(config: ConsoleConfig) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/{file}", get(asset))
        .with_state(Arc::new(config))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

fn secured(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

async fn index(State(config): State<Arc<ConsoleConfig>>, req: Request) -> Response {
    // `<base href="/ui/">`: the assets' relative addresses resolve under the mount point whether the
    // page was asked for as `/ui` or `/ui/index.html`
    let base =
        req.extensions().get::<NestedPath>().map(|n| n.as_str().trim_end_matches('/').to_owned()).unwrap_or_default();
    let page = INDEX
        .replace("{{BASE}}", &escape(&format!("{base}/")))
        .replace("{{READ_ONLY}}", if config.read_only { "true" } else { "false" })
        .replace("{{API_BASE}}", &escape(config.api_base.trim_end_matches('/')));
    secured(page.into_response(), "text/html; charset=utf-8")
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => secured(a.body.into_response(), a.content_type),
        None => secured(
            (StatusCode::NOT_FOUND, format!("the console has no file {file}\n")).into_response(),
            "text/plain; charset=utf-8",
        ),
    }
}
