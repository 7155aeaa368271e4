//! An order and the records of its steps, and the two questions every
//! handler asks of them: what is its status, and what should happen next.
//!
//! There is no central state machine. Each handler records the steps it owns
//! (`reserve` and `place` by place-order, fills and settlements by the fill
//! processor, recovery by the reconciler), and [`next_actions`] derives what
//! is left to do from whatever has been recorded, in any order it arrived.

use serde::{Deserialize, Serialize};

use crate::asset::{Asset, Symbol};
use crate::ids::{AccountId, IdempotencyKey};
use crate::ledger::Side;
use crate::money::{notional, Amount, MoneyError, Price, Quantity};

/// Shards of the open-order index: open orders spread over this many index
/// partitions, so no single one runs hot; the reconciler reads each.
pub const OPEN_INDEX_SHARDS: u32 = 8;
/// Most fills one order records; beyond it the order is flagged for an
/// operator instead of growing without bound.
pub const MAX_FILLS_PER_ORDER: usize = 200;
const MAX_EXEC_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order id must be a UUID in lower-case hex with hyphens")]
    InvalidOrderId,
    #[error("execution id must be 1 to {MAX_EXEC_ID_LEN} printable ASCII characters")]
    InvalidExecId,
    #[error("a limit order needs a limit price")]
    MissingLimitPrice,
    #[error("a market order takes no limit price")]
    UnexpectedLimitPrice,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The platform's id of an order; also its `client_order_id` at the exchange.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(text: &str) -> Result<Self, OrderError> {
        let bytes = text.as_bytes();
        let valid = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            });
        valid
            .then(|| OrderId(text.to_owned()))
            .ok_or(OrderError::InvalidOrderId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Idempotency key of this order's reservation at Balances.
    pub fn reserve_key(&self) -> IdempotencyKey {
        self.derived_key("reserve")
    }

    /// Idempotency key of the settlement of one fill.
    pub fn settle_key(&self, exec_id: &ExecId) -> IdempotencyKey {
        self.derived_key(&format!("fill:{}", exec_id.as_str()))
    }

    /// Idempotency key of the release of what is left of the reservation.
    pub fn release_key(&self) -> IdempotencyKey {
        self.derived_key("release")
    }

    fn derived_key(&self, suffix: &str) -> IdempotencyKey {
        // 36 + 6 + at most 128 characters, all printable ASCII: always a valid key.
        IdempotencyKey::parse(&format!("{}:{suffix}", self.0))
            .unwrap_or_else(|_| unreachable!("derived keys are valid by construction"))
    }
}

impl TryFrom<String> for OrderId {
    type Error = OrderError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        OrderId::parse(&value)
    }
}

