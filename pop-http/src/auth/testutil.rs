//! Test helpers: sign tokens with the test secret and the committed test RSA keys.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// The HS256 secret of the tests.
pub(crate) const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";
/// The JWKS file holding the public halves of `rsa-k1.der` (`test-k1`) and `rsa-k2.der` (`test-k2`).
pub(crate) const JWKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/auth/testdata/jwks.json");

const RSA_K1: &[u8] = include_bytes!("testdata/rsa-k1.der");
const RSA_K2: &[u8] = include_bytes!("testdata/rsa-k2.der");

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

/// An HS256 token signed with [`SECRET`].
pub(crate) fn hs256(claims: &Value) -> String {
    hs256_with(claims, SECRET.as_bytes())
}

/// An HS256 token signed with `secret`.
pub(crate) fn hs256_with(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

/// An RS256 token with header `kid`, signed with test key 1 or 2.
pub(crate) fn rs256(claims: &Value, kid: Option<&str>, key: u8) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let der = if key == 1 { RSA_K1 } else { RSA_K2 };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(der)).unwrap()
}
