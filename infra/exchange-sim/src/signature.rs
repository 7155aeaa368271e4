//! Standard Webhooks signatures: the reference implementation the platform's
//! webhook receiver can reuse in its tests.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, signed
//! with HMAC-SHA256 under the secret's bytes (the base64 part of
//! `whsec_<base64>`); `webhook-signature` holds space-separated
//! `v1,<base64 signature>` entries so several secrets work during rotation.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Default accepted clock difference between sender and receiver, either way.
pub const DEFAULT_TOLERANCE_S: u64 = 300;
/// Secrets shorter than this are refused (16 bytes = 128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
/// Most signature entries looked at in one header (bounds the work per request).
const MAX_SIGNATURES: usize = 10;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the secret must be `whsec_` followed by base64 of at least {MIN_SECRET_BYTES} bytes")]
    BadSecret,
    #[error("header `{0}` is missing or not text")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is too far from now")]
    TimestampOutOfTolerance,
    #[error("no signature matches")]
    NoMatch,
}

/// A signing secret: raw key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)") // never log key material
    }
}

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference
    /// libraries).
    pub fn parse(s: &str) -> Result<Secret, SignatureError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = B64.decode(b64).map_err(|_| SignatureError::BadSecret)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SignatureError::BadSecret);
        }
        Ok(Secret(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Secret, SignatureError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SignatureError::BadSecret);
        }
        Ok(Secret(bytes))
    }

    /// The `whsec_<base64>` text form.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` value for one secret: `v1,<base64>`.
pub fn sign(secret: &Secret, id: &str, timestamp_s: u64, body: &[u8]) -> String {
    let tag = secret
        .mac(id, &timestamp_s.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", B64.encode(tag))
}

/// Verifies a delivery from its headers: the timestamp must be within
/// `tolerance_s` of `now_s`, and one `v1` signature must match one secret
/// (compared in constant time).
pub fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let get = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::MissingHeader(name))
    };
    verify_parts(
        secrets,
        get(HEADER_ID)?,
        get(HEADER_TIMESTAMP)?,
        get(HEADER_SIGNATURE)?,
        body,
        now_s,
        tolerance_s,
    )
}

/// [`verify`] for callers that hold the three header values already.
pub fn verify_parts(
    secrets: &[Secret],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if ts.abs_diff(now_s) > tolerance_s {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    for entry in signature_header
        .split(' ')
        .filter(|e| !e.is_empty())
        .take(MAX_SIGNATURES)
    {
        let Some(("v1", b64)) = entry.split_once(',') else {
            continue; // other versions (e.g. v1a asymmetric) are not ours to check
        };
        let Ok(tag) = B64.decode(b64) else { continue };
        for secret in secrets {
            // `verify_slice` compares in constant time.
            if secret
                .mac(id, timestamp.trim(), body)
                .verify_slice(&tag)
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks reference libraries.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: u64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        Secret::parse(VECTOR_SECRET).expect("secret")
    }

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, http::HeaderValue::from_static(VECTOR_ID));
        h.insert(
            HEADER_TIMESTAMP,
            http::HeaderValue::from_static("1614265330"),
        );
        h.insert(
            HEADER_SIGNATURE,
            http::HeaderValue::from_str(sig).expect("header"),
        );
        h
    }

    #[test]
    fn reproduces_the_reference_test_vector() {
        assert_eq!(
            sign(&secret(), VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            VECTOR_SIG
        );
    }

    #[test]
    fn verifies_the_reference_signature_among_others() {
        let h = headers(&format!("v1a,abc v1,bm9wZQ== {VECTOR_SIG}"));
        assert_eq!(verify(&[secret()], &h, VECTOR_BODY, VECTOR_TS, 300), Ok(()));
    }

    #[test]
    fn any_changed_byte_fails() {
        for i in 0..VECTOR_BODY.len() {
            let mut body = VECTOR_BODY.to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                verify(&[secret()], &headers(VECTOR_SIG), &body, VECTOR_TS, 300),
                Err(SignatureError::NoMatch),
                "byte {i}"
            );
        }
        let mut h = headers(VECTOR_SIG);
        h.insert(
            HEADER_ID,
            http::HeaderValue::from_static("msg_p5jXN8AQM9LWM0D4loKWxJeK"),
        );
        assert_eq!(
            verify(&[secret()], &h, VECTOR_BODY, VECTOR_TS, 300),
            Err(SignatureError::NoMatch)
        );
        let other = Secret::from_bytes(vec![7; 32]).expect("secret");
        assert_eq!(
            verify(
                std::slice::from_ref(&other),
                &headers(VECTOR_SIG),
                VECTOR_BODY,
                VECTOR_TS,
                300
            ),
            Err(SignatureError::NoMatch)
        );
        // Rotation: either secret may sign.
        assert_eq!(
            verify(
                &[other, secret()],
                &headers(VECTOR_SIG),
                VECTOR_BODY,
                VECTOR_TS,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_fail() {
        let h = headers(VECTOR_SIG);
        assert_eq!(
            verify(&[secret()], &h, VECTOR_BODY, VECTOR_TS + 300, 300),
            Ok(())
        );
        assert_eq!(
            verify(&[secret()], &h, VECTOR_BODY, VECTOR_TS + 301, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(&[secret()], &h, VECTOR_BODY, VECTOR_TS - 301, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        let mut missing = h.clone();
        missing.remove(HEADER_SIGNATURE);
        assert_eq!(
            verify(&[secret()], &missing, VECTOR_BODY, VECTOR_TS, 300),
            Err(SignatureError::MissingHeader(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn secrets_round_trip_and_short_ones_are_refused() {
        assert_eq!(Secret::parse(&secret().to_whsec()), Ok(secret()));
        assert_eq!(
            Secret::parse("whsec_c2hvcnQ="),
            Err(SignatureError::BadSecret)
        );
        assert_eq!(
            Secret::parse("whsec_not base64!"),
            Err(SignatureError::BadSecret)
        );
    }
}
