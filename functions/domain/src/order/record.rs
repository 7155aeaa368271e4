//! The record of one order (the `ORDER` item): what was asked, the steps
//! taken, compact totals of its executions, and the one execution being
//! settled. Every transition the handlers make is a method here, so the
//! rules live in one place and the handlers only load, change and save.

use serde::{Deserialize, Serialize};

use super::fill::{Fill, FillTotals};
use super::recovery::{FlagReason, Ground, Recovery};
use super::report::{Execution, FinalReport, FinalStatus};
use super::request::{OrderRequest, OrderType, Reservation, TimeInForce};
use super::step::{Cancel, Placement, Step, StepFailure, StepState};
use super::{OrderId, OPEN_INDEX_SHARDS};
use crate::ids::AccountId;
use crate::ledger::Side;
use crate::money::{notional, MoneyError, Price, Quantity};

/// Everything recorded about one order, except the records of its
/// executions already folded into [`Order::fills`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub account: AccountId,
    pub request: OrderRequest,
    /// The protective limit a market order is sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<Price>,
    pub reservation: Reservation,
    pub created_at_ms: u64,
    /// The placement may be sent (again) until this time, on our clock.
    pub place_deadline_ms: u64,
    pub reserve: Step,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_order_id: Option<String>,
    #[serde(default)]
    pub fills: FillTotals,
    /// The execution being settled now (or the last one settled, until the
    /// slot is needed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settling: Option<Fill>,
    /// Executions were recorded while the slot was busy; they wait their turn.
    #[serde(default)]
    pub backlog: bool,
    /// The highest cumulative quantity the exchange has reported.
    #[serde(default)]
    pub reported_cum: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_report: Option<FinalReport>,
    /// The exchange's own list of this order's executions, read after its
    /// final report, names only executions recorded here, yet some with other
    /// terms (a venue that contradicted itself, flagged
    /// `ConflictingExecution`): nothing is missing, though the totals differ
    /// from the final report's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contradicted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Cancel>,
    /// Returning what is left of the reservation (on its own, or riding on
    /// the last settlement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Step>,
    /// Units of the reservation returned so far.
    #[serde(default)]
    pub released_units: u64,
    /// Units a release on its own returns (fixed when it starts, so every
    /// repeat is the same request); 0 when it rides on a settlement.
    #[serde(default)]
    pub release_units: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at_ms: Option<u64>,
    #[serde(default)]
    pub recovery: Recovery,
}

/// What a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Being reserved or placed.
    Pending,
    /// The placement's outcome is not known, and this venue cannot prove
    /// absence: funds stay reserved until its end-of-day list settles it.
    Unknown,
    Open,
    PartiallyFilled,
    Filled,
    Cancelled,
    Expired,
    Rejected,
    /// Never reached the exchange (it could not be reached in time).
    Failed,
}

/// What taking an execution into the slot found worth an operator's look.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Taken {
    pub flags: Vec<(FlagReason, String)>,
}

impl Order {
    /// Shares executed and recorded (folded in, and in the slot).
    pub fn filled_quantity(&self) -> u64 {
        self.fills.quantity + self.settling.as_ref().map_or(0, |f| f.quantity.shares())
    }

    /// Executions recorded on the order item (folded in, and in the slot).
    pub fn fill_count(&self) -> u64 {
        self.fills.count + u64::from(self.settling.is_some())
    }

    /// The limit the exchange gets: the caller's, or a market order's protection.
    pub fn venue_limit(&self) -> Option<Price> {
        self.request.limit_price.or(self.protection)
    }

    pub fn is_closed(&self) -> bool {
        self.closed_at_ms.is_some()
    }

    pub fn is_placed(&self) -> bool {
        self.place.as_ref().is_some_and(|p| p.step.is_succeeded())
    }

    /// The open-order index shard this order lives in while open (FNV-1a of its id).
    pub fn open_index_shard(&self) -> u32 {
        let hash = self.id.as_str().bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        hash % OPEN_INDEX_SHARDS
    }

    /// Units of the reserved asset one execution costs: cash notional for a
    /// buy, shares for a sell.
    pub fn cost_units(&self, quantity: Quantity, price: Price) -> Result<u64, MoneyError> {
        Ok(match self.request.side {
            Side::Buy => notional(price, quantity)?.units(),
            Side::Sell => quantity.shares(),
        })
    }

    /// Units of the reservation taken by recorded executions.
    pub fn consumed_units(&self) -> u64 {
        self.fills.from_reserved_units + self.settling.as_ref().map_or(0, |f| f.from_reserved_units)
    }

    /// What is left of the reservation: neither consumed, nor returned, nor
    /// committed to a release in progress.
    pub fn unused_reservation(&self) -> u64 {
        let riding = self
            .settling
            .as_ref()
            .filter(|f| f.settle.is_processing())
            .map_or(0, |f| f.release_units);
        let standalone = if self.release.as_ref().is_some_and(Step::is_processing) {
            self.release_units
        } else {
            0
        };
        self.reservation
            .amount
            .units()
            .saturating_sub(self.consumed_units())
            .saturating_sub(self.released_units)
            .saturating_sub(riding)
            .saturating_sub(standalone)
    }

