//! [`AuthConfig`]: the one file that says how callers authenticate (TOML or JSON).

use super::chain::ChainAuthorizer;
use super::gateway::DEFAULT_GATEWAY_HEADER;
use pop_core::error::{Error, Problem, Result};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The largest clock skew `leeway_seconds` may allow.
pub(crate) const MAX_LEEWAY_SECONDS: u64 = 600;
/// The smallest HS256 secret (RFC 7518 §3.2: at least the hash size).
pub(crate) const MIN_HS256_SECRET_BYTES: usize = 32;

/// How callers authenticate: the anonymous policy, and any of a gateway context, JWTs and static
/// tokens. See the [module docs](super) for a complete file.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// What a request without any credentials gets.
    #[serde(default)]
    pub anonymous: AnonymousPolicy,
    /// Trust an API gateway's authorizer context in a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayConfig>,
    /// Accept JWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// Accept these static tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenEntry>,
    /// The file this configuration was read from: named in messages, and relative paths in it are
    /// relative to its directory. `None` for a configuration parsed from a string or built in code
    /// (relative paths are then relative to the working directory).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// What a request without credentials gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnonymousPolicy {
    /// Refused with `Unauthorized` (HTTP 401).
    #[default]
    Deny,
    /// Let in as `Principal::anonymous()`, which sees nothing.
    Allow,
}

/// `[gateway]`: the header in which a trusted API gateway forwards its authorizer context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The header name (case-insensitive); default `x-pop-authorizer-context`.
    #[serde(default = "default_gateway_header")]
    pub header: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self { header: default_gateway_header() }
    }
}

fn default_gateway_header() -> String {
    DEFAULT_GATEWAY_HEADER.to_owned()
}

/// `[jwt]`: how JWTs are verified and mapped to a principal.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted audiences (`aud`); a token must name one of them.
    pub audience: StringOrList,
    /// Accepted issuers (`iss`); unchecked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<StringOrList>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (default 30, at most 600).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The claim holding the user id (default `sub`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim holding the accounts: a JSON array or a `|`-separated string (default `accounts`).
    #[serde(default = "default_accounts_claim")]
    pub accounts_claim: String,
    /// The boolean claim that makes a superuser (default `isSuperUser`).
    #[serde(default = "default_superuser_claim")]
    pub superuser_claim: String,
    /// The HS256 shared secret, inline (at least 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret: Option<String>,
    /// A file holding the HS256 shared secret (a trailing newline is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
    /// A JWKS file (`{"keys": [...]}`) with the public keys for RS256 and the other asymmetric
    /// algorithms, selected by the token's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
}

impl JwtConfig {
    /// A configuration for `audience` with the defaults and no key yet.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audience: StringOrList::One(audience.into()),
            issuer: None,
            leeway_seconds: default_leeway(),
            user_claim: default_user_claim(),
            accounts_claim: default_accounts_claim(),
            superuser_claim: default_superuser_claim(),
            hs256_secret: None,
            hs256_secret_file: None,
            jwks_file: None,
        }
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway_seconds", &self.leeway_seconds)
            .field("user_claim", &self.user_claim)
            .field("accounts_claim", &self.accounts_claim)
            .field("superuser_claim", &self.superuser_claim)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("jwks_file", &self.jwks_file)
            .finish()
    }
}

fn default_leeway() -> u64 {
    30
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_accounts_claim() -> String {
    "accounts".into()
}
fn default_superuser_claim() -> String {
    "isSuperUser".into()
}

/// `[[tokens]]`: one static token and who it is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The token, or `sha256:<64 hex digits>` (its SHA-256) to keep it out of the file.
    pub token: String,
    /// The user id.
    pub user: String,
    /// The accounts it acts for: a list or a `|`-separated string; `*` makes a superuser.
    #[serde(default)]
    pub accounts: StringOrList,
    /// Sees and may do everything.
    #[serde(default)]
    pub superuser: bool,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token =
            if self.token.starts_with(super::tokens::SHA256_PREFIX) { self.token.as_str() } else { "<redacted>" };
        f.debug_struct("TokenEntry")
            .field("token", &token)
            .field("user", &self.user)
            .field("accounts", &self.accounts)
            .field("superuser", &self.superuser)
            .finish()
    }
}

