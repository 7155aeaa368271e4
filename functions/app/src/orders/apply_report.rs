//! The fill processor's use case: apply one exchange report to its order,
//! exactly once, then drive the order on (settle, release, close).
//!
//! A trade the exchange made has happened: an execution it confirms is
//! never refused. A report that contradicts the records (an order never
//! sent, concluded not placed, rejected or closed, an unknown order, an
//! execution under another venue id) is first checked with the exchange's
//! REST API: confirmed, it is applied (a closed order is reopened and
//! flagged); not confirmed, nothing is applied and the report is set aside
//! with its reason.

use domain::order::{Driver, ExchangeReport, Execution, FinalReport, FlagReason, Order, OrderId};

use super::drive::{record_exchange_view, Current};
use super::executions::Recorded;
use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::{Exchange, ExchangeError, ExchangeOrder};
use crate::order_store::OrderStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Recorded now (and driven on as far as it goes).
    Applied(Order),
    /// Recorded before (a repeated delivery); whatever was left unfinished
    /// after it has been driven on.
    Duplicate(Order),
    /// Not applied, and never will be: set it aside where an operator looks.
    SetAside { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The exchange could not be asked to confirm a contradicting report:
    /// deliver it again later.
    #[error("could not verify the report with the exchange: {0}")]
    Unverified(ExchangeError),
    #[error(transparent)]
    Order(#[from] OrderError),
}

/// What the exchange's REST API says of a report.
enum Verdict {
    Confirmed(ExchangeOrder),
    NotConfirmed(String),
}

/// Why a report needs the exchange's word before anything is applied.
fn contradiction(order: &Order, report: &ExchangeReport) -> Option<String> {
    let venue_id = report.exchange_order_id();
    let placement = order.place.as_ref();
    if placement.is_none() {
        return Some("the platform never sent this order".into());
    }
    if let Some(failure) = placement.and_then(|p| p.step.failure()) {
        return Some(format!("the order was concluded {failure:?}"));
    }
    if placement.is_some_and(|p| p.step.is_processing()) {
        return Some("the placement is not confirmed yet".into());
    }
    if order
        .exchange_order_id
        .as_deref()
        .is_some_and(|placed| placed != venue_id)
    {
        return Some(format!(
            "reported under venue id {venue_id}, placed as {}",
            order.exchange_order_id.as_deref().unwrap_or_default()
        ));
    }
    match report {
        ExchangeReport::Execution { .. } if order.is_closed() => Some("the order is closed".into()),
        ExchangeReport::Execution { execution, .. } => beyond_the_order(order, execution),
        ExchangeReport::Final { report, .. } if report.cum_quantity < order.filled_quantity() => {
            Some(format!(
                "final status with {} shares executed, {} recorded",
                report.cum_quantity,
                order.filled_quantity()
            ))
        }
        ExchangeReport::Final { report, .. }
            if order
                .final_report
                .as_ref()
                .is_some_and(|known| known.status != report.status) =>
        {
            Some("a second, different final status".into())
        }
        _ => None,
    }
}

/// An execution the order itself forbids: more shares than it asked for, or
/// a price through its limit (the venue must have broken it). Such a report
/// is applied only if the exchange confirms it.
fn beyond_the_order(order: &Order, execution: &Execution) -> Option<String> {
    let filled_after = order.filled_quantity() + execution.quantity.shares();
    if filled_after > order.request.quantity.shares() {
        return Some(format!(
            "it takes the order to {filled_after} of {} shares",
            order.request.quantity.shares()
        ));
    }
    let through = match (order.request.side, order.venue_limit()) {
        (domain::Side::Buy, Some(limit)) => execution.price > limit,
        (domain::Side::Sell, Some(limit)) => execution.price < limit,
        (_, None) => false,
    };
    through.then(|| format!("its price {} is through the order's limit", execution.price))
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    pub async fn apply_report(
        &self,
        report: &ExchangeReport,
    ) -> Result<ReportOutcome, ReportError> {
        let id = report.client_order_id();
        let current = match self.load(id).await {
            Ok(current) => current,
            Err(OrderError::NotFound) => return self.unknown_order(id).await,
            Err(other) => return Err(other.into()),
        };
        match report {
            ExchangeReport::Execution { execution, .. } => {
                self.apply_execution(current, execution, report).await
            }
            ExchangeReport::Final {
                exchange_order_id,
                report: final_report,
                ..
            } => {
                self.apply_final(current, exchange_order_id, final_report, report)
                    .await
            }
        }
    }

    async fn unknown_order(&self, id: &OrderId) -> Result<ReportOutcome, ReportError> {
        let found = self
            .exchange
            .order(id)
            .await
            .map_err(ReportError::Unverified)?;
        let reason = match found {
            Some(view) => format!(
                "the exchange holds order {} under client id {id}, which the platform never recorded",
                view.order_id
            ),
            None => format!("no order {id} here or at the exchange"),
        };
        tracing::error!(order_id = %id, %reason, "report set aside");
        Ok(ReportOutcome::SetAside { reason })
    }

    async fn apply_execution(
        &self,
        current: Current,
        execution: &Execution,
        report: &ExchangeReport,
    ) -> Result<ReportOutcome, ReportError> {
        // A repeat stops here, before anything else: cheap, and never a contradiction.
        if let Some(known) = self.known_execution(&current, execution).await? {
            return self.duplicate(current, execution, known).await;
        }
        let current = match contradiction(&current.value, report) {
            None => current,
            Some(why) => match self.verify_execution(&current.value, execution).await? {
                Verdict::Confirmed(view) => self.accept_confirmed(current, &view, &why).await?,
                Verdict::NotConfirmed(reason) => {
                    return self.set_aside(current, &format!("{why}; {reason}")).await
                }
            },
        };
        let (current, recorded) = self.record_execution(current, execution).await?;
        let current = self.drive_from(current, Driver::Handler).await?;
        let current = self.leave_signal(current).await?;
        Ok(match recorded {
            Recorded::New => ReportOutcome::Applied(current.value),
            Recorded::Duplicate => ReportOutcome::Duplicate(current.value),
            Recorded::Conflicting(text) => {
                let current = self
                    .flag(current, FlagReason::ConflictingExecution, &text)
                    .await?;
                drop(current);
                ReportOutcome::SetAside { reason: text }
            }
        })
    }

    /// Whether this `exec_id` is recorded already, and with which terms.
    async fn known_execution(
        &self,
        current: &Current,
        execution: &Execution,
    ) -> Result<Option<bool>, OrderError> {
        if let Some(slot) = &current.value.settling {
            if slot.exec_id == execution.exec_id {
                return Ok(Some(
                    slot.quantity == execution.quantity && slot.price == execution.price,
                ));
            }
        }
        let record = self
            .store
            .fill(&current.value.id, &execution.exec_id)
            .await?;
        Ok(record.map(|r| r.same_trade(execution)))
    }

    async fn duplicate(
        &self,
        current: Current,
        execution: &Execution,
        same: bool,
    ) -> Result<ReportOutcome, ReportError> {
        if !same {
            let text = format!(
                "execution {} reported again with other terms ({} at {})",
                execution.exec_id, execution.quantity, execution.price
            );
            self.flag(current, FlagReason::ConflictingExecution, &text)
                .await?;
            return Ok(ReportOutcome::SetAside { reason: text });
        }
        // A repeated delivery finishes whatever the first one left.
        let current = self.drive_from(current, Driver::Handler).await?;
        let current = self.leave_signal(current).await?;
        Ok(ReportOutcome::Duplicate(current.value))
    }

    async fn apply_final(
        &self,
        current: Current,
        exchange_order_id: &str,
        final_report: &FinalReport,
        report: &ExchangeReport,
    ) -> Result<ReportOutcome, ReportError> {
        let order = &current.value;
        let known = order.final_report.as_ref() == Some(final_report)
            || (order.is_closed()
                && order.exchange_order_id.as_deref() == Some(exchange_order_id)
                && order.filled_quantity() == final_report.cum_quantity);
        if known && contradiction(order, report).is_none() {
            let current = self.drive_from(current, Driver::Handler).await?;
            return Ok(ReportOutcome::Duplicate(current.value));
        }
        let current = match contradiction(order, report) {
            None => current,
            Some(why) => match self.verify_final(order, exchange_order_id).await? {
                Verdict::Confirmed(view) => {
                    let current = self.accept_confirmed(current, &view, &why).await?;
                    let current = self.drive_from(current, Driver::Handler).await?;
                    let current = self.leave_signal(current).await?;
                    return Ok(ReportOutcome::Applied(current.value));
                }
                Verdict::NotConfirmed(reason) => {
                    return self.set_aside(current, &format!("{why}; {reason}")).await
                }
            },
        };
        let current = self
            .update(current, |o| o.record_final(final_report))
            .await?;
        let current = self.drive_from(current, Driver::Handler).await?;
        let current = self.leave_signal(current).await?;
        Ok(ReportOutcome::Applied(current.value))
    }

    /// The exchange confirmed what the records contradicted: record its
    /// view; a closed or "not placed" order opens again, flagged.
    async fn accept_confirmed(
        &self,
        current: Current,
        view: &ExchangeOrder,
        why: &str,
    ) -> Result<Current, OrderError> {
        let now = self.now_ms();
        let reopen = current.value.is_closed()
            || current
                .value
                .place
                .as_ref()
                .is_some_and(|p| p.step.is_failed());
        let text = format!("the exchange confirmed a report although {why}");
        if reopen {
            tracing::error!(order_id = %current.value.id, %text, "order reopened");
        }
        self.update(current, |o| {
            if reopen && (o.is_closed() || o.place.as_ref().is_some_and(|p| p.step.is_failed())) {
                o.reopen(&view.order_id, &text, now);
            }
            record_exchange_view(o, view, now);
            true
        })
        .await
    }

    async fn verify_execution(
        &self,
        order: &Order,
        execution: &Execution,
    ) -> Result<Verdict, ReportError> {
        let view = self
            .exchange
            .order(&order.id)
            .await
            .map_err(ReportError::Unverified)?;
        let Some(view) = view else {
            return Ok(Verdict::NotConfirmed(
                "the exchange holds no order under this client id".into(),
            ));
        };
        if view.order_id != execution.exchange_order_id {
            return Ok(Verdict::NotConfirmed(format!(
                "the exchange holds it as {}, not {}",
                view.order_id, execution.exchange_order_id
            )));
        }
        let executions = self
            .exchange
            .executions(&view.order_id)
            .await
            .map_err(ReportError::Unverified)?;
        Ok(
            match executions.iter().find(|e| e.exec_id == execution.exec_id) {
                Some(truth) if truth.same_trade(execution) => Verdict::Confirmed(view),
                Some(truth) => Verdict::NotConfirmed(format!(
                    "the exchange reports {} at {} for this execution",
                    truth.quantity, truth.price
                )),
                None => Verdict::NotConfirmed("the exchange reports no such execution".into()),
            },
        )
    }

    async fn verify_final(
        &self,
        order: &Order,
        exchange_order_id: &str,
    ) -> Result<Verdict, ReportError> {
        let view = self
            .exchange
            .order(&order.id)
            .await
            .map_err(ReportError::Unverified)?;
        Ok(match view {
            Some(view) if view.order_id == exchange_order_id => Verdict::Confirmed(view),
            Some(view) => Verdict::NotConfirmed(format!(
                "the exchange holds it as {}, not {exchange_order_id}",
                view.order_id
            )),
            None => {
                Verdict::NotConfirmed("the exchange holds no order under this client id".into())
            }
        })
    }

    async fn set_aside(
        &self,
        current: Current,
        reason: &str,
    ) -> Result<ReportOutcome, ReportError> {
        tracing::error!(order_id = %current.value.id, %reason, "report not confirmed by the exchange; set aside");
        self.flag(current, FlagReason::UnconfirmedReport, reason)
            .await?;
        Ok(ReportOutcome::SetAside {
            reason: reason.to_owned(),
        })
    }
}
