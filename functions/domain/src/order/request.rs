//! What a caller asks for, validated, and what it takes to carry it out:
//! the reservation, and for a market order the protective limit it is sent
//! with, so the exchange itself can never let it consume more than was
//! reserved.

use serde::{Deserialize, Serialize};

use super::OrderError;
use crate::asset::{Asset, Symbol};
use crate::ids::AccountId;
use crate::ledger::Side;
use crate::money::{notional, Amount, MoneyError, Price, Quantity};

/// Basis points in one.
const BPS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Market,
    Limit,
}

/// How long an order may rest at the exchange: until the session's close
/// (`day`), until cancelled (`gtc`, within the venue's own cap), or not at
/// all (`ioc`: whatever does not execute at once is cancelled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    #[default]
    Day,
    Gtc,
    Ioc,
}

impl TimeInForce {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Day => "day",
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
        }
    }
}

/// What the caller asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: Quantity,
    pub limit_price: Option<Price>,
    #[serde(default)]
    pub time_in_force: TimeInForce,
}

/// What must be set aside before an order may reach the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub asset: Asset,
    pub amount: Amount,
}

/// How an order is priced before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub reservation: Reservation,
    /// The limit a market order is sent with (none for a limit order, whose
    /// own limit is sent, or when the collar is 0).
    pub protection: Option<Price>,
}

impl OrderRequest {
    pub fn new(
        symbol: Symbol,
        side: Side,
        order_type: OrderType,
        quantity: Quantity,
        limit_price: Option<Price>,
        time_in_force: TimeInForce,
    ) -> Result<Self, OrderError> {
        match (order_type, limit_price) {
            (OrderType::Limit, None) => Err(OrderError::MissingLimitPrice),
            (OrderType::Market, Some(_)) => Err(OrderError::UnexpectedLimitPrice),
            _ => Ok(OrderRequest {
                symbol,
                side,
                order_type,
                quantity,
                limit_price,
                time_in_force,
            }),
        }
    }

    /// A stable digest of the request, to tell a replay from a reused key.
    pub fn fingerprint(&self, account: &AccountId) -> String {
        use sha2::{Digest, Sha256};
        let limit = self.limit_price.map_or(0, Price::cents);
        let canonical = format!(
            "v2|order|{account}|{}|{}|{:?}|{}|{limit}|{}",
            self.symbol,
            self.side.as_str(),
            self.order_type,
            self.quantity.shares(),
            self.time_in_force.as_str()
        );
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The reservation, and for a market order its protective limit.
    ///
    /// - A sell reserves its shares; a market sell is sent with a floor at
    ///   `reference x (1 - collar)`, rounded down to the tick.
    /// - A limit buy reserves quantity x limit: the exchange never fills it above.
    /// - A market buy is sent as a marketable limit at `reference x (1 +
    ///   collar)`, rounded up to the tick, and reserves quantity x that price:
    ///   the reservation is a bound the exchange enforces. With a collar of 0
    ///   it goes unprotected and reserves quantity x reference; what a gap
    ///   takes beyond that is settled from the account and, if need be,
    ///   recorded as owed.
    pub fn pricing(
        &self,
        reference_price: Price,
        collar_bps: u64,
        tick_cents: u64,
    ) -> Result<Pricing, MoneyError> {
        let tick = tick_cents.max(1);
        let reference = reference_price.cents();
        let band = |direction_up: bool| -> Result<Option<Price>, MoneyError> {
            if collar_bps == 0 {
                return Ok(None);
            }
            let scaled = if direction_up {
                reference
                    .checked_mul(BPS + collar_bps)
                    .ok_or(MoneyError::Overflow)?
                    .div_ceil(BPS)
                    .div_ceil(tick)
                    * tick
            } else {
                let factor = BPS.saturating_sub(collar_bps);
                (reference.checked_mul(factor).ok_or(MoneyError::Overflow)? / BPS) / tick * tick
            };
            Ok(Some(Price::from_cents(scaled.max(tick))?))
        };
        match (self.side, self.limit_price) {
            (Side::Sell, limit) => Ok(Pricing {
                reservation: Reservation {
                    asset: Asset::Shares(self.symbol.clone()),
                    amount: Amount::new(self.quantity.shares())?,
                },
                protection: if limit.is_some() { None } else { band(false)? },
            }),
            (Side::Buy, Some(limit)) => Ok(Pricing {
                reservation: Reservation {
                    asset: Asset::Cash,
                    amount: notional(limit, self.quantity)?,
                },
                protection: None,
            }),
            (Side::Buy, None) => {
                let protection = band(true)?;
                let bound = protection.unwrap_or(reference_price);
                Ok(Pricing {
                    reservation: Reservation {
                        asset: Asset::Cash,
                        amount: notional(bound, self.quantity)?,
                    },
                    protection,
                })
            }
        }
    }
}
