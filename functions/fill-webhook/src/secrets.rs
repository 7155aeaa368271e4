//! The signing secrets, read at run time and cached, so a rotation needs no
//! redeploy.
//!
//! The secret (Secrets Manager, `WEBHOOK_SECRET_ID`) holds JSON:
//! `{"signing_secrets": ["whsec_…", "whsec_…"]}`. A signature by any listed
//! secret is accepted. Rotating is two writes of the secret's value: first
//! the new secret listed beside the old one (the venue may switch at any
//! time after every instance has seen it, i.e. after one cache period),
//! later the new one alone.
//!
//! [`CachedKeys`] keeps the value for the cache period
//! (`WEBHOOK_SECRET_CACHE_SECONDS`), so each change is picked up within
//! it. When a refresh fails, the last good value is used on (logged) and the
//! refresh is tried again after [`RETRY_AFTER_FAILURE_MS`]; with no good
//! value yet, the webhook answers `503` and the venue delivers again.

use std::future::Future;
use std::sync::{Arc, Mutex};

use app::Clock;
use aws_adapters::secrets::SecretsManagerSecret;
use serde::{Deserialize, Serialize};

use crate::signature::{Secret, SecretError};

/// The JSON field that lists the secrets.
pub const SECRETS_FIELD: &str = "signing_secrets";
/// Most secrets listed at once: bounds the MACs computed per delivery
/// (a rotation needs two).
pub const MAX_SIGNING_SECRETS: usize = 5;
/// Default cache period (`WEBHOOK_SECRET_CACHE_SECONDS`).
pub const DEFAULT_CACHE_SECONDS: u64 = 300;
/// After a failed refresh, the last good value serves this long (or the
/// cache period, if shorter) before the next try, so an outage of Secrets
/// Manager costs one slow request per instance and period, not every request.
pub const RETRY_AFTER_FAILURE_MS: u64 = 10_000;

/// The secret's value, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    pub signing_secrets: Vec<String>,
}

impl SecretValue {
    /// The JSON to store for these `whsec_…` secrets.
    pub fn json(secrets: &[&str]) -> String {
        let value = SecretValue {
            signing_secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        };
        // A struct of strings always serialises.
        serde_json::to_string(&value).unwrap_or_default()
    }
}

/// Why a stored value is unusable. Never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretValueError {
    #[error("not JSON of the form {{\"{SECRETS_FIELD}\": [\"whsec_...\"]}}")]
    Shape,
    #[error("`{SECRETS_FIELD}` lists no secret")]
    Empty,
    #[error("`{SECRETS_FIELD}` lists more than {MAX_SIGNING_SECRETS} secrets")]
    TooMany,
    #[error("secret number {position} is unusable: {source}")]
    BadSecret {
        position: usize,
        source: SecretError,
    },
}

/// Parses the stored JSON into the secrets it lists.
pub fn parse_value(text: &str) -> Result<Vec<Secret>, SecretValueError> {
    // The serde error could quote the value: it is not passed on.
    let value: SecretValue = serde_json::from_str(text).map_err(|_| SecretValueError::Shape)?;
    if value.signing_secrets.is_empty() {
        return Err(SecretValueError::Empty);
    }
    if value.signing_secrets.len() > MAX_SIGNING_SECRETS {
        return Err(SecretValueError::TooMany);
    }
    value
        .signing_secrets
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Secret::parse(text).map_err(|source| SecretValueError::BadSecret {
                position: i + 1,
                source,
            })
        })
        .collect()
}

/// Where the stored value is read from (Secrets Manager in AWS and on the
/// local stack).
pub trait SecretSource: Send + Sync + 'static {
    /// The current value, or why it could not be read (no key material).
    fn read(&self) -> impl Future<Output = Result<String, String>> + Send;
}

impl SecretSource for SecretsManagerSecret {
    async fn read(&self) -> Result<String, String> {
        self.read_string().await.map_err(|e| e.to_string())
    }
}

/// No signing secret can be had right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no signing secret available: {0}")]
pub struct KeysUnavailable(pub String);

/// The secrets a delivery may be signed with, right now.
pub trait SigningKeys: Send + Sync + 'static {
    fn current(&self) -> impl Future<Output = Result<Arc<[Secret]>, KeysUnavailable>> + Send;
}

/// Secrets that never change (unit tests).
#[derive(Debug, Clone)]
pub struct FixedKeys(Arc<[Secret]>);

impl FixedKeys {
    pub fn new(secrets: Vec<Secret>) -> Self {
        FixedKeys(secrets.into())
    }
}

impl SigningKeys for FixedKeys {
    async fn current(&self) -> Result<Arc<[Secret]>, KeysUnavailable> {
        Ok(self.0.clone())
    }
}

#[derive(Debug, Clone)]
struct Cached {
    secrets: Arc<[Secret]>,
    /// Served without asking the source until then (clock ms).
    fresh_until_ms: u64,
}

/// The source's value, cached for `ttl_ms` on `clock`.
pub struct CachedKeys<S, C> {
    source: S,
    clock: C,
    ttl_ms: u64,
    /// The last good value. Never held across an await.
    cached: Mutex<Option<Cached>>,
    /// One refresh at a time: concurrent requests wait for it instead of
    /// each asking the source.
    refreshing: tokio::sync::Mutex<()>,
}

