//! POP's API over HTTP.
//!
//! This crate puts a POP engine behind HTTP. Today it holds [`auth`]: who is calling, from the
//! request's headers, turned into a [`pop_core::authz::Principal`] by static tokens, JWTs (HS256 or
//! a JWKS file) or an API gateway's authorizer context, all chosen by one [`auth::AuthConfig`].
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

pub mod auth;
