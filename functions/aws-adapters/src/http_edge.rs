//! What the HTTP edges of the functions share when reading a request: the
//! idempotency key header and the JSON content type. Each edge maps the
//! errors to its own problem+json answer.

use domain::ids::IdError;
use domain::IdempotencyKey;
use reqwest::header::{HeaderMap, CONTENT_TYPE};

/// Header that carries the idempotency key of a mutating call.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header {IDEMPOTENCY_KEY_HEADER} is required")]
    MissingKey,
    #[error(transparent)]
    InvalidKey(#[from] IdError),
}

pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, HeaderError> {
    let text = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(HeaderError::MissingKey)?;
    Ok(IdempotencyKey::parse(text)?)
}

/// Whether the body is declared as JSON (`application/json`, any parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_the_key_and_the_content_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers), Err(HeaderError::MissingKey));
        assert!(!is_json(&headers));
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("order-1"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(
            idempotency_key(&headers).map(|k| k.to_string()),
            Ok("order-1".into())
        );
        assert!(is_json(&headers));
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static(""));
        assert!(matches!(
            idempotency_key(&headers),
            Err(HeaderError::InvalidKey(_))
        ));
    }
}
