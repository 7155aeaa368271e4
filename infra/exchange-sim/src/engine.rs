//! The matching engine: orders, their fills, cancels, tombstones and time in
//! force. Pure and synchronous: randomness comes from seeded `ChaCha8Rng`
//! streams and time is always a `now_ms` argument (the *venue's* time), so a
//! simulation replays a run exactly from its seed and its inputs.
//!
//! An accepted order gets a plan when placed: its quantity split into 1..N
//! chunks (N uniform, or heavy-tailed) and a fate (fill completely, or be
//! cancelled / expire after k < N chunks). [`Engine::advance`] carries out
//! the tasks that fell due, each at its own due time, and returns the events
//! to report. An order is in exactly one place: scheduled for its next step,
//! resting in its symbol's book (not marketable), or closed. Resting orders
//! cost nothing until the quote could have reached them, so `advance` never
//! scans all orders; every task is O(log n).

mod book;
mod contradictions;

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::calendar::{
    Calendar, TradeDate, DEFAULT_CLOSE_UTC_MS, DEFAULT_GTC_MAX_DAYS, MAX_GTC_DAYS,
};
use crate::hostile::{HostileConfig, HostileRecord, Reorder};
use crate::money::{average_price, notional_cents, Price, Quantity};
use crate::order::{
    EventType, ExchangeEvent, Execution, Order, OrderStatus, OrderSummary, OrderType, PlaceOrder,
    Side, TimeInForce,
};
use crate::quotes::{Gaps, Quote, QuoteBook, MAX_GAP_BPS, QUOTE_STEP_MS, SYMBOLS};
use crate::time::MS_PER_DAY;
use crate::venue::{VenueCapabilities, VenueProfile};

use book::Book;

/// Most chunks (executions) an order may be split into.
pub const MAX_CHUNKS: u32 = 10_000;
/// Most orders the exchange holds; further places are refused.
pub const MAX_ORDERS: usize = 1_000_000;
/// Most rejected requests kept for the audit; later ones are only counted.
pub const MAX_REJECTIONS_KEPT: usize = 100_000;
/// Most hostile events kept for the audit; later ones are only counted.
pub const MAX_HOSTILE_KEPT: usize = 100_000;
/// Default and largest page of any list.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 500;
/// Longest accepted fill interval: a day (slower is not a fill, it is a hang).
pub const MAX_FILL_INTERVAL_MS: u64 = MS_PER_DAY;
/// Longest accepted `order_lifetime_ms`: a year.
pub const MAX_ORDER_LIFETIME_MS: u64 = 366 * MS_PER_DAY;
/// Accepted range of `chunk_tail_alpha` (below 0.1 nearly every order would
/// hit `max_chunks`; above 10 the tail is gone).
pub const MIN_CHUNK_TAIL_ALPHA: f64 = 0.1;
pub const MAX_CHUNK_TAIL_ALPHA: f64 = 10.0;
/// Basis points per unit, for the optional market-order collar.
const BPS: u64 = 10_000;
/// Mixed into the seed for the hostile stream, so hostility never shifts fills.
const HOSTILE_STREAM: u64 = 0x4057_11E5_4057_11E5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub seed: u64,
    /// What the venue guarantees about deadlines, tombstones and cancels.
    pub venue: VenueProfile,
    /// Each order fills in `min_chunks..=max_chunks` executions (fewer if its
    /// quantity is smaller: every execution is at least one share).
    pub min_chunks: u32,
    pub max_chunks: u32,
    /// `None`: the chunk count is uniform in `min..=max`. `Some(alpha)`: it is
    /// Pareto-distributed with scale `min_chunks` and shape `alpha`, capped at
    /// `max_chunks`, so P(n >= k) = (min/k)^alpha: with min 1 and alpha 1,
    /// half the orders fill in 1 execution, 1% in 100 or more, 0.1% in 1,000
    /// or more.
    pub chunk_tail_alpha: Option<f64>,
    /// Time from acceptance to the first chunk and between chunks, drawn
    /// uniformly from `fill_interval_min_ms..=fill_interval_max_ms`. Zero is
    /// allowed: many executions then share one millisecond.
    pub fill_interval_min_ms: u64,
    pub fill_interval_max_ms: u64,
    /// Chance that an order is cancelled by the exchange part-way (after fewer
    /// than all its chunks, possibly none).
    pub cancel_probability: f64,
    /// Chance that an order expires part-way.
    pub expire_probability: f64,
    /// Session close, ms after UTC midnight, every calendar day. DAY orders
    /// expire at the first close after acceptance.
    pub close_utc_ms: u64,
    /// GTC orders expire this many days after their first close.
    pub gtc_max_days: u32,
    /// 0: off (time in force decides). Otherwise an order still open this
    /// long after acceptance expires, whatever its time in force (short test
    /// and demo runs use it so resting limits end within the run).
    pub order_lifetime_ms: u64,
    /// `None` (default): market orders fill at whatever the quote is. With
    /// `Some(bps)`, the venue caps them this far from the quote at acceptance
    /// (and they rest when the quote is beyond it).
    pub collar_bps: Option<u64>,
    /// `false` models a broken venue: limit prices are ignored when filling,
    /// so a limit order fills at the quote however far through its limit.
    pub honours_limits: bool,
    /// Chance per quote step (1 s) that a symbol's price gaps by up to
    /// `gap_max_bps`, up or down. 0: the slow random walk only.
    pub gap_probability: f64,
    pub gap_max_bps: u64,
    /// Contradicting webhook reports; `None`: none.
    pub hostile: Option<HostileConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0,
            venue: VenueProfile::Tombstone,
            min_chunks: 1,
            max_chunks: 3,
            chunk_tail_alpha: None,
            fill_interval_min_ms: 50,
            fill_interval_max_ms: 500,
            cancel_probability: 0.05,
            expire_probability: 0.05,
            close_utc_ms: DEFAULT_CLOSE_UTC_MS,
            gtc_max_days: DEFAULT_GTC_MAX_DAYS,
            order_lifetime_ms: 0,
            collar_bps: None,
            honours_limits: true,
            gap_probability: 0.0,
            gap_max_bps: 2_000,
            hostile: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid engine configuration: {0}")]
