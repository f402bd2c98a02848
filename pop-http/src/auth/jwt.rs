//! [`JwtAuthorizer`]: verifies JWTs (HS256 with a shared secret; RS256 and the other asymmetric
//! algorithms with the keys of a JWKS file, selected by `kid`) and maps their claims to a principal.

use super::config::{ConfigErrors, JwtConfig, MAX_LEEWAY_SECONDS, MIN_HS256_SECRET_BYTES};
use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use pop_core::authz::{Authorizer, Credentials, Principal};
use pop_core::error::{Error, Result};
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// A verification key and what a token checked with it must satisfy.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies JWTs and maps their claims to a [`Principal`]:
///
/// * the user id is the `user_claim` (default `sub`), a non-empty string;
/// * the accounts are the `accounts_claim` (default `accounts`): a JSON array of strings or a
///   `|`-separated string as in the original POP; absent means none;
/// * superuser when the boolean `superuser_claim` (default `isSuperUser`) is true or an account
///   is `*`.
///
/// `exp` and `aud` are required and checked, `iss` too when issuers are configured, `nbf` when the
/// token has one, each with `leeway_seconds` of clock skew. HS256 tokens are checked with the shared
/// secret; tokens of the asymmetric algorithms with the JWKS key named by their `kid` header (a
/// token without `kid` only when the file holds a single key), and only with the algorithms that
/// key allows (its `alg`, or its family's). Keys are read once, when the authorizer is built.
///
/// Every refusal is `Unauthorized`, saying why: malformed token, bad signature, expired (with the
/// time), wrong audience, unknown `kid`, missing claim, ...
pub struct JwtAuthorizer {
    hs256: Option<Key>,
    jwks: Vec<Key>,
    jwks_file: Option<PathBuf>,
    audience: Vec<String>,
    issuer: Option<Vec<String>>,
    user_claim: String,
    accounts_claim: String,
    superuser_claim: String,
}

impl JwtAuthorizer {
    /// Builds the authorizer, reading the secret and JWKS files named in `config` (relative paths
    /// from the working directory). Every problem is listed, naming the key (`jwt.jwks_file`) and
    /// the file.
    pub fn new(config: &JwtConfig) -> Result<Self> {
        let mut errors = ConfigErrors::new("jwt config");
        let built = Self::build(config, &|p: &Path| p.to_path_buf(), &mut errors);
        errors.into_result()?;
        built.ok_or_else(|| Error::invalid("jwt config: not built"))
    }

    /// Builds the authorizer, reporting problems to `errors` (`None` when there are any).
    pub(crate) fn build(
        config: &JwtConfig,
        resolve: &dyn Fn(&Path) -> PathBuf,
        errors: &mut ConfigErrors,
    ) -> Option<Self> {
        check_config(config, errors);
        let mut authorizer = Self {
            hs256: None,
            jwks: Vec::new(),
            jwks_file: None,
            audience: config.audience.values().into_iter().map(str::to_owned).collect(),
            issuer: config.issuer.as_ref().map(|i| i.values().into_iter().map(str::to_owned).collect()),
            user_claim: config.user_claim.clone(),
            accounts_claim: config.accounts_claim.clone(),
            superuser_claim: config.superuser_claim.clone(),
        };
        let mut ok = true;

        let secret = match (&config.hs256_secret, &config.hs256_secret_file) {
            (Some(secret), None) => Some(secret.as_bytes().to_vec()),
            (None, Some(file)) => read_secret(&resolve(file), errors),
            _ => None,
        };
        if let Some(secret) = secret {
            match DecodingKey::from_secret(&secret) {
                Ok(key) => {
                    let validation = authorizer.validation(vec![Algorithm::HS256], config.leeway_seconds);
                    authorizer.hs256 = Some(Key { kid: None, key, validation });
                }
                Err(e) => {
                    errors.key("jwt.hs256_secret", format_args!("not usable as an HS256 key: {e}"));
                    ok = false;
                }
            }
        } else if config.hs256_secret.is_some() || config.hs256_secret_file.is_some() {
            ok = false;
        }

        if let Some(file) = &config.jwks_file {
            let path = resolve(file);
            match load_jwks(&path, errors) {
                Some(keys) => {
                    authorizer.jwks = keys
                        .into_iter()
                        .map(|(kid, key, algorithms)| Key {
                            kid,
                            key,
                            validation: authorizer.validation(algorithms, config.leeway_seconds),
                        })
                        .collect();
                    authorizer.jwks_file = Some(path);
                }
                None => ok = false,
            }
        }
        ok.then_some(authorizer)
    }

