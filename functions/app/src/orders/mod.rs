//! The order use cases. Each handler drives an order only through
//! [`Orders::drive`], which asks [`domain::order::next_actions`] what is left
//! and performs one action at a time, each recorded before and after its
//! external call.
//!
//! - [`place_order`]: `POST /orders` (idempotency key, record, reserve, place).
//! - [`queries`]: `GET /orders/{id}`, `GET /orders`, an order's executions.
//! - [`cancel_order`]: `DELETE /orders/{id}` (a durable intent).
//! - [`apply_report`]: the fill processor's step: one report, checked
//!   against the records (and the exchange when they disagree), applied once.
//! - [`executions`]: recording an execution once (the settling slot, or the
//!   waiting list behind it).
//! - [`reconcile`]: the reconciler's run over the open-order index.
//! - [`end_of_day`]: the daily check of every open order against the venue.
//! - [`resolve`]: an operator's decision on a flagged order, recorded.
//! - [`drive`]: the actions, shared by every handler.

mod apply_report;
mod cancel_order;
mod drive;
mod end_of_day;
mod executions;
mod place_order;
mod queries;
mod reconcile;
mod resolve;

use std::sync::Arc;

use domain::order::{OrderId, RecoveryPolicy};
use domain::Catalog;

use crate::clock::Clock;
use crate::exchange::{Exchange, ExchangeError};
use crate::order_store::StoreError;

pub use apply_report::{ReportError, ReportOutcome};
pub use cancel_order::Cancelled;
pub use drive::{place_request, Progress};
pub use end_of_day::{EndOfDayReport, TradingCalendar};
pub use place_order::Placed;
pub use queries::MAX_PAGE_SIZE;
pub use reconcile::{ReconcileBudget, ReconcileReport, INDEX_LAG_MS};
pub use resolve::{Resolution, ResolveError};

/// Limits and timings of the order flow, units in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSettings {
    /// A market buy is sent as a limit this many basis points above the
    /// reference price (and reserves quantity x that limit); a market sell
    /// with a floor this far below. 0: unprotected.
    pub market_collar_bps: u64,
    /// A placement may start this long after the order was recorded (a
    /// reservation that took long, a crash before sending); later, the order
    /// is closed "not placed" rather than sent to a market the caller no
    /// longer expects.
    pub submit_window_ms: u64,
    /// A placement may be sent (and sent again) until this long after it
    /// started; on venues with a request deadline it is that deadline.
    pub placement_window_ms: u64,
    /// How long one handler invocation keeps resending or looking up an
    /// unanswered placement before leaving it to recovery.
    pub handler_budget_ms: u64,
    /// How long an `Idempotency-Key` answers with its order.
    pub key_ttl_ms: u64,
    pub recovery: RecoveryPolicy,
    pub calendar: TradingCalendar,
    /// The instruments traded (each price's tick).
    pub catalog: Catalog,
}

impl Default for OrderSettings {
    fn default() -> Self {
        OrderSettings {
            market_collar_bps: 500,
            submit_window_ms: 5 * 60_000,
            placement_window_ms: 20_000,
            handler_budget_ms: 8_000,
            key_ttl_ms: 24 * 60 * 60 * 1000,
            recovery: RecoveryPolicy::default(),
            calendar: TradingCalendar::default(),
            catalog: Catalog::us_equities(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("this idempotency key was used for a different order")]
    KeyReused,
    #[error("no such order")]
    NotFound,
    #[error("invalid order: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing was recorded: the exchange could not price a market order.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// Others kept writing the order; the caller may repeat the request.
    #[error("the order is busy; retry")]
    Busy,
}

/// The order use cases over their ports: the trading table, Balances, the
/// exchange and the clock.
pub struct Orders<S, B, E, C> {
    pub(crate) store: S,
    pub(crate) balances: B,
    pub(crate) exchange: E,
    pub(crate) clock: C,
    pub(crate) settings: OrderSettings,
    new_order_id: Arc<dyn Fn() -> OrderId + Send + Sync>,
}

impl<S, B, E: Exchange, C> Orders<S, B, E, C> {
    /// The venue's guarantees come from the exchange adapter's configuration.
    pub fn new(store: S, balances: B, exchange: E, clock: C, mut settings: OrderSettings) -> Self {
        settings.recovery.venue = exchange.rules();
        Orders {
            store,
            balances,
            exchange,
            clock,
            settings,
            new_order_id: Arc::new(uuid_v7_order_id),
        }
    }
}

impl<S, B, E, C> Orders<S, B, E, C> {
    /// Replaces how order ids are made (the simulation makes them from its seed).
    pub fn with_order_ids(
        mut self,
        new_order_id: impl Fn() -> OrderId + Send + Sync + 'static,
    ) -> Self {
        self.new_order_id = Arc::new(new_order_id);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn exchange(&self) -> &E {
        &self.exchange
    }

    pub fn settings(&self) -> &OrderSettings {
        &self.settings
    }
}

impl<S, B, E, C: Clock> Orders<S, B, E, C> {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The time on this service's clock (Unix ms).
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// Time-ordered ids: an account's orders list newest first by id alone.
fn uuid_v7_order_id() -> OrderId {
    let text = uuid::Uuid::now_v7().hyphenated().to_string();
    OrderId::parse(&text).unwrap_or_else(|_| unreachable!("a hyphenated UUID is a valid order id"))
}
