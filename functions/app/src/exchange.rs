//! The exchange as the platform calls it: place by client order id, look it
//! up by that id, cancel, pull executions, read the day's orders. What the
//! venue guarantees ([`VenueRules`]) is part of the port: recovery's
//! conclusions follow it.

use std::future::Future;

use domain::order::{Execution, OrderId, OrderType, TimeInForce, VenueRules};
use domain::{AccountId, Price, Quantity, Side, Symbol};

/// One placement. An order is always sent with the same fields (the
/// deadline included), so a repeat is recognised by the exchange as the
/// same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceRequest {
    pub client_order_id: OrderId,
    pub account: AccountId,
    pub symbol: Symbol,
    pub side: Side,
    /// A market order with a protective limit goes out as a limit order.
    pub order_type: OrderType,
    pub quantity: Quantity,
    pub limit_price: Option<Price>,
    pub time_in_force: TimeInForce,
    /// The request deadline in the venue's clock (Unix ms), sent only to
    /// venues that enforce one: arriving later, the request is refused.
    pub deadline_ms: Option<u64>,
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
    /// As the venue holds it: not necessarily one of ours (the day's list
    /// shows every order of the account).
    pub client_order_id: String,
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
    /// The exchange never saw the id; it is now tombstoned (venues that do so).
    Tombstoned,
    /// The exchange holds no such order and stored nothing (venues without
    /// tombstones): not proof of absence by itself.
    NotFound,
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

/// The venue's clock against ours, as measured: venue time = our time +
/// `offset_ms`, known to within `uncertainty_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VenueClock {
    pub offset_ms: i64,
    pub uncertainty_ms: u64,
}

impl VenueClock {
    /// `our_ms` on the venue's clock.
    pub fn to_venue(self, our_ms: u64) -> u64 {
        our_ms.saturating_add_signed(self.offset_ms)
    }
}

pub trait Exchange: Send + Sync {
    /// What this venue guarantees (configured per venue).
    fn rules(&self) -> VenueRules;

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

    /// Cancels by client order id where the venue allows it, else by its
    /// own id (`exchange_order_id`, required then).
    fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> impl Future<Output = Result<CancelOutcome, ExchangeError>> + Send;

    /// The price a market order's protection and reservation are sized on.
    fn reference_price(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Price, ExchangeError>> + Send;

    /// The venue's clock against ours, measured (kept for a while, so most
    /// calls cost nothing).
    fn clock(&self) -> impl Future<Output = Result<VenueClock, ExchangeError>> + Send;

    /// Every order of one trading day (`YYYY-MM-DD`), all pages: the
    /// evidence of the end-of-day reconciliation.
    fn day_orders(
        &self,
        trade_date: &str,
    ) -> impl Future<Output = Result<Vec<ExchangeOrder>, ExchangeError>> + Send;
}

/// One venue client shared by several use-case instances (a test's two
/// handlers on one exchange, say).
impl<E: Exchange> Exchange for std::sync::Arc<E> {
    fn rules(&self) -> VenueRules {
        (**self).rules()
    }
    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        (**self).place(request).await
    }
    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        (**self).order(client_order_id).await
    }
    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        (**self).executions(exchange_order_id).await
    }
    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        (**self).cancel(client_order_id, exchange_order_id).await
    }
    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        (**self).reference_price(symbol).await
    }
    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        (**self).clock().await
    }
    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        (**self).day_orders(trade_date).await
    }
}
