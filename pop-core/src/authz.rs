//! Authentication: credentials → [`Principal`], and a static-token [`Authorizer`].

use crate::error::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Who is calling: a user, the customer accounts it acts for, and whether it is a superuser.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// The user id (for logs).
    pub user_id: String,
    /// Customer ids the caller acts for.
    pub accounts: BTreeSet<String>,
    /// Sees and may do everything (the original's global visibility).
    pub superuser: bool,
}

impl Principal {
    /// A caller with no accounts: sees nothing.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A superuser (the service identity of the instance itself).
    pub fn superuser(user_id: impl Into<String>) -> Self {
        Self { user_id: user_id.into(), accounts: BTreeSet::new(), superuser: true }
    }

    /// A user acting for these customer accounts.
    pub fn customer<I, S>(user_id: impl Into<String>, accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { user_id: user_id.into(), accounts: accounts.into_iter().map(Into::into).collect(), superuser: false }
    }

    /// Whether the caller acts for `customer_id` (or is a superuser).
    pub fn acts_for(&self, customer_id: &str) -> bool {
        self.superuser || self.accounts.contains(customer_id)
    }
}

/// Credentials presented by a caller: a token it sent, and attributes of the request that a trusted
/// front end vouches for.
///
/// `context` is for a front end that has already authenticated the caller, such as an API gateway's
/// authorizer context (`userId`, `userName`, `accounts`, `isSuperUser` in the original POP). Whoever
/// fills it must be trusted: an authorizer that reads it believes it. An HTTP server fills it only
/// from headers it was configured to trust, and a gateway in front of it must strip copies of those
/// headers sent by clients.
///
/// `Debug` does not print the token.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// A bearer token, if any.
    pub token: Option<String>,
    /// Request attributes vouched for by a trusted front end (empty when there is none).
    pub context: BTreeMap<String, String>,
}

impl Credentials {
    /// Credentials with a bearer token.
    pub fn token(token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), context: BTreeMap::new() }
    }

    /// Credentials made of a trusted front end's context alone (no token).
    pub fn from_context<I, K, V>(context: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self { token: None, context: context.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Adds (or replaces) one context attribute.
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// Whether the caller presented nothing: no token and no context.
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.context.is_empty()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("context", &self.context)
            .finish()
    }
}

/// Turns credentials into a principal.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// The principal for `credentials`; `Unauthorized` when they are unknown.
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal>;
}

/// A fixed table of tokens, for embedding and tests. Without a token the caller is anonymous (sees
/// nothing) unless anonymous access is refused.
#[derive(Debug, Clone, Default)]
pub struct StaticTokenAuthorizer {
    tokens: HashMap<String, Principal>,
    refuse_anonymous: bool,
}

impl StaticTokenAuthorizer {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token.
    pub fn with_token(mut self, token: impl Into<String>, principal: Principal) -> Self {
        self.tokens.insert(token.into(), principal);
        self
    }

    /// Refuses callers without a token (`Unauthorized`) instead of treating them as anonymous.
    pub fn refuse_anonymous(mut self) -> Self {
        self.refuse_anonymous = true;
        self
    }
}

#[async_trait]
impl Authorizer for StaticTokenAuthorizer {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal> {
        match &credentials.token {
            None if self.refuse_anonymous => Err(Error::Unauthorized("no token presented".into())),
            None => Ok(Principal::anonymous()),
            Some(t) => self.tokens.get(t).cloned().ok_or_else(|| Error::Unauthorized("unknown token".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_tokens() {
        let a = StaticTokenAuthorizer::new().with_token("t1", Principal::customer("u", ["c1"]));
        assert_eq!(a.authenticate(&Credentials::token("t1")).await.unwrap().accounts.len(), 1);
        assert!(matches!(a.authenticate(&Credentials::token("nope")).await, Err(Error::Unauthorized(_))));
        assert_eq!(a.authenticate(&Credentials::default()).await.unwrap(), Principal::anonymous());
        let strict = a.refuse_anonymous();
        assert!(matches!(strict.authenticate(&Credentials::default()).await, Err(Error::Unauthorized(_))));
    }

    #[test]
    fn credentials_builders_and_redacted_debug() {
        let c = Credentials::token("s3cret").with_context("userId", "u1").with_context("accounts", "a|b");
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.context.get("accounts").map(String::as_str), Some("a|b"));
        assert!(!c.is_empty());
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("<redacted>") && debug.contains("userId"), "{debug}");

        let ctx = Credentials::from_context([("userId", "u2")]);
        assert_eq!(ctx.token, None);
        assert_eq!(ctx.context.len(), 1);
        assert!(!ctx.is_empty());
        assert!(Credentials::default().is_empty());
    }
}
