//! [`ChainAuthorizer`]: gateway context, else JWT, else static tokens, else the anonymous policy.

use super::config::{AnonymousPolicy, AuthConfig, ConfigErrors};
use super::gateway::GatewayAuthorizer;
use super::jwt::JwtAuthorizer;
use super::tokens::{TokenAuthorizer, parse_entries};
use async_trait::async_trait;
use pop_core::authz::{Authorizer, Credentials, Principal};
use pop_core::error::{Error, Result};

/// The authorizer of an [`AuthConfig`]: for each request, the first that applies of
///
/// 1. the gateway context, when `[gateway]` is configured and the credentials carry a context;
/// 2. the JWT authorizer, when `[jwt]` is configured and the token looks like a JWT;
/// 3. the static tokens, when there is a token (refused when none are configured);
/// 4. no credentials at all: the anonymous policy (`deny` → `Unauthorized`, `allow` →
///    [`Principal::anonymous`], which sees nothing).
///
/// The authorizer chosen decides alone: a JWT that fails is not tried as a static token.
#[derive(Debug)]
pub struct ChainAuthorizer {
    anonymous: AnonymousPolicy,
    gateway: Option<GatewayAuthorizer>,
    jwt: Option<JwtAuthorizer>,
    tokens: Option<TokenAuthorizer>,
}

impl ChainAuthorizer {
    /// A chain with no authorizer yet: only the anonymous policy applies.
    pub fn new(anonymous: AnonymousPolicy) -> Self {
        Self { anonymous, gateway: None, jwt: None, tokens: None }
    }

    /// Believes the gateway context of the credentials (see [`GatewayAuthorizer`]).
    pub fn with_gateway(mut self) -> Self {
        self.gateway = Some(GatewayAuthorizer::new());
        self
    }

    /// Verifies tokens that look like JWTs.
    pub fn with_jwt(mut self, jwt: JwtAuthorizer) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// Looks other tokens up in a static table.
    pub fn with_tokens(mut self, tokens: TokenAuthorizer) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The chain `config` describes; reads the secret and JWKS files it names. Every problem is
    /// listed, naming the configuration file and the key.
    pub fn from_config(config: &AuthConfig) -> Result<Self> {
        config.validate()?;
        let mut errors = ConfigErrors::new(config.label());
        let mut chain = Self::new(config.anonymous);
        if config.gateway.is_some() {
            chain = chain.with_gateway();
        }
        if let Some(jwt) = &config.jwt {
            chain.jwt = JwtAuthorizer::build(jwt, &|p| config.resolve(p), &mut errors);
        }
        if !config.tokens.is_empty() {
            chain.tokens = Some(parse_entries(&config.tokens, &mut errors));
        }
        errors.into_result()?;
        Ok(chain)
    }
}

