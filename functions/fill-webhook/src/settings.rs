use std::time::Duration;

use crate::signature::{Secret, SecretError, DEFAULT_TOLERANCE_SECONDS};

/// Largest accepted timestamp tolerance: wider makes replays easier.
pub const MAX_TOLERANCE_SECONDS: u64 = 3_600;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// Names the variable and the secret's position, never its value.
    #[error("environment variable {name}: secret number {position} is unusable: {source}")]
    BadSecret {
        name: &'static str,
        position: usize,
        source: SecretError,
    },
    #[error("environment variable {name} must be a whole number of seconds from 1 to {MAX_TOLERANCE_SECONDS}, got {value:?}")]
    BadTolerance { name: &'static str, value: String },
}

/// Configuration read once at cold start. `Debug` shows no key material.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `FILL_QUEUE_URL`: where reports go.
    pub fill_queue_url: String,
    /// `FILL_DEAD_LETTER_QUEUE_URL`: where well-signed but unreadable webhooks go.
    pub fill_dead_letter_queue_url: String,
    /// `WEBHOOK_SECRETS`: space-separated `whsec_...`; all are accepted (rotation).
    pub secrets: Vec<Secret>,
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
                .filter(|v| !v.trim().is_empty())
                .ok_or(SettingsError::Missing(name))
        };
        let secrets = required("WEBHOOK_SECRETS")?
            .split_whitespace()
            .enumerate()
            .map(|(i, text)| {
                Secret::parse(text).map_err(|source| SettingsError::BadSecret {
                    name: "WEBHOOK_SECRETS",
                    position: i + 1,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tolerance_seconds = match lookup("WEBHOOK_TOLERANCE_SECONDS") {
            None => DEFAULT_TOLERANCE_SECONDS,
            Some(value) => value
                .trim()
                .parse()
                .ok()
                .filter(|s| (1..=MAX_TOLERANCE_SECONDS).contains(s))
                .ok_or(SettingsError::BadTolerance {
                    name: "WEBHOOK_TOLERANCE_SECONDS",
                    value,
                })?,
        };
        Ok(Settings {
            fill_queue_url: required("FILL_QUEUE_URL")?,
            fill_dead_letter_queue_url: required("FILL_DEAD_LETTER_QUEUE_URL")?,
            secrets,
            tolerance: Duration::from_secs(tolerance_seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SECRET_B: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn settings(vars: &[(&str, String)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    fn base(secrets: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FILL_QUEUE_URL", "http://q/fills".to_owned()),
            ("FILL_DEAD_LETTER_QUEUE_URL", "http://q/dlq".to_owned()),
            ("WEBHOOK_SECRETS", secrets.to_owned()),
        ]
    }

    #[test]
    fn reads_every_variable_with_defaults() {
        let vars = base(&format!("{SECRET_A}  {SECRET_B}"));
        let s = settings(&vars).expect("valid");
        assert_eq!(s.fill_queue_url, "http://q/fills");
        assert_eq!(s.fill_dead_letter_queue_url, "http://q/dlq");
        assert_eq!(s.secrets.len(), 2);
        assert_eq!(s.tolerance, Duration::from_secs(300));
        assert!(!format!("{s:?}").contains("MfKQ9r8"));

        let mut vars = base(SECRET_A);
        vars.push(("WEBHOOK_TOLERANCE_SECONDS", "60".into()));
        assert_eq!(
            settings(&vars).expect("valid").tolerance,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_bad_secret_is_named_by_variable_and_position_but_never_shown() {
        let bad = "whsec_c2hvcnQ="; // 5 bytes
        let vars = base(&format!("{SECRET_A} {bad}"));
        let error = settings(&vars).expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("WEBHOOK_SECRETS") && text.contains("number 2"),
            "{text}"
        );
        assert!(!text.contains("c2hvcnQ"), "{text}");
        assert!(matches!(
            settings(&base("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
            Err(SettingsError::BadSecret {
                source: SecretError::MissingPrefix,
                ..
            })
        ));
    }

    #[test]
    fn missing_and_invalid_variables_are_refused() {
        assert!(matches!(
            settings(&base("  ")),
            Err(SettingsError::Missing("WEBHOOK_SECRETS"))
        ));
        let vars = base(SECRET_A);
        assert!(matches!(
            settings(&vars[1..]),
            Err(SettingsError::Missing("FILL_QUEUE_URL"))
        ));
        for bad in ["0", "-5", "abc", "3601"] {
            let mut vars = base(SECRET_A);
            vars.push(("WEBHOOK_TOLERANCE_SECONDS", bad.into()));
            assert!(
                matches!(settings(&vars), Err(SettingsError::BadTolerance { .. })),
                "{bad}"
            );
        }
    }
}
