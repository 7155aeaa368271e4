//! Performing the actions that [`next_actions`] derives. Each external call
//! is preceded and followed by a conditional write of the order's records,
//! and an outcome is recorded only on evidence: an answer from the other
//! side, never the absence of one. Where a write follows one call and
//! precedes the next, it is one write (`reserve: succeeded` with `place:
//! processing`, the last settlement with the close).

use domain::order::{
    absence_final_at_ms, detail, next_actions, next_look_ms, pending_condition, silence_due_at_ms,
    AbsenceProof, Action, Condition, ConditionKind, Driver, FillRecord, FinalReport, FinalStatus,
    FlagReason, Order, OrderType, Placement, Step, StepFailure, StepState,
};
use domain::{Amount, Operation, Outcome};

use super::{OrderError, Orders, INDEX_LAG_MS};
use crate::balances::{Balances, BalancesCallError};
use crate::clock::Clock;
use crate::exchange::{
    CancelOutcome, Exchange, ExchangeOrder, ExchangeOrderStatus, PlaceOutcome, PlaceRequest,
};
use crate::order_store::{OrderStore, Saved, Versioned};

/// Most actions one `drive` performs before returning the order as it stands.
const MAX_ACTIONS_PER_DRIVE: usize = 64;
/// Most times a write is re-derived after losing a race to another writer.
const MAX_WRITE_ATTEMPTS: usize = 8;
/// First pause between a handler's resends of an unanswered placement; it
/// doubles up to [`MAX_RESEND_PAUSE_MS`].
const FIRST_RESEND_PAUSE_MS: u64 = 250;
const MAX_RESEND_PAUSE_MS: u64 = 2_000;
/// Pause before a handler asks again about a placement whose lookup failed.
const LOOKUP_PAUSE_MS: u64 = 500;

/// The order as last read or written, with the version a write must match.
pub(crate) type Current = Versioned<Order>;

/// What performing one action achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Something was recorded; derive the next action.
    Advanced,
    /// An outcome is unknown or a wait is due: leave the order to recovery.
    Waiting,
}

pub(crate) fn final_status(status: ExchangeOrderStatus) -> Option<FinalStatus> {
    match status {
        ExchangeOrderStatus::Filled => Some(FinalStatus::Filled),
        ExchangeOrderStatus::Cancelled => Some(FinalStatus::Cancelled),
        ExchangeOrderStatus::Expired => Some(FinalStatus::Expired),
        ExchangeOrderStatus::Rejected => Some(FinalStatus::Rejected),
        ExchangeOrderStatus::New | ExchangeOrderStatus::PartiallyFilled => None,
    }
}

/// Records what the exchange says of the order: it holds it under this id,
/// how much it executed, and maybe that it is final. Answers whether
/// anything changed.
pub(crate) fn record_exchange_view(order: &mut Order, view: &ExchangeOrder, now_ms: u64) -> bool {
    let mut changed = order.record_placed(&view.order_id, now_ms);
    if view.cum_quantity > order.reported_cum {
        order.reported_cum = view.cum_quantity;
        changed = true;
    }
    if let Some(status) = final_status(view.status) {
        changed |= order.record_final(&FinalReport {
            status,
            cum_quantity: view.cum_quantity,
        });
    }
    changed
}

