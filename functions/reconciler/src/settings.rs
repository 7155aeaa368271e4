use aws_adapters::order_service::{number_env, SettingsError};

/// Bounds of one run, read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Index entries read per query.
    pub page_size: usize,
    /// Longest run, whatever time the invocation has left.
    pub max_run_ms: u64,
    /// Time kept back from the invocation's deadline for the orders in flight.
    pub safety_margin_ms: u64,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Settings {
            page_size: usize::try_from(number_env("INDEX_PAGE_SIZE", 100)?).unwrap_or(100),
            max_run_ms: number_env("MAX_RUN_MS", 45_000)?,
            safety_margin_ms: number_env("SAFETY_MARGIN_MS", 10_000)?,
        })
    }
}