    fn validation(&self, algorithms: Vec<Algorithm>, leeway: u64) -> Validation {
        let mut v = Validation::new(algorithms.first().copied().unwrap_or(Algorithm::RS256));
        v.algorithms = algorithms;
        v.leeway = leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_audience(&self.audience);
        let mut required = vec!["exp", "aud"];
        if let Some(issuer) = &self.issuer {
            v.set_issuer(issuer);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// The principal of `token`, or `Unauthorized` saying why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| unauthorized(format!("malformed token: {e}")))?;
        let key = self.select(&header)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(|e| self.refusal(e, token, key))?;
        self.principal(&data.claims)
    }

    /// The key that must have signed a token with this header.
    fn select(&self, header: &Header) -> Result<&Key> {
        let alg = header.alg;
        if alg.family() == AlgorithmFamily::Hmac {
            return match &self.hs256 {
                Some(key) if alg == Algorithm::HS256 => Ok(key),
                Some(_) => Err(unauthorized(format!(
                    "token algorithm {alg:?} is not accepted: the shared secret is for HS256"
                ))),
                None => Err(unauthorized(format!(
                    "token algorithm {alg:?} is not accepted: no shared secret is configured (jwt.hs256_secret)"
                ))),
            };
        }
        let Some(file) = &self.jwks_file else {
            return Err(unauthorized(format!(
                "token algorithm {alg:?} is not accepted: no JWKS file is configured (jwt.jwks_file), only HS256"
            )));
        };
        let key = match (&header.kid, self.jwks.as_slice()) {
            (Some(kid), keys) => keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())).ok_or_else(|| {
                unauthorized(format!(
                    "unknown key id (kid) `{kid}`: the JWKS file {} has {}",
                    file.display(),
                    self.kid_list()
                ))
            })?,
            (None, [only]) => only,
            (None, keys) => {
                return Err(unauthorized(format!(
                    "the token has no key id (kid) header and the JWKS file {} has {} keys: cannot tell which one signed it",
                    file.display(),
                    keys.len()
                )));
            }
        };
        if !key.validation.algorithms.contains(&alg) {
            return Err(unauthorized(format!(
                "token algorithm {alg:?} does not match key {}: it is for {:?}",
                key.kid.as_deref().map_or_else(|| "(no kid)".to_owned(), |k| format!("`{k}`")),
                key.validation.algorithms
            )));
        }
        Ok(key)
    }

    fn kid_list(&self) -> String {
        let kids: Vec<String> = self.jwks.iter().filter_map(|k| k.kid.as_ref()).map(|k| format!("`{k}`")).collect();
        if kids.is_empty() { "no key ids".to_owned() } else { kids.join(", ") }
    }

    /// Why `jsonwebtoken` refused `token`, for a person.
    fn refusal(&self, e: jsonwebtoken::errors::Error, token: &str, key: &Key) -> Error {
        // Claim errors come after the signature was verified, so reading the claims is safe here.
        let claims = || jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token).ok();
        let claim = |name: &str| claims().and_then(|mut c| c.remove(name));
        let message = match e.kind() {
            ErrorKind::InvalidSignature => match &key.kid {
                Some(kid) => format!("bad token signature: not signed by key `{kid}`"),
                None if self.hs256.as_ref().is_some_and(|h| std::ptr::eq(h, key)) => {
                    "bad token signature: not signed with the configured HS256 secret".to_owned()
                }
                None => "bad token signature".to_owned(),
            },
            ErrorKind::ExpiredSignature => match claim("exp").as_ref().and_then(seconds) {
                Some(exp) => format!("token expired at {}", rfc3339(exp)),
                None => "token expired".to_owned(),
            },
            ErrorKind::ImmatureSignature => match claim("nbf").as_ref().and_then(seconds) {
                Some(nbf) => format!("token not valid before {}", rfc3339(nbf)),
                None => "token not valid yet".to_owned(),
            },
            ErrorKind::InvalidAudience => format!(
                "wrong audience: the token is for {}, this server accepts {}",
                claim("aud").map_or_else(|| "nobody".to_owned(), |a| a.to_string()),
                quoted(&self.audience)
            ),
            ErrorKind::InvalidIssuer => format!(
                "wrong issuer: the token is from {}, this server accepts {}",
                claim("iss").map_or_else(|| "nobody".to_owned(), |a| a.to_string()),
                quoted(self.issuer.as_deref().unwrap_or_default())
            ),
            ErrorKind::MissingRequiredClaim(c) => format!("token has no `{c}` claim"),
            ErrorKind::InvalidClaimFormat(c) => format!("token claim `{c}` has the wrong type"),
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                format!("malformed token: {e}")
            }
            ErrorKind::InvalidAlgorithm => {
                format!("token algorithm not accepted (expected {:?})", key.validation.algorithms)
            }
            _ => {
                tracing::warn!(error = %e, kid = ?key.kid, "JWT verification failed");
                format!("token refused: {e}")
            }
        };
        unauthorized(message)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal> {
        let user_claim = &self.user_claim;
        let user = match claims.get(user_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(unauthorized(format!("token has no `{user_claim}` claim (the user id)")));
            }
            Some(_) => return Err(unauthorized(format!("token claim `{user_claim}` (the user id) must be a string"))),
        };
        let accounts_claim = &self.accounts_claim;
        let accounts: Vec<&str> = match claims.get(accounts_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => super::split_accounts(s).collect(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.as_str()),
                        _ => return Err(unauthorized(accounts_type(accounts_claim))),
                    }
                }
                out
            }
            Some(_) => return Err(unauthorized(accounts_type(accounts_claim))),
        };
        let superuser_claim = &self.superuser_claim;
        let superuser = match claims.get(superuser_claim) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(unauthorized(format!("token claim `{superuser_claim}` must be a boolean"))),
        };
        Ok(super::principal(&user, accounts, superuser))
    }
}

