//! What the three functions that drive orders (place-order, fill-processor,
//! reconciler) share at cold start: their settings from the environment and
//! the order use cases over the AWS adapters, built once.

use std::time::Duration;

use app::orders::{OrderSettings, Orders};
use app::SystemClock;
use domain::Catalog;

use crate::balances_http::HttpBalances;
use crate::dynamodb::DynamoOrderStore;
use crate::exchange_http::{HttpExchange, Venue};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is not a whole number: {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("cannot build a client: {0}")]
    Client(String),
    #[error("environment variable {name} is not one of {allowed}: {value:?}")]
    NotOneOf {
        name: &'static str,
        allowed: &'static str,
        value: String,
    },
}

pub fn required_env(name: &'static str) -> Result<String, SettingsError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(SettingsError::Missing(name))
}

pub fn number_env(name: &'static str, default: u64) -> Result<u64, SettingsError> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| SettingsError::NotANumber { name, value }),
        Err(_) => Ok(default),
    }
}

/// Settings of every function that drives orders; each variable is listed in the README.
#[derive(Debug, Clone)]
pub struct OrderServiceSettings {
    pub trading_table: String,
    pub balances_url: String,
    pub exchange_base_url: String,
    pub call_timeout: Duration,
    /// Sign Balances calls with SigV4 (the Balances API is IAM-authorised in AWS).
    pub balances_iam_auth: bool,
    /// The venue's dialect and guarantees (`VENUE_PROFILE`).
    pub venue: Venue,
    pub orders: OrderSettings,
}

impl OrderServiceSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let defaults = OrderSettings::default();
        let recovery = defaults.recovery.clone();
        let calendar = defaults.calendar.clone();
        let orders = OrderSettings {
            market_collar_bps: number_env("MARKET_COLLAR_BPS", defaults.market_collar_bps)?,
            submit_window_ms: number_env("SUBMIT_WINDOW_MS", defaults.submit_window_ms)?,
            placement_window_ms: number_env("PLACEMENT_WINDOW_MS", defaults.placement_window_ms)?,
            handler_budget_ms: number_env("HANDLER_BUDGET_MS", defaults.handler_budget_ms)?,
            recovery: domain::order::RecoveryPolicy {
                clock_skew_margin_ms: number_env(
                    "CLOCK_SKEW_MARGIN_MS",
                    recovery.clock_skew_margin_ms,
                )?,
                max_in_flight_ms: number_env("MAX_IN_FLIGHT_MS", recovery.max_in_flight_ms)?,
                retry_base_ms: number_env("RETRY_BASE_MS", recovery.retry_base_ms)?,
                retry_max_ms: number_env("RETRY_MAX_MS", recovery.retry_max_ms)?,
                gap_grace_ms: number_env("GAP_GRACE_MS", recovery.gap_grace_ms)?,
                market_silence_ms: number_env("MARKET_SILENCE_MS", recovery.market_silence_ms)?,
                flag_after_ms: number_env("FLAG_AFTER_MS", recovery.flag_after_ms)?,
                ..recovery
            },
            calendar: app::orders::TradingCalendar {
                close_utc_ms: number_env("SESSION_CLOSE_UTC_MS", calendar.close_utc_ms)?,
                check_after_close_ms: number_env(
                    "EOD_CHECK_AFTER_CLOSE_MS",
                    calendar.check_after_close_ms,
                )?,
            },
            ..defaults
        };
        let profile = std::env::var("VENUE_PROFILE").unwrap_or_else(|_| "tombstone".into());
        let venue = Venue::simulator(&profile).ok_or(SettingsError::NotOneOf {
            name: "VENUE_PROFILE",
            allowed: "tombstone, deadline, plain",
            value: profile,
        })?;
        Ok(OrderServiceSettings {
            trading_table: required_env("TRADING_TABLE")?,
            balances_url: required_env("BALANCES_URL")?,
            exchange_base_url: required_env("EXCHANGE_BASE_URL")?,
            call_timeout: Duration::from_millis(number_env("CALL_TIMEOUT_MS", 3_000)?),
            balances_iam_auth: std::env::var("BALANCES_IAM_AUTH").is_ok_and(|v| v == "true"),
            venue,
            orders,
        })
    }
}

/// The order use cases as the Lambda functions run them.
pub type AwsOrders = Orders<DynamoOrderStore, HttpBalances, HttpExchange, SystemClock>;

pub fn aws_orders(
    config: &aws_config::SdkConfig,
    settings: &OrderServiceSettings,
) -> Result<AwsOrders, SettingsError> {
    let catalog = Catalog::us_equities();
    let client = |e: &dyn std::fmt::Display| SettingsError::Client(e.to_string());
    let store = DynamoOrderStore::new(
        aws_sdk_dynamodb::Client::new(config),
        settings.trading_table.clone(),
    );
    let mut balances = HttpBalances::new(
        &settings.balances_url,
        catalog.clone(),
        settings.call_timeout,
    )
    .map_err(|e| client(&e))?;
    if settings.balances_iam_auth {
        balances = balances.signed_with(config).map_err(|e| client(&e))?;
    }
    let exchange = HttpExchange::new(&settings.exchange_base_url, catalog, settings.call_timeout)
        .map_err(|e| client(&e))?
        .with_venue(settings.venue.clone());
    Ok(Orders::new(
        store,
        balances,
        exchange,
        SystemClock,
        settings.orders.clone(),
    ))
}
