//! Standard Webhooks signature verification.
//!
//! The sender signs `{webhook-id}.{webhook-timestamp}.{body}` with
//! HMAC-SHA256 under the secret's key bytes (the base64 part of
//! `whsec_<base64>`) and sends space-separated `v1,<base64>` entries in
//! `webhook-signature`. Several secrets may be configured at once, so a
//! secret can be rotated without a window where valid webhooks are refused.
//! The checks that need neither the body nor a secret come first
//! ([`SignedHeaders::check`]), so a delivery that fails them costs nothing
//! more. The time is passed in: nothing here reads a clock.

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Accepted difference between the sender's clock and ours, either way.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
/// Shorter keys are refused as configuration errors (128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
/// Most signature entries examined per request: bounds the HMACs computed.
pub const MAX_SIGNATURE_ENTRIES: usize = 10;
/// Longest accepted `webhook-id`; it is logged, so keep it small.
pub const MAX_ID_LEN: usize = 256;
/// A timestamp longer than this is not a sane unix time in seconds.
const MAX_TIMESTAMP_DIGITS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was not accepted as coming from the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("header `{0}` is missing")]
    MissingHeader(&'static str),
    #[error("header `{0}` is malformed")]
    MalformedHeader(&'static str),
    #[error("webhook-timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {age_seconds} s old, more than the tolerance")]
    Expired { age_seconds: u64 },
    #[error("webhook-timestamp is {ahead_seconds} s ahead of our clock, more than the tolerance")]
    FromTheFuture { ahead_seconds: u64 },
    #[error("no signature matches a configured secret")]
    NoMatchingSignature,
}

/// Why a configured secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a secret must start with `{SECRET_PREFIX}`")]
    MissingPrefix,
    #[error("the part after `{SECRET_PREFIX}` is not base64")]
    NotBase64,
    #[error("a secret must hold at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
}

/// A signing key. Its `Debug` never shows key material.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = B64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Secret(key))
    }

    /// The MAC of one delivery's signed content.
    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
            mac.update(part);
        }
        mac
    }

    /// The `v1,<base64>` signature entry of a delivery (what the sender puts
    /// in `webhook-signature`).
    pub fn sign(&self, id: &str, timestamp_seconds: u64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp_seconds.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", B64.encode(tag))
    }
}

/// A delivery that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's id of this delivery (the same on every retry of it).
    pub webhook_id: String,
}

/// The three header values, still unchecked.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

impl<'a> SignedHeaders<'a> {
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, SignatureError> {
        let get = |name: &'static str| {
            let value = headers
                .get(name)
                .ok_or(SignatureError::MissingHeader(name))?;
            value
                .to_str()
                .map_err(|_| SignatureError::MalformedHeader(name))
        };
        Ok(SignedHeaders {
            id: get(HEADER_ID)?,
            timestamp: get(HEADER_TIMESTAMP)?,
            signature: get(HEADER_SIGNATURE)?,
        })
    }
}

/// Headers that passed every check that needs neither the body nor a
/// secret: the id's form, the timestamp within the tolerance, at least one
/// well-formed `v1` entry. Only such a delivery is worth reading and a
/// secret lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<'a> {
    id: &'a str,
    timestamp: &'a str,
    tags: Vec<Vec<u8>>,
}

impl<'a> SignedHeaders<'a> {
    /// The cheap checks, against `now_seconds` and the tolerance.
    pub fn check(
        self,
        now_seconds: u64,
        tolerance_seconds: u64,
    ) -> Result<Checked<'a>, SignatureError> {
        let id = self.id;
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SignatureError::MalformedHeader(HEADER_ID));
        }
        let timestamp_seconds = parse_timestamp(self.timestamp)?;
        if timestamp_seconds.saturating_add(tolerance_seconds) < now_seconds {
            return Err(SignatureError::Expired {
                age_seconds: now_seconds - timestamp_seconds,
            });
        }
        if timestamp_seconds > now_seconds.saturating_add(tolerance_seconds) {
            return Err(SignatureError::FromTheFuture {
                ahead_seconds: timestamp_seconds - now_seconds,
            });
        }
        Ok(Checked {
            id,
            timestamp: self.timestamp,
            tags: signature_tags(self.signature)?,
        })
    }
}

