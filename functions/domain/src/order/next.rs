//! What should happen next to an order, derived only from its records (an
//! aggregation of the steps recorded so far), and what signal, if any, it
//! carries for recovery. There is no central state machine: every handler
//! asks this and performs the first action.

use super::record::Order;
use super::recovery::{AbsenceProof, ConditionKind, RecoveryPolicy};
use super::step::Step;

/// Who asks [`next_actions`]. Every action is safe for anyone to run (each
/// external call carries its key; each write is conditional), so drivers
/// differ only in whether they may resolve unknowns by asking the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// A handler working on the order now (placement, cancel, fill
    /// processing): it does what is due and leaves unknown outcomes to recovery.
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
    /// Start the placement: record `place: processing` (only while no cancel
    /// is requested), then send it.
    Place,
    /// The last send provably never reached the exchange, the deadline has
    /// not passed and no cancel is requested: send the same request again.
    Resend,
    /// Nothing was sent and the caller cancelled first or the deadline
    /// passed: record `place: failed` without calling the exchange.
    AbandonUnsent,
    /// `place` is processing and its answer was lost: ask the exchange by
    /// client order id; not found, resend before the deadline, or conclude
    /// "not placed" as far as the venue's guarantees allow (recovery only).
    LookupPlacement,
    /// Settle the execution in the slot at Balances (again, same key and terms).
    Settle,
    /// Executions wait in their own records: take the next into the slot.
    DrainBacklog,
    /// The caller's cancel is not confirmed yet: send it (again).
    Cancel,
    /// Pull the order's status and executions over REST and apply what is missing.
    PullExecutions,
    /// Return what is left of the reservation (again, same key and amount).
    Release { units: u64 },
    /// Everything is finished: the order leaves the open index.
    Close,
}

/// When "the exchange never received it" may be taken as final (our
/// clock): any request sent before the deadline has arrived by then, even
/// with the venue's clock off by the measured skew and its margin.
pub fn absence_final_at_ms(order: &Order, policy: &RecoveryPolicy) -> u64 {
    order
        .place_deadline_ms
        .saturating_add(policy.clock_skew_margin_ms)
        .saturating_add(policy.max_in_flight_ms)
}

/// What should happen next to `order`, derived only from its records.
///
/// Never guesses: a `processing` step is resolved only by asking the other
/// side by key, and "not placed" is concluded only as the venue's
/// guarantees allow (see [`absence_final_at_ms`] and [`AbsenceProof`]).
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
    if order.reserve.is_processing() {
        return vec![Action::Reserve];
    }
    if order.reserve.is_failed() && order.place.is_none() {
        return vec![Action::Close];
    }
    let cancel_requested = order.cancel.is_some();
    match &order.place {
        None if cancel_requested || now_ms > order.place_deadline_ms => {
            return vec![Action::AbandonUnsent];
        }
        None => return vec![Action::Place],
        Some(placement) if placement.step.is_processing() => {
            // Never after a cancel: what may still be in flight is settled
            // by lookup or by the venue's absence proof instead.
            if placement.resend && !cancel_requested && now_ms <= order.place_deadline_ms {
                return vec![Action::Resend];
            }
            // Cancelling by client id settles an unknown placement at once on
            // venues that allow it (cancelled, or tombstoned if it never came).
            if cancel_requested && !cancel_confirmed(order) && policy.venue.cancel_by_client_id {
                return vec![Action::Cancel];
            }
            // Recovery asks; a handler asks too while the request could
            // still be sent again (before the deadline), so a lost answer or
            // a send that never arrived is settled within its window.
            let sent = placement.sends > 0;
            return if recovering || (sent && now_ms <= order.place_deadline_ms) {
                vec![Action::LookupPlacement]
            } else {
                Vec::new()
            };
        }
        Some(_) => {}
    }
    let placed = order.is_placed();
    if placed {
        if order
            .settling
            .as_ref()
            .is_some_and(|f| f.settle.is_processing())
        {
            return vec![Action::Settle];
        }
        if order.backlog {
            return vec![Action::DrainBacklog];
        }
        if cancel_requested && order.final_report.is_none() && !cancel_confirmed(order) {
            return vec![Action::Cancel];
        }
        if !order.finished_at_exchange() {
            let missing = order.missing_quantity() > 0;
            return if recovering && (missing || silent(order, now_ms, policy)) {
                vec![Action::PullExecutions]
            } else {
                Vec::new()
            };
        }
    }
    // Finished at the exchange (or never placed): return the rest, close.
    match &order.release {
        Some(step) if step.is_processing() && order.release_units > 0 => vec![Action::Release {
            units: order.release_units,
        }],
        // Riding on a settlement still processing: settled above.
        Some(step) if step.is_processing() => Vec::new(),
        _ => match order.unused_reservation() {
            0 => vec![Action::Close],
            units => vec![Action::Release { units }],
        },
    }
}