/// The request the exchange gets, the same at every send.
pub fn place_request(order: &Order) -> PlaceRequest {
    let venue_limit = order.venue_limit();
    #[cfg(feature = "mutants")]
    let venue_limit = if domain::order::mutants::active(
        domain::order::mutants::Mutant::MarketWithoutProtection,
    ) {
        order.request.limit_price
    } else {
        venue_limit
    };
    PlaceRequest {
        client_order_id: order.id.clone(),
        account: order.account.clone(),
        symbol: order.request.symbol.clone(),
        side: order.request.side,
        order_type: if venue_limit.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        quantity: order.request.quantity,
        limit_price: venue_limit,
        time_in_force: order.request.time_in_force,
        deadline_ms: order.place.as_ref().and_then(|p| p.venue_deadline_ms),
    }
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    /// Performs what the order's records say is left, one action at a time,
    /// until it is finished or waits on an unknown outcome.
    pub async fn drive(
        &self,
        id: &domain::order::OrderId,
        driver: Driver,
    ) -> Result<Order, OrderError> {
        let current = self.load(id).await?;
        Ok(self.drive_from(current, driver).await?.value)
    }

    pub(crate) async fn drive_from(
        &self,
        mut current: Current,
        driver: Driver,
    ) -> Result<Current, OrderError> {
        let started = self.now_ms();
        for _ in 0..MAX_ACTIONS_PER_DRIVE {
            let now = self.now_ms();
            let actions = next_actions(&current.value, now, &self.settings.recovery, driver);
            let Some(action) = actions.into_iter().next() else {
                break;
            };
            tracing::info!(order_id = %current.value.id, ?action, ?driver, "performing");
            let (next, progress) = self.perform(current, action, driver, started).await?;
            current = next;
            if progress == Progress::Waiting {
                break;
            }
        }
        Ok(current)
    }

    /// The order with its settling slot resolved: the slot's own record
    /// says whether its settlement took effect (the write after the
    /// settlement goes there, not to the order).
    pub(crate) async fn load(&self, id: &domain::order::OrderId) -> Result<Current, OrderError> {
        let mut current = self.store.load(id).await?.ok_or(OrderError::NotFound)?;
        self.resolve_slot(&mut current.value).await?;
        Ok(current)
    }

    pub(crate) async fn resolve_slot(&self, order: &mut Order) -> Result<(), OrderError> {
        let Some(fill) = order.settling.as_ref().filter(|f| f.settle.is_processing()) else {
            return Ok(());
        };
        let record = self.store.fill(&order.id, &fill.exec_id).await?;
        if record.is_some_and(|r| r.is_settled()) {
            let at = self.now_ms();
            order.settled(at);
            if let Some(fill) = order.settling.as_mut() {
                fill.archived = true;
            }
        }
        Ok(())
    }

    /// Applies `change` to the order and saves it if nobody wrote in between
    /// (else re-reads and asks `change` again). `change` answers whether it
    /// changed anything; its guards are re-checked on every attempt.
    pub(crate) async fn update(
        &self,
        mut current: Current,
        mut change: impl FnMut(&mut Order) -> bool,
    ) -> Result<Current, OrderError> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            if attempt > 0 {
                current = self.load(&current.value.id).await?;
            }
            let mut order = current.value.clone();
            if !change(&mut order) {
                return Ok(current);
            }
            match self.store.save(&order, current.version).await? {
                Saved::Saved { version } => {
                    return Ok(Versioned {
                        value: order,
                        version,
                    })
                }
                Saved::Conflict => continue,
            }
        }
        Err(OrderError::Busy)
    }

    pub(crate) async fn flag(
        &self,
        current: Current,
        reason: FlagReason,
        text: &str,
    ) -> Result<Current, OrderError> {
        let now = self.now_ms();
        if !current.value.recovery.flags.contains(&reason) {
            tracing::error!(order_id = %current.value.id, reason = reason.as_str(), text, "order flagged for an operator");
        }
        self.update(current, |o| o.recovery.flag(reason, text, now))
            .await
    }

    /// Leaves a signal for recovery: the order is looked at by `at_ms`
    /// (moved only earlier, or forward from a past time recovery's cursor
    /// may already have passed).
    pub(crate) async fn due_by(&self, current: Current, at_ms: u64) -> Result<Current, OrderError> {
        self.signal(current, None, Some(at_ms)).await
    }

    /// After a handler's drive: if the order carries a condition the
    /// handler could not resolve, recovery must see it soon.
    pub(crate) async fn leave_signal(&self, current: Current) -> Result<Current, OrderError> {
        let now = self.now_ms();
        let policy = &self.settings.recovery;
        match pending_condition(&current.value, now, policy) {
            Some(
                kind @ (ConditionKind::Settlement
                | ConditionKind::Backlog
                | ConditionKind::Cancel
                | ConditionKind::MissingExecutions
                | ConditionKind::Release),
            ) => {
                let at = next_look_ms(&current.value, kind, 1, now, policy);
                self.signal(current, Some(kind), Some(at)).await
            }
            None => {
                let silence_at = silence_due_at_ms(&current.value, policy);
                self.signal(
                    current,
                    None,
                    silence_at.map(|at| at.max(now + INDEX_LAG_MS)),
                )
                .await
            }
            _ => Ok(current),
        }
    }

    /// Records the condition the order carries now (`None`: healthy) and
    /// moves its due time to `at_ms`.
    ///
    /// The condition is kept with the time it arose, so its flag clock
    /// runs from then, not from recovery's first look; a healthy order
    /// drops it, so a later condition of the same kind starts afresh.
    ///
    /// While an order carries a condition, its due time is one recovery
    /// has not passed yet: recovery moves it into the future whenever it
    /// finds the condition, and clears the condition when it finds none.
    /// So a due time already past is left where it is; moving it forward
    /// on every report would keep recovery from ever looking at an order
    /// whose fills keep arriving.
    async fn signal(
        &self,
        current: Current,
        condition: Option<ConditionKind>,
        at_ms: Option<u64>,
    ) -> Result<Current, OrderError> {
        let now = self.now_ms();
        self.update(current, |o| {
            if o.is_closed() {
                return false;
            }
            let due = o.recovery.due_at_ms;
            let awaited = o.recovery.condition.is_some() && due <= now;
            let mut changed = false;
            if let Some(at) = at_ms {
                if (due <= now && !awaited) || due > at {
                    o.recovery.due_at_ms = at;
                    changed = true;
                }
            }
            let recorded = o.recovery.condition.map(|c| c.kind);
            if recorded != condition {
                o.recovery.condition = match o.recovery.condition {
                    // The deliberate bug: the first record stays, kind aside.
                    Some(old) if super::reconcile::attempts_never_reset() => Some(Condition {
                        kind: condition.unwrap_or(old.kind),
                        ..old
                    }),
                    _ => condition.map(|kind| Condition {
                        kind,
                        since_ms: now,
                        attempts: 0,
                        ground: o.ground(),
                    }),
                };
                changed = true;
            }
            changed
        })
        .await
    }

    async fn perform(
        &self,
        current: Current,
        action: Action,
        driver: Driver,
        started_ms: u64,
    ) -> Result<(Current, Progress), OrderError> {
        match action {
            Action::Reserve => self.reserve(current, driver, started_ms).await,
            Action::Place | Action::Resend => {
                self.send_placement(current, driver, started_ms).await
            }
            Action::AbandonUnsent => self.abandon_unsent(current).await,
            Action::LookupPlacement => {
                let (current, progress) = self.lookup_placement(current).await?;
                Ok(self
                    .keep_at_placement(current, progress, driver, started_ms)
                    .await)
            }
            Action::Settle => self.settle_now(current).await,
            Action::DrainBacklog => self.drain_backlog(current).await,
            Action::Cancel => self.send_cancel(current).await,
            Action::PullExecutions => self.pull_executions(current).await,
            Action::Release { units } => self.release(current, units).await,
            Action::Close => {
                let now = self.now_ms();
                let current = self
                    .update(current, |o| {
                        let open = o.closed_at_ms.is_none();
                        if open {
                            o.closed_at_ms = Some(now);
                        }
                        open
                    })
                    .await?;
                Ok((current, Progress::Advanced))
            }
        }
    }

    /// The placement record of the first send, or `None` when nothing can
    /// be sent now. On venues that enforce a request deadline, the order's
    /// deadline is converted to the venue's clock as measured, once: every
    /// resend carries the same deadline, so it is the same request.
    async fn first_placement(&self, order: &Order, now_ms: u64) -> Option<Placement> {
        let mut placement = Placement::started(now_ms, None);
        placement.sends = 1;
        if self.settings.recovery.venue.request_deadline {
            let deadline = now_ms + self.settings.placement_window_ms;
            match self.exchange.clock().await {
                Ok(clock) => placement.venue_deadline_ms = Some(clock.to_venue(deadline)),
                // The venue cannot be reached: nothing can be sent now.
                Err(error) => {
                    tracing::warn!(order_id = %order.id, %error, "the venue's clock is unknown; the placement waits");
                    return None;
                }
            }
        }
        Some(placement)
    }

    async fn reserve(
        &self,
        current: Current,
        driver: Driver,
        started_ms: u64,
    ) -> Result<(Current, Progress), OrderError> {
        let order = &current.value;
        let operation = Operation::Reserve {
            asset: order.reservation.asset.clone(),
            amount: order.reservation.amount,
        };
        let state = match self
            .balances
            .execute(&order.account, &order.id.reserve_key(), &operation)
            .await
        {
            Ok(record) if record.outcome.took_effect() => StepState::Succeeded,
            // Nothing to reserve from: the account holds none of the asset.
            Ok(_) | Err(BalancesCallError::UnknownAccount) => {
                StepState::Failed(StepFailure::InsufficientFunds)
            }
            Err(BalancesCallError::Unavailable(_) | BalancesCallError::OutcomeUnknown(_)) => {
                return Ok((current, Progress::Waiting))
            }
            Err(refused) => {
                let text = format!("reserve refused: {refused}");
                let current = self.flag(current, FlagReason::Refused, &text).await?;
                return Ok((current, Progress::Waiting));
            }
        };
        let now = self.now_ms();
        let succeeded = state == StepState::Succeeded;
        // The write after the reservation is also the one before the placement.
        let placement = if succeeded && self.may_send_placement(order, now) {
            self.first_placement(order, now).await
        } else {
            None
        };
        let mut started = false;
        let current = self
            .update(current, |o| {
                started = false;
                if !o.reserve.is_processing() {
                    return false;
                }
                o.reserve.finish(state.clone(), now);
                if let Some(placement) = &placement {
                    if o.place.is_none() && self.may_send_placement(o, now) {
                        o.place = Some(placement.clone());
                        // From now on the deadline is the request's own.
                        o.place_deadline_ms = now + self.settings.placement_window_ms;
                        started = true;
                    }
                }
                true
            })
            .await?;
        if started {
            return self.call_place(current, driver, started_ms).await;
        }
        Ok((current, Progress::Advanced))
    }

    /// A placement may start, or be sent again, only before its window
    /// closes and only while no cancel is requested (checked inside the
    /// write that counts the send, so a cancel recorded in between is
    /// always seen).
    fn may_send_placement(&self, order: &Order, now_ms: u64) -> bool {
        let ignores_cancel = {
            #[cfg(feature = "mutants")]
            {
                domain::order::mutants::active(
                    domain::order::mutants::Mutant::PlacementIgnoresCancel,
                )
            }
            #[cfg(not(feature = "mutants"))]
            {
                false
            }
        };
        (order.cancel.is_none() || ignores_cancel) && now_ms <= order.place_deadline_ms
    }

    /// Records the send (before it happens), then sends.
    async fn send_placement(
        &self,
        current: Current,
        driver: Driver,
        started_ms: u64,
    ) -> Result<(Current, Progress), OrderError> {
        let now = self.now_ms();
        if current.value.place.is_none() {
            let Some(placement) = self.first_placement(&current.value, now).await else {
                return Ok((current, Progress::Waiting));
            };
            let mut started = false;
            let current = self
                .update(current, |o| {
                    started = o.place.is_none() && self.may_send_placement(o, now);
                    if started {
                        o.place = Some(placement.clone());
                        // From now on the deadline is the request's own.
                        o.place_deadline_ms = now + self.settings.placement_window_ms;
                    }
                    started
                })
                .await?;
            if !started {
                return Ok((current, Progress::Advanced));
            }
            return self.call_place(current, driver, started_ms).await;
        }
        // A resend: the same request again, counted before it goes out.
        let mut resending = false;
        let current = self
            .update(current, |o| {
                resending = false;
                if !self.may_send_placement(o, now) {
                    return false;
                }
                let Some(placement) = o.place.as_mut() else {
                    return false;
                };
                if !placement.step.is_processing() {
                    return false;
                }
                placement.sends += 1;
                placement.resend = false;
                resending = true;
                true
            })
            .await?;
        if !resending {
            return Ok((current, Progress::Advanced));
        }
        self.call_place(current, driver, started_ms).await
    }

    async fn call_place(
        &self,
        current: Current,
        driver: Driver,
        started_ms: u64,
    ) -> Result<(Current, Progress), OrderError> {
        let request = place_request(&current.value);
        let sends = current.value.place.as_ref().map_or(1, |p| p.sends);
        match self.exchange.place(&request).await {
            Ok(PlaceOutcome::Accepted(view)) => {
                let now = self.now_ms();
                let current = self
                    .update(current, |o| record_exchange_view(o, &view, now))
                    .await?;
                Ok((current, Progress::Advanced))
            }
            Ok(PlaceOutcome::Rejected { reason }) => {
                let current = self
                    .fail_placement(
                        current,
                        StepFailure::ExchangeRejected {
                            detail: detail(&reason),
                        },
                    )
                    .await?;
                Ok((current, Progress::Advanced))
            }
            Err(error) => {
                tracing::warn!(order_id = %current.value.id, %error, sends, "placement unanswered");
                let provably_unsent =
                    matches!(error, crate::exchange::ExchangeError::Unavailable(_));
                let text = detail(&error.to_string());
                let current = self
                    .update(current, |o| match o.place.as_mut() {
                        Some(p) if p.step.is_processing() => {
                            p.last_error = Some(text.clone());
                            p.resend |= provably_unsent;
                            true
                        }
                        _ => false,
                    })
                    .await?;
                // A handler keeps at it within its budget and the window;
                // recovery comes back on its next run.
                let keep_trying = driver == Driver::Handler
                    && self.now_ms() < current.value.place_deadline_ms
                    && self.now_ms().saturating_sub(started_ms) < self.settings.handler_budget_ms;
                if keep_trying {
                    let pause = (FIRST_RESEND_PAUSE_MS << sends.saturating_sub(1).min(8))
                        .min(MAX_RESEND_PAUSE_MS);
                    self.clock.pause(pause).await;
                    return Ok((current, Progress::Advanced));
                }
                Ok((current, Progress::Waiting))
            }
        }
    }

    /// Records a placement as failed, on evidence that the exchange holds no
    /// order from it; only while it is still processing and nothing
    /// contradicts it.
    pub(crate) async fn fail_placement(
        &self,
        current: Current,
        failure: StepFailure,
    ) -> Result<Current, OrderError> {
        let now = self.now_ms();
        let state = StepState::Failed(failure);
        self.update(current, |o| match o.place.as_mut() {
            Some(p) if p.step.is_processing() && o.settling.is_none() && o.fills.count == 0 => {
                p.step.finish(state.clone(), now);
                true
            }
            _ => false,
        })
        .await
    }

    async fn abandon_unsent(&self, current: Current) -> Result<(Current, Progress), OrderError> {
        let now = self.now_ms();
        let text = if current.value.cancel.is_some() {
            "cancelled before it was sent"
        } else {
            "not sent within its submission window"
        };
        let current = self
            .update(current, |o| {
                let unsent = o.place.is_none();
                if unsent {
                    let mut placement = Placement::started(now, None);
                    placement.step.finish(
                        StepState::Failed(StepFailure::NotPlaced {
                            detail: text.into(),
                        }),
                        now,
                    );
                    o.place = Some(placement);
                    if let Some(cancel) = o.cancel.as_mut() {
                        cancel.step = Some(Step::done(StepState::Succeeded, now));
                    }
                }
                unsent
            })
            .await?;
        Ok((current, Progress::Advanced))
    }

    /// Resolves a placement whose answer was lost, by asking the exchange,
    /// and concludes "not placed" only as far as the venue's guarantees allow.
    /// A handler whose lookup went unanswered asks again after a pause while
    /// its budget and the placement window last: an exchange that fails one
    /// call in several must not turn a placement into "not placed".
    async fn keep_at_placement(
        &self,
        current: Current,
        progress: Progress,
        driver: Driver,
        started_ms: u64,
    ) -> (Current, Progress) {
        let now = self.now_ms();
        let unresolved = current
            .value
            .place
            .as_ref()
            .is_some_and(|p| p.step.is_processing());
        let keep_trying = progress == Progress::Waiting
            && driver == Driver::Handler
            && unresolved
            && now < current.value.place_deadline_ms
            && now.saturating_sub(started_ms) < self.settings.handler_budget_ms;
        if !keep_trying {
            return (current, progress);
        }
        self.clock.pause(LOOKUP_PAUSE_MS).await;
        (current, Progress::Advanced)
    }

    async fn lookup_placement(&self, current: Current) -> Result<(Current, Progress), OrderError> {
        let id = current.value.id.clone();
        let view = match self.exchange.order(&id).await {
            Ok(view) => view,
            Err(_) => return Ok((current, Progress::Waiting)),
        };
        let now = self.now_ms();
        if let Some(view) = view {
            let current = self
                .update(current, |o| record_exchange_view(o, &view, now))
                .await?;
            return Ok((current, Progress::Advanced));
        }
        // Not found while the request could still go out (and the caller
        // still wants it): send it again.
        if self.may_send_placement(&current.value, now) {
            let current = self
                .update(current, |o| match o.place.as_mut() {
                    Some(p) if p.step.is_processing() && !p.resend => {
                        p.resend = true;
                        true
                    }
                    _ => false,
                })
                .await?;
            return Ok((current, Progress::Advanced));
        }
        let policy = &self.settings.recovery;
        let waited = now > absence_final_at_ms(&current.value, policy);
        #[cfg(feature = "mutants")]
        let waited = waited
            || domain::order::mutants::active(
                domain::order::mutants::Mutant::NotPlacedWithoutWaiting,
            );
        // "Not found" may only mean "not yet": the request may still be in flight.
        if !waited {
            return Ok((current, Progress::Waiting));
        }
        match policy.venue.absence {
            AbsenceProof::Tombstone => match self.exchange.cancel(&id, None).await {
                // The tombstone makes "not found" final: a late request is refused.
                Ok(CancelOutcome::Tombstoned) => {
                    let text = "not found at the exchange after its deadline; id tombstoned";
                    let current = self
                        .fail_placement(
                            current,
                            StepFailure::NotPlaced {
                                detail: text.into(),
                            },
                        )
                        .await?;
                    Ok((current, Progress::Advanced))
                }
                // It arrived after all (and is now cancelled): the normal path follows.
                Ok(CancelOutcome::Known(view)) => {
                    let current = self
                        .update(current, |o| record_exchange_view(o, &view, now))
                        .await?;
                    Ok((current, Progress::Advanced))
                }
                Ok(CancelOutcome::NotFound) | Err(_) => Ok((current, Progress::Waiting)),
            },
            AbsenceProof::Deadline => {
                let text = "not found after its deadline, the skew and the longest flight: \
                            the venue refuses it now";
                let current = self
                    .fail_placement(
                        current,
                        StepFailure::NotPlaced {
                            detail: text.into(),
                        },
                    )
                    .await?;
                Ok((current, Progress::Advanced))
            }
            AbsenceProof::DayList => {
                let current = self
                    .update(current, |o| match o.place.as_mut() {
                        Some(p) if p.step.is_processing() && !p.awaiting_day_list => {
                            p.awaiting_day_list = true;
                            true
                        }
                        _ => false,
                    })
                    .await?;
                Ok((current, Progress::Waiting))
            }
        }
    }

    /// Settles the execution in the slot at Balances with its fixed terms.
    pub(crate) async fn settle_now(
        &self,
        current: Current,
    ) -> Result<(Current, Progress), OrderError> {
        let order = &current.value;
        let Some(fill) = order.settling.clone() else {
            return Ok((current, Progress::Advanced));
        };
        let operation = Operation::Settle {
            symbol: order.request.symbol.clone(),
            side: order.request.side,
            quantity: fill.quantity,
            price: fill.price,
            from_reserved_units: fill.from_reserved_units,
            release_units: fill.release_units,
        };
        let outcome = match self
            .balances
            .execute(
                &order.account,
                &order.id.settle_key(&fill.exec_id),
                &operation,
            )
            .await
        {
            Ok(record) if record.outcome.took_effect() => record.outcome,
            Ok(record) => {
                let text = format!(
                    "settlement of {} refused: {:?}",
                    fill.exec_id, record.outcome
                );
                let current = self.flag(current, FlagReason::Refused, &text).await?;
                return Ok((current, Progress::Waiting));
            }
            Err(BalancesCallError::Unavailable(_) | BalancesCallError::OutcomeUnknown(_)) => {
                return Ok((current, Progress::Waiting))
            }
            Err(refused) => {
                let text = format!("settlement of {} refused: {refused}", fill.exec_id);
                let current = self.flag(current, FlagReason::Refused, &text).await?;
                return Ok((current, Progress::Waiting));
            }
        };
        let now = self.now_ms();
        let shortfall = match &outcome {
            Outcome::Shortfall { asset, units } => Some(format!(
                "execution {} settled with {units} {asset} units owed",
                fill.exec_id
            )),
            _ => None,
        };
        // If the order is finished with this settlement, its outcome and the
        // close are one write; otherwise the outcome goes to the execution's
        // own record, and the order item is left alone.
        let mut after = order.clone();
        after.settled(now);
        // (An execution that waited has a waiting record to remove: its own write.)
        let closes = !fill.waited
            && next_actions(&after, now, &self.settings.recovery, Driver::Handler)
                == vec![Action::Close];
        if closes {
            let current = self
                .update(current, |o| {
                    let ours = o
                        .settling
                        .as_ref()
                        .is_some_and(|f| f.exec_id == fill.exec_id && f.settle.is_processing());
                    if !ours {
                        return false;
                    }
                    o.settled(now);
                    if let Some(text) = &shortfall {
                        o.recovery.flag(FlagReason::Shortfall, text, now);
                    }
                    if next_actions(o, now, &self.settings.recovery, Driver::Handler)
                        == vec![Action::Close]
                    {
                        o.closed_at_ms = Some(now);
                    }
                    true
                })
                .await?;
            return Ok((current, Progress::Advanced));
        }
        self.store
            .put_fill(&order.id, &FillRecord::settled(&fill), fill.waited)
            .await?;
        let mut current = current;
        current.value.settled(now);
        if let Some(slot) = current.value.settling.as_mut() {
            slot.archived = true;
        }
        if let Some(text) = shortfall {
            current = self.flag(current, FlagReason::Shortfall, &text).await?;
        }
        Ok((current, Progress::Advanced))
    }

    /// Returns what is left of the reservation, recorded before and after.
    async fn release(
        &self,
        current: Current,
        units: u64,
    ) -> Result<(Current, Progress), OrderError> {
        let now = self.now_ms();
        let current = self
            .update(current, |o| {
                let first = o.release.is_none();
                if first {
                    o.release = Some(Step::processing(now));
                    o.release_units = units;
                }
                first
            })
            .await?;
        let units = current.value.release_units;
        let Ok(amount) = Amount::new(units) else {
            return Ok((current, Progress::Advanced));
        };
        let order = &current.value;
        let operation = Operation::Release {
            asset: order.reservation.asset.clone(),
            amount,
        };
        match self
            .balances
            .execute(&order.account, &order.id.release_key(), &operation)
            .await
        {
            Ok(record) if record.outcome.took_effect() => {}
            Ok(record) => {
                let text = format!("release refused: {:?}", record.outcome);
                let current = self.flag(current, FlagReason::Refused, &text).await?;
                return Ok((current, Progress::Waiting));
            }
            Err(BalancesCallError::Unavailable(_) | BalancesCallError::OutcomeUnknown(_)) => {
                return Ok((current, Progress::Waiting))
            }
            Err(refused) => {
                let text = format!("release refused: {refused}");
                let current = self.flag(current, FlagReason::Refused, &text).await?;
                return Ok((current, Progress::Waiting));
            }
        }
        let now = self.now_ms();
        // The release's outcome and the close are one write.
        let current = self
            .update(current, |o| match o.release.as_mut() {
                Some(step) if step.is_processing() => {
                    step.finish(StepState::Succeeded, now);
                    o.released_units += o.release_units;
                    o.release_units = 0;
                    if next_actions(o, now, &self.settings.recovery, Driver::Handler)
                        == vec![Action::Close]
                    {
                        o.closed_at_ms = Some(now);
                    }
                    true
                }
                _ => false,
            })
            .await?;
        Ok((current, Progress::Advanced))
    }

    /// Sends the caller's cancel, recorded before and after; repeated by
    /// any driver until the exchange reports a final state.
    async fn send_cancel(&self, current: Current) -> Result<(Current, Progress), OrderError> {
        let now = self.now_ms();
        let current = self
            .update(current, |o| match o.cancel.as_mut() {
                Some(cancel) if cancel.step.is_none() => {
                    cancel.step = Some(Step::processing(now));
                    true
                }
                _ => false,
            })
            .await?;
        let order = &current.value;
        let venue_id = order.exchange_order_id.clone();
        if !self.settings.recovery.venue.cancel_by_client_id && venue_id.is_none() {
            // Only the venue's own id cancels here: find it first.
            return self.lookup_placement(current).await;
        }
        let id = order.id.clone();
        let outcome = match self.exchange.cancel(&id, venue_id.as_deref()).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(order_id = %id, %error, "cancel unanswered; it will be sent again");
                return Ok((current, Progress::Waiting));
            }
        };
        let now = self.now_ms();
        match outcome {
            CancelOutcome::Known(view) => {
                let current = self
                    .update(current, |o| {
                        let mut changed = record_exchange_view(o, &view, now);
                        if view.status.is_final() {
                            let state = if view.status == ExchangeOrderStatus::Filled {
                                StepState::Failed(StepFailure::CancelRefused {
                                    detail: "already filled".into(),
                                })
                            } else {
                                StepState::Succeeded
                            };
                            if let Some(cancel) = o.cancel.as_mut() {
                                if cancel.step.as_ref().is_none_or(Step::is_processing) {
                                    cancel.step = Some(Step::done(state.clone(), now));
                                    changed = true;
                                }
                            }
                        }
                        changed
                    })
                    .await?;
                let progress = if view.status.is_final() {
                    Progress::Advanced
                } else {
                    Progress::Waiting
                };
                Ok((current, progress))
            }
            CancelOutcome::Tombstoned => {
                let text = "cancelled before it reached the exchange; id tombstoned";
                let current = self
                    .fail_placement(
                        current,
                        StepFailure::NotPlaced {
                            detail: text.into(),
                        },
                    )
                    .await?;
                let current = self
                    .update(current, |o| match o.cancel.as_mut() {
                        Some(cancel) if cancel.step.as_ref().is_none_or(Step::is_processing) => {
                            cancel.step = Some(Step::done(StepState::Succeeded, now));
                            true
                        }
                        _ => false,
                    })
                    .await?;
                Ok((current, Progress::Advanced))
            }
            // Not there yet (or never): the placement's own rules decide.
            CancelOutcome::NotFound if !current.value.is_placed() => {
                self.lookup_placement(current).await
            }
            CancelOutcome::NotFound => {
                let text = "the exchange does not know an order it accepted";
                let current = self
                    .flag(current, FlagReason::UnknownToExchange, text)
                    .await?;
                Ok((current, Progress::Waiting))
            }
        }
    }
}