impl<S: SecretSource, C: Clock> CachedKeys<S, C> {
    pub fn new(source: S, clock: C, ttl: std::time::Duration) -> Self {
        CachedKeys {
            source,
            clock,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            cached: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Cached> {
        // A panic elsewhere while holding the lock leaves a whole value.
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn store(&self, value: Cached) {
        *self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
    }

    fn fresh(&self) -> Option<Arc<[Secret]>> {
        let now = self.clock.now_ms();
        self.cached()
            .filter(|c| now < c.fresh_until_ms)
            .map(|c| c.secrets)
    }

    async fn refresh(&self) -> Result<Arc<[Secret]>, KeysUnavailable> {
        let _turn = self.refreshing.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(secrets) = self.fresh() {
            return Ok(secrets);
        }
        let read = self.source.read().await;
        let now = self.clock.now_ms();
        let parsed = read.and_then(|text| parse_value(&text).map_err(|e| e.to_string()));
        match (parsed, self.cached()) {
            (Ok(secrets), _) => {
                let secrets: Arc<[Secret]> = secrets.into();
                self.store(Cached {
                    secrets: secrets.clone(),
                    fresh_until_ms: now.saturating_add(self.ttl_ms),
                });
                tracing::debug!(count = secrets.len(), "signing secrets refreshed");
                Ok(secrets)
            }
            (Err(error), Some(stale)) => {
                tracing::warn!(%error, "signing secrets not refreshed; the last good ones stay in use");
                let retry_ms = self.ttl_ms.min(RETRY_AFTER_FAILURE_MS);
                self.store(Cached {
                    secrets: stale.secrets.clone(),
                    fresh_until_ms: now.saturating_add(retry_ms),
                });
                Ok(stale.secrets)
            }
            (Err(error), None) => {
                tracing::error!(%error, "no signing secrets: webhooks are answered 503");
                Err(KeysUnavailable(error))
            }
        }
    }
}

impl<S: SecretSource, C: Clock + 'static> SigningKeys for CachedKeys<S, C> {
    async fn current(&self) -> Result<Arc<[Secret]>, KeysUnavailable> {
        match self.fresh() {
            Some(secrets) => Ok(secrets),
            None => self.refresh().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::ManualClock;
    use base64::Engine as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn whsec(byte: u8) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        format!("whsec_{encoded}")
    }

    /// A source whose value a test sets (`None`: reads fail), counting reads.
    #[derive(Clone, Default)]
    struct Script {
        value: Arc<Mutex<Option<String>>>,
        reads: Arc<AtomicUsize>,
    }

    impl Script {
        fn set(&self, value: Option<String>) {
            *self.value.lock().expect("lock") = value;
        }
    }

    impl SecretSource for Script {
        async fn read(&self) -> Result<String, String> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.value
                .lock()
                .expect("lock")
                .clone()
                .ok_or_else(|| "unreachable".to_owned())
        }
    }

    #[test]
    fn values_parse_or_say_why_not_without_showing_keys() {
        let two = SecretValue::json(&[&whsec(1), &whsec(2)]);
        assert_eq!(parse_value(&two).map(|s| s.len()), Ok(2));
        assert_eq!(parse_value("whsec_x"), Err(SecretValueError::Shape));
        assert_eq!(
            parse_value(r#"{"signing_secrets":[],"other":1}"#),
            Err(SecretValueError::Shape)
        );
        assert_eq!(
            parse_value(r#"{"signing_secrets":[]}"#),
            Err(SecretValueError::Empty)
        );
        let many: Vec<String> = (0..6).map(whsec).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            parse_value(&SecretValue::json(&many)),
            Err(SecretValueError::TooMany)
        );
        let bad = SecretValue::json(&[&whsec(1), "whsec_c2hvcnQ="]);
        let error = parse_value(&bad).expect_err("too short");
        assert_eq!(
            error,
            SecretValueError::BadSecret {
                position: 2,
                source: SecretError::TooShort
            }
        );
        assert!(!error.to_string().contains("c2hvcnQ"));
    }

    #[tokio::test]
    async fn a_value_is_read_once_per_period_and_a_change_seen_within_it() {
        let source = Script::default();
        source.set(Some(SecretValue::json(&[&whsec(1)])));
        let clock = ManualClock::at(1_000_000);
        let keys = CachedKeys::new(source.clone(), clock.clone(), Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(keys.current().await.map(|s| s.len()), Ok(1));
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);

        source.set(Some(SecretValue::json(&[&whsec(2), &whsec(1)])));
        clock.advance_ms(59_999);
        assert_eq!(keys.current().await.map(|s| s.len()), Ok(1), "still cached");
        clock.advance_ms(1);
        assert_eq!(keys.current().await.map(|s| s.len()), Ok(2), "picked up");
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_value_and_retries_later() {
        let source = Script::default();
        let clock = ManualClock::at(1_000_000);
        let keys = CachedKeys::new(source.clone(), clock.clone(), Duration::from_secs(300));
        assert!(keys.current().await.is_err(), "nothing to fall back on");
        source.set(Some("not json".into()));
        assert!(
            keys.current().await.is_err(),
            "an unusable value is no value"
        );

        source.set(Some(SecretValue::json(&[&whsec(1)])));
        assert_eq!(keys.current().await.map(|s| s.len()), Ok(1));
        source.set(None);
        clock.advance_ms(300_000);
        assert_eq!(keys.current().await.map(|s| s.len()), Ok(1), "last good");
        let reads = source.reads.load(Ordering::SeqCst);
        clock.advance_ms(RETRY_AFTER_FAILURE_MS - 1);
        assert!(keys.current().await.is_ok());
        assert_eq!(source.reads.load(Ordering::SeqCst), reads, "no retry yet");
        clock.advance_ms(1);
        source.set(Some(SecretValue::json(&[&whsec(1), &whsec(2)])));
        assert_eq!(keys.current().await.map(|s| s.len()), Ok(2), "recovered");
    }
}