/// The exchange confirmed the cancel (or refused it as too late).
fn cancel_confirmed(order: &Order) -> bool {
    order
        .cancel
        .as_ref()
        .and_then(|c| c.step.as_ref())
        .is_some_and(|s| !s.is_processing())
}

/// A market or IOC order that should have ended by now.
fn silent(order: &Order, now_ms: u64, policy: &RecoveryPolicy) -> bool {
    silence_due_at_ms(order, policy).is_some_and(|at| now_ms >= at)
}

/// When an order that must end in seconds (market, IOC) and has not
/// reported its end becomes "silent", a signal for recovery to ask.
pub fn silence_due_at_ms(order: &Order, policy: &RecoveryPolicy) -> Option<u64> {
    if !order.ends_quickly() || order.final_report.is_some() || order.is_closed() {
        return None;
    }
    let placed_at = order
        .place
        .as_ref()
        .map_or(order.created_at_ms, |p| p.step.updated_at_ms);
    Some(placed_at + policy.market_silence_ms)
}

/// The signal an open order carries for recovery now, if any: what is
/// missing or unknown. A healthy resting order carries none and costs
/// recovery nothing until its end-of-day check.
pub fn pending_condition(
    order: &Order,
    now_ms: u64,
    policy: &RecoveryPolicy,
) -> Option<ConditionKind> {
    if order.is_closed() {
        return None;
    }
    if order.reserve.is_processing() {
        return Some(ConditionKind::Reserve);
    }
    let placement = order.place.as_ref();
    if placement.is_none_or(|p| p.step.is_processing()) {
        if placement.is_some_and(|p| p.awaiting_day_list) {
            // Nothing recovery can do before the venue's day list.
            return None;
        }
        return Some(ConditionKind::Placement);
    }
    if order
        .settling
        .as_ref()
        .is_some_and(|f| f.settle.is_processing())
    {
        return Some(ConditionKind::Settlement);
    }
    if order.backlog {
        return Some(ConditionKind::Backlog);
    }
    if order.cancel.is_some() && order.final_report.is_none() && !cancel_confirmed(order) {
        return Some(ConditionKind::Cancel);
    }
    if order.is_placed() && !order.finished_at_exchange() {
        if order.missing_quantity() > 0 {
            return Some(ConditionKind::MissingExecutions);
        }
        if order.ends_quickly() && order.final_report.is_none() {
            return silent(order, now_ms, policy).then_some(ConditionKind::Silence);
        }
        return None;
    }
    // Finished: only the release and the close are left.
    Some(ConditionKind::Release)
}

/// When recovery should next look at an order that carries `condition`,
/// after `attempts` tries at it.
pub fn next_look_ms(
    order: &Order,
    condition: ConditionKind,
    attempts: u32,
    now_ms: u64,
    policy: &RecoveryPolicy,
) -> u64 {
    match condition {
        // Nothing can be concluded before the deadline has safely passed.
        ConditionKind::Placement if attempts <= 1 => {
            now_ms.max(absence_final_at_ms(order, policy)) + policy.backoff_ms(attempts).min(1_000)
        }
        // Reordered webhooks get their time before anything is pulled.
        ConditionKind::MissingExecutions if attempts <= 1 => now_ms + policy.gap_grace_ms,
        ConditionKind::Silence if attempts <= 1 => {
            let placed_at = order
                .place
                .as_ref()
                .map_or(order.created_at_ms, |p| p.step.updated_at_ms);
            now_ms.max(placed_at + policy.market_silence_ms)
        }
        _ => now_ms + policy.backoff_ms(attempts),
    }
}

/// Whether `absence` lets recovery conclude "not placed" from a lookup alone
/// once [`absence_final_at_ms`] has passed.
pub fn lookup_proves_absence(policy: &RecoveryPolicy) -> bool {
    policy.venue.absence == AbsenceProof::Deadline
}

impl Step {
    /// The step is still waiting for its outcome after `bound_ms`.
    pub fn stuck_for(&self, now_ms: u64, bound_ms: u64) -> bool {
        self.is_processing() && now_ms.saturating_sub(self.started_at_ms) > bound_ms
    }
}