impl From<OrderId> for String {
    fn from(value: OrderId) -> Self {
        value.0
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The exchange's unique id of one execution; fills are de-duplicated on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExecId(String);

impl ExecId {
    pub fn parse(text: &str) -> Result<Self, OrderError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_EXEC_ID_LEN
            && text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        valid
            .then(|| ExecId(text.to_owned()))
            .ok_or(OrderError::InvalidExecId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExecId {
    type Error = OrderError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ExecId::parse(&value)
    }
}

impl From<ExecId> for String {
    fn from(value: ExecId) -> Self {
        value.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Market,
    Limit,
}

/// What the caller asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: Quantity,
    pub limit_price: Option<Price>,
}

impl OrderRequest {
    pub fn new(
        symbol: Symbol,
        side: Side,
        order_type: OrderType,
        quantity: Quantity,
        limit_price: Option<Price>,
    ) -> Result<Self, OrderError> {
        match (order_type, limit_price) {
            (OrderType::Limit, None) => Err(OrderError::MissingLimitPrice),
            (OrderType::Market, Some(_)) => Err(OrderError::UnexpectedLimitPrice),
            _ => Ok(OrderRequest {
                symbol,
                side,
                order_type,
                quantity,
                limit_price,
            }),
        }
    }

    /// A stable digest of the request, to tell a replay from a reused key.
    pub fn fingerprint(&self, account: &AccountId) -> String {
        use sha2::{Digest, Sha256};
        let limit = self.limit_price.map_or(0, Price::cents);
        let canonical = format!(
            "v1|order|{account}|{}|{}|{:?}|{}|{limit}",
            self.symbol,
            self.side.as_str(),
            self.order_type,
            self.quantity.shares()
        );
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// What must be set aside before the order may reach the exchange:
    /// a sell reserves its shares; a buy reserves quantity x limit price, or
    /// for a market buy quantity x reference price x (1 + collar), rounded up
    /// to the cent so the collar is never undershot.
    pub fn reservation(
        &self,
        reference_price: Price,
        collar_bps: u64,
    ) -> Result<Reservation, MoneyError> {
        match (self.side, self.limit_price) {
            (Side::Sell, _) => Ok(Reservation {
                asset: Asset::Shares(self.symbol.clone()),
                amount: Amount::new(self.quantity.shares())?,
            }),
            (Side::Buy, Some(limit)) => Ok(Reservation {
                asset: Asset::Cash,
                amount: notional(limit, self.quantity)?,
            }),
            (Side::Buy, None) => {
                let base = notional(reference_price, self.quantity)?.units();
                let scaled = base
                    .checked_mul(10_000 + collar_bps)
                    .ok_or(MoneyError::Overflow)?
                    .div_ceil(10_000);
                Ok(Reservation {
                    asset: Asset::Cash,
                    amount: Amount::new(scaled)?,
                })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub asset: Asset,
    pub amount: Amount,
}

/// Why a step ended in failure. Each is final and backed by evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StepFailure {
    /// Balances refused the reservation.
    InsufficientFunds,
    /// The exchange refused the order.
    ExchangeRejected { detail: String },
    /// The order provably never reached the exchange: its deadline passed and
    /// a cancel by client id left a tombstone, or it was never sent.
    NotPlaced { detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    Processing,
    Succeeded,
    Failed(StepFailure),
}

/// The record of one step. `attempt` fences outcome writes: an outcome is
/// recorded only by the attempt that still owns the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub state: StepState,
    pub attempt: u32,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Step {
    pub fn processing(now_ms: u64) -> Self {
        Step {
            state: StepState::Processing,
            attempt: 1,
            started_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    pub fn is_processing(&self) -> bool {
        self.state == StepState::Processing
    }

    pub fn is_succeeded(&self) -> bool {
        self.state == StepState::Succeeded
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.state, StepState::Failed(_))
    }

    pub fn finish(&mut self, state: StepState, now_ms: u64) {
        self.state = state;
        self.updated_at_ms = now_ms;
    }

    /// A new attempt takes the step over; answers of older attempts no longer count.
    pub fn retry(&mut self, now_ms: u64) {
        self.state = StepState::Processing;
        self.attempt += 1;
        self.updated_at_ms = now_ms;
    }
}

/// One execution applied to the order, with the step that settles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub exec_id: ExecId,
    pub quantity: Quantity,
    pub price: Price,
    pub received_at_ms: u64,
    pub settle: Step,
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

/// How the reconciler has fared with an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub attempts: u32,
    pub next_attempt_at_ms: u64,
    /// A reconciler run holds the order until then, so overlapping runs do
    /// not both work it. An optimisation only: every write is conditional anyway.
    #[serde(default)]
    pub lease_until_ms: u64,
    /// Set when the order needs an operator; it is still retried.
    pub flagged: Option<String>,
}

/// Everything recorded about one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub account: AccountId,
    pub idempotency_key: IdempotencyKey,
    pub request: OrderRequest,
    pub reservation: Reservation,
    pub created_at_ms: u64,
    /// `expire_at` sent with the placement: the exchange refuses it after this.
    pub place_deadline_ms: u64,
    pub reserve: Step,
    pub place: Option<Step>,
    pub exchange_order_id: Option<String>,
    pub fills: Vec<Fill>,
    pub final_report: Option<FinalReport>,
    pub cancel_requested_at_ms: Option<u64>,
    pub release: Option<Step>,
    pub closed_at_ms: Option<u64>,
    pub recovery: Recovery,
}

/// An execution as the exchange reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub exec_id: ExecId,
    pub exchange_order_id: String,
    pub quantity: Quantity,
    pub price: Price,
}

/// What the exchange reported about an order (by webhook or REST), as the
/// fill pipeline carries it: one execution, or the order's final status.
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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("fill of {fill} would take the filled quantity past the order's {ordered}")]
    Overfill { fill: u64, ordered: u64 },
    #[error("buy fill at {price} is above the limit {limit}")]
    AboveLimit { price: Price, limit: Price },
    #[error("sell fill at {price} is below the limit {limit}")]
    BelowLimit { price: Price, limit: Price },
    #[error("the order already holds {MAX_FILLS_PER_ORDER} fills")]
    TooManyFills,
    #[error("the order was concluded not placed, yet the exchange reports a fill")]
    ConcludedNotPlaced,
    #[error("the fill would consume more than the order reserved")]
    BeyondReservation,
}

/// What applying an execution did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillApplied {
    Recorded,
    /// This execution was applied before: nothing changed.
    Duplicate,
}

/// What a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Open,
    PartiallyFilled,
    Filled,
    Cancelled,
    Rejected,
    Failed,
}

impl Order {
    pub fn filled_quantity(&self) -> u64 {
        self.fills.iter().map(|f| f.quantity.shares()).sum()
    }

