//! # pop-http: POP's API over HTTP
//!
//! This crate puts a POP [`Engine`](pop_engine::Engine) behind HTTP (axum + tower-http), and calls
//! it from elsewhere:
//!
//! * [`router`]: the original POP's routes and envelopes — data-object CRUD for every kind with the
//!   `by<field>` queries, `{all, count}` answers and the original's cascades; the agenda services
//!   (`run`, `rerun`, `cancel`, `createAgenda`), the progress summary, the resource-pool services
//!   (`getAgenda`, `updateAgendaProgress`, `updateAgenda`) — plus POP's additions: lease tokens that
//!   fence every pool write, `finishAgenda` and `extendLease`, cursors, `explain`, `graph`,
//!   `validate`, `/openapi.json`, `/healthz`, `/readyz`, `/metrics`. Every route goes through the
//!   engine's services with the caller's principal: the library's visibility rules, one path.
//! * [`auth`]: who is calling, from the request's headers (static tokens, JWTs with HS256 or a JWKS
//!   file, an API gateway's authorizer context), all chosen by one [`auth::AuthConfig`].
//! * [`alerts::WebhookSink`]: the engine's alerts (an agenda failed for good, a pool that stopped
//!   pulling) as JSON POSTs to a webhook (Slack-compatible).
//! * [`console`]: the web console — static files compiled into the crate, a router to mount at `/ui`;
//!   it calls the API with the signed-in caller's token (plus the routes it watches: the progress
//!   event stream, queue statistics, an operation's resolved payload).
//! * [`client::Client`]: a typed client of every route; it is also a
//!   [`PoolApi`](pop_engine::PoolApi), so a pool worker on another machine runs agendas through it.
//!
//! Errors have the status their kind calls for (404, 409, 401, 403, 422, 413, 408, 503) and the
//! original's envelope `{"errorResponse": {title, description, responseCode, correlationId}}`
//! with every problem listed. `X-pop-cid` is accepted and echoed; every request runs in a tracing
//! span with its request id.
//!
//! Authentication alone:
//!
//! ```
//! use pop_core::authz::Authorizer;
//! use pop_http::auth::{credentials, AuthConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pop_core::Result<()> {
//! let config: AuthConfig = r#"
//!     anonymous = "deny"
//!     [[tokens]]
//!     token = "a-long-random-token"
//!     user = "ci"
//!     accounts = ["acme"]
//! "#
//! .parse()?;
//! let authorizer = config.authorizer()?;
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer a-long-random-token"));
//! let principal = authorizer.authenticate(&credentials(&headers, &config)?).await?;
//! assert!(principal.acts_for("acme"));
//! # Ok(())
//! # }
//! ```

pub mod alerts;
pub mod auth;
pub mod client;
mod config;
pub mod console;
pub mod dto;
mod error;
mod extract;
#[cfg(test)]
mod fuzz;
mod openapi;
mod routes;
mod serve;
mod state;
mod strict;

pub use client::Client;
pub use config::{ApiConfig, EventStreams};
pub use error::{ApiError, ErrorBody, ErrorResponse};
pub use openapi::document as openapi_document;
pub use routes::{CID_HEADER, REQUEST_ID_HEADER, router};
pub use serve::{ServeConfig, serve, serve_with};
