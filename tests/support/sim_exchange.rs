//! The exchange simulator behind the `Exchange` port, two ways:
//!
//! - [`EngineExchange`]: in-process, straight over `exchange_sim::Engine`, on
//!   a clock the caller owns. No network, no threads: what the deterministic
//!   simulation drives. It keeps the events the engine reports (the webhooks
//!   the real exchange would send) for the simulation to deliver.
//! - [`spawn_exchange_sim`]: the simulator's HTTP server, in-process on a
//!   loopback port, for the HTTP adapter's tests.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, ExchangeOrderStatus, PlaceOutcome,
    PlaceRequest,
};
use app::Clock;
use domain::order::{ExecId, Execution, OrderId, OrderType};
use domain::{Price, Quantity, Side, Symbol};
use exchange_sim::app::{Running, Settings};
use exchange_sim::engine::{self, ConfigError, EngineAudit, PlaceError};
use exchange_sim::order::PlaceOrderBody;
use exchange_sim::{Engine, EngineConfig, ExchangeEvent, OrderStatus, PlaceOrder};

/// Fills that come quickly and always complete (no cancels or expiries by the
/// exchange), in 2 to 5 chunks so orders have several executions.
pub fn fast_fills(seed: u64) -> EngineConfig {
    EngineConfig {
        seed,
        min_chunks: 2,
        max_chunks: 5,
        fill_interval_min_ms: 5,
        fill_interval_max_ms: 20,
        cancel_probability: 0.0,
        expire_probability: 0.0,
        ..EngineConfig::default()
    }
}

struct Inner {
    engine: Engine,
    /// Reported by the engine, not yet taken by the caller.
    events: Vec<ExchangeEvent>,
}

/// The `Exchange` port over the simulator's engine, in-process.
///
/// Every call first advances the engine to the clock's now, so the fills due
/// by then exist, exactly as the HTTP server does before answering.
pub struct EngineExchange {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
}

impl EngineExchange {
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        Ok(EngineExchange {
            inner: Mutex::new(Inner {
                engine: Engine::new(config)?,
                events: Vec::new(),
            }),
            clock,
        })
    }

    /// The engine advanced to now, its new events kept.
    fn engine(&self) -> MutexGuard<'_, Inner> {
        // No engine call panics on input; a poisoned lock still holds a
        // consistent engine, so keep serving.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now_ms();
        let events = inner.engine.advance(now);
        inner.events.extend(events);
        inner
    }

    /// Brings the engine to the clock's now (fills fall due, events are kept).
    pub fn advance(&self) {
        drop(self.engine());
    }

    /// The events (executions, terminal statuses) reported since the last
    /// call, in the order they happened: what the webhooks would carry.
    pub fn take_events(&self) -> Vec<ExchangeEvent> {
        std::mem::take(&mut self.engine().events)
    }

    /// When the engine next has something to do, so a simulation can jump its
    /// clock straight there.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.engine().engine.next_due_ms()
    }

    /// Everything the exchange holds: the truth tests compare against.
    pub fn audit(&self) -> EngineAudit {
        self.engine().engine.audit()
    }
}

/// The request as the HTTP API would parse it, so both adapters validate
/// alike (an invalid request is rejected here too, not stored).
fn place_order(request: &PlaceRequest) -> Result<PlaceOrder, String> {
    let body = PlaceOrderBody {
        client_order_id: Some(request.client_order_id.as_str().to_owned()),
        account: Some(request.account.as_str().to_owned()),
        symbol: Some(request.symbol.as_str().to_owned()),
        side: Some(
            match request.side {
                Side::Buy => "buy",
                Side::Sell => "sell",
            }
            .to_owned(),
        ),
        order_type: Some(
            match request.order_type {
                OrderType::Market => "market",
                OrderType::Limit => "limit",
            }
            .to_owned(),
        ),
        quantity: Some(request.quantity.to_string().into()),
        limit_price: request.limit_price.map(|p| p.to_string().into()),
        expire_at: Some(request.expire_at_ms.into()),
    };
    PlaceOrder::try_from(body).map_err(|e| e.to_string())
}

fn protocol(what: &str, error: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Protocol(format!("{what}: {error}"))
}

