//! The fill processor's use case: apply one exchange report to its order,
//! exactly once, then drive the order on (settle, release, close).

use domain::order::{Driver, ExchangeReport, FillApplied, FillError, Order};

use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::OrderStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Recorded now.
    Applied(Order),
    /// Recorded before (a repeated delivery); whatever was left unfinished
    /// after it (a settlement, say) has been driven on.
    Duplicate(Order),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// No order has this client id: the report can never apply.
    #[error("no order {0}")]
    UnknownOrder(String),
    /// The report contradicts the order (beyond its quantity, its limit, its
    /// reservation): the order is flagged and the report set aside.
    #[error("report refused: {0}")]
    Refused(FillError),
    #[error(transparent)]
    Order(#[from] OrderError),
}

impl ReportError {
    /// Whether delivering the same report again could ever succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ReportError::UnknownOrder(_) | ReportError::Refused(_))
    }
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
        let now = self.now_ms();
        let mut applied = false;
        let mut refused = None;
        self.update(id, |order| {
            refused = None;
            applied = match report {
                ExchangeReport::Execution { execution, .. } => {
                    match order.apply_execution(execution, now) {
                        Ok(FillApplied::Recorded) => true,
                        Ok(FillApplied::Duplicate) => false,
                        Err(error) => {
                            refused = Some(error);
                            false
                        }
                    }
                }
                ExchangeReport::Final {
                    exchange_order_id,
                    report,
                    ..
                } => {
                    let before = order.final_report.clone();
                    order.record_placed(exchange_order_id, now);
                    order.record_final(report.clone());
                    before != order.final_report
                }
            };
            applied
        })
        .await
        .map_err(|error| match error {
            OrderError::NotFound => ReportError::UnknownOrder(id.to_string()),
            other => ReportError::Order(other),
        })?;
        if let Some(error) = refused {
            self.flag(id, format!("exchange report refused: {error}"))
                .await?;
            return Err(ReportError::Refused(error));
        }
        // Driven on either way: a repeated delivery finishes what the first left.
        let order = self.drive(id, Driver::Handler).await?;
        Ok(if applied {
            ReportOutcome::Applied(order)
        } else {
            ReportOutcome::Duplicate(order)
        })
    }
}
