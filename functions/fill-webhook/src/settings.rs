use std::time::Duration;

use crate::secrets::DEFAULT_CACHE_SECONDS;
use crate::signature::DEFAULT_TOLERANCE_SECONDS;

/// Largest accepted timestamp tolerance: wider makes replays easier.
pub const MAX_TOLERANCE_SECONDS: u64 = 3_600;
/// Longest cache period of the signing secrets: a rotation must not wait
/// longer than this to be seen.
pub const MAX_CACHE_SECONDS: u64 = 3_600;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} must be a whole number of seconds from 1 to {max}, got {value:?}")]
    BadSeconds {
        name: &'static str,
        max: u64,
        value: String,
    },
}

/// Configuration read once at cold start. Holds no key material: the
/// signing secrets are read at run time (see [`crate::secrets`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `FILL_QUEUE_URL`: where reports go.
    pub fill_queue_url: String,
    /// `FILL_DEAD_LETTER_QUEUE_URL`: where well-signed but unreadable webhooks go.
    pub fill_dead_letter_queue_url: String,
    /// `WEBHOOK_SECRET_ID`: name or ARN of the Secrets Manager secret holding
    /// `{"signing_secrets": ["whsec_...", ...]}`.
    pub secret_id: String,
    /// `WEBHOOK_SECRET_CACHE_SECONDS` (default 300): how long a value read
    /// is used before it is read again; a rotation is seen within it.
    pub secret_cache: Duration,
    /// `WEBHOOK_TOLERANCE_SECONDS` (default 300).
    pub tolerance: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let required = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(SettingsError::Missing(name))
        };
        let seconds = |name: &'static str, default: u64, max: u64| match lookup(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .ok()
                .filter(|s| (1..=max).contains(s))
                .ok_or(SettingsError::BadSeconds { name, max, value }),
        };
        Ok(Settings {
            fill_queue_url: required("FILL_QUEUE_URL")?,
            fill_dead_letter_queue_url: required("FILL_DEAD_LETTER_QUEUE_URL")?,
            secret_id: required("WEBHOOK_SECRET_ID")?,
            secret_cache: Duration::from_secs(seconds(
                "WEBHOOK_SECRET_CACHE_SECONDS",
                DEFAULT_CACHE_SECONDS,
                MAX_CACHE_SECONDS,
            )?),
            tolerance: Duration::from_secs(seconds(
                "WEBHOOK_TOLERANCE_SECONDS",
                DEFAULT_TOLERANCE_SECONDS,
                MAX_TOLERANCE_SECONDS,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:exchange-webhook-AbCdEf";

    fn settings(vars: &[(&str, String)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    fn base() -> Vec<(&'static str, String)> {
        vec![
            ("FILL_QUEUE_URL", "http://q/fills".to_owned()),
            ("FILL_DEAD_LETTER_QUEUE_URL", "http://q/dlq".to_owned()),
            ("WEBHOOK_SECRET_ID", SECRET_ARN.to_owned()),
        ]
    }

    #[test]
    fn reads_every_variable_with_defaults() {
        let s = settings(&base()).expect("valid");
        assert_eq!(s.fill_queue_url, "http://q/fills");
        assert_eq!(s.fill_dead_letter_queue_url, "http://q/dlq");
        assert_eq!(s.secret_id, SECRET_ARN);
        assert_eq!(s.secret_cache, Duration::from_secs(300));
        assert_eq!(s.tolerance, Duration::from_secs(300));

        let mut vars = base();
        vars.push(("WEBHOOK_TOLERANCE_SECONDS", "60".into()));
        vars.push(("WEBHOOK_SECRET_CACHE_SECONDS", " 30 ".into()));
        let s = settings(&vars).expect("valid");
        assert_eq!(s.tolerance, Duration::from_secs(60));
        assert_eq!(s.secret_cache, Duration::from_secs(30));
    }

    #[test]
    fn missing_and_invalid_variables_are_refused() {
        for missing in [
            "FILL_QUEUE_URL",
            "FILL_DEAD_LETTER_QUEUE_URL",
            "WEBHOOK_SECRET_ID",
        ] {
            let vars: Vec<_> = base().into_iter().filter(|(k, _)| *k != missing).collect();
            assert!(
                matches!(settings(&vars), Err(SettingsError::Missing(n)) if n == missing),
                "{missing}"
            );
        }
        let blank: Vec<_> = base()
            .into_iter()
            .map(|(k, v)| match k {
                "WEBHOOK_SECRET_ID" => (k, "  ".to_owned()),
                _ => (k, v),
            })
            .collect();
        assert!(matches!(
            settings(&blank),
            Err(SettingsError::Missing("WEBHOOK_SECRET_ID"))
        ));
        for name in ["WEBHOOK_TOLERANCE_SECONDS", "WEBHOOK_SECRET_CACHE_SECONDS"] {
            for bad in ["0", "-5", "abc", "3601"] {
                let mut vars = base();
                vars.push((name, bad.into()));
                assert!(
                    matches!(settings(&vars), Err(SettingsError::BadSeconds { name: n, .. }) if n == name),
                    "{name}={bad}"
                );
            }
        }
    }
}
