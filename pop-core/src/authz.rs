//! Authentication: credentials → [`Principal`], and a static-token [`Authorizer`].

use crate::error::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

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

/// Credentials presented by a caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// A bearer token, if any.
    pub token: Option<String>,
}

impl Credentials {
    /// Credentials with a bearer token.
    pub fn token(token: impl Into<String>) -> Self {
        Self { token: Some(token.into()) }
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
}