    /// The exchange will execute nothing more, and every execution it
    /// reported is recorded: only settlement, release and close are left.
    pub fn finished_at_exchange(&self) -> bool {
        if self.place.as_ref().is_some_and(|p| p.step.is_failed()) {
            return true;
        }
        if self.backlog {
            return false;
        }
        let filled = self.filled_quantity();
        match &self.final_report {
            Some(report) => filled >= report.cum_quantity || self.contradicted,
            None => filled >= self.request.quantity.shares(),
        }
    }

    /// How far resolving the order has got (see [`Ground`]).
    pub fn ground(&self) -> Ground {
        let finished = |step: &Step| u64::from(!step.is_processing());
        let steps = finished(&self.reserve)
            + self.place.as_ref().map_or(0, |p| finished(&p.step))
            + self
                .cancel
                .as_ref()
                .and_then(|c| c.step.as_ref())
                .map_or(0, finished)
            + self.release.as_ref().map_or(0, finished);
        let settled_in_slot = self
            .settling
            .as_ref()
            .map_or(0, |f| u64::from(!f.archived && !f.settle.is_processing()));
        Ground {
            done: self.fills.count
                + settled_in_slot
                + steps
                + u64::from(self.final_report.is_some())
                + u64::from(self.released_units > 0),
            missing: self.missing_quantity(),
        }
    }

    /// Executions the exchange reported that are not recorded here.
    pub fn missing_quantity(&self) -> u64 {
        if self.contradicted {
            return 0;
        }
        let reported = self
            .final_report
            .as_ref()
            .map_or(self.reported_cum, |r| r.cum_quantity.max(self.reported_cum));
        reported.saturating_sub(self.filled_quantity())
    }

    /// Puts a new execution into the settling slot, which must be free.
    ///
    /// Never refuses: a trade the exchange made has happened. The cost comes
    /// out of what is left of the reservation; anything beyond (a venue that
    /// broke its bound) is paid from the account and flagged. When this
    /// execution finishes the order, the rest of the reservation is returned
    /// by the same settlement.
    pub fn take_fill(&mut self, execution: &Execution, now_ms: u64) -> Result<Taken, MoneyError> {
        debug_assert!(self.settling.is_none(), "the slot is free");
        let cost = self.cost_units(execution.quantity, execution.price)?;
        let unused = self.unused_reservation();
        let from_reserved = cost.min(unused);
        let mut taken = Taken::default();
        if cost > from_reserved {
            taken.flags.push((
                FlagReason::BeyondReservation,
                format!(
                    "execution {} costs {} units beyond the reservation",
                    execution.exec_id,
                    cost - from_reserved
                ),
            ));
        }
        let filled_after = self.filled_quantity() + execution.quantity.shares();
        if filled_after > self.request.quantity.shares() {
            taken.flags.push((
                FlagReason::Overfilled,
                format!(
                    "executed {filled_after} of {} shares",
                    self.request.quantity.shares()
                ),
            ));
        }
        self.settling = Some(Fill {
            exec_id: execution.exec_id.clone(),
            quantity: execution.quantity,
            price: execution.price,
            received_at_ms: now_ms,
            from_reserved_units: from_reserved,
            release_units: 0,
            settle: Step::processing(now_ms),
            archived: false,
            waited: false,
        });
        if let Some(cum) = execution.cum_quantity {
            self.reported_cum = self.reported_cum.max(cum);
        }
        // The last settlement carries the release: one Balances call fewer.
        let rest = unused - from_reserved;
        if self.finished_at_exchange() && self.release.is_none() && rest > 0 {
            if let Some(fill) = self.settling.as_mut() {
                fill.release_units = rest;
            }
            self.release = Some(Step::processing(now_ms));
        }
        Ok(taken)
    }

    /// The slot's settlement took effect at Balances (and with it the
    /// release it carried).
    pub fn settled(&mut self, now_ms: u64) {
        let Some(fill) = self.settling.as_mut() else {
            return;
        };
        if !fill.settle.is_processing() {
            return;
        }
        fill.settle.finish(StepState::Succeeded, now_ms);
        if fill.release_units > 0 {
            self.released_units += fill.release_units;
            if let Some(release) = self.release.as_mut() {
                release.finish(StepState::Succeeded, now_ms);
            }
        }
    }

    /// Folds the settled slot into the totals and frees it. The slot's own
    /// record must exist first (`archived`), or it would be forgotten.
    pub fn fold_settled(&mut self) -> Result<(), MoneyError> {
        let Some(fill) = self.settling.as_ref() else {
            return Ok(());
        };
        debug_assert!(fill.settle.is_succeeded() && fill.archived);
        let cost = self.cost_units(fill.quantity, fill.price)?;
        let notional_cents = notional(fill.price, fill.quantity)?.units();
        let totals = &mut self.fills;
        totals.count += 1;
        totals.quantity += fill.quantity.shares();
        totals.notional_cents = totals.notional_cents.saturating_add(notional_cents);
        totals.from_reserved_units += fill.from_reserved_units;
        totals.excess_units += cost - fill.from_reserved_units.min(cost);
        totals.last_at_ms = totals.last_at_ms.max(fill.received_at_ms);
        self.settling = None;
        Ok(())
    }

