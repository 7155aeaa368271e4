//! JSON of the exchange's REST API as this client reads and writes it.
//! Money travels as decimal strings, parsed with the domain's parsers,
//! never through a float; fields this client does not read are ignored, so
//! the venue may add fields.

use app::exchange::{ExchangeError, ExchangeOrder, ExchangeOrderStatus, PlaceRequest};
use domain::money::parse_units;
use domain::order::{ExecId, Execution, OrderType};
use domain::{Price, Quantity, Side};
use serde::{Deserialize, Serialize};

pub(crate) fn protocol(what: &str, error: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Protocol(format!("{what}: {error}"))
}

#[derive(Debug, Serialize)]
pub(crate) struct PlaceBody<'a> {
    client_order_id: &'a str,
    account: &'a str,
    symbol: &'a str,
    side: &'static str,
    #[serde(rename = "type")]
    order_type: &'static str,
    quantity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_price: Option<String>,
    time_in_force: &'static str,
    /// The request deadline, Unix ms in the venue's clock; only to venues
    /// that take one (a venue whose expiry field is the order's own expiry
    /// must never get a 20-second deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_at: Option<u64>,
}

impl<'a> PlaceBody<'a> {
    pub(crate) fn new(request: &'a PlaceRequest) -> Self {
        PlaceBody {
            client_order_id: request.client_order_id.as_str(),
            account: request.account.as_str(),
            symbol: request.symbol.as_str(),
            side: match request.side {
                Side::Buy => "buy",
                Side::Sell => "sell",
            },
            order_type: match request.order_type {
                OrderType::Market => "market",
                OrderType::Limit => "limit",
            },
            quantity: request.quantity.to_string(),
            limit_price: request.limit_price.map(|p| p.to_string()),
            time_in_force: request.time_in_force.as_str(),
            expire_at: request.deadline_ms,
        }
    }
}

/// The fields of an order this client reads.
#[derive(Debug, Deserialize)]
pub(crate) struct OrderBody {
    order_id: String,
    client_order_id: String,
    status: String,
    cum_quantity: String,
}

impl OrderBody {
    pub(crate) fn parse(self) -> Result<ExchangeOrder, ExchangeError> {
        let status = match self.status.as_str() {
            "new" => ExchangeOrderStatus::New,
            "partially_filled" => ExchangeOrderStatus::PartiallyFilled,
            "filled" => ExchangeOrderStatus::Filled,
            "cancelled" => ExchangeOrderStatus::Cancelled,
            "expired" => ExchangeOrderStatus::Expired,
            "rejected" => ExchangeOrderStatus::Rejected,
            other => return Err(protocol("order status", format!("`{other:.32}`"))),
        };
        Ok(ExchangeOrder {
            client_order_id: self.client_order_id,
            status,
            // A count that may be zero, so not a `Quantity`; still a decimal string.
            cum_quantity: parse_units(&self.cum_quantity, 0)
                .map_err(|e| protocol("cum_quantity", e))?,
            order_id: self.order_id,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExecutionBody {
    exec_id: String,
    order_id: String,
    quantity: String,
    price: String,
    #[serde(default)]
    cum_quantity: Option<String>,
}

impl ExecutionBody {
    pub(crate) fn parse(self) -> Result<Execution, ExchangeError> {
        Ok(Execution {
            exec_id: ExecId::parse(&self.exec_id).map_err(|e| protocol("exec_id", e))?,
            quantity: Quantity::parse(&self.quantity)
                .map_err(|e| protocol("execution quantity", e))?,
            price: Price::parse(&self.price).map_err(|e| protocol("execution price", e))?,
            exchange_order_id: self.order_id,
            cum_quantity: self
                .cum_quantity
                .as_deref()
                .map(|c| parse_units(c, 0))
                .transpose()
                .map_err(|e| protocol("cum_quantity", e))?,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExecutionPageBody {
    pub executions: Vec<ExecutionBody>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderPageBody {
    pub orders: Vec<OrderBody>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CancelBody {
    pub outcome: String,
    pub order: Option<OrderBody>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QuoteBody {
    pub last: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TimeBody {
    pub now_ms: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProblemBody {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub detail: Option<String>,
}