fn exchange_order(order: &exchange_sim::Order) -> Result<ExchangeOrder, ExchangeError> {
    Ok(ExchangeOrder {
        order_id: order.order_id.clone(),
        client_order_id: OrderId::parse(&order.client_order_id)
            .map_err(|e| protocol("client_order_id", e))?,
        status: match order.status {
            OrderStatus::New => ExchangeOrderStatus::New,
            OrderStatus::PartiallyFilled => ExchangeOrderStatus::PartiallyFilled,
            OrderStatus::Filled => ExchangeOrderStatus::Filled,
            OrderStatus::Cancelled => ExchangeOrderStatus::Cancelled,
            OrderStatus::Expired => ExchangeOrderStatus::Expired,
            OrderStatus::Rejected => ExchangeOrderStatus::Rejected,
        },
        cum_quantity: order.cum_quantity.shares(),
    })
}

fn execution(e: &exchange_sim::order::Execution) -> Result<Execution, ExchangeError> {
    Ok(Execution {
        exec_id: ExecId::parse(&e.exec_id).map_err(|e| protocol("exec_id", e))?,
        exchange_order_id: e.order_id.clone(),
        quantity: Quantity::new(e.quantity.shares())
            .map_err(|e| protocol("execution quantity", e))?,
        price: Price::from_cents(e.price.cents()).map_err(|e| protocol("execution price", e))?,
    })
}

impl Exchange for EngineExchange {
    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        let order = match place_order(request) {
            Ok(order) => order,
            Err(reason) => return Ok(PlaceOutcome::Rejected { reason }),
        };
        let now = self.clock.now_ms();
        let placed = self.engine().engine.place(order, now);
        match placed {
            Ok(placed) => exchange_order(&placed.order).map(PlaceOutcome::Accepted),
            // The same answer the HTTP adapter gives for a `422` mismatch.
            Err(e @ PlaceError::IdempotencyMismatch(_)) => Err(ExchangeError::Protocol(format!(
                "the exchange holds an order under this client order id for a different request: {e}"
            ))),
            Err(
                e @ (PlaceError::Tombstoned(_)
                | PlaceError::DeadlinePassed
                | PlaceError::UnknownSymbol(_)
                | PlaceError::BadLimitPrice),
            ) => Ok(PlaceOutcome::Rejected {
                reason: e.to_string(),
            }),
            // Refused before storing anything; in-process we know it for sure.
            Err(e @ PlaceError::Full) => Err(ExchangeError::Unavailable(e.to_string())),
        }
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        let found = self
            .engine()
            .engine
            .get_by_client_id(client_order_id.as_str());
        found.as_ref().map(exchange_order).transpose()
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        let found = self.engine().engine.get_by_order_id(exchange_order_id);
        let order = found.ok_or_else(|| {
            ExchangeError::Protocol(format!("no order with id {exchange_order_id}"))
        })?;
        order.executions.iter().map(execution).collect()
    }

    async fn cancel(&self, client_order_id: &OrderId) -> Result<CancelOutcome, ExchangeError> {
        let now = self.clock.now_ms();
        let result = self
            .engine()
            .engine
            .cancel_by_client_id(client_order_id.as_str(), now);
        match (result.outcome, result.order) {
            (engine::CancelOutcome::Tombstoned, _) => Ok(CancelOutcome::Tombstoned),
            (_, Some(order)) => exchange_order(&order).map(CancelOutcome::Known),
            (outcome, None) => Err(protocol(
                "cancel",
                format!("{outcome:?} without the order it needs"),
            )),
        }
    }

    /// The last (mid) price, as the HTTP adapter answers.
    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        let now = self.clock.now_ms();
        let quote = self.engine().engine.quote(symbol.as_str(), now);
        let quote = quote.ok_or_else(|| {
            ExchangeError::Protocol(format!("symbol {symbol} is not listed at the exchange"))
        })?;
        Price::from_cents(quote.last.cents()).map_err(|e| protocol("quote price", e))
    }
}

/// Starts the simulator's HTTP server on `127.0.0.1:0` with [`fast_fills`]
/// and no faults, on the system clock. Returns its base URL and the running
/// server: set faults with `server.state.faults().set(..)` (or `PUT
/// {url}/admin/faults`), read the truth with `server.state.engine().audit()`
/// (or `GET {url}/admin/audit`). Dropping the server stops it.
pub async fn spawn_exchange_sim(seed: u64) -> (String, Running) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let server = exchange_sim::app::start(
        Settings::new(fast_fills(seed)),
        listener,
        Arc::new(exchange_sim::time::SystemClock),
    )
    .await
    .expect("start the exchange simulator");
    (server.url(), server)
}