    pub fn fill(&self, exec_id: &ExecId) -> Option<&Fill> {
        self.fills.iter().find(|f| &f.exec_id == exec_id)
    }

    /// The open-order index shard this order lives in while open (FNV-1a of its id).
    pub fn open_index_shard(&self) -> u32 {
        let hash = self.id.as_str().bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        hash % OPEN_INDEX_SHARDS
    }

    pub fn is_closed(&self) -> bool {
        self.closed_at_ms.is_some()
    }

    /// The latest time anything was recorded, to tell a quiet order from a busy one.
    pub fn last_progress_ms(&self) -> u64 {
        let steps = [
            Some(&self.reserve),
            self.place.as_ref(),
            self.release.as_ref(),
        ];
        let step_times = steps.into_iter().flatten().map(|s| s.updated_at_ms);
        let fill_times = self
            .fills
            .iter()
            .map(|f| f.received_at_ms.max(f.settle.updated_at_ms));
        step_times
            .chain(fill_times)
            .chain([self.created_at_ms])
            .max()
            .unwrap_or(self.created_at_ms)
    }

    /// Units of the reserved asset that the recorded fills consume: cash
    /// notional for a buy, shares for a sell.
    pub fn consumed_units(&self) -> Result<u64, MoneyError> {
        self.fills.iter().try_fold(0u64, |sum, fill| {
            let units = match self.request.side {
                Side::Buy => notional(fill.price, fill.quantity)?.units(),
                Side::Sell => fill.quantity.shares(),
            };
            sum.checked_add(units).ok_or(MoneyError::Overflow)
        })
    }

    /// What is left of the reservation once every recorded fill is settled.
    pub fn unused_reservation(&self) -> Result<u64, MoneyError> {
        self.reservation
            .amount
            .units()
            .checked_sub(self.consumed_units()?)
            .ok_or(MoneyError::Overflow)
    }

    /// Records one execution, once. The checks here are what keeps the ledger
    /// right whatever the exchange sends: never past the ordered quantity,
    /// never beyond the reservation, never past the limit price.
    pub fn apply_execution(
        &mut self,
        execution: &Execution,
        now_ms: u64,
    ) -> Result<FillApplied, FillError> {
        #[cfg(feature = "mutants")]
        if mutants::active(mutants::Mutant::FillsNotDeduplicated)
            && self.fill(&execution.exec_id).is_some()
        {
            // The bug: the repeat check is skipped; every other check still runs.
            let mut repeat = execution.clone();
            repeat.exec_id = ExecId(format!("{}~", execution.exec_id.0));
            let applied = self.apply_execution(&repeat, now_ms)?;
            if let Some(fill) = self.fills.iter_mut().find(|f| f.exec_id == repeat.exec_id) {
                fill.exec_id = execution.exec_id.clone();
            }
            return Ok(applied);
        }
        if self.fill(&execution.exec_id).is_some() {
            return Ok(FillApplied::Duplicate);
        }
        if self.place.as_ref().is_some_and(Step::is_failed) {
            return Err(FillError::ConcludedNotPlaced);
        }
        let ordered = self.request.quantity.shares();
        if self.filled_quantity() + execution.quantity.shares() > ordered {
            return Err(FillError::Overfill {
                fill: execution.quantity.shares(),
                ordered,
            });
        }
        match (self.request.side, self.request.limit_price) {
            (Side::Buy, Some(limit)) if execution.price > limit => {
                return Err(FillError::AboveLimit {
                    price: execution.price,
                    limit,
                });
            }
            (Side::Sell, Some(limit)) if execution.price < limit => {
                return Err(FillError::BelowLimit {
                    price: execution.price,
                    limit,
                });
            }
            _ => {}
        }
        if self.fills.len() >= MAX_FILLS_PER_ORDER {
            return Err(FillError::TooManyFills);
        }
        let fill = Fill {
            exec_id: execution.exec_id.clone(),
            quantity: execution.quantity,
            price: execution.price,
            received_at_ms: now_ms,
            settle: Step::processing(now_ms),
        };
        self.fills.push(fill);
        if self.unused_reservation().is_err() {
            self.fills.pop();
            return Err(FillError::BeyondReservation);
        }
        self.record_placed(&execution.exchange_order_id, now_ms);
        Ok(FillApplied::Recorded)
    }

