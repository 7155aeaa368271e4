//! What the exchange reports about an order, by webhook or over REST: one
//! execution, or the order's final status.

use serde::{Deserialize, Serialize};

use super::{ExecId, OrderId};
use crate::money::{Price, Quantity};

/// An execution as the exchange reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub exec_id: ExecId,
    pub exchange_order_id: String,
    pub quantity: Quantity,
    pub price: Price,
    /// The order's cumulative quantity the venue reported with this
    /// execution, when it reports one: a higher figure than the platform
    /// has recorded means executions are missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cum_quantity: Option<u64>,
}

impl Execution {
    /// Whether two reports of one `exec_id` say the same thing.
    pub fn same_trade(&self, other: &Execution) -> bool {
        self.exec_id == other.exec_id
            && self.quantity == other.quantity
            && self.price == other.price
    }
}

/// The exchange's last word on an order: it will not fill any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStatus {
    Filled,
    Cancelled,
    Expired,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalReport {
    pub status: FinalStatus,
    /// Shares the exchange says it executed in all.
    pub cum_quantity: u64,
}

/// What the exchange reported about an order, as the fill pipeline carries
/// it: one execution, or the order's final status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExchangeReport {
    Execution {
        client_order_id: OrderId,
        execution: Execution,
    },
    Final {
        client_order_id: OrderId,
        exchange_order_id: String,
        report: FinalReport,
    },
}

impl ExchangeReport {
    pub fn client_order_id(&self) -> &OrderId {
        match self {
            ExchangeReport::Execution {
                client_order_id, ..
            }
            | ExchangeReport::Final {
                client_order_id, ..
            } => client_order_id,
        }
    }

    pub fn exchange_order_id(&self) -> &str {
        match self {
            ExchangeReport::Execution { execution, .. } => &execution.exchange_order_id,
            ExchangeReport::Final {
                exchange_order_id, ..
            } => exchange_order_id,
        }
    }
}
