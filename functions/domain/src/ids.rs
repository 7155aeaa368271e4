//! Identifiers that arrive from outside, parsed once at the edge.

use serde::{Deserialize, Serialize};

pub const MAX_ACCOUNT_ID_LEN: usize = 64;
/// Stripe's limit; keys derived by the platform (`<order>:fill:<exec_id>`) fit well inside.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "account id must be 1 to {MAX_ACCOUNT_ID_LEN} characters of A-Z, a-z, 0-9, '-' or '_'"
    )]
    InvalidAccountId,
    #[error("idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters")]
    InvalidIdempotencyKey,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_ACCOUNT_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid
            .then(|| AccountId(text.to_owned()))
            .ok_or(IdError::InvalidAccountId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AccountId::parse(&value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A caller-chosen key that makes a request safe to repeat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1 to 255 printable ASCII characters (space included, control characters not).
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && text.bytes().all(|b| (0x20..=0x7e).contains(&b));
        valid
            .then(|| IdempotencyKey(text.to_owned()))
            .ok_or(IdError::InvalidIdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        IdempotencyKey::parse(&value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(value: IdempotencyKey) -> Self {
        value.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("acct-42_x").is_ok());
        for bad in ["", "a b", "a/b", "é", &"a".repeat(65)] {
            assert_eq!(
                AccountId::parse(bad),
                Err(IdError::InvalidAccountId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("0f8c:reserve").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "tab\there", "new\nline", "ключ", &"k".repeat(256)] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(IdError::InvalidIdempotencyKey),
                "{bad:?}"
            );
        }
    }
}
