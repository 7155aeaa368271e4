//! The Balances ledger: per account and asset an `available` and a `reserved`
//! balance, moved only by four operations, never below zero.
//!
//! Two-phase, as in double-entry ledgers built for payments: a `reserve` moves
//! value from available to reserved; a `settle` consumes reserved value for a
//! fill and credits what the fill bought; a `release` returns the unused rest.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::asset::{Asset, Symbol};
use crate::ids::{AccountId, IdempotencyKey};
use crate::money::{notional, Amount, MoneyError, Price, Quantity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// One balance of one asset of one account, in the asset's minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub available: u64,
    pub reserved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Cash or shares arrive from outside the platform.
    Deposit { asset: Asset, amount: Amount },
    /// Earmark available value for an order.
    Reserve { asset: Asset, amount: Amount },
    /// Return reserved value that an order no longer needs.
    Release { asset: Asset, amount: Amount },
    /// Apply one fill: a buy pays its notional from reserved cash and receives
    /// shares; a sell delivers reserved shares and receives cash.
    Settle {
        symbol: Symbol,
        side: Side,
        quantity: Quantity,
        price: Price,
    },
}

impl Operation {
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Deposit { .. } => "deposit",
            Operation::Reserve { .. } => "reserve",
            Operation::Release { .. } => "release",
            Operation::Settle { .. } => "settle",
        }
    }

    /// The balance changes this operation makes, one per asset it touches.
    pub fn changes(&self) -> Result<Vec<AssetChange>, MoneyError> {
        let units = |amount: Amount| amount.units() as i64; // bounded by MAX_AMOUNT_UNITS
        Ok(match self {
            Operation::Deposit { asset, amount } => {
                vec![AssetChange {
                    asset: asset.clone(),
                    available: units(*amount),
                    reserved: 0,
                }]
            }
            Operation::Reserve { asset, amount } => vec![AssetChange {
                asset: asset.clone(),
                available: -units(*amount),
                reserved: units(*amount),
            }],
            Operation::Release { asset, amount } => vec![AssetChange {
                asset: asset.clone(),
                available: units(*amount),
                reserved: -units(*amount),
            }],
            Operation::Settle {
                symbol,
                side,
                quantity,
                price,
            } => {
                let cash = units(notional(*price, *quantity)?);
                let shares = quantity.shares() as i64; // bounded by MAX_QUANTITY
                let stock = Asset::Shares(symbol.clone());
                match side {
                    Side::Buy => vec![
                        AssetChange {
                            asset: Asset::Cash,
                            available: 0,
                            reserved: -cash,
                        },
                        AssetChange {
                            asset: stock,
                            available: shares,
                            reserved: 0,
                        },
                    ],
                    Side::Sell => vec![
                        AssetChange {
                            asset: stock,
                            available: 0,
                            reserved: -shares,
                        },
                        AssetChange {
                            asset: Asset::Cash,
                            available: cash,
                            reserved: 0,
                        },
                    ],
                }
            }
        })
    }

    /// A stable digest of what was asked, so a reused key with a different
    /// request can be told apart from a replay.
    pub fn fingerprint(&self, account: &AccountId) -> String {
        let canonical = match self {
            Operation::Deposit { asset, amount }
            | Operation::Reserve { asset, amount }
            | Operation::Release { asset, amount } => {
                format!(
                    "v1|{}|{}|{}|{}",
                    self.kind(),
                    account,
                    asset.code(),
                    amount.units()
                )
            }
            Operation::Settle {
                symbol,
                side,
                quantity,
                price,
            } => format!(
                "v1|settle|{}|{}|{}|{}|{}",
                account,
                symbol,
                side.as_str(),
                quantity.shares(),
                price.cents()
            ),
        };
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// Signed change of one asset's two balances, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetChange {
    pub asset: Asset,
    pub available: i64,
    pub reserved: i64,
}