impl fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("hs256", &self.hs256.is_some())
            .field("jwks_file", &self.jwks_file)
            .field("jwks_kids", &self.jwks.iter().map(|k| k.kid.as_deref()).collect::<Vec<_>>())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Authorizer for JwtAuthorizer {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal> {
        match &credentials.token {
            Some(token) => self.verify(token),
            None => Err(unauthorized("no token presented: send `Authorization: Bearer <jwt>`".into())),
        }
    }
}

fn unauthorized(message: String) -> Error {
    Error::Unauthorized(message)
}

fn accounts_type(claim: &str) -> String {
    format!("token claim `{claim}` must be a list of strings or a `|`-separated string")
}

fn quoted(values: &[String]) -> String {
    values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
}

/// Whole seconds of a NumericDate claim.
fn seconds(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
}

/// Seconds since the epoch as RFC 3339 UTC (`2024-05-01T10:00:00Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The checks of `[jwt]` that need no file.
pub(crate) fn check_config(config: &JwtConfig, errors: &mut ConfigErrors) {
    let audience = config.audience.values();
    if audience.is_empty() {
        errors.key("jwt.audience", "must name at least one audience (a token's `aud` must be one of them)");
    } else if audience.iter().any(|a| a.trim().is_empty()) {
        errors.key("jwt.audience", "must not contain an empty audience");
    }
    if let Some(issuer) = &config.issuer {
        let issuer = issuer.values();
        if issuer.is_empty() || issuer.iter().any(|i| i.trim().is_empty()) {
            errors.key("jwt.issuer", "must name non-empty issuers (or be left out to accept any)");
        }
    }
    if config.leeway_seconds > MAX_LEEWAY_SECONDS {
        errors.key(
            "jwt.leeway_seconds",
            format_args!("{} is too much clock skew: at most {MAX_LEEWAY_SECONDS}", config.leeway_seconds),
        );
    }
    for (key, value) in [
        ("jwt.user_claim", &config.user_claim),
        ("jwt.accounts_claim", &config.accounts_claim),
        ("jwt.superuser_claim", &config.superuser_claim),
    ] {
        if value.trim().is_empty() {
            errors.key(key, "must name a claim");
        }
    }
    match (&config.hs256_secret, &config.hs256_secret_file, &config.jwks_file) {
        (Some(_), Some(_), _) => errors.key("jwt.hs256_secret", "set hs256_secret or hs256_secret_file, not both"),
        (None, None, None) => {
            errors.key("jwt", "no key to verify tokens with: set hs256_secret, hs256_secret_file or jwks_file")
        }
        _ => {}
    }
    if let Some(secret) = &config.hs256_secret {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            errors.key(
                "jwt.hs256_secret",
                format_args!(
                    "{} bytes is too short: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES}",
                    secret.len()
                ),
            );
        }
    }
    for (key, path) in [("jwt.hs256_secret_file", &config.hs256_secret_file), ("jwt.jwks_file", &config.jwks_file)] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            errors.key(key, "must not be empty");
        }
    }
}

