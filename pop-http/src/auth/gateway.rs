//! [`GatewayAuthorizer`]: believes the principal that a trusted API gateway has already verified
//! (the original POP's authorizer context).

use super::config::ConfigErrors;
use async_trait::async_trait;
use pop_core::authz::{Authorizer, Credentials, Principal};
use pop_core::error::{Error, Result};
use std::collections::BTreeMap;

/// The header that carries the gateway's context unless configured otherwise.
pub const DEFAULT_GATEWAY_HEADER: &str = "x-pop-authorizer-context";
/// Context key: the user id.
pub const CONTEXT_USER_ID: &str = "userId";
/// Context key: the user name (the user id when `userId` is absent).
pub const CONTEXT_USER_NAME: &str = "userName";
/// Context key: the accounts, `|`-separated; `*` makes a superuser.
pub const CONTEXT_ACCOUNTS: &str = "accounts";
/// Context key: `true` makes a superuser.
pub const CONTEXT_IS_SUPER_USER: &str = "isSuperUser";

/// The principal in [`Credentials::context`], as the original POP read its API Gateway authorizer
/// context: `userId` (or `userName`), `accounts` split on `|`, superuser when `isSuperUser` is
/// `true` or an account is `*`. Empty context → [`Principal::anonymous`], which sees nothing.
///
/// The token is not looked at: the gateway checked it. Only use this behind a gateway that strips
/// client-supplied copies of the context (see the [module docs](super)).
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayAuthorizer;

impl GatewayAuthorizer {
    /// The authorizer (it has no state).
    pub fn new() -> Self {
        Self
    }

    /// The principal of a gateway context; `Unauthorized` when the context is not one a gateway
    /// should send (no user id, `isSuperUser` neither `true` nor `false`).
    pub fn principal(context: &BTreeMap<String, String>) -> Result<Principal> {
        if context.is_empty() {
            return Ok(Principal::anonymous());
        }
        let non_blank = |key: &str| context.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let user = non_blank(CONTEXT_USER_ID).or_else(|| non_blank(CONTEXT_USER_NAME)).ok_or_else(|| {
            Error::Unauthorized(format!(
                "the gateway's authorizer context has no `{CONTEXT_USER_ID}` (nor `{CONTEXT_USER_NAME}`); keys present: {}",
                context.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let superuser = match non_blank(CONTEXT_IS_SUPER_USER) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(Error::Unauthorized(format!(
                    "the gateway's authorizer context has `{CONTEXT_IS_SUPER_USER}` = `{v}`: expected true or false"
                )));
            }
        };
        let accounts = context.get(CONTEXT_ACCOUNTS).map(String::as_str).unwrap_or("");
        Ok(super::principal(user, super::split_accounts(accounts), superuser))
    }
}

#[async_trait]
impl Authorizer for GatewayAuthorizer {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal> {
        Self::principal(&credentials.context)
    }
}

/// The context carried by the gateway header: a JSON object whose values become strings (as an API
/// Gateway authorizer context's do): strings as they are, numbers and booleans written out, a list
/// of strings joined with `|`; `null` is left out.
pub(crate) fn context_from_json(header: &str, value: &str) -> Result<BTreeMap<String, String>> {
    let refuse = |what: String| Error::Unauthorized(format!("header {header}: {what}"));
    let parsed: serde_json::Value = serde_json::from_str(value)
        .map_err(|e| refuse(format!("not JSON ({e}); expected the gateway's authorizer context")))?;
    let serde_json::Value::Object(object) = parsed else {
        return Err(refuse("expected a JSON object {\"userId\", \"userName\", \"accounts\", \"isSuperUser\"}".into()));
    };
    let mut context = BTreeMap::new();
    for (key, value) in object {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        serde_json::Value::String(s) if !s.contains('|') => parts.push(s),
                        other => {
                            return Err(refuse(format!(
                                "`{key}`: expected a list of strings without `|`, found {other}"
                            )));
                        }
                    }
                }
                parts.join("|")
            }
            serde_json::Value::Object(_) => {
                return Err(refuse(format!(
                    "`{key}`: expected a string, number, boolean or list of strings, found an object"
                )));
            }
        };
        context.insert(key, text);
    }
    Ok(context)
}

/// Checks a configured header name.
pub(crate) fn check_header(name: &str, key: &str, errors: &mut ConfigErrors) {
    if name.eq_ignore_ascii_case(http::header::AUTHORIZATION.as_str()) {
        errors.key(key, "must not be Authorization (that header carries the caller's own credentials)");
    } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        errors.key(key, format_args!("`{name}` is not a valid HTTP header name"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Credentials {
        Credentials::from_context(pairs.iter().copied())
    }

    #[tokio::test]
    async fn original_context() {
        let a = GatewayAuthorizer::new();
        let p = a
            .authenticate(&ctx(&[
                ("userId", "u1"),
                ("userName", "Ursula"),
                ("accounts", "a|b"),
                ("isSuperUser", "false"),
            ]))
            .await
            .unwrap();
        assert_eq!(p, Principal::customer("u1", ["a", "b"]));
        assert!(p.acts_for("a") && p.acts_for("b") && !p.acts_for("c"));

        let star = a.authenticate(&ctx(&[("userName", "ops"), ("accounts", "*")])).await.unwrap();
        assert!(star.superuser && star.accounts.is_empty() && star.user_id == "ops");
        let flag = a.authenticate(&ctx(&[("userId", "svc"), ("isSuperUser", "TRUE")])).await.unwrap();
        assert!(flag.superuser);

        // No context: anonymous, sees nothing (the token is not looked at).
        let anon = a.authenticate(&Credentials::token("whatever")).await.unwrap();
        assert_eq!(anon, Principal::anonymous());
        assert!(!anon.acts_for("a"));
    }

    #[tokio::test]
    async fn refused_contexts() {
        let a = GatewayAuthorizer::new();
        let err = a.authenticate(&ctx(&[("accounts", "a")])).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.contains("no `userId`") && m.contains("accounts")), "{err}");
        let err = a.authenticate(&ctx(&[("userId", "u"), ("isSuperUser", "yes")])).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.contains("`yes`")), "{err}");
    }

    #[test]
    fn json_header_to_context() {
        let c = context_from_json(
            "x-ctx",
            r#"{"userId":"u","accounts":["a","b"],"isSuperUser":false,"n":3,"userName":null}"#,
        )
        .unwrap();
        assert_eq!(c.get("accounts").map(String::as_str), Some("a|b"));
        assert_eq!(c.get("isSuperUser").map(String::as_str), Some("false"));
        assert_eq!(c.get("n").map(String::as_str), Some("3"));
        assert!(!c.contains_key("userName"));
        for (bad, needle) in [
            ("not json", "not JSON"),
            ("[1]", "JSON object"),
            (r#"{"accounts":["a|b"]}"#, "without `|`"),
            (r#"{"accounts":{}}"#, "found an object"),
        ] {
            let err = context_from_json("x-ctx", bad).unwrap_err();
            assert!(
                matches!(&err, Error::Unauthorized(m) if m.contains("x-ctx") && m.contains(needle)),
                "{bad}: {err}"
            );
        }
    }
}
