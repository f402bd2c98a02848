//! [`TokenAuthorizer`]: a fixed table of tokens (`[[tokens]]`), stored as SHA-256 digests and
//! compared in constant time.

use super::config::{ConfigErrors, TokenEntry};
use async_trait::async_trait;
use pop_core::authz::{Authorizer, Credentials, Principal};
use pop_core::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// How a token is written as its digest: `sha256:<64 hex digits>`.
pub(crate) const SHA256_PREFIX: &str = "sha256:";

type Sha256Digest = [u8; 32];

#[derive(Clone)]
struct Entry {
    digest: Sha256Digest,
    principal: Principal,
}

/// Static tokens → principals. Each token is kept only as its SHA-256 (a configuration may give
/// the digest itself, `sha256:<hex>`, so that it holds no secret); a presented token is hashed and
/// compared with every entry in constant time.
#[derive(Clone, Default)]
pub struct TokenAuthorizer {
    entries: Vec<Entry>,
}

impl TokenAuthorizer {
    /// An empty table (refuses every token).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token, written plainly or as `sha256:<64 hex digits>`.
    pub fn with_token(mut self, token: &str, principal: Principal) -> Result<Self> {
        let digest = parse_token(token).map_err(|e| Error::invalid(format!("static token: {e}")))?;
        self.entries.push(Entry { digest, principal });
        Ok(self)
    }

    /// The table of `[[tokens]]` entries; every problem is listed with its key (`tokens[2].token`).
    pub fn from_entries(entries: &[TokenEntry]) -> Result<Self> {
        let mut errors = ConfigErrors::new("static tokens");
        let table = parse_entries(entries, &mut errors);
        errors.into_result()?;
        Ok(table)
    }

    /// How to write `token` in a configuration without giving it away: `sha256:<hex>`.
    pub fn hashed(token: &str) -> String {
        let mut out = String::with_capacity(SHA256_PREFIX.len() + 64);
        out.push_str(SHA256_PREFIX);
        for b in Sha256::digest(token.as_bytes()) {
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
        out
    }

    /// How many tokens the table holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of `token`; `Unauthorized` when it is not in the table.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let digest: Sha256Digest = Sha256::digest(token.as_bytes()).into();
        // Every entry is compared, so the time taken does not say which one matched.
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found.map(|e| e.principal.clone()).ok_or_else(|| Error::Unauthorized("unknown token".into()))
    }
}

impl fmt::Debug for TokenAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthorizer").field("tokens", &self.entries.len()).finish()
    }
}

#[async_trait]
impl Authorizer for TokenAuthorizer {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal> {
        match &credentials.token {
            Some(token) => self.verify(token),
            None => Err(Error::Unauthorized("no token presented: send `Authorization: Bearer <token>`".into())),
        }
    }
}

/// The table of `entries`, reporting every problem to `errors`.
pub(crate) fn parse_entries(entries: &[TokenEntry], errors: &mut ConfigErrors) -> TokenAuthorizer {
    let mut table = TokenAuthorizer::new();
    let mut seen: Vec<(Sha256Digest, usize)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let user = entry.user.trim();
        if user.is_empty() {
            errors.key(&format!("tokens[{i}].user"), "must not be empty (it names the caller in logs)");
        }
        match parse_token(&entry.token) {
            Err(e) => errors.key(&format!("tokens[{i}].token"), e),
            Ok(digest) => {
                if let Some((_, first)) = seen.iter().find(|(d, _)| *d == digest) {
                    errors.key(&format!("tokens[{i}].token"), format_args!("the same token as tokens[{first}]"));
                } else {
                    seen.push((digest, i));
                    let principal = super::principal(user, entry.accounts.accounts(), entry.superuser);
                    table.entries.push(Entry { digest, principal });
                }
            }
        }
    }
    table
}

/// The digest of a token written plainly or as `sha256:<hex>`.
fn parse_token(token: &str) -> std::result::Result<Sha256Digest, String> {
    if token.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(hex) = token.strip_prefix(SHA256_PREFIX) {
        return parse_hex_digest(hex).ok_or_else(|| {
            format!(
                "after `{SHA256_PREFIX}` write the 64 hex digits of the token's SHA-256 \
                 (e.g. `printf %s \"$TOKEN\" | sha256sum`); found {} characters",
                hex.chars().count()
            )
        });
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters (it could not be sent in a header)".into());
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}

fn parse_hex_digest(hex: &str) -> Option<Sha256Digest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::StringOrList;

    fn entry(token: &str, user: &str, accounts: StringOrList, superuser: bool) -> TokenEntry {
        TokenEntry { token: token.into(), user: user.into(), accounts, superuser }
    }

    #[tokio::test]
    async fn plain_and_hashed_tokens() {
        let hashed = TokenAuthorizer::hashed("ci-token-0123456789abcdef");
        assert_eq!(hashed, "sha256:e202c13a9341f2216ea6ae595534d8706be411253bbbae86b7d5205aeb7504b3");
        let table = TokenAuthorizer::from_entries(&[
            entry(
                &hashed.to_uppercase().replace("SHA256:", "sha256:"),
                "ci",
                StringOrList::One("acme|globex".into()),
                false,
            ),
            entry("plain-token", "ops", StringOrList::List(vec!["*".into()]), false),
            entry("root-token", "root", StringOrList::default(), true),
        ])
        .unwrap();
        assert_eq!(table.len(), 3);

        let ci = table.authenticate(&Credentials::token("ci-token-0123456789abcdef")).await.unwrap();
        assert_eq!(ci, Principal::customer("ci", ["acme", "globex"]));
        let ops = table.authenticate(&Credentials::token("plain-token")).await.unwrap();
        assert!(ops.superuser && ops.accounts.is_empty() && ops.user_id == "ops");
        assert!(table.verify("root-token").unwrap().superuser);

        // The digest itself is not a token.
        for refused in [
            hashed.as_str(),
            "e202c13a9341f2216ea6ae595534d8706be411253bbbae86b7d5205aeb7504b3",
            "plain-token ",
            "nope",
        ] {
            let err = table.verify(refused).unwrap_err();
            assert!(matches!(&err, Error::Unauthorized(m) if m == "unknown token"), "{refused}: {err}");
        }
        let err = table.authenticate(&Credentials::default()).await.unwrap_err();
        assert!(matches!(&err, Error::Unauthorized(m) if m.contains("no token")), "{err}");
    }

    #[test]
    fn builder_and_bad_specs() {
        let table = TokenAuthorizer::new().with_token("t", Principal::customer("u", ["a"])).unwrap();
        assert_eq!(table.verify("t").unwrap().user_id, "u");
        assert!(format!("{table:?}").contains("tokens: 1"));
        for bad in ["", "sha256:12", "sha256:zz02c13a9341f2216ea6ae595534d8706be411253bbbae86b7d5205aeb7504b3", "a b"] {
            let err = TokenAuthorizer::new().with_token(bad, Principal::anonymous()).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{bad:?}");
        }
        let err = TokenAuthorizer::from_entries(&[
            entry("x", "u", StringOrList::default(), false),
            entry("x", " ", StringOrList::default(), false),
        ])
        .unwrap_err();
        let fields: Vec<_> = err.problem_list().iter().filter_map(|p| p.field.as_deref()).collect();
        assert_eq!(fields, ["tokens[1].user", "tokens[1].token"], "{err}");
        assert!(err.to_string().contains("the same token as tokens[0]"), "{err}");
    }
}
