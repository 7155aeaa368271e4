//! The matching engine: orders, their fills, cancels and tombstones. Pure and
//! synchronous: randomness comes from one seeded `ChaCha8Rng` and time is
//! always a `now_ms` argument, so a simulation replays a run exactly from its
//! seed and its inputs.
//!
//! An accepted order gets a plan when placed: its quantity split into 1..N
//! chunks and a fate (fill completely, or be cancelled / expire after k < N
//! chunks). [`Engine::advance`] carries out the steps that fell due, each at
//! its own due time, and returns the events to report.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::money::{average_price, notional_cents, Price, Quantity};
use crate::order::{
    EventType, ExchangeEvent, Execution, Order, OrderStatus, OrderType, PlaceOrder, Side,
};
use crate::quotes::{Quote, QuoteBook};

/// Most chunks an order may be split into (bounds executions per order).
pub const MAX_CHUNKS: u32 = 50;
/// Most orders the exchange holds; further places are refused.
pub const MAX_ORDERS: usize = 1_000_000;
/// Most rejected requests kept for the audit; later ones are only counted.
pub const MAX_REJECTIONS_KEPT: usize = 100_000;
/// Default and largest page of executions.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 500;
/// Basis points per unit, for the market-order price collar.
const BPS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub seed: u64,
    /// Each order fills in `min_chunks..=max_chunks` executions (fewer if its
    /// quantity is smaller).
    pub min_chunks: u32,
    pub max_chunks: u32,
    /// Time from acceptance to the first chunk and between chunks, drawn
    /// uniformly from `fill_interval_min_ms..=fill_interval_max_ms`.
    pub fill_interval_min_ms: u64,
    pub fill_interval_max_ms: u64,
    /// Chance that an order is cancelled by the exchange part-way (after fewer
    /// than all its chunks, possibly none).
    pub cancel_probability: f64,
    /// Chance that an order expires part-way.
    pub expire_probability: f64,
    /// An order still open this long after acceptance expires (e.g. a limit
    /// that never became marketable): the day's end, in effect.
    pub order_lifetime_ms: u64,
    /// Market orders fill only within this many basis points of the quote at
    /// acceptance (a limit the exchange sets for them).
    pub collar_bps: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0,
            min_chunks: 1,
            max_chunks: 3,
            fill_interval_min_ms: 50,
            fill_interval_max_ms: 500,
            cancel_probability: 0.05,
            expire_probability: 0.05,
            order_lifetime_ms: 60_000,
            collar_bps: 500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid engine configuration: {0}")]
pub struct ConfigError(pub String);

impl EngineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_string()));
        if self.min_chunks == 0 || self.min_chunks > self.max_chunks || self.max_chunks > MAX_CHUNKS
        {
            return err("need 1 <= min_chunks <= max_chunks <= 50");
        }
        if self.fill_interval_min_ms == 0 || self.fill_interval_min_ms > self.fill_interval_max_ms {
            return err("need 1 <= fill_interval_min_ms <= fill_interval_max_ms");
        }
        let p = |x: f64| (0.0..=1.0).contains(&x);
        if !p(self.cancel_probability)
            || !p(self.expire_probability)
            || self.cancel_probability + self.expire_probability > 1.0
        {
            return err("probabilities must be in [0, 1] and cancel + expire <= 1");
        }
        if self.order_lifetime_ms == 0 || self.collar_bps >= BPS {
            return err("need order_lifetime_ms > 0 and collar_bps < 10000");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("client_order_id `{0}` was already used with a different request")]
    IdempotencyMismatch(String),
    #[error("client_order_id `{0}` was cancelled before any order was placed with it; it can never be used")]
    Tombstoned(String),
    #[error("the request arrived after its expire_at deadline; nothing was placed")]
    DeadlinePassed,
    #[error("symbol `{0}` is not listed")]
    UnknownSymbol(String),
    #[error("a limit order needs a limit price and a market order must not have one")]
    BadLimitPrice,
    #[error("the exchange holds its maximum of {MAX_ORDERS} orders")]
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    /// True when this repeated an earlier identical request (nothing new).
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The order was open and is now cancelled.
    Cancelled,
    /// The order had already reached a terminal status; nothing changed.
    AlreadyTerminal,
    /// The id was never seen; it is now tombstoned (and stays so).
    Tombstoned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelResult {
    pub client_order_id: String,
    pub outcome: CancelOutcome,
    /// The order after the cancel; absent for a tombstone.
    pub order: Option<Order>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionPage {
    pub executions: Vec<Execution>,
    /// Pass back as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("no order with that id")]
    NotFound,
    #[error("page_token is not one this exchange issued")]
    BadToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    DeadlinePassed,
    Tombstoned,
    IdempotencyMismatch,
}

/// A place request that was refused after validation (kept for the audit; a
/// refused request leaves no order and does not consume its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRequest {
    pub request: PlaceOrder,
    pub reason: RejectReason,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tombstone {
    pub client_order_id: String,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub at: u64,
}

/// Everything the exchange holds: the ground truth tests compare against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineAudit {
    pub orders: Vec<Order>,
    pub tombstones: Vec<Tombstone>,
    pub rejected_requests: Vec<RejectedRequest>,
    /// Rejections beyond [`MAX_REJECTIONS_KEPT`], counted but not kept.
    pub rejected_requests_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    FillAll,
    CancelAfter(usize),
    ExpireAfter(usize),
}

