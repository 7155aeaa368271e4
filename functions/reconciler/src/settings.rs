use std::time::Duration;

use app::orders::{OrderSettings, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is not a whole number: {value:?}")]
    NotANumber { name: &'static str, value: String },
}

/// Configuration read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub trading_table: String,
    pub balances_url: String,
    pub exchange_base_url: String,
    pub call_timeout: Duration,
    pub orders: OrderSettings,
    pub retry: RetryPolicy,
    pub max_orders_per_run: usize,
    /// Longest run, whatever time the invocation has left.
    pub max_run_ms: u64,
    /// Time kept back from the invocation's deadline for the last order in flight.
    pub safety_margin_ms: u64,
}

fn required(name: &'static str) -> Result<String, SettingsError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(SettingsError::Missing(name))
}

fn number(name: &'static str, default: u64) -> Result<u64, SettingsError> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| SettingsError::NotANumber { name, value }),
        Err(_) => Ok(default),
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let retry = RetryPolicy::default();
        Ok(Settings {
            trading_table: required("TRADING_TABLE")?,
            balances_url: required("BALANCES_URL")?,
            exchange_base_url: required("EXCHANGE_BASE_URL")?,
            call_timeout: Duration::from_millis(number("CALL_TIMEOUT_MS", 3_000)?),
            orders: OrderSettings::default(),
            retry: RetryPolicy {
                flag_after_attempts: u32::try_from(number(
                    "FLAG_AFTER_ATTEMPTS",
                    u64::from(retry.flag_after_attempts),
                )?)
                .unwrap_or(u32::MAX),
                ..retry
            },
            max_orders_per_run: usize::try_from(number("MAX_ORDERS_PER_RUN", 200)?)
                .unwrap_or(usize::MAX),
            max_run_ms: number("MAX_RUN_MS", 45_000)?,
            safety_margin_ms: number("SAFETY_MARGIN_MS", 10_000)?,
        })
    }
}