impl Checked<'_> {
    /// Whether any entry is the MAC of this delivery under any secret; the
    /// comparison of MACs is constant-time.
    pub fn verify(&self, secrets: &[Secret], body: &[u8]) -> Result<Verified, SignatureError> {
        for tag in &self.tags {
            for secret in secrets {
                // `verify_slice` compares in constant time.
                if secret
                    .mac(self.id, self.timestamp, body)
                    .verify_slice(tag)
                    .is_ok()
                {
                    return Ok(Verified {
                        webhook_id: self.id.to_owned(),
                    });
                }
            }
        }
        Err(SignatureError::NoMatchingSignature)
    }
}

/// Checks the timestamp against `now_seconds` and the signature against each
/// secret: [`SignedHeaders::check`], then [`Checked::verify`].
pub fn verify(
    secrets: &[Secret],
    headers: SignedHeaders<'_>,
    body: &[u8],
    now_seconds: u64,
    tolerance_seconds: u64,
) -> Result<Verified, SignatureError> {
    headers
        .check(now_seconds, tolerance_seconds)?
        .verify(secrets, body)
}

/// Digits only (no sign, blank or exponent): the header is signed as sent,
/// so it is read exactly as sent.
fn parse_timestamp(text: &str) -> Result<u64, SignatureError> {
    if text.is_empty()
        || text.len() > MAX_TIMESTAMP_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignatureError::BadTimestamp);
    }
    text.parse().map_err(|_| SignatureError::BadTimestamp)
}