pub struct ConfigError(pub String);

impl EngineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.min_chunks == 0 || self.min_chunks > self.max_chunks || self.max_chunks > MAX_CHUNKS
        {
            return err(format!(
                "need 1 <= min_chunks <= max_chunks <= {MAX_CHUNKS}"
            ));
        }
        if let Some(alpha) = self.chunk_tail_alpha {
            if !(MIN_CHUNK_TAIL_ALPHA..=MAX_CHUNK_TAIL_ALPHA).contains(&alpha) {
                return err(format!(
                    "chunk_tail_alpha must be in [{MIN_CHUNK_TAIL_ALPHA}, {MAX_CHUNK_TAIL_ALPHA}]"
                ));
            }
        }
        if self.fill_interval_min_ms > self.fill_interval_max_ms
            || self.fill_interval_max_ms > MAX_FILL_INTERVAL_MS
        {
            return err(format!(
                "need fill_interval_min_ms <= fill_interval_max_ms <= {MAX_FILL_INTERVAL_MS}"
            ));
        }
        let p = |x: f64| (0.0..=1.0).contains(&x);
        if !p(self.cancel_probability)
            || !p(self.expire_probability)
            || self.cancel_probability + self.expire_probability > 1.0
        {
            return err("probabilities must be in [0, 1] and cancel + expire <= 1".into());
        }
        if self.close_utc_ms >= MS_PER_DAY {
            return err(format!("close_utc_ms must be below {MS_PER_DAY}"));
        }
        if self.gtc_max_days == 0 || self.gtc_max_days > MAX_GTC_DAYS {
            return err(format!("need 1 <= gtc_max_days <= {MAX_GTC_DAYS}"));
        }
        if self.order_lifetime_ms > MAX_ORDER_LIFETIME_MS {
            return err(format!(
                "order_lifetime_ms must be at most {MAX_ORDER_LIFETIME_MS} (0 = off)"
            ));
        }
        if self.collar_bps.is_some_and(|c| c >= BPS) {
            return err("collar_bps must be below 10000".into());
        }
        if !p(self.gap_probability)
            || self.gap_max_bps > MAX_GAP_BPS
            || (self.gap_probability > 0.0 && self.gap_max_bps == 0)
        {
            return err(format!(
                "need gap_probability in [0, 1] and gap_max_bps in 1..={MAX_GAP_BPS} when gaps are on"
            ));
        }
        if let Some(h) = &self.hostile {
            h.validate().map_err(ConfigError)?;
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
    #[error("`expire_at` is required: this venue enforces a request deadline")]
    DeadlineRequired,
    #[error(
        "`{0}` is not supported by this venue (it has no request deadline); nothing was placed"
    )]
    UnsupportedField(&'static str),
    #[error("symbol `{0}` is not listed")]
    UnknownSymbol(String),
    #[error("a limit order needs a limit price and a market order must not have one")]
    BadLimitPrice,
    #[error("the exchange holds its maximum of {MAX_ORDERS} orders")]
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// The venue holds no order under this id (and, unlike a tombstone
    /// venue, keeps no record of the attempt).
    #[error("no order with this id")]
    UnknownOrder,
    /// The venue does not cancel by client order id.
    #[error("this venue cancels only by its own order id: DELETE /v1/orders/{{order_id}}")]
    CancelByOrderIdOnly,
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
    /// The id was never seen; it is now tombstoned (and stays so). Only at a
    /// `tombstone` venue.
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
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
    pub venue: VenueProfile,
    pub orders: Vec<Order>,
    pub tombstones: Vec<Tombstone>,
    pub rejected_requests: Vec<RejectedRequest>,
    /// Rejections beyond [`MAX_REJECTIONS_KEPT`], counted but not kept.
    pub rejected_requests_dropped: u64,
    /// Every contradicting event sent (hostile kinds and `/admin/events`).
    pub hostile_events: Vec<HostileRecord>,
    /// Hostile events beyond [`MAX_HOSTILE_KEPT`], counted but not kept.
    pub hostile_events_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    FillAll,
    CancelAfter(usize),
    ExpireAfter(usize),
}