#[derive(Debug, Clone)]
struct OrderState {
    order: Order,
    request: PlaceOrder,
    /// Remaining chunk sizes; their sum is the leaves quantity.
    chunks: VecDeque<u64>,
    fate: Fate,
    /// Market orders: the worst price they may fill at.
    collar: Option<Price>,
    notional_cents: u64,
}

#[derive(Debug, Clone)]
enum ClientId {
    Order(usize),
    Tombstone,
}

#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    rng: ChaCha8Rng,
    quotes: QuoteBook,
    /// Index = acceptance order, so audits list orders deterministically.
    orders: Vec<OrderState>,
    by_order_id: HashMap<String, usize>,
    by_client_id: HashMap<String, ClientId>,
    tombstones: Vec<Tombstone>,
    rejections: Vec<RejectedRequest>,
    rejections_dropped: u64,
    /// (due_ms, sequence) → order index; the sequence breaks ties in a fixed way.
    schedule: BTreeMap<(u64, u64), usize>,
    next_seq: u64,
    /// Events produced outside `advance` (cancels), returned by the next one.
    outbox: Vec<ExchangeEvent>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            quotes: QuoteBook::new(config.seed),
            config,
            orders: Vec::new(),
            by_order_id: HashMap::new(),
            by_client_id: HashMap::new(),
            tombstones: Vec::new(),
            rejections: Vec::new(),
            rejections_dropped: 0,
            schedule: BTreeMap::new(),
            next_seq: 0,
            outbox: Vec::new(),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Accepts an order, or returns the existing one for a repeated identical
    /// request. Checks, in order: id already used (same request → the order;
    /// different → mismatch), id tombstoned, deadline passed, symbol, capacity.
    /// A replay is answered even after the deadline: it creates nothing.
    pub fn place(&mut self, req: PlaceOrder, now_ms: u64) -> Result<Placed, PlaceError> {
        match self.by_client_id.get(&req.client_order_id) {
            Some(ClientId::Order(i)) => {
                let state = &self.orders[*i];
                if state.request == req {
                    return Ok(Placed {
                        order: state.order.clone(),
                        replayed: true,
                    });
                }
                let id = req.client_order_id.clone();
                self.reject(req, RejectReason::IdempotencyMismatch, now_ms);
                return Err(PlaceError::IdempotencyMismatch(id));
            }
            Some(ClientId::Tombstone) => {
                let id = req.client_order_id.clone();
                self.reject(req, RejectReason::Tombstoned, now_ms);
                return Err(PlaceError::Tombstoned(id));
            }
            None => {}
        }
        if now_ms > req.expire_at {
            self.reject(req, RejectReason::DeadlinePassed, now_ms);
            return Err(PlaceError::DeadlinePassed);
        }
        let valid_price = match req.order_type {
            OrderType::Limit => req.limit_price.is_some(),
            OrderType::Market => req.limit_price.is_none(),
        };
        if !valid_price {
            return Err(PlaceError::BadLimitPrice);
        }
        let quote = self
            .quotes
            .quote(&req.symbol, now_ms)
            .ok_or_else(|| PlaceError::UnknownSymbol(req.symbol.clone()))?;
        if self.orders.len() >= MAX_ORDERS {
            return Err(PlaceError::Full);
        }
        let state = self.new_order_state(req, &quote, now_ms);
        let index = self.orders.len();
        let first_due = now_ms.saturating_add(self.draw_interval());
        self.by_order_id.insert(state.order.order_id.clone(), index);
        self.by_client_id
            .insert(state.order.client_order_id.clone(), ClientId::Order(index));
        let order = state.order.clone();
        self.orders.push(state);
        self.schedule_at(first_due, index);
        Ok(Placed {
            order,
            replayed: false,
        })
    }

    fn new_order_state(&mut self, req: PlaceOrder, quote: &Quote, now_ms: u64) -> OrderState {
        let qty = req.quantity.shares();
        let max = u64::from(self.config.max_chunks).min(qty);
        let min = u64::from(self.config.min_chunks).min(max);
        let n = self.rng.gen_range(min..=max);
        let chunks = split(&mut self.rng, qty, n);
        let roll: f64 = self.rng.gen();
        let cut = self.rng.gen_range(0..chunks.len());
        let fate = if roll < self.config.cancel_probability {
            Fate::CancelAfter(cut)
        } else if roll < self.config.cancel_probability + self.config.expire_probability {
            Fate::ExpireAfter(cut)
        } else {
            Fate::FillAll
        };
        let collar = match req.order_type {
            OrderType::Limit => None,
            OrderType::Market => Some(collar_price(req.side, quote, self.config.collar_bps)),
        };
        let order_id = new_id(&mut self.rng);
        OrderState {
            order: Order {
                order_id,
                client_order_id: req.client_order_id.clone(),
                account: req.account.clone(),
                symbol: req.symbol.clone(),
                side: req.side,
                order_type: req.order_type,
                quantity: req.quantity,
                limit_price: req.limit_price,
                expire_at: req.expire_at,
                status: OrderStatus::New,
                cum_quantity: Quantity::ZERO,
                leaves_quantity: req.quantity,
                average_price: None,
                created_at: now_ms,
                updated_at: now_ms,
                executions: Vec::new(),
            },
            request: req,
            chunks: chunks.into(),
            fate,
            collar,
            notional_cents: 0,
        }
    }

    fn reject(&mut self, request: PlaceOrder, reason: RejectReason, now_ms: u64) {
        if self.rejections.len() < MAX_REJECTIONS_KEPT {
            self.rejections.push(RejectedRequest {
                request,
                reason,
                at: now_ms,
            });
        } else {
            self.rejections_dropped += 1;
        }
    }

    pub fn get_by_client_id(&self, client_order_id: &str) -> Option<Order> {
        match self.by_client_id.get(client_order_id)? {
            ClientId::Order(i) => Some(self.orders[*i].order.clone()),
            ClientId::Tombstone => None,
        }
    }

    pub fn is_tombstoned(&self, client_order_id: &str) -> bool {
        matches!(
            self.by_client_id.get(client_order_id),
            Some(ClientId::Tombstone)
        )
    }

    pub fn get_by_order_id(&self, order_id: &str) -> Option<Order> {
        let i = self.by_order_id.get(order_id)?;
        Some(self.orders[*i].order.clone())
    }

    /// A page of an order's executions, oldest first. The token is the offset
    /// of the next execution; executions are append-only, so it stays valid.
    pub fn executions(
        &self,
        order_id: &str,
        page_token: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ExecutionPage, PageError> {
        let i = self.by_order_id.get(order_id).ok_or(PageError::NotFound)?;
        let all = &self.orders[*i].order.executions;
        let start = match page_token {
            None | Some("") => 0,
            Some(t) => t.parse::<usize>().map_err(|_| PageError::BadToken)?,
        };
        if start > all.len() {
            return Err(PageError::BadToken);
        }
        let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT);
        let end = start.saturating_add(limit).min(all.len());
        Ok(ExecutionPage {
            executions: all[start..end].to_vec(),
            next_page_token: (end < all.len()).then(|| end.to_string()),
        })
    }

    /// Cancels the order with this client id, or tombstones an id never seen
    /// so that a place arriving later is refused. Idempotent.
    pub fn cancel_by_client_id(&mut self, client_order_id: &str, now_ms: u64) -> CancelResult {
        let result = |outcome, order| CancelResult {
            client_order_id: client_order_id.to_string(),
            outcome,
            order,
        };
        match self.by_client_id.get(client_order_id) {
            None => {
                self.by_client_id
                    .insert(client_order_id.to_string(), ClientId::Tombstone);
                self.tombstones.push(Tombstone {
                    client_order_id: client_order_id.to_string(),
                    at: now_ms,
                });
                result(CancelOutcome::Tombstoned, None)
            }
            Some(ClientId::Tombstone) => result(CancelOutcome::Tombstoned, None),
            Some(ClientId::Order(i)) => {
                let i = *i;
                if self.orders[i].order.status.is_terminal() {
                    return result(
                        CancelOutcome::AlreadyTerminal,
                        Some(self.orders[i].order.clone()),
                    );
                }
                let event = self.finish(i, OrderStatus::Cancelled, now_ms);
                self.outbox.push(event);
                result(CancelOutcome::Cancelled, Some(self.orders[i].order.clone()))
            }
        }
    }

    /// The quote of a listed symbol at `now_ms`.
    pub fn quote(&mut self, symbol: &str, now_ms: u64) -> Option<Quote> {
        self.quotes.quote(symbol, now_ms)
    }

    /// Carries out every step due at or before `now_ms`, each at its own due
    /// time, and returns the events in the order they happened (cancels made
    /// since the last call first).
    pub fn advance(&mut self, now_ms: u64) -> Vec<ExchangeEvent> {
        let mut events = std::mem::take(&mut self.outbox);
        while let Some(entry) = self.schedule.first_entry() {
            let (due_ms, _) = *entry.key();
            if due_ms > now_ms {
                break;
            }
            let index = entry.remove();
            self.step(index, due_ms, &mut events);
        }
        events
    }

    /// When the next scheduled step falls due, if any (lets a simulation jump
    /// its clock straight there).
    pub fn next_due_ms(&self) -> Option<u64> {
        self.schedule.keys().next().map(|(due, _)| *due)
    }

    fn step(&mut self, i: usize, due_ms: u64, events: &mut Vec<ExchangeEvent>) {
        let state = &self.orders[i];
        if state.order.status.is_terminal() {
            return; // cancelled through the API while scheduled
        }
        let fills = state.order.executions.len();
        match state.fate {
            Fate::CancelAfter(k) if fills >= k => {
                events.push(self.finish(i, OrderStatus::Cancelled, due_ms));
                return;
            }
            Fate::ExpireAfter(k) if fills >= k => {
                events.push(self.finish(i, OrderStatus::Expired, due_ms));
                return;
            }
            _ => {}
        }
        if due_ms
            >= state
                .order
                .created_at
                .saturating_add(self.config.order_lifetime_ms)
        {
            events.push(self.finish(i, OrderStatus::Expired, due_ms));
            return;
        }
        if let Some(price) = self.fill_price(i, due_ms) {
            events.extend(self.execute(i, price, due_ms));
        }
        if !self.orders[i].order.status.is_terminal() {
            let next = due_ms.saturating_add(self.draw_interval());
            self.schedule_at(next, i);
        }
    }

    /// The price the next chunk fills at now, if the order is marketable:
    /// buys take the ask, sells hit the bid, never worse than the limit (or,
    /// for market orders, the collar).
    fn fill_price(&mut self, i: usize, now_ms: u64) -> Option<Price> {
        let (symbol, side) = (
            self.orders[i].order.symbol.clone(),
            self.orders[i].order.side,
        );
        let quote = self.quotes.quote(&symbol, now_ms)?;
        let state = &self.orders[i];
        let bound = state.order.limit_price.or(state.collar)?;
        match side {
            Side::Buy => (quote.ask <= bound).then_some(quote.ask),
            Side::Sell => (quote.bid >= bound).then_some(quote.bid),
        }
    }

    fn execute(&mut self, i: usize, price: Price, now_ms: u64) -> Vec<ExchangeEvent> {
        let exec_id = new_id(&mut self.rng);
        let state = &mut self.orders[i];
        let Some(chunk) = state.chunks.pop_front() else {
            return Vec::new();
        };
        let order = &mut state.order;
        let leaves = order.leaves_quantity.shares();
        // The plan's chunks sum to the quantity; clamp anyway so a fill can
        // never exceed what is left.
        let chunk = chunk.min(leaves);
        assert!(chunk > 0, "a planned chunk is never empty");
        let cum = order.cum_quantity.shares() + chunk;
        let leaves = leaves - chunk;
        let qty = Quantity::from_shares(chunk);
        let Some(notional) =
            notional_cents(price, qty).and_then(|n| n.checked_add(state.notional_cents))
        else {
            // Unreachable within the price and quantity limits; refuse the
            // fill rather than report a wrong amount.
            state.chunks.push_front(chunk);
            return Vec::new();
        };
        state.notional_cents = notional;
        order.cum_quantity = Quantity::from_shares(cum);
        order.leaves_quantity = Quantity::from_shares(leaves);
        order.average_price = average_price(notional, cum);
        order.updated_at = now_ms;
        order.status = if leaves == 0 {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        let execution = Execution {
            exec_id: exec_id.clone(),
            order_id: order.order_id.clone(),
            client_order_id: order.client_order_id.clone(),
            quantity: qty,
            price,
            cum_quantity: order.cum_quantity,
            leaves_quantity: order.leaves_quantity,
            occurred_at: now_ms,
        };
        order.executions.push(execution);
        let mut events = vec![event(
            order,
            EventType::Execution,
            format!("evt_{exec_id}"),
            Some((exec_id, qty, price)),
            now_ms,
        )];
        if leaves == 0 {
            events.push(status_event(order, now_ms));
        }
        events
    }

    fn finish(&mut self, i: usize, status: OrderStatus, now_ms: u64) -> ExchangeEvent {
        let order = &mut self.orders[i].order;
        order.status = status;
        order.leaves_quantity = Quantity::ZERO;
        order.updated_at = now_ms;
        status_event(order, now_ms)
    }

    fn draw_interval(&mut self) -> u64 {
        self.rng
            .gen_range(self.config.fill_interval_min_ms..=self.config.fill_interval_max_ms)
    }

    fn schedule_at(&mut self, due_ms: u64, index: usize) {
        self.schedule.insert((due_ms, self.next_seq), index);
        self.next_seq += 1;
    }

    /// Every order (with executions), tombstone and refused request.
    pub fn audit(&self) -> EngineAudit {
        EngineAudit {
            orders: self.orders.iter().map(|s| s.order.clone()).collect(),
            tombstones: self.tombstones.clone(),
            rejected_requests: self.rejections.clone(),
            rejected_requests_dropped: self.rejections_dropped,
        }
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }
}

