use std::time::Duration;

use app::orders::OrderSettings;

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
}

fn required(name: &'static str) -> Result<String, SettingsError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(SettingsError::Missing(name))
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let timeout_ms = match std::env::var("CALL_TIMEOUT_MS") {
            Ok(value) => value.parse().map_err(|_| SettingsError::NotANumber {
                name: "CALL_TIMEOUT_MS",
                value,
            })?,
            Err(_) => 3_000,
        };
        Ok(Settings {
            trading_table: required("TRADING_TABLE")?,
            balances_url: required("BALANCES_URL")?,
            exchange_base_url: required("EXCHANGE_BASE_URL")?,
            call_timeout: Duration::from_millis(timeout_ms),
            orders: OrderSettings::default(),
        })
    }
}
