//! JSON of the Balances API. Amounts are decimal strings in the asset's unit
//! (`"1500.00"` USD, `"10"` shares). Parsing goes through the instrument
//! catalog, so an unknown asset never reaches the ledger.

use std::collections::BTreeMap;

use domain::asset::AssetError;
use domain::money::{format_units, MoneyError};
use domain::{
    AccountId, Amount, Asset, Balance, Catalog, Failure, IdempotencyKey, Operation,
    OperationRecord, Outcome, Price, Quantity, Side,
};
use serde::{Deserialize, Serialize};

pub use crate::http_edge::IDEMPOTENCY_KEY_HEADER;
/// Set to `true` on a response answered from a stored operation.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Problem types (RFC 9457 `type`), shared by the service and its client.
pub mod problem_type {
    pub const INVALID_REQUEST: &str = "/problems/invalid-request";
    pub const INSUFFICIENT_FUNDS: &str = "/problems/insufficient-funds";
    pub const KEY_REUSED: &str = "/problems/idempotency-key-reused";
    pub const UNKNOWN_ACCOUNT: &str = "/problems/unknown-account";
    pub const OPERATION_NOT_FOUND: &str = "/problems/operation-not-found";
    pub const UNAVAILABLE: &str = "/problems/unavailable";
    /// The caller's IAM role may not do this (`403`).
    pub const FORBIDDEN: &str = "/problems/forbidden";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{field}: {source}")]
    Amount {
        field: &'static str,
        source: MoneyError,
    },
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error("{0}")]
    Malformed(String),
}

fn amount(field: &'static str, text: &str, scale: u32) -> Result<Amount, WireError> {
    Amount::parse(text, scale).map_err(|source| WireError::Amount { field, source })
}

/// An operation as sent to `POST /accounts/{account}/operations` (reserve,
/// release, settle) or `POST /admin/accounts/{account}/operations` (deposit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperationBody {
    Deposit {
        asset: String,
        amount: String,
    },
    Reserve {
        asset: String,
        amount: String,
    },
    Release {
        asset: String,
        amount: String,
    },
    /// `from_reserved`: how much of the cost the order's reservation covers;
    /// `release`: the rest of the reservation returned with it (both in the
    /// paying asset's unit: cash for a buy, shares for a sell).
    Settle {
        symbol: String,
        side: Side,
        quantity: String,
        price: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_reserved: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release: Option<String>,
    },
}