fn read_secret(path: &Path, errors: &mut ConfigErrors) -> Option<Vec<u8>> {
    let mut secret = match std::fs::read(path) {
        Ok(s) => s,
        Err(e) => {
            errors.key("jwt.hs256_secret_file", format_args!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.len() < MIN_HS256_SECRET_BYTES {
        errors.key(
            "jwt.hs256_secret_file",
            format_args!(
                "{} holds {} bytes: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES}",
                path.display(),
                secret.len()
            ),
        );
        return None;
    }
    Some(secret)
}

/// A signing key of a JWKS file: kid, key, the algorithms it may verify.
type JwksEntry = (Option<String>, DecodingKey, Vec<Algorithm>);

/// The signing keys of a JWKS file.
fn load_jwks(path: &Path, errors: &mut ConfigErrors) -> Option<Vec<JwksEntry>> {
    const KEY: &str = "jwt.jwks_file";
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.key(KEY, format_args!("cannot read {shown}: {e}"));
            return None;
        }
    };
    let set: JwkSet = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            errors.key(KEY, format_args!("{shown} is not a JWKS ({{\"keys\": [...]}}): {e}"));
            return None;
        }
    };
    let mut keys = Vec::new();
    let mut ok = true;
    for (i, jwk) in set.keys.iter().enumerate() {
        let kid = jwk.common.key_id.clone();
        let name = match &kid {
            Some(k) => format!("keys[{i}] (kid `{k}`)"),
            None => format!("keys[{i}]"),
        };
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            tracing::debug!(file = %shown, key = %name, "JWKS key for encryption skipped");
            continue;
        }
        if kid.is_some() && keys.iter().any(|(k, _, _)| *k == kid) {
            errors.key(KEY, format_args!("{shown}: {name}: the kid is used twice"));
            ok = false;
            continue;
        }
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(k) => k,
            Err(e) => {
                errors.key(KEY, format_args!("{shown}: {name}: not a usable public key: {e}"));
                ok = false;
                continue;
            }
        };
        if key.family() == AlgorithmFamily::Hmac {
            errors.key(
                KEY,
                format_args!("{shown}: {name}: symmetric keys are not taken from a JWKS file; use hs256_secret_file"),
            );
            ok = false;
            continue;
        }
        let algorithms = match jwk.common.key_algorithm {
            None => key.family().algorithms().to_vec(),
            Some(alg) => match Algorithm::try_from(alg) {
                Ok(a) if a.family() == key.family() => vec![a],
                _ => {
                    errors.key(
                        KEY,
                        format_args!("{shown}: {name}: algorithm {alg} cannot verify a signature with this key"),
                    );
                    ok = false;
                    continue;
                }
            },
        };
        keys.push((kid, key, algorithms));
    }
    if keys.is_empty() && ok {
        errors.key(KEY, format_args!("{shown} has no signing key"));
        return None;
    }
    if keys.len() > 1 {
        for (i, (kid, _, _)) in keys.iter().enumerate() {
            if kid.is_none() {
                tracing::warn!(file = %shown, index = i, "JWKS key without kid: no token can select it");
            }
        }
    }
    ok.then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::StringOrList;
    use crate::auth::testutil::{JWKS, SECRET, hs256, now, rs256};
    use serde_json::json;

    fn config() -> JwtConfig {
        let mut c = JwtConfig::new("pop-api");
        c.hs256_secret = Some(SECRET.into());
        c.jwks_file = Some(JWKS.into());
        c
    }

    fn authorizer(c: &JwtConfig) -> JwtAuthorizer {
        JwtAuthorizer::new(c).unwrap()
    }

    fn refused(a: &JwtAuthorizer, token: &str) -> String {
        match a.verify(token) {
            Err(Error::Unauthorized(m)) => m,
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn hs256_accepted_and_claims_mapped() {
        let a = authorizer(&config());
        let t = hs256(&json!({"sub": "alice", "aud": "pop-api", "exp": now() + 300, "accounts": ["acme", "globex"]}));
        let p = a.authenticate(&Credentials::token(t)).await.unwrap();
        assert_eq!(p, Principal::customer("alice", ["acme", "globex"]));

        let piped = hs256(&json!({"sub": "bob", "aud": ["other", "pop-api"], "exp": now() + 300, "accounts": "a|b"}));
        assert_eq!(a.verify(&piped).unwrap(), Principal::customer("bob", ["a", "b"]));

        let star = hs256(&json!({"sub": "ops", "aud": "pop-api", "exp": now() + 300, "accounts": "*"}));
        let star = a.verify(&star).unwrap();
        assert!(star.superuser && star.accounts.is_empty());

        let flag = hs256(&json!({"sub": "svc", "aud": "pop-api", "exp": now() + 300, "isSuperUser": true}));
        assert!(a.verify(&flag).unwrap().superuser);

        let none = hs256(&json!({"sub": "carol", "aud": "pop-api", "exp": now() + 300}));
        let none = a.verify(&none).unwrap();
        assert!(!none.superuser && none.accounts.is_empty());

        let err = a.authenticate(&Credentials::default()).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)));
    }

    #[test]
    fn configurable_claims() {
        let mut c = config();
        c.user_claim = "email".into();
        c.accounts_claim = "https://pop/accounts".into();
        c.superuser_claim = "admin".into();
        let a = authorizer(&c);
        let t = hs256(&json!({"sub": "x", "email": "d@example.com", "aud": "pop-api", "exp": now() + 60,
            "https://pop/accounts": ["c1"], "admin": "false", "accounts": ["ignored"]}));
        assert_eq!(a.verify(&t).unwrap(), Principal::customer("d@example.com", ["c1"]));

        let no_user = hs256(&json!({"sub": "x", "aud": "pop-api", "exp": now() + 60}));
        assert!(refused(&a, &no_user).contains("no `email` claim"));
        let bad_accounts =
            hs256(&json!({"email": "e", "aud": "pop-api", "exp": now() + 60, "https://pop/accounts": [1]}));
        assert!(refused(&a, &bad_accounts).contains("must be a list of strings"));
        let bad_flag = hs256(&json!({"email": "e", "aud": "pop-api", "exp": now() + 60, "admin": 1}));
        assert!(refused(&a, &bad_flag).contains("`admin` must be a boolean"));
    }

    #[test]
    fn expiry_and_leeway() {
        let a = authorizer(&config());
        let exp = now() - 3_600;
        let t = hs256(&json!({"sub": "alice", "aud": "pop-api", "exp": exp}));
        assert_eq!(refused(&a, &t), format!("token expired at {}", rfc3339(exp)));

        let recent = hs256(&json!({"sub": "alice", "aud": "pop-api", "exp": now() - 10}));
        assert!(a.verify(&recent).is_ok(), "within the default 30 s leeway");
        let mut strict = config();
        strict.leeway_seconds = 0;
        assert!(refused(&authorizer(&strict), &recent).starts_with("token expired at "));

        let no_exp = hs256(&json!({"sub": "alice", "aud": "pop-api"}));
        assert_eq!(refused(&a, &no_exp), "token has no `exp` claim");
        let future = hs256(&json!({"sub": "alice", "aud": "pop-api", "exp": now() + 7_200, "nbf": now() + 3_600}));
        assert!(refused(&a, &future).starts_with("token not valid before "));
    }

    #[test]
    fn audience_and_issuer() {
        let a = authorizer(&config());
        let t = hs256(&json!({"sub": "alice", "aud": "someone-else", "exp": now() + 60}));
        let m = refused(&a, &t);
        assert!(m.starts_with("wrong audience") && m.contains("someone-else") && m.contains("`pop-api`"), "{m}");
        let no_aud = hs256(&json!({"sub": "alice", "exp": now() + 60}));
        assert_eq!(refused(&a, &no_aud), "token has no `aud` claim");

        let mut c = config();
        c.issuer = Some(StringOrList::List(vec!["https://idp.example/".into()]));
        let a = authorizer(&c);
        let good = hs256(&json!({"sub": "a", "aud": "pop-api", "exp": now() + 60, "iss": "https://idp.example/"}));
        assert!(a.verify(&good).is_ok());
        let bad = hs256(&json!({"sub": "a", "aud": "pop-api", "exp": now() + 60, "iss": "https://evil.example/"}));
        assert!(refused(&a, &bad).starts_with("wrong issuer"));
        let missing = hs256(&json!({"sub": "a", "aud": "pop-api", "exp": now() + 60}));
        assert_eq!(refused(&a, &missing), "token has no `iss` claim");
    }

    #[test]
    fn signatures_and_malformed_tokens() {
        let a = authorizer(&config());
        let claims = json!({"sub": "alice", "aud": "pop-api", "exp": now() + 60});
        let other_secret = crate::auth::testutil::hs256_with(&claims, b"another-secret-of-at-least-32-bytes!!");
        assert_eq!(refused(&a, &other_secret), "bad token signature: not signed with the configured HS256 secret");

        // A payload swapped under a valid signature.
        let good = hs256(&claims);
        let forged_payload = hs256(&json!({"sub": "mallory", "aud": "pop-api", "exp": now() + 60, "accounts": "*"}));
        let parts: Vec<&str> = good.split('.').collect();
        let forged: Vec<&str> = forged_payload.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged[1], parts[2]);
        assert!(refused(&a, &tampered).starts_with("bad token signature"));

        for bad in ["abc", "abc.def", "eyJub3Q.eyJ4.c2ln", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
            assert!(refused(&a, bad).starts_with("malformed token"), "{bad}: {}", refused(&a, bad));
        }
    }

    #[test]
    fn rs256_with_two_jwks_keys_selected_by_kid() {
        let a = authorizer(&config());
        let claims = json!({"sub": "rita", "aud": "pop-api", "exp": now() + 60, "accounts": ["acme"]});
        let k1 = rs256(&claims, Some("test-k1"), 1);
        let k2 = rs256(&claims, Some("test-k2"), 2);
        assert_eq!(a.verify(&k1).unwrap(), Principal::customer("rita", ["acme"]));
        assert_eq!(a.verify(&k2).unwrap(), Principal::customer("rita", ["acme"]));

        // Signed by k1 but claiming to be k2.
        let wrong = rs256(&claims, Some("test-k2"), 1);
        assert_eq!(refused(&a, &wrong), "bad token signature: not signed by key `test-k2`");

        let unknown = rs256(&claims, Some("test-k9"), 1);
        let m = refused(&a, &unknown);
        assert!(m.starts_with("unknown key id (kid) `test-k9`") && m.contains("`test-k1`, `test-k2`"), "{m}");

        let no_kid = rs256(&claims, None, 1);
        assert!(refused(&a, &no_kid).contains("no key id (kid)"));

        let expired = rs256(&json!({"sub": "rita", "aud": "pop-api", "exp": 1_000_000_000}), Some("test-k1"), 1);
        assert_eq!(refused(&a, &expired), "token expired at 2001-09-09T01:46:40Z");

        // Only HS256: RS256 refused, and the other way round.
        let mut hs_only = config();
        hs_only.jwks_file = None;
        assert!(refused(&authorizer(&hs_only), &k1).contains("no JWKS file is configured"));
        let mut jwks_only = config();
        jwks_only.hs256_secret = None;
        assert!(refused(&authorizer(&jwks_only), &hs256(&claims)).contains("no shared secret"));
    }

    #[test]
    fn key_files_are_checked_at_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = JwtConfig::new("pop-api");
        c.jwks_file = Some(dir.path().join("missing.json"));
        let err = JwtAuthorizer::new(&c).unwrap_err();
        let p = &err.problem_list()[0];
        assert_eq!(p.field.as_deref(), Some("jwt.jwks_file"));
        assert!(p.message.contains("missing.json") && p.message.contains("cannot read"), "{err}");

        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#).unwrap();
        c.jwks_file = Some(jwks.clone());
        assert!(JwtAuthorizer::new(&c).unwrap_err().to_string().contains("symmetric keys"));
        std::fs::write(&jwks, "[]").unwrap();
        assert!(JwtAuthorizer::new(&c).unwrap_err().to_string().contains("is not a JWKS"));
        std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
        assert!(JwtAuthorizer::new(&c).unwrap_err().to_string().contains("has no signing key"));

        c.jwks_file = None;
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "short\n").unwrap();
        c.hs256_secret_file = Some(secret.clone());
        let err = JwtAuthorizer::new(&c).unwrap_err().to_string();
        assert!(err.contains("jwt.hs256_secret_file") && err.contains("5 bytes"), "{err}");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let a = JwtAuthorizer::new(&c).unwrap();
        let t = hs256(&json!({"sub": "alice", "aud": "pop-api", "exp": now() + 60}));
        assert_eq!(a.verify(&t).unwrap().user_id, "alice");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
