use domain::Catalog;

use crate::authz::{Roles, RolesError};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error(transparent)]
    Roles(#[from] RolesError),
}

/// Configuration read once at cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Name of the Balances table (`BALANCES_TABLE`).
    pub balances_table: String,
    pub catalog: Catalog,
    /// Who may call which route: `BALANCES_TRADING_ROLES` and
    /// `BALANCES_ADMIN_ROLES`, comma-separated IAM role names.
    pub roles: Roles,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let balances_table = lookup("BALANCES_TABLE")
            .filter(|v| !v.is_empty())
            .ok_or(SettingsError::Missing("BALANCES_TABLE"))?;
        // Both lists must be stated, even empty: a forgotten variable must
        // not quietly mean "nobody" (or "everybody").
        let trading = lookup("BALANCES_TRADING_ROLES")
            .ok_or(SettingsError::Missing("BALANCES_TRADING_ROLES"))?;
        let admin =
            lookup("BALANCES_ADMIN_ROLES").ok_or(SettingsError::Missing("BALANCES_ADMIN_ROLES"))?;
        Ok(Settings {
            balances_table,
            catalog: Catalog::us_equities(),
            roles: Roles::parse(&trading, &admin)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn every_variable_is_required() {
        let all = [
            ("BALANCES_TABLE", "t"),
            ("BALANCES_TRADING_ROLES", "PlaceOrderRole,ReconcilerRole"),
            ("BALANCES_ADMIN_ROLES", ""),
        ];
        assert!(settings(&all).is_ok());
        for missing in 0..all.len() {
            let mut vars = all.to_vec();
            let (name, _) = vars.remove(missing);
            assert!(
                matches!(settings(&vars), Err(SettingsError::Missing(n)) if n == name),
                "{name}"
            );
        }
        let bad = [
            ("BALANCES_TABLE", "t"),
            ("BALANCES_TRADING_ROLES", "arn:aws:iam::1:role/X"),
            ("BALANCES_ADMIN_ROLES", ""),
        ];
        assert!(matches!(settings(&bad), Err(SettingsError::Roles(_))));
    }
}