    /// Evidence that the exchange holds the order (a lookup found it, or a
    /// fill arrived): `place` succeeds whatever attempt is processing.
    pub fn record_placed(&mut self, exchange_order_id: &str, now_ms: u64) {
        if self.exchange_order_id.is_none() {
            self.exchange_order_id = Some(exchange_order_id.to_owned());
        }
        match &mut self.place {
            Some(step) if step.is_processing() => step.finish(StepState::Succeeded, now_ms),
            Some(_) => {}
            None => {
                // Only reachable if records were lost; the evidence still stands.
                let mut step = Step::processing(now_ms);
                step.finish(StepState::Succeeded, now_ms);
                self.place = Some(step);
            }
        }
    }

    /// The exchange's final status; the first report stands.
    pub fn record_final(&mut self, report: FinalReport) {
        if self.final_report.is_none() {
            self.final_report = Some(report);
        }
    }

    pub fn status(&self) -> OrderStatus {
        let failure = |step: Option<&Step>| match step.map(|s| &s.state) {
            Some(StepState::Failed(f)) => Some(f.clone()),
            _ => None,
        };
        if let Some(failure) = failure(Some(&self.reserve)).or_else(|| failure(self.place.as_ref()))
        {
            return match failure {
                StepFailure::InsufficientFunds | StepFailure::ExchangeRejected { .. } => {
                    OrderStatus::Rejected
                }
                StepFailure::NotPlaced { .. } if self.cancel_requested_at_ms.is_some() => {
                    OrderStatus::Cancelled
                }
                StepFailure::NotPlaced { .. } => OrderStatus::Failed,
            };
        }
        match self.final_report.as_ref().map(|r| r.status) {
            Some(FinalStatus::Cancelled | FinalStatus::Expired) => return OrderStatus::Cancelled,
            Some(FinalStatus::Rejected) => return OrderStatus::Rejected,
            Some(FinalStatus::Filled) | None => {}
        }
        let filled = self.filled_quantity();
        if filled >= self.request.quantity.shares() {
            OrderStatus::Filled
        } else if filled > 0 {
            OrderStatus::PartiallyFilled
        } else if self.place.as_ref().is_some_and(Step::is_succeeded) {
            OrderStatus::Open
        } else {
            OrderStatus::Pending
        }
    }
}

/// Timing rules of recovery, with units in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// An open order with no news for this long is asked about.
    pub quiet_after_ms: u64,
    /// Allowance for clocks that disagree between us and the exchange.
    pub clock_skew_margin_ms: u64,
    /// Longest a placing invocation can still be running (its Lambda timeout):
    /// a request it sent may still arrive until the deadline plus this.
    pub max_invocation_ms: u64,
}

/// Who asks [`next_actions`]. Every action is safe for anyone to run (each
/// external call carries its key; each write is conditional), so drivers
/// differ only in whether they may resolve unknowns by asking the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// A handler working on the order now (placement, fill processing): it
    /// does what is due and leaves unknown outcomes to recovery.
    Handler,
    /// The reconciler: also looks up unknown placements and pulls news that
    /// did not arrive.
    Recovery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Call reserve at Balances with the order's reserve key (a repeat of a
    /// call that already happened is answered from its record).
    Reserve,
    /// Start the placement: record `place: processing`, then send it.
    Place,
    /// Nothing was sent and the deadline has passed, or the caller cancelled
    /// first: record `place: failed` without calling the exchange.
    AbandonUnsentPlacement,
    /// `place` is processing and its answer was lost: ask the exchange by
    /// client order id.
    LookupPlacement,
    /// Pull the order's status and executions from the exchange and apply what is missing.
    PullExecutions,
    /// Settle one recorded fill at Balances (again, with the same key).
    Settle(ExecId),
    /// Return what is left of the reservation (again, with the same key and amount).
    Release { units: u64 },
    /// Everything is finished: the order leaves the open index.
    Close,
    /// The records contradict each other: an operator must look.
    Flag(String),
}

