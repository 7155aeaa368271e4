//! The exchange as the platform calls it: place by client order id, look up
//! by it, cancel by it (a cancel of an id it has never seen leaves a
//! tombstone, so a late placement can never land), and pull executions.

use std::future::Future;

use domain::order::{Execution, OrderId, OrderType};
use domain::{AccountId, Price, Quantity, Side, Symbol};

/// One placement. An order is always sent with the same fields (the deadline
/// included), so a repeat is recognised by the exchange as the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceRequest {
    pub client_order_id: OrderId,
    pub account: AccountId,
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: Quantity,
    pub limit_price: Option<Price>,
    /// The exchange refuses the request once this has passed (Unix ms).
    pub expire_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeOrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
    Expired,
    Rejected,
}

impl ExchangeOrderStatus {
    /// No further execution can come.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ExchangeOrderStatus::New | ExchangeOrderStatus::PartiallyFilled
        )
    }
}

/// The exchange's view of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeOrder {
    pub order_id: String,
    pub client_order_id: OrderId,
    pub status: ExchangeOrderStatus,
    pub cum_quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Accepted(ExchangeOrder),
    /// The exchange holds no order from this request, and never will: it was
    /// invalid, arrived after its deadline, or its id was tombstoned.
    Rejected {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The order is (now) cancelled, or had already ended: here is its state.
    Known(ExchangeOrder),
    /// The exchange never saw the id; it is now tombstoned.
    Tombstoned,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The request certainly did not reach the exchange.
    #[error("exchange unavailable: {0}")]
    Unavailable(String),
    /// The request may have taken effect (timeout, reset after sending, 5xx).
    #[error("exchange outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The exchange answered something this client does not understand.
    #[error("unexpected exchange answer: {0}")]
    Protocol(String),
}

pub trait Exchange: Send + Sync {
    fn place(
        &self,
        request: &PlaceRequest,
    ) -> impl Future<Output = Result<PlaceOutcome, ExchangeError>> + Send;

    /// The order placed under this client id, if the exchange holds one.
    fn order(
        &self,
        client_order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<ExchangeOrder>, ExchangeError>> + Send;

    /// Every execution of the order, all pages.
    fn executions(
        &self,
        exchange_order_id: &str,
    ) -> impl Future<Output = Result<Vec<Execution>, ExchangeError>> + Send;

    fn cancel(
        &self,
        client_order_id: &OrderId,
    ) -> impl Future<Output = Result<CancelOutcome, ExchangeError>> + Send;

    /// The price a market buy's reservation is sized on.
    fn reference_price(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Price, ExchangeError>> + Send;
}