impl AssetChange {
    /// The balance after this change, or which bucket would go negative.
    pub fn apply(&self, balance: Balance) -> Result<Balance, Failure> {
        let shift = |value: u64, delta: i64| value.checked_add_signed(delta);
        let insufficient = || Failure::InsufficientFunds {
            asset: self.asset.clone(),
        };
        Ok(Balance {
            available: shift(balance.available, self.available).ok_or_else(insufficient)?,
            reserved: shift(balance.reserved, self.reserved).ok_or_else(insufficient)?,
        })
    }
}

/// Why an operation was refused. Stored with the operation, so a replay gets
/// the same refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    InsufficientFunds { asset: Asset },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::InsufficientFunds { asset } => write!(f, "insufficient {asset}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Succeeded,
    Failed(Failure),
}

/// The stored result of one operation under one idempotency key: what was
/// asked, a digest of it, and what happened. Replays are answered from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    pub account: AccountId,
    pub key: IdempotencyKey,
    pub operation: Operation,
    pub fingerprint: String,
    pub outcome: Outcome,
    /// When the operation was first recorded (Unix milliseconds).
    pub recorded_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::Catalog;

    fn aapl() -> Symbol {
        Catalog::us_equities().symbol("AAPL").unwrap()
    }

    #[test]
    fn reserve_moves_available_to_reserved() {
        let op = Operation::Reserve {
            asset: Asset::Cash,
            amount: Amount::new(300).unwrap(),
        };
        let [change] = op.changes().unwrap().try_into().unwrap();
        let after = change
            .apply(Balance {
                available: 1000,
                reserved: 0,
            })
            .unwrap();
        assert_eq!(
            after,
            Balance {
                available: 700,
                reserved: 300
            }
        );
        let refused = change.apply(Balance {
            available: 299,
            reserved: 0,
        });
        assert_eq!(
            refused,
            Err(Failure::InsufficientFunds { asset: Asset::Cash })
        );
    }

    #[test]
    fn settle_buy_pays_from_reserved_cash_and_receives_shares() {
        let op = Operation::Settle {
            symbol: aapl(),
            side: Side::Buy,
            quantity: Quantity::new(3).unwrap(),
            price: Price::parse("187.25").unwrap(),
        };
        let changes = op.changes().unwrap();
        assert_eq!(
            changes[0],
            AssetChange {
                asset: Asset::Cash,
                available: 0,
                reserved: -56175
            }
        );
        assert_eq!(
            changes[1],
            AssetChange {
                asset: Asset::Shares(aapl()),
                available: 3,
                reserved: 0
            }
        );
    }

    #[test]
    fn settle_sell_delivers_reserved_shares_and_receives_cash() {
        let op = Operation::Settle {
            symbol: aapl(),
            side: Side::Sell,
            quantity: Quantity::new(2).unwrap(),
            price: Price::parse("10.00").unwrap(),
        };
        let changes = op.changes().unwrap();
        assert_eq!(
            changes[0],
            AssetChange {
                asset: Asset::Shares(aapl()),
                available: 0,
                reserved: -2
            }
        );
        assert_eq!(
            changes[1],
            AssetChange {
                asset: Asset::Cash,
                available: 2000,
                reserved: 0
            }
        );
    }

    #[test]
    fn fingerprint_tells_requests_apart() {
        let account = AccountId::parse("a1").unwrap();
        let other = AccountId::parse("a2").unwrap();
        let reserve = |units| Operation::Reserve {
            asset: Asset::Cash,
            amount: Amount::new(units).unwrap(),
        };
        let release = Operation::Release {
            asset: Asset::Cash,
            amount: Amount::new(5).unwrap(),
        };
        assert_eq!(
            reserve(5).fingerprint(&account),
            reserve(5).fingerprint(&account)
        );
        assert_ne!(
            reserve(5).fingerprint(&account),
            reserve(6).fingerprint(&account)
        );
        assert_ne!(
            reserve(5).fingerprint(&account),
            reserve(5).fingerprint(&other)
        );
        assert_ne!(
            reserve(5).fingerprint(&account),
            release.fingerprint(&account)
        );
    }
}
