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
    PlaceRequest, VenueClock,
};
use app::Clock;
use domain::order::{ExecId, Execution, OrderId, OrderType, VenueRules};
use domain::{Price, Quantity, Side, Symbol};
use exchange_sim::app::{Running, Settings};
use exchange_sim::calendar::TradeDate;
use exchange_sim::engine::{self, ConfigError, EngineAudit, PlaceError};
use exchange_sim::order::PlaceOrderBody;
use exchange_sim::venue::VenueProfile;
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
/// Every call first advances the engine to the venue's now, so the fills
/// due by then exist, exactly as the HTTP server does before answering.
/// The venue's clock is the caller's plus `offset_ms` (ahead or behind).
pub struct EngineExchange {
    inner: Mutex<Inner>,
    now: Arc<dyn Fn() -> u64 + Send + Sync>,
    offset_ms: i64,
    rules: VenueRules,
}

fn rules_of(profile: VenueProfile) -> VenueRules {
    match profile {
        VenueProfile::Tombstone => VenueRules::TOMBSTONE,
        VenueProfile::Deadline => VenueRules::DEADLINE,
        VenueProfile::Plain => VenueRules::PLAIN,
    }
}

impl EngineExchange {
    pub fn new<C: Clock + 'static>(config: EngineConfig, clock: C) -> Result<Self, ConfigError> {
        let rules = rules_of(config.venue);
        Ok(EngineExchange {
            inner: Mutex::new(Inner {
                engine: Engine::new(config)?,
                events: Vec::new(),
            }),
            now: Arc::new(move || clock.now_ms()),
            offset_ms: 0,
            rules,
        })
    }

    /// The venue's clock runs `offset_ms` ahead of ours (behind if negative).
    pub fn with_clock_offset(mut self, offset_ms: i64) -> Self {
        self.offset_ms = offset_ms;
        self
    }

    /// Now, on the venue's clock.
    pub fn venue_now(&self) -> u64 {
        (self.now)().saturating_add_signed(self.offset_ms)
    }

    /// The engine advanced to now, its new events kept.
    fn engine(&self) -> MutexGuard<'_, Inner> {
        // No engine call panics on input; a poisoned lock still holds a
        // consistent engine, so keep serving.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.venue_now();
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

    /// Emits `event` as the venue's webhooks would (tests inject reports
    /// that contradict the platform's records this way).
    pub fn inject(&self, event: ExchangeEvent) {
        let now = self.venue_now();
        self.engine().engine.inject_event(event, now);
    }

    /// When the engine next has something to do (on our clock), so a
    /// simulation can jump its clock straight there.
    pub fn next_due_ms(&self) -> Option<u64> {
        let due = self.engine().engine.next_due_ms()?;
        Some(due.saturating_add_signed(-self.offset_ms))
    }

    /// Everything the exchange holds: the truth tests compare against.
    pub fn audit(&self) -> EngineAudit {
        self.engine().engine.audit()
    }

    /// Runs `read` on the engine (cheap accessors, without a full audit).
    pub fn with_engine<T>(&self, read: impl FnOnce(&Engine) -> T) -> T {
        read(&self.engine().engine)
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
        expire_at: request.deadline_ms.map(Into::into),
        time_in_force: Some(request.time_in_force.as_str().to_owned()),
    };
    PlaceOrder::try_from(body).map_err(|e| e.to_string())
}

fn protocol(what: &str, error: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Protocol(format!("{what}: {error}"))
}

fn status(status: OrderStatus) -> ExchangeOrderStatus {
    match status {
        OrderStatus::New => ExchangeOrderStatus::New,
        OrderStatus::PartiallyFilled => ExchangeOrderStatus::PartiallyFilled,
        OrderStatus::Filled => ExchangeOrderStatus::Filled,
        OrderStatus::Cancelled => ExchangeOrderStatus::Cancelled,
        OrderStatus::Expired => ExchangeOrderStatus::Expired,
        OrderStatus::Rejected => ExchangeOrderStatus::Rejected,
    }
}

fn exchange_order(order: &exchange_sim::Order) -> ExchangeOrder {
    ExchangeOrder {
        order_id: order.order_id.clone(),
        client_order_id: order.client_order_id.clone(),
        status: status(order.status),
        cum_quantity: order.cum_quantity.shares(),
    }
}

fn execution(e: &exchange_sim::order::Execution) -> Result<Execution, ExchangeError> {
    Ok(Execution {
        exec_id: ExecId::parse(&e.exec_id).map_err(|e| protocol("exec_id", e))?,
        exchange_order_id: e.order_id.clone(),
        quantity: Quantity::new(e.quantity.shares())
            .map_err(|e| protocol("execution quantity", e))?,
        price: Price::from_cents(e.price.cents()).map_err(|e| protocol("execution price", e))?,
        cum_quantity: Some(e.cum_quantity.shares()),
    })
}