/// The decoded `v1` tags. Entries of other versions (such as `v1a`,
/// asymmetric) are skipped as the scheme says; a header without a single
/// usable `v1` entry is malformed.
fn signature_tags(header: &str) -> Result<Vec<Vec<u8>>, SignatureError> {
    let tags: Vec<Vec<u8>> = header
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .take(MAX_SIGNATURE_ENTRIES)
        .filter_map(|entry| match entry.split_once(',') {
            Some(("v1", encoded)) => B64.decode(encoded).ok().filter(|tag| !tag.is_empty()),
            _ => None,
        })
        .collect();
    if tags.is_empty() {
        return Err(SignatureError::MalformedHeader(HEADER_SIGNATURE));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example published with the Standard Webhooks reference libraries.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: &str = "1614265330";
    const VECTOR_NOW: u64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        Secret::parse(VECTOR_SECRET).expect("secret")
    }

    fn other_secret() -> Secret {
        Secret::parse(&format!("{SECRET_PREFIX}{}", B64.encode([7u8; 32]))).expect("secret")
    }

    fn headers(signature: &str) -> SignedHeaders<'_> {
        SignedHeaders {
            id: VECTOR_ID,
            timestamp: VECTOR_TIMESTAMP,
            signature,
        }
    }

    fn check(
        secrets: &[Secret],
        headers: SignedHeaders<'_>,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, SignatureError> {
        verify(secrets, headers, body, now, DEFAULT_TOLERANCE_SECONDS)
    }

    #[test]
    fn signs_the_published_example() {
        let timestamp = VECTOR_TIMESTAMP.parse().expect("number");
        assert_eq!(
            secret().sign(VECTOR_ID, timestamp, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn verifies_the_published_example() {
        let verified = check(
            &[secret()],
            headers(VECTOR_SIGNATURE),
            VECTOR_BODY,
            VECTOR_NOW,
        );
        assert_eq!(verified.map(|v| v.webhook_id), Ok(VECTOR_ID.to_owned()));
    }

    #[test]
    fn finds_the_matching_entry_among_others() {
        let header = format!("v1a,abc v2,xyz v1,bm9wZQ== {VECTOR_SIGNATURE}");
        assert!(check(&[secret()], headers(&header), VECTOR_BODY, VECTOR_NOW).is_ok());
    }

    #[test]
    fn any_changed_byte_of_body_or_id_fails() {
        for i in 0..VECTOR_BODY.len() {
            let mut body = VECTOR_BODY.to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                check(&[secret()], headers(VECTOR_SIGNATURE), &body, VECTOR_NOW),
                Err(SignatureError::NoMatchingSignature),
                "byte {i}"
            );
        }
        let changed_id = SignedHeaders {
            id: "msg_p5jXN8AQM9LWM0D4loKWxJeK",
            ..headers(VECTOR_SIGNATURE)
        };
        assert_eq!(
            check(&[secret()], changed_id, VECTOR_BODY, VECTOR_NOW),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn the_timestamp_is_part_of_the_signed_content() {
        // Within tolerance, but not the signed value: the MAC no longer matches.
        let moved = SignedHeaders {
            timestamp: "1614265331",
            ..headers(VECTOR_SIGNATURE)
        };
        assert_eq!(
            check(&[secret()], moved, VECTOR_BODY, VECTOR_NOW),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_configured_secret_may_sign() {
        let h = headers(VECTOR_SIGNATURE);
        assert_eq!(
            check(&[other_secret()], h, VECTOR_BODY, VECTOR_NOW),
            Err(SignatureError::NoMatchingSignature)
        );
        assert!(check(&[other_secret(), secret()], h, VECTOR_BODY, VECTOR_NOW).is_ok());
        assert!(check(&[secret(), other_secret()], h, VECTOR_BODY, VECTOR_NOW).is_ok());
        assert_eq!(
            check(&[], h, VECTOR_BODY, VECTOR_NOW),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_fail() {
        let h = headers(VECTOR_SIGNATURE);
        let tolerance = DEFAULT_TOLERANCE_SECONDS;
        assert!(check(&[secret()], h, VECTOR_BODY, VECTOR_NOW + tolerance).is_ok());
        assert!(check(&[secret()], h, VECTOR_BODY, VECTOR_NOW - tolerance).is_ok());
        assert_eq!(
            check(&[secret()], h, VECTOR_BODY, VECTOR_NOW + tolerance + 1),
            Err(SignatureError::Expired {
                age_seconds: tolerance + 1
            })
        );
        assert_eq!(
            check(&[secret()], h, VECTOR_BODY, VECTOR_NOW - tolerance - 1),
            Err(SignatureError::FromTheFuture {
                ahead_seconds: tolerance + 1
            })
        );
    }

    #[test]
    fn malformed_headers_are_named() {
        for bad in [
            "",
            "-1614265330",
            "+1614265330",
            "1614265330.5",
            " 1614265330",
            "1e9",
            "9999999999999",
        ] {
            let h = SignedHeaders {
                timestamp: bad,
                ..headers(VECTOR_SIGNATURE)
            };
            assert_eq!(
                check(&[secret()], h, VECTOR_BODY, VECTOR_NOW),
                Err(SignatureError::BadTimestamp),
                "{bad:?}"
            );
        }
        for bad in ["", "g0hM9SsE", "v1,", "v1,not base64!", "v1a,abc", "v1;abc"] {
            assert_eq!(
                check(&[secret()], headers(bad), VECTOR_BODY, VECTOR_NOW),
                Err(SignatureError::MalformedHeader(HEADER_SIGNATURE)),
                "{bad:?}"
            );
        }
        for bad in ["", "has space", "\u{7f}"] {
            let h = SignedHeaders {
                id: bad,
                ..headers(VECTOR_SIGNATURE)
            };
            assert_eq!(
                check(&[secret()], h, VECTOR_BODY, VECTOR_NOW),
                Err(SignatureError::MalformedHeader(HEADER_ID)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_the_first_entries_are_examined() {
        let filler = ["v1,bm9wZQ=="; MAX_SIGNATURE_ENTRIES].join(" ");
        let header = format!("{filler} {VECTOR_SIGNATURE}");
        assert_eq!(
            check(&[secret()], headers(&header), VECTOR_BODY, VECTOR_NOW),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn headers_are_read_from_a_request() {
        let mut map = HeaderMap::new();
        assert_eq!(
            SignedHeaders::from_headers(&map).map(|_| ()),
            Err(SignatureError::MissingHeader(HEADER_ID))
        );
        map.insert(HEADER_ID, VECTOR_ID.parse().expect("value"));
        map.insert(HEADER_TIMESTAMP, VECTOR_TIMESTAMP.parse().expect("value"));
        assert_eq!(
            SignedHeaders::from_headers(&map).map(|_| ()),
            Err(SignatureError::MissingHeader(HEADER_SIGNATURE))
        );
        map.insert(
            HEADER_SIGNATURE,
            axum::http::HeaderValue::from_bytes(b"v1,\xff").expect("value"),
        );
        assert_eq!(
            SignedHeaders::from_headers(&map).map(|_| ()),
            Err(SignatureError::MalformedHeader(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn secrets_need_the_prefix_base64_and_enough_bytes() {
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            Secret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(Secret::parse("whsec_c2hvcnQ="), Err(SecretError::TooShort));
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }
}