fn event(
    order: &Order,
    event_type: EventType,
    event_id: String,
    fill: Option<(String, Quantity, Price)>,
    now_ms: u64,
) -> ExchangeEvent {
    let (exec_id, quantity, price) = match fill {
        Some((e, q, p)) => (Some(e), Some(q), Some(p)),
        None => (None, None, None),
    };
    ExchangeEvent {
        event_type,
        event_id,
        client_order_id: order.client_order_id.clone(),
        order_id: order.order_id.clone(),
        account: order.account.clone(),
        symbol: order.symbol.clone(),
        side: order.side,
        exec_id,
        quantity,
        price,
        cum_quantity: order.cum_quantity,
        leaves_quantity: order.leaves_quantity,
        status: order.status,
        occurred_at: now_ms,
    }
}

/// An order reaches one terminal status once, so this id is unique.
fn status_event(order: &Order, now_ms: u64) -> ExchangeEvent {
    let id = format!("evt_{}_{}", order.order_id, order.status.as_str());
    event(order, EventType::OrderStatus, id, None, now_ms)
}

/// A UUID drawn from the engine's RNG: unique in practice, and the same for
/// the same seed.
fn new_id(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

/// Splits `total` into `n` positive parts (requires `1 <= n <= total`).
fn split(rng: &mut ChaCha8Rng, total: u64, n: u64) -> Vec<u64> {
    let n = n.clamp(1, total.max(1));
    // n-1 distinct cut points in 1..total, sorted.
    let mut cuts = std::collections::BTreeSet::new();
    while (cuts.len() as u64) < n - 1 {
        cuts.insert(rng.gen_range(1..total));
    }
    let mut parts = Vec::with_capacity(n as usize);
    let mut prev = 0;
    for c in cuts.into_iter().chain(std::iter::once(total)) {
        parts.push(c - prev);
        prev = c;
    }
    parts
}

/// The worst price a market order may fill at: the quote at acceptance moved
/// `collar_bps` against the order.
fn collar_price(side: Side, quote: &Quote, collar_bps: u64) -> Price {
    let reference = match side {
        Side::Buy => quote.ask.cents(),
        Side::Sell => quote.bid.cents(),
    };
    let band = reference.saturating_mul(collar_bps) / BPS;
    let cents = match side {
        Side::Buy => reference.saturating_add(band),
        Side::Sell => reference.saturating_sub(band).max(1),
    };
    Price::from_cents(cents).unwrap_or(quote.bid)
}

#[cfg(test)]
mod tests;
