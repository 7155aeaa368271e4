//! Executions applied to an order. Each execution is recorded once (its
//! `exec_id` is where a duplicate stops) and settled once at Balances.
//!
//! Where they live: every execution has a record of its own
//! ([`FillRecord`], an item `FILL#<exec_id>` in the order's partition),
//! written once; the order keeps only [`FillTotals`] over the executions
//! already folded in, and the one execution being settled now
//! ([`Fill`], the "settling slot"). So the order's own record stays the
//! same size whatever the number of executions, and each execution costs
//! the same whether it is the first or the ten-thousandth.

use serde::{Deserialize, Serialize};

use super::{ExecId, Execution, Step};
use crate::money::{Price, Quantity};

/// The execution in the settling slot, with its settlement step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub exec_id: ExecId,
    pub quantity: Quantity,
    pub price: Price,
    pub received_at_ms: u64,
    /// How much of its cost the order's reservation covers (fixed when the
    /// execution takes the slot, so every repeat of the settlement is the
    /// same request to Balances).
    pub from_reserved_units: u64,
    /// The rest of the reservation, returned by the same settlement because
    /// it is the order's last.
    #[serde(default)]
    pub release_units: u64,
    pub settle: Step,
    /// Its own record (`FILL#<exec_id>`) exists: the slot may be reused
    /// without writing it.
    #[serde(default)]
    pub archived: bool,
    /// It came from the waiting list: its waiting record goes once it is settled.
    #[serde(default)]
    pub waited: bool,
}

impl Fill {
    pub fn execution(&self, exchange_order_id: &str) -> Execution {
        Execution {
            exec_id: self.exec_id.clone(),
            exchange_order_id: exchange_order_id.to_owned(),
            quantity: self.quantity,
            price: self.price,
            cum_quantity: None,
        }
    }
}

/// Sums over the executions folded into the order (settled, out of the slot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillTotals {
    pub count: u64,
    /// Shares executed.
    pub quantity: u64,
    /// Σ price x quantity, in cents.
    pub notional_cents: u64,
    /// Units of the reserved asset taken out of the reservation.
    pub from_reserved_units: u64,
    /// Units paid beyond the reservation (a venue that broke its bound).
    pub excess_units: u64,
    pub last_at_ms: u64,
}

/// Where an execution's own record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FillState {
    /// Recorded while the settling slot was busy; waits its turn.
    Recorded,
    /// Settled at Balances with these terms.
    Settled {
        from_reserved_units: u64,
        release_units: u64,
    },
}

/// The record of one execution (`FILL#<exec_id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRecord {
    pub exec_id: ExecId,
    pub quantity: Quantity,
    pub price: Price,
    pub received_at_ms: u64,
    #[serde(flatten)]
    pub state: FillState,
}

impl FillRecord {
    pub fn recorded(execution: &Execution, now_ms: u64) -> Self {
        FillRecord {
            exec_id: execution.exec_id.clone(),
            quantity: execution.quantity,
            price: execution.price,
            received_at_ms: now_ms,
            state: FillState::Recorded,
        }
    }

    /// The record of a settled slot.
    pub fn settled(fill: &Fill) -> Self {
        FillRecord {
            exec_id: fill.exec_id.clone(),
            quantity: fill.quantity,
            price: fill.price,
            received_at_ms: fill.received_at_ms,
            state: FillState::Settled {
                from_reserved_units: fill.from_reserved_units,
                release_units: fill.release_units,
            },
        }
    }

    pub fn is_settled(&self) -> bool {
        matches!(self.state, FillState::Settled { .. })
    }

    /// Whether a report of this `exec_id` says what was recorded.
    pub fn same_trade(&self, execution: &Execution) -> bool {
        self.exec_id == execution.exec_id
            && self.quantity == execution.quantity
            && self.price == execution.price
    }
}