    /// Evidence that the exchange holds the order under this id (a lookup
    /// found it, or it confirmed an execution): `place` succeeds, whatever
    /// attempt is processing. Answers whether anything changed.
    pub fn record_placed(&mut self, exchange_order_id: &str, now_ms: u64) -> bool {
        let mut changed = false;
        if self.exchange_order_id.is_none() {
            self.exchange_order_id = Some(exchange_order_id.to_owned());
            changed = true;
        }
        match &mut self.place {
            Some(placement) if placement.step.is_processing() => {
                placement.step.finish(StepState::Succeeded, now_ms);
                placement.resend = false;
                changed = true;
            }
            Some(_) => {}
            None => {
                // The exchange holds an order the platform never sent: only a
                // confirmed report leads here, and the evidence stands.
                let mut placement = Placement::started(now_ms, None);
                placement.step.finish(StepState::Succeeded, now_ms);
                self.place = Some(placement);
                changed = true;
            }
        }
        changed
    }

    /// The exchange confirmed executing an order the platform had closed or
    /// concluded it never received: the order is open again, so what it
    /// executed is settled, and an operator is told.
    pub fn reopen(&mut self, exchange_order_id: &str, why: &str, now_ms: u64) {
        if let Some(placement) = self.place.as_mut() {
            if placement.step.is_failed() {
                placement.step.finish(StepState::Succeeded, now_ms);
            }
        }
        self.record_placed(exchange_order_id, now_ms);
        self.closed_at_ms = None;
        self.recovery.flag(FlagReason::Reopened, why, now_ms);
    }

    /// The exchange's final status; the first report stands. Answers whether it is new.
    pub fn record_final(&mut self, report: &FinalReport) -> bool {
        self.reported_cum = self.reported_cum.max(report.cum_quantity);
        if self.final_report.is_some() {
            return false;
        }
        self.final_report = Some(report.clone());
        true
    }

    /// A market or IOC order: it should end within seconds of its placement.
    pub fn ends_quickly(&self) -> bool {
        self.request.order_type == OrderType::Market
            || self.request.time_in_force == TimeInForce::Ioc
    }

    pub fn status(&self) -> OrderStatus {
        if let Some(StepFailure::InsufficientFunds) = self.reserve.failure() {
            return OrderStatus::Rejected;
        }
        if let Some(failure) = self.place.as_ref().and_then(|p| p.step.failure()) {
            return match failure {
                StepFailure::NotPlaced { .. } if self.cancel.is_some() => OrderStatus::Cancelled,
                StepFailure::NotPlaced { .. } => OrderStatus::Failed,
                _ => OrderStatus::Rejected,
            };
        }
        let filled = self.filled_quantity();
        match self.final_report.as_ref().map(|r| r.status) {
            Some(FinalStatus::Cancelled) => return OrderStatus::Cancelled,
            Some(FinalStatus::Expired) => return OrderStatus::Expired,
            Some(FinalStatus::Rejected) if filled == 0 => return OrderStatus::Rejected,
            _ => {}
        }
        if filled >= self.request.quantity.shares() {
            OrderStatus::Filled
        } else if filled > 0 {
            OrderStatus::PartiallyFilled
        } else if self.is_placed() {
            OrderStatus::Open
        } else if self
            .place
            .as_ref()
            .is_some_and(|p| p.step.is_processing() && p.awaiting_day_list)
        {
            OrderStatus::Unknown
        } else {
            OrderStatus::Pending
        }
    }

    /// Why the order is where it is, in a line a caller can read.
    pub fn status_reason(&self) -> Option<String> {
        if let Some(failure) = self
            .reserve
            .failure()
            .or_else(|| self.place.as_ref().and_then(|p| p.step.failure()))
        {
            return Some(match failure {
                StepFailure::InsufficientFunds => "insufficient funds".to_owned(),
                StepFailure::ExchangeRejected { detail } => {
                    format!("rejected by the exchange: {detail}")
                }
                StepFailure::NotPlaced { detail } => format!("not placed: {detail}"),
                StepFailure::CancelRefused { detail } => detail.clone(),
            });
        }
        match self.status() {
            OrderStatus::Unknown => Some(
                "the exchange did not answer the placement and cannot prove it never received it; \
                 funds stay reserved until its end-of-day list settles the order"
                    .to_owned(),
            ),
            OrderStatus::Pending if self.place.as_ref().is_some_and(|p| p.sends > 0) => {
                Some("placement sent; the exchange's answer is awaited".to_owned())
            }
            _ => None,
        }
    }
}