impl Exchange for EngineExchange {
    fn rules(&self) -> VenueRules {
        self.rules
    }

    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        let order = match place_order(request) {
            Ok(order) => order,
            Err(reason) => return Ok(PlaceOutcome::Rejected { reason }),
        };
        let now = self.venue_now();
        let placed = self.engine().engine.place(order, now);
        match placed {
            Ok(placed) => Ok(PlaceOutcome::Accepted(exchange_order(&placed.order))),
            // The same answer the HTTP adapter gives for a `422` mismatch.
            Err(e @ PlaceError::IdempotencyMismatch(_)) => Err(ExchangeError::Protocol(format!(
                "the exchange holds an order under this client order id for a different request: {e}"
            ))),
            // Refused before storing anything; in-process we know it for sure.
            Err(e @ PlaceError::Full) => Err(ExchangeError::Unavailable(e.to_string())),
            Err(e) => Ok(PlaceOutcome::Rejected {
                reason: e.to_string(),
            }),
        }
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        let found = self
            .engine()
            .engine
            .order_summary_by_client_id(client_order_id.as_str());
        Ok(found.map(|o| ExchangeOrder {
            order_id: o.order_id,
            client_order_id: o.client_order_id,
            status: status(o.status),
            cum_quantity: o.cum_quantity.shares(),
        }))
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .engine()
                .engine
                .executions(exchange_order_id, token.as_deref(), Some(500))
                .map_err(|e| protocol("executions", e))?;
            for e in &page.executions {
                all.push(execution(e)?);
            }
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return Ok(all),
            }
        }
    }

    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        let now = self.venue_now();
        let result = if self.rules.cancel_by_client_id {
            self.engine()
                .engine
                .cancel_by_client_id(client_order_id.as_str(), now)
        } else {
            let Some(id) = exchange_order_id else {
                return Err(protocol("cancel", "this venue cancels only by its own id"));
            };
            self.engine().engine.cancel_by_order_id(id, now)
        };
        let result = match result {
            Ok(result) => result,
            Err(engine::CancelError::UnknownOrder) => return Ok(CancelOutcome::NotFound),
            Err(e) => return Err(protocol("cancel", e)),
        };
        match (result.outcome, result.order) {
            (engine::CancelOutcome::Tombstoned, _) => Ok(CancelOutcome::Tombstoned),
            (_, Some(order)) => Ok(CancelOutcome::Known(exchange_order(&order))),
            (outcome, None) => Err(protocol(
                "cancel",
                format!("{outcome:?} without the order it needs"),
            )),
        }
    }

    /// The last (mid) price, as the HTTP adapter answers.
    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        let now = self.venue_now();
        let quote = self.engine().engine.quote(symbol.as_str(), now);
        let quote = quote.ok_or_else(|| {
            ExchangeError::Protocol(format!("symbol {symbol} is not listed at the exchange"))
        })?;
        Price::from_cents(quote.last.cents()).map_err(|e| protocol("quote price", e))
    }

    /// Known exactly in-process.
    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        Ok(VenueClock {
            offset_ms: self.offset_ms,
            uncertainty_ms: 0,
        })
    }

    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        let date = TradeDate::parse(trade_date)
            .ok_or_else(|| protocol("trade date", trade_date.to_owned()))?;
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .engine()
                .engine
                .orders_for_trade_date(date, token.as_deref(), Some(500))
                .map_err(|e| protocol("day orders", e))?;
            all.extend(page.orders.into_iter().map(|o| ExchangeOrder {
                order_id: o.order_id,
                client_order_id: o.client_order_id,
                status: status(o.status),
                cum_quantity: o.cum_quantity.shares(),
            }));
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return Ok(all),
            }
        }
    }
}

/// Starts the simulator's HTTP server on `127.0.0.1:0` with [`fast_fills`]
/// and no faults, on the system clock. Returns its base URL and the running
/// server: set faults with `server.state.faults().set(..)` (or `PUT
/// {url}/admin/faults`), read the truth with `server.state.engine().audit()`
/// (or `GET {url}/admin/audit`). Dropping the server stops it.
pub async fn spawn_exchange_sim(seed: u64) -> (String, Running) {
    spawn_exchange_sim_with(Settings::new(fast_fills(seed))).await
}

/// The simulator's HTTP server with these settings (a venue profile, a
/// clock offset, market behaviour).
pub async fn spawn_exchange_sim_with(settings: Settings) -> (String, Running) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let server = exchange_sim::app::start(
        settings,
        listener,
        Arc::new(exchange_sim::time::SystemClock),
    )
    .await
    .expect("start the exchange simulator");
    (server.url(), server)
}