/// A schedule key: (due ms, sequence); the sequence breaks ties in a fixed way.
type Key = (u64, u64);

#[derive(Debug, Clone, Copy)]
enum Task {
    /// An order's next fill attempt.
    Step(usize),
    /// An order's time in force (or lifetime) ends.
    Expire(usize),
    /// Look at a symbol's resting orders (index into [`SYMBOLS`]).
    Check(usize),
    /// Send an order's held-back execution events (hostile).
    Release(usize),
}

/// Where an open order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Closed, or being stepped right now.
    Idle,
    Scheduled(Key),
    /// In its symbol's book: side, limit, resting sequence.
    Resting(Side, Price, u64),
}

#[derive(Debug, Clone)]
struct OrderState {
    order: Order,
    request: PlaceOrder,
    /// Index of its symbol in [`SYMBOLS`].
    symbol: usize,
    /// Remaining chunk sizes; their sum is the leaves quantity.
    chunks: VecDeque<u64>,
    fate: Fate,
    /// The worst price it may fill at: the limit, or a market order's collar.
    bound: Option<Price>,
    notional_cents: u64,
    slot: Slot,
    expiry: Option<Key>,
    /// Hostile: how its events are reordered.
    reorder: Option<Reorder>,
    /// Hostile: execution events held back behind its final status.
    held: VecDeque<ExchangeEvent>,
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
    hostile_rng: ChaCha8Rng,
    quotes: QuoteBook,
    calendar: Calendar,
    /// Index = acceptance order, so audits list orders deterministically.
    orders: Vec<OrderState>,
    by_order_id: HashMap<String, usize>,
    by_client_id: HashMap<String, ClientId>,
    tombstones: Vec<Tombstone>,
    rejections: Vec<RejectedRequest>,
    rejections_dropped: u64,
    schedule: BTreeMap<Key, Task>,
    next_seq: u64,
    /// Resting orders, one book per symbol (index into [`SYMBOLS`]).
    books: Vec<Book>,
    /// Events not yet returned by `advance`.
    outbox: Vec<ExchangeEvent>,
    /// Order indices per acceptance trade date, in acceptance order.
    orders_by_date: BTreeMap<TradeDate, Vec<usize>>,
    /// (order index, execution index) per execution trade date, oldest first.
    executions_by_date: BTreeMap<TradeDate, Vec<(usize, usize)>>,
    open_orders: usize,
    resting_orders: usize,
    execution_total: usize,
    hostile_log: Vec<HostileRecord>,
    hostile_dropped: u64,
    injected_total: u64,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        let gaps = (config.gap_probability > 0.0).then_some(Gaps {
            probability: config.gap_probability,
            max_bps: config.gap_max_bps,
        });
        Ok(Engine {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            hostile_rng: ChaCha8Rng::seed_from_u64(config.seed ^ HOSTILE_STREAM),
            quotes: QuoteBook::with_gaps(config.seed, gaps),
            calendar: Calendar {
                close_utc_ms: config.close_utc_ms,
            },
            config,
            orders: Vec::new(),
            by_order_id: HashMap::new(),
            by_client_id: HashMap::new(),
            tombstones: Vec::new(),
            rejections: Vec::new(),
            rejections_dropped: 0,
            schedule: BTreeMap::new(),
            next_seq: 0,
            books: vec![Book::default(); SYMBOLS.len()],
            outbox: Vec::new(),
            orders_by_date: BTreeMap::new(),
            executions_by_date: BTreeMap::new(),
            open_orders: 0,
            resting_orders: 0,
            execution_total: 0,
            hostile_log: Vec::new(),
            hostile_dropped: 0,
            injected_total: 0,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn calendar(&self) -> Calendar {
        self.calendar
    }

    /// What a client may rely on at this venue (`GET /v1/venue`).
    pub fn venue(&self) -> VenueCapabilities {
        VenueCapabilities::new(
            self.config.venue,
            self.config.close_utc_ms,
            self.config.gtc_max_days,
        )
    }

    /// Accepts an order, or returns the existing one for a repeated identical
    /// request. Checks, in order: the deadline field is what the venue wants
    /// (required, or refused where it has none), id already used (same
    /// request → the order; different → mismatch), id tombstoned, deadline
    /// passed, price, symbol, capacity. A replay is answered even after the
    /// deadline: it creates nothing.
    pub fn place(&mut self, req: PlaceOrder, now_ms: u64) -> Result<Placed, PlaceError> {
        // A malformed request for this venue is a 400 whatever the id holds.
        match (self.config.venue.request_deadline(), req.expire_at) {
            (true, None) => return Err(PlaceError::DeadlineRequired),
            (false, Some(_)) => return Err(PlaceError::UnsupportedField("expire_at")),
            _ => {}
        }
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
                self.contradict_refused_place(&req, "tombstoned", now_ms);
                self.reject(req, RejectReason::Tombstoned, now_ms);
                return Err(PlaceError::Tombstoned(id));
            }
            None => {}
        }
        if req.expire_at.is_some_and(|deadline| now_ms > deadline) {
            self.contradict_refused_place(&req, "deadline passed", now_ms);
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
        let unknown = || PlaceError::UnknownSymbol(req.symbol.clone());
        let symbol = QuoteBook::index_of(&req.symbol).ok_or_else(unknown)?;
        let quote = self.quotes.quote_at(symbol, now_ms).ok_or_else(unknown)?;
        if self.orders.len() >= MAX_ORDERS {
            return Err(PlaceError::Full);
        }
        let index = self.orders.len();
        let state = self.new_order_state(req, symbol, &quote, now_ms);
        let (tif, good_until, trade_date) = (
            state.order.time_in_force,
            state.order.good_until,
            state.order.trade_date,
        );
        self.by_order_id.insert(state.order.order_id.clone(), index);
        self.by_client_id
            .insert(state.order.client_order_id.clone(), ClientId::Order(index));
        self.orders_by_date
            .entry(trade_date)
            .or_default()
            .push(index);
        self.orders.push(state);
        self.open_orders += 1;
        self.plan_contradictions(index, &quote, now_ms);
        if tif == TimeInForce::Ioc {
            self.fill_immediately(index, now_ms);
        } else {
            let first_due = now_ms.saturating_add(self.draw_interval());
            self.schedule_step(index, first_due);
            let key = self.insert_task(good_until, Task::Expire(index));
            self.orders[index].expiry = Some(key);
        }
        Ok(Placed {
            order: self.orders[index].order.clone(),
            replayed: false,
        })
    }

    fn new_order_state(
        &mut self,
        req: PlaceOrder,
        symbol: usize,
        quote: &Quote,
        now_ms: u64,
    ) -> OrderState {
        let qty = req.quantity.shares();
        let n = self.draw_chunk_count(qty);
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
        let bound = match req.order_type {
            OrderType::Limit => req.limit_price,
            OrderType::Market => self
                .config
                .collar_bps
                .map(|bps| collar_price(req.side, quote, bps)),
        };
        let order_id = new_id(&mut self.rng);
        let first_close = self.calendar.next_close_ms(now_ms);
        let mut good_until = match req.time_in_force {
            TimeInForce::Day => first_close,
            TimeInForce::Gtc => first_close
                .saturating_add(u64::from(self.config.gtc_max_days).saturating_mul(MS_PER_DAY)),
            TimeInForce::Ioc => now_ms,
        };
        if self.config.order_lifetime_ms > 0 {
            good_until = good_until.min(now_ms.saturating_add(self.config.order_lifetime_ms));
        }
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
                time_in_force: req.time_in_force,
                trade_date: self.calendar.trade_date(now_ms),
                good_until,
                status: OrderStatus::New,
                cum_quantity: Quantity::ZERO,
                leaves_quantity: req.quantity,
                average_price: None,
                created_at: now_ms,
                updated_at: now_ms,
                executions: Vec::new(),
            },
            request: req,
            symbol,
            chunks: chunks.into(),
            fate,
            bound,
            notional_cents: 0,
            slot: Slot::Idle,
            expiry: None,
            reorder: None,
            held: VecDeque::new(),
        }
    }

    /// How many executions an order of `qty` shares fills in.
    fn draw_chunk_count(&mut self, qty: u64) -> u64 {
        let max = u64::from(self.config.max_chunks).min(qty);
        let min = u64::from(self.config.min_chunks).min(max);
        match self.config.chunk_tail_alpha {
            None => self.rng.gen_range(min..=max),
            Some(alpha) => {
                // Inverse transform: u in (0, 1] gives min * u^(-1/alpha).
                // `as` saturates (a huge draw becomes u64::MAX), then the cap.
                let u = 1.0 - self.rng.gen::<f64>();
                let n = (min as f64) * u.powf(-1.0 / alpha);
                (n.floor() as u64).clamp(min, max)
            }
        }
    }

    /// IOC: fill what is marketable now, chunk after chunk at this same
    /// time, and cancel the rest.
    fn fill_immediately(&mut self, i: usize, now_ms: u64) {
        loop {
            let state = &self.orders[i];
            if state.order.status.is_terminal() {
                return;
            }
            let fills = state.order.executions.len();
            let stop = match state.fate {
                Fate::CancelAfter(k) | Fate::ExpireAfter(k) => fills >= k,
                Fate::FillAll => false,
            };
            let price = if stop {
                None
            } else {
                self.fill_price(i, now_ms)
            };
            let filled = match price {
                Some(p) => self.execute(i, p, now_ms),
                None => false,
            };
            if !filled {
                self.finish(i, OrderStatus::Cancelled, now_ms);
                return;
            }
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

    /// The order without its executions: cheap whatever its fill count.
    pub fn order_summary(&self, order_id: &str) -> Option<OrderSummary> {
        let i = self.by_order_id.get(order_id)?;
        Some(OrderSummary::from(&self.orders[*i].order))
    }

    /// [`Engine::order_summary`] by client order id.
    pub fn order_summary_by_client_id(&self, client_order_id: &str) -> Option<OrderSummary> {
        match self.by_client_id.get(client_order_id)? {
            ClientId::Order(i) => Some(OrderSummary::from(&self.orders[*i].order)),
            ClientId::Tombstone => None,
        }
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
        let (start, end) = page_bounds(all.len(), page_token, limit)?;
        Ok(ExecutionPage {
            executions: all[start..end].to_vec(),
            next_page_token: (end < all.len()).then(|| end.to_string()),
        })
    }

    /// The orders accepted into `trade_date`'s session, in acceptance order,
    /// without their executions (`GET /v1/orders?trade_date=`). Same token
    /// rule as [`Engine::executions`].
    pub fn orders_for_trade_date(
        &self,
        trade_date: TradeDate,
        page_token: Option<&str>,
        limit: Option<usize>,
    ) -> Result<OrderPage, PageError> {
        let all = self
            .orders_by_date
            .get(&trade_date)
            .map_or(&[][..], Vec::as_slice);
        let (start, end) = page_bounds(all.len(), page_token, limit)?;
        Ok(OrderPage {
            orders: all[start..end]
                .iter()
                .map(|i| OrderSummary::from(&self.orders[*i].order))
                .collect(),
            next_page_token: (end < all.len()).then(|| end.to_string()),
        })
    }

    /// Every execution of `trade_date`, whatever day its order was accepted,
    /// in the order the venue made them (`GET /v1/executions?trade_date=`).
    pub fn executions_for_trade_date(
        &self,
        trade_date: TradeDate,
        page_token: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ExecutionPage, PageError> {
        let all = self
            .executions_by_date
            .get(&trade_date)
            .map_or(&[][..], Vec::as_slice);
        let (start, end) = page_bounds(all.len(), page_token, limit)?;
        Ok(ExecutionPage {
            executions: all[start..end]
                .iter()
                .map(|(o, x)| self.orders[*o].order.executions[*x].clone())
                .collect(),
            next_page_token: (end < all.len()).then(|| end.to_string()),
        })
    }

    /// Cancels the order with this client id. At a `tombstone` venue an id
    /// never seen is tombstoned, so that a place arriving later is refused;
    /// at a `deadline` venue it is [`CancelError::UnknownOrder`] and nothing
    /// is stored; a `plain` venue refuses every cancel by client id.
    /// Idempotent.
    pub fn cancel_by_client_id(
        &mut self,
        client_order_id: &str,
        now_ms: u64,
    ) -> Result<CancelResult, CancelError> {
        let profile = self.config.venue;
        if !profile.cancel_by_client_id() {
            return Err(CancelError::CancelByOrderIdOnly);
        }
        match self.by_client_id.get(client_order_id) {
            None if profile.tombstones() => {
                self.by_client_id
                    .insert(client_order_id.to_string(), ClientId::Tombstone);
                self.tombstones.push(Tombstone {
                    client_order_id: client_order_id.to_string(),
                    at: now_ms,
                });
                self.contradict_unknown_cancel(client_order_id, now_ms);
                Ok(CancelResult {
                    client_order_id: client_order_id.to_string(),
                    outcome: CancelOutcome::Tombstoned,
                    order: None,
                })
            }
            None => {
                self.contradict_unknown_cancel(client_order_id, now_ms);
                Err(CancelError::UnknownOrder)
            }
            Some(ClientId::Tombstone) => Ok(CancelResult {
                client_order_id: client_order_id.to_string(),
                outcome: CancelOutcome::Tombstoned,
                order: None,
            }),
            Some(ClientId::Order(i)) => {
                let i = *i;
                Ok(self.cancel_index(i, now_ms))
            }
        }
    }

    /// Cancels by the venue's own order id (every profile). Idempotent.
    pub fn cancel_by_order_id(
        &mut self,
        order_id: &str,
        now_ms: u64,
    ) -> Result<CancelResult, CancelError> {
        let i = *self
            .by_order_id
            .get(order_id)
            .ok_or(CancelError::UnknownOrder)?;
        Ok(self.cancel_index(i, now_ms))
    }

    fn cancel_index(&mut self, i: usize, now_ms: u64) -> CancelResult {
        let outcome = if self.orders[i].order.status.is_terminal() {
            CancelOutcome::AlreadyTerminal
        } else {
            self.finish(i, OrderStatus::Cancelled, now_ms);
            CancelOutcome::Cancelled
        };
        let order = self.orders[i].order.clone();
        CancelResult {
            client_order_id: order.client_order_id.clone(),
            outcome,
            order: Some(order),
        }
    }

    /// The quote of a listed symbol at `now_ms`.
    pub fn quote(&mut self, symbol: &str, now_ms: u64) -> Option<Quote> {
        self.quotes.quote(symbol, now_ms)
    }

    /// Carries out every task due at or before `now_ms`, each at its own due
    /// time, and returns the events in the order they happened (including
    /// those of places and cancels made since the last call).
    pub fn advance(&mut self, now_ms: u64) -> Vec<ExchangeEvent> {
        while let Some(entry) = self.schedule.first_entry() {
            let (due_ms, _) = *entry.key();
            if due_ms > now_ms {
                break;
            }
            match entry.remove() {
                Task::Step(i) => {
                    self.orders[i].slot = Slot::Idle;
                    self.step(i, due_ms);
                }
                Task::Expire(i) => {
                    self.orders[i].expiry = None;
                    if !self.orders[i].order.status.is_terminal() {
                        self.finish(i, OrderStatus::Expired, due_ms);
                    }
                }
                Task::Check(symbol) => {
                    self.books[symbol].check = None;
                    self.check_book(symbol, due_ms);
                }
                Task::Release(i) => self.release_held(i, due_ms),
            }
        }
        std::mem::take(&mut self.outbox)
    }

    /// When the next scheduled task falls due, if any (lets a simulation jump
    /// its clock straight there). With resting orders this includes looks at
    /// their books, which may find nothing to do.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.schedule.keys().next().map(|(due, _)| *due)
    }

    fn step(&mut self, i: usize, due_ms: u64) {
        let state = &self.orders[i];
        if state.order.status.is_terminal() {
            return;
        }
        let fills = state.order.executions.len();
        match state.fate {
            Fate::CancelAfter(k) if fills >= k => {
                self.finish(i, OrderStatus::Cancelled, due_ms);
                return;
            }
            Fate::ExpireAfter(k) if fills >= k => {
                self.finish(i, OrderStatus::Expired, due_ms);
                return;
            }
            _ => {}
        }
        if due_ms >= state.order.good_until {
            self.finish(i, OrderStatus::Expired, due_ms);
            return;
        }
        match self.fill_price(i, due_ms) {
            Some(price) => {
                self.execute(i, price, due_ms);
                if !self.orders[i].order.status.is_terminal() {
                    let next = due_ms.saturating_add(self.draw_interval());
                    self.schedule_step(i, next);
                }
            }
            None => self.rest(i, due_ms),
        }
    }

    /// The price the next chunk fills at now, if the order is marketable:
    /// buys take the ask, sells hit the bid, never worse than the bound
    /// (unless the venue ignores limits).
    fn fill_price(&mut self, i: usize, now_ms: u64) -> Option<Price> {
        let quote = self.quotes.quote_at(self.orders[i].symbol, now_ms)?;
        let state = &self.orders[i];
        let ignores_limit =
            !self.config.honours_limits && state.order.order_type == OrderType::Limit;
        let bound = if ignores_limit { None } else { state.bound };
        let (take, marketable) = match state.order.side {
            Side::Buy => (quote.ask, bound.is_none_or(|b| quote.ask <= b)),
            Side::Sell => (quote.bid, bound.is_none_or(|b| quote.bid >= b)),
        };
        marketable.then_some(take)
    }

    /// Puts an order that is not marketable into its symbol's book.
    fn rest(&mut self, i: usize, now_ms: u64) {
        let Some(bound) = self.orders[i].bound else {
            // Only a bounded order can be unmarketable; if the quote itself
            // was missing, try again later rather than lose the order.
            let next = now_ms.saturating_add(self.draw_interval().max(1));
            self.schedule_step(i, next);
            return;
        };
        let seq = self.take_seq();
        let (side, symbol) = (self.orders[i].order.side, self.orders[i].symbol);
        self.books[symbol].insert(side, bound, seq, i);
        self.orders[i].slot = Slot::Resting(side, bound, seq);
        self.resting_orders += 1;
        self.plan_check(symbol, now_ms);
    }

    /// Schedules the next look at a book: the first quote step at which its
    /// nearest order could be marketable, given the most the quote moves per
    /// step (every step when gaps are on; now if one already is).
    fn plan_check(&mut self, symbol: usize, now_ms: u64) {
        if let Some(key) = self.books[symbol].check.take() {
            self.schedule.remove(&key);
        }
        if self.books[symbol].is_empty() {
            return;
        }
        let Some(quote) = self.quotes.quote_at(symbol, now_ms) else {
            return;
        };
        let distance = self.books[symbol].cents_to_cross(&quote);
        let due = if distance == 0 {
            now_ms
        } else {
            let steps = match self.quotes.max_move_cents_per_step() {
                Some(max_move) if max_move > 0 => distance.div_ceil(max_move),
                _ => 1,
            };
            // From the step the walk has reached (it may be past `now_ms`).
            let step = self
                .quotes
                .step_of(symbol)
                .unwrap_or(now_ms / QUOTE_STEP_MS)
                .max(now_ms / QUOTE_STEP_MS);
            step.saturating_add(steps)
                .saturating_mul(QUOTE_STEP_MS)
                .max(now_ms)
        };
        let key = self.insert_task(due, Task::Check(symbol));
        self.books[symbol].check = Some(key);
    }

    /// Moves every resting order the quote now crosses back to the schedule,
    /// due now, and plans the next look.
    fn check_book(&mut self, symbol: usize, due_ms: u64) {
        let Some(quote) = self.quotes.quote_at(symbol, due_ms) else {
            return;
        };
        for (_, i) in self.books[symbol].take_crossed(&quote) {
            self.orders[i].slot = Slot::Idle;
            self.resting_orders = self.resting_orders.saturating_sub(1);
            self.schedule_step(i, due_ms);
        }
        self.plan_check(symbol, due_ms);
    }

    /// Fills the order's next chunk at `price`. False when nothing was filled.
    fn execute(&mut self, i: usize, price: Price, now_ms: u64) -> bool {
        let exec_id = new_id(&mut self.rng);
        let trade_date = self.calendar.trade_date(now_ms);
        let state = &mut self.orders[i];
        let Some(chunk) = state.chunks.pop_front() else {
            return false;
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
            return false;
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
        order.executions.push(Execution {
            exec_id: exec_id.clone(),
            order_id: order.order_id.clone(),
            client_order_id: order.client_order_id.clone(),
            quantity: qty,
            price,
            cum_quantity: order.cum_quantity,
            leaves_quantity: order.leaves_quantity,
            occurred_at: now_ms,
            trade_date,
        });
        let exec_index = order.executions.len() - 1;
        let ev = event(
            order,
            EventType::Execution,
            format!("evt_{exec_id}"),
            Some((exec_id, qty, price)),
            now_ms,
        );
        self.executions_by_date
            .entry(trade_date)
            .or_default()
            .push((i, exec_index));
        self.execution_total += 1;
        self.emit_execution(i, ev, now_ms);
        if leaves == 0 {
            self.close(i);
            let status = status_event(&self.orders[i].order, now_ms);
            self.emit_status(i, status, now_ms);
        }
        true
    }

    /// Ends an open order with a terminal status and reports it.
    fn finish(&mut self, i: usize, status: OrderStatus, now_ms: u64) {
        let order = &mut self.orders[i].order;
        order.status = status;
        order.leaves_quantity = Quantity::ZERO;
        order.updated_at = now_ms;
        self.close(i);
        let event = status_event(&self.orders[i].order, now_ms);
        self.emit_status(i, event, now_ms);
    }

    /// Takes a just-terminated order out of the schedule or its book, and
    /// drops its expiry, so nothing is left to fall due for it.
    fn close(&mut self, i: usize) {
        match std::mem::replace(&mut self.orders[i].slot, Slot::Idle) {
            Slot::Idle => {}
            Slot::Scheduled(key) => {
                self.schedule.remove(&key);
            }
            Slot::Resting(side, limit, seq) => {
                let symbol = self.orders[i].symbol;
                self.books[symbol].remove(side, limit, seq);
                self.resting_orders = self.resting_orders.saturating_sub(1);
                if self.books[symbol].is_empty() {
                    if let Some(key) = self.books[symbol].check.take() {
                        self.schedule.remove(&key);
                    }
                }
            }
        }
        if let Some(key) = self.orders[i].expiry.take() {
            self.schedule.remove(&key);
        }
        self.open_orders = self.open_orders.saturating_sub(1);
    }

    fn draw_interval(&mut self) -> u64 {
        self.rng
            .gen_range(self.config.fill_interval_min_ms..=self.config.fill_interval_max_ms)
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn insert_task(&mut self, due_ms: u64, task: Task) -> Key {
        let key = (due_ms, self.take_seq());
        self.schedule.insert(key, task);
        key
    }

    fn schedule_step(&mut self, i: usize, due_ms: u64) {
        let key = self.insert_task(due_ms, Task::Step(i));
        self.orders[i].slot = Slot::Scheduled(key);
    }

    /// Every order (with executions), tombstone, refused request and hostile
    /// event. Clones everything: for tests and audits, not hot paths (see the
    /// counters below for cheap checks).
    pub fn audit(&self) -> EngineAudit {
        EngineAudit {
            venue: self.config.venue,
            orders: self.orders.iter().map(|s| s.order.clone()).collect(),
            tombstones: self.tombstones.clone(),
            rejected_requests: self.rejections.clone(),
            rejected_requests_dropped: self.rejections_dropped,
            hostile_events: self.hostile_log.clone(),
            hostile_events_dropped: self.hostile_dropped,
        }
    }

    /// Orders ever accepted.
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Orders not yet in a terminal status.
    pub fn open_order_count(&self) -> usize {
        self.open_orders
    }

    /// Open orders waiting in a book for the quote to reach them.
    pub fn resting_order_count(&self) -> usize {
        self.resting_orders
    }

    /// Executions ever made, over all orders.
    pub fn execution_count(&self) -> usize {
        self.execution_total
    }

    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// The hostile events sent so far (the audit's `hostile_events`).
    pub fn hostile_events(&self) -> &[HostileRecord] {
        &self.hostile_log
    }

    /// Tasks waiting in the schedule (fill steps, expiries, book looks,
    /// held-back reports): lets tests check nothing is left behind.
    pub fn scheduled_task_count(&self) -> usize {
        self.schedule.len()
    }
}

/// `start..end` of a page: the token is an offset into an append-only list.
fn page_bounds(
    len: usize,
    page_token: Option<&str>,
    limit: Option<usize>,
) -> Result<(usize, usize), PageError> {
    let start = match page_token {
        None | Some("") => 0,
        Some(t) => t.parse::<usize>().map_err(|_| PageError::BadToken)?,
    };
    if start > len {
        return Err(PageError::BadToken);
    }
    let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT);
    Ok((start, start.saturating_add(limit).min(len)))
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

/// A UUID drawn from a seeded RNG: unique in practice, and the same for the
/// same seed.
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
