//! The order use cases. Each handler drives an order only through
//! [`Orders::drive`], which asks [`domain::order::next_actions`] what is left
//! and performs one action at a time, each recorded before and after its
//! external call.
//!
//! - [`place_order`]: `POST /orders` (idempotency key, record, reserve, place).
//! - [`queries`]: `GET /orders/{id}`, `GET /orders`.
//! - [`cancel_order`]: `DELETE /orders/{id}`.
//! - [`apply_report`]: the fill processor's step (one report, applied once).
//! - [`reconcile`]: the reconciler's run over the open-order index.
//! - [`drive`]: the actions, shared with the fill processor and the reconciler.

mod apply_report;
mod cancel_order;
mod drive;
mod place_order;
mod queries;
mod reconcile;

use std::sync::Arc;

use domain::order::{OrderId, RecoveryPolicy};

use crate::clock::Clock;
use crate::exchange::ExchangeError;
use crate::order_store::StoreError;

pub use apply_report::{ReportError, ReportOutcome};
pub use drive::Progress;
pub use place_order::Placed;
pub use queries::MAX_PAGE_SIZE;
pub use reconcile::{ReconcileBudget, ReconcileReport, RetryPolicy};

/// Limits and timings of the order flow, units in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSettings {
    /// A market buy reserves its notional at the reference price plus this
    /// many basis points.
    pub market_collar_bps: u64,
    /// The exchange must receive the placement within this long of the order's
    /// creation (its `expire_at`).
    pub placement_window_ms: u64,
    /// How long an `Idempotency-Key` answers with its order.
    pub key_ttl_ms: u64,
    pub recovery: RecoveryPolicy,
}

impl Default for OrderSettings {
    fn default() -> Self {
        OrderSettings {
            market_collar_bps: 500,
            placement_window_ms: 10_000,
            key_ttl_ms: 24 * 60 * 60 * 1000,
            recovery: RecoveryPolicy {
                quiet_after_ms: 60_000,
                clock_skew_margin_ms: 5_000,
                max_invocation_ms: 30_000,
            },
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
    /// Nothing was recorded: the exchange could not price a market buy.
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

impl<S, B, E, C> Orders<S, B, E, C> {
    pub fn new(store: S, balances: B, exchange: E, clock: C, settings: OrderSettings) -> Self {
        Orders {
            store,
            balances,
            exchange,
            clock,
            settings,
            new_order_id: Arc::new(uuid_v7_order_id),
        }
    }

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
