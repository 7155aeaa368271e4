//! Performing the actions that [`next_actions`] derives. Each external call
//! is preceded and followed by a conditional write of the order's records,
//! and an outcome is recorded only on evidence: an answer from the other side,
//! never the absence of one.

use domain::order::{
    next_actions, placement_unknown_is_final, Action, Driver, ExecId, FillApplied, FinalReport,
    FinalStatus, Order, OrderId, Step, StepFailure, StepState,
};
use domain::{Amount, Operation, Outcome};

use super::{OrderError, Orders};
use crate::balances::{Balances, BalancesCallError};
use crate::clock::Clock;
use crate::exchange::{
    CancelOutcome, Exchange, ExchangeOrder, ExchangeOrderStatus, PlaceOutcome, PlaceRequest,
};
use crate::order_store::{OrderStore, Saved, Versioned};

/// Most actions one `drive` performs before returning the order as it stands.
const MAX_ACTIONS_PER_DRIVE: usize = 32;
/// Most times a write is re-derived after losing a race to another writer.
const MAX_WRITE_ATTEMPTS: usize = 8;

/// What performing one action achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Something was recorded; derive the next action.
    Advanced,
    /// An outcome is unknown or a wait is due: leave the order to recovery.
    Waiting,
}

fn final_status(status: ExchangeOrderStatus) -> Option<FinalStatus> {
    match status {
        ExchangeOrderStatus::Filled => Some(FinalStatus::Filled),
        ExchangeOrderStatus::Cancelled => Some(FinalStatus::Cancelled),
        ExchangeOrderStatus::Expired => Some(FinalStatus::Expired),
        ExchangeOrderStatus::Rejected => Some(FinalStatus::Rejected),
        ExchangeOrderStatus::New | ExchangeOrderStatus::PartiallyFilled => None,
    }
}