/// A string or a list of strings (`audience = "a"` or `audience = ["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string (for accounts: `|`-separated).
    One(String),
    /// A list.
    List(Vec<String>),
}

impl Default for StringOrList {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl StringOrList {
    /// The values, a single string taken whole.
    pub fn values(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::List(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The values as accounts: a single string is split on `|`, blanks are dropped.
    pub fn accounts(&self) -> Vec<&str> {
        match self {
            Self::One(s) => super::split_accounts(s).collect(),
            Self::List(v) => v.iter().map(|a| a.trim()).filter(|a| !a.is_empty()).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringOrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<StringOrList, E> {
                Ok(StringOrList::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<StringOrList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StringOrList::List(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The problems found in a configuration, each naming the file and the key.
pub(crate) struct ConfigErrors {
    label: String,
    problems: Vec<Problem>,
}

impl ConfigErrors {
    pub(crate) fn new(label: impl Into<String>) -> Self {
        Self { label: label.into(), problems: Vec::new() }
    }

    /// A problem with one key.
    pub(crate) fn key(&mut self, key: &str, what: impl fmt::Display) {
        let label = &self.label;
        self.problems.push(Problem::new(format!("{label}: key `{key}`: {what}")).field(key));
    }

    /// A problem with the whole configuration.
    pub(crate) fn whole(&mut self, what: impl fmt::Display) {
        let label = &self.label;
        self.problems.push(Problem::new(format!("{label}: {what}")));
    }

    pub(crate) fn into_result(self) -> Result<()> {
        if self.problems.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }

    pub(crate) fn into_error(self) -> Error {
        Error::problems(self.problems)
    }
}

/// The text format of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Json,
}

impl Format {
    fn sniff(text: &str) -> Self {
        if text.trim_start().starts_with('{') { Self::Json } else { Self::Toml }
    }
}

impl AuthConfig {
    /// Reads and checks a configuration file: JSON when it ends in `.json`, TOML when it ends in
    /// `.toml`, otherwise JSON if it starts with `{`. Errors name the file and the key.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let label = format!("auth config {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut errors = ConfigErrors::new(&label);
            errors.whole(format_args!("cannot read the file: {e}"));
            errors.into_error()
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::sniff(&text),
        };
        let mut config = Self::parse(&text, format, &label)?;
        config.source = Some(path.to_path_buf());
        config.validate()?;
        Ok(config)
    }

    fn parse(text: &str, format: Format, label: &str) -> Result<Self> {
        let mut errors = ConfigErrors::new(label);
        match format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_str(text);
                match serde_path_to_error::deserialize::<_, Self>(&mut de) {
                    Ok(config) => match de.end() {
                        Ok(()) => return Ok(config),
                        Err(e) => errors.whole(format_args!("JSON: {e}")),
                    },
                    Err(e) => {
                        let path = e.path().to_string();
                        let inner = e.into_inner();
                        report(&mut errors, &path, format_args!("JSON: {inner}"));
                    }
                }
            }
            Format::Toml => {
                let de = toml::Deserializer::new(text);
                match serde_path_to_error::deserialize::<_, Self>(de) {
                    Ok(config) => return Ok(config),
                    Err(e) => {
                        let path = e.path().to_string();
                        let inner = e.into_inner();
                        let position = inner.span().map(|span| line_column(text, span.start));
                        let message = match inner.message().trim() {
                            "" => "invalid TOML syntax".to_owned(),
                            m => m.replace('\n', "; "),
                        };
                        match position {
                            Some((line, column)) => {
                                report(&mut errors, &path, format_args!("TOML line {line}, column {column}: {message}"))
                            }
                            None => report(&mut errors, &path, format_args!("TOML: {message}")),
                        }
                    }
                }
            }
        }
        Err(errors.into_error())
    }

    /// Checks the configuration without reading the files it names: every problem is listed, each
    /// naming the file and the key. [`from_path`](Self::from_path) and `parse` call it;
    /// [`authorizer`](Self::authorizer) calls it again (for a configuration built in code).
    pub fn validate(&self) -> Result<()> {
        let mut errors = ConfigErrors::new(self.label());
        if let Some(gateway) = &self.gateway {
            super::gateway::check_header(&gateway.header, "gateway.header", &mut errors);
        }
        if let Some(jwt) = &self.jwt {
            super::jwt::check_config(jwt, &mut errors);
        }
        super::tokens::parse_entries(&self.tokens, &mut errors);
        if self.gateway.is_none()
            && self.jwt.is_none()
            && self.tokens.is_empty()
            && self.anonymous == AnonymousPolicy::Deny
        {
            errors.whole(
                "no way to authenticate: add a [gateway] section, a [jwt] section or [[tokens]], \
                 or set anonymous = \"allow\" (everyone anonymous, seeing nothing)",
            );
        }
        errors.into_result()
    }

    /// Builds the [`ChainAuthorizer`]: checks the configuration and reads the secret and JWKS files
    /// it names (errors name them and their key).
    pub fn authorizer(&self) -> Result<ChainAuthorizer> {
        ChainAuthorizer::from_config(self)
    }

    /// How messages name this configuration: `auth config <file>` or `auth config (inline)`.
    pub(crate) fn label(&self) -> String {
        match &self.source {
            Some(p) => format!("auth config {}", p.display()),
            None => "auth config (inline)".to_owned(),
        }
    }

    /// `path` as written in the configuration, made relative to its file's directory.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        match self.source.as_deref().and_then(Path::parent) {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

impl FromStr for AuthConfig {
    type Err = Error;

    /// Parses and checks a configuration: JSON if the text starts with `{`, TOML otherwise.
    fn from_str(text: &str) -> Result<Self> {
        let config = Self::parse(text, Format::sniff(text), "auth config (inline)")?;
        config.validate()?;
        Ok(config)
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("anonymous", &self.anonymous)
            .field("gateway", &self.gateway)
            .field("jwt", &self.jwt)
            .field("tokens", &self.tokens)
            .field("source", &self.source)
            .finish()
    }
}

/// Reports a parse error at `path` (serde_path_to_error's `.` is the whole document).
fn report(errors: &mut ConfigErrors, path: &str, what: impl fmt::Display) {
    if path.is_empty() || path == "." { errors.whole(what) } else { errors.key(path, what) }
}

/// The 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(Option<String>, String)> {
        match text.parse::<AuthConfig>() {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.problem_list().iter().map(|p| (p.field.clone(), p.message.clone())).collect(),
        }
    }

    fn one_problem(text: &str, key: Option<&str>, needle: &str) {
        let found = problems(text);
        assert!(
            found.iter().any(|(k, m)| k.as_deref() == key && m.contains(needle)),
            "expected key {key:?} with `{needle}` in {found:#?}"
        );
    }

    #[test]
    fn minimal_toml_and_json() {
        let t: AuthConfig = "anonymous = \"allow\"".parse().unwrap();
        assert_eq!(t.anonymous, AnonymousPolicy::Allow);
        let j: AuthConfig =
            r#"{"gateway": {}, "tokens": [{"token": "abc", "user": "u", "accounts": "a|b"}]}"#.parse().unwrap();
        assert_eq!(j.anonymous, AnonymousPolicy::Deny);
        assert_eq!(j.gateway.unwrap().header, DEFAULT_GATEWAY_HEADER);
        assert_eq!(j.tokens[0].accounts.accounts(), ["a", "b"]);
        let jwt: AuthConfig = "[jwt]\naudience = [\"x\", \"y\"]\njwks_file = \"k.json\"".parse().unwrap();
        let jwt = jwt.jwt.unwrap();
        assert_eq!(jwt.audience.values(), ["x", "y"]);
        assert_eq!((jwt.leeway_seconds, jwt.user_claim.as_str()), (30, "sub"));
    }

    #[test]
    fn parse_errors_name_the_key() {
        one_problem(
            "[jwt]\naudience = \"a\"\nleeway_seconds = \"soon\"\njwks_file = \"k\"",
            Some("jwt.leeway_seconds"),
            "line 3",
        );
        one_problem(
            "[jwt]\naudiance = \"a\"",
            Some("jwt.audiance"),
            "unknown field `audiance`, expected one of `audience`",
        );
        one_problem("[jwt]\njwks_file = \"k\"", Some("jwt"), "missing field `audience`");
        one_problem("anonymous = \"maybe\"", Some("anonymous"), "unknown variant `maybe`");
        one_problem(
            "[[tokens]]\ntoken = \"t\"\nuser = \"u\"\n[[tokens]]\ntoken = 5\nuser = \"v\"",
            Some("tokens[1].token"),
            "expected a string",
        );
        one_problem(
            "[[tokens]]\ntoken = \"t\"\nuser = \"u\"\naccounts = 3",
            Some("tokens[0].accounts"),
            "a string or a list",
        );
        one_problem(r#"{"jwt": {"audience": "a", "leeway_seconds": -1}}"#, Some("jwt.leeway_seconds"), "JSON");
        one_problem("anonymous = ", None, "TOML line 1, column 13: invalid TOML syntax");
        one_problem("[jwt\n", None, "TOML line 1, column 5: invalid table header; expected");
        one_problem("{\"anonymous\": \"deny\"} trailing", None, "JSON");
    }

    #[test]
    fn semantic_errors_name_the_key_and_are_all_listed() {
        let text = r#"
            [gateway]
            header = "bad header"
            [jwt]
            audience = []
            leeway_seconds = 3600
            hs256_secret = "short"
            hs256_secret_file = "secret"
            [[tokens]]
            token = "sha256:abc"
            user = ""
            [[tokens]]
            token = "same"
            user = "a"
            [[tokens]]
            token = "same"
            user = "b"
        "#;
        let found = problems(text);
        let keys: Vec<_> = found.iter().filter_map(|(k, _)| k.as_deref()).collect();
        for key in [
            "gateway.header",
            "jwt.audience",
            "jwt.leeway_seconds",
            "jwt.hs256_secret",
            "tokens[0].token",
            "tokens[0].user",
            "tokens[2].token",
        ] {
            assert!(keys.contains(&key), "{key} not in {found:#?}");
        }
        assert!(found.iter().all(|(_, m)| m.starts_with("auth config (inline): ")), "{found:#?}");
        one_problem("[jwt]\naudience = \"a\"", Some("jwt"), "hs256_secret");
        one_problem("", None, "no way to authenticate");
        one_problem("[gateway]\nheader = \"Authorization\"", Some("gateway.header"), "Authorization");
    }

    #[test]
    fn from_path_names_the_file_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, "[jwt]\naudience = \"a\"\njwks_file = \"keys/jwks.json\"\nleeway_seconds = 1000\n")
            .unwrap();
        let err = AuthConfig::from_path(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("jwt.leeway_seconds"), "{err}");

        std::fs::write(&path, "[jwt]\naudience = \"a\"\njwks_file = \"keys/jwks.json\"\n").unwrap();
        let config = AuthConfig::from_path(&path).unwrap();
        assert_eq!(config.resolve(Path::new("keys/jwks.json")), dir.path().join("keys/jwks.json"));
        assert_eq!(config.resolve(Path::new("/abs")), Path::new("/abs"));

        let json = dir.path().join("auth.json");
        std::fs::write(&json, "anonymous = \"allow\"").unwrap();
        let err = AuthConfig::from_path(&json).unwrap_err().to_string();
        assert!(err.contains("auth.json") && err.contains("JSON"), "{err}");

        let missing = dir.path().join("missing.toml");
        let err = AuthConfig::from_path(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.toml") && err.contains("cannot read"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let config: AuthConfig = "[jwt]\naudience = \"a\"\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\n\
             [[tokens]]\ntoken = \"plain-secret-token\"\nuser = \"u\""
            .parse()
            .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("0123456789abcdef") && !debug.contains("plain-secret-token"), "{debug}");
    }
}