impl OperationBody {
    pub fn parse(&self, catalog: &Catalog) -> Result<Operation, WireError> {
        let asset_amount = |asset: &str, text: &str| -> Result<(Asset, Amount), WireError> {
            let asset = catalog.asset(asset)?;
            let amount = amount("amount", text, asset.scale())?;
            Ok((asset, amount))
        };
        Ok(match self {
            OperationBody::Deposit { asset, amount } => {
                let (asset, amount) = asset_amount(asset, amount)?;
                Operation::Deposit { asset, amount }
            }
            OperationBody::Reserve { asset, amount } => {
                let (asset, amount) = asset_amount(asset, amount)?;
                Operation::Reserve { asset, amount }
            }
            OperationBody::Release { asset, amount } => {
                let (asset, amount) = asset_amount(asset, amount)?;
                Operation::Release { asset, amount }
            }
            OperationBody::Settle {
                symbol,
                side,
                quantity,
                price,
                from_reserved,
                release,
            } => {
                let symbol = catalog.symbol(symbol)?;
                let paying_scale = match side {
                    Side::Buy => Asset::Cash.scale(),
                    Side::Sell => 0,
                };
                let units = |field: &'static str, text: &Option<String>| match text {
                    None => Ok(0),
                    Some(text) => domain::money::parse_units(text, paying_scale)
                        .map_err(|source| WireError::Amount { field, source }),
                };
                let from_reserved_units = units("from_reserved", from_reserved)?;
                let release_units = units("release", release)?;
                let quantity = Quantity::parse(quantity).map_err(|source| WireError::Amount {
                    field: "quantity",
                    source,
                })?;
                let price = Price::parse(price).map_err(|source| WireError::Amount {
                    field: "price",
                    source,
                })?;
                catalog.check_tick(&symbol, price)?;
                // Refuse here what the ledger could not compute.
                domain::money::notional(price, quantity).map_err(|source| WireError::Amount {
                    field: "quantity x price",
                    source,
                })?;
                for (field, value) in [
                    ("from_reserved", from_reserved_units),
                    ("release", release_units),
                ] {
                    if value > domain::money::MAX_AMOUNT_UNITS {
                        return Err(WireError::Amount {
                            field,
                            source: MoneyError::TooLarge {
                                max: format_units(domain::money::MAX_AMOUNT_UNITS, paying_scale),
                            },
                        });
                    }
                }
                Operation::Settle {
                    symbol,
                    side: *side,
                    quantity,
                    price,
                    from_reserved_units,
                    release_units,
                }
            }
        })
    }

    pub fn from_operation(operation: &Operation) -> Self {
        let text = |asset: &Asset, amount: &Amount| {
            (asset.code().to_owned(), amount.format(asset.scale()))
        };
        match operation {
            Operation::Deposit { asset, amount } => {
                let (asset, amount) = text(asset, amount);
                OperationBody::Deposit { asset, amount }
            }
            Operation::Reserve { asset, amount } => {
                let (asset, amount) = text(asset, amount);
                OperationBody::Reserve { asset, amount }
            }
            Operation::Release { asset, amount } => {
                let (asset, amount) = text(asset, amount);
                OperationBody::Release { asset, amount }
            }
            Operation::Settle {
                symbol,
                side,
                quantity,
                price,
                from_reserved_units,
                release_units,
            } => {
                let scale = match side {
                    Side::Buy => Asset::Cash.scale(),
                    Side::Sell => 0,
                };
                let units = |u: u64| (u > 0).then(|| format_units(u, scale));
                OperationBody::Settle {
                    symbol: symbol.to_string(),
                    side: *side,
                    quantity: quantity.to_string(),
                    price: price.to_string(),
                    from_reserved: units(*from_reserved_units),
                    release: units(*release_units),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeBody {
    Succeeded,
    /// Took effect, with part of the cost owed (`shortfall`).
    SucceededWithShortfall,
    Failed,
}

/// What a settlement left owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortfallBody {
    pub asset: String,
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBody {
    /// Machine-readable reason, e.g. `insufficient_funds`.
    pub code: String,
    pub asset: String,
}

/// A stored operation, as answered by the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationRecordBody {
    pub account: String,
    pub idempotency_key: String,
    pub operation: OperationBody,
    pub outcome: OutcomeBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<ShortfallBody>,
    pub recorded_at_ms: u64,
}

impl OperationRecordBody {
    pub fn from_record(record: &OperationRecord) -> Self {
        let (outcome, failure, shortfall) = match &record.outcome {
            Outcome::Succeeded => (OutcomeBody::Succeeded, None, None),
            Outcome::Shortfall { asset, units } => (
                OutcomeBody::SucceededWithShortfall,
                None,
                Some(ShortfallBody {
                    asset: asset.code().into(),
                    amount: format_units(*units, asset.scale()),
                }),
            ),
            Outcome::Failed(Failure::InsufficientFunds { asset }) => (
                OutcomeBody::Failed,
                Some(FailureBody {
                    code: "insufficient_funds".into(),
                    asset: asset.code().into(),
                }),
                None,
            ),
        };
        OperationRecordBody {
            account: record.account.to_string(),
            idempotency_key: record.key.to_string(),
            operation: OperationBody::from_operation(&record.operation),
            outcome,
            failure,
            shortfall,
            recorded_at_ms: record.recorded_at_ms,
        }
    }

    pub fn parse(&self, catalog: &Catalog) -> Result<OperationRecord, WireError> {
        let malformed = |what: String| WireError::Malformed(what);
        let account = AccountId::parse(&self.account).map_err(|e| malformed(e.to_string()))?;
        let key =
            IdempotencyKey::parse(&self.idempotency_key).map_err(|e| malformed(e.to_string()))?;
        let operation = self.operation.parse(catalog)?;
        let outcome = match (&self.outcome, &self.failure, &self.shortfall) {
            (OutcomeBody::Succeeded, None, None) => Outcome::Succeeded,
            (OutcomeBody::SucceededWithShortfall, None, Some(shortfall)) => {
                let asset = catalog.asset(&shortfall.asset)?;
                let units = domain::money::parse_units(&shortfall.amount, asset.scale()).map_err(
                    |source| WireError::Amount {
                        field: "shortfall",
                        source,
                    },
                )?;
                Outcome::Shortfall { asset, units }
            }
            (OutcomeBody::Failed, Some(failure), None) if failure.code == "insufficient_funds" => {
                Outcome::Failed(Failure::InsufficientFunds {
                    asset: catalog.asset(&failure.asset)?,
                })
            }
            _ => {
                return Err(malformed(
                    "outcome, failure and shortfall do not match".into(),
                ))
            }
        };
        Ok(OperationRecord {
            fingerprint: operation.fingerprint(&account),
            account,
            key,
            operation,
            outcome,
            recorded_at_ms: self.recorded_at_ms,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceBody {
    pub available: String,
    pub reserved: String,
    /// Owed for executions beyond what was reserved and available (recorded shortfalls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owed: Option<String>,
}

/// `GET /accounts/{account}/balances`: every asset the account ever held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancesBody {
    pub account: String,
    pub balances: BTreeMap<String, BalanceBody>,
}

impl BalancesBody {
    pub fn from_balances(account: &AccountId, balances: &BTreeMap<Asset, Balance>) -> Self {
        let balances = balances
            .iter()
            .map(|(asset, balance)| {
                let body = BalanceBody {
                    available: format_units(balance.available, asset.scale()),
                    reserved: format_units(balance.reserved, asset.scale()),
                    owed: (balance.owed > 0).then(|| format_units(balance.owed, asset.scale())),
                };
                (asset.code().to_owned(), body)
            })
            .collect();
        BalancesBody {
            account: account.to_string(),
            balances,
        }
    }

    pub fn parse(&self, catalog: &Catalog) -> Result<BTreeMap<Asset, Balance>, WireError> {
        self.balances
            .iter()
            .map(|(code, body)| {
                let asset = catalog.asset(code)?;
                let units = |field, text: &str| {
                    domain::money::parse_units(text, asset.scale())
                        .map_err(|source| WireError::Amount { field, source })
                };
                let balance = Balance {
                    available: units("available", &body.available)?,
                    reserved: units("reserved", &body.reserved)?,
                    owed: body.owed.as_deref().map_or(Ok(0), |o| units("owed", o))?,
                };
                Ok((asset, balance))
            })
            .collect()
    }
}

/// An error answer (`application/problem+json`, RFC 9457). A refused
/// operation carries its stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationRecordBody>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_json() {
        let catalog = Catalog::us_equities();
        for json in [
            r#"{"type":"deposit","asset":"USD","amount":"1500.00"}"#,
            r#"{"type":"reserve","asset":"AAPL","amount":"10"}"#,
            r#"{"type":"release","asset":"USD","amount":"0.01"}"#,
            r#"{"type":"settle","symbol":"AAPL","side":"buy","quantity":"3","price":"187.25"}"#,
            r#"{"type":"settle","symbol":"AAPL","side":"buy","quantity":"3","price":"187.25","from_reserved":"600.00","release":"38.25"}"#,
            r#"{"type":"settle","symbol":"AAPL","side":"sell","quantity":"3","price":"187.25","from_reserved":"3"}"#,
        ] {
            let body: OperationBody = serde_json::from_str(json).unwrap();
            let operation = body.parse(&catalog).unwrap();
            assert_eq!(
                serde_json::to_string(&OperationBody::from_operation(&operation)).unwrap(),
                json
            );
        }
    }

    #[test]
    fn refuses_unknown_fields_assets_and_precision() {
        let catalog = Catalog::us_equities();
        let unknown_field = r#"{"type":"deposit","asset":"USD","amount":"1.00","memo":"x"}"#;
        assert!(serde_json::from_str::<OperationBody>(unknown_field).is_err());
        let parse = |json: &str| {
            serde_json::from_str::<OperationBody>(json)
                .unwrap()
                .parse(&catalog)
        };
        assert!(matches!(
            parse(r#"{"type":"deposit","asset":"EUR","amount":"1.00"}"#),
            Err(WireError::Asset(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"deposit","asset":"USD","amount":"1.001"}"#),
            Err(WireError::Amount {
                source: MoneyError::TooManyDecimals { max: 2 },
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"type":"reserve","asset":"AAPL","amount":"1.5"}"#),
            Err(WireError::Amount {
                source: MoneyError::TooManyDecimals { max: 0 },
                ..
            })
        ));
    }
}
