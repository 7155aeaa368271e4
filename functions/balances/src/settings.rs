use domain::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
}

/// Configuration read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Name of the Balances table (`BALANCES_TABLE`).
    pub balances_table: String,
    pub catalog: Catalog,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let balances_table = std::env::var("BALANCES_TABLE")
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or(SettingsError::Missing("BALANCES_TABLE"))?;
        Ok(Settings {
            balances_table,
            catalog: Catalog::us_equities(),
        })
    }
}