/// What should happen next to `order`, derived only from its records.
///
/// Never guesses: a `processing` step is resolved only by asking the other
/// side by key, and "not placed" is concluded only after
/// [`placement_unknown_is_final`], by [`Action::LookupPlacement`] finding
/// nothing (the caller then cancels by client id to leave a tombstone).
pub fn next_actions(
    order: &Order,
    now_ms: u64,
    policy: &RecoveryPolicy,
    driver: Driver,
) -> Vec<Action> {
    if order.is_closed() {
        return Vec::new();
    }
    let recovering = driver == Driver::Recovery;
    match &order.reserve.state {
        _ if !order.reserve.is_succeeded() && order.place.is_some() => {
            return vec![Action::Flag(
                "placement recorded without a reservation".into(),
            )];
        }
        StepState::Processing => return vec![Action::Reserve],
        StepState::Failed(_) => return vec![Action::Close],
        StepState::Succeeded => {}
    }
    let Some(place) = &order.place else {
        let too_late = order.cancel_requested_at_ms.is_some() || now_ms > order.place_deadline_ms;
        return vec![if too_late {
            Action::AbandonUnsentPlacement
        } else {
            Action::Place
        }];
    };
    if place.is_failed() && !order.fills.is_empty() {
        return vec![Action::Flag(
            "fills recorded for an order concluded not placed".into(),
        )];
    }
    // Every recorded fill is settled before anything else is concluded.
    let settles: Vec<Action> = order
        .fills
        .iter()
        .filter(|f| f.settle.is_processing())
        .map(|f| Action::Settle(f.exec_id.clone()))
        .collect();
    if !settles.is_empty() {
        return settles;
    }
    // A fill proves placement even if `place` is still processing.
    if place.is_processing() && order.fills.is_empty() {
        return if recovering {
            vec![Action::LookupPlacement]
        } else {
            Vec::new()
        };
    }
    let finished_at_exchange = place.is_failed()
        || order
            .final_report
            .as_ref()
            .is_some_and(|r| r.cum_quantity == order.filled_quantity());
    if !finished_at_exchange {
        let quiet = now_ms.saturating_sub(order.last_progress_ms()) >= policy.quiet_after_ms;
        // A final report with fills missing: the missing ones are at the exchange.
        let missing_fills = order.final_report.is_some();
        return if recovering && (quiet || missing_fills) {
            vec![Action::PullExecutions]
        } else {
            Vec::new()
        };
    }
    let Ok(unused) = order.unused_reservation() else {
        return vec![Action::Flag("fills consume more than was reserved".into())];
    };
    match &order.release {
        Some(step) if step.is_succeeded() => vec![Action::Close],
        Some(step) if step.is_failed() => vec![Action::Flag("the release was refused".into())],
        None if unused == 0 => vec![Action::Close],
        _ => vec![Action::Release { units: unused }],
    }
}

/// Whether "the exchange has never seen it" may now be taken as final: a
/// request sent before the deadline can no longer arrive after this.
pub fn placement_unknown_is_final(order: &Order, now_ms: u64, policy: &RecoveryPolicy) -> bool {
    #[cfg(feature = "mutants")]
    if mutants::active(mutants::Mutant::NotPlacedWithoutWaiting) {
        return true; // the bug: the first empty lookup is taken as final
    }
    let settled_after = order
        .place_deadline_ms
        .saturating_add(policy.clock_skew_margin_ms)
        .saturating_add(policy.max_invocation_ms);
    now_ms > settled_after
}

/// Deliberate bugs for the simulation to catch (tests only): compiled in
/// with the `mutants` feature, and even then off unless a test switches one
/// on for its own thread.
#[cfg(feature = "mutants")]
pub mod mutants {
    use std::cell::Cell;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mutant {
        FillsNotDeduplicated,
        NotPlacedWithoutWaiting,
    }

    thread_local! {
        static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    }

    pub fn set(mutant: Option<Mutant>) {
        ACTIVE.with(|active| active.set(mutant));
    }

    pub fn active(mutant: Mutant) -> bool {
        ACTIVE.with(|active| active.get() == Some(mutant))
    }
}

#[cfg(test)]
mod tests;
