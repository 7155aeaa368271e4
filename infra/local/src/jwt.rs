//! Local JWTs (HS256 with a local signing key), checked the way the HTTP
//! API's JWT authorizer checks them: signature, issuer, audience, expiry.
//! The route's scope is checked by the gateway ([`crate::gateway`]). Only for
//! running locally; in AWS the authorizer does this.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const ISSUER: &str = "https://auth.local.test";
pub const AUDIENCE: &str = "trading-api";
/// What a local token grants unless told otherwise: every route.
pub const DEFAULT_SCOPE: &str = "orders:read orders:write";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Space-separated OAuth scopes (`orders:read orders:write`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer or audience")]
    Audience,
    #[error("expired")]
    Expired,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

pub fn sign(key: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut mac = mac(key);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

pub fn verify(key: &[u8], token: &str, now_s: u64) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(JwtError::Malformed); // never "none", never another algorithm
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac = mac(key);
    mac.update(format!("{}.{payload}", token.split('.').next().unwrap_or_default()).as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(JwtError::Malformed)?;
    if claims.iss != ISSUER || claims.aud != AUDIENCE {
        return Err(JwtError::Audience);
    }
    if claims.exp <= now_s {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

/// A token for `subject` granting every route ([`DEFAULT_SCOPE`]), valid
/// for `ttl_s` seconds.
pub fn token_for(key: &[u8], subject: &str, now_s: u64, ttl_s: u64) -> String {
    token_with_scope(key, subject, DEFAULT_SCOPE, now_s, ttl_s)
}

/// A token for `subject` granting `scope` (space-separated), valid for `ttl_s` seconds.
pub fn token_with_scope(key: &[u8], subject: &str, scope: &str, now_s: u64, ttl_s: u64) -> String {
    sign(
        key,
        &Claims {
            sub: subject.into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now_s + ttl_s,
            scope: Some(scope.into()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = b"local-key";
        let token = token_for(key, "alice", 1_000, 60);
        assert_eq!(
            verify(key, &token, 1_000).map(|c| c.sub),
            Ok("alice".into())
        );
        assert_eq!(verify(b"other", &token, 1_000), Err(JwtError::Signature));
        assert_eq!(verify(key, &token, 1_060), Err(JwtError::Expired));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap_or(0) + 2, 'x');
        assert!(verify(key, &tampered, 1_000).is_err());
        assert_eq!(verify(key, "a.b", 1_000), Err(JwtError::Malformed));
    }
}