/// Records what the exchange says of the order: it holds it, and maybe it is final.
fn record_exchange_view(order: &mut Order, view: &ExchangeOrder, now_ms: u64) -> bool {
    let before = (
        order.place.clone(),
        order.exchange_order_id.clone(),
        order.final_report.clone(),
    );
    order.record_placed(&view.order_id, now_ms);
    if let Some(status) = final_status(view.status) {
        order.record_final(FinalReport {
            status,
            cum_quantity: view.cum_quantity,
        });
    }
    before
        != (
            order.place.clone(),
            order.exchange_order_id.clone(),
            order.final_report.clone(),
        )
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
    pub async fn drive(&self, id: &OrderId, driver: Driver) -> Result<Order, OrderError> {
        for _ in 0..MAX_ACTIONS_PER_DRIVE {
            let order = self.load(id).await?.value;
            let actions = next_actions(&order, self.now_ms(), &self.settings.recovery, driver);
            let Some(action) = actions.into_iter().next() else {
                return Ok(order);
            };
            if self.perform(&order, action, driver).await? == Progress::Waiting {
                break;
            }
        }
        Ok(self.load(id).await?.value)
    }

    pub(crate) async fn load(&self, id: &OrderId) -> Result<Versioned<Order>, OrderError> {
        self.store.load(id).await?.ok_or(OrderError::NotFound)
    }

    /// Loads the order, lets `change` edit it, and saves it if nobody wrote in
    /// between (else re-reads and asks `change` again). `change` answers
    /// whether it changed anything.
    pub(crate) async fn update(
        &self,
        id: &OrderId,
        mut change: impl FnMut(&mut Order) -> bool,
    ) -> Result<Order, OrderError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Versioned {
                value: mut order,
                version,
            } = self.load(id).await?;
            if !change(&mut order) {
                return Ok(order);
            }
            match self.store.save(&order, version).await? {
                Saved::Saved { .. } => return Ok(order),
                Saved::Conflict => continue,
            }
        }
        Err(OrderError::Busy)
    }

    /// Records a placement as failed, on evidence that the exchange holds no
    /// order from it; only while it is still processing and no fill contradicts it.
    pub(crate) async fn fail_placement(
        &self,
        id: &OrderId,
        failure: StepFailure,
    ) -> Result<Order, OrderError> {
        let now = self.now_ms();
        let state = StepState::Failed(failure);
        self.update(id, |o| match o.place.as_mut() {
            Some(step) if step.is_processing() && o.fills.is_empty() => {
                step.finish(state.clone(), now);
                true
            }
            _ => false,
        })
        .await
    }

    pub(crate) async fn flag(&self, id: &OrderId, reason: String) -> Result<Progress, OrderError> {
        tracing::error!(order_id = %id, %reason, "order flagged for an operator");
        self.update(id, |o| {
            let fresh = o.recovery.flagged.is_none();
            if fresh {
                o.recovery.flagged = Some(reason.clone());
            }
            fresh
        })
        .await?;
        Ok(Progress::Waiting)
    }

    async fn perform(
        &self,
        order: &Order,
        action: Action,
        driver: Driver,
    ) -> Result<Progress, OrderError> {
        tracing::info!(order_id = %order.id, ?action, ?driver, "performing");
        match action {
            Action::Reserve => self.reserve(order, driver).await,
            Action::Place => self.send_placement(order).await,
            Action::AbandonUnsentPlacement => self.abandon_unsent(order).await,
            Action::LookupPlacement => self.lookup_placement(order).await,
            Action::PullExecutions => self.pull_executions(order).await,
            Action::Settle(exec_id) => self.settle(order, &exec_id).await,
            Action::Release { units } => self.release(order, units).await,
            Action::Close => {
                let now = self.now_ms();
                self.update(&order.id, |o| {
                    let open = o.closed_at_ms.is_none();
                    if open {
                        o.closed_at_ms = Some(now);
                    }
                    open
                })
                .await?;
                Ok(Progress::Advanced)
            }
            Action::Flag(reason) => self.flag(&order.id, reason).await,
        }
    }

    async fn reserve(&self, order: &Order, driver: Driver) -> Result<Progress, OrderError> {
        let mut attempt = order.reserve.attempt;
        if driver == Driver::Recovery {
            // Recovery takes the step over: answers of older attempts no longer count.
            let now = self.now_ms();
            let taken = self
                .update(&order.id, |o| {
                    let processing = o.reserve.is_processing();
                    if processing {
                        o.reserve.retry(now);
                    }
                    processing
                })
                .await?;
            if !taken.reserve.is_processing() {
                return Ok(Progress::Advanced);
            }
            attempt = taken.reserve.attempt;
        }
        let operation = Operation::Reserve {
            asset: order.reservation.asset.clone(),
            amount: order.reservation.amount,
        };
        let state = match self
            .balances
            .execute(&order.account, &order.id.reserve_key(), &operation)
            .await
        {
            Ok(record) if record.outcome == Outcome::Succeeded => StepState::Succeeded,
            // Nothing to reserve from: the account holds none of the asset.
            Ok(_) | Err(BalancesCallError::UnknownAccount) => {
                StepState::Failed(StepFailure::InsufficientFunds)
            }
            Err(BalancesCallError::Unavailable(_) | BalancesCallError::OutcomeUnknown(_)) => {
                return Ok(Progress::Waiting)
            }
            Err(refused) => {
                return self
                    .flag(&order.id, format!("reserve refused: {refused}"))
                    .await
            }
        };
        let now = self.now_ms();
        self.update(&order.id, |o| {
            let owned = o.reserve.is_processing() && o.reserve.attempt == attempt;
            if owned {
                o.reserve.finish(state.clone(), now);
            }
            owned
        })
        .await?;
        Ok(Progress::Advanced)
    }

    async fn send_placement(&self, order: &Order) -> Result<Progress, OrderError> {
        let now = self.now_ms();
        let mut started_here = false;
        self.update(&order.id, |o| {
            started_here = o.place.is_none();
            if started_here {
                o.place = Some(Step::processing(now));
            }
            started_here
        })
        .await?;
        if !started_here {
            return Ok(Progress::Advanced); // someone else is placing it
        }
        let request = PlaceRequest {
            client_order_id: order.id.clone(),
            account: order.account.clone(),
            symbol: order.request.symbol.clone(),
            side: order.request.side,
            order_type: order.request.order_type,
            quantity: order.request.quantity,
            limit_price: order.request.limit_price,
            expire_at_ms: order.place_deadline_ms,
        };
        match self.exchange.place(&request).await {
            Ok(PlaceOutcome::Accepted(view)) => {
                let now = self.now_ms();
                self.update(&order.id, |o| record_exchange_view(o, &view, now))
                    .await?;
                Ok(Progress::Advanced)
            }
            Ok(PlaceOutcome::Rejected { reason }) => {
                self.fail_placement(&order.id, StepFailure::ExchangeRejected { detail: reason })
                    .await?;
                Ok(Progress::Advanced)
            }
            Err(error) => {
                tracing::warn!(order_id = %order.id, %error, "placement outcome unknown; left to recovery");
                Ok(Progress::Waiting)
            }
        }
    }

    async fn abandon_unsent(&self, order: &Order) -> Result<Progress, OrderError> {
        let now = self.now_ms();
        let detail = if order.cancel_requested_at_ms.is_some() {
            "cancelled before it was sent"
        } else {
            "its deadline passed before it was sent"
        };
        self.update(&order.id, |o| {
            let unsent = o.place.is_none();
            if unsent {
                let mut step = Step::processing(now);
                step.finish(
                    StepState::Failed(StepFailure::NotPlaced {
                        detail: detail.into(),
                    }),
                    now,
                );
                o.place = Some(step);
            }
            unsent
        })
        .await?;
        Ok(Progress::Advanced)
    }

    /// Resolves a placement whose answer was lost, by asking the exchange.
    async fn lookup_placement(&self, order: &Order) -> Result<Progress, OrderError> {
        let view = match self.exchange.order(&order.id).await {
            Ok(view) => view,
            Err(_) => return Ok(Progress::Waiting),
        };
        if let Some(view) = view {
            let now = self.now_ms();
            self.update(&order.id, |o| record_exchange_view(o, &view, now))
                .await?;
            return Ok(Progress::Advanced);
        }
        // "Not found" may only mean "not yet": the request may still be in flight.
        if !placement_unknown_is_final(order, self.now_ms(), &self.settings.recovery) {
            return Ok(Progress::Waiting);
        }
        // The tombstone makes "not found" final: a late request is refused.
        match self.exchange.cancel(&order.id).await {
            Ok(CancelOutcome::Tombstoned) => {
                let detail = "not found at the exchange after its deadline; id tombstoned".into();
                self.fail_placement(&order.id, StepFailure::NotPlaced { detail })
                    .await?;
                Ok(Progress::Advanced)
            }
            // It arrived after all (and is now cancelled): the normal close path follows.
            Ok(CancelOutcome::Known(view)) => {
                let now = self.now_ms();
                self.update(&order.id, |o| record_exchange_view(o, &view, now))
                    .await?;
                Ok(Progress::Advanced)
            }
            Err(_) => Ok(Progress::Waiting),
        }
    }

    /// Pulls status and executions over REST and applies what is missing,
    /// through the same idempotent path as webhook fills.
    async fn pull_executions(&self, order: &Order) -> Result<Progress, OrderError> {
        let view = match self.exchange.order(&order.id).await {
            Ok(Some(view)) => view,
            Ok(None) if order.place.as_ref().is_some_and(Step::is_succeeded) => {
                return self
                    .flag(&order.id, "placed, yet unknown to the exchange".into())
                    .await;
            }
            Ok(None) | Err(_) => return Ok(Progress::Waiting),
        };
        let Ok(executions) = self.exchange.executions(&view.order_id).await else {
            return Ok(Progress::Waiting);
        };
        let now = self.now_ms();
        let mut refused = None;
        let mut recorded = false;
        self.update(&order.id, |o| {
            let mut changed = record_exchange_view(o, &view, now);
            for execution in &executions {
                match o.apply_execution(execution, now) {
                    Ok(FillApplied::Recorded) => changed = true,
                    Ok(FillApplied::Duplicate) => {}
                    Err(error) => {
                        refused = Some(format!("execution {}: {error}", execution.exec_id.as_str()))
                    }
                }
            }
            recorded = changed;
            changed
        })
        .await?;
        if let Some(reason) = refused {
            return self.flag(&order.id, reason).await;
        }
        Ok(if recorded {
            Progress::Advanced
        } else {
            Progress::Waiting
        })
    }

    async fn settle(&self, order: &Order, exec_id: &ExecId) -> Result<Progress, OrderError> {
        let Some(fill) = order.fill(exec_id) else {
            return Ok(Progress::Advanced);
        };
        let operation = Operation::Settle {
            symbol: order.request.symbol.clone(),
            side: order.request.side,
            quantity: fill.quantity,
            price: fill.price,
        };
        match self
            .balances
            .execute(&order.account, &order.id.settle_key(exec_id), &operation)
            .await
        {
            Ok(record) if record.outcome == Outcome::Succeeded => {}
            Ok(record) => {
                return self
                    .flag(
                        &order.id,
                        format!(
                            "settlement of {} refused: {:?}",
                            exec_id.as_str(),
                            record.outcome
                        ),
                    )
                    .await
            }
            Err(BalancesCallError::Unavailable(_) | BalancesCallError::OutcomeUnknown(_)) => {
                return Ok(Progress::Waiting)
            }
            Err(refused) => {
                return self
                    .flag(&order.id, format!("settlement refused: {refused}"))
                    .await
            }
        }
        let now = self.now_ms();
        self.update(&order.id, |o| {
            let fill = o.fills.iter_mut().find(|f| &f.exec_id == exec_id);
            match fill {
                Some(f) if f.settle.is_processing() => {
                    f.settle.finish(StepState::Succeeded, now);
                    true
                }
                _ => false,
            }
        })
        .await?;
        Ok(Progress::Advanced)
    }

    async fn release(&self, order: &Order, units: u64) -> Result<Progress, OrderError> {
        let now = self.now_ms();
        self.update(&order.id, |o| {
            let first = o.release.is_none();
            if first {
                o.release = Some(Step::processing(now));
            }
            first
        })
        .await?;
        let amount = Amount::new(units).map_err(|e| OrderError::Invalid(e.to_string()))?;
        let operation = Operation::Release {
            asset: order.reservation.asset.clone(),
            amount,
        };
        match self
            .balances
            .execute(&order.account, &order.id.release_key(), &operation)
            .await
        {
            Ok(record) if record.outcome == Outcome::Succeeded => {}
            Ok(record) => {
                return self
                    .flag(&order.id, format!("release refused: {:?}", record.outcome))
                    .await
            }
            Err(BalancesCallError::Unavailable(_) | BalancesCallError::OutcomeUnknown(_)) => {
                return Ok(Progress::Waiting)
            }
            Err(refused) => {
                return self
                    .flag(&order.id, format!("release refused: {refused}"))
                    .await
            }
        }
        let now = self.now_ms();
        self.update(&order.id, |o| match o.release.as_mut() {
            Some(step) if step.is_processing() => {
                step.finish(StepState::Succeeded, now);
                true
            }
            _ => false,
        })
        .await?;
        Ok(Progress::Advanced)
    }
}
