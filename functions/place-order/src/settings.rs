use std::time::Duration;

use app::orders::OrderSettings;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is not a whole number: {value:?}")]
    NotANumber { name: &'static str, value: String },
}

/// Configuration read once at cold start; every variable is listed in the README.
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
        let defaults = OrderSettings::default();
        let mut orders = defaults.clone();
        orders.market_collar_bps = number("MARKET_COLLAR_BPS", defaults.market_collar_bps)?;
        orders.placement_window_ms = number("PLACEMENT_WINDOW_MS", defaults.placement_window_ms)?;
        Ok(Settings {
            trading_table: required("TRADING_TABLE")?,
            balances_url: required("BALANCES_URL")?,
            exchange_base_url: required("EXCHANGE_BASE_URL")?,
            call_timeout: Duration::from_millis(number("CALL_TIMEOUT_MS", 3_000)?),
            orders,
        })
    }
}