#[async_trait]
impl Authorizer for ChainAuthorizer {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal> {
        if self.gateway.is_some() && !credentials.context.is_empty() {
            return GatewayAuthorizer::principal(&credentials.context);
        }
        let Some(token) = &credentials.token else {
            return match self.anonymous {
                AnonymousPolicy::Allow => Ok(Principal::anonymous()),
                AnonymousPolicy::Deny => {
                    Err(Error::Unauthorized("no credentials: send `Authorization: Bearer <token>`".into()))
                }
            };
        };
        match (&self.jwt, &self.tokens) {
            (Some(jwt), _) if super::looks_like_jwt(token) => jwt.verify(token),
            (_, Some(tokens)) => tokens.verify(token),
            (Some(_), None) => {
                Err(Error::Unauthorized("the token is not a JWT (and no static tokens are accepted here)".into()))
            }
            (None, None) => Err(Error::Unauthorized(if self.gateway.is_some() {
                "bearer tokens are not accepted here: callers authenticate through the API gateway".into()
            } else {
                "bearer tokens are not accepted here (no [jwt] or [[tokens]] configured)".into()
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testutil::{JWKS, SECRET, hs256, now, rs256};
    use crate::auth::{DEFAULT_GATEWAY_HEADER, credentials};
    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    fn full_config(anonymous: &str) -> AuthConfig {
        format!(
            r#"
            anonymous = "{anonymous}"
            [gateway]
            [jwt]
            audience = "pop-api"
            hs256_secret = "{SECRET}"
            jwks_file = "{JWKS}"
            [[tokens]]
            token = "{}"
            user = "ci"
            accounts = "acme|globex"
            "#,
            TokenAuthorizer::hashed("static-token")
        )
        .parse()
        .unwrap()
    }

    async fn who(chain: &ChainAuthorizer, credentials: &Credentials) -> Result<Principal> {
        chain.authenticate(credentials).await
    }

    #[tokio::test]
    async fn precedence() {
        let chain = full_config("deny").authorizer().unwrap();
        let jwt = hs256(&json!({"sub": "jay", "aud": "pop-api", "exp": now() + 60, "accounts": ["j"]}));

        // 1. A gateway context wins over any token.
        let gw = Credentials::token(jwt.clone()).with_context("userId", "gw-user").with_context("accounts", "a|b");
        assert_eq!(who(&chain, &gw).await.unwrap(), Principal::customer("gw-user", ["a", "b"]));
        let star = Credentials::from_context([("userId", "root"), ("accounts", "*")]);
        assert!(who(&chain, &star).await.unwrap().superuser);

        // 2. A JWT-looking token goes to the JWT authorizer.
        assert_eq!(who(&chain, &Credentials::token(jwt)).await.unwrap(), Principal::customer("jay", ["j"]));
        let rs = rs256(&json!({"sub": "rs", "aud": "pop-api", "exp": now() + 60}), Some("test-k2"), 2);
        assert_eq!(who(&chain, &Credentials::token(rs)).await.unwrap().user_id, "rs");
        let expired = hs256(&json!({"sub": "jay", "aud": "pop-api", "exp": now() - 3_600}));
        let err = who(&chain, &Credentials::token(expired)).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.starts_with("token expired at")), "{err}");

        // 3. Anything else is a static token.
        assert_eq!(
            who(&chain, &Credentials::token("static-token")).await.unwrap(),
            Principal::customer("ci", ["acme", "globex"])
        );
        let err = who(&chain, &Credentials::token("unknown")).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m == "unknown token"), "{err}");

        // 4. Nothing: the anonymous policy.
        let err = who(&chain, &Credentials::default()).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.starts_with("no credentials")), "{err}");
        let open = full_config("allow").authorizer().unwrap();
        assert_eq!(who(&open, &Credentials::default()).await.unwrap(), Principal::anonymous());
    }

    #[tokio::test]
    async fn context_ignored_without_gateway_and_partial_chains() {
        let forged = Credentials::from_context([("userId", "root"), ("isSuperUser", "true")]);
        let tokens_only: AuthConfig = "[[tokens]]\ntoken = \"t\"\nuser = \"u\"".parse().unwrap();
        let chain = tokens_only.authorizer().unwrap();
        let err = who(&chain, &forged).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.starts_with("no credentials")), "{err}");
        // Without [jwt], a JWT-looking token is just an unknown static token.
        let jwt = hs256(&json!({"sub": "jay", "aud": "pop-api", "exp": now() + 60}));
        assert!(
            matches!(who(&chain, &Credentials::token(jwt)).await, Err(Error::Unauthorized(m)) if m == "unknown token")
        );

        let jwt_only: AuthConfig =
            format!("[jwt]\naudience = \"pop-api\"\nhs256_secret = \"{SECRET}\"").parse().unwrap();
        let chain = jwt_only.authorizer().unwrap();
        let err = who(&chain, &Credentials::token("plain")).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.contains("not a JWT")), "{err}");

        let gateway_only: AuthConfig = "anonymous = \"allow\"\n[gateway]".parse().unwrap();
        let chain = gateway_only.authorizer().unwrap();
        assert_eq!(who(&chain, &Credentials::default()).await.unwrap(), Principal::anonymous());
        let err = who(&chain, &Credentials::token("t")).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.contains("API gateway")), "{err}");

        let built = ChainAuthorizer::new(AnonymousPolicy::Deny)
            .with_tokens(TokenAuthorizer::new().with_token("t", Principal::superuser("svc")).unwrap());
        assert!(who(&built, &Credentials::token("t")).await.unwrap().superuser);
    }

    #[tokio::test]
    async fn from_headers_to_principal() {
        let config = full_config("deny");
        let chain = config.authorizer().unwrap();
        let mut h = HeaderMap::new();
        h.insert(DEFAULT_GATEWAY_HEADER, HeaderValue::from_static(r#"{"userId":"u","accounts":"a|b"}"#));
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("dummy-value"));
        let p = who(&chain, &credentials(&h, &config).unwrap()).await.unwrap();
        assert_eq!(p, Principal::customer("u", ["a", "b"]));

        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Basic YWNtZTpzdGF0aWMtdG9rZW4=")); // acme:static-token
        let p = who(&chain, &credentials(&h, &config).unwrap()).await.unwrap();
        assert_eq!(p.user_id, "ci");
    }

    #[test]
    fn build_errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(
            &path,
            "[jwt]\naudience = \"a\"\nhs256_secret_file = \"secret.txt\"\njwks_file = \"jwks.json\"\n",
        )
        .unwrap();
        let config = AuthConfig::from_path(&path).unwrap();
        let err = config.authorizer().unwrap_err();
        let fields: Vec<_> = err.problem_list().iter().filter_map(|p| p.field.as_deref()).collect();
        assert_eq!(fields, ["jwt.hs256_secret_file", "jwt.jwks_file"], "{err}");
        for p in err.problem_list() {
            assert!(p.message.starts_with(&format!("auth config {}: key `", path.display())), "{}", p.message);
        }
        // Relative to the configuration file, not the working directory.
        assert!(err.to_string().contains(&dir.path().join("secret.txt").display().to_string()), "{err}");

        std::fs::write(dir.path().join("secret.txt"), format!("{SECRET}\n")).unwrap();
        std::fs::copy(JWKS, dir.path().join("jwks.json")).unwrap();
        let chain = config.authorizer().unwrap();
        assert!(format!("{chain:?}").contains("test-k1"));
    }

    /// The example configuration in the module docs parses, builds and authenticates.
    #[tokio::test]
    async fn documented_example() {
        let docs = include_str!("mod.rs");
        let start = docs.find("//! ```toml\n").expect("example in the docs") + "//! ```toml\n".len();
        let end = start + docs[start..].find("//! ```\n").expect("end of the example");
        let toml: String = docs[start..end]
            .lines()
            .map(|l| l.strip_prefix("//!").unwrap_or(l).trim_start_matches(' '))
            .map(|l| format!("{l}\n"))
            .collect();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, &toml).unwrap();
        std::fs::write(dir.path().join("jwt-secret"), SECRET).unwrap();
        std::fs::copy(JWKS, dir.path().join("jwks.json")).unwrap();
        let config = AuthConfig::from_path(&path).unwrap();
        assert!(config.gateway.is_some() && config.jwt.is_some() && config.tokens.len() == 2);
        let chain = config.authorizer().unwrap();

        let ci = who(&chain, &Credentials::token("ci-token-0123456789abcdef")).await.unwrap();
        assert_eq!(ci, Principal::customer("ci", ["acme", "globex"]));
        assert!(who(&chain, &Credentials::token("worker-token-0123456789abcdef")).await.unwrap().superuser);
        let jwt = hs256(&json!({"sub": "d", "aud": "pop-api", "iss": "https://login.example.com/", "exp": now() + 60}));
        assert_eq!(who(&chain, &Credentials::token(jwt)).await.unwrap().user_id, "d");
        assert!(who(&chain, &Credentials::default()).await.is_err());
    }
}
