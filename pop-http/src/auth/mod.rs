//! Authentication: who is calling, from an HTTP request, as a [`Principal`].
//!
//! Every route turns the request's headers into [`Credentials`](pop_core::authz::Credentials) with
//! [`credentials`] and hands them to an [`Authorizer`](pop_core::authz::Authorizer): usually the
//! [`ChainAuthorizer`] built from one [`AuthConfig`] file. What the principal may then see and
//! change is decided by `pop_core::visibility` (the original POP's rules: a superuser sees
//! everything, anyone else the objects of the customer accounts it acts for; a caller with no
//! accounts sees nothing).
//!
//! Three ways to authenticate, tried in this order:
//!
//! 1. **API gateway context** ([`GatewayAuthorizer`], section `[gateway]`): a gateway (for example
//!    AWS API Gateway with a custom authorizer, as the original POP ran) has already verified the
//!    caller and forwards the result in a header, as the JSON object
//!    `{"userId", "userName", "accounts", "isSuperUser"}` of the original's authorizer context:
//!    `accounts` is `|`-separated (`"acme|globex"`) or a JSON array, an account `*` or
//!    `isSuperUser: true` makes a superuser. Used when `[gateway]` is configured and the header is
//!    present; the `Authorization` header is then the gateway's business and is not read.
//!    **The server believes this header**: configure it only behind a gateway that removes any copy
//!    of it sent by a client and sets its own. Without `[gateway]` the header is ignored.
//! 2. **JWT** ([`JwtAuthorizer`], section `[jwt]`): a bearer token that looks like a JWT
//!    (`xxx.yyy.zzz`) is verified with an HS256 shared secret or, for RS256 (and the other
//!    asymmetric algorithms), with the key of the JWKS file whose `kid` the token names. `exp` and
//!    `aud` are required and checked (`iss` when `issuer` is set, `nbf` when present), with
//!    `leeway_seconds` of clock skew. The user id is the `user_claim` (default `sub`), the accounts
//!    the `accounts_claim` (a JSON array or a `|`-separated string), superuser the boolean
//!    `superuser_claim` (default `isSuperUser`) or an account `*`.
//! 3. **Static tokens** ([`TokenAuthorizer`], `[[tokens]]`): a fixed table of tokens, each naming its
//!    user, accounts and whether it is a superuser. Write `token = "sha256:<64 hex digits>"` (the
//!    SHA-256 of the token, e.g. `printf %s "$TOKEN" | sha256sum`) so the file holds no secret;
//!    plain tokens are accepted too. Tokens are compared in constant time. A static token must not
//!    look like a JWT when `[jwt]` is configured (it would be checked as one).
//!
//! A request with none of these gets the `anonymous` policy: `"deny"` (the default) refuses it
//! with `Unauthorized` (HTTP 401), `"allow"` lets it in as [`Principal::anonymous`], which sees
//! nothing (the original's behaviour without an authorizer context).
//!
//! Tokens arrive as `Authorization: Bearer <token>` or, as the original web UI sends them,
//! `Authorization: Basic base64(<accountId>:<token>)`: the token is the password part (the account
//! id is not used: the token alone says who the caller is). Every refusal is
//! `pop_core::Error::Unauthorized` with a message saying why (malformed token, bad signature,
//! expired at a time, wrong audience, unknown `kid`, unknown token, ...).
//!
//! # A complete configuration
//!
//! TOML (`AuthConfig::from_path("auth.toml")`); JSON with the same keys works too (a `.json` file,
//! or any text starting with `{`). Relative paths are relative to the configuration file.
//!
//! ```toml
//! # Callers without credentials: "deny" (401) or "allow" (anonymous, sees nothing).
//! anonymous = "deny"
//!
//! # Trust the API gateway's authorizer context in this header (the gateway must strip the copy
//! # a client sends). Omit the section when there is no such gateway.
//! [gateway]
//! header = "x-pop-authorizer-context"
//!
//! [jwt]
//! audience = "pop-api"                     # or a list: ["pop-api", "pop-console"]
//! issuer = "https://login.example.com/"    # optional; a string or a list
//! leeway_seconds = 30                      # clock skew allowed on exp and nbf (at most 600)
//! user_claim = "sub"                       # the user id
//! accounts_claim = "accounts"              # ["acme", "globex"] or "acme|globex"
//! superuser_claim = "isSuperUser"          # a boolean claim
//! hs256_secret_file = "jwt-secret"         # HS256 (at least 32 bytes), or inline: hs256_secret = "..."
//! jwks_file = "jwks.json"                  # RS256 & co: public keys selected by the token's kid
//!
//! [[tokens]]
//! token = "sha256:e202c13a9341f2216ea6ae595534d8706be411253bbbae86b7d5205aeb7504b3"
//! user = "ci"
//! accounts = ["acme", "globex"]            # or "acme|globex"
//!
//! [[tokens]]
//! token = "sha256:12b92ef1381d283bf10f67588afaaf8fec1df0af948eafa2507f10ec730fe432"
//! user = "pool-worker"
//! superuser = true                         # or accounts = ["*"]
//! ```
//!
//! ```no_run
//! use pop_http::auth::AuthConfig;
//!
//! # fn main() -> pop_core::Result<()> {
//! let config = AuthConfig::from_path("/etc/pop/auth.toml")?; // names the file and key on errors
//! let authorizer = config.authorizer()?; // reads the secret and JWKS files
//! # let _ = authorizer;
//! # Ok(())
//! # }
//! ```

