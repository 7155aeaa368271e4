use app::orders::RetryPolicy;
use aws_adapters::order_service::{number_env, SettingsError};

/// Bounds of one run and the retry policy, read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry: RetryPolicy,
    pub max_orders_per_run: usize,
    /// Longest run, whatever time the invocation has left.
    pub max_run_ms: u64,
    /// Time kept back from the invocation's deadline for the last order in flight.
    pub safety_margin_ms: u64,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let retry = RetryPolicy::default();
        let flag_after = number_env("FLAG_AFTER_ATTEMPTS", u64::from(retry.flag_after_attempts))?;
        Ok(Settings {
            retry: RetryPolicy {
                flag_after_attempts: u32::try_from(flag_after).unwrap_or(u32::MAX),
                ..retry
            },
            max_orders_per_run: usize::try_from(number_env("MAX_ORDERS_PER_RUN", 200)?)
                .unwrap_or(usize::MAX),
            max_run_ms: number_env("MAX_RUN_MS", 45_000)?,
            safety_margin_ms: number_env("SAFETY_MARGIN_MS", 10_000)?,
        })
    }
}
