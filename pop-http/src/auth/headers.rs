//! [`credentials`]: a request's headers → [`Credentials`].

use super::config::AuthConfig;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use pop_core::authz::Credentials;
use pop_core::error::{Error, Result};

const EXPECTED: &str = "expected `Bearer <token>` or `Basic <base64 of accountId:token>`";

/// The credentials a request presents:
///
/// * when `[gateway]` is configured and its header is present, the gateway's authorizer context
///   (a JSON object, see [`GatewayAuthorizer`](super::GatewayAuthorizer)) goes into
///   [`Credentials::context`] and the `Authorization` header is not read (the gateway checked it;
///   the original's internal clients send `Authorization: dummy-value` there);
/// * otherwise the token of `Authorization: Bearer <token>`, or of `Authorization: Basic
///   base64(<accountId>:<token>)` (the original web UI's form: the token is the password; the
///   account id is not used).
///
/// Without `[gateway]` the gateway header is ignored, whatever it holds. A malformed or repeated
/// `Authorization` header, or a malformed gateway header, is `Unauthorized` with a message saying
/// what is wrong (never echoing a secret).
pub fn credentials(headers: &HeaderMap, config: &AuthConfig) -> Result<Credentials> {
    let mut credentials = Credentials::default();
    if let Some(gateway) = &config.gateway {
        if let Some(value) = single(headers, gateway.header.as_str())? {
            let text = std::str::from_utf8(value)
                .map_err(|_| Error::Unauthorized(format!("header {}: not UTF-8", gateway.header)))?;
            credentials.context = super::gateway::context_from_json(&gateway.header, text)?;
            if !credentials.context.is_empty() {
                return Ok(credentials);
            }
        }
    }
    credentials.token = authorization_token(headers)?;
    Ok(credentials)
}

/// The one value of a header, refusing repeats.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(Error::Unauthorized(format!("several {name} headers: send one")));
    }
    Ok(Some(first.as_bytes()))
}

/// The token of the `Authorization` header, if there is one.
fn authorization_token(headers: &HeaderMap) -> Result<Option<String>> {
    let malformed = |what: &str| Error::Unauthorized(format!("malformed Authorization header: {what}; {EXPECTED}"));
    let Some(value) = single(headers, AUTHORIZATION.as_str())? else { return Ok(None) };
    let text = std::str::from_utf8(value).map_err(|_| malformed("not UTF-8"))?.trim();
    if text.is_empty() {
        return Err(malformed("empty"));
    }
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(malformed("Bearer without a token"));
        }
        if rest.contains(char::is_whitespace) {
            return Err(malformed("the Bearer token contains spaces"));
        }
        Ok(Some(rest.to_owned()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .or_else(|_| STANDARD_NO_PAD.decode(rest))
            .map_err(|_| malformed("the Basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed("the Basic credentials are not UTF-8"))?;
        let Some((_account, token)) = decoded.split_once(':') else {
            return Err(malformed("the Basic credentials have no `:` between account id and token"));
        };
        if token.is_empty() {
            return Err(malformed("the Basic credentials have an empty token (the password part)"));
        }
        Ok(Some(token.to_owned()))
    } else {
        Err(malformed("unsupported scheme"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AnonymousPolicy, GatewayConfig};
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn plain() -> AuthConfig {
        AuthConfig { anonymous: AnonymousPolicy::Allow, ..AuthConfig::default() }
    }

    fn with_gateway() -> AuthConfig {
        AuthConfig { gateway: Some(GatewayConfig::default()), ..plain() }
    }

    fn refused(h: &HeaderMap, config: &AuthConfig) -> String {
        match credentials(h, config) {
            Err(Error::Unauthorized(m)) => m,
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }

    #[test]
    fn bearer_and_basic() {
        let c = credentials(&headers(&[("authorization", "Bearer abc.def-123")]), &plain()).unwrap();
        assert_eq!(c.token.as_deref(), Some("abc.def-123"));
        assert!(c.context.is_empty());
        let c = credentials(&headers(&[("authorization", "bearer  tok ")]), &plain()).unwrap();
        assert_eq!(c.token.as_deref(), Some("tok"));

        let basic = format!("Basic {}", STANDARD.encode("acme:s3cret:with-colon"));
        let c = credentials(&headers(&[("authorization", &basic)]), &plain()).unwrap();
        assert_eq!(c.token.as_deref(), Some("s3cret:with-colon"));
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode("a:tok"));
        assert_eq!(
            credentials(&headers(&[("authorization", &unpadded)]), &plain()).unwrap().token.as_deref(),
            Some("tok")
        );

        assert!(credentials(&HeaderMap::new(), &plain()).unwrap().is_empty());
    }

    #[test]
    fn malformed_authorization() {
        let no_colon = format!("Basic {}", STANDARD.encode("just-a-token"));
        let empty_token = format!("Basic {}", STANDARD.encode("acme:"));
        for (value, needle) in [
            ("dummy-value", "unsupported scheme"),
            ("", "empty"),
            ("Bearer", "Bearer without a token"),
            ("Bearer   ", "Bearer without a token"),
            ("Bearer a b", "contains spaces"),
            ("Basic %%%", "not base64"),
            (no_colon.as_str(), "no `:`"),
            (empty_token.as_str(), "empty token"),
            ("Digest secret-stuff", "unsupported scheme"),
        ] {
            let m = refused(&headers(&[("authorization", value)]), &plain());
            assert!(m.starts_with("malformed Authorization header") && m.contains(needle), "{value}: {m}");
            assert!(!m.contains("secret-stuff"), "{m}");
        }
        let twice = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(refused(&twice, &plain()).contains("several authorization headers"));
    }

    #[test]
    fn gateway_header_only_when_configured() {
        let ctx = r#"{"userId": "u", "accounts": "a|b", "isSuperUser": false}"#;
        let h = headers(&[(crate::auth::DEFAULT_GATEWAY_HEADER, ctx), ("authorization", "dummy-value")]);

        // Not configured: the header is ignored, and the Authorization header is read (and refused here).
        assert!(refused(&h, &plain()).contains("unsupported scheme"));
        let only_ctx = headers(&[(crate::auth::DEFAULT_GATEWAY_HEADER, ctx)]);
        assert!(credentials(&only_ctx, &plain()).unwrap().is_empty());

        // Configured: the context is taken and the Authorization header is the gateway's business.
        let c = credentials(&h, &with_gateway()).unwrap();
        assert_eq!(c.token, None);
        assert_eq!(c.context.get("accounts").map(String::as_str), Some("a|b"));
        assert_eq!(c.context.get("userId").map(String::as_str), Some("u"));

        // Configured but absent (or empty): the Authorization header is read.
        let bearer = headers(&[("authorization", "Bearer t")]);
        assert_eq!(credentials(&bearer, &with_gateway()).unwrap().token.as_deref(), Some("t"));
        let empty = headers(&[(crate::auth::DEFAULT_GATEWAY_HEADER, "{}"), ("authorization", "Bearer t")]);
        assert_eq!(credentials(&empty, &with_gateway()).unwrap().token.as_deref(), Some("t"));

        // A custom header name, matched case-insensitively.
        let custom = AuthConfig { gateway: Some(GatewayConfig { header: "X-Gateway-Ctx".into() }), ..plain() };
        let c = credentials(&headers(&[("x-gateway-ctx", ctx)]), &custom).unwrap();
        assert_eq!(c.context.get("userId").map(String::as_str), Some("u"));

        let bad = headers(&[(crate::auth::DEFAULT_GATEWAY_HEADER, "nope")]);
        assert!(refused(&bad, &with_gateway()).contains("not JSON"));
    }
}