mod chain;
mod config;
mod gateway;
mod headers;
mod jwt;
mod tokens;

pub use chain::ChainAuthorizer;
pub use config::{AnonymousPolicy, AuthConfig, GatewayConfig, JwtConfig, StringOrList, TokenEntry};
pub use gateway::{
    CONTEXT_ACCOUNTS, CONTEXT_IS_SUPER_USER, CONTEXT_USER_ID, CONTEXT_USER_NAME, DEFAULT_GATEWAY_HEADER,
    GatewayAuthorizer,
};
pub use headers::credentials;
pub use jwt::JwtAuthorizer;
pub use tokens::TokenAuthorizer;

use pop_core::authz::Principal;

/// The account that makes a caller a superuser, as in the original POP.
pub const ALL_ACCOUNTS: &str = "*";

/// A principal for `user_id` acting for `accounts`: an account `*` (or `superuser`) makes it a
/// superuser (and is not kept as an account); blank accounts are dropped.
pub(crate) fn principal<I, S>(user_id: &str, accounts: I, superuser: bool) -> Principal
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut principal = Principal::customer(user_id, std::iter::empty::<String>());
    principal.superuser = superuser;
    for account in accounts {
        match account.as_ref().trim() {
            "" => {}
            ALL_ACCOUNTS => principal.superuser = true,
            a => {
                principal.accounts.insert(a.to_owned());
            }
        }
    }
    principal
}

/// Splits the original's `|`-separated account list.
pub(crate) fn split_accounts(accounts: &str) -> impl Iterator<Item = &str> {
    accounts.split('|').map(str::trim).filter(|a| !a.is_empty())
}

/// Whether a bearer token has the shape of a JWT: three base64url parts, the first a JSON object.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    // `eyJ` is the base64 of `{"`.
    header.starts_with("eyJ") && !payload.is_empty() && [header, payload, signature].into_iter().all(base64url)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_star_and_blanks() {
        let p = principal("u", split_accounts("a| b ||c"), false);
        assert_eq!(p.accounts.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(!p.superuser);
        let su = principal("u", ["a", "*"], false);
        assert!(su.superuser);
        assert_eq!(su.accounts.len(), 1);
        assert!(principal("u", [""; 0], true).superuser);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"));
        assert!(!looks_like_jwt("plain-static-token"));
        assert!(!looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0"));
        assert!(!looks_like_jwt("eyJa.b.c.d"));
        assert!(!looks_like_jwt("abc.def.ghi"));
        assert!(!looks_like_jwt("eyJa.b+/.c"));
    }
}
