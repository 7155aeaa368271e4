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
///
/// `owed` is what the account owes the platform for executions the exchange
/// confirmed beyond what was reserved and available (a recorded shortfall):
/// the one way an account's value goes below zero, always on the record.
/// The account's holding of the asset is `available + reserved - owed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub available: u64,
    pub reserved: u64,
    #[serde(default)]
    pub owed: u64,
}

impl Balance {
    /// What the account holds of the asset, net of what it owes.
    pub fn net(&self) -> i128 {
        i128::from(self.available) + i128::from(self.reserved) - i128::from(self.owed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Cash or shares arrive from outside the platform.
    Deposit { asset: Asset, amount: Amount },
    /// Earmark available value for an order.
    Reserve { asset: Asset, amount: Amount },
    /// Return reserved value that an order no longer needs.
    Release { asset: Asset, amount: Amount },
    /// Apply one execution: a buy pays its notional in cash and receives
    /// shares; a sell delivers shares and receives cash. The cost comes out of
    /// the order's reservation up to `from_reserved_units`; any excess (a venue
    /// that filled beyond what was reserved) comes out of `available`, and
    /// what `available` cannot cover is recorded as owed (a shortfall), never
    /// refused: the trade happened. `release_units` returns the unused rest of
    /// the reservation in the same step when this is the order's last
    /// settlement.
    Settle {
        symbol: Symbol,
        side: Side,
        quantity: Quantity,
        price: Price,
        #[serde(default)]
        from_reserved_units: u64,
        #[serde(default)]
        release_units: u64,
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

    /// The balance changes this operation makes, one per asset it touches,
    /// assuming every balance can cover them (see [`Operation::with_shortfall`]).
    pub fn changes(&self) -> Result<Vec<AssetChange>, MoneyError> {
        let units = |amount: Amount| amount.units() as i64; // bounded by MAX_AMOUNT_UNITS
        let change = |asset: &Asset, available: i64, reserved: i64| AssetChange {
            asset: asset.clone(),
            available,
            reserved,
            owed: 0,
        };
        Ok(match self {
            Operation::Deposit { asset, amount } => vec![change(asset, units(*amount), 0)],
            Operation::Reserve { asset, amount } => {
                vec![change(asset, -units(*amount), units(*amount))]
            }
            Operation::Release { asset, amount } => {
                vec![change(asset, units(*amount), -units(*amount))]
            }
            Operation::Settle {
                symbol,
                side,
                quantity,
                price,
                from_reserved_units,
                release_units,
            } => {
                let cash = notional(*price, *quantity)?.units();
                let shares = quantity.shares(); // bounded by MAX_QUANTITY
                let stock = Asset::Shares(symbol.clone());
                let (paid, cost, received, proceeds) = match side {
                    Side::Buy => (Asset::Cash, cash, stock, shares),
                    Side::Sell => (stock, shares, Asset::Cash, cash),
                };
                let covered = cost.min(*from_reserved_units);
                let excess = cost - covered;
                let from_reserved = covered
                    .checked_add(*release_units)
                    .ok_or(MoneyError::Overflow)?;
                let signed = |v: u64| i64::try_from(v).map_err(|_| MoneyError::Overflow);
                vec![
                    change(
                        &paid,
                        signed(*release_units)? - signed(excess)?,
                        -signed(from_reserved)?,
                    ),
                    change(&received, signed(proceeds)?, 0),
                ]
            }
        })
    }

    /// The changes of a settlement against the paying asset's balance as it
    /// is now, when [`Operation::changes`] would take a bucket below zero:
    /// the cost comes out of `reserved` as far as it holds (up to what the
    /// order covers), then out of `available`, and what neither holds is
    /// owed. The release returns only what is still reserved. Returns the
    /// changes and what is owed, in units of the paying asset (0 when
    /// nothing is short); `None` for any operation but a settlement.
    pub fn settle_against(
        &self,
        paying_now: Balance,
    ) -> Result<Option<(Vec<AssetChange>, Asset, u64)>, MoneyError> {
        let Operation::Settle {
            from_reserved_units,
            release_units,
            ..
        } = self
        else {
            return Ok(None);
        };
        let mut changes = self.changes()?;
        let Some(paying) = changes.first_mut() else {
            return Ok(None);
        };
        let cost = self.cost_units()?;
        let from_reserved = cost.min(*from_reserved_units).min(paying_now.reserved);
        let release = (*release_units).min(paying_now.reserved - from_reserved);
        let excess = cost - from_reserved;
        let paid = excess.min(paying_now.available.saturating_add(release));
        let owed = excess - paid;
        let signed = |v: u64| i64::try_from(v).map_err(|_| MoneyError::Overflow);
        paying.reserved = -signed(from_reserved + release)?;
        paying.available = signed(release)? - signed(paid)?;
        paying.owed = signed(owed)?;
        let asset = paying.asset.clone();
        Ok(Some((changes, asset, owed)))
    }

    /// Units of the paying asset a settlement costs (cash notional for a
    /// buy, shares for a sell); 0 for other operations.
    pub fn cost_units(&self) -> Result<u64, MoneyError> {
        match self {
            Operation::Settle {
                side: Side::Buy,
                quantity,
                price,
                ..
            } => Ok(notional(*price, *quantity)?.units()),
            Operation::Settle { quantity, .. } => Ok(quantity.shares()),
            _ => Ok(0),
        }
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
                from_reserved_units,
                release_units,
            } => format!(
                "v2|settle|{}|{}|{}|{}|{}|{}|{}",
                account,
                symbol,
                side.as_str(),
                quantity.shares(),
                price.cents(),
                from_reserved_units,
                release_units
            ),
        };
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// Signed change of one asset's balances, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetChange {
    pub asset: Asset,
    pub available: i64,
    pub reserved: i64,
    /// Never negative: a shortfall is only ever recorded, never paid down here.
    pub owed: i64,
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
            owed: shift(balance.owed, self.owed).ok_or_else(insufficient)?,
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
    /// A settlement that took effect with part of its cost owed: the
    /// account's `available` could not cover what the exchange executed
    /// beyond the reservation.
    Shortfall {
        asset: Asset,
        units: u64,
    },
    Failed(Failure),
}

impl Outcome {
    /// The operation took effect (a shortfall included).
    pub fn took_effect(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
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
                ..Balance::default()
            })
            .unwrap();
        assert_eq!(
            after,
            Balance {
                available: 700,
                reserved: 300,
                owed: 0
            }
        );
        let refused = change.apply(Balance {
            available: 299,
            ..Balance::default()
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
            from_reserved_units: 60_000,
            release_units: 0,
        };
        let changes = op.changes().unwrap();
        assert_eq!(
            changes[0],
            AssetChange {
                asset: Asset::Cash,
                available: 0,
                reserved: -56175,
                owed: 0
            }
        );
        assert_eq!(
            changes[1],
            AssetChange {
                asset: Asset::Shares(aapl()),
                available: 3,
                reserved: 0,
                owed: 0
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
            from_reserved_units: 2,
            release_units: 0,
        };
        let changes = op.changes().unwrap();
        assert_eq!(
            changes[0],
            AssetChange {
                asset: Asset::Shares(aapl()),
                available: 0,
                reserved: -2,
                owed: 0
            }
        );
        assert_eq!(
            changes[1],
            AssetChange {
                asset: Asset::Cash,
                available: 2000,
                reserved: 0,
                owed: 0
            }
        );
    }

    fn buy(shares: u64, cents: u64, from_reserved_units: u64, release_units: u64) -> Operation {
        Operation::Settle {
            symbol: aapl(),
            side: Side::Buy,
            quantity: Quantity::new(shares).unwrap(),
            price: Price::from_cents(cents).unwrap(),
            from_reserved_units,
            release_units,
        }
    }

    #[test]
    fn the_last_settlement_releases_the_rest_in_the_same_step() {
        // Reserved 10 x 100.00; filled 10 x 98.00: pays 9,800.00, returns 200.00.
        let changes = buy(10, 9_800, 100_000, 2_000).changes().unwrap();
        assert_eq!(
            changes[0],
            AssetChange {
                asset: Asset::Cash,
                available: 2_000,
                reserved: -100_000,
                owed: 0
            }
        );
    }

    #[test]
    fn an_execution_beyond_the_reservation_is_paid_from_available() {
        // Reserved 10,500.00; the venue filled 100 at 106.00 = 10,600.00.
        let changes = buy(100, 10_600, 1_050_000, 0).changes().unwrap();
        assert_eq!(changes[0].reserved, -1_050_000);
        assert_eq!(changes[0].available, -10_000);
        let after = changes[0]
            .apply(Balance {
                available: 50_000,
                reserved: 1_050_000,
                owed: 0,
            })
            .unwrap();
        assert_eq!(after.available, 40_000);
        let now = Balance {
            available: 50_000,
            reserved: 1_050_000,
            owed: 0,
        };
        let (again, _, owed) = buy(100, 10_600, 1_050_000, 0)
            .settle_against(now)
            .unwrap()
            .unwrap();
        assert_eq!(
            (again, owed),
            (changes, 0),
            "the same when nothing is short"
        );
    }

    #[test]
    fn what_available_cannot_cover_is_owed_never_refused() {
        let settle = buy(100, 10_600, 1_050_000, 0);
        let now = Balance {
            available: 3_000,
            reserved: 1_050_000,
            owed: 0,
        };
        let (changes, asset, short) = settle.settle_against(now).unwrap().unwrap();
        assert_eq!((asset, short), (Asset::Cash, 7_000));
        let after = changes[0]
            .apply(Balance {
                available: 3_000,
                reserved: 1_050_000,
                owed: 0,
            })
            .unwrap();
        assert_eq!(
            after,
            Balance {
                available: 0,
                reserved: 0,
                owed: 7_000
            }
        );
        // Value is conserved: what was held minus the cost.
        assert_eq!(after.net(), 3_000 + 1_050_000 - 1_060_000);
    }

    #[test]
    fn a_reservation_that_does_not_hold_what_the_order_says_is_taken_as_far_as_it_holds() {
        // The order says its reservation covers 500.00 and returns 100.00;
        // the balance holds only 300.00 reserved.
        let settle = buy(1, 50_000, 50_000, 10_000);
        let now = Balance {
            available: 10_000,
            reserved: 30_000,
            owed: 0,
        };
        let (changes, _, owed) = settle.settle_against(now).unwrap().unwrap();
        let after = changes[0].apply(now).unwrap();
        assert_eq!(
            after,
            Balance {
                available: 0,
                reserved: 0,
                owed: 10_000
            }
        );
        assert_eq!(owed, 10_000);
        assert_eq!(after.net(), now.net() - 50_000);
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
        assert_ne!(
            buy(1, 100, 100, 0).fingerprint(&account),
            buy(1, 100, 100, 5).fingerprint(&account)
        );
    }
}
